package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// readJournal parses testdata/journal.txt (format in its header).
func readJournal(t *testing.T, file string) []health.Transition {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []health.Transition
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fs := strings.Fields(text)
		if len(fs) == 0 {
			continue
		}
		if len(fs) < 6 {
			t.Fatalf("%s:%d: want OFFSET KIND LEVEL KEY FROM>TO SEVERITY [REASON]", file, line)
		}
		off, err := time.ParseDuration(fs[0])
		if err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		tr := health.Transition{Seq: uint64(len(out) + 1), Time: t0.Add(off)}
		if err := tr.Kind.UnmarshalText([]byte(fs[1])); err != nil {
			t.Fatalf("%s:%d: %v", file, line, err)
		}
		if fs[2] != "-" {
			if err := tr.Level.UnmarshalText([]byte(fs[2])); err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
		}
		parts := strings.Split(fs[3], "/")
		if len(parts) != 3 {
			t.Fatalf("%s:%d: key %q: want REGION/HOST/CHECK", file, line, fs[3])
		}
		for i, p := range parts {
			if p == "-" {
				parts[i] = ""
			}
		}
		tr.Key = health.Key{Region: parts[0], Host: parts[1], Check: parts[2]}
		var ok bool
		tr.From, tr.To, ok = strings.Cut(fs[4], ">")
		if !ok {
			t.Fatalf("%s:%d: %q: want FROM>TO", file, line, fs[4])
		}
		if fs[5] != "-" {
			if err := tr.Severity.UnmarshalText([]byte(fs[5])); err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
		}
		if len(fs) > 6 {
			tr.Reason = fs[6]
		}
		out = append(out, tr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func scanOf(ts []health.Transition) Scan {
	return func(fn func(*health.Transition) bool) error {
		for i := range ts {
			if !fn(&ts[i]) {
				return nil
			}
		}
		return nil
	}
}

func TestBuildFromHandWrittenJournal(t *testing.T) {
	journal := readJournal(t, "testdata/journal.txt")
	r, err := Build(scanOf(journal), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Transitions != len(journal) {
		t.Errorf("transitions %d, want %d", r.Transitions, len(journal))
	}
	if !r.From.Equal(t0) || !r.To.Equal(t0.Add(110*time.Minute)) {
		t.Errorf("span %s..%s, want %s..%s", r.From, r.To, t0, t0.Add(110*time.Minute))
	}
	if r.QuickWithinSeconds != 300 {
		t.Errorf("quick threshold %gs, want 300s", r.QuickWithinSeconds)
	}
	min := func(m float64) float64 { return m * 60 }
	want := []Check{
		// noise 2 each: lvm and raid tie on pages and hard failures too,
		// so the name decides; ntp has no page.
		{Check: "lvm", HardFailures: 3, Pages: 1, Flaps: 1, Resolved: 2, FailingNow: 1,
			MedianFailingSeconds: min(12), ResolvedQuickly: 1, QuickShare: 0.5, Noise: 2},
		{Check: "raid", HardFailures: 3, Pages: 1, Resolved: 3,
			MedianFailingSeconds: min(5), ResolvedQuickly: 2, QuickShare: 2.0 / 3, Noise: 2},
		{Check: "ntp", Flaps: 2, Noise: 2},
		// noise 0: by pages, then hard failures, then name.
		{Check: "dns", HardFailures: 1, Pages: 1, Resolved: 1, MedianFailingSeconds: min(60)},
		{Check: "not_reporting", Pages: 1},
		{Check: "registry", Pages: 1},
	}
	if !reflect.DeepEqual(r.Checks, want) {
		t.Errorf("checks:\n got %+v\nwant %+v", r.Checks, want)
	}
}

func TestForgottenHostIsNeitherFailingNorResolved(t *testing.T) {
	check := func(off time.Duration, host, from, to string) health.Transition {
		return health.Transition{Time: t0.Add(off), Kind: health.CheckChanged,
			Key: health.Key{Region: "r1", Host: host, Check: "raid"}, From: from, To: to}
	}
	journal := []health.Transition{
		check(0, "a", "soft", "hard"),
		check(0, "b", "soft", "hard"),
		check(2*time.Minute, "a", "hard", health.PhaseForgotten),
		check(3*time.Minute, "b", "hard", "passing"),
	}
	r, err := Build(scanOf(journal), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Check{{Check: "raid", HardFailures: 2, Resolved: 1, MedianFailingSeconds: 180,
		ResolvedQuickly: 1, QuickShare: 1, Noise: 1}}
	if !reflect.DeepEqual(r.Checks, want) {
		t.Errorf("checks:\n got %+v\nwant %+v", r.Checks, want)
	}
}

func TestQuickThresholdAndLimit(t *testing.T) {
	journal := readJournal(t, "testdata/journal.txt")
	// At 3m only raid's 3m failure is quick: raid drops below ntp (2
	// flaps) and lvm keeps its flap.
	r, err := Build(scanOf(journal), Options{QuickWithin: 3 * time.Minute, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range r.Checks {
		got = append(got, c.Check)
	}
	if want := []string{"ntp", "lvm", "raid"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ranking %v, want %v", got, want)
	}
	if r.Checks[2].ResolvedQuickly != 1 || r.Checks[1].ResolvedQuickly != 0 {
		t.Errorf("quick counts raid %d lvm %d, want 1 and 0", r.Checks[2].ResolvedQuickly, r.Checks[1].ResolvedQuickly)
	}
}

func TestMedian(t *testing.T) {
	m := time.Minute
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{7 * m}, 7 * m},
		{[]time.Duration{9 * m, 1 * m, 5 * m}, 5 * m},
		{[]time.Duration{1 * m, 4 * m}, 150 * time.Second},
		{[]time.Duration{10 * m, 2 * m, 4 * m, 100 * m}, 7 * m},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestScanErrorIsReported(t *testing.T) {
	broken := errors.New("journal entry 7: unexpected end of JSON input")
	_, err := Build(func(func(*health.Transition) bool) error { return broken }, Options{})
	if !errors.Is(err, broken) {
		t.Fatalf("error %v, want it to wrap %v", err, broken)
	}
}

func TestScanStopsWhenAsked(t *testing.T) {
	// Build reads everything: a scan honouring fn's false would cut the
	// report short.
	journal := readJournal(t, "testdata/journal.txt")
	n := 0
	_, err := Build(func(fn func(*health.Transition) bool) error {
		for i := range journal {
			n++
			if !fn(&journal[i]) {
				return nil
			}
		}
		return nil
	}, Options{})
	if err != nil || n != len(journal) {
		t.Fatalf("read %d of %d entries (err %v)", n, len(journal), err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r, err := Build(scanOf(readJournal(t, "testdata/journal.txt")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", back, *r)
	}
	for _, key := range []string{`"hard_failures"`, `"median_failing_seconds"`, `"quick_share"`, `"failing_now"`} {
		if !bytes.Contains(buf.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestEmptyJournal(t *testing.T) {
	r, err := Build(scanOf(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Transitions != 0 || len(r.Checks) != 0 || r.Checks == nil {
		t.Errorf("empty report %+v: want no transitions and an empty (not null) check list", r)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "no transitions") {
		t.Errorf("text %q does not say the journal is empty", buf.String())
	}
}

func TestText(t *testing.T) {
	r, err := Build(scanOf(readJournal(t, "testdata/journal.txt")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	want := []string{
		"noise report: 35 transitions from 2026-03-02T08:00:00Z to 2026-03-02T09:50:00Z",
		"",
		"  CHECK          HARD FAILURES  PAGES  FLAPS  MEDIAN FAILING  RESOLVED <= 5m  FAILING NOW",
		"  lvm                        3      1      1             12m       50% (1/2)            1",
		"  raid                       3      1      0              5m       67% (2/3)            0",
		"  ntp                        0      0      2               -               -            0",
		"  dns                        1      1      0              1h        0% (0/1)            0",
		"  not_reporting              0      1      0               -               -            0",
		"  registry                   0      1      0               -               -            0",
	}
	for i, w := range want {
		if i >= len(lines) || strings.TrimRight(lines[i], " ") != w {
			t.Fatalf("text output:\n%s\nline %d: want %q", buf.String(), i, w)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute:                 "5m",
		90 * time.Second:                "1m30s",
		time.Hour:                       "1h",
		time.Hour + 2*time.Minute:       "1h2m",
		42 * time.Second:                "42s",
		1500 * time.Millisecond:         "2s",
		2*time.Hour + 3*time.Second:     "2h0m3s",
		36*time.Hour + 30*time.Minute:   "36h30m",
		12*time.Minute + 30*time.Second: "12m30s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
