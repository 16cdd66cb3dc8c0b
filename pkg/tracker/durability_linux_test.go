package tracker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/internal/fulldisk"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// TestFullDiskIsReportedAndNotCounted: a commit the disk refuses is
// reported by StoreHealth, counted as a commit failure and its events as
// not_durable, never as accepted; once the disk has room again, a request
// submitted after the failure succeeds and clears it.
func TestFullDiskIsReportedAndNotCounted(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	m := f.tr.Metrics()
	request := func(hosts ...string) *ingest.Decoded {
		d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now()}}
		for _, h := range hosts {
			d.Batch.Results = append(d.Batch.Results, health.Result{
				Region: []byte("eu"), Host: []byte(h), Check: []byte("disk"), Status: health.Critical})
		}
		return d
	}
	counts := func() (accepted, notDurable, transitions, failures float64) {
		return counterValue(t, m.events.WithLabelValues("accepted")),
			counterValue(t, m.events.WithLabelValues("not_durable")),
			counterValue(t, m.transitions), counterValue(t, m.commitFailures)
	}

	if _, err := f.tr.Apply(ctx, request("web-1"), "test"); err != nil {
		t.Fatal(err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Fatalf("StoreHealth on a healthy disk = %+v", h)
	}
	accepted0, _, transitions0, _ := counts()
	if accepted0 != 1 || transitions0 == 0 {
		t.Fatalf("after a durable request: accepted %v, transitions %v", accepted0, transitions0)
	}

	disk := fulldisk.Fill(t, f.st.Path())
	failedAt := f.clock.now()
	if _, err := f.tr.Apply(ctx, request("web-2", "web-3"), "test"); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Apply on a full disk: %v, want the disk's error", err)
	}
	f.clock.add(time.Minute)
	// web-2 again: a duplicate now, its empty commit waits for the failed one.
	if _, err := f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
		t.Fatal("a request depending on a failed commit was acknowledged")
	}
	h := f.tr.StoreHealth()
	if !h.FailingSince.Equal(failedAt) || h.LastError == nil || !strings.Contains(h.LastError.Error(), "no space left") {
		t.Errorf("StoreHealth on a full disk = %+v, want failing since %v (the first failure) with the disk's error", h, failedAt)
	}
	accepted, notDurable, transitions, failures := counts()
	if accepted != accepted0 || transitions != transitions0 {
		t.Errorf("counted accepted %v (want %v), transitions %v (want %v) for commits that failed", accepted, accepted0, transitions, transitions0)
	}
	if notDurable != 3 || failures != 2 {
		t.Errorf("not_durable %v, commit failures %v; want 3 and 2", notDurable, failures)
	}

	disk.Restore()
	var err error
	for range 100 { // the store retries the failed commit with a backoff
		if _, err = f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Apply once the disk has room: %v", err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Errorf("StoreHealth after recovery = %+v, want cleared", h)
	}
}

// TestOlderSuccessKeepsFailureReported: a request submitted before a
// commit that failed may learn that its own commit was written only after
// that failure. Its success says nothing of the disk now, so StoreHealth
// (and /readyz) goes on reporting the failure until a commit submitted
// after it is written.
func TestOlderSuccessKeepsFailureReported(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	older := f.tr.Submit(f.request(health.Critical, euDisk), "test")
	// An empty commit's ticket waits for every commit before it: once it
	// returns, the older commit is on disk though nobody has waited for it.
	if err := f.st.Submit(&store.Commit{}).Wait(ctx); err != nil {
		t.Fatal(err)
	}

	disk := fulldisk.Fill(t, f.st.Path())
	failedAt := f.clock.now()
	if _, err := f.tr.Apply(ctx, f.request(health.Critical, euCPU), "test"); err == nil {
		t.Fatal("a commit succeeded on a full disk")
	}
	f.clock.add(time.Minute)
	if res, err := older.Wait(ctx); err != nil || res.Accepted != 1 {
		t.Fatalf("the older request: %+v, %v; want accepted: its commit was written", res, err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.Equal(failedAt) || h.LastError == nil {
		t.Errorf("StoreHealth after an older commit's success = %+v, want failing since %v", h, failedAt)
	}

	recoverDisk(t, f, disk)
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Errorf("StoreHealth once a later commit is written = %+v, want cleared", h)
	}
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// failingDisk fills the store's disk and makes the store fail twice, so
// that its committer sleeps in a backoff of 200ms before the next attempt:
// a commit submitted now is neither written nor failed while a caller
// whose context has ended looks at it.
func failingDisk(t *testing.T, f *fixture) *fulldisk.Disk {
	t.Helper()
	disk := fulldisk.Fill(t, f.st.Path())
	for i := range 2 {
		d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{{
			Region: []byte("eu"), Host: []byte("filler"), Check: []byte("c" + string(rune('0'+i))), Status: health.Passing}}}}
		if _, err := f.tr.Apply(context.Background(), d, "test"); err == nil {
			t.Fatal("a commit succeeded on a full disk")
		}
	}
	return disk
}

// recoverDisk restores the disk and waits until a commit submitted after the
// failed ones is written: the store retries them in order.
func recoverDisk(t *testing.T, f *fixture, disk *fulldisk.Disk) {
	t.Helper()
	disk.Restore()
	var err error
	for range 200 {
		if err = f.tr.Tick(context.Background()); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("the store did not recover: %v", err)
}

// TestAddWindowOnFullDisk: a window added while the disk refuses writes is
// in force at once and reported Unconfirmed with the disk's error, never
// withdrawn: the store retries the commit in order until it lands, so a
// client told "nothing changed" would add a second window. Once the disk
// has room the window and its alert changes are written together.
func TestAddWindowOnFullDisk(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.report(health.Critical, euDisk)
	disk := fulldisk.Fill(t, f.st.Path())
	win := health.Window{ID: "drain", Region: "eu", Host: "web-1", Until: f.clock.now().Add(time.Hour), Reason: "drain"}
	ch, err := f.tr.AddWindow(ctx, win)
	if err != nil || ch.Unconfirmed == nil || !strings.Contains(ch.Unconfirmed.Error(), "no space left") {
		t.Fatalf("AddWindow on a full disk: %+v, %v; want it unconfirmed with the disk's error", ch, err)
	}
	if ids := windowIDs(f.tr.Windows()); !slices.Equal(ids, []string{"drain"}) {
		t.Fatalf("windows in force %v, want [drain]", ids)
	}
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Suppressed != health.SuppressedByMaintenance {
		t.Fatalf("alerts %+v, want web-1 suppressed by maintenance", as)
	}
	recoverDisk(t, f, disk)
	if ws, err := f.st.Windows(); err != nil || !slices.Equal(windowIDs(ws), []string{"drain"}) {
		t.Fatalf("stored windows once the disk recovered: %v (%v), want [drain]", windowIDs(ws), err)
	}
	f.restart()
	if ids := windowIDs(f.tr.Windows()); !slices.Equal(ids, []string{"drain"}) {
		t.Fatalf("windows after restart %v, want [drain]", ids)
	}
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Suppressed != health.SuppressedByMaintenance {
		t.Fatalf("alerts after restart %+v, want web-1 suppressed by maintenance", as)
	}
}

// TestWindowChangeUnconfirmed: when the caller's context ends before the
// commit of a window change is confirmed, the change stays in force, is
// reported Unconfirmed rather than failed, and reaches the store once the
// disk has room.
func TestWindowChangeUnconfirmed(t *testing.T) {
	f := newFixture(t, nil)
	f.report(health.Critical, euDisk)
	if _, err := f.tr.AddWindow(context.Background(), health.Window{ID: "old", Region: "eu", Host: "web-2",
		Until: f.clock.now().Add(time.Hour), Reason: "rack move"}); err != nil {
		t.Fatal(err)
	}
	disk := failingDisk(t, f)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	added, err := f.tr.AddWindow(gone, health.Window{ID: "drain", Region: "eu", Host: "web-1",
		Until: f.clock.now().Add(time.Hour), Reason: "drain"})
	if err != nil || !errors.Is(added.Unconfirmed, context.Canceled) || added.Window.ID != "drain" {
		t.Fatalf("AddWindow with its context gone: %+v, %v; want the window, unconfirmed", added, err)
	}
	removed, err := f.tr.RemoveWindow(gone, "old")
	if err != nil || !errors.Is(removed.Unconfirmed, context.Canceled) || removed.Window.Reason != "rack move" {
		t.Fatalf("RemoveWindow with its context gone: %+v, %v; want the window, unconfirmed", removed, err)
	}
	if ids := windowIDs(f.tr.Windows()); !slices.Equal(ids, []string{"drain"}) {
		t.Fatalf("windows in force %v, want [drain]", ids)
	}
	recoverDisk(t, f, disk)
	if ws, err := f.st.Windows(); err != nil || !slices.Equal(windowIDs(ws), []string{"drain"}) {
		t.Fatalf("stored windows once the disk recovered: %v (%v), want [drain]", windowIDs(ws), err)
	}
}

// TestAbandonedRequestIsNotCountedNotDurable: a request whose sender went
// away before its commit was confirmed counts its events as abandoned, not
// as not_durable (nothing failed), and its transitions once the commit is
// written.
func TestAbandonedRequestIsNotCountedNotDurable(t *testing.T) {
	f := newFixture(t, nil)
	m := f.tr.Metrics()
	disk := failingDisk(t, f)
	notDurable := counterValue(t, m.events.WithLabelValues("not_durable"))
	transitions := counterValue(t, m.transitions)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{
		{Region: []byte("eu"), Host: []byte("web-1"), Check: []byte("disk"), Status: health.Critical},
		{Region: []byte("eu"), Host: []byte("web-2"), Check: []byte("disk"), Status: health.Critical},
	}}}
	if _, err := f.tr.Apply(gone, d, "test"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with its context gone: %v, want context.Canceled", err)
	}
	if got := counterValue(t, m.events.WithLabelValues("abandoned")); got != 2 {
		t.Errorf("abandoned = %v, want 2", got)
	}
	if got := counterValue(t, m.events.WithLabelValues("not_durable")); got != notDurable {
		t.Errorf("not_durable moved from %v to %v for a request nobody waited for", notDurable, got)
	}
	if got := counterValue(t, m.transitions); got != transitions {
		t.Errorf("transitions counted before the commit was written: %v, was %v", got, transitions)
	}
	recoverDisk(t, f, disk)
	// Counted by a goroutine once the commit is written, which recoverDisk's
	// tick is after; that goroutine's wake-up is not ordered with the
	// tick's, so wait for the count itself, with room for a loaded machine.
	for deadline := time.Now().Add(10 * time.Second); counterValue(t, m.transitions) == transitions; {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned request's transitions were never counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTransitionsCountedOnDisk: healthrouter_ingest_transitions_total
// follows the journal whatever wrote to it: an ingest request, a window
// change, and a request whose commit failed and was written by the
// store's retry after its sender had been told to retry.
func TestTransitionsCountedOnDisk(t *testing.T) {
	f := newFixture(t, nil)
	m := f.tr.Metrics()
	journaled := func() float64 {
		t.Helper()
		seq, err := f.st.LastSeq()
		if err != nil {
			t.Fatal(err)
		}
		return float64(seq)
	}
	check := func(when string) {
		t.Helper()
		if got, want := counterValue(t, m.transitions), journaled(); got != want {
			t.Fatalf("%s: transitions_total %v, journal holds %v", when, got, want)
		}
	}
	f.report(health.Critical, euDisk)
	check("after ingest")
	if ch, err := f.tr.AddWindow(context.Background(), health.Window{ID: "drain", Region: "eu", Host: "web-1",
		Until: f.clock.now().Add(time.Hour), Reason: "drain"}); err != nil || ch.Unconfirmed != nil {
		t.Fatal(err, ch.Unconfirmed)
	}
	check("after a window")

	disk := fulldisk.Fill(t, f.st.Path())
	d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{
		{Region: []byte("eu"), Host: []byte("web-2"), Check: []byte("disk"), Status: health.Critical}}}}
	if _, err := f.tr.Apply(context.Background(), d, "test"); err == nil {
		t.Fatal("Apply on a full disk was acknowledged")
	}
	failures := counterValue(t, m.commitFailures)
	if failures == 0 {
		t.Fatal("a failed write was not counted")
	}
	recoverDisk(t, f, disk)
	check("after the failed commit was retried")
}
