package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/scenario"
)

const scenarioFiles = "../../testdata/scenarios/"

// runBinary runs the built healthrouter with args and stdin (nil: none) and
// returns its exit code and output.
func runBinary(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("healthrouter %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// replaySummary is the --format json contract (DESIGN §5).
type replaySummary struct {
	Events      int            `json:"events"`
	RawFailing  int            `json:"raw_failing"`
	DirectPages int            `json:"direct_pages"`
	Pages       int            `json:"pages"`
	Suppressed  map[string]int `json:"suppressed"`
	Alerts      []struct {
		Level, Region, Host, Check, Severity string
		From                                 string  `json:"from"`
		To                                   *string `json:"to"`
	} `json:"alerts"`
}

// replayJSON runs replay --format json and decodes its one object,
// refusing unknown keys.
func replayJSON(t *testing.T, stdin io.Reader, args ...string) replaySummary {
	t.Helper()
	code, out, errs := runBinary(t, stdin, append([]string{"replay", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var sum replaySummary
	if err := dec.Decode(&sum); err != nil {
		t.Fatalf("replay %v: %v in %s", args, err, out)
	}
	if dec.More() {
		t.Fatalf("replay %v: more than one JSON value: %s", args, out)
	}
	return sum
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary")
	}
}

// parallelReplay marks a replay command test parallel: each replays a
// scenario in its own process, and the package's timed tests (end to end,
// crash) are sequential, so they are over before these run.
func parallelReplay(t *testing.T) {
	t.Helper()
	skipShort(t)
	t.Parallel()
}

// TestReplayCommandScenario: --scenario applies the scenario's maintenance
// window, so the drained host pages nobody; without it, it pages.
func TestReplayCommandScenario(t *testing.T) {
	parallelReplay(t)
	events := scenarioFiles + "08-drained-host.ndjson.gz"
	with := replayJSON(t, nil, events, "--scenario", scenarioFiles+"08-drained-host.expected.json")
	if with.Events != 32160 || with.Pages != 0 || with.DirectPages != 11 || with.Suppressed["maintenance"] != 11 || len(with.Alerts) != 0 {
		t.Errorf("with the scenario's window: %+v; want 32160 events, no page, 11 direct, 11 suppressed by maintenance", with)
	}
	without := replayJSON(t, nil, events)
	if without.Pages != 1 || len(without.Alerts) != 1 || without.Alerts[0].Host != "web-065.eu-central.example.com" {
		t.Errorf("without the window: %+v; want web-065's host alert to page", without)
	}
}

// TestReplayCommandWindows: --windows takes a list of windows or GET
// /v1/maintenance's answer as is, and gives what --scenario does.
func TestReplayCommandWindows(t *testing.T) {
	parallelReplay(t)
	s, err := scenario.Load(scenarioFiles + "08-drained-host.expected.json")
	if err != nil {
		t.Fatal(err)
	}
	list, err := json.Marshal(s.Windows)
	if err != nil {
		t.Fatal(err)
	}
	listed, err := json.Marshal(map[string]any{"windows": s.Windows})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string][]byte{"list.json": list, "listed.json": listed} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, content, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := replayJSON(t, nil, scenarioFiles+"08-drained-host.ndjson.gz", "--windows", file)
		if sum.Pages != 0 || sum.Suppressed["maintenance"] != 11 {
			t.Errorf("--windows %s: %d pages, suppressed %v; want none and 11 by maintenance", name, sum.Pages, sum.Suppressed)
		}
	}
	for name, content := range map[string]string{
		"object.json":  `{"window": []}`,
		"garbage.json": `not json`,
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runBinary(t, nil, "replay", scenarioFiles+"08-drained-host.ndjson.gz", "--windows", file)
		if code == 0 || !strings.Contains(errs, `want a JSON array of windows or {"windows":[...]}`) {
			t.Errorf("--windows %s: exit %d, %q; want a failure naming both shapes", name, code, errs)
		}
	}
}

// TestReplayCommandRestartAndStdin: a restart mid-incident changes nothing
// in the outcome, and stdin replays as the file does.
func TestReplayCommandRestartAndStdin(t *testing.T) {
	parallelReplay(t)
	events := scenarioFiles + "02-storage-stuck.ndjson.gz"
	plain := replayJSON(t, nil, events)
	restarted := replayJSON(t, nil, events, "--restart-at", "2026-03-02T08:07:15Z", "--restart-at", "2026-03-02T08:09:40Z")
	if plain.Pages != 1 || !jsonEqual(t, plain, restarted) {
		t.Errorf("restarts changed the outcome:\n plain     %+v\n restarted %+v", plain, restarted)
	}
	if code, _, errs := runBinary(t, nil, "replay", events, "--restart-at", "08:07"); code == 0 || !strings.Contains(errs, "RFC3339") {
		t.Errorf("--restart-at 08:07: exit %d, %q; want a failure naming the format", code, errs)
	}

	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if stdin := replayJSON(t, f, "-"); !jsonEqual(t, stdin, plain) {
		t.Errorf("stdin: %+v, want what the file gives: %+v", stdin, plain)
	}
}

// TestReplayCommandText: the timeline, then the summary, with the pages
// marked, the brief alerts and the restart counted.
func TestReplayCommandText(t *testing.T) {
	parallelReplay(t)
	code, out, errs := runBinary(t, nil, "replay", scenarioFiles+"03-routing-loop.ndjson.gz", "--restart-at", "2026-03-02T08:07:15Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\S+  firing      region  eu-central  -\s+connectivity   critical$`),
		regexp.MustCompile(`(?m)^\S+  notified    region  eu-central  -\s+connectivity   critical  PAGE$`),
		regexp.MustCompile(`(?m)  resolved    host    eu-central  \S+\s+connectivity   critical  \(within the 2m pending period: not notified\)$`),
		regexp.MustCompile(`(?m)^healthrouter pages\s+1\s`),
		regexp.MustCompile(`(?m)^direct-routing pages\s+24\s`),
		regexp.MustCompile(`(?m)^brief alerts\s+\d+\s+ended within their pending period`),
		regexp.MustCompile(`(?m)^replayed 32160 events .*, 1 restart$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if errs != "" {
		t.Errorf("stderr %q, want nothing (not a terminal, no --progress)", errs)
	}
}

// TestReplayCommandProgress shows progress on stderr, one line per update
// when it is not a terminal, the events growing to the file's end.
func TestReplayCommandProgress(t *testing.T) {
	parallelReplay(t)
	code, out, errs := runBinary(t, nil, "replay", scenarioFiles+"03-routing-loop.ndjson.gz", "--format", "json",
		"--progress", "--progress-every", "1ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	line := regexp.MustCompile(`^replay: (\d+) events \((\d+)% of \d+ MB\), at 2026-03-02T08:\d\d:\d\dZ, \d+ events/s, \d+ pages \(direct routing \d+\)$`)
	var counts []int
	sc := bufio.NewScanner(strings.NewReader(errs))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("progress line %q", sc.Text())
		}
		n, _ := strconv.Atoi(m[1])
		counts = append(counts, n)
	}
	// 4.4 MB of NDJSON in 1 MiB chunks: a line after most of them.
	if len(counts) < 3 || !slices.IsSorted(counts) || counts[len(counts)-1] > 32160 {
		t.Errorf("progress lines at %v events: want several, growing to at most 32160", counts)
	}
	if !json.Valid([]byte(out)) {
		t.Errorf("stdout is not the JSON summary alone: %s", out)
	}
}

// TestReplayCommandWarnsOfLateEvents: input sorted by host instead of time
// is replayed with a warning on stderr and in the summary.
func TestReplayCommandWarnsOfLateEvents(t *testing.T) {
	parallelReplay(t)
	f, err := os.Open(scenarioFiles + "02-storage-stuck.ndjson.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	host := regexp.MustCompile(`"host":"[^"]*"`)
	slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(host.FindString(a), host.FindString(b)) })
	code, out, errs := runBinary(t, strings.NewReader(strings.Join(lines, "")), "replay", "-")
	if code != exitLate {
		t.Fatalf("exit %d, want %d: %s", code, exitLate, errs)
	}
	if !strings.Contains(errs, "replay: warning:") || !strings.Contains(errs, "not in time order") {
		t.Errorf("stderr lacks the warning: %q", errs)
	}
	if !strings.Contains(out, "put the input in time order") {
		t.Errorf("summary lacks the warning:\n%s", out)
	}
}

func TestReplayCommandUsageErrors(t *testing.T) {
	parallelReplay(t)
	events := scenarioFiles + "02-storage-stuck.ndjson.gz"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "want exactly one FILE"},
		{[]string{"replay", events, events}, "want exactly one FILE"},
		{[]string{"replay", events, "--format", "xml"}, `--format "xml"`},
		{[]string{"replay", events, "--format", "json", "--report"}, "--report prints text"},
	} {
		if code, _, errs := runBinary(t, nil, tc.args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := runBinary(t, nil, "replay", filepath.Join(t.TempDir(), "missing.ndjson")); code == 0 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// A recording in which every event is rejected is an error, with the first
// reason: "no alert fired" would read as a quiet day.
func TestReplayCommandEveryEventRejected(t *testing.T) {
	dir := t.TempDir()
	const valid = `{"check":"disk","host":"web-1","region":"eu","status":"critical","timestamp":"2026-03-02T08:00:00Z"}`
	for _, tc := range []struct {
		name   string
		lines  string
		format string
		code   int
		want   string
	}{
		{"every event invalid", `{"check":"disk"}` + "\n" + `{"host":"x","region":"eu","status":"ok"}` + "\n", "text", 1,
			`every event was rejected (2 of 2); the first: event 1: missing required field "host"`},
		{"json format too", `{"check":"disk"}` + "\n", "json", 1, "every event was rejected (1 of 1)"},
		{"not JSON at all", "check=disk host=web-1\n", "text", 1, "every event was rejected (1 of 1); the first: event 1: undecodable body"},
		{"some valid", valid + "\n" + `{"host":"x"}` + "\n", "text", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".ndjson")
			if err := os.WriteFile(file, []byte(tc.lines), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCLI("replay", file, "--format", tc.format)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if tc.code == 0 {
				if !strings.Contains(stdout, "1 rejected") {
					t.Errorf("summary lacks the rejection:\n%s", stdout)
				}
				return
			}
			if want := "healthrouter replay: " + file + ": " + tc.want; !strings.HasPrefix(stderr, want) {
				t.Errorf("stderr %q, want it to start %q", stderr, want)
			}
			if stdout != "" {
				t.Errorf("printed a summary of nothing:\n%s", stdout)
			}
		})
	}
}
