package engine

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// incidentFleet reports a fleet in two regions with an incident of every
// kind: a host alert, a region outage, a silent host, a flapping check and
// a host in maintenance.
func incidentFleet(h *harness, round int) {
	var rs []health.Result
	for i := 0; i < 6; i++ {
		host := hostName(i)
		if i == 5 && round > 2 {
			continue // goes silent
		}
		rs = append(rs, res("eu", host, "cpu", health.Passing))
		disk := health.Passing
		if i == 0 && round > 0 {
			disk = health.Critical
		}
		r := res("eu", host, "disk", disk)
		r.Output = []byte(fmt.Sprintf("disk round %d", round))
		r.Labels = []health.ResultLabel{{Key: "rack", Value: []byte("r1")}}
		rs = append(rs, r)
		ntp := health.Passing
		if i == 1 && round%2 == 1 {
			ntp = health.Critical
		}
		rs = append(rs, res("eu", host, "ntp", ntp))
		if i == 2 {
			rs = append(rs, res("eu", host, "raid", health.Critical))
		}
	}
	for i := 0; i < 4; i++ {
		conn := health.Passing
		if round > 0 {
			conn = health.Critical
		}
		rs = append(rs, res("us", hostName(i), "conn", conn))
	}
	h.apply(rs...)
}

func TestRestart(t *testing.T) {
	c := cfg(nil)
	h := newHarness(t, c)
	h.addWindow(health.Window{ID: "drain-2", Region: "eu", Host: hostName(2), Until: t0.Add(3 * time.Hour), Reason: "drain"})
	for round := 0; round < 40; round++ {
		h.step(30 * time.Second)
		incidentFleet(h, round)
	}
	before := h.e.Alerts()
	equalLines(t, "before restart", alertLines(before), []string{
		"host eu h-00 critical 1 [disk]",
		"host eu h-01/ntp suppressed=flapping",
		"host eu h-02/raid suppressed=maintenance",
		"host eu h-05 not_reporting critical",
		"host us h-00/conn suppressed=region",
		"host us h-01/conn suppressed=region",
		"host us h-02/conn suppressed=region",
		"host us h-03/conn suppressed=region",
		"region us conn critical 1.00",
	})
	seq, stats := h.e.Seq(), h.e.Stats()
	checksBefore := h.e.HostChecks(hostName(0))

	// Down for ten minutes: longer than stale_after.
	h.now = h.now.Add(10 * time.Minute)
	h.restart(c)
	if h.e.Seq() != seq {
		t.Fatalf("Start changed the sequence: %d, want %d", h.e.Seq(), seq)
	}
	after := h.e.Alerts()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("alerts differ after restart:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := h.e.Stats(); got != stats {
		t.Fatalf("stats %+v, want %+v", got, stats)
	}
	if got := h.e.HostChecks(hostName(0)); !reflect.DeepEqual(got, checksBefore) {
		t.Fatalf("host checks differ:\n%+v\n%+v", got, checksBefore)
	}

	// Grace: nothing becomes stale before restart + stale_after.
	if out := h.step(5*time.Minute - time.Second); len(out.Transitions) != 0 {
		t.Fatalf("transitions during the grace period: %v", transitionLines(out.Transitions))
	}
	out := h.step(time.Second)
	if len(out.Transitions) == 0 || !strings.Contains(strings.Join(alertTransitions(out.Transitions), "\n"), "region eu//not_reporting inactive->firing") {
		t.Fatalf("silent fleet after the grace period: %v", transitionLines(out.Transitions))
	}
	if out.Transitions[0].Seq != seq+1 {
		t.Fatalf("first transition after restart has seq %d, want %d", out.Transitions[0].Seq, seq+1)
	}
	h.mustVerify()
}

// TestRestartExpiredWindow: a window that ended while the engine was down
// still covers its alert at Start (Start journals nothing, so the alert set
// is the acknowledged one), and the first Tick expires it as a live expiry
// would, journaling the alert it releases.
func TestRestartExpiredWindow(t *testing.T) {
	c := cfg(func(e *config.Engine) { e.ConfirmAfter = 1 })
	h := newHarness(t, c)
	h.addWindow(health.Window{ID: "ended", Region: "eu", Host: "web-1", Until: t0.Add(time.Minute), Reason: "reboot"})
	h.addWindow(health.Window{ID: "open", Region: "eu", Host: "web-2", Until: t0.Add(time.Hour), Reason: "drain"})
	h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-2", "disk", health.Critical))
	before := h.e.Alerts()
	h.now = t0.Add(2 * time.Minute)
	h.restart(c)
	if after := h.e.Alerts(); !reflect.DeepEqual(before, after) {
		t.Fatalf("Start changed the alerts:\n%s", strings.Join(alertLines(after), "\n"))
	}
	if ws := h.e.Windows(); len(ws) != 1 || ws[0].ID != "open" {
		t.Fatalf("windows %+v, want only the open one", ws)
	}
	seq := h.e.Seq()
	out := h.tick()
	if !slices.Equal(out.EndedWindows, []string{"ended"}) {
		t.Fatalf("first tick after restart ended windows %v, want [ended]", out.EndedWindows)
	}
	equalLines(t, "first tick after restart", alertTransitions(out.Transitions),
		[]string{"alert host eu/web-1/disk suppressed->inactive maintenance", "alert host eu/web-1/disk inactive->firing"})
	if out.Transitions[0].Seq != seq+1 {
		t.Fatalf("expiry journaled with seq %d, want %d", out.Transitions[0].Seq, seq+1)
	}
	equalLines(t, "after the expiry", alertLines(h.e.Alerts()),
		[]string{"host eu web-1 critical 1 [disk]", "host eu web-2/disk suppressed=maintenance"})
	if out := h.tick(); len(out.Transitions) != 0 {
		t.Fatalf("second tick: %v", transitionLines(out.Transitions))
	}
	h.mustVerify()
}

// TestCrashKeepsAlerts restarts from the states as a SIGKILL leaves them:
// last-seen times as of the last checkpoint or transition, which lag the
// engine's. A check that kept reporting its hard failure must keep its host
// alert: nothing resolves, no not_reporting fires, and the first ticks
// journal nothing.
func TestCrashKeepsAlerts(t *testing.T) {
	c := cfg(func(e *config.Engine) { e.ConfirmAfter = 1 },
		config.CheckRule{Match: "disk", StaleAfter: config.Duration(20 * time.Second)})
	tests := []struct {
		name string
		run  func(h *harness)
	}{
		{"no checkpoint since the failure", func(h *harness) {
			// web-1's disk reports every 10s; only its first result (the
			// transition) reached the store. web-2 keeps changing, so the
			// store holds last-seen times far past web-1's + stale_after.
			for i := 1; i <= 8; i++ {
				h.now = h.now.Add(10 * time.Second)
				h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-2", "cpu", []health.Status{health.Passing, health.Warning}[i%2]))
				h.tick()
			}
		}},
		{"second crash inside the first restart's grace period", func(h *harness) {
			h.restart(h.cfg)
			// Down 10 minutes; web-1 then says nothing for 15s of its 20s
			// grace while web-2 reports a change that reaches the store.
			h.now = h.now.Add(10 * time.Minute)
			h.crash(h.cfg)
			h.now = h.now.Add(15 * time.Second)
			h.apply(res("eu", "web-2", "cpu", health.Critical))
			h.tick()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, c)
			h.cfg = c
			h.apply(res("eu", "web-1", "disk", health.Critical), res("eu", "web-2", "cpu", health.Passing))
			tt.run(h)
			before, journal := h.e.Alerts(), len(h.journal)
			equalLines(t, "before the crash", alertLines(before)[:1], []string{"host eu web-1 critical 1 [disk]"})

			h.now = h.now.Add(time.Second)
			h.crash(c)
			if after := h.e.Alerts(); !reflect.DeepEqual(before, after) {
				t.Fatalf("alerts changed by the restart:\nbefore:\n  %s\nafter:\n  %s",
					strings.Join(alertLines(before), "\n  "), strings.Join(alertLines(after), "\n  "))
			}
			h.tick()
			h.now = h.now.Add(5 * time.Second)
			h.apply(res("eu", "web-1", "disk", health.Critical))
			h.tick()
			if got := h.journal[journal:]; len(got) != 0 {
				t.Fatalf("transitions after the restart though web-1 kept reporting: %v", transitionLines(got))
			}
			// Silence is still noticed, after the grace period and journaled.
			h.now = h.now.Add(20 * time.Second)
			out := h.tick()
			equalLines(t, "silent after the grace", alertTransitions(out.Transitions), []string{
				"alert host eu/web-1/disk firing->inactive",
				"alert host eu/web-1/not_reporting inactive->firing",
			})
			h.mustVerify()
		})
	}
}

// TestRestartKeepsSilentFleetSilent: when nothing reports at all, the
// persisted stale marks keep the silence alerts across a restart.
func TestRestartKeepsSilentFleetSilent(t *testing.T) {
	c := cfg(nil)
	h := newHarness(t, c)
	h.apply(res("eu", "web-1", "cpu", health.Passing), res("eu", "web-2", "cpu", health.Passing))
	out := h.step(6 * time.Minute)
	if len(out.Changed) != 2 || !out.Changed[0].Stale {
		t.Fatalf("stale checks not in Changed: %+v", out.Changed)
	}
	before := h.e.Alerts()
	equalLines(t, "silent", alertLines(before), []string{"host eu web-1 not_reporting critical", "host eu web-2 not_reporting critical"})
	h.now = h.now.Add(time.Hour)
	h.restart(c)
	if after := h.e.Alerts(); !reflect.DeepEqual(before, after) {
		t.Fatalf("alerts after restart: %v", alertLines(after))
	}
	if out := h.tick(); len(out.Transitions) != 0 {
		t.Fatalf("first tick: %v", transitionLines(out.Transitions))
	}
	out = h.apply(res("eu", "web-1", "cpu", health.Passing))
	if len(out.Changed) != 1 || out.Changed[0].Stale {
		t.Fatalf("revived check not persisted fresh: %+v", out.Changed)
	}
	equalLines(t, "revived", alertTransitions(out.Transitions), []string{"alert host eu/web-1/not_reporting firing->inactive"})
}

func TestLoadValidates(t *testing.T) {
	e, err := New(cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	ok := health.CheckState{Key: health.Key{Region: "eu", Host: "web-1", Check: "disk"}}
	tests := []struct {
		name string
		mod  func(*health.CheckState)
		want string
	}{
		{"empty host", func(s *health.CheckState) { s.Host = "" }, "must not be empty"},
		{"reserved check", func(s *health.CheckState) { s.Check = health.NotReporting }, "reserved"},
		{"bad status", func(s *health.CheckState) { s.Status = 9 }, "invalid status"},
		{"bad hard", func(s *health.CheckState) { s.Hard = 4 }, "invalid hard"},
		{"bad severity", func(s *health.CheckState) { s.Severity = 7 }, "invalid severity"},
	}
	for _, tt := range tests {
		s := ok
		tt.mod(&s)
		if err := e.Load(&s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	if err := e.Load(&ok); err != nil {
		t.Fatal(err)
	}
	if err := e.Load(&ok); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate load: %v", err)
	}
	e.Start(0, t0)
	if err := e.Load(&ok); err == nil {
		t.Fatal("Load after Start accepted")
	}
}

// randomBatch builds a batch over a small fleet with retries, old results,
// repeated event IDs, warnings, severities and teams.
func randomBatch(rng *rand.Rand, now time.Time, n int) []health.Result {
	regions := []string{"eu", "us", "ap"}
	checks := []string{"cpu", "disk", "lvm-vg0", "conn", "ntp"}
	statuses := []health.Status{health.Passing, health.Passing, health.Passing, health.Critical, health.Warning, health.Unknown}
	rs := make([]health.Result, 0, n)
	for i := 0; i < n; i++ {
		reg := regions[rng.IntN(len(regions))]
		if reg == "ap" && rng.IntN(4) != 0 {
			continue // a region that mostly stays silent
		}
		r := res(reg, fmt.Sprintf("h-%d", rng.IntN(6)), checks[rng.IntN(len(checks))], statuses[rng.IntN(len(statuses))])
		if rng.IntN(3) == 0 {
			r.Time = now.Add(-time.Duration(rng.IntN(120)) * time.Second).UnixNano()
		}
		if rng.IntN(2) == 0 {
			r.EventID = []byte(fmt.Sprintf("ev-%d", rng.IntN(50)))
		}
		if rng.IntN(10) == 0 {
			r.Severity = health.Severity(rng.IntN(5))
		}
		if rng.IntN(8) == 0 {
			r.Team = []byte([]string{"storage", "net"}[rng.IntN(2)])
		}
		if rng.IntN(10) == 0 {
			r.Interval = int32(rng.IntN(200))
		}
		if r.Status != health.Passing {
			r.Output = []byte(fmt.Sprintf("out %d", rng.IntN(3)))
		}
		rs = append(rs, r)
	}
	return rs
}

// randomOp applies one random operation to every harness alike and says
// which: batch, tick, window, unwindow or forget.
func randomOp(rng *rand.Rand, hs ...*harness) string {
	now := hs[0].now.Add(time.Duration(rng.IntN(90)) * time.Second)
	op := rng.IntN(21)
	var batch []health.Result
	var w health.Window
	var removeID string
	var forget health.Key
	switch {
	case op == 20:
		// Sometimes a host that does not exist (in that region).
		forget = health.Key{Region: []string{"eu", "us", "ap"}[rng.IntN(3)], Host: fmt.Sprintf("h-%d", rng.IntN(7))}
	case op < 14:
		batch = randomBatch(rng, now, 1+rng.IntN(40))
	case op < 17:
	case op < 19:
		regions := []string{"eu", "us", "ap"}
		w = health.Window{ID: fmt.Sprintf("w-%d", rng.IntN(4)), Region: regions[rng.IntN(3)],
			Until: now.Add(time.Duration(1+rng.IntN(600)) * time.Second), Reason: "test"}
		if rng.IntN(2) == 0 {
			w.Host = fmt.Sprintf("h-%d", rng.IntN(6))
		}
		if rng.IntN(2) == 0 {
			w.Check = []string{"c*", "disk", "not_reporting", "*"}[rng.IntN(4)]
		}
	default:
		removeID = fmt.Sprintf("w-%d", rng.IntN(4))
	}
	for _, h := range hs {
		h.now = now
		switch {
		case forget.Host != "":
			h.forget(forget.Region, forget.Host)
		case batch != nil:
			h.apply(batch...)
		case w.ID != "":
			h.addWindow(w)
		case removeID != "":
			h.out.Reset()
			h.e.RemoveWindow(removeID, now, &h.out)
			delete(h.windows, removeID)
			h.record()
		default:
			h.tick()
		}
	}
	switch {
	case forget.Host != "":
		return "forget"
	case batch != nil:
		return "batch"
	case w.ID != "":
		return "window"
	case removeID != "":
		return "unwindow"
	}
	return "tick"
}

// TestIncrementalCountersMatchRecount is the property test: after every
// random operation the incremental counters and alert states equal a
// recount from scratch.
func TestIncrementalCountersMatchRecount(t *testing.T) {
	c := cfg(func(e *config.Engine) {
		e.Region.MinHosts = 2
		e.ForgetAfter = config.Duration(8 * time.Minute)
	},
		config.CheckRule{Match: "lvm*", Severity: "critical", Team: "storage", ConfirmAfter: 3, RecoverAfter: 2},
		config.CheckRule{Match: "ntp", StaleAfter: config.Duration(2 * time.Minute)})
	forgot := map[string]int{} // hosts forgotten, by the operation that forgot them
	for seed := uint64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		h := newHarness(t, c)
		for i := 0; i < 400; i++ {
			op := randomOp(rng, h)
			if len(h.out.Forgotten) > 0 {
				forgot[op]++
			}
			if err := h.e.verify(); err != nil {
				t.Fatalf("seed %d, op %d (%s): %v", seed, i, op, err)
			}
			if as := h.e.Alerts(); !slices.IsSortedFunc(as, func(a, b health.Alert) int {
				return cmp.Or(cmp.Compare(a.Level, b.Level), strings.Compare(a.Region, b.Region),
					strings.Compare(a.Host, b.Host), strings.Compare(a.Check, b.Check))
			}) {
				t.Fatalf("seed %d, op %d: alerts not sorted: %v", seed, i, alertLines(as))
			}
		}
		// Shut down as in production: results arriving up to the end, the
		// last tick and a final checkpoint at the moment of shutdown.
		h.now = h.now.Add(time.Second)
		h.apply(res("eu", "h-0", "cpu", health.Passing))
		h.tick()
		before := h.e.Alerts()
		h.restart(c)
		if after := h.e.Alerts(); !reflect.DeepEqual(before, after) {
			t.Fatalf("seed %d: alerts differ after restart:\n%s\n---\n%s", seed,
				strings.Join(alertLines(before), "\n"), strings.Join(alertLines(after), "\n"))
		}
	}
	// Both ways of forgetting must have been exercised, or the recount
	// proves nothing about them.
	if forgot["forget"] < 10 || forgot["tick"] < 10 {
		t.Fatalf("hosts forgotten by ForgetHost %d times, by Tick %d times: the input exercises too little",
			forgot["forget"], forgot["tick"])
	}
	t.Logf("forgotten: %v", forgot)
}

// TestHADeterminism feeds two engines the same calls and expects the same
// transitions and alerts: no map order or other internal detail leaks into
// what the engine decides.
func TestHADeterminism(t *testing.T) {
	c := cfg(func(e *config.Engine) {
		e.Region.MinHosts = 2
		e.ForgetAfter = config.Duration(8 * time.Minute)
	})
	rng := rand.New(rand.NewPCG(7, 7))
	a, b := newHarness(t, c), newHarness(t, c)
	for i := 0; i < 1000; i++ {
		na, nb := len(a.journal), len(b.journal)
		randomOp(rng, a, b)
		if !reflect.DeepEqual(a.journal[na:], b.journal[nb:]) {
			t.Fatalf("op %d: transitions differ:\n%s\n---\n%s", i,
				strings.Join(transitionLines(a.journal[na:]), "\n"), strings.Join(transitionLines(b.journal[nb:]), "\n"))
		}
		if !reflect.DeepEqual(a.e.Alerts(), b.e.Alerts()) {
			t.Fatalf("op %d: alerts differ:\n%+v\n%+v", i, a.e.Alerts(), b.e.Alerts())
		}
	}
	if len(a.journal) < 500 || pages(a.journal) < 20 {
		t.Fatalf("%d transitions, %d pages: the input exercises too little", len(a.journal), pages(a.journal))
	}
}

// TestJournalOrderAfterRestart: a restarted instance interns check names in
// key order, its HA peer in arrival order, so their slots are ordered
// differently. The transitions of one host in one call must still come out
// in the same order: check entries suppressed or released, and checks
// going stale, are journaled by check name.
func TestJournalOrderAfterRestart(t *testing.T) {
	c := cfg(nil)
	feed := func(h *harness) {
		for i := 0; i < 2; i++ {
			h.apply(res("eu", "web-1", "zz", health.Critical), res("eu", "web-1", "mm", health.Critical),
				res("eu", "web-1", "aa", health.Critical))
			h.now = h.now.Add(30 * time.Second)
		}
	}
	a, b := newHarness(t, c), newHarness(t, c)
	feed(a)
	feed(b)
	b.restart(c)
	w := health.Window{ID: "w", Region: "eu", Host: "web-1", Reason: "drain", Until: a.now.Add(time.Hour)}
	want := []string{
		"alert host eu/web-1/aa inactive->suppressed maintenance",
		"alert host eu/web-1/mm inactive->suppressed maintenance",
		"alert host eu/web-1/zz inactive->suppressed maintenance",
		"alert host eu/web-1/aa firing->inactive",
	}
	equalLines(t, "peer", transitionLines(a.addWindow(w).Transitions), want)
	equalLines(t, "restarted", transitionLines(b.addWindow(w).Transitions), want)

	// Staleness, past the restarted one's grace period.
	a.now = a.now.Add(10 * time.Minute)
	b.now = a.now
	want = []string{"check eu/web-1/aa hard->stale", "check eu/web-1/mm hard->stale", "check eu/web-1/zz hard->stale"}
	stale := func(ts []health.Transition) []string {
		var out []string
		for _, l := range transitionLines(ts) {
			if strings.HasSuffix(l, "->stale") {
				out = append(out, l)
			}
		}
		return out
	}
	equalLines(t, "peer goes stale", stale(a.tick().Transitions), want)
	equalLines(t, "restarted goes stale", stale(b.tick().Transitions), want)
}

// TestCrashKeepsWhatTheNextResultsDependOn: a crash loses the last-seen
// refreshes since the last checkpoint, and nothing else an alert or a
// staleness deadline depends on: a check's new interval, and the severity
// a flapping check's entry shows while its latest result passes.
func TestCrashKeepsWhatTheNextResultsDependOn(t *testing.T) {
	t.Run("interval", func(t *testing.T) {
		c := cfg(nil)
		h := newHarness(t, c)
		r := res("eu", "web-1", "backup", health.Passing)
		r.Interval = 30
		h.apply(r)
		h.checkpoint()
		h.now = h.now.Add(30 * time.Second)
		r.Interval = 600 // stale after 30 minutes now, not 5
		h.apply(r)
		h.now = h.now.Add(time.Second)
		h.crash(c)
		h.now = h.now.Add(20 * time.Minute)
		if out := h.tick(); len(out.Transitions) != 0 || len(h.e.Alerts()) != 0 {
			t.Fatalf("20 minutes into a 30-minute staleness: %v, alerts %v",
				transitionLines(out.Transitions), alertLines(h.e.Alerts()))
		}
	})
	t.Run("severity of a flapping check's entry", func(t *testing.T) {
		c := cfg(func(e *config.Engine) { e.ConfirmAfter = 3 })
		h := newHarness(t, c)
		r := res("eu", "web-1", "ntp", health.Passing)
		for i := range 12 {
			h.now = h.now.Add(30 * time.Second)
			r.Status = []health.Status{health.Warning, health.Passing}[i%2]
			h.apply(r)
		}
		h.now = h.now.Add(30 * time.Second)
		r.Severity = health.SeverityInfo
		h.apply(r)
		before := h.e.Alerts()
		if len(before) != 1 || before[0].Suppressed != health.SuppressedByFlapping || before[0].Severity != health.SeverityInfo {
			t.Fatalf("before the crash: %+v, want the flapping entry at the event's severity, info", before)
		}
		h.now = h.now.Add(time.Second)
		h.crash(c)
		if after := h.e.Alerts(); !reflect.DeepEqual(after, before) {
			t.Fatalf("after the crash:\n  %+v\nwant\n  %+v", after, before)
		}
	})
}
