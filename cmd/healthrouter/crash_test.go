package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashFleet is a deterministic fleet whose checks change state every few
// rounds, so most batches carry transitions.
type crashFleet struct {
	regions []string
	hosts   int
	checks  []string
	base    time.Time
}

func (f crashFleet) host(region string, i int) string {
	return fmt.Sprintf("node-%02d.%s", i, region)
}

func (f crashFleet) status(round int, host, check string) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%s/%s", round/3, host, check)
	if h.Sum32()%5 == 0 {
		return "critical"
	}
	return "passing"
}

func (f crashFleet) ts(round int) time.Time {
	return f.base.Add(time.Duration(round) * 30 * time.Second)
}

// batch is one round of every check, as a Vector JSON array.
func (f crashFleet) batch(round int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	first := true
	for _, r := range f.regions {
		for i := 0; i < f.hosts; i++ {
			host := f.host(r, i)
			for _, c := range f.checks {
				if !first {
					b.WriteByte(',')
				}
				first = false
				fmt.Fprintf(&b, `{"check":%q,"event_id":"%s-%s-%d","host":%q,"region":%q,"status":%q,"timestamp":%q}`,
					c, host, c, round, host, r, f.status(round, host, c), f.ts(round).Format(time.RFC3339Nano))
			}
		}
	}
	b.WriteByte(']')
	return []byte(b.String())
}

type hostChecks struct {
	Checks []struct {
		Check   string    `json:"check"`
		Status  string    `json:"status"`
		Updated time.Time `json:"updated"`
	} `json:"checks"`
}

// TestCrashLosesNothingAcknowledged kills the real binary with SIGKILL at
// random moments while batches flow, restarts it, and checks that every
// acknowledged result is in the state it restored.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the binary repeatedly")
	}
	f := crashFleet{regions: []string{"eu", "us"}, hosts: 10, checks: []string{"disk", "lvm", "raid", "dns", "ntp"},
		base: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(7))
	acked := -1 // the last round acknowledged with a 2xx
	sent := -1  // the newest round ever posted
	round := 0
	for cycle := 0; cycle < 6; cycle++ {
		p := start(t, dir)
		if acked >= 0 {
			verifyRestored(t, p, f, acked, sent)
		}
		var mu sync.Mutex
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				mu.Lock()
				r := round
				round++
				sent = max(sent, r)
				mu.Unlock()
				code := p.post(f.batch(r))
				if code != 200 {
					return // killed mid-request: not acknowledged
				}
				mu.Lock()
				acked = r
				mu.Unlock()
			}
		}()
		time.Sleep(time.Duration(50+rng.Intn(400)) * time.Millisecond)
		p.kill(t)
		<-stopped
		// Vector resends what was not acknowledged; the next cycle's
		// sender starts after the last acknowledged round instead, which
		// is the harder case for the store: nothing papers over a loss.
		round = acked + 1
	}
	p := start(t, dir)
	verifyRestored(t, p, f, acked, sent)
	if acked < 5 {
		t.Fatalf("only %d rounds acknowledged: the test did not exercise anything", acked+1)
	}
}

// verifyRestored checks that no acknowledged transition was lost: each
// check's restored status is one the fleet sent at or after the last
// acknowledged round, and its state is at least as new as the check's last
// change up to that round. (A result equal to the state only refreshes
// last-seen, which is checkpointed, not committed: Updated may lag for
// checks that did not change.)
func verifyRestored(t *testing.T, p *proc, f crashFleet, acked, sent int) {
	t.Helper()
	for _, r := range f.regions {
		for i := 0; i < f.hosts; i++ {
			host := f.host(r, i)
			var hc hostChecks
			p.get(t, "/v1/hosts/"+host, &hc)
			if len(hc.Checks) != len(f.checks) {
				t.Fatalf("%s: %d checks restored, want %d", host, len(hc.Checks), len(f.checks))
			}
			for _, c := range hc.Checks {
				lastChange := 0
				for r := 1; r <= acked; r++ {
					if f.status(r, host, c.Check) != f.status(r-1, host, c.Check) {
						lastChange = r
					}
				}
				updated := c.Updated.UTC()
				if updated.Before(f.ts(lastChange)) {
					t.Fatalf("%s/%s: restored state from %s, but the change at round %d (%s) was acknowledged: lost",
						host, c.Check, updated, lastChange, f.ts(lastChange))
				}
				ok := false
				for r := acked; r <= sent; r++ {
					ok = ok || f.status(r, host, c.Check) == c.Status
				}
				if !ok {
					var hist []string
					for r := 0; r <= sent; r++ {
						hist = append(hist, f.status(r, host, c.Check)[:1])
					}
					t.Fatalf("%s/%s: restored status %s (updated %s) was not sent in rounds %d..%d; history %v",
						host, c.Check, c.Status, updated, acked, sent, hist)
				}
			}
		}
	}
}

type alertsView struct {
	Firing []struct {
		Level  string    `json:"level"`
		Region string    `json:"region"`
		Host   string    `json:"host"`
		Check  string    `json:"check"`
		Since  time.Time `json:"since"`
	} `json:"firing"`
}

type journalView struct {
	Transitions []struct {
		Seq  uint64 `json:"seq"`
		Kind string `json:"kind"`
	} `json:"transitions"`
}

// TestCrashKeepsAlertsFiring kills the binary while alerts fire and checks
// that after restart the same alerts fire with the same start, and that the
// restart itself wrote no alert transition (nothing resolved or re-fired).
func TestCrashKeepsAlertsFiring(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the binary")
	}
	f := crashFleet{regions: []string{"eu"}, hosts: 12, checks: []string{"disk", "lvm", "raid"},
		base: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)}
	dir := t.TempDir()
	p := start(t, dir)
	for r := 0; r < 8; r++ {
		if code := p.post(f.batch(r)); code != 200 {
			t.Fatalf("round %d: %d", r, code)
		}
	}
	var before alertsView
	p.get(t, "/v1/alerts", &before)
	if len(before.Firing) == 0 {
		t.Fatal("no alert firing: the fleet generator is wrong")
	}
	var j journalView
	p.get(t, "/v1/transitions?limit=10000", &j)
	lastSeq := j.Transitions[len(j.Transitions)-1].Seq
	p.kill(t)

	p = start(t, dir)
	var after alertsView
	p.get(t, "/v1/alerts", &after)
	if fmt.Sprint(before.Firing) != fmt.Sprint(after.Firing) {
		t.Fatalf("alerts changed across a crash:\nbefore %v\nafter  %v", before.Firing, after.Firing)
	}
	var since journalView
	p.get(t, fmt.Sprintf("/v1/transitions?after=%d", lastSeq), &since)
	for _, tr := range since.Transitions {
		if tr.Kind == "alert" {
			t.Fatalf("restart wrote an alert transition: %+v", tr)
		}
	}
}

// steadyFleet is a region whose alert set is fixed after its first rounds
// while every batch still carries check transitions: web-00 and web-01 fail
// disk, web-03 fails heartbeat (a check rule gives it a short stale_after),
// and each host's blip check fails one round in ten, which makes it soft
// and back (confirm_after 2) without ever paging or flapping.
type steadyFleet struct {
	hosts int
	base  time.Time
	step  time.Duration
}

func (f steadyFleet) host(i int) string { return fmt.Sprintf("web-%02d.eu", i) }

// blip reports whether host i's blip check fails in round r.
func (f steadyFleet) blip(r, i int) bool { return (r+i)%10 == 0 }

func (f steadyFleet) batch(r int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	ts := f.base.Add(time.Duration(r) * f.step).Format(time.RFC3339Nano)
	for i := 0; i < f.hosts; i++ {
		status := map[string]string{"disk": "passing", "heartbeat": "passing", "blip": "passing"}
		if i < 2 {
			status["disk"] = "critical"
		}
		if i == 3 {
			status["heartbeat"] = "critical"
		}
		if f.blip(r, i) {
			status["blip"] = "critical"
		}
		for _, c := range []string{"blip", "disk", "heartbeat"} {
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"check":%q,"event_id":"%d-%d-%s","host":%q,"region":"eu","status":%q,"timestamp":%q}`,
				c, r, i, c, f.host(i), status[c], ts)
		}
	}
	b.WriteByte(']')
	return []byte(b.String())
}

type firingAlert struct {
	Level    string    `json:"level"`
	Region   string    `json:"region"`
	Host     string    `json:"host"`
	Check    string    `json:"check"`
	Severity string    `json:"severity"`
	Value    float64   `json:"value"`
	Since    time.Time `json:"since"`
}

type journalEntry struct {
	Seq   uint64          `json:"seq"`
	Kind  string          `json:"kind"`
	Level string          `json:"level"`
	Key   map[string]any  `json:"key"`
	From  string          `json:"from"`
	To    string          `json:"to"`
	Raw   json.RawMessage `json:"-"`
}

// journal reads every entry after seq.
func (p *proc) journal(t *testing.T, after uint64) []journalEntry {
	t.Helper()
	var out []journalEntry
	for {
		var page struct {
			Transitions []json.RawMessage `json:"transitions"`
		}
		p.get(t, fmt.Sprintf("/v1/transitions?after=%d&limit=10000", after), &page)
		if len(page.Transitions) == 0 {
			return out
		}
		for _, raw := range page.Transitions {
			var e journalEntry
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			e.Raw = raw
			out = append(out, e)
			after = e.Seq
		}
	}
}

// TestCrashAtRandomKeepsJournalAndAlerts SIGKILLs the binary at random
// moments while batches flow, in runs both shorter and longer than the
// checkpoint interval, and after each restart compares with what was
// acknowledged before the kill: every journal entry read before it is still
// there unchanged, every acknowledged batch's transitions are journaled, and
// the alert set is the one that fired from the first rounds, Since included,
// with no alert transition ever journaled after them (nothing resolved or
// re-fired). web-03's heartbeat has a stale_after shorter than the
// checkpoint interval: its persisted last-seen lags behind the others', and
// a restart must not take that for silence.
func TestCrashAtRandomKeepsJournalAndAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the binary repeatedly")
	}
	const checkpoint, staleAfter = 4 * time.Second, 3 * time.Second
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "healthrouter.yaml")
	cfg := fmt.Sprintf("engine:\n  checkpoint: %s\n  tick_every: 1s\nchecks:\n  - {match: heartbeat, stale_after: %s}\n", checkpoint, staleAfter)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	f := steadyFleet{hosts: 10, base: time.Now().Add(-time.Hour).UTC().Truncate(time.Second), step: 50 * time.Millisecond}
	rng := rand.New(rand.NewSource(11))

	var (
		mu       sync.Mutex
		acked    = -1 // the last round acknowledged with a 2xx
		seen     = map[uint64]journalEntry{}
		lastSeen uint64
		want     []firingAlert // the alert set once the first rounds are in
	)
	round := 0
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return acked
	}
	for cycle := 0; cycle < 8; cycle++ {
		p := start(t, data, "--config", cfgPath)
		if want != nil {
			var got struct{ Firing []firingAlert }
			p.get(t, "/v1/alerts", &got)
			if fmt.Sprint(got.Firing) != fmt.Sprint(want) {
				t.Fatalf("cycle %d: alerts after the restart differ from those acknowledged before the kill:\nafter  %+v\nbefore %+v",
					cycle, got.Firing, want)
			}
		}
		ackedBefore := acked
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				mu.Lock()
				r := round
				round++
				mu.Unlock()
				if p.post(f.batch(r)) != 200 {
					return // killed mid-request: not acknowledged
				}
				mu.Lock()
				acked = r
				mu.Unlock()
			}
		}()
		if cycle > 0 {
			verifyJournal(t, p, f, seen, ackedBefore)
		}
		if want == nil {
			for wait := time.Now().Add(time.Minute); ackedNow() < 3; {
				select {
				case <-stopped:
					t.Fatalf("the server refused a batch before three were acknowledged; logs:\n%s", p.logs.String())
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(wait) {
					t.Fatal("three batches not acknowledged within a minute")
				}
			}
			var got struct{ Firing []firingAlert }
			p.get(t, "/v1/alerts", &got)
			if len(got.Firing) != 3 {
				t.Fatalf("firing %+v, want web-00, web-01 and web-03", got.Firing)
			}
			want = got.Firing
		}
		// Runs alternate between shorter than the checkpoint interval and
		// long enough to cross one, the kill landing anywhere in it.
		run := time.Duration(200+rng.Intn(1500)) * time.Millisecond
		if cycle%2 == 1 {
			run = checkpoint + time.Duration(500+rng.Intn(4000))*time.Millisecond
		}
		deadline := time.Now().Add(run)
		for time.Now().Before(deadline) {
			for _, e := range p.journal(t, lastSeen) {
				seen[e.Seq], lastSeen = e, e.Seq
			}
			time.Sleep(100 * time.Millisecond)
		}
		p.kill(t)
		<-stopped
		round = acked + 1 // resend from the first round not acknowledged
	}
	p := start(t, data, "--config", cfgPath)
	var got struct{ Firing []firingAlert }
	p.get(t, "/v1/alerts", &got)
	if fmt.Sprint(got.Firing) != fmt.Sprint(want) {
		t.Fatalf("alerts after the last restart:\n%+v\nwant %+v", got.Firing, want)
	}
	// The fleet keeps reporting while the journal is read: silence past
	// the grace period would be a real (journaled) alert change.
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for r := acked + 1; ; r++ {
			select {
			case <-done:
				return
			default:
			}
			if p.post(f.batch(r)) != 200 {
				return
			}
		}
	}()
	defer func() { close(done); <-stopped }()
	verifyJournal(t, p, f, seen, acked)
	var changes []string // alerts, and web-03's heartbeat for context
	alerts := 0
	for _, e := range p.journal(t, 0) {
		if e.Kind == "alert" {
			alerts++
		}
		if e.Kind == "alert" || (e.Key["host"] == f.host(3) && e.Key["check"] == "heartbeat") {
			changes = append(changes, string(e.Raw))
		}
	}
	if alerts != 3 {
		t.Fatalf("journal:\n%s\nwant only the three alerts firing once", strings.Join(changes, "\n"))
	}
	if acked < 100 || len(seen) < 100 {
		t.Fatalf("%d rounds acknowledged, %d journal entries seen: the test exercised too little", acked+1, len(seen))
	}
}

// verifyJournal checks the restored journal against what was acknowledged:
// every entry read before the kill is present and unchanged, and every
// acknowledged round's blip failures are journaled (as many passing->soft
// transitions per host as acknowledged rounds made).
func verifyJournal(t *testing.T, p *proc, f steadyFleet, seen map[uint64]journalEntry, acked int) {
	t.Helper()
	journal := p.journal(t, 0)
	bySeq := make(map[uint64]journalEntry, len(journal))
	soft := map[string]int{}
	for _, e := range journal {
		bySeq[e.Seq] = e
		if e.Kind == "check" && e.Key["check"] == "blip" && e.To == "soft" {
			soft[fmt.Sprint(e.Key["host"])]++
		}
	}
	for seq, e := range seen {
		got, ok := bySeq[seq]
		if !ok {
			t.Fatalf("journal entry %d (%s) read before the kill is gone", seq, e.Raw)
		}
		if string(got.Raw) != string(e.Raw) {
			t.Fatalf("journal entry %d changed across the restart:\nbefore %s\nafter  %s", seq, e.Raw, got.Raw)
		}
	}
	for i := 0; i < f.hosts; i++ {
		n := 0
		for r := 0; r <= acked; r++ {
			if f.blip(r, i) {
				n++
			}
		}
		if soft[f.host(i)] < n {
			t.Fatalf("%s: %d blip failures journaled, but %d were in acknowledged rounds", f.host(i), soft[f.host(i)], n)
		}
	}
}
