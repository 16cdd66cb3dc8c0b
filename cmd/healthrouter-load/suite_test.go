package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// healthrouterBinary builds the real server once for the suites below.
func healthrouterBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the healthrouter binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "healthrouter-load-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "healthrouter")
		out, err := exec.Command("go", "build", "-o", binPath, "../healthrouter").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build healthrouter: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func runHarness(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func figuresByName(t *testing.T, path string) map[string]Figure {
	t.Helper()
	rep, err := loadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Figure{}
	for _, f := range rep.Figures {
		out[f.Name] = f
	}
	return out
}

// TestBenchSuite runs `make bench`'s suite, scaled down, against the real
// binary: every figure is measured and saved, profiles are taken.
func TestBenchSuite(t *testing.T) {
	bin := healthrouterBinary(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "bench.json")
	profiles := filepath.Join(dir, "profiles")
	code, stdout, stderr := runHarness(t, "bench", "--server", bin, "--count", "1", "--duration", "1s",
		"--warmup", "200ms", "--checks", "3000", "--million", "20000", "--concurrency", "2",
		"--reconcile", "testdata/reconcile-bench.txt", "--profile", profiles, "--json", report,
		"--scratch", filepath.Join(dir, "scratch"))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	figs := figuresByName(t, report)
	positive := []string{
		"ingest_events_per_sec", "ingest_p99_ms", "ingest_server_cores", "ingest_server_peak_rss_mib",
		"half_rate_events_per_sec", "half_rate_p99_ms", "new_checks_events_per_sec",
		"ingest_shuffled_events_per_sec", "ingest_shuffled_p99_ms", "steady_pass_events_per_sec",
		"heap_per_check_bytes", "heap_per_check_restart_bytes", "startup_seconds", "state_load_seconds",
		"anon_rss_per_check_bytes", "anon_rss_per_check_restart_bytes",
		"shutdown_seconds", "reconcile_100_regions_first_ms",
	}
	for _, name := range positive {
		if f, ok := figs[name]; !ok || f.Value <= 0 {
			t.Errorf("figure %s: %+v", name, f)
		}
	}
	// The process's own memory holds at least the live heap, and RSS at
	// least that: the three are measured at the same moments. Each is a
	// difference from the empty server's, divided by 20,000 checks: the
	// runtime keeping or returning a MiB between the two readings moves a
	// figure by 52 B, so that much is allowed.
	const noise = float64(1<<20) / 20000
	for _, when := range []string{"", "_restart"} {
		heap, anon, rss := figs["heap_per_check"+when+"_bytes"].Value, figs["anon_rss_per_check"+when+"_bytes"].Value, figs["rss_per_check"+when+"_bytes"].Value
		if anon < heap-noise || rss < anon-noise {
			t.Errorf("per check%s: heap %.0f B, anonymous RSS %.0f B, RSS %.0f B: want heap <= anonymous <= RSS", when, heap, anon, rss)
		}
	}
	// The half-rate run is paced at half the best maximum run.
	if half, full := figs["half_rate_events_per_sec"].Value, figs["ingest_events_per_sec"].Value; half > 0.6*full || half < 0.4*full {
		t.Errorf("half rate ran at %.0f events/s against a maximum of %.0f", half, full)
	}
	for _, p := range []string{"ingest-cpu.pprof", "million-heap.pprof"} {
		if st, err := os.Stat(filepath.Join(profiles, p)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", p, err)
		}
	}
	if !strings.Contains(stdout, "start-up to ready") || !strings.Contains(stdout, "shuffled") || !strings.Contains(stdout, "report saved to") {
		t.Errorf("table:\n%s", stdout)
	}
	rep, err := loadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settings["shape"] != "pipeline" || rep.Settings["scratch_fs"] == "" || rep.Settings["scratch_fs"] == nil ||
		!strings.HasPrefix(rep.Settings["scratch_dir"].(string), filepath.Join(dir, "scratch")) {
		t.Errorf("settings %v", rep.Settings)
	}
}

// TestBenchMissProfiles: with --strict a missed ingest target fails the
// suite, and the miss is profiled on its own.
func TestBenchMissProfiles(t *testing.T) {
	bin := healthrouterBinary(t)
	dir := t.TempDir()
	scratch := filepath.Join(dir, "scratch")
	code, stdout, stderr := runHarness(t, "bench", "--server", bin, "--count", "1", "--duration", "1s",
		"--warmup", "100ms", "--checks", "2000", "--million", "5000", "--concurrency", "2",
		"--ingest-target", "1e12", "--strict", "--scratch", scratch)
	if code != 3 || !strings.Contains(stderr, "targets missed") {
		t.Fatalf("exit %d, want 3 for a missed target\n%s\n%s", code, stdout, stderr)
	}
	profiles, err := filepath.Glob(filepath.Join(scratch, "profiles", "ingest-cpu-*.pprof"))
	if err != nil || len(profiles) != 1 || !strings.Contains(stderr, profiles[0]) {
		t.Fatalf("profiles %v (%v); stderr:\n%s", profiles, err, stderr)
	}
	if st, err := os.Stat(profiles[0]); err != nil || st.Size() == 0 {
		t.Fatalf("profile %s: %v", profiles[0], err)
	}
}

func TestSoakSuite(t *testing.T) {
	bin := healthrouterBinary(t)
	report := filepath.Join(t.TempDir(), "soak.json")
	code, stdout, stderr := runHarness(t, "soak", "--server", bin, "--duration", "3s", "--sample", "500ms",
		"--settle", "1s", "--checks", "2000", "--rate", "40000", "--concurrency", "2", "--json", report,
		"--scratch", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep, err := loadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	samples, ok := rep.Details["samples"].([]any)
	if !ok || len(samples) < 3 {
		t.Fatalf("samples %v", rep.Details["samples"])
	}
	figs := figuresByName(t, report)
	if f := figs["soak_heap_growth_pct"]; f.Target == nil {
		t.Fatalf("heap growth figure %+v", f)
	}
	if rate := figs["soak_events_per_sec"].Value; rate < 20000 || rate > 44000 {
		t.Fatalf("soak ran at %.0f events/s, paced at 40000", rate)
	}
}

func TestCompareSuite(t *testing.T) {
	bin := healthrouterBinary(t)
	const am = "/usr/bin/prometheus-alertmanager"
	if _, err := os.Stat(am); err != nil {
		t.Skip("Debian's prometheus-alertmanager is not installed")
	}
	report := filepath.Join(t.TempDir(), "compare.json")
	code, stdout, stderr := runHarness(t, "compare", "--server", bin, "--alertmanager", am, "--count", "1",
		"--duration", "1s", "--warmup", "200ms", "--checks", "2000", "--concurrency", "2", "--json", report,
		"--scratch", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep, err := loadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := rep.Settings["alertmanager_version"].(string); !strings.Contains(strings.ToLower(v), "alertmanager") {
		t.Errorf("alertmanager version %q", v)
	}
	figs := figuresByName(t, report)
	for _, name := range []string{"healthrouter_events_per_sec", "alertmanager_events_per_sec", "ratio_vs_alertmanager"} {
		if figs[name].Value <= 0 {
			t.Errorf("figure %s: %+v", name, figs[name])
		}
	}
}

func TestCommandLineErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "usage"},
		{"unknown command", []string{"blast"}, 2, `unknown command "blast"`},
		{"bad compression", []string{"run", "--compression", "brotli"}, 1, "compression"},
		{"bad shape", []string{"run", "--shape", "full"}, 1, "shape"},
		{"one id pass", []string{"run", "--id-passes", "1"}, 1, "repeat every event_id"},
		{"bad sink", []string{"run", "--sink", "statsd"}, 1, "--sink"},
		{"bad share", []string{"run", "--failing", "2"}, 1, "failing share"},
		{"no concurrency", []string{"run", "--concurrency", "0"}, 1, "concurrency"},
		{"no runs", []string{"bench", "--count", "0"}, 1, "--count"},
		{"missing baseline", []string{"bench", "--baseline", "/nonexistent/bench.json"}, 1, "baseline"},
		{"missing alertmanager", []string{"compare", "--alertmanager", "/nonexistent/alertmanager"}, 1, "apt-get install prometheus-alertmanager"},
		{"soak settles after its end", []string{"soak", "--duration", "1s", "--settle", "2s"}, 1, "--settle"},
		{"nothing listens", []string{"run", "--url", "http://127.0.0.1:1", "--checks", "10", "--duration", "100ms", "--warmup", "0"}, 1, "requests failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runHarness(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, tc.code, tc.want, stdout, stderr)
			}
		})
	}
}
