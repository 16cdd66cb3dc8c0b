package main

// The feed of the end-to-end test: a scenario's recorded events, posted to
// running healthrouter instances as Vector posts them, in batches, on a
// compressed wall clock, with the scenario's maintenance windows and
// restarts between the batches where they fall.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

// roundEvery is how long a round (30 s of event time, the fleet's check
// interval) lasts on the wall clock: the replay runs 120 times faster than
// the scenarios. Every duration the engine measures on the wall clock is
// scaled by the same factor in testdata/e2e/healthrouter.yaml (checkPace
// verifies it), so staleness behaves as in event time: a host silent for 20
// rounds goes stale after 10.5, a late round makes nobody stale. What the
// engine counts (confirm_after, flapping, region thresholds) needs no
// scaling.
const roundEvery = 250 * time.Millisecond

// maxLag is how far behind its pace the replay may fall before the test
// gives up on the machine. A late round delays its results on the receive
// clock; the tightest margin a scenario leaves is 8 rounds (the drained
// host's window ends 8 rounds after it recovers), staleness leaves 10.5.
const maxLag = 7 * roundEvery

// feedBatchWindow is how much event time one posted batch spans at most.
// Vector's http sink closes a batch a timeout after its first event; the
// hosts of a round report over the whole interval, so a round goes out in
// about interval / feedBatchWindow batches and a region-wide incident
// reaches healthrouter in parts, as it does in production. Ten seconds
// (83 ms on the wall clock) rather than Vector's default of one keeps the
// posts few enough for a busy machine to hold the pace.
const feedBatchWindow = 10 * time.Second

// scenarioFeed is a scenario's events cut into batches, ready to be posted.
type scenarioFeed struct {
	s *scenario.Scenario
	// batches in time order; none spans two rounds.
	batches []feedBatch
	// rounds counts the scenario's rounds; lastOfRound[k] is the index of
	// round k's last batch.
	rounds      int
	lastOfRound []int
}

// feedBatch is the events of one post. Windows and restarts happen before
// the first batch opening after them, and a batch is posted once it
// closes, as Vector sends a batch once it is complete.
type feedBatch struct {
	round       int
	events      []recordedEvent
	open, close time.Time // its first and last events, event time
}

// recordedEvent is one event of a scenario file: its JSON, its timestamp,
// and where in the JSON the timestamp's value (quotes included) is, to be
// moved to the wall clock.
type recordedEvent struct {
	json       []byte
	at         time.Time
	stampStart int
	stampEnd   int
}

// loadFeed reads a scenario's expected.json and its events.
func loadFeed(t *testing.T, expectedFile string) *scenarioFeed {
	t.Helper()
	s, err := scenario.Load(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	eventsFile := strings.TrimSuffix(expectedFile, ".expected.json") + ".ndjson.gz"
	f, err := os.Open(eventsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", eventsFile, err)
	}
	feed := &scenarioFeed{s: s, rounds: s.Rounds, lastOfRound: make([]int, s.Rounds)}
	interval := time.Duration(s.Fleet.IntervalSeconds) * time.Second
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		// The generator writes "timestamp":"<RFC 3339>" (pkg/scenario);
		// the events are not decoded, the instances do that.
		line := bytes.Clone(sc.Bytes())
		i := bytes.Index(line, timestampKey)
		end := -1
		if i >= 0 {
			i += len(timestampKey) - 1 // at the opening quote
			end = bytes.IndexByte(line[i+1:], '"')
		}
		if end < 0 {
			t.Fatalf("%s:%d: no \"timestamp\" string in %s", eventsFile, n, line)
		}
		end += i + 2 // past the closing quote
		at, err := time.Parse(time.RFC3339Nano, string(line[i+1:end-1]))
		if err != nil {
			t.Fatalf("%s:%d: timestamp: %v", eventsFile, n, err)
		}
		k := int(at.Sub(s.Start) / interval)
		if at.Before(s.Start) || k >= s.Rounds {
			t.Fatalf("%s:%d: %s is outside the scenario's %d rounds from %s", eventsFile, n, at, s.Rounds, s.Start)
		}
		ev := recordedEvent{json: line, at: at, stampStart: i, stampEnd: end}
		last := len(feed.batches) - 1
		switch {
		case last >= 0 && at.Before(feed.batches[last].close):
			t.Fatalf("%s:%d: %s is before the event above it: the feed needs events in time order", eventsFile, n, at)
		case last < 0 || feed.batches[last].round != k || !at.Before(feed.batches[last].open.Add(feedBatchWindow)):
			feed.batches = append(feed.batches, feedBatch{round: k, open: at, close: at, events: []recordedEvent{ev}})
		default:
			b := &feed.batches[last]
			b.events, b.close = append(b.events, ev), at
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", eventsFile, err)
	}
	if n != s.Events {
		t.Fatalf("%s: %d events, the scenario says %d", eventsFile, n, s.Events)
	}
	seen := make([]bool, s.Rounds)
	for i, b := range feed.batches {
		seen[b.round], feed.lastOfRound[b.round] = true, i
	}
	for k, ok := range seen {
		if !ok {
			t.Fatalf("%s: round %d is empty; the feed needs every round to report", eventsFile, k)
		}
	}
	return feed
}

var timestampKey = []byte(`"timestamp":"`)

// batchOf is the batch before which something at event time at happens,
// or -1 when it is after the last batch opened.
func (f *scenarioFeed) batchOf(at time.Time) int {
	for i := range f.batches {
		if !f.batches[i].open.Before(at) {
			return i
		}
	}
	return -1
}

// windowsBefore lists the maintenance windows created before batch i.
func (f *scenarioFeed) windowsBefore(t *testing.T, i int) []health.Window {
	t.Helper()
	var out []health.Window
	for _, w := range f.s.Windows {
		switch f.batchOf(w.Created) {
		case i:
			out = append(out, w)
		case -1:
			t.Fatalf("window %s is created after the last batch: the feed cannot place it", w.ID)
		}
	}
	return out
}

// restartsBefore reports whether healthrouter restarts before batch i.
func (f *scenarioFeed) restartsBefore(t *testing.T, i int) bool {
	t.Helper()
	for _, r := range f.s.Restarts {
		switch f.batchOf(r) {
		case i:
			return true
		case -1:
			t.Fatalf("restart at %s is after the last batch: the feed cannot place it", r)
		}
	}
	return false
}

// body renders batch i as Vector's http sink sends it (codec json: one
// JSON array, gzip), every result stamped with its own time on the wall
// clock.
func (f *scenarioFeed) body(t *testing.T, i int, clock *compressedClock) []byte {
	t.Helper()
	var array bytes.Buffer
	array.WriteByte('[')
	for i, ev := range f.batches[i].events {
		if i > 0 {
			array.WriteByte(',')
		}
		array.Write(ev.json[:ev.stampStart])
		array.WriteString(strconv.Quote(clock.wall(ev.at).UTC().Format(time.RFC3339Nano)))
		array.Write(ev.json[ev.stampEnd:])
	}
	array.WriteByte(']')
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(array.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressedClock places a scenario's event time on the wall clock, a
// round of event time (interval) taking roundEvery: the scenario's start
// falls on base.
type compressedClock struct {
	start    time.Time     // the scenario's start, event time
	interval time.Duration // a round of event time
	base     time.Time     // where start falls on the wall clock
}

// wall is when event time at falls on the wall clock.
func (c *compressedClock) wall(at time.Time) time.Time {
	scaled := float64(at.Sub(c.start)) * float64(roundEvery) / float64(c.interval)
	return c.base.Add(time.Duration(scaled))
}

// resume makes event time at fall no earlier than now: a restart's
// downtime is no time in the scenario, which restarts healthrouter between
// two rounds, so the rest of the scenario moves by it.
func (c *compressedClock) resume(at, now time.Time) {
	if late := now.Sub(c.wall(at)); late > 0 {
		c.base = c.base.Add(late)
	}
}

// e2eConfig is the configuration every instance under test runs with.
const e2eConfig = "../../testdata/e2e/healthrouter.yaml"

// Secrets the e2e configuration needs in the environment.
const (
	e2eAdminToken   = "e2e-admin-token-0123456789"
	e2eGrafanaToken = "e2e-grafana-token-0123456789"
	e2ePagerDutyKey = "e2e0123456789abcdef0123456789abc"
)

// setE2EEnv puts the secrets serve requires in the environment the
// instances inherit.
func setE2EEnv(t *testing.T) {
	t.Setenv("HEALTHROUTER_ADMIN_TOKEN", e2eAdminToken)
	t.Setenv("HEALTHROUTER_GRAFANA_TOKEN", e2eGrafanaToken)
	t.Setenv("HEALTHROUTER_PD_DEFAULT", e2ePagerDutyKey)
}

// instanceSet is the healthrouter processes a scenario feeds: one, or an HA
// pair fed the same events. Each keeps its port and data dir for the
// scenario, restarts included.
type instanceSet struct {
	addrs    []string
	dataDirs []string
	procs    []*proc
	client   *http.Client
	// slowestPost is the longest a round took to be acknowledged by every
	// instance: the most their receive clocks can disagree about it.
	slowestPost time.Duration
}

// startInstances starts one instance per address, each on a new data dir,
// and waits until all are ready.
func startInstances(t *testing.T, addrs []string) *instanceSet {
	t.Helper()
	set := &instanceSet{addrs: addrs, client: &http.Client{Timeout: 30 * time.Second}}
	for range addrs {
		set.dataDirs = append(set.dataDirs, filepath.Join(t.TempDir(), "data"))
	}
	set.startAll(t)
	t.Cleanup(set.client.CloseIdleConnections)
	return set
}

func (s *instanceSet) startAll(t *testing.T) {
	t.Helper()
	s.procs = s.procs[:0]
	for i, addr := range s.addrs {
		s.procs = append(s.procs, start(t, s.dataDirs[i], "--listen", addr, "--config", e2eConfig))
	}
}

// restart kills the instances with SIGKILL and starts them again on the
// same data dir and port: every one when only is negative, else only the
// one of that index (an HA pair keeps serving through the other).
func (s *instanceSet) restart(t *testing.T, only int) {
	t.Helper()
	for i, p := range s.procs {
		if only < 0 || i == only {
			p.kill(t)
		}
	}
	// Connections to the dead processes must not be reused.
	s.client.CloseIdleConnections()
	for i, addr := range s.addrs {
		if only < 0 || i == only {
			s.procs[i] = start(t, s.dataDirs[i], "--listen", addr, "--config", e2eConfig)
		}
	}
}

// stop ends every instance with SIGTERM and checks it exits cleanly.
func (s *instanceSet) stop(t *testing.T) {
	t.Helper()
	for _, p := range s.procs {
		p.stop(t)
	}
	s.client.CloseIdleConnections()
}

// ingestAnswer is POST /v1/events' 200 body.
type ingestAnswer struct {
	Accepted   int               `json:"accepted"`
	Duplicates int               `json:"duplicates"`
	Rejected   int               `json:"rejected"`
	Errors     []json.RawMessage `json:"errors"`
}

// post sends one round's body to every instance at once, as two Vector sinks
// would, and checks that each applied every event.
func (s *instanceSet) post(t *testing.T, body []byte, events int) {
	t.Helper()
	errs := make([]error, len(s.procs))
	began := time.Now()
	defer func() { s.slowestPost = max(s.slowestPost, time.Since(began)) }()
	var wg sync.WaitGroup
	for i, p := range s.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.postTo(p, body, events)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v\n%s", s.addrs[i], err, s.procs[i].logs)
		}
	}
}

func (s *instanceSet) postTo(p *proc, body []byte, events int) error {
	req, err := http.NewRequest(http.MethodPost, p.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST /v1/events: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("POST /v1/events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /v1/events: %d %s", resp.StatusCode, data)
	}
	var ans ingestAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return fmt.Errorf("POST /v1/events: %w in %s", err, data)
	}
	if ans.Accepted != events || ans.Rejected != 0 {
		return fmt.Errorf("POST /v1/events: %d events sent, answer %s", events, data)
	}
	return nil
}

// addWindow creates a scenario's maintenance window on every instance
// through the API, ending at until on the wall clock.
func (s *instanceSet) addWindow(t *testing.T, w health.Window, until time.Time) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"region": w.Region, "host": w.Host, "check": w.Check, "until": until.UTC().Format(time.RFC3339Nano), "reason": w.Reason,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range s.procs {
		req, err := http.NewRequest(http.MethodPost, p.url+"/v1/maintenance", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s: POST /v1/maintenance: %v", s.addrs[i], err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: POST /v1/maintenance %s: %d %s", s.addrs[i], body, resp.StatusCode, data)
		}
	}
}

// alertsAgree waits until every instance answers the same GET /v1/alerts,
// and fails when they still differ after a while: each instance decides
// staleness on its own ticks, so for a tick they may differ.
//
// The one thing two instances fed the same events do not share is their
// receive clock: staleness counts from when a result was received, so a
// not_reporting alert's since (and the time in its summary) is each
// instance's own, and may differ by as much as a delivery took.
func (s *instanceSet) alertsAgree(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		diff := s.alertsDiff(t)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the instances' /v1/alerts differ for 2s: %s", when, diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alertsDiff says how the instances' alerts differ, or "" when they agree.
func (s *instanceSet) alertsDiff(t *testing.T) string {
	t.Helper()
	var first map[string]string
	var firstSince map[string]time.Time
	for i, p := range s.procs {
		var answer struct {
			Firing     []map[string]any `json:"firing"`
			Suppressed []map[string]any `json:"suppressed"`
		}
		p.get(t, "/v1/alerts", &answer)
		alerts := map[string]string{}
		since := map[string]time.Time{}
		for _, a := range append(answer.Firing, answer.Suppressed...) {
			id := fmt.Sprint(a["level"], "/", a["region"], "/", a["host"], "/", a["check"], "/", a["suppressed_by"])
			if a["check"] == health.NotReporting {
				at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a["since"]))
				if err != nil {
					t.Fatalf("%s: alert %s: since: %v", s.addrs[i], id, err)
				}
				since[id] = at
				delete(a, "since")
				a["summary"] = receiveTime.ReplaceAllString(fmt.Sprint(a["summary"]), "last result <received>")
			}
			js, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			alerts[id] = string(js)
		}
		if i == 0 {
			first, firstSince = alerts, since
			continue
		}
		var diffs []string
		for id, a := range alerts {
			if first[id] != a {
				diffs = append(diffs, fmt.Sprintf("\n  %s: %s\n  %s: %s", s.addrs[0], orNone(first[id]), s.addrs[i], a))
			} else if d := since[id].Sub(firstSince[id]).Abs(); d > s.slowestPost {
				diffs = append(diffs, fmt.Sprintf("\n  %s: since differs by %s, more than the slowest delivery (%s)", id, d, s.slowestPost))
			}
		}
		for id, a := range first {
			if _, ok := alerts[id]; !ok {
				diffs = append(diffs, fmt.Sprintf("\n  %s: %s\n  %s: none", s.addrs[0], a, s.addrs[i]))
			}
		}
		if len(diffs) > 0 {
			slices.Sort(diffs)
			return fmt.Sprintf("%d alert(s) differ:%s", len(diffs), strings.Join(diffs[:min(len(diffs), 5)], ""))
		}
	}
	return ""
}

// receiveTime is the receive-clock time in a not reporting host's summary.
var receiveTime = regexp.MustCompile(`last result \S+`)

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func TestScenarioFeedPlacesWindowsAndRestarts(t *testing.T) {
	drained := loadFeed(t, "../../testdata/scenarios/08-drained-host.expected.json")
	restarted := loadFeed(t, "../../testdata/scenarios/11-restart-mid-incident.expected.json")
	for i, b := range drained.batches {
		// The window is created at round 5's boundary, before its results.
		first := i == 0 || drained.batches[i-1].round != b.round
		if got, want := len(drained.windowsBefore(t, i)), map[bool]int{true: 1}[first && b.round == 5]; got != want {
			t.Errorf("drained host: %d window(s) before batch %d (round %d), want %d", got, i, b.round, want)
		}
		if drained.restartsBefore(t, i) {
			t.Errorf("drained host: restart before batch %d, want none", i)
		}
	}
	// The restart is 15 s into round 14: before the first batch after it.
	at := restarted.s.Restarts[0]
	n := 0
	for i, b := range restarted.batches {
		if !restarted.restartsBefore(t, i) {
			continue
		}
		n++
		if b.round != 14 || b.open.Before(at) || (i > 0 && !restarted.batches[i-1].open.Before(at)) {
			t.Errorf("restart before batch %d (round %d, opening %s): want the first batch after %s", i, b.round, b.open, at)
		}
	}
	if n != 1 {
		t.Errorf("restart placed before %d batches, want 1", n)
	}
}

func TestScenarioFeedBodyIsAVectorBatch(t *testing.T) {
	feed := loadFeed(t, "../../testdata/scenarios/02-storage-stuck.expected.json")
	clock := &compressedClock{start: feed.s.Start, interval: 30 * time.Second,
		base: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	perRound := map[int]int{}
	batches := map[int]int{}
	failing := map[int]int{}
	hosts := map[int]map[string]bool{}
	for i, b := range feed.batches {
		zr, err := gzip.NewReader(bytes.NewReader(feed.body(t, i, clock)))
		if err != nil {
			t.Fatalf("batch %d: not gzip: %v", i, err)
		}
		var events []struct {
			Host, Region, Check, Status string
			Timestamp                   time.Time
			Interval                    int
		}
		if err := json.NewDecoder(zr).Decode(&events); err != nil {
			t.Fatalf("batch %d: not a JSON array: %v", i, err)
		}
		if b.close.Sub(b.open) >= feedBatchWindow {
			t.Errorf("batch %d spans %s, more than %s", i, b.close.Sub(b.open), feedBatchWindow)
		}
		from, to := clock.wall(b.open), clock.wall(b.close)
		for j, ev := range events {
			if ev.Timestamp.Before(from) || ev.Timestamp.After(to) || ev.Interval != 30 ||
				ev.Host == "" || ev.Region == "" || ev.Check == "" {
				t.Fatalf("batch %d: event %+v: want every field, stamped from %s to %s", i, ev, from, to)
			}
			if !ev.Timestamp.Equal(clock.wall(b.events[j].at)) {
				t.Fatalf("batch %d: event %d stamped %s, want %s", i, j, ev.Timestamp, clock.wall(b.events[j].at))
			}
			if ev.Status != "passing" {
				failing[b.round]++
			}
			if hosts[b.round] == nil {
				hosts[b.round] = map[string]bool{}
			}
			hosts[b.round][ev.Host] = true
		}
		perRound[b.round] += len(events)
		batches[b.round]++
	}
	for _, k := range []int{0, 6, 29} {
		// web-081 joins eu-west at round 6: 96 hosts x 11 checks, 16
		// registry hosts with one more, then 11 more.
		if want := map[int]int{0: 1072, 6: 1083, 29: 1083}[k]; perRound[k] != want {
			t.Errorf("round %d: %d events, want %d", k, perRound[k], want)
		}
		if want := map[int]int{0: 0, 6: 2, 29: 0}[k]; failing[k] != want {
			t.Errorf("round %d: %d failing results, want %d (lvm and raid of web-081)", k, failing[k], want)
		}
		// The hosts report over the whole interval: a round is several
		// posts, not one.
		if batches[k] < 3 || len(hosts[k]) != map[bool]int{true: 96, false: 97}[k == 0] {
			t.Errorf("round %d: %d batches from %d hosts, want at least 3 from every host", k, batches[k], len(hosts[k]))
		}
	}
}

func TestCompressedClock(t *testing.T) {
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &compressedClock{start: start, interval: 30 * time.Second, base: base}
	for _, tc := range []struct {
		event time.Time
		want  time.Duration // after base
	}{
		{start, 0},
		{start.Add(30 * time.Second), roundEvery},
		{start.Add(28 * 30 * time.Second), 28 * roundEvery},
		{start.Add(45 * time.Second), roundEvery * 3 / 2},
		{start.Add(-30 * time.Second), -roundEvery},
	} {
		if got := c.wall(tc.event).Sub(base); got != tc.want {
			t.Errorf("wall(%s) = base + %s, want base + %s", tc.event, got, tc.want)
		}
	}
	round3 := start.Add(90 * time.Second)
	c.resume(round3, base) // early: nothing moves
	if got := c.wall(round3).Sub(base); got != 3*roundEvery {
		t.Errorf("resume before due moved round 3 to base + %s", got)
	}
	restarted := base.Add(10 * roundEvery)
	c.resume(round3, restarted)
	if round4 := round3.Add(30 * time.Second); !c.wall(round3).Equal(restarted) || c.wall(round4).Sub(restarted) != roundEvery {
		t.Errorf("after resume: round 3 at %s, round 4 at %s; want %s and a round later", c.wall(round3), c.wall(round4), restarted)
	}
}
