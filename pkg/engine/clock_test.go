package engine

import (
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestClockNeverGoesBack: after the server's wall clock steps back (an NTP
// correction), batches run at the engine's clock, not the earlier wall
// time: their results are not older than the states they follow, and
// staleness keeps its deadlines. Before, every result for the size of the
// step counted as a duplicate and ticks did nothing.
func TestClockNeverGoesBack(t *testing.T) {
	h := newHarness(t, cfg(nil)) // confirm_after 2
	h.apply(res("eu", "web-1", "disk", health.Passing), res("eu", "web-2", "disk", health.Passing))
	start := h.now
	h.now = h.now.Add(-10 * time.Minute) // the wall clock steps back
	for i := 0; i < 2; i++ {
		h.now = h.now.Add(30 * time.Second)
		out := h.apply(res("eu", "web-1", "disk", health.Critical))
		if out.Accepted != 1 || out.Duplicates != 0 {
			t.Fatalf("result %d after the step back: accepted %d, duplicates %d", i, out.Accepted, out.Duplicates)
		}
		for _, tr := range out.Transitions {
			if !tr.Time.Equal(start) {
				t.Errorf("transition %s at %s, want the engine's clock %s", tr.Key, tr.Time, start)
			}
		}
	}
	equalLines(t, "alerts", alertLines(h.e.Alerts()), []string{"host eu web-1 critical 1 [disk]"})
	// A result with its own timestamp ahead of the stepped-back wall clock
	// is not ahead of the engine's: it keeps its own time.
	r := res("eu", "web-2", "cpu", health.Critical)
	r.Time = start.Add(-time.Minute).UnixNano()
	if out := h.apply(r); out.Accepted != 1 {
		t.Fatalf("timestamped result: accepted %d, duplicates %d", out.Accepted, out.Duplicates)
	}
	if c := checkInfo(t, h, "web-2", "cpu"); c.Updated != r.Time {
		t.Errorf("updated %d, want the result's own time %d", c.Updated, r.Time)
	}
	// Then silence: the checks go stale 5 minutes after their last result
	// by the engine's clock, although the wall clock is still behind it.
	if out := h.tick(); len(out.Transitions) != 0 {
		t.Fatalf("tick at a stepped-back time: %v", transitionLines(out.Transitions))
	}
	h.now = start.Add(5*time.Minute + time.Second)
	out := h.tick()
	equalLines(t, "stale after 5m of engine time", transitionLines(out.Transitions), []string{
		"check eu/web-1/disk hard->stale", "check eu/web-2/cpu soft->stale", "check eu/web-2/disk passing->stale",
		"alert host eu/web-1/disk firing->inactive",
		"alert host eu/web-1/not_reporting inactive->firing", "alert host eu/web-2/not_reporting inactive->firing",
	})
	h.mustVerify()
}

// TestRestartWithClockBehind: a restart on a machine whose clock is behind
// the saved states (a replaced host, an NTP step during the outage) starts
// the engine's clock at the newest saved time, so results without their
// own timestamp are not older than the states they follow.
func TestRestartWithClockBehind(t *testing.T) {
	c := cfg(nil)
	h := newHarness(t, c)
	h.apply(res("eu", "web-1", "disk", health.Passing))
	saved := h.now
	h.now = h.now.Add(-10 * time.Minute)
	h.restart(c)
	out := h.apply(res("eu", "web-1", "disk", health.Critical))
	if out.Accepted != 1 || out.Duplicates != 0 {
		t.Fatalf("after a restart 10m behind: accepted %d, duplicates %d", out.Accepted, out.Duplicates)
	}
	equalLines(t, "transitions", transitionLines(out.Transitions), []string{"check eu/web-1/disk passing->soft"})
	for _, tr := range out.Transitions {
		if !tr.Time.Equal(saved) {
			t.Errorf("transition at %s, want the newest saved time %s", tr.Time, saved)
		}
	}
	h.mustVerify()
}

// TestRetryWithoutEventID: Vector retries a batch whose response it did not
// see; events with a timestamp but no event_id come again. The same status
// at the same own timestamp is a duplicate: counted again, it confirmed a
// soft failure and paged. Anything else about it is a new result.
func TestRetryWithoutEventID(t *testing.T) {
	ts := t0.UnixNano()
	tests := []struct {
		name   string
		first  health.Result
		second func(health.Result) health.Result
		dup    bool
	}{
		{"same timestamp and status", timed(health.Critical, ts),
			func(r health.Result) health.Result { return r }, true},
		{"same timestamp, other status", timed(health.Critical, ts),
			func(r health.Result) health.Result { r.Status = health.Warning; return r }, false},
		{"later timestamp", timed(health.Critical, ts),
			func(r health.Result) health.Result { r.Time += int64(time.Second); return r }, false},
		{"no timestamp", res("eu", "web-1", "disk", health.Critical),
			func(r health.Result) health.Result { return r }, false},
		{"timestamp ahead of the receive time, clamped", timed(health.Critical, ts+int64(time.Hour)),
			func(r health.Result) health.Result { return r }, false},
		{"same event_id", withID(timed(health.Critical, ts), "a"),
			func(r health.Result) health.Result { r.Time += int64(time.Second); return r }, true},
		{"other event_id, same timestamp and status", withID(timed(health.Critical, ts), "a"),
			func(r health.Result) health.Result { r.EventID = []byte("b"); return r }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(e *config.Engine) { e.ConfirmAfter = 2 }))
			h.apply(tt.first)
			h.now = h.now.Add(2 * time.Second)
			out := h.apply(tt.second(tt.first))
			if got := out.Duplicates == 1; got != tt.dup {
				t.Fatalf("duplicates %d accepted %d, want duplicate %v", out.Duplicates, out.Accepted, tt.dup)
			}
			if tt.dup && (pages(out.Transitions) > 0 || len(out.Transitions) > 0) {
				t.Fatalf("the duplicate changed something: %v", transitionLines(out.Transitions))
			}
			if !tt.dup && pages(out.Transitions) != 1 {
				t.Fatalf("a second failing result did not confirm: %v", transitionLines(out.Transitions))
			}
		})
	}
}

func timed(st health.Status, ns int64) health.Result {
	r := res("eu", "web-1", "disk", st)
	r.Time = ns
	return r
}

func withID(r health.Result, id string) health.Result {
	r.EventID = []byte(id)
	return r
}
