package engine

import (
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestStaleCheckStartsOver: a check's first result after it went stale
// starts from a clean slate. Its alert ended with the silence, so a passing
// result must not page (with recover_after 2 the hard critical state used to
// survive the silence and rejoin the host alert), and a failing result is a
// soft failure to confirm again, as for a new check.
func TestStaleCheckStartsOver(t *testing.T) {
	silence := func(h *harness) { // disk silent 6 minutes, cpu keeps reporting
		for i := 0; i < 12; i++ {
			h.now = h.now.Add(30 * time.Second)
			h.apply(res("eu", "web-1", "cpu", health.Passing))
			h.tick()
		}
	}
	hostSilence := func(h *harness) { // the whole host silent 6 minutes
		h.step(6 * time.Minute)
	}
	tests := []struct {
		name     string
		silence  func(*harness)
		next     []health.Status // disk's results after the silence, 30 s apart
		want     []string        // disk's phase after each
		wantPage []bool          // whether each paged
	}{
		{"check stale, back passing", silence,
			[]health.Status{health.Passing}, []string{health.PhasePassing}, []bool{false}},
		{"host not reporting, back passing", hostSilence,
			[]health.Status{health.Passing}, []string{health.PhasePassing}, []bool{false}},
		{"check stale, back critical twice", silence,
			[]health.Status{health.Critical, health.Critical}, []string{health.PhaseSoft, health.PhaseHard}, []bool{false, true}},
		{"check stale, back critical then passing", silence,
			[]health.Status{health.Critical, health.Passing}, []string{health.PhaseSoft, health.PhasePassing}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(e *config.Engine) { e.RecoverAfter = 2 }))
			for i := 0; i < 2; i++ {
				h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-1", "cpu", health.Passing))
				h.now = h.now.Add(30 * time.Second)
			}
			equalLines(t, "before the silence", alertLines(h.e.Alerts()), []string{"host eu web-1 critical 1 [disk]"})
			tt.silence(h)
			for _, a := range h.e.Alerts() {
				if a.Check != health.NotReporting {
					t.Fatalf("alert %+v survived the silence", a)
				}
			}
			// Nor is the stale check exported as failing any more.
			if got, regionFailing := failingNow(h); len(got) != 0 || regionFailing != 0 {
				t.Fatalf("stale check still counted as failing: %v, region failing_checks %d", got, regionFailing)
			}
			for i, st := range tt.next {
				h.now = h.now.Add(30 * time.Second)
				out := h.apply(res("eu", "web-1", "disk", st), res("eu", "web-1", "cpu", health.Passing))
				if paged := pages(out.Transitions) > 0; paged != tt.wantPage[i] {
					t.Errorf("result %d (%s): paged %v, want %v: %v", i, st, paged, tt.wantPage[i], transitionLines(out.Transitions))
				}
				ci := checkInfo(t, h, "web-1", "disk")
				if ci.Phase != tt.want[i] {
					t.Errorf("result %d (%s): phase %s, want %s", i, st, ci.Phase, tt.want[i])
				}
				want := 0
				if st != health.Passing {
					want = 1
				}
				if got, regionFailing := failingNow(h); len(got) != want || regionFailing != want {
					t.Errorf("result %d (%s): failing %v, region failing_checks %d, want %d", i, st, got, regionFailing, want)
				}
			}
			h.mustVerify()
		})
	}
}

// failingNow lists the checks exported as failing and region eu's count of
// them, which must be web-1's count too.
func failingNow(h *harness) (keys []string, regionFailing int) {
	h.e.FailingChecks(func(k health.Key, _ health.Status, _ bool) { keys = append(keys, k.String()) })
	for _, r := range h.e.Regions() {
		if r.Name == "eu" {
			regionFailing = r.FailingChecks
		}
	}
	for _, hi := range h.e.Hosts("eu") {
		if hi.Host == "web-1" && hi.Failing != regionFailing {
			h.t.Errorf("web-1 counts %d failing checks, its region %d", hi.Failing, regionFailing)
		}
	}
	return keys, regionFailing
}

// checkInfo returns one check of a host.
func checkInfo(t *testing.T, h *harness, host, check string) CheckInfo {
	t.Helper()
	for _, c := range h.e.HostChecks(host) {
		if c.Check == check {
			return c
		}
	}
	t.Fatalf("no check %s on %s", check, host)
	return CheckInfo{}
}
