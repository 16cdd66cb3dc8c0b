package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func run(t testing.TB, opts replay.Options, in io.Reader) *replay.Summary {
	t.Helper()
	r, err := replay.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// noPending is the default configuration with rules that have no pending
// period: every alert series fires as it starts. Tests of what the engine
// decides on short streams use it.
func noPending() *config.Config {
	cfg := config.Default()
	cfg.Grafana = &config.Grafana{}
	return cfg
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDirectRouting counts a hand-written stream as a check-to-pager
// integration pages: once per (region, host, check) transition into
// critical, whatever the status spelling.
func TestDirectRouting(t *testing.T) {
	sum := run(t, replay.Options{}, bytes.NewReader(readFile(t, "testdata/direct.ndjson")))
	// Pages, by line: 2 (passing to critical), 6 (after a warning),
	// 8 (numeric 2 after ok), 9 (another host), 10 (another check),
	// 12 ("fail" after unknown), 15 (same host name, another region),
	// 16 (a Vector metric event with value 2). Lines 3 and 4 repeat
	// critical; 5, 11, 13 and 14 are warning or unknown.
	if sum.DirectPages != 8 {
		t.Errorf("direct pages %d, want 8", sum.DirectPages)
	}
	if sum.RawFailing != 14 {
		t.Errorf("raw failing %d, want 14", sum.RawFailing)
	}
	if sum.Events != 17 || sum.Rejected != 1 || len(sum.Errors) != 1 || !strings.HasPrefix(sum.Errors[0], "event 17: ") {
		t.Errorf("events %d, rejected %d %q: want 17 events, the last rejected", sum.Events, sum.Rejected, sum.Errors)
	}
}

// TestGoldenJSON holds the --format json output to golden files: the
// contract scripts and CI read. The hand-written stream ends with alerts
// still firing ("to": null).
func TestGoldenJSON(t *testing.T) {
	s, err := scenario.Load(filepath.Join(scenarioDir, "03-routing-loop.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	for golden, sum := range map[string]*replay.Summary{
		"testdata/03-routing-loop.golden.json": replayScenario(t, s, replay.Options{}),
		"testdata/direct.golden.json":          run(t, replay.Options{Config: noPending()}, bytes.NewReader(readFile(t, "testdata/direct.ndjson"))),
	} {
		var buf bytes.Buffer
		if err := sum.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if want := readFile(t, golden); !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("JSON output differs from %s (go test -run TestGoldenJSON -update to accept):\n%s", golden, buf.Bytes())
		}
		// Exactly the contract's keys.
		var top map[string]any
		if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
			t.Fatal(err)
		}
		if want := []string{"alerts", "direct_pages", "events", "pages", "raw_failing", "suppressed"}; !sameSet(keysOf(top), want) {
			t.Errorf("%s: keys %v, want exactly %v", golden, keysOf(top), want)
		}
		for _, a := range top["alerts"].([]any) {
			if want := []string{"check", "from", "host", "level", "region", "severity", "to"}; !sameSet(keysOf(a.(map[string]any)), want) {
				t.Errorf("%s: alert keys %v, want exactly %v", golden, keysOf(a.(map[string]any)), want)
			}
		}
	}
}

func keysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func TestEmptyJSONHasEmptyCollections(t *testing.T) {
	sum := run(t, replay.Options{}, strings.NewReader(""))
	var buf bytes.Buffer
	if err := sum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"events\": 0,\n  \"raw_failing\": 0,\n  \"direct_pages\": 0,\n  \"pages\": 0,\n  \"suppressed\": {},\n  \"alerts\": []\n}\n"
	if buf.String() != want {
		t.Errorf("empty replay JSON:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestCompressionDetected replays the same events plain, gzipped and
// zstd-compressed: the format is recognised from the bytes.
func TestCompressionDetected(t *testing.T) {
	gz := readFile(t, filepath.Join(scenarioDir, "01-cpu-steal.ndjson.gz"))
	plain := gunzip(t, gz)
	var zs bytes.Buffer
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	want := run(t, replay.Options{}, bytes.NewReader(plain))
	if want.Events == 0 || want.Pages != 5 {
		t.Fatalf("plain replay: %d events, %d pages", want.Events, want.Pages)
	}
	for name, in := range map[string][]byte{"gzip": gz, "zstd": zs.Bytes()} {
		got := run(t, replay.Options{}, bytes.NewReader(in))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: summary differs from the plain replay:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// TestChunkBoundaries replays with chunks far smaller than a round, so that
// batches span many chunks: the outcome must not change.
func TestChunkBoundaries(t *testing.T) {
	for _, name := range []string{"03-routing-loop", "10-region-silent", "07-flapping"} {
		plain := gunzip(t, readFile(t, filepath.Join(scenarioDir, name+".ndjson.gz")))
		var wantT, gotT []health.Transition
		want := run(t, replay.Options{OnTransition: func(tr *health.Transition) { wantT = append(wantT, *tr) }}, bytes.NewReader(plain))
		got := run(t, replay.Options{ChunkBytes: 3000, OnTransition: func(tr *health.Transition) { gotT = append(gotT, *tr) }},
			bytes.NewReader(plain))
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotT, wantT) {
			t.Errorf("%s: small chunks change the outcome:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// TestBatching: a batch closes one second after its first result, so a
// region outage spread over two seconds first pages hosts, and the same
// outage within one second pages the region only.
func TestBatching(t *testing.T) {
	stream := func(spread time.Duration) string {
		var b strings.Builder
		t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		for round := range 4 {
			for h := range 10 {
				status := "passing"
				if round >= 2 {
					status = "critical"
				}
				at := t0.Add(time.Duration(round)*30*time.Second + time.Duration(h)*spread/10)
				fmt.Fprintf(&b, `{"region":"r1","host":"h%d","check":"link","status":%q,"timestamp":%q}`+"\n",
					h, status, at.Format(time.RFC3339Nano))
			}
		}
		return b.String()
	}
	// Without a pending period every series counts: this is about what
	// the engine sees, not what Grafana makes of it.
	together := run(t, replay.Options{Config: noPending()}, strings.NewReader(stream(900*time.Millisecond)))
	if together.Pages != 1 || len(together.Alerts) != 1 || together.Alerts[0].Level != health.LevelRegion {
		t.Errorf("within a second: %d pages %+v, want the region alert only", together.Pages, together.Alerts)
	}
	spread := run(t, replay.Options{Config: noPending()}, strings.NewReader(stream(20*time.Second)))
	if spread.Pages <= 1 {
		t.Errorf("spread over 20 s: %d pages, want host alerts before the region alert", spread.Pages)
	}
	small := run(t, replay.Options{Config: noPending(), MaxBatch: 2}, strings.NewReader(stream(900*time.Millisecond)))
	if small.Pages <= 1 {
		t.Errorf("batches of 2: %d pages, want host alerts before the region alert", small.Pages)
	}
}

func TestRejections(t *testing.T) {
	long := `{"region":"r1","host":"a","check":"disk","status":"ok","output":"` + strings.Repeat("x", 1<<20) + `","timestamp":"2026-03-02T08:00:00Z"}`
	in := strings.Join([]string{
		`{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:00Z"}`,
		`not json`,
		`{"region":"r1","host":"a","check":"disk","status":"ok"}`,
		long,
		``,
		`{"region":"r1","host":"a","check":"disk","status":"sideways","timestamp":"2026-03-02T08:00:30Z"}`,
		`{"region":"r1","host":"a","check":"not_reporting","status":"ok","timestamp":"2026-03-02T08:00:30Z"}`,
		`{"region":"r1","host":"a","check":"disk","status":"critical","timestamp":"2026-03-02T08:01:00Z"}`,
	}, "\n")
	sum := run(t, replay.Options{}, strings.NewReader(in))
	if sum.Events != 7 || sum.Rejected != 5 || sum.DirectPages != 1 {
		t.Fatalf("events %d rejected %d direct %d: want 7, 5 and 1\n%s", sum.Events, sum.Rejected, sum.DirectPages,
			strings.Join(sum.Errors, "\n"))
	}
	for _, want := range []string{"event 2: invalid JSON", "event 3: no timestamp", "event 4: a line longer than",
		"event 5: invalid value \"sideways\"", "event 6: check name \"not_reporting\" is reserved"} {
		if !strings.Contains(strings.Join(sum.Errors, "\n"), want) {
			t.Errorf("errors %q do not mention %q", sum.Errors, want)
		}
	}
	// A chunk of nothing but garbage is rejected line by line.
	sum = run(t, replay.Options{}, strings.NewReader("garbage\nmore garbage\n"))
	if sum.Events != 2 || sum.Rejected != 2 {
		t.Errorf("garbage: events %d rejected %d, want 2 and 2", sum.Events, sum.Rejected)
	}
}

func TestJSONArrayRefused(t *testing.T) {
	r, err := replay.New(replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), strings.NewReader(`[{"region":"r1","host":"a","check":"disk","status":"ok"}]`))
	if err == nil || !strings.Contains(err.Error(), "NDJSON") {
		t.Errorf("JSON array: error %v, want one pointing to NDJSON", err)
	}
}

func TestCorruptGzip(t *testing.T) {
	gz := readFile(t, filepath.Join(scenarioDir, "02-storage-stuck.ndjson.gz"))
	r, err := replay.New(replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), bytes.NewReader(gz[:len(gz)/2])); err == nil {
		t.Error("a truncated gzip file replayed without error")
	}
}

func TestInvalidOptions(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	bad := config.Default()
	bad.Engine.Flap.High, bad.Engine.Flap.Low = 0.2, 0.4
	badRegex := config.Default()
	badRegex.Ingest.RegionFromHost = "("
	for name, opts := range map[string]replay.Options{
		"window without region":     {Windows: []health.Window{{Created: at, Until: at.Add(time.Hour)}}},
		"window ending before made": {Windows: []health.Window{{Region: "r1", Created: at, Until: at.Add(-time.Hour)}}},
		"window without created":    {Windows: []health.Window{{Region: "r1", Until: at}}},
		"engine thresholds":         {Config: bad},
		"ingest settings":           {Config: badRegex},
	} {
		if _, err := replay.New(opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestWindows: a window created before the first event applies from it;
// one over before the first event is skipped; a window on a check glob
// suppresses only that check.
func TestWindows(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	for round := range 6 {
		for _, check := range []string{"disk", "raid"} {
			fmt.Fprintf(&b, `{"region":"r1","host":"a","check":%q,"status":"critical","timestamp":%q}`+"\n",
				check, t0.Add(time.Duration(round)*30*time.Second).Format(time.RFC3339))
		}
	}
	windows := []health.Window{
		{Region: "r1", Host: "a", Check: "d*", Created: t0.Add(-time.Hour), Until: t0.Add(time.Hour), Reason: "disk swap"},
		{Region: "r1", Created: t0.Add(-2 * time.Hour), Until: t0.Add(-time.Hour), Reason: "long over"},
	}
	sum := run(t, replay.Options{Windows: windows}, strings.NewReader(b.String()))
	if sum.Windows != 1 || sum.WindowsOutside != 1 {
		t.Errorf("%d windows applied, %d outside the events; want 1 and 1", sum.Windows, sum.WindowsOutside)
	}
	if sum.Suppressed[health.SuppressedByMaintenance] != 1 || sum.Pages != 1 || len(sum.Alerts) != 1 || sum.Alerts[0].Check != "raid" {
		t.Errorf("suppressed %v pages %d alerts %+v: want disk suppressed, raid paging", sum.Suppressed, sum.Pages, sum.Alerts)
	}
}

// TestWindowsOutside counts the windows that cover none of the events'
// time: they were never applied.
func TestWindowsOutside(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	events := `{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:00Z"}
{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:10:00Z"}
`
	window := func(from, until time.Duration) health.Window {
		return health.Window{Region: "r1", Created: t0.Add(from), Until: t0.Add(until), Reason: "test"}
	}
	for _, tc := range []struct {
		name    string
		window  health.Window
		in      string
		outside int
	}{
		{"ends before the first event", window(-2*time.Hour, -time.Hour), events, 1},
		{"ends at the first event", window(-time.Hour, 0), events, 1},
		{"covers the first event", window(-time.Hour, time.Second), events, 0},
		{"created at the last event", window(10*time.Minute, time.Hour), events, 0},
		{"created after the last event", window(11*time.Minute, time.Hour), events, 1},
		{"spans the events", window(-time.Hour, time.Hour), events, 0},
		{"no events", window(-time.Hour, time.Hour), "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum := run(t, replay.Options{Windows: []health.Window{tc.window}}, strings.NewReader(tc.in))
			if sum.WindowsOutside != tc.outside || sum.Windows+sum.WindowsOutside != 1 {
				t.Errorf("%d windows outside, %d applied; want %d outside", sum.WindowsOutside, sum.Windows, tc.outside)
			}
		})
	}
}

// TestLongGap crosses two days without events in one tick: the silent
// check is found stale at the tick before the next event.
func TestLongGap(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	later := t0.Add(48 * time.Hour)
	in := fmt.Sprintf(`{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":%q}
{"region":"r1","host":"b","check":"disk","status":"ok","timestamp":%q}
`, t0.Format(time.RFC3339), later.Format(time.RFC3339))
	var stale []time.Time
	start := time.Now()
	sum := run(t, replay.Options{Config: noPending(), OnTransition: func(tr *health.Transition) {
		if tr.To == health.PhaseStale {
			stale = append(stale, tr.Time)
		}
	}}, strings.NewReader(in))
	if len(stale) != 1 || !stale[0].Equal(later) {
		t.Errorf("stale transitions at %v, want one at %s", stale, later)
	}
	if sum.Pages != 1 || sum.Alerts[0].Check != health.NotReporting {
		t.Errorf("alerts %+v: want host a not reporting", sum.Alerts)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a two-day gap took %s: it must not be ticked through", d)
	}
}

func TestProgress(t *testing.T) {
	plain := gunzip(t, readFile(t, filepath.Join(scenarioDir, "03-routing-loop.ndjson.gz")))
	var calls []replay.Progress
	clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	sum := run(t, replay.Options{
		ChunkBytes: 64 << 10,
		Now:        func() time.Time { clock = clock.Add(400 * time.Millisecond); return clock },
		Progress:   func(p replay.Progress) { calls = append(calls, p) },
	}, bytes.NewReader(plain))
	// 4.4 MB in 64 KiB chunks is ~70 chunks, one clock read each at 0.4 s
	// a read: a report every third chunk.
	if len(calls) < 15 || len(calls) > 40 {
		t.Fatalf("%d progress reports, want about one every 3 chunks", len(calls))
	}
	last := calls[len(calls)-1]
	for i := 1; i < len(calls); i++ {
		if calls[i].Events < calls[i-1].Events || calls[i].EventTime.Before(calls[i-1].EventTime) {
			t.Fatalf("progress went backwards: %+v after %+v", calls[i], calls[i-1])
		}
	}
	if last.Events > sum.Events || last.Bytes > int64(len(plain)) || last.Bytes == 0 || last.EventTime.IsZero() {
		t.Errorf("last progress %+v inconsistent with %d events, %d bytes", last, sum.Events, len(plain))
	}
}

func TestCancel(t *testing.T) {
	plain := gunzip(t, readFile(t, filepath.Join(scenarioDir, "03-routing-loop.ndjson.gz")))
	r, err := replay.New(replay.Options{ChunkBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, bytes.NewReader(plain)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v, want context.Canceled", err)
	}
}

func TestConfigChangesTheOutcome(t *testing.T) {
	// Trying thresholds is the point of replay: with a region rollup that
	// needs half the hosts, 9 of 24 memory warnings stay host alerts.
	s, err := scenario.Load(filepath.Join(scenarioDir, "06-memory-short.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Engine.Region.OutageRatio = 0.5
	sum := replayScenario(t, s, replay.Options{Config: cfg})
	if len(sum.Alerts) != 9 || sum.Alerts[0].Level != health.LevelHost || sum.Pages != 0 {
		t.Errorf("with outage_ratio 0.5: %d alerts (%+v), %d pages; want 9 host warnings, no page",
			len(sum.Alerts), sum.Alerts, sum.Pages)
	}
}

func TestChangeString(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 3, 31, 0, time.UTC)
	for _, tc := range []struct {
		c    replay.Change
		want string
	}{
		{replay.Change{Time: at, What: replay.ChangeFiring, Level: health.LevelRegion, Region: "eu-west",
			Check: "connectivity", Severity: health.SeverityCritical},
			"2026-03-02T08:03:31Z  firing      region  eu-west     -                                   connectivity   critical"},
		{replay.Change{Time: at, What: replay.ChangeNotified, Level: health.LevelRegion, Region: "eu-west",
			Check: "connectivity", Severity: health.SeverityCritical, Page: true},
			"2026-03-02T08:03:31Z  notified    region  eu-west     -                                   connectivity   critical  PAGE"},
		{replay.Change{Time: at, What: replay.ChangeResolved, Level: health.LevelHost, Region: "eu-west",
			Host: "web-042.eu-west.example.com", Check: "connectivity", Severity: health.SeverityCritical,
			Brief: true, Pending: 2 * time.Minute},
			"2026-03-02T08:03:31Z  resolved    host    eu-west     web-042.eu-west.example.com         connectivity   critical  (within the 2m pending period: not notified)"},
		{replay.Change{Time: at, What: replay.ChangeSuppressed, Level: health.LevelHost, Region: "eu-west",
			Host: "web-042.eu-west.example.com", Check: "ntp", Severity: health.SeverityCritical, Reason: "flapping"},
			"2026-03-02T08:03:31Z  suppressed  host    eu-west     web-042.eu-west.example.com         ntp            critical  (flapping)"},
		{replay.Change{Time: at, What: replay.ChangeResolved, Level: health.LevelHost, Region: "eu-west",
			Host: "web-042.eu-west.example.com", Check: "lvm", Severity: health.SeverityCritical},
			"2026-03-02T08:03:31Z  resolved    host    eu-west     web-042.eu-west.example.com         lvm            critical"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("got\n%q\nwant\n%q", got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	s, err := scenario.Load(filepath.Join(scenarioDir, "08-drained-host.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := replayScenario(t, s, replay.Options{})
	var buf bytes.Buffer
	if err := sum.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"replayed 32160 events from 2026-03-02T08:00:02Z to 2026-03-02T08:14:59Z: 0 rejected, 0 duplicates",
		"1 maintenance window\n",
		"direct-routing pages  11",
		"healthrouter pages    0",
		"suppressions          11   maintenance 11",
		"no alert fired",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, buf.String())
		}
	}
	if err := sum.WriteText(failingWriter{}); err == nil {
		t.Error("a failing writer's error was lost")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestLateEvents: input sorted by host instead of time is counted and
// reported, not silently replayed at the wrong time.
func TestLateEvents(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	for _, host := range []string{"a", "b", "c"} {
		for round := range 10 {
			fmt.Fprintf(&b, `{"region":"r1","host":%q,"check":"disk","status":"critical","timestamp":%q}`+"\n",
				host, t0.Add(time.Duration(round)*30*time.Second).Format(time.RFC3339))
		}
	}
	sum := run(t, replay.Options{}, strings.NewReader(b.String()))
	// b's and c's first events are 4m30s older than the one before them;
	// each of their next ones still older than a's last.
	if sum.Late != 18 || sum.FirstLate != 11 || sum.LateBy != 270*time.Second {
		t.Errorf("late %d, first %d, by %s: want 18, event 11, 4m30s", sum.Late, sum.FirstLate, sum.LateBy)
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "warning: 18 events (the first is event 11)") ||
		!strings.Contains(text.String(), "put the input in time order") {
		t.Errorf("text lacks the late-event warning:\n%s", text.String())
	}
	// Within the batch window, a little disorder is what Vector sends.
	in := `{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:00.900Z"}
{"region":"r1","host":"b","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:00.100Z"}
`
	if sum := run(t, replay.Options{}, strings.NewReader(in)); sum.Late != 0 {
		t.Errorf("800 ms out of order: %d late, want 0", sum.Late)
	}
}

// TestPendingPeriod: an alert pages once it has been firing for its
// pending period, one that resolves sooner is brief, and one still inside
// its period when the events end is counted as pending, not as a page.
func TestPendingPeriod(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var b strings.Builder
	for round := range 10 {
		for _, host := range []string{"a", "b", "c"} {
			status := "ok"
			switch {
			case host == "a",
				host == "b" && round >= 8,
				host == "c" && (round == 2 || round == 3):
				status = "critical"
			}
			fmt.Fprintf(&b, `{"region":"r1","host":%q,"check":"disk","status":%q,"timestamp":%q}`+"\n",
				host, status, t0.Add(time.Duration(round)*30*time.Second).Format(time.RFC3339))
		}
	}
	var notified []string
	sum := run(t, replay.Options{OnChange: func(c replay.Change) {
		if c.What == replay.ChangeNotified {
			notified = append(notified, c.Host+" "+c.Time.Sub(t0).String())
		}
	}}, strings.NewReader(b.String()))
	// a confirms at 30s and pages at 2m30s; c fires at 1m30s and resolves
	// at 2m; b fires at 4m30s, the last event.
	if sum.Pages != 1 || sum.Brief != 1 || sum.StillPending != 1 {
		t.Errorf("pages %d, brief %d, still pending %d: want 1 each", sum.Pages, sum.Brief, sum.StillPending)
	}
	if want := []string{"a 2m30s"}; !slices.Equal(notified, want) {
		t.Errorf("notified %q, want %q", notified, want)
	}
	if len(sum.Alerts) != 1 || sum.Alerts[0].Host != "a" || !sum.Alerts[0].From.Equal(t0.Add(30*time.Second)) {
		t.Errorf("alerts %+v: want a's, from 30s", sum.Alerts)
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"healthrouter pages    1   alerts at critical or error severity firing unsuppressed for the pending period (host 2m, region 1m)",
		"brief alerts          1   ended within their pending period: never notified (1 more still pending at the end)",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	// The configuration's pending periods apply.
	cfg := config.Default()
	cfg.Grafana = &config.Grafana{Pending: config.Pending{Host: 30 * config.Duration(time.Second)}}
	// c's 30 s alert now pages; b's is still pending.
	if sum := run(t, replay.Options{Config: cfg}, strings.NewReader(b.String())); sum.Pages != 2 || sum.Brief != 0 || sum.StillPending != 1 {
		t.Errorf("host pending 30s: %d pages, %d brief, %d pending; want 2, 0 and 1", sum.Pages, sum.Brief, sum.StillPending)
	}
}
