package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

func TestExplain(t *testing.T) {
	// disk's rule sets only a team: its counts are the engine's.
	c := cfg(nil, config.CheckRule{Match: "lvm*", Severity: "critical", Team: "storage", ConfirmAfter: 3},
		config.CheckRule{Match: "disk", Team: "ops"})
	h := newHarness(t, c)
	crit := func(host, check string) health.Result { return res("eu", host, check, health.Critical) }
	pass := func(host, check string) health.Result { return res("eu", host, check, health.Passing) }

	// A region of 5 hosts where conn fails on 3; web-0 also fails disk
	// (pages); web-1 has a soft lvm; web-2 flaps on ntp; web-3 is in
	// maintenance failing disk; web-4 stops reporting raid.
	base := func(round int) []health.Result {
		var rs []health.Result
		for _, host := range []string{"web-0", "web-1", "web-2", "web-3", "web-4"} {
			rs = append(rs, pass(host, "cpu"))
		}
		rs = append(rs, crit("web-0", "conn"), crit("web-1", "conn"), crit("web-2", "conn"),
			pass("web-3", "conn"), pass("web-4", "conn"), crit("web-0", "disk"), crit("web-3", "disk"))
		if round%2 == 0 {
			rs = append(rs, crit("web-2", "ntp"))
		} else {
			rs = append(rs, pass("web-2", "ntp"))
		}
		if round == 0 {
			rs = append(rs, pass("web-4", "raid"))
		}
		if round == 11 {
			rs = append(rs, crit("web-1", "lvm"))
		}
		return rs
	}
	h.addWindow(health.Window{ID: "drain", Region: "eu", Host: "web-3", Until: t0.Add(time.Hour), Reason: "replacing disk"})
	for round := 0; round < 12; round++ {
		h.step(30 * time.Second)
		h.apply(base(round)...)
	}

	tests := []struct {
		name, host, check string
		found, pages      bool
		phase             string
		decision          string
		steps             []string
	}{
		{"paging", "web-0", "disk", true, true, health.PhaseHard, "disk on web-0 pages: hard critical since",
			[]string{"confirmed after 2 consecutive non-passing results (confirm_after)\n", "severity critical from its critical status", "host alert on web-0 firing"}},
		{"soft", "web-1", "lvm", true, false, health.PhaseSoft, "does not page yet: soft critical, 1 of 3",
			[]string{`1/3 consecutive non-passing results, hard at 3 (confirm_after, rule "lvm*")`, `severity critical from rule "lvm*"`}},
		{"flapping", "web-2", "ntp", true, false, health.PhaseFlapping, "does not page: it is flapping",
			[]string{"weighted state changes over the last 12 results (flapping above 50%, settled below 25%): flapping"}},
		{"suppressed by region", "web-1", "conn", true, false, health.PhaseHard, "conn fails on 3/4 hosts in eu, so the region alert stands for it",
			[]string{"region rollup conn in eu: 3/4 hosts failing (75%); a region alert needs at least 30% and 3 hosts: region alert firing"}},
		{"maintenance", "web-3", "disk", true, false, health.PhaseHard, "suppressed by maintenance window drain until",
			[]string{"maintenance window drain until", "(replacing disk)"}},
		{"stale", "web-4", "raid", true, false, health.PhaseStale, "does not page: stale, no result for 5m30s (stale_after 5m0s)",
			[]string{"stale: nothing received for 5m30s, more than its stale_after 5m0s (engine stale_after)"}},
		{"passing", "web-4", "cpu", true, false, health.PhasePassing, "cpu on web-4 does not page: it is passing", nil},
		{"unknown check", "web-0", "nope", false, false, "", "no check nope is tracked on web-0 (eu)", nil},
		{"unknown host", "db-9", "disk", false, false, "", "db-9 is not a tracked host", nil},
		{"host paging", "web-0", "", true, true, health.PhaseHard, "web-0 pages: 1 check failing on web-0 (eu): disk",
			[]string{"disk: hard critical since", "conn: hard, suppressed by region"}},
		{"host not paging", "web-2", "", true, false, health.PhaseHard, "web-2 does not page: its failing checks are suppressed (conn, ntp)", nil},
		{"host in maintenance", "web-3", "", true, false, health.PhaseHard, "suppressed (disk)",
			[]string{"maintenance window drain until", "covers every check (replacing disk)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := h.e.Explain(tt.host, tt.check)
			if ex.Found != tt.found || ex.Pages != tt.pages || ex.Phase != tt.phase {
				t.Fatalf("found/pages/phase = %v/%v/%q, want %v/%v/%q: %s", ex.Found, ex.Pages, ex.Phase, tt.found, tt.pages, tt.phase, ex.Decision)
			}
			if !strings.Contains(ex.Decision, tt.decision) {
				t.Errorf("decision %q, want it to contain %q", ex.Decision, tt.decision)
			}
			all := strings.Join(ex.Steps, "\n")
			for _, s := range tt.steps {
				if !strings.Contains(all, s) {
					t.Errorf("steps lack %q:\n%s", s, all)
				}
			}
			if tt.found && tt.check != "" && (ex.Check == nil || ex.Check.Key.Check != tt.check) {
				t.Errorf("check info %+v", ex.Check)
			}
			// The check's team is the one that routes it: its rule's, as
			// the event names none.
			if want := map[string]string{"disk": "ops", "lvm": "storage"}[tt.check]; tt.found && ex.Check != nil && ex.Check.Team != want {
				t.Errorf("check team %q, want %q", ex.Check.Team, want)
			}
		})
	}

	t.Run("region and window attached", func(t *testing.T) {
		ex := h.e.Explain("web-1", "conn")
		// web-3 is drained: out of the rollup.
		want := RegionRollup{Region: "eu", Check: "conn", Hosts: 4, Failing: 3, Ratio: 0.75, Threshold: 0.3, MinHosts: 3, Alerting: true}
		if ex.Region == nil || *ex.Region != want {
			t.Fatalf("region %+v, want %+v", ex.Region, want)
		}
		if ex.Alert == nil || ex.Alert.Suppressed != health.SuppressedByRegion {
			t.Fatalf("alert %+v", ex.Alert)
		}
		if ex := h.e.Explain("web-3", "disk"); ex.Window == nil || ex.Window.ID != "drain" {
			t.Fatalf("window %+v", ex.Window)
		}
	})

	t.Run("region", func(t *testing.T) {
		regionCases := []struct {
			name, region, check string
			found, pages        bool
			decision            string
		}{
			{"firing", "eu", "conn", true, true, "pages once for the region: conn failing on 3/4 hosts in eu"},
			{"below threshold", "eu", "disk", true, false, "no region alert for disk in eu: 1/1 hosts, below 30% or 3 hosts"},
			{"silence rollup", "eu", health.NotReporting, true, false, "no region alert for not_reporting in eu"},
			{"unknown check", "eu", "nope", false, false, `no host in eu runs a check named "nope"`},
			{"unknown region", "mars", "conn", false, false, "mars is not a tracked region"},
		}
		for _, tt := range regionCases {
			ex := h.e.ExplainRegion(tt.region, tt.check)
			if ex.Found != tt.found || ex.Pages != tt.pages || !strings.Contains(ex.Decision, tt.decision) {
				t.Errorf("%s: found %v pages %v decision %q; want %v %v containing %q",
					tt.name, ex.Found, ex.Pages, ex.Decision, tt.found, tt.pages, tt.decision)
			}
		}
		ex := h.e.ExplainRegion("eu", "conn")
		if ex.Alert == nil || ex.Alert.Level != health.LevelRegion || ex.Region == nil || !ex.Region.Alerting {
			t.Fatalf("region explanation lacks its alert or rollup: %+v", ex)
		}
	})

	t.Run("not reporting host", func(t *testing.T) {
		h := newHarness(t, cfg(nil))
		h.apply(pass("web-9", "cpu"))
		h.step(6 * time.Minute)
		ex := h.e.Explain("web-9", "")
		if !ex.Pages || ex.Phase != health.PhaseStale || !strings.Contains(ex.Decision, "web-9 pages: not reporting") {
			t.Fatalf("%+v", ex)
		}
		if ex.Region == nil || ex.Region.Check != health.NotReporting || ex.Region.Failing != 1 {
			t.Fatalf("region %+v", ex.Region)
		}
	})

	t.Run("JSON uses snake_case and RFC 3339", func(t *testing.T) {
		b, err := json.Marshal(h.e.Explain("web-0", "disk"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"decision":`, `"check":{"region":"eu","host":"web-0","check":"disk","status":"critical","hard":"critical","phase":"hard"`, `"hard_since":"2025-03-01T12:01:00Z"`, `"flap_percent":0`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("JSON lacks %s:\n%s", want, b)
			}
		}
	})
}

func TestReadSide(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.apply(res("us", "api-1", "cpu", health.Passing), res("eu", "web-2", "disk", health.Warning),
		res("eu", "web-1", "disk", health.Critical), res("eu", "web-1", "cpu", health.Passing),
		res("us", "web-1", "cpu", health.Passing))

	var failing []string
	h.e.FailingChecks(func(k health.Key, st health.Status, hard bool) {
		failing = append(failing, k.String()+" "+st.String())
	})
	slices.Sort(failing)
	equalLines(t, "failing checks", failing, []string{"eu/web-1/disk critical", "eu/web-2/disk warning"})

	regions := h.e.Regions()
	if len(regions) != 2 || regions[0].Name != "eu" || regions[0].Hosts != 2 || regions[0].FailingChecks != 2 ||
		regions[0].Alerts != 2 || !regions[0].LastEvent.Equal(t0) || regions[1].Alerts != 0 {
		t.Fatalf("regions %+v", regions)
	}
	hosts := h.e.Hosts("eu")
	if len(hosts) != 2 || hosts[0].Host != "web-1" || hosts[0].Checks != 2 || hosts[0].Failing != 1 || hosts[0].Alert == nil {
		t.Fatalf("hosts %+v", hosts)
	}
	if all := h.e.Hosts(""); len(all) != 4 || all[3].Region != "us" || all[3].Host != "web-1" {
		t.Fatalf("all hosts %+v", all)
	}
	if none := h.e.Hosts("mars"); len(none) != 0 {
		t.Fatalf("unknown region: %+v", none)
	}
	for _, p := range []struct {
		region        string
		offset, limit int
		want          []string
	}{
		{"", 0, 1, []string{"eu/web-1"}},
		{"", 1, 2, []string{"eu/web-2", "us/api-1"}},
		{"", 2, 10, []string{"us/api-1", "us/web-1"}},
		{"", 4, 10, []string{}},
		{"", 9, 10, []string{}},
		{"", 0, 0, []string{}},
		{"us", 1, 5, []string{"us/web-1"}},
		{"mars", 0, 5, []string{}},
	} {
		page, total := h.e.HostsPage(p.region, p.offset, p.limit)
		got := []string{}
		for _, hi := range page {
			got = append(got, hi.Region+"/"+hi.Host)
		}
		wantTotal := map[string]int{"": 4, "us": 2, "mars": 0}[p.region]
		if !slices.Equal(got, p.want) || total != wantTotal {
			t.Errorf("HostsPage(%q, %d, %d) = %v, %d; want %v, %d", p.region, p.offset, p.limit, got, total, p.want, wantTotal)
		}
	}
	checks := h.e.HostChecks("web-1")
	if len(checks) != 3 || checks[0].Region != "eu" || checks[0].Key.Check != "cpu" || checks[2].Region != "us" {
		t.Fatalf("host checks %+v", checks)
	}
	if s := h.e.Stats(); s != (Stats{TrackedChecks: 5, Hosts: 4, Regions: 2, Firing: 2}) {
		t.Fatalf("stats %+v", s)
	}
}

// TestReadMethodsAreReadOnly runs every read method concurrently; under
// -race any write they made would be reported.
func TestReadMethodsAreReadOnly(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.addWindow(health.Window{ID: "w", Region: "eu", Host: "h-01", Check: "c*", Until: t0.Add(time.Hour)})
	h.apply(regionFleet(10, 10, 4, "conn")...)
	h.apply(res("eu", "h-09", "disk", health.Critical))
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			_ = h.e.Alerts()
			h.e.FailingChecks(func(health.Key, health.Status, bool) {})
			_ = h.e.Regions()
			_ = h.e.Hosts("")
			_, _ = h.e.HostsPage("", 3, 5)
			_ = h.e.HostChecks("h-01")
			_ = h.e.Explain("h-01", "conn")
			_ = h.e.Explain("h-01", "")
			_ = h.e.Explain("h-09", "disk")
			_ = h.e.Windows()
			_ = h.e.Stats()
			_ = h.e.HostRegions("h-01")
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
}

// TestExplainRegionAndNotReporting: a host name in two regions is explained
// in the region asked for, and check "not_reporting" (what the host rule's
// explain link appends for a silent host) explains the host's not_reporting
// alert rather than a check of that name.
func TestExplainRegionAndNotReporting(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.apply(res("eu", "web-1", "cpu", health.Passing), res("us", "web-1", "cpu", health.Passing),
		res("us", "web-2", "cpu", health.Passing))
	h.step(3 * time.Minute)
	h.apply(res("eu", "web-1", "cpu", health.Passing), res("us", "web-2", "cpu", health.Passing))
	h.step(3 * time.Minute) // us/web-1 silent for 6m: not reporting; eu/web-1 reported 3m ago

	tests := []struct {
		name, region, host, check string
		found, pages              bool
		phase, region2            string
		decision                  string
	}{
		{"first region by name", "", "web-1", "", true, false, health.PhasePassing, "eu", "web-1 does not page: its only check is passing"},
		{"region given", "us", "web-1", "", true, true, health.PhaseStale, "us", "web-1 pages: not reporting"},
		{"not_reporting of a silent host", "us", "web-1", health.NotReporting, true, true, health.PhaseStale, "us",
			"web-1 pages: not reporting, no result from any of its 1 checks since 2025-03-01T12:00:00Z"},
		{"not_reporting of a reporting host", "eu", "web-1", health.NotReporting, true, false, health.PhasePassing, "eu",
			"web-1 has no not_reporting alert: 1 of its 1 checks are fresh; it stops reporting if none reports by 2025-03-01T12:08:00Z"},
		{"not_reporting without region: first region", "", "web-1", health.NotReporting, true, false, health.PhasePassing, "eu", "web-1 has no not_reporting alert"},
		{"host not in that region", "us", "web-3", "", false, false, "", "us", "web-3 is not a tracked host in us"},
		{"unknown region", "mars", "web-1", "cpu", false, false, "", "mars", "web-1 is not a tracked host in mars"},
		{"check in the region given", "us", "web-1", "cpu", true, false, health.PhaseStale, "us", "cpu on web-1 does not page"},
		{"check without region: first region", "", "web-1", "cpu", true, false, health.PhasePassing, "eu", "cpu on web-1 does not page"},
		{"host in one region only", "", "web-2", "", true, false, health.PhasePassing, "us", "web-2 does not page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := h.e.ExplainIn(tt.region, tt.host, tt.check)
			if ex.Found != tt.found || ex.Pages != tt.pages || ex.Phase != tt.phase || ex.Key.Region != tt.region2 ||
				!strings.HasPrefix(ex.Decision, tt.decision) {
				t.Fatalf("got found=%v pages=%v phase=%q region=%q decision %q\nwant found=%v pages=%v phase=%q region=%q decision %q...",
					ex.Found, ex.Pages, ex.Phase, ex.Key.Region, ex.Decision, tt.found, tt.pages, tt.phase, tt.region2, tt.decision)
			}
			// Without a region, the answer names the other regions that
			// have a host of that name, first thing.
			wantAlso := tt.region == "" && tt.host == "web-1"
			if wantAlso != (len(ex.AlsoIn) == 1 && ex.AlsoIn[0] == "us") {
				t.Fatalf("also_in %q, want [us] only when the region was not given for web-1", ex.AlsoIn)
			}
			if wantAlso && (len(ex.Steps) == 0 || !strings.HasPrefix(ex.Steps[0], "a host named web-1 is also tracked in us: this explains the one in eu")) {
				t.Fatalf("steps %q, want the other region named first", ex.Steps)
			}
			if tt.check == health.NotReporting && tt.found {
				if ex.Region == nil || ex.Region.Check != health.NotReporting || ex.Region.Hosts != map[string]int{"eu": 1, "us": 2}[tt.region2] {
					t.Fatalf("region rollup %+v, want the region's not_reporting hosts", ex.Region)
				}
				if tt.pages && (ex.Alert == nil || ex.Alert.Check != health.NotReporting) {
					t.Fatalf("alert %+v, want the not_reporting alert", ex.Alert)
				}
			}
		})
	}
	if ex := h.e.Explain("web-1", health.NotReporting); !ex.Found || ex.Key.Region != "eu" {
		t.Fatalf("Explain without region: %+v", ex)
	}
	if ex := h.e.ExplainRegion("us", health.NotReporting); !ex.Found || ex.Region.Failing != 1 || ex.Pages {
		t.Fatalf("region not_reporting: %+v", ex)
	}
}

// A flapping check pages at the worst status it flapped to, and explain
// says so when the latest result was milder.
func TestExplainFlappingSeverity(t *testing.T) {
	h := newHarness(t, cfg(nil))
	for i := 0; i < 30; i++ {
		h.now = h.now.Add(30 * time.Second)
		h.apply(res("eu", "web-1", "ntp", []health.Status{health.Critical, health.Warning}[i%2]))
	}
	ex := h.e.Explain("web-1", "ntp")
	if ex.Phase != health.PhaseFlapping || ex.Check == nil || ex.Check.Status != health.Warning {
		t.Fatalf("phase %s, check %+v: want flapping, last result warning", ex.Phase, ex.Check)
	}
	if all := strings.Join(ex.Steps, "\n"); !strings.Contains(all, "severity critical from the worst status it flapped to, critical") {
		t.Fatalf("steps lack the flapping severity's source:\n%s", all)
	}
	// A restart does not keep the worst status: critical until the next
	// failing result, and explain says why.
	h.restart(cfg(nil))
	ex = h.e.Explain("web-1", "ntp")
	if all := strings.Join(ex.Steps, "\n"); ex.Phase != health.PhaseFlapping ||
		!strings.Contains(all, "severity critical as for a failing status not known to be milder: it flapped before a restart") {
		t.Fatalf("after a restart: phase %s, steps:\n%s", ex.Phase, all)
	}
}

// A check that flapped and then held one status stays flapping until its
// share of state changes falls below flap.low; explain names the mark it
// has yet to pass, not the one it started above.
func TestExplainFlappingUntilBelowLow(t *testing.T) {
	h := newHarness(t, cfg(nil))
	var decisions []string
	for i := 0; i < 40; i++ {
		h.now = h.now.Add(30 * time.Second)
		st := health.Critical
		if i < 14 && i%2 == 1 {
			st = health.Passing
		}
		h.apply(res("eu", "web-1", "ntp", st))
		if ex := h.e.Explain("web-1", "ntp"); ex.Phase == health.PhaseFlapping {
			decisions = append(decisions, ex.Decision)
		}
	}
	var above, settling bool
	for _, d := range decisions {
		above = above || strings.Contains(d, "above flap.high 50%")
		settling = settling || strings.Contains(d, "not yet below flap.low 25%")
		if pct := flapPercentIn(t, d); strings.Contains(d, "above") && pct <= 50 {
			t.Errorf("%q: says above flap.high at %d%%", d, pct)
		}
	}
	if !above || !settling {
		t.Fatalf("flapping decisions never said both marks:\n%s", strings.Join(decisions, "\n"))
	}
	if ex := h.e.Explain("web-1", "ntp"); ex.Phase == health.PhaseFlapping || !ex.Pages {
		t.Fatalf("after settling critical: phase %s, pages %v: %s", ex.Phase, ex.Pages, ex.Decision)
	}
}

// flapPercentIn reads the "(N% state changes" figure of a flapping decision.
func flapPercentIn(t *testing.T, decision string) int {
	t.Helper()
	var pct int
	i := strings.Index(decision, "(")
	if i < 0 {
		t.Fatalf("no percentage in %q", decision)
	}
	if _, err := fmt.Sscanf(decision[i:], "(%d%%", &pct); err != nil {
		t.Fatalf("no percentage in %q: %v", decision, err)
	}
	return pct
}

// A recovering check's count is credited to its rule only when the rule
// sets recover_after.
func TestExplainRecoverAfterSource(t *testing.T) {
	c := cfg(func(e *config.Engine) { e.RecoverAfter = 2 },
		config.CheckRule{Match: "disk", Team: "ops"}, config.CheckRule{Match: "raid", RecoverAfter: 3})
	h := newHarness(t, c)
	for _, st := range []health.Status{health.Critical, health.Critical, health.Passing} {
		h.now = h.now.Add(30 * time.Second)
		h.apply(res("eu", "web-1", "disk", st), res("eu", "web-1", "raid", st))
	}
	for check, want := range map[string]string{
		"disk": "recovering: 1/2 consecutive passing results (recover_after)",
		"raid": `recovering: 1/3 consecutive passing results (recover_after, rule "raid")`,
	} {
		if all := strings.Join(h.e.Explain("web-1", check).Steps, "\n"); !strings.Contains(all, want) {
			t.Errorf("%s: steps lack %q:\n%s", check, want, all)
		}
	}
}
