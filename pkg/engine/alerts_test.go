package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

func hostName(i int) string { return fmt.Sprintf("h-%02d", i) }

func TestFlapping(t *testing.T) {
	for _, confirm := range []int{1, 2} {
		t.Run(fmt.Sprintf("confirm_after=%d", confirm), func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = confirm }))
			send := func(st health.Status) *Outcome {
				h.now = h.now.Add(30 * time.Second)
				return h.apply(res("eu", "web-1", "ntp", st))
			}
			// Alternate until flapping is detected.
			startedAt := -1
			for i := 0; i < 21 && startedAt < 0; i++ {
				st := health.Passing
				if i%2 == 1 {
					st = health.Critical
				}
				for _, tr := range send(st).Transitions {
					if tr.Kind == health.CheckChanged && tr.To == health.PhaseFlapping {
						startedAt = i
					}
				}
			}
			if startedAt < 0 {
				t.Fatal("alternating results never started flapping")
			}
			if f := 100 * flapFraction(h.e.hosts[0].checks[0].flapHist); f <= 50 {
				t.Fatalf("flapping at %.1f%%, not above 50%%", f)
			}
			pagesBefore := pages(h.journal)
			if confirm == 2 && pagesBefore != 0 {
				t.Fatalf("soft alternation paged %d times", pagesBefore)
			}
			// Keep flapping: no page, visible as suppressed.
			for i := 0; i < 20; i++ {
				st := health.Passing
				if i%2 == 0 {
					st = health.Critical
				}
				send(st)
				equalLines(t, "while flapping", alertLines(h.e.Alerts()), []string{"host eu web-1/ntp suppressed=flapping"})
			}

			if got := pages(h.journal); got != pagesBefore {
				t.Fatalf("paged %d times while flapping", got-pagesBefore)
			}
			if s := h.e.Stats(); s.Flapping != 1 || s.Suppressed != 1 || s.Firing != 0 {
				t.Fatalf("stats while flapping: %+v", s)
			}
			// Settle critical: flapping stops and the host alert fires once.
			for i := 0; i < 30; i++ {
				send(health.Critical)
			}
			equalLines(t, "settled critical", alertLines(h.e.Alerts()), []string{"host eu web-1 critical 1 [ntp]"})
			if got := pages(h.journal); got != pagesBefore+1 {
				t.Fatalf("settling paged %d times, want 1", got-pagesBefore)
			}
			h.mustVerify()
		})
	}
}

// TestFlappingEntrySeverity: a flapping check's suppressed entry shows the
// severity it would page at on every step, whichever status came last: the
// rule's, else that of the worst status it failed with lately, also after
// a restart has lost which one that was.
func TestFlappingEntrySeverity(t *testing.T) {
	C, W, U, P := health.Critical, health.Warning, health.Unknown, health.Passing
	tests := []struct {
		name    string
		rules   []config.CheckRule
		cycle   []health.Status // repeated 15 times
		restart bool            // restart once flapping, on a passing result
		want    health.Severity
	}{
		{"critical and passing", nil, []health.Status{C, P}, false, health.SeverityCritical},
		{"passing and critical", nil, []health.Status{P, C}, false, health.SeverityCritical},
		{"unknown and passing", nil, []health.Status{U, P}, false, health.SeverityCritical},
		{"warning and passing", nil, []health.Status{W, P}, false, health.SeverityWarning},
		{"warning and critical", nil, []health.Status{W, C}, false, health.SeverityCritical},
		{"critical and warning", nil, []health.Status{C, W}, false, health.SeverityCritical},
		{"the rule's severity", []config.CheckRule{{Match: "ntp", Severity: "info"}}, []health.Status{C, P}, false, health.SeverityInfo},
		{"critical and passing across a restart", nil, []health.Status{C, P}, true, health.SeverityCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg(nil, tt.rules...)
			h := newHarness(t, c)
			flapping := false
			for i := 0; i < 15*len(tt.cycle); i++ {
				st := tt.cycle[i%len(tt.cycle)]
				h.now = h.now.Add(30 * time.Second)
				h.apply(res("eu", "web-1", "ntp", st))
				as := h.e.Alerts()
				if !flapping {
					flapping = len(as) == 1 && as[0].Suppressed == health.SuppressedByFlapping
					if flapping && tt.restart {
						for st != P { // restart on a passing result
							h.now = h.now.Add(30 * time.Second)
							i++
							st = tt.cycle[i%len(tt.cycle)]
							h.apply(res("eu", "web-1", "ntp", st))
						}
						h.restart(c)
						as = h.e.Alerts()
					}
					if !flapping {
						continue
					}
				}
				if len(as) != 1 || as[0].Suppressed != health.SuppressedByFlapping || as[0].Severity != tt.want {
					t.Fatalf("step %d (%s): alerts %+v, want the flapping entry at %s", i, st, as, tt.want)
				}
				if info := h.e.HostChecks("web-1"); len(info) != 1 || info[0].Severity != tt.want {
					t.Fatalf("step %d (%s): checks %+v, want severity %s", i, st, info, tt.want)
				}
			}
			if !flapping {
				t.Fatal("the alternation never started flapping")
			}
			h.mustVerify()
		})
	}

	// What a check failed with while it flapped ends with the flapping:
	// flapping again later, with warnings only, it pages at warning.
	t.Run("a settled check starts over", func(t *testing.T) {
		h := newHarness(t, cfg(nil))
		send := func(st health.Status) []health.Alert {
			h.now = h.now.Add(30 * time.Second)
			h.apply(res("eu", "web-1", "ntp", st))
			return h.e.Alerts()
		}
		for i := 0; i < 30; i++ {
			send([]health.Status{C, P}[i%2])
		}
		if s := h.e.Stats(); s.Flapping != 1 {
			t.Fatalf("stats %+v, want ntp flapping", s)
		}
		for i := 0; i < 30 && h.e.Stats().Flapping != 0; i++ {
			send(P)
		}
		if as := h.e.Alerts(); len(as) != 0 {
			t.Fatalf("alerts %v after settling passing, want none", alertLines(as))
		}
		flapped := false
		for i := 0; i < 30; i++ {
			as := send([]health.Status{W, P}[i%2])
			if len(as) == 1 && as[0].Suppressed == health.SuppressedByFlapping {
				flapped = true
				if as[0].Severity != health.SeverityWarning {
					t.Fatalf("step %d: flapping entry at %s, want warning", i, as[0].Severity)
				}
			}
		}
		if !flapped {
			t.Fatal("the warning alternation never started flapping")
		}
		h.mustVerify()
	})
}

// A check that flaps from its first result without ever failing hard has
// no start to show: its suppressed entry leaves since out of the JSON
// rather than say year 1.
func TestNeverHardFlappingEntryHasNoSince(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 2 }))
	for i := 0; i < 21; i++ {
		st := health.Critical
		if i%2 == 1 {
			st = health.Passing
		}
		h.now = h.now.Add(30 * time.Second)
		h.apply(res("eu", "web-1", "ntp", st))
	}
	as := h.e.Alerts()
	if len(as) != 1 || as[0].Suppressed != health.SuppressedByFlapping {
		t.Fatalf("alerts %v, want the flapping entry", alertLines(as))
	}
	raw, err := json.Marshal(as[0])
	if err != nil || strings.Contains(string(raw), "0001-01-01") || (as[0].Since.IsZero() && strings.Contains(string(raw), `"since"`)) {
		t.Errorf("entry JSON %s (%v): since must be a real time or left out", raw, err)
	}
}

func TestFlapWeights(t *testing.T) {
	tests := []struct {
		name string
		hist uint32
		want float64
	}{
		{"no change", 0, 0},
		{"newest change weighs 1.2", 1, 1.2 / 20},
		{"oldest counted change weighs 0.8", 1 << 19, 0.8 / 20},
		{"the change into the oldest result is out of the window", 1 << 20, 0},
		{"every change", 1<<20 - 1, 1},
	}
	for _, tt := range tests {
		if got := flapFraction(tt.hist); got < tt.want-1e-12 || got > tt.want+1e-12 {
			t.Errorf("%s: flapFraction(%b) = %g, want %g", tt.name, tt.hist, got, tt.want)
		}
	}
}

// TestFlapThresholdsAreStrict: flapping starts above flap.high and stops
// below flap.low, so a history worth exactly a threshold changes nothing,
// however the weights would round as binary fractions.
func TestFlapThresholdsAreStrict(t *testing.T) {
	tests := []struct {
		name      string
		high, low float64
		results   string // P passing, C critical, oldest first
		units     uint32 // the history's weighted sum at the end
		flapping  bool
	}{
		{"exactly high does not start", 0.5, 0.25, "PPPPPPPPPPPCPPCPCPCPC", 950, false},
		{"one more change starts", 0.5, 0.25, "PPPPPPPPPPPCPPCPCPCPCP", 1046, true},
		{"exactly low does not stop", 0.5, 0.4, "PCPCPCPCPCPCPCPCPCPCPCCPCCCCCCCCCCC", 760, true},
		{"one more steady result stops", 0.5, 0.4, "PCPCPCPCPCPCPCPCPCPCPCCPCCCCCCCCCCCC", 668, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.Flap.High, c.Flap.Low = tt.high, tt.low }))
			for _, c := range tt.results {
				st := health.Passing
				if c == 'C' {
					st = health.Critical
				}
				h.now = h.now.Add(30 * time.Second)
				h.apply(res("eu", "web-1", "ntp", st))
			}
			s := &h.e.hosts[0].checks[0]
			if got := flapSum(s.flapHist); got != tt.units {
				t.Fatalf("history worth %d units, want %d", got, tt.units)
			}
			if s.flappingNow() != tt.flapping {
				t.Errorf("flapping %v at %.4f (high %g, low %g), want %v", s.flappingNow(), flapFraction(s.flapHist), tt.high, tt.low, tt.flapping)
			}
			h.mustVerify()
		})
	}
}

// regionFleet reports "cpu" passing on n hosts of region eu, plus the check
// on the first running hosts, critical on the first failing of them.
func regionFleet(n, running, failing int, check string) []health.Result {
	var rs []health.Result
	for i := 0; i < n; i++ {
		rs = append(rs, res("eu", hostName(i), "cpu", health.Passing))
		if i < running {
			st := health.Passing
			if i < failing {
				st = health.Critical
			}
			rs = append(rs, res("eu", hostName(i), check, st))
		}
	}
	return rs
}

func TestRegionRollup(t *testing.T) {
	tests := []struct {
		name                            string
		hosts, running, failing, minHst int
		ratio                           float64
		region                          bool
	}{
		{"at the ratio and min_hosts", 10, 10, 3, 3, 0.3, true},
		{"below the ratio", 11, 11, 3, 3, 0.3, false},
		{"below min_hosts", 4, 4, 2, 3, 0.3, false},
		{"ratio over the hosts that run the check", 40, 5, 3, 3, 0.3, true},
		{"same failures over the whole region would not", 40, 40, 3, 3, 0.3, false},
		{"min_hosts 1", 2, 2, 1, 1, 0.5, true},
		{"ratio 1 needs every host", 4, 4, 3, 3, 1, false},
		{"ratio 1 reached", 3, 3, 3, 3, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) {
				c.ConfirmAfter = 1
				c.Region = config.Region{OutageRatio: tt.ratio, MinHosts: tt.minHst}
			}))
			h.apply(regionFleet(tt.hosts, tt.running, 0, "registry")...)
			h.now = h.now.Add(30 * time.Second)
			h.apply(regionFleet(tt.hosts, tt.running, tt.failing, "registry")...)
			var want []string
			if tt.region {
				for i := 0; i < tt.failing; i++ {
					want = append(want, fmt.Sprintf("host eu %s/registry suppressed=region", hostName(i)))
				}
				want = append(want, fmt.Sprintf("region eu registry critical %.2f", float64(tt.failing)/float64(tt.running)))
			} else {
				for i := 0; i < tt.failing; i++ {
					want = append(want, fmt.Sprintf("host eu %s critical 1 [registry]", hostName(i)))
				}
			}
			equalLines(t, "alerts", alertLines(h.e.Alerts()), want)
			wantPages := tt.failing
			if tt.region {
				wantPages = 1
			}
			if got := pages(h.journal); got != wantPages {
				t.Errorf("%d pages, want %d", got, wantPages)
			}
			h.mustVerify()
		})
	}
}

func TestRegionOutageKeepsOtherHostAlerts(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.apply(regionFleet(10, 10, 0, "conn")...)
	h.now = h.now.Add(30 * time.Second)
	rs := regionFleet(10, 10, 4, "conn")
	rs = append(rs, res("eu", hostName(0), "disk", health.Critical))
	h.apply(rs...)
	equalLines(t, "alerts", alertLines(h.e.Alerts()), []string{
		"host eu h-00 critical 1 [disk]",
		"host eu h-00/conn suppressed=region",
		"host eu h-01/conn suppressed=region",
		"host eu h-02/conn suppressed=region",
		"host eu h-03/conn suppressed=region",
		"region eu conn critical 0.40",
	})
	as := h.e.Alerts()
	if want := "conn failing on 4/10 hosts in eu"; as[len(as)-1].Summary != want {
		t.Errorf("summary %q, want %q", as[len(as)-1].Summary, want)
	}
	if got := pages(h.journal); got != 2 {
		t.Fatalf("%d pages, want the region alert and h-00's disk", got)
	}

	// Hosts recover one by one: below the threshold the region alert
	// resolves and the hosts still failing alert on their own.
	h.now = h.now.Add(30 * time.Second)
	h.apply(res("eu", hostName(3), "conn", health.Passing))
	if as := h.e.Alerts(); as[len(as)-1].Level != health.LevelRegion {
		t.Fatalf("region alert resolved at 3/10")
	}
	h.now = h.now.Add(30 * time.Second)
	out := h.apply(res("eu", hostName(2), "conn", health.Passing))
	equalLines(t, "region resolved", alertTransitions(out.Transitions), []string{
		"alert region eu//conn firing->inactive",
		"alert host eu/h-00/conn suppressed->inactive region",
		"alert host eu/h-01/conn suppressed->inactive region",
		"alert host eu/h-01/conn inactive->firing",
		"alert host eu/h-02/conn suppressed->inactive region",
	})
	equalLines(t, "after", alertLines(h.e.Alerts()), []string{
		"host eu h-00 critical 2 [conn disk]",
		"host eu h-01 critical 1 [conn]",
	})
	h.mustVerify()
}

func TestNotReporting(t *testing.T) {
	fleet := func(h *harness, n int, silent func(i int) bool) {
		var rs []health.Result
		for i := 0; i < n; i++ {
			if !silent(i) {
				rs = append(rs, res("eu", hostName(i), "cpu", health.Passing), res("eu", hostName(i), "disk", health.Passing))
			}
		}
		rs = append(rs, res("us", "api-1", "cpu", health.Passing))
		h.apply(rs...)
	}
	run := func(h *harness, n int, d time.Duration, silent func(i int) bool) {
		for end := h.now.Add(d); h.now.Before(end); {
			h.step(30 * time.Second)
			fleet(h, n, silent)
		}
	}
	none := func(int) bool { return false }

	t.Run("one host", func(t *testing.T) {
		h := newHarness(t, cfg(nil))
		run(h, 10, 2*time.Minute, none)
		silentFrom := h.now
		run(h, 10, 5*time.Minute-30*time.Second, func(i int) bool { return i == 4 })
		if len(h.e.Alerts()) != 0 {
			t.Fatalf("stale before stale_after: %v", alertLines(h.e.Alerts()))
		}
		run(h, 10, time.Minute, func(i int) bool { return i == 4 })
		as := h.e.Alerts()
		equalLines(t, "alerts", alertLines(as), []string{"host eu h-04 not_reporting critical"})
		if !as[0].Since.Equal(silentFrom.Add(5 * time.Minute)) {
			t.Errorf("since %v, want last result + stale_after %v", as[0].Since, silentFrom.Add(5*time.Minute))
		}
		if r := h.e.Regions()[0]; r.Hosts != 10 || r.ReportingHosts != 9 || r.Alerts != 1 {
			t.Errorf("region info %+v", r)
		}
		run(h, 10, 30*time.Second, none)
		if len(h.e.Alerts()) != 0 || pages(h.journal) != 1 {
			t.Fatalf("after resuming: %v, %d pages", alertLines(h.e.Alerts()), pages(h.journal))
		}
		h.mustVerify()
	})

	t.Run("whole region", func(t *testing.T) {
		h := newHarness(t, cfg(nil))
		run(h, 10, 2*time.Minute, none)
		run(h, 10, 6*time.Minute, func(int) bool { return true })
		want := []string{}
		for i := 0; i < 10; i++ {
			want = append(want, fmt.Sprintf("host eu %s/not_reporting suppressed=region", hostName(i)))
		}
		want = append(want, "region eu not_reporting critical 1.00")
		equalLines(t, "alerts", alertLines(h.e.Alerts()), want)
		if got := pages(h.journal); got != 1 {
			t.Fatalf("%d pages, want 1", got)
		}
		if s := h.e.Stats(); s.Stale != 20 || s.Firing != 1 || s.Suppressed != 10 {
			t.Fatalf("stats %+v", s)
		}
		h.mustVerify()
	})

	t.Run("a failing check that goes stale stops paging", func(t *testing.T) {
		h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
		h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-1", "cpu", health.Passing))
		for i := 0; i < 12; i++ {
			h.step(30 * time.Second)
			h.apply(res("eu", "web-1", "cpu", health.Passing))
		}
		equalLines(t, "alerts", alertLines(h.e.Alerts()), nil)
		ex := h.e.Explain("web-1", "disk")
		if ex.Phase != health.PhaseStale || ex.Pages {
			t.Fatalf("explain %+v", ex)
		}
	})
}

func TestStaleAfter(t *testing.T) {
	rules := []config.CheckRule{{Match: "backup", StaleAfter: config.Duration(26 * time.Hour)}}
	tests := []struct {
		name     string
		check    string
		interval int32
		staleAt  time.Duration
	}{
		{"engine stale_after", "cpu", 0, 5 * time.Minute},
		{"short interval keeps the floor", "cpu", 30, 5 * time.Minute},
		{"3 x a long interval", "cpu", 600, 30 * time.Minute},
		{"rule override", "backup", 600, 26 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(nil, rules...))
			r := res("eu", "web-1", tt.check, health.Passing)
			r.Interval = tt.interval
			h.apply(r)
			h.step(tt.staleAt - time.Second)
			if h.e.Stats().Stale != 0 {
				t.Fatalf("stale before %s", tt.staleAt)
			}
			out := h.step(time.Second)
			equalLines(t, "transitions", transitionLines(out.Transitions), []string{
				"check eu/web-1/" + tt.check + " passing->stale",
				"alert host eu/web-1/not_reporting inactive->firing",
			})
		})
	}
}
