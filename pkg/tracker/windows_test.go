package tracker

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/store"
)

func windowIDs(ws []health.Window) []string {
	ids := make([]string, 0, len(ws))
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	return ids
}

// TestRemoveWindowOnClosedStore: a window ended while the store cannot
// write is ended at once and reported Unconfirmed; the delete is never
// undone in memory, since the store could still write it.
func TestRemoveWindowOnClosedStore(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.report(health.Critical, euDisk)
	added, err := f.tr.AddWindow(ctx, health.Window{ID: "drain", Region: "eu", Host: "web-1",
		Until: f.clock.now().Add(time.Hour), Reason: "drain"})
	if err != nil || added.Unconfirmed != nil {
		t.Fatal(err, added.Unconfirmed)
	}
	seq, err := f.st.LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Close(); err != nil { // every write fails from here on
		t.Fatal(err)
	}
	ch, err := f.tr.RemoveWindow(ctx, added.Window.ID)
	if err != nil || !errors.Is(ch.Unconfirmed, store.ErrClosed) || ch.Window.Reason != "drain" {
		t.Fatalf("RemoveWindow on a closed store: %+v, %v; want the window, unconfirmed", ch, err)
	}
	if ws := f.tr.Windows(); len(ws) != 0 {
		t.Fatalf("windows after the unconfirmed delete %v, want it ended", windowIDs(ws))
	}
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Suppressed != "" {
		t.Fatalf("alerts after the unconfirmed delete %+v, want web-1 firing", as)
	}

	// As the warning says: a restart before the delete is written brings
	// the window back, with the alert it suppresses, and nothing journaled.
	f.open()
	if ids := windowIDs(f.tr.Windows()); !slices.Equal(ids, []string{"drain"}) {
		t.Fatalf("windows after restart %v", ids)
	}
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Suppressed != health.SuppressedByMaintenance {
		t.Fatalf("alerts after restart %+v, want web-1 suppressed by maintenance", as)
	}
	if got, _ := f.st.LastSeq(); got != seq {
		t.Fatalf("journal at %d after the failed delete, want %d", got, seq)
	}
	if ch, err := f.tr.RemoveWindow(ctx, "drain"); err != nil || ch.Unconfirmed != nil || ch.Window.Reason != "drain" {
		t.Fatalf("RemoveWindow: %+v %v", ch, err)
	}
	if _, err := f.tr.RemoveWindow(ctx, "drain"); !errors.Is(err, ErrUnknownWindow) {
		t.Fatalf("second RemoveWindow: %v, want ErrUnknownWindow", err)
	}
	if ws, err := f.st.Windows(); err != nil || len(ws) != 0 {
		t.Fatalf("stored windows after removal %+v (%v)", ws, err)
	}
}

// TestWindowEndedWhileDown: a window that ended while the server was down
// keeps its alert suppressed at start-up, and the first tick releases it
// with a journal entry and deletes the window from the store.
func TestWindowEndedWhileDown(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.tr.AddWindow(ctx, health.Window{ID: "reboot", Region: "eu", Host: "web-1",
		Until: f.clock.now().Add(time.Minute), Reason: "reboot"}); err != nil {
		t.Fatal(err)
	}
	f.report(health.Critical, euDisk)
	f.clock.add(2 * time.Minute)
	f.restart()
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Suppressed != health.SuppressedByMaintenance {
		t.Fatalf("alerts at start-up %+v, want web-1 suppressed as before the stop", as)
	}
	seq, _ := f.st.LastSeq()
	if err := f.tr.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	tr, err := f.st.Transitions(seq, 100)
	if err != nil {
		t.Fatal(err)
	}
	var fired bool
	for _, x := range tr {
		fired = fired || (x.Kind == health.AlertChanged && x.Key.Host == "web-1" && x.To == health.AlertFiring)
	}
	if !fired {
		t.Fatalf("first tick journaled %+v, want web-1's alert firing", tr)
	}
	if ws, err := f.st.Windows(); err != nil || len(ws) != 0 {
		t.Fatalf("stored windows after the first tick %+v (%v), want none", ws, err)
	}
}

// TestOpenSkipsInvalidRecords: a record that decodes but that the engine
// refuses is left out, logged with its key and counted; the rest loads.
func TestOpenSkipsInvalidRecords(t *testing.T) {
	f := newFixture(t, nil)
	f.report(health.Critical, euDisk)
	bad := health.CheckState{Key: health.Key{Region: "eu", Host: "web-9", Check: health.NotReporting}}
	if err := f.st.Commit(context.Background(), &store.Commit{States: []health.CheckState{bad}}); err != nil {
		t.Fatal(err)
	}
	f.restart()
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Host != "web-1" {
		t.Fatalf("alerts after loading around the bad record %+v", as)
	}
	logged := f.logs.FilterMessage("skipping invalid check record").All()
	if len(logged) != 1 || !strings.Contains(logged[0].ContextMap()["key"].(string), "web-9/not_reporting") {
		t.Fatalf("logged %+v, want one entry naming eu/web-9/not_reporting", logged)
	}
	if got := gaugeValue(t, f.tr.Metrics(), "healthrouter_state_records_skipped", "invalid"); got != 1 {
		t.Fatalf("healthrouter_state_records_skipped{reason=invalid} = %v, want 1", got)
	}
}

// gaugeValue gathers the collector and returns the named series whose only
// label has the given value.
func gaugeValue(t *testing.T, c prometheus.Collector, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return metricValue(m)
			}
		}
	}
	t.Fatalf("no series %s{%s}", name, label)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// TestEndedWindowLeavesStore: a window leaves the store with the call that
// expires it, whichever call that is. Before, a Tick deleted ended windows
// only when the count of active windows changed during it, and an ingest
// that had already moved the engine's clock past the end hid the change:
// the window stayed stored, and a restart suppressed the host again and
// re-fired it at the first tick.
func TestEndedWindowLeavesStore(t *testing.T) {
	tests := []struct {
		name string
		end  func(f *fixture) // runs the engine past the window's end
	}{
		{"ingest past the end, then a tick", func(f *fixture) {
			f.clock.add(2 * time.Minute)
			f.report(health.Critical, euDisk)
			if err := f.tr.Tick(context.Background()); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"ingest past the end, no tick", func(f *fixture) {
			f.clock.add(2 * time.Minute)
			f.report(health.Critical, euDisk)
		}},
		{"tick past the end", func(f *fixture) {
			f.clock.add(2 * time.Minute)
			if err := f.tr.Tick(context.Background()); err != nil {
				f.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(e *config.Engine) { e.StaleAfter = config.Duration(time.Hour) })
			ctx := context.Background()
			f.report(health.Passing, euDisk)
			for _, w := range []health.Window{
				{ID: "reboot", Region: "eu", Host: "web-1", Until: f.clock.now().Add(time.Minute), Reason: "reboot"},
				{ID: "drain", Region: "eu", Host: "web-2", Until: f.clock.now().Add(time.Hour), Reason: "drain"},
			} {
				if _, err := f.tr.AddWindow(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			f.report(health.Critical, euDisk) // suppressed by maintenance
			tt.end(f)
			if got := f.logs.FilterMessage("maintenance window expired").FilterField(zap.String("id", "reboot")).Len(); got != 1 {
				t.Errorf("%d log lines for the window's expiry, want 1", got)
			}
			before := f.tr.Alerts()
			if len(before) != 1 || before[0].Suppressed != "" || before[0].Host != "web-1" {
				t.Fatalf("alerts after the end %+v, want web-1 firing", before)
			}
			if ws, err := f.st.Windows(); err != nil || !slices.Equal(windowIDs(ws), []string{"drain"}) {
				t.Fatalf("stored windows %v (%v), want only drain", windowIDs(ws), err)
			}
			f.restart()
			if after := f.tr.Alerts(); !reflect.DeepEqual(after, before) {
				t.Fatalf("restart changed the alerts: before %+v, after %+v", before, after)
			}
			seq, _ := f.st.LastSeq()
			if err := f.tr.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if tr, _ := f.st.Transitions(seq, 100); len(tr) != 0 {
				t.Fatalf("first tick after restart journaled %+v", tr)
			}
		})
	}
}

// TestAddWindowTooFarAhead: a window ending more than 10 years ahead (one
// past 2262 used to wrap the engine's clock: accepted, then never
// suppressing, unlisted and undeletable) is refused with ErrInvalidWindow,
// which the API answers 400, and a message saying why; nothing is stored.
func TestAddWindowTooFarAhead(t *testing.T) {
	f := newFixture(t, nil)
	for _, until := range []time.Time{f.clock.now().AddDate(11, 0, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		_, err := f.tr.AddWindow(context.Background(), health.Window{ID: "far", Region: "eu", Until: until, Reason: "typo"})
		want := "invalid maintenance window: until " + until.Format(time.RFC3339) + " is more than 10 years away"
		if !errors.Is(err, ErrInvalidWindow) || err.Error() != want {
			t.Errorf("until %s: error %v, want ErrInvalidWindow %q", until, err, want)
		}
	}
	if ws, err := f.st.Windows(); err != nil || len(ws) != 0 {
		t.Fatalf("stored windows %+v (%v), want none", ws, err)
	}
	if ws := f.tr.Windows(); len(ws) != 0 {
		t.Fatalf("windows %+v, want none", ws)
	}
}
