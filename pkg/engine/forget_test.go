package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// keyLines renders keys as region/host/check.
func keyLines(ks []health.Key) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.String()
	}
	return out
}

// reportEvery has the hosts of eu report cpu and disk passing every 30 s
// for d, except the silent ones; it ticks before each round.
func reportEvery(h *harness, n int, d time.Duration, silent func(i int) bool) {
	for end := h.now.Add(d); h.now.Before(end); {
		h.step(30 * time.Second)
		var rs []health.Result
		for i := 0; i < n; i++ {
			if !silent(i) {
				rs = append(rs, res("eu", hostName(i), "cpu", health.Passing), res("eu", hostName(i), "disk", health.Passing))
			}
		}
		if len(rs) > 0 {
			h.apply(rs...)
		}
	}
}

func TestForgetNotReportingHost(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.apply(res("us", "h-04", "cpu", health.Passing)) // the same name in another region stays
	reportEvery(h, 10, 2*time.Minute, func(int) bool { return false })
	reportEvery(h, 10, 6*time.Minute, func(i int) bool { return i == 4 })
	// us/h-04 went silent too; forgetting eu/h-04 leaves it alone.
	equalLines(t, "before", alertLines(h.e.Alerts()), []string{
		"host eu h-04 not_reporting critical",
		"host us h-04 not_reporting critical",
	})
	if got := h.e.HostRegions("h-04"); !slices.Equal(got, []string{"eu", "us"}) {
		t.Fatalf("HostRegions = %v", got)
	}
	seq := h.e.Seq()

	out, keys, ok := h.forget("eu", "h-04")
	if !ok {
		t.Fatal("ForgetHost: host not found")
	}
	equalLines(t, "keys", keyLines(keys), []string{"eu/h-04/cpu", "eu/h-04/disk"})
	equalLines(t, "Outcome.Forgotten", keyLines(out.Forgotten), keyLines(keys))
	equalLines(t, "transitions", transitionLines(out.Transitions), []string{
		"check eu/h-04/cpu stale->forgotten",
		"check eu/h-04/disk stale->forgotten",
		"alert host eu/h-04/not_reporting firing->inactive forgotten",
	})
	if out.Transitions[0].Seq != seq+1 || len(out.Changed) != 0 {
		t.Errorf("first seq %d after %d, %d states changed", out.Transitions[0].Seq, seq, len(out.Changed))
	}
	equalLines(t, "after", alertLines(h.e.Alerts()), []string{"host us h-04 not_reporting critical"})
	if s := h.e.Stats(); s != (Stats{TrackedChecks: 19, Hosts: 10, Regions: 2, Firing: 1, Stale: 1}) {
		t.Errorf("stats %+v", s)
	}
	if r := h.e.Regions()[0]; r.Hosts != 9 || r.ReportingHosts != 9 || r.Alerts != 0 {
		t.Errorf("region %+v", r)
	}
	for _, hi := range h.e.Hosts("") {
		if hi.Region == "eu" && hi.Host == "h-04" {
			t.Errorf("forgotten host still listed: %+v", hi)
		}
	}
	if ex := h.e.Explain("h-04", ""); ex.Key.Region != "us" {
		t.Errorf("explain h-04 finds region %q, want the us host", ex.Key.Region)
	}
	if got := h.e.HostRegions("h-04"); !slices.Equal(got, []string{"us"}) {
		t.Errorf("HostRegions after = %v", got)
	}
	h.mustVerify()

	// Nothing of it is left for the next ticks or a checkpoint.
	if out := h.step(time.Hour); slices.ContainsFunc(out.Transitions, func(t health.Transition) bool {
		return t.Key.Host == "h-04" && t.Key.Region == "eu"
	}) {
		t.Errorf("forgotten host in later transitions: %v", transitionLines(out.Transitions))
	}
	h.e.Checkpoint(func(cs *health.CheckState) {
		if cs.Region == "eu" && cs.Host == "h-04" {
			t.Errorf("checkpoint writes forgotten %s", cs.Key)
		}
	})
	h.mustVerify()
}

func TestForgetReevaluatesRegionAlert(t *testing.T) {
	tests := []struct {
		name            string
		hosts, failing  int
		forget          string
		wantTransitions []string
		wantAlerts      []string
	}{
		{
			name: "outage drops below min_hosts", hosts: 10, failing: 3, forget: "h-00",
			wantTransitions: []string{
				"check eu/h-00/conn hard->forgotten",
				"check eu/h-00/cpu passing->forgotten",
				"alert region eu//conn firing->inactive",
				"alert host eu/h-00/conn suppressed->inactive region",
				"alert host eu/h-01/conn suppressed->inactive region",
				"alert host eu/h-01/conn inactive->firing",
				"alert host eu/h-02/conn suppressed->inactive region",
				"alert host eu/h-02/conn inactive->firing",
			},
			wantAlerts: []string{"host eu h-01 critical 1 [conn]", "host eu h-02 critical 1 [conn]"},
		},
		{
			name: "outage stays over the thresholds", hosts: 10, failing: 4, forget: "h-03",
			wantTransitions: []string{
				"check eu/h-03/conn hard->forgotten",
				"check eu/h-03/cpu passing->forgotten",
				"alert host eu/h-03/conn suppressed->inactive region",
			},
			wantAlerts: []string{
				"host eu h-00/conn suppressed=region",
				"host eu h-01/conn suppressed=region",
				"host eu h-02/conn suppressed=region",
				"region eu conn critical 0.33",
			},
		},
		{
			// 3 of 11 is under 0.3; 3 of the 10 left is not.
			name: "a passing host gone brings the ratio up", hosts: 11, failing: 3, forget: "h-10",
			wantTransitions: []string{
				"check eu/h-10/conn passing->forgotten",
				"check eu/h-10/cpu passing->forgotten",
				"alert region eu//conn inactive->firing",
				"alert host eu/h-00/conn inactive->suppressed region",
				"alert host eu/h-00/conn firing->inactive",
				"alert host eu/h-01/conn inactive->suppressed region",
				"alert host eu/h-01/conn firing->inactive",
				"alert host eu/h-02/conn inactive->suppressed region",
				"alert host eu/h-02/conn firing->inactive",
			},
			wantAlerts: []string{
				"host eu h-00/conn suppressed=region",
				"host eu h-01/conn suppressed=region",
				"host eu h-02/conn suppressed=region",
				"region eu conn critical 0.30",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
			h.apply(regionFleet(tt.hosts, tt.hosts, 0, "conn")...)
			h.now = h.now.Add(30 * time.Second)
			h.apply(regionFleet(tt.hosts, tt.hosts, tt.failing, "conn")...)
			stats := h.e.Stats()

			h.now = h.now.Add(time.Second)
			out, keys, ok := h.forget("eu", tt.forget)
			if !ok || len(keys) != 2 {
				t.Fatalf("ForgetHost: ok %v, keys %v", ok, keys)
			}
			equalLines(t, "transitions", transitionLines(out.Transitions), tt.wantTransitions)
			equalLines(t, "alerts", alertLines(h.e.Alerts()), tt.wantAlerts)
			if s := h.e.Stats(); s.TrackedChecks != stats.TrackedChecks-2 || s.Hosts != stats.Hosts-1 {
				t.Errorf("stats %+v, before %+v", s, stats)
			}
			h.mustVerify()
		})
	}
}

// TestForgetEndsEveryKindOfAlert forgets hosts whose alerts are of each
// kind and checks that the counters follow.
func TestForgetEndsEveryKindOfAlert(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.addWindow(health.Window{ID: "drain", Region: "eu", Host: "drained", Until: t0.Add(24 * time.Hour), Reason: "drain"})
	for i := 0; i < 14; i++ {
		h.now = h.now.Add(30 * time.Second)
		flap := health.Passing
		if i%2 == 1 {
			flap = health.Critical
		}
		r := res("eu", "broken", "raid", health.Critical)
		r.Output = []byte("degraded")
		h.apply(r, res("eu", "broken", "lvm", health.Warning), res("eu", "drained", "disk", health.Critical),
			res("eu", "flappy", "ntp", flap), res("eu", "fine", "cpu", health.Passing))
	}
	equalLines(t, "before", alertLines(h.e.Alerts()), []string{
		"host eu broken critical 2 [lvm raid]",
		"host eu drained/disk suppressed=maintenance",
		"host eu flappy/ntp suppressed=flapping",
	})
	if s := h.e.Stats(); s.Flapping != 1 || s.Firing != 1 || s.Suppressed != 2 {
		t.Fatalf("stats before %+v", s)
	}
	tests := []struct {
		host string
		want []string
	}{
		{"broken", []string{
			"check eu/broken/lvm hard->forgotten",
			"check eu/broken/raid hard->forgotten",
			"alert host eu/broken/lvm firing->inactive forgotten",
		}},
		{"drained", []string{
			"check eu/drained/disk hard->forgotten",
			"alert host eu/drained/disk suppressed->inactive maintenance",
		}},
		{"flappy", []string{
			"check eu/flappy/ntp flapping->forgotten",
			"alert host eu/flappy/ntp suppressed->inactive flapping",
		}},
	}
	for _, tt := range tests {
		h.now = h.now.Add(time.Second)
		out, _, ok := h.forget("eu", tt.host)
		if !ok {
			t.Fatalf("%s: not found", tt.host)
		}
		equalLines(t, tt.host, transitionLines(out.Transitions), tt.want)
		h.mustVerify()
	}
	equalLines(t, "after", alertLines(h.e.Alerts()), nil)
	if s := h.e.Stats(); s != (Stats{TrackedChecks: 1, Hosts: 1, Regions: 1}) {
		t.Errorf("stats after %+v", s)
	}
	if r := h.e.Regions()[0]; r.FailingChecks != 0 || r.Hosts != 1 || r.ReportingHosts != 1 {
		t.Errorf("region %+v", r)
	}
	var failing []string
	h.e.FailingChecks(func(k health.Key, _ health.Status, _ bool) { failing = append(failing, k.String()) })
	equalLines(t, "failing checks", failing, nil)
}

func TestForgetUnknownHost(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.apply(res("eu", "web-1", "cpu", health.Passing), res("us", "web-2", "cpu", health.Passing))
	seq := h.e.Seq()
	for _, k := range []health.Key{
		{Region: "mars", Host: "web-1"}, // unknown region
		{Region: "eu", Host: "web-9"},   // unknown host
		{Region: "eu", Host: "web-2"},   // a host of another region
		{Region: "eu", Host: ""},
	} {
		out, keys, ok := h.forget(k.Region, k.Host)
		if ok || keys != nil || len(out.Transitions) != 0 || len(out.Forgotten) != 0 || len(out.ForgottenHosts) != 0 {
			t.Errorf("%s/%s: ok %v, keys %v, %d transitions", k.Region, k.Host, ok, keys, len(out.Transitions))
		}
	}
	if h.e.Seq() != seq || h.e.Stats().TrackedChecks != 2 {
		t.Fatalf("unknown hosts changed the engine: seq %d, %+v", h.e.Seq(), h.e.Stats())
	}
	// Forgetting twice: the second time the host is unknown.
	if _, _, ok := h.forget("eu", "web-1"); !ok {
		t.Fatal("first forget failed")
	}
	if _, _, ok := h.forget("eu", "web-1"); ok {
		t.Fatal("second forget found the host again")
	}
	h.mustVerify()
}

func TestForgetAfterTick(t *testing.T) {
	forgetAfter := time.Hour
	c := cfg(func(c *config.Engine) { c.ForgetAfter = config.Duration(forgetAfter) })

	t.Run("silent host", func(t *testing.T) {
		h := newHarness(t, c)
		reportEvery(h, 6, time.Minute, func(int) bool { return false })
		lastSeen := h.now
		// h-05 goes silent except for one check of h-04 that stops too: a
		// host is forgotten only when every check is silent.
		for h.now.Add(30 * time.Second).Before(lastSeen.Add(forgetAfter)) {
			h.now = h.now.Add(30 * time.Second)
			if out := h.tick(); len(out.Forgotten) != 0 {
				t.Fatalf("%s after the last result: forgot %v", h.now.Sub(lastSeen), keyLines(out.Forgotten))
			}
			var rs []health.Result
			for i := 0; i < 5; i++ {
				rs = append(rs, res("eu", hostName(i), "cpu", health.Passing))
				if i != 4 {
					rs = append(rs, res("eu", hostName(i), "disk", health.Passing))
				}
			}
			h.apply(rs...)
		}
		h.now = lastSeen.Add(forgetAfter - time.Second)
		if out := h.tick(); len(out.Forgotten) != 0 {
			t.Fatalf("forgotten before forget_after: %v", keyLines(out.Forgotten))
		}
		equalLines(t, "silent", alertLines(h.e.Alerts()), []string{"host eu h-05 not_reporting critical"})
		h.now = lastSeen.Add(forgetAfter)
		out := h.tick()
		equalLines(t, "forgotten", keyLines(out.Forgotten), []string{"eu/h-05/cpu", "eu/h-05/disk"})
		equalLines(t, "transitions", transitionLines(out.Transitions), []string{
			"check eu/h-05/cpu stale->forgotten",
			"check eu/h-05/disk stale->forgotten",
			"alert host eu/h-05/not_reporting firing->inactive forgotten",
		})
		if s := h.e.Stats(); s.Hosts != 5 || s.TrackedChecks != 10 || s.Stale != 1 {
			t.Errorf("stats %+v: want h-04's silent disk kept, stale", s)
		}
		h.mustVerify()
	})

	t.Run("silent region", func(t *testing.T) {
		h := newHarness(t, c)
		reportEvery(h, 5, time.Minute, func(int) bool { return false })
		lastSeen := h.now
		h.apply(res("us", "api-1", "cpu", health.Passing))
		for h.now.Before(lastSeen.Add(forgetAfter - time.Minute)) {
			h.step(time.Minute)
			h.apply(res("us", "api-1", "cpu", health.Passing))
		}
		want := []string{}
		for i := 0; i < 5; i++ {
			want = append(want, fmt.Sprintf("host eu %s/not_reporting suppressed=region", hostName(i)))
		}
		equalLines(t, "silent", alertLines(h.e.Alerts()), append(want, "region eu not_reporting critical 1.00"))
		out := h.step(time.Minute)
		if len(out.Forgotten) != 10 {
			t.Fatalf("forgot %v, want the whole region", keyLines(out.Forgotten))
		}
		equalLines(t, "alert transitions", alertTransitions(out.Transitions), []string{
			"alert region eu//not_reporting firing->inactive",
			"alert host eu/h-00/not_reporting suppressed->inactive region",
			"alert host eu/h-01/not_reporting suppressed->inactive region",
			"alert host eu/h-02/not_reporting suppressed->inactive region",
			"alert host eu/h-03/not_reporting suppressed->inactive region",
			"alert host eu/h-04/not_reporting suppressed->inactive region",
		})
		if rs := h.e.Regions(); len(rs) != 2 || rs[0].Hosts != 0 || rs[0].Alerts != 0 {
			t.Errorf("regions %+v", rs)
		}
		h.mustVerify()
	})

	t.Run("restart grants a grace period", func(t *testing.T) {
		h := newHarness(t, c)
		reportEvery(h, 3, time.Minute, func(int) bool { return false })
		// Down for twice forget_after: nothing is forgotten for the outage
		// of healthrouter itself.
		h.now = h.now.Add(2 * forgetAfter)
		h.restart(c)
		restarted := h.now
		reportEvery(h, 3, forgetAfter-time.Minute, func(i int) bool { return i == 2 })
		if s := h.e.Stats(); s.Hosts != 3 {
			t.Fatalf("hosts forgotten during the grace period: %+v", s)
		}
		h.now = restarted.Add(forgetAfter)
		out := h.tick()
		equalLines(t, "forgotten", keyLines(out.Forgotten), []string{"eu/h-02/cpu", "eu/h-02/disk"})
		h.mustVerify()
	})

	t.Run("never by default", func(t *testing.T) {
		h := newHarness(t, cfg(nil))
		h.apply(res("eu", "web-1", "cpu", health.Passing))
		h.step(365 * 24 * time.Hour)
		if s := h.e.Stats(); s.Hosts != 1 {
			t.Fatalf("forgotten with forget_after 0: %+v", s)
		}
	})
}

func TestForgottenHostStartsFresh(t *testing.T) {
	h := newHarness(t, cfg(nil)) // confirm_after 2
	send := func(st health.Status, eventID string) *Outcome {
		h.now = h.now.Add(30 * time.Second)
		r := res("eu", "web-1", "disk", st)
		r.EventID = []byte(eventID)
		return h.apply(r, res("eu", "web-2", "disk", health.Passing))
	}
	send(health.Critical, "e1")
	send(health.Critical, "e2")
	equalLines(t, "before", alertLines(h.e.Alerts()), []string{"host eu web-1 critical 1 [disk]"})
	h.now = h.now.Add(time.Second)
	h.forget("eu", "web-1")
	equalLines(t, "forgotten", alertLines(h.e.Alerts()), nil)

	// The retry of the last event is no duplicate: nothing is remembered.
	out := send(health.Critical, "e2")
	if out.Accepted != 2 || out.Duplicates != 0 {
		t.Fatalf("accepted %d, duplicates %d", out.Accepted, out.Duplicates)
	}
	equalLines(t, "first result", transitionLines(out.Transitions), []string{"check eu/web-1/disk passing->soft"})
	if len(out.Changed) != 1 || out.Changed[0].Key.Host != "web-1" || out.Changed[0].Attempts != 1 {
		t.Fatalf("changed %+v", out.Changed)
	}
	if got := h.e.HostChecks("web-1"); len(got) != 1 || got[0].FlapCount != 1 || got[0].Phase != health.PhaseSoft {
		t.Fatalf("checks %+v", got)
	}
	out = send(health.Critical, "e3")
	equalLines(t, "confirmed", transitionLines(out.Transitions), []string{
		"check eu/web-1/disk soft->hard",
		"alert host eu/web-1/disk inactive->firing",
	})
	if s := h.e.Stats(); s.Hosts != 2 || s.TrackedChecks != 2 || s.Firing != 1 {
		t.Errorf("stats %+v", s)
	}
	h.mustVerify()
}

// TestForgottenHostIgnoresLateResults: results about a forgotten host from
// before it was forgotten (a batch that waited in a buffer) are ignored,
// across a restart too, instead of bringing the host back to go silent and
// page; a newer result tracks it again.
func TestForgottenHostIgnoresLateResults(t *testing.T) {
	c := cfg(nil) // confirm_after 2
	h := newHarness(t, c)
	at := func(host string, st health.Status, when time.Time) health.Result {
		r := res("eu", host, "disk", st)
		r.Time = when.UnixNano()
		return r
	}
	h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-2", "disk", health.Passing))
	generated := h.now // the late batch's results were taken now
	h.now = h.now.Add(30 * time.Second)
	forgotAt := h.now
	out, _, ok := h.forget("eu", "web-1")
	if !ok {
		t.Fatal("ForgetHost: host not found")
	}
	if want := []health.ForgottenHost{{Region: "eu", Host: "web-1", At: forgotAt}}; !slices.Equal(out.ForgottenHosts, want) {
		t.Fatalf("Outcome.ForgottenHosts %+v, want %+v", out.ForgottenHosts, want)
	}

	late := func(when string) {
		t.Helper()
		h.now = h.now.Add(10 * time.Second)
		out := h.apply(at("web-1", health.Critical, generated), at("web-1", health.Critical, forgotAt.Add(-time.Nanosecond)),
			at("web-2", health.Passing, h.now))
		if out.Accepted != 1 || out.Duplicates != 2 || len(out.Transitions) != 0 || len(out.NewRegions) != 0 {
			t.Fatalf("%s: accepted %d, duplicates %d, transitions %q", when, out.Accepted, out.Duplicates, transitionLines(out.Transitions))
		}
		if got := h.e.HostRegions("web-1"); got != nil {
			t.Fatalf("%s: late results brought web-1 back in %v", when, got)
		}
		ex := h.e.ExplainIn("eu", "web-1", "")
		if want := "web-1 was forgotten in eu at " + forgotAt.Format(time.RFC3339); !strings.HasPrefix(ex.Decision, want) {
			t.Fatalf("%s: explain %q, want it to start %q", when, ex.Decision, want)
		}
		if ex := h.e.Explain("web-1", ""); ex.Key.Region != "eu" {
			t.Fatalf("%s: explain without a region: %+v", when, ex)
		}
	}
	late("live")
	h.restart(c)
	late("after a restart")

	// A result taken at or after the removal is the host back in service.
	h.now = h.now.Add(10 * time.Second)
	out = h.apply(at("web-1", health.Critical, forgotAt))
	if out.Accepted != 1 || out.Duplicates != 0 {
		t.Fatalf("a new result: accepted %d, duplicates %d", out.Accepted, out.Duplicates)
	}
	equalLines(t, "back", transitionLines(out.Transitions), []string{"check eu/web-1/disk passing->soft"})
	h.mustVerify()
}

// TestForgottenHostsBounded: past the bound, the hosts forgotten longest
// ago are dropped first, and their late results count again.
func TestForgottenHostsBounded(t *testing.T) {
	h := newHarness(t, cfg(nil))
	h.e.tombstonesMax = 4
	for i := range 6 {
		h.apply(res("eu", hostName(i), "cpu", health.Passing))
	}
	taken := h.now
	for i := range 6 {
		h.now = h.now.Add(time.Second)
		if _, _, ok := h.forget("eu", hostName(i)); !ok {
			t.Fatalf("forget %s", hostName(i))
		}
	}
	if len(h.e.tombstones) != 4 {
		t.Fatalf("%d forgotten hosts remembered, want 4", len(h.e.tombstones))
	}
	var rs []health.Result
	for i := range 6 {
		r := res("eu", hostName(i), "cpu", health.Passing)
		r.Time = taken.UnixNano()
		rs = append(rs, r)
	}
	h.now = h.now.Add(time.Second)
	if out := h.apply(rs...); out.Accepted != 2 || out.Duplicates != 4 {
		t.Fatalf("accepted %d, duplicates %d; want the two forgotten first back", out.Accepted, out.Duplicates)
	}
	if got := h.e.HostRegions(hostName(0)); len(got) != 1 || len(h.e.HostRegions(hostName(1))) != 1 {
		t.Fatalf("the hosts forgotten first are not back")
	}
}

func TestForgetAfterValidated(t *testing.T) {
	_, err := New(cfg(func(c *config.Engine) { c.ForgetAfter = -1 }))
	if err == nil {
		t.Fatal("negative forget_after accepted")
	}
}

func TestForgetHostBeforeStartPanics(t *testing.T) {
	e, err := New(cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ForgetHost before Start did not panic")
		}
	}()
	e.ForgetHost("eu", "web-1", t0, &Outcome{})
}

// TestForgetWaitsForStaleChecks: a host is forgotten only once every check
// of it is past its own stale deadline as well as forget_after. A backup
// check reporting every 2 h (stale after 6 h) is not silent an hour after
// its last result, and its page must not resolve as forgotten then.
func TestForgetWaitsForStaleChecks(t *testing.T) {
	tests := []struct {
		name       string
		interval   int32         // the backup check's, seconds
		rule       time.Duration // a rule's stale_after for it, 0 for none
		forgetBy   time.Duration // silence after which the host is gone
		notForgets time.Duration // silence after which it is still there
	}{
		{"interval beyond forget_after", 7200, 0, 6*time.Hour + time.Minute, 6*time.Hour - time.Minute},
		{"rule stale_after beyond forget_after", 0, 3 * time.Hour, 3*time.Hour + time.Minute, 3*time.Hour - time.Minute},
		{"forget_after beyond staleness", 60, 0, time.Hour + time.Minute, time.Hour - time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []config.CheckRule
			if tt.rule > 0 {
				rules = append(rules, config.CheckRule{Match: "backup", StaleAfter: config.Duration(tt.rule)})
			}
			h := newHarness(t, cfg(func(e *config.Engine) {
				e.ConfirmAfter = 1
				e.ForgetAfter = config.Duration(time.Hour)
			}, rules...))
			r := res("eu", "batch-1", "backup", health.Critical)
			r.Interval = tt.interval
			h.apply(r, res("eu", "batch-1", "cpu", health.Passing))
			last := h.now
			for h.now.Sub(last) < tt.notForgets {
				h.step(time.Minute)
			}
			if got := h.e.HostRegions("batch-1"); len(got) != 1 {
				t.Fatalf("forgotten after %s of silence, before its checks were stale", h.now.Sub(last))
			}
			for h.now.Sub(last) < tt.forgetBy {
				h.step(time.Minute)
			}
			if got := h.e.HostRegions("batch-1"); len(got) != 0 {
				t.Fatalf("still tracked after %s of silence", h.now.Sub(last))
			}
			h.mustVerify()
		})
	}
}
