package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

func TestMaintenance(t *testing.T) {
	tests := []struct {
		name    string
		window  health.Window
		results func() []health.Result
		during  []string
		after   []string
	}{
		{
			name:   "host window suppresses every check of the host",
			window: health.Window{ID: "w1", Region: "eu", Host: "web-1", Reason: "drain"},
			results: func() []health.Result {
				return []health.Result{res("eu", "web-1", "disk", health.Critical), res("eu", "web-1", "lvm", health.Critical), res("eu", "web-2", "disk", health.Critical)}
			},
			during: []string{"host eu web-1/disk suppressed=maintenance", "host eu web-1/lvm suppressed=maintenance", "host eu web-2 critical 1 [disk]"},
			after:  []string{"host eu web-1 critical 2 [disk lvm]", "host eu web-2 critical 1 [disk]"},
		},
		{
			name:   "check glob suppresses only matching checks",
			window: health.Window{ID: "w2", Region: "eu", Host: "web-1", Check: "lvm*", Reason: "resize"},
			results: func() []health.Result {
				return []health.Result{res("eu", "web-1", "disk", health.Critical), res("eu", "web-1", "lvm-vg0", health.Critical)}
			},
			during: []string{"host eu web-1 critical 1 [disk]", "host eu web-1/lvm-vg0 suppressed=maintenance"},
			after:  []string{"host eu web-1 critical 2 [disk lvm-vg0]"},
		},
		{
			name:    "region window suppresses the region alert and its hosts",
			window:  health.Window{ID: "w3", Region: "eu", Check: "conn", Reason: "network work"},
			results: func() []health.Result { return regionFleet(5, 5, 5, "conn") },
			during: []string{
				"host eu h-00/conn suppressed=maintenance", "host eu h-01/conn suppressed=maintenance",
				"host eu h-02/conn suppressed=maintenance", "host eu h-03/conn suppressed=maintenance",
				"host eu h-04/conn suppressed=maintenance", "region eu conn suppressed=maintenance",
			},
			after: []string{
				"host eu h-00/conn suppressed=region", "host eu h-01/conn suppressed=region",
				"host eu h-02/conn suppressed=region", "host eu h-03/conn suppressed=region",
				"host eu h-04/conn suppressed=region", "region eu conn critical 1.00",
			},
		},
		{
			name:    "drained hosts are left out of the region rollup",
			window:  health.Window{ID: "w4", Region: "eu", Host: "h-00", Reason: "drain"},
			results: func() []health.Result { return regionFleet(3, 3, 1, "conn") },
			during:  []string{"host eu h-00/conn suppressed=maintenance"},
			after:   []string{"host eu h-00 critical 1 [conn]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
			w := tt.window
			w.Until = h.now.Add(time.Hour)
			h.addWindow(w)
			h.apply(tt.results()...)
			equalLines(t, "during the window", alertLines(h.e.Alerts()), tt.during)
			h.mustVerify()
			pagesDuring := pages(h.journal)

			// The window expires by itself.
			for i := 0; i < 4; i++ {
				h.step(15 * time.Minute)
				h.apply(tt.results()...)
			}
			equalLines(t, "after the window", alertLines(h.e.Alerts()), tt.after)
			if len(h.e.Windows()) != 0 {
				t.Fatalf("expired window still listed: %+v", h.e.Windows())
			}
			if pages(h.journal) == pagesDuring {
				t.Fatal("nothing paged after the window expired")
			}
			h.mustVerify()
		})
	}
}

func TestMaintenanceNotReporting(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.apply(res("eu", "web-1", "cpu", health.Passing), res("eu", "web-2", "cpu", health.Passing))
	h.addWindow(health.Window{ID: "w", Region: "eu", Host: "web-1", Until: h.now.Add(time.Hour), Reason: "reboot"})
	for i := 0; i < 12; i++ {
		h.step(30 * time.Second)
		h.apply(res("eu", "web-2", "cpu", health.Passing))
	}
	equalLines(t, "silent host in maintenance", alertLines(h.e.Alerts()), []string{"host eu web-1/not_reporting suppressed=maintenance"})
	out := &Outcome{}
	if !h.e.RemoveWindow("w", h.now, out) {
		t.Fatal("RemoveWindow did not find the window")
	}
	equalLines(t, "removed", alertTransitions(out.Transitions), []string{"alert host eu/web-1/not_reporting suppressed->firing maintenance"})
	if h.e.RemoveWindow("w", h.now, out) {
		t.Fatal("RemoveWindow removed a window twice")
	}
	h.mustVerify()
}

func TestAddWindowValidates(t *testing.T) {
	h := newHarness(t, cfg(nil))
	tests := []struct {
		name string
		w    health.Window
		want string
	}{
		{"region required", health.Window{Until: t0.Add(time.Hour)}, "region is required"},
		{"until in the past", health.Window{Region: "eu", Until: t0.Add(-time.Minute)}, "not in the future"},
		{"until now", health.Window{Region: "eu", Until: t0}, "not in the future"},
		{"bad glob", health.Window{Region: "eu", Check: "lvm[", Until: t0.Add(time.Hour)}, "check glob"},
		{"until past 10 years", health.Window{Region: "eu", Until: t0.AddDate(11, 0, 0)}, "more than 10 years away"},
		{"until past the clock's end", health.Window{Region: "eu", Until: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "more than 10 years away"},
	}
	for _, tt := range tests {
		err := h.e.AddWindow(tt.w, t0, &Outcome{})
		if !errors.Is(err, ErrInvalidWindow) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidWindow and %q", tt.name, err, tt.want)
		}
	}
	if len(h.e.Windows()) != 0 {
		t.Fatal("an invalid window was added")
	}

	// IDs: derived when empty, replaced when repeated; listed by end time.
	out := &Outcome{}
	w := health.Window{Region: "eu", Host: "web-1", Until: t0.Add(2 * time.Hour), Reason: "drain"}
	if err := h.e.AddWindow(w, t0, out); err != nil {
		t.Fatal(err)
	}
	w.Created = t0
	if got := h.e.Windows(); len(got) != 1 || got[0].ID != WindowID(w) || !strings.HasPrefix(got[0].ID, "mw-") {
		t.Fatalf("windows %+v, want one with ID %s", got, WindowID(w))
	}
	if err := h.e.AddWindow(health.Window{ID: "early", Region: "us", Until: t0.Add(time.Hour)}, t0, out); err != nil {
		t.Fatal(err)
	}
	w.Until = t0.Add(3 * time.Hour)
	w.ID = WindowID(health.Window{Region: "eu", Host: "web-1", Until: t0.Add(2 * time.Hour), Reason: "drain", Created: t0})
	if err := h.e.AddWindow(w, t0, out); err != nil {
		t.Fatal(err)
	}
	got := h.e.Windows()
	if len(got) != 2 || got[0].ID != "early" || !got[1].Until.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("windows %+v: want the extended window replaced, sorted by until", got)
	}
}

// TestWindowAtTenYears: the bound leaves room for a long window.
func TestWindowAtTenYears(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.addWindow(health.Window{ID: "long", Region: "eu", Until: t0.AddDate(10, 0, 0), Reason: "decommissioning"})
	if ws := h.e.Windows(); len(ws) != 1 {
		t.Fatalf("windows %+v, want the 10-year window", ws)
	}
}

// TestLoadWindowPastClockEnd: a window stored before until was bounded may
// end past 2262, where UnixNano wraps. It must still cover its alerts, be
// listed and be removable, not wrap into the past.
func TestLoadWindowPastClockEnd(t *testing.T) {
	c := cfg(func(e *config.Engine) { e.ConfirmAfter = 1 })
	h := newHarness(t, c)
	h.apply(res("eu", "web-1", "disk", health.Critical))
	h.windows["far"] = health.Window{ID: "far", Region: "eu", Host: "web-1", Reason: "typo",
		Until: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.restart(c)
	if ws := h.e.Windows(); len(ws) != 1 || ws[0].ID != "far" {
		t.Fatalf("windows %+v, want the loaded window listed", ws)
	}
	h.now = h.now.Add(time.Minute)
	if out := h.tick(); len(out.EndedWindows) != 0 {
		t.Fatalf("tick expired %v", out.EndedWindows)
	}
	equalLines(t, "alerts under the window", alertLines(h.e.Alerts()), []string{"host eu web-1/disk suppressed=maintenance"})
	out := &Outcome{}
	if !h.e.RemoveWindow("far", h.now, out) {
		t.Fatal("RemoveWindow did not find the window")
	}
	equalLines(t, "removed", alertTransitions(out.Transitions), []string{
		"alert host eu/web-1/disk suppressed->inactive maintenance", "alert host eu/web-1/disk inactive->firing"})
}

// TestEndedWindowsReported: whichever call first runs past a window's end,
// Apply or Tick, expires it and lists it in EndedWindows, so that the store
// deletes it and a restart does not suppress again what its end released.
// Before, only Tick expired windows and nothing said which: a caller
// comparing Windows() before and after a Tick missed the windows an Apply
// had already moved the clock past.
func TestEndedWindowsReported(t *testing.T) {
	tests := []struct {
		name string
		run  func(h *harness) *Outcome
	}{
		{"apply past the end", func(h *harness) *Outcome {
			h.now = t0.Add(2 * time.Minute)
			return h.apply(res("eu", "web-1", "disk", health.Critical))
		}},
		{"tick past the end", func(h *harness) *Outcome { return h.step(2 * time.Minute) }},
		{"tick at the end after a result moved the clock near it", func(h *harness) *Outcome {
			h.now = t0.Add(time.Minute - time.Second)
			h.apply(res("eu", "web-1", "disk", health.Critical))
			return h.step(time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(func(e *config.Engine) { e.ConfirmAfter = 1 })
			h := newHarness(t, c)
			h.apply(res("eu", "web-1", "disk", health.Critical))
			h.addWindow(health.Window{ID: "reboot", Region: "eu", Host: "web-1", Until: t0.Add(time.Minute), Reason: "reboot"})
			h.addWindow(health.Window{ID: "drain", Region: "eu", Host: "web-2", Until: t0.Add(time.Hour), Reason: "drain"})
			out := tt.run(h)
			if !slices.Equal(out.EndedWindows, []string{"reboot"}) {
				t.Fatalf("EndedWindows %v, want [reboot]", out.EndedWindows)
			}
			equalLines(t, "released", alertTransitions(out.Transitions), []string{
				"alert host eu/web-1/disk suppressed->inactive maintenance", "alert host eu/web-1/disk inactive->firing"})
			before := alertLines(h.e.Alerts())
			h.restart(c)
			equalLines(t, "alerts after restart", alertLines(h.e.Alerts()), before)
			h.now = h.now.Add(time.Second)
			if out := h.tick(); len(out.Transitions) != 0 || len(out.EndedWindows) != 0 {
				t.Fatalf("first tick after restart: %v, ended %v", transitionLines(out.Transitions), out.EndedWindows)
			}
			if ws := h.e.Windows(); len(ws) != 1 || ws[0].ID != "drain" {
				t.Fatalf("windows %+v, want only drain", ws)
			}
		})
	}
}
