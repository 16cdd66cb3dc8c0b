package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero config takes defaults", Config{}, ""},
		{"defaults", cfg(nil), ""},
		{"confirm_after too large", cfg(func(c *config.Engine) { c.ConfirmAfter = 21 }), "confirm_after"},
		{"negative stale_after", cfg(func(c *config.Engine) { c.StaleAfter = -1 }), "stale_after"},
		{"flap low above high", cfg(func(c *config.Engine) { c.Flap = config.Flap{High: 0.3, Low: 0.4} }), "flap.low"},
		{"outage ratio above 1", cfg(func(c *config.Engine) { c.Region.OutageRatio = 1.5 }), "outage_ratio"},
		{"bad glob", cfg(nil, config.CheckRule{Match: "lvm["}), "checks[0]: match"},
		{"empty glob", cfg(nil, config.CheckRule{Match: "", Team: "x"}), "checks[0]: match"},
		{"bad severity", cfg(nil, config.CheckRule{Match: "ok"}, config.CheckRule{Match: "lvm*", Severity: "page-me"}), "checks[1]: severity"},
		{"rule confirm_after", cfg(nil, config.CheckRule{Match: "x", ConfirmAfter: 99}), "confirm_after"},
		{"valid rule", cfg(nil, config.CheckRule{Match: "lvm*", Severity: "Critical", Team: "storage", ConfirmAfter: 3}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestDedupAndOrdering(t *testing.T) {
	at := func(sec int, st health.Status, eventID string) health.Result {
		r := res("eu", "web-1", "disk", st)
		r.Time = t0.Add(time.Duration(sec) * time.Second).UnixNano()
		r.EventID = []byte(eventID)
		return r
	}
	h := newHarness(t, cfg(nil))
	h.now = t0.Add(2 * time.Minute) // results carry their own, earlier, timestamps
	steps := []struct {
		name               string
		r                  health.Result
		accepted, dup, chg int
		trans              []string
	}{
		{"new check is persisted", at(10, health.Passing, ""), 1, 0, 1, nil},
		{"equal result only refreshes", at(20, health.Passing, ""), 1, 0, 0, nil},
		{"first failure is soft", at(30, health.Critical, "a"), 1, 0, 1, []string{"check eu/web-1/disk passing->soft"}},
		{"retried event_id is a duplicate", at(40, health.Critical, "a"), 0, 1, 0, nil},
		{"older result is ignored", at(25, health.Passing, "b"), 0, 1, 0, nil},
		{"same timestamp, new event applies", at(30, health.Critical, "c"), 1, 0, 1, []string{
			"check eu/web-1/disk soft->hard",
			"alert host eu/web-1/disk inactive->firing",
		}},
		{"equal hard failure only refreshes", at(50, health.Critical, "d"), 1, 0, 0, nil},
	}
	for _, st := range steps {
		h.now = h.now.Add(time.Second)
		out := h.apply(st.r)
		if out.Accepted != st.accepted || out.Duplicates != st.dup || len(out.Changed) != st.chg {
			t.Errorf("%s: accepted/duplicates/changed = %d/%d/%d, want %d/%d/%d", st.name,
				out.Accepted, out.Duplicates, len(out.Changed), st.accepted, st.dup, st.chg)
		}
		equalLines(t, st.name, transitionLines(out.Transitions), st.trans)
		// The check fails critical only: the soft transition, before any
		// hard status, carries critical from the failing result too.
		for _, tr := range out.Transitions {
			if tr.Severity != health.SeverityCritical {
				t.Errorf("%s: %s %s->%s has severity %q, want critical", st.name, tr.Kind, tr.From, tr.To, tr.Severity)
			}
		}
		h.mustVerify()
	}
	info := h.e.HostChecks("web-1")
	if len(info) != 1 || info[0].Updated != t0.Add(50*time.Second).UnixNano() || info[0].Hard != health.Critical {
		t.Fatalf("state moved backwards: %+v", info)
	}
}

func TestFutureTimestampIsClamped(t *testing.T) {
	h := newHarness(t, cfg(nil))
	r := res("eu", "web-1", "disk", health.Critical)
	r.Time = t0.Add(365 * 24 * time.Hour).UnixNano()
	h.apply(r)
	if got := h.e.HostChecks("web-1")[0].Updated; got != t0.Add(time.Duration(maxAhead)).UnixNano() {
		t.Fatalf("future timestamp kept: %v, want maxAhead past the receive time at most", unixTime(got))
	}
	h.now = h.now.Add(time.Minute)
	out := h.apply(res("eu", "web-1", "disk", health.Passing))
	if out.Duplicates != 0 || out.Accepted != 1 {
		t.Fatalf("a result after a bogus future timestamp was ignored: %+v", out)
	}
}

// TestRetryOrderedBySenderClockAhead: a sender whose clock runs a little
// fast sends a batch holding several results of one check, each with its
// own event_id; the batch times out and Vector retries it after the
// check's next results got in. The timestamps, ahead of the receiver's
// clock but within a minute, still order the retry as older: it changes
// nothing, whatever confirm_after.
func TestRetryOrderedBySenderClockAhead(t *testing.T) {
	h := newHarness(t, cfg(func(e *config.Engine) { e.ConfirmAfter = 4 }))
	batch := func(ahead time.Duration, ids ...string) []health.Result {
		var rs []health.Result
		for i, id := range ids {
			r := withID(res("eu", "web-1", "disk", health.Critical), id)
			r.Time = h.now.Add(ahead + time.Duration(i)*100*time.Millisecond).UnixNano()
			rs = append(rs, r)
		}
		return rs
	}
	first := batch(time.Second, "a", "b", "c")
	if out := h.apply(first...); out.Accepted != 3 || pages(out.Transitions) != 0 {
		t.Fatalf("first batch: %+v %v", out, transitionLines(out.Transitions))
	}
	h.now = h.now.Add(5 * time.Second)
	out := h.apply(first...)
	if out.Duplicates != 3 || out.Accepted != 0 || len(out.Transitions) != 0 {
		t.Fatalf("retried batch: accepted %d duplicates %d %v, want 3 duplicates and no change",
			out.Accepted, out.Duplicates, transitionLines(out.Transitions))
	}
	if c := h.e.HostChecks("web-1")[0]; c.Attempts != 3 || c.Hard != health.Passing {
		t.Fatalf("after the retry: attempts %d hard %s, want still 3 soft attempts", c.Attempts, c.Hard)
	}
	// The next real result confirms, once.
	if out := h.apply(batch(time.Second, "d")...); out.Accepted != 1 || pages(out.Transitions) != 1 {
		t.Fatalf("next result: %+v %v, want it to confirm", out, transitionLines(out.Transitions))
	}
	for _, a := range h.e.Alerts() {
		if a.Since.After(h.now) {
			t.Fatalf("alert since %v, after the receive time %v", a.Since, h.now)
		}
	}
	// A clock further ahead counts maxAhead ahead: the state's time is
	// never later than that.
	h.now = h.now.Add(time.Minute)
	far := batch(time.Hour, "e")
	h.apply(far...)
	c := h.e.HostChecks("web-1")[0]
	if c.Updated != h.now.Add(time.Duration(maxAhead)).UnixNano() {
		t.Fatalf("updated %v, want the receive time plus maxAhead", unixTime(c.Updated))
	}
}

// TestOrderAfterAResultStampedAhead: after a result stamped ahead of its
// receipt, a result without a timestamp is still the newest, and is
// applied; and a sender whose clock is too far ahead to be believed still
// has a retry that arrives after the check's next result known by its
// event_id.
func TestOrderAfterAResultStampedAhead(t *testing.T) {
	t.Run("no timestamp after one ahead", func(t *testing.T) {
		h := newHarness(t, cfg(func(e *config.Engine) { e.ConfirmAfter = 1 }))
		r := withID(res("eu", "web-1", "disk", health.Critical), "m1")
		r.Time = h.now.Add(time.Duration(maxAhead) / 2).UnixNano()
		h.apply(r)
		h.now = h.now.Add(time.Second)
		out := h.apply(withID(res("eu", "web-1", "disk", health.Passing), "m2"))
		if out.Accepted != 1 || out.Duplicates != 0 || h.e.HostChecks("web-1")[0].Status != health.Passing {
			t.Fatalf("accepted %d duplicates %d, status %s; want the untimed result applied",
				out.Accepted, out.Duplicates, h.e.HostChecks("web-1")[0].Status)
		}
	})
	t.Run("retry from a clock too far ahead", func(t *testing.T) {
		h := newHarness(t, cfg(func(e *config.Engine) { e.ConfirmAfter = 1 }))
		stamp := func(r health.Result) health.Result { r.Time = h.now.Add(2 * time.Minute).UnixNano(); return r }
		a := stamp(withID(res("eu", "web-1", "disk", health.Critical), "a"))
		h.apply(a)
		h.now = h.now.Add(30 * time.Second)
		h.apply(stamp(withID(res("eu", "web-1", "disk", health.Passing), "b")))
		h.now = h.now.Add(30 * time.Second)
		out := h.apply(a) // Vector's retry of the first batch
		if out.Duplicates != 1 || h.e.HostChecks("web-1")[0].Status != health.Passing {
			t.Fatalf("duplicates %d, status %s; want the retry known and the check still passing",
				out.Duplicates, h.e.HostChecks("web-1")[0].Status)
		}
	})
}

func TestSoftHard(t *testing.T) {
	C, W, P := health.Critical, health.Warning, health.Passing
	tests := []struct {
		name    string
		confirm int
		rules   []config.CheckRule
		check   string
		results []health.Status
		phase   string
		hard    health.Status
		pages   bool
	}{
		{"one failure is soft", 2, nil, "disk", []health.Status{C}, health.PhaseSoft, P, false},
		{"confirm_after failures are hard", 2, nil, "disk", []health.Status{C, C}, health.PhaseHard, C, true},
		{"mixed failing statuses count", 2, nil, "disk", []health.Status{W, C}, health.PhaseHard, C, true},
		{"a pass resets the count", 2, nil, "disk", []health.Status{C, P, C}, health.PhaseSoft, P, false},
		{"confirm_after 1 is immediate", 1, nil, "disk", []health.Status{C}, health.PhaseHard, C, true},
		{"rule override needs more", 2, []config.CheckRule{{Match: "lvm*", ConfirmAfter: 3}}, "lvm-vg0", []health.Status{C, C}, health.PhaseSoft, P, false},
		{"rule override reached", 2, []config.CheckRule{{Match: "lvm*", ConfirmAfter: 3}}, "lvm-vg0", []health.Status{C, C, C}, health.PhaseHard, C, true},
		{"first matching rule wins", 2, []config.CheckRule{{Match: "lvm*", ConfirmAfter: 1}, {Match: "lvm-*", ConfirmAfter: 5}}, "lvm-vg0", []health.Status{C}, health.PhaseHard, C, true},
		{"rule not matching inherits", 2, []config.CheckRule{{Match: "lvm*", ConfirmAfter: 5}}, "disk", []health.Status{C, C}, health.PhaseHard, C, true},
		{"hard warning escalates at once", 2, nil, "disk", []health.Status{W, W, C}, health.PhaseHard, C, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = tt.confirm }, tt.rules...))
			for _, st := range tt.results {
				h.now = h.now.Add(30 * time.Second)
				h.apply(res("eu", "web-1", tt.check, st))
			}
			ex := h.e.Explain("web-1", tt.check)
			if ex.Phase != tt.phase || ex.Check.Hard != tt.hard || ex.Pages != tt.pages {
				t.Fatalf("phase/hard/pages = %s/%s/%v, want %s/%s/%v (%s)", ex.Phase, ex.Check.Hard, ex.Pages, tt.phase, tt.hard, tt.pages, ex.Decision)
			}
			h.mustVerify()
		})
	}
}

func TestRecoverAfter(t *testing.T) {
	C, P := health.Critical, health.Passing
	tests := []struct {
		name    string
		recover int
		rule    int // the check rule's recover_after for disk; 0 inherits
		results []health.Status
		pages   bool
	}{
		{"immediate by default", 1, 0, []health.Status{C, C, P}, false},
		{"still paging before recover_after", 3, 0, []health.Status{C, C, P, P}, true},
		{"recovers at recover_after", 3, 0, []health.Status{C, C, P, P, P}, false},
		{"a failure restarts the count", 3, 0, []health.Status{C, C, P, P, C, P, P}, true},
		{"a rule's recover_after over the engine's", 1, 3, []health.Status{C, C, P, P}, true},
		{"a rule's recover_after reached", 1, 3, []health.Status{C, C, P, P, P}, false},
		{"a rule's immediate recovery over the engine's", 3, 1, []health.Status{C, C, P}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []config.CheckRule
			if tt.rule > 0 {
				rules = append(rules, config.CheckRule{Match: "di*", RecoverAfter: tt.rule})
			}
			h := newHarness(t, cfg(func(c *config.Engine) { c.RecoverAfter = tt.recover }, rules...))
			for _, st := range tt.results {
				h.now = h.now.Add(30 * time.Second)
				h.apply(res("eu", "web-1", "disk", st))
			}
			if got := h.e.Explain("web-1", "disk").Pages; got != tt.pages {
				t.Fatalf("pages = %v, want %v", got, tt.pages)
			}
			if got := pages(h.journal); got != 1 {
				t.Fatalf("%d pages, want exactly 1", got)
			}
			h.mustVerify()
		})
	}
}

func TestSecondFailingCheckIsSameAlert(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
	h.apply(res("eu", "web-1", "disk", health.Passing), res("eu", "web-1", "lvm", health.Passing))
	h.now = h.now.Add(30 * time.Second)
	h.apply(res("eu", "web-1", "disk", health.Critical))
	first := h.e.Alerts()
	equalLines(t, "one failing check", alertLines(first), []string{"host eu web-1 critical 1 [disk]"})

	h.now = h.now.Add(30 * time.Second)
	out := h.apply(res("eu", "web-1", "lvm", health.Critical))
	equalLines(t, "second check adds no alert transition", alertTransitions(out.Transitions), nil)
	second := h.e.Alerts()
	equalLines(t, "two failing checks", alertLines(second), []string{"host eu web-1 critical 2 [disk lvm]"})
	if !second[0].Since.Equal(first[0].Since) || second[0].ID() != first[0].ID() {
		t.Fatalf("alert instance changed: %v/%s -> %v/%s", first[0].Since, first[0].ID(), second[0].Since, second[0].ID())
	}
	if want := "2 checks failing on web-1 (eu): disk, lvm"; second[0].Summary != want {
		t.Errorf("summary %q, want %q", second[0].Summary, want)
	}

	h.now = h.now.Add(30 * time.Second)
	h.apply(res("eu", "web-1", "disk", health.Passing))
	equalLines(t, "first check recovered", alertLines(h.e.Alerts()), []string{"host eu web-1 critical 1 [lvm]"})
	h.now = h.now.Add(30 * time.Second)
	out = h.apply(res("eu", "web-1", "lvm", health.Passing))
	equalLines(t, "resolved once", alertTransitions(out.Transitions), []string{"alert host eu/web-1/lvm firing->inactive"})
	if pages(h.journal) != 1 {
		t.Fatalf("%d pages, want 1", pages(h.journal))
	}
	h.mustVerify()
}

func TestSeverityResolution(t *testing.T) {
	rules := []config.CheckRule{{Match: "lvm*", Severity: "critical", Team: "storage"}, {Match: "dns", Severity: "info"}}
	tests := []struct {
		name     string
		check    string
		status   health.Status
		eventSev health.Severity
		want     health.Severity
		team     string
	}{
		{"event wins over rule", "lvm", health.Warning, health.SeverityError, health.SeverityError, "storage"},
		{"rule wins over status", "lvm", health.Warning, health.SeverityNone, health.SeverityCritical, "storage"},
		{"rule can lower", "dns", health.Critical, health.SeverityNone, health.SeverityInfo, ""},
		{"critical status", "disk", health.Critical, health.SeverityNone, health.SeverityCritical, ""},
		{"warning status", "disk", health.Warning, health.SeverityNone, health.SeverityWarning, ""},
		{"unknown status", "disk", health.Unknown, health.SeverityNone, health.SeverityCritical, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }, rules...))
			r := res("eu", "web-1", tt.check, tt.status)
			r.Severity = tt.eventSev
			h.apply(r)
			as := h.e.Alerts()
			if len(as) != 1 || as[0].Severity != tt.want || as[0].Team != tt.team {
				t.Fatalf("alerts %+v, want severity %s team %q", as, tt.want, tt.team)
			}
		})
	}

	t.Run("host takes the highest and journals escalation", func(t *testing.T) {
		h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
		h.apply(res("eu", "web-1", "dns", health.Warning))
		h.now = h.now.Add(30 * time.Second)
		out := h.apply(res("eu", "web-1", "disk", health.Critical))
		equalLines(t, "escalation", alertTransitions(out.Transitions), []string{"alert host eu/web-1/disk firing->firing severity"})
		if as := h.e.Alerts(); as[0].Severity != health.SeverityCritical || as[0].Team != "" {
			t.Fatalf("host alert %+v", as[0])
		}
		if pages(h.journal) != 1 {
			t.Fatalf("escalation counted as a new page")
		}
	})

	// The other way: the alert says what is still wrong, a warning, and
	// stays one alert (one page in the journal) while its severity drops.
	t.Run("host drops to the severity still failing", func(t *testing.T) {
		h := newHarness(t, cfg(func(c *config.Engine) { c.ConfirmAfter = 1 }))
		h.apply(res("eu", "web-1", "dns", health.Warning), res("eu", "web-1", "disk", health.Critical))
		h.now = h.now.Add(30 * time.Second)
		out := h.apply(res("eu", "web-1", "disk", health.Passing))
		equalLines(t, "drop", alertTransitions(out.Transitions), []string{"alert host eu/web-1/dns firing->firing severity"})
		if as := h.e.Alerts(); len(as) != 1 || as[0].Severity != health.SeverityWarning || as[0].Value != 1 {
			t.Fatalf("host alert %+v, want one warning alert for dns", as)
		}
		if pages(h.journal) != 1 {
			t.Fatalf("a lower severity counted as a new page")
		}
		h.mustVerify()
	})
}

func TestMaxChecks(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.Engine) { c.MaxChecks = 2 }))
	out := h.apply(
		res("eu", "web-1", "disk", health.Passing),
		res("eu", "web-1", "lvm", health.Passing),
		res("eu", "web-2", "disk", health.Critical),
		res("eu", "web-1", "disk", health.Passing),
		res("eu", "web-1", "not_reporting", health.Passing),
		res("", "web-1", "disk", health.Passing),
	)
	if out.Accepted != 3 || len(out.Rejected) != 3 {
		t.Fatalf("accepted %d rejected %+v", out.Accepted, out.Rejected)
	}
	want := []Rejection{{Index: 2, Reason: RejectTooManyChecks}, {Index: 4, Reason: RejectReservedCheck}, {Index: 5, Reason: RejectInvalidKey}}
	for i, r := range out.Rejected {
		if r.Index != want[i].Index || r.Reason != want[i].Reason || r.Err == "" {
			t.Errorf("rejection %d = %+v, want %+v", i, r, want[i])
		}
	}
	if got := h.e.Stats(); got.TrackedChecks != 2 || got.Hosts != 1 {
		t.Fatalf("stats %+v: a rejected key created state", got)
	}
	h.mustVerify()
}

// TestCheckpointInParts: a round of parts visits the refreshed states once
// each, whole hosts in key order; a state refreshed during the round is in
// it when its host was not visited yet, else in the next round.
func TestCheckpointInParts(t *testing.T) {
	h := newHarness(t, cfg(nil))
	var batch []health.Result
	for _, i := range []int{3, 0, 4, 1, 2} {
		for _, check := range []string{"disk", "ntp", "lvm"} {
			batch = append(batch, res("eu", fmt.Sprintf("web-%d", i), check, health.Passing))
		}
	}
	h.apply(batch...) // new checks: all in Changed
	h.now = h.now.Add(30 * time.Second)
	h.apply(batch...) // refreshes: all left for the checkpoint

	type visit struct {
		host     string
		lastSeen int64
	}
	var visits []visit
	var parts []int
	round := h.e.StartCheckpoint()
	round.Sort()
	part := func() bool {
		n := 0
		more := h.e.CheckpointSome(round, 4, func(cs *health.CheckState) {
			if cs.Check == "disk" {
				visits = append(visits, visit{cs.Host, cs.LastSeen})
			}
			n++
		})
		parts = append(parts, n)
		return more
	}
	if !part() {
		t.Fatal("a part of 4 of 15 states says the round is over")
	}
	// web-0 and web-1 are visited; refresh web-0 and web-4.
	refreshed := h.now.Add(30 * time.Second)
	h.now = refreshed
	h.apply(res("eu", "web-0", "disk", health.Passing), res("eu", "web-4", "disk", health.Passing))
	for part() {
	}
	if want := []int{6, 6, 3}; !slices.Equal(parts, want) {
		t.Errorf("round parts %v, want %v: whole hosts of 3 until at least 4", parts, want)
	}
	var hosts []string
	for _, v := range visits {
		hosts = append(hosts, v.host)
	}
	if want := []string{"web-0", "web-1", "web-2", "web-3", "web-4"}; !slices.Equal(hosts, want) {
		t.Errorf("round visited %v, want %v (key order)", hosts, want)
	}
	if got := visits[4].lastSeen; got != refreshed.UnixNano() {
		t.Errorf("web-4 disk refreshed before its visit: last-seen %d, want %d", got, refreshed.UnixNano())
	}
	visits = visits[:0]
	if h.e.CheckpointSome(h.e.StartCheckpoint(), 4, func(cs *health.CheckState) { visits = append(visits, visit{cs.Host, cs.LastSeen}) }) {
		t.Error("the next round has more than web-0")
	}
	if want := []visit{{"web-0", refreshed.UnixNano()}}; !slices.Equal(visits, want) {
		t.Errorf("next round %v, want %v: web-0 refreshed after its visit", visits, want)
	}
	h.e.Checkpoint(func(cs *health.CheckState) { t.Errorf("%v left after the rounds", cs.Key) })
}

// TestCheckpointRoundLeftUnfinished: a round not finished is the one the
// next StartCheckpoint returns, Checkpoint finishes it before starting
// another, and a host forgotten meanwhile is skipped.
func TestCheckpointRoundLeftUnfinished(t *testing.T) {
	h := newHarness(t, cfg(nil))
	batch := []health.Result{
		res("eu", "web-a", "disk", health.Passing),
		res("eu", "web-b", "disk", health.Passing),
		res("eu", "web-c", "disk", health.Passing),
	}
	h.apply(batch...)
	h.now = h.now.Add(30 * time.Second)
	h.apply(batch...)

	var hosts []string
	collect := func(cs *health.CheckState) { hosts = append(hosts, cs.Host) }
	r := h.e.StartCheckpoint()
	r.Sort()
	if !h.e.CheckpointSome(r, 1, collect) {
		t.Fatal("round over after one of three hosts")
	}
	if _, _, ok := h.forget("eu", "web-b"); !ok {
		t.Fatal("web-b not forgotten")
	}
	h.now = h.now.Add(30 * time.Second)
	h.apply(batch[0]) // web-a again, after its visit
	if h.e.StartCheckpoint() != r {
		t.Fatal("StartCheckpoint began a new round with one unfinished")
	}
	h.e.Checkpoint(collect)
	if want := []string{"web-a", "web-c", "web-a"}; !slices.Equal(hosts, want) {
		t.Errorf("checkpointed %v, want %v", hosts, want)
	}
}

func TestChangedAndCheckpoint(t *testing.T) {
	h := newHarness(t, cfg(nil))
	out := h.apply(res("eu", "web-1", "disk", health.Passing), res("eu", "web-1", "disk", health.Critical))
	if len(out.Changed) != 1 || out.Changed[0].Status != health.Critical || out.Changed[0].Attempts != 1 {
		t.Fatalf("Changed %+v, want one latest entry", out.Changed)
	}
	if len(out.NewRegions) != 1 || out.NewRegions[0] != "eu" {
		t.Fatalf("NewRegions %v", out.NewRegions)
	}
	var got []health.CheckState
	h.e.Checkpoint(func(cs *health.CheckState) { got = append(got, *cs) })
	if len(got) != 0 {
		t.Fatalf("checkpoint repeats states already in Changed: %+v", got)
	}

	h.now = h.now.Add(30 * time.Second)
	r := res("eu", "web-1", "lvm", health.Passing)
	r.Interval = 30
	h.apply(r)
	h.now = h.now.Add(30 * time.Second)
	out = h.apply(r)
	if len(out.Changed) != 0 {
		t.Fatalf("a refresh is in Changed: %+v", out.Changed)
	}
	h.e.Checkpoint(func(cs *health.CheckState) { got = append(got, *cs) })
	if len(got) != 1 || got[0].Check != "lvm" || got[0].LastSeen != h.now.UnixNano() || got[0].Interval != 30 {
		t.Fatalf("checkpoint = %+v, want the refreshed lvm", got)
	}
	// A new interval moves the staleness deadline later: it is persisted
	// at once, or a crash would leave the old deadline to call the check
	// silent.
	h.now = h.now.Add(30 * time.Second)
	r.Interval = 600
	if out = h.apply(r); len(out.Changed) != 1 || out.Changed[0].Interval != 600 {
		t.Fatalf("Changed %+v, want lvm with its new interval", out.Changed)
	}
	got = got[:0]
	h.e.Checkpoint(func(cs *health.CheckState) { got = append(got, *cs) })
	if len(got) != 0 {
		t.Fatalf("second checkpoint not empty: %+v", got)
	}

	t.Run("output of a failing check is persisted, of a passing one dropped", func(t *testing.T) {
		r := res("eu", "web-1", "disk", health.Critical)
		r.Output = []byte("sda full")
		h.now = h.now.Add(30 * time.Second)
		out := h.apply(r)
		if len(out.Changed) != 1 || out.Changed[0].Output != "sda full" {
			t.Fatalf("Changed %+v", out.Changed)
		}
		h.now = h.now.Add(30 * time.Second)
		if out := h.apply(r); len(out.Changed) != 0 {
			t.Fatalf("unchanged output persisted again: %+v", out.Changed)
		}
		r.Status = health.Passing
		h.now = h.now.Add(30 * time.Second)
		out = h.apply(r)
		if len(out.Changed) != 1 || out.Changed[0].Output != "" {
			t.Fatalf("passing check keeps output: %+v", out.Changed)
		}
	})
	var o Outcome
	o.Transitions = make([]health.Transition, 3, 10)
	o.Accepted = 5
	o.Reset()
	if o.Accepted != 0 || len(o.Transitions) != 0 || cap(o.Transitions) != 10 {
		t.Fatalf("Reset: %+v", o)
	}
}

// TestStillFailingDetailsPersisted: a check that stays hard critical
// changes nothing the state machines see, yet its new output or label
// values are what its alert shows: they must be persisted with the batch
// and read back, and an unchanged repeat must not be.
func TestStillFailingDetailsPersisted(t *testing.T) {
	result := func(output string, labels ...string) health.Result {
		r := res("eu", "web-1", "disk", health.Critical)
		r.Output = []byte(output)
		for i := 0; i+1 < len(labels); i += 2 {
			r.Labels = append(r.Labels, health.ResultLabel{Key: labels[i], Value: []byte(labels[i+1])})
		}
		return r
	}
	first := result("sda 95%", "mount", "/data", "rack", "r1")
	tests := []struct {
		name       string
		next       health.Result
		persisted  bool
		wantOutput string
		wantLabels []health.Label
	}{
		{"output changes", result("sda 99%", "mount", "/data", "rack", "r1"), true,
			"sda 99%", []health.Label{{Key: "mount", Value: "/data"}, {Key: "rack", Value: "r1"}}},
		{"a label value changes", result("sda 95%", "mount", "/data", "rack", "r2"), true,
			"sda 95%", []health.Label{{Key: "mount", Value: "/data"}, {Key: "rack", Value: "r2"}}},
		{"a label is dropped", result("sda 95%", "mount", "/data"), true,
			"sda 95%", []health.Label{{Key: "mount", Value: "/data"}}},
		{"output and labels are dropped", result(""), true, "", nil},
		{"nothing changes", result("sda 95%", "mount", "/data", "rack", "r1"), false,
			"sda 95%", []health.Label{{Key: "mount", Value: "/data"}, {Key: "rack", Value: "r1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(nil))
			for range 2 { // confirm_after 2: hard critical
				h.now = h.now.Add(30 * time.Second)
				h.apply(first)
			}
			if info := h.e.HostChecks("web-1"); len(info) != 1 || info[0].Hard != health.Critical {
				t.Fatalf("checks %+v, want disk hard critical", info)
			}
			h.now = h.now.Add(30 * time.Second)
			out := h.apply(tt.next)
			if len(out.Transitions) != 0 {
				t.Errorf("transitions %v, want none: the check stays critical", transitionLines(out.Transitions))
			}
			switch {
			case !tt.persisted && len(out.Changed) != 0:
				t.Errorf("Changed %+v, want nothing: the repeat is for the checkpoint", out.Changed)
			case tt.persisted && len(out.Changed) != 1:
				t.Errorf("Changed %+v, want disk with its new details", out.Changed)
			case tt.persisted:
				if cs := out.Changed[0]; cs.Output != tt.wantOutput || !slices.Equal(cs.Labels, tt.wantLabels) {
					t.Errorf("persisted output %q labels %v, want %q %v", cs.Output, cs.Labels, tt.wantOutput, tt.wantLabels)
				}
			}
			info := h.e.HostChecks("web-1")
			if len(info) != 1 || info[0].Output != tt.wantOutput || !slices.Equal(info[0].Labels, tt.wantLabels) {
				t.Errorf("HostChecks %+v, want output %q labels %v", info, tt.wantOutput, tt.wantLabels)
			}
			h.mustVerify()
		})
	}
}

func TestApplyBeforeStartPanics(t *testing.T) {
	e, err := New(cfg(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Apply before Start did not panic")
		}
	}()
	e.Apply(&health.Batch{Received: t0}, &Outcome{})
}

// TestRetryAfterNextResult: Vector retries a batch that timed out
// although it was applied, and by then the check's next result may have
// got in. Without timestamps of their own (or with equal ones) the two
// cannot be ordered by time; the retry must still not move the check back.
func TestRetryAfterNextResult(t *testing.T) {
	result := func(st health.Status, eventID string, ts int64) health.Result {
		r := res("eu", "web-1", "disk", st)
		r.EventID, r.Time = []byte(eventID), ts
		return r
	}
	own := t0.Add(-time.Minute).UnixNano()
	tests := []struct {
		name  string
		steps []health.Result
		dup   []int // duplicates per step
		final health.Status
	}{
		{"no timestamps: retry after the next result",
			[]health.Result{result(health.Critical, "a", 0), result(health.Passing, "b", 0), result(health.Critical, "a", 0)},
			[]int{0, 0, 1}, health.Passing},
		{"equal timestamps: retry after the next result",
			[]health.Result{result(health.Critical, "a", own), result(health.Passing, "b", own), result(health.Critical, "a", own)},
			[]int{0, 0, 1}, health.Passing},
		{"no timestamps: two results later the id is forgotten",
			[]health.Result{result(health.Critical, "a", 0), result(health.Passing, "b", 0), result(health.Passing, "c", 0),
				result(health.Critical, "a", 0)},
			[]int{0, 0, 0, 0}, health.Critical},
		{"own timestamps: a newer result with an earlier id applies",
			[]health.Result{result(health.Critical, "a", own), result(health.Passing, "b", own+1), result(health.Critical, "a", own+2)},
			[]int{0, 0, 0}, health.Critical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg(nil))
			for i, r := range tt.steps {
				h.now = h.now.Add(time.Second)
				if out := h.apply(r); out.Duplicates != tt.dup[i] {
					t.Errorf("step %d (%s %s): %d duplicates, want %d", i, r.Status, r.EventID, out.Duplicates, tt.dup[i])
				}
				h.mustVerify()
			}
			if info := h.e.HostChecks("web-1"); len(info) != 1 || info[0].Status != tt.final {
				t.Errorf("checks %+v, want one at %s", info, tt.final)
			}
		})
	}
}

// TestSlotFlagsBelowWorst: the worst-status bits share slot.flags with the
// flags of state.go, which must stay below them.
func TestSlotFlagsBelowWorst(t *testing.T) {
	for _, f := range []uint16{fFlapping, fStale, fMaint, fMaintHost, fMember, fFailing, fPaging, fCheckpoint, fPending} {
		if f&fWorst != 0 {
			t.Errorf("flag %#x overlaps the worst-status bits %#x", f, fWorst)
		}
	}
}

// TestSlotSize guards the memory budget: a check slot is one cache line.
func TestSlotSize(t *testing.T) {
	if got := unsafe.Sizeof(slot{}); got != 64 {
		t.Fatalf("slot is %d bytes, want 64", got)
	}
}
