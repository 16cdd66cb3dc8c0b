package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewFigureTakesTheBestRun(t *testing.T) {
	cases := []struct {
		name   string
		better Direction
		runs   []float64
		best   float64
		spread float64
	}{
		{"rate, higher is better", Higher, []float64{900, 1000, 950}, 1000, 10},
		{"latency, lower is better", Lower, []float64{12, 10, 15}, 10, 50},
		{"one run has no spread", Lower, []float64{3}, 3, 0},
		{"no run", Higher, nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFigure("x", "x", "u", tc.better, tc.runs...)
			if f.Value != tc.best || math.Abs(f.Spread()-tc.spread) > 1e-9 {
				t.Fatalf("best %v spread %v, want %v and %v", f.Value, f.Spread(), tc.best, tc.spread)
			}
		})
	}
}

func TestFigureMet(t *testing.T) {
	cases := []struct {
		f    Figure
		want bool
	}{
		{newFigure("r", "r", "events/s", Higher, 1_200_000).withTarget(1_000_000), true},
		{newFigure("r", "r", "events/s", Higher, 999_999).withTarget(1_000_000), false},
		{newFigure("p", "p", "ms", Lower, 50).withTarget(50), true},
		{newFigure("p", "p", "ms", Lower, 51).withTarget(50), false},
		{newFigure("w", "w", "writes", Lower, 0).withTarget(0), true},
		{newFigure("n", "n", "x", Lower, 1e9), true}, // no target
	}
	for _, tc := range cases {
		if got := tc.f.Met(); got != tc.want {
			t.Errorf("%s = %v against %v: met %v, want %v", tc.f.Name, tc.f.Value, tc.f.Target, got, tc.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	cases := map[float64]string{
		1234567:   "1,234,567",
		-4500:     "-4,500",
		0:         "0",
		512:       "512",
		123.4:     "123",
		37.44:     "37.4",
		6.449:     "6.45",
		0.5:       "0.50",
		1234.5678: "1,235",
	}
	for in, want := range cases {
		if got := formatValue(in); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestParseGoBenchReconcile(t *testing.T) {
	f, err := os.Open("testdata/reconcile-bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	benches, err := parseGoBench(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(benches) != 2 || benches[0].Name != "BenchmarkReconcile100Regions/first" || benches[1].Name != "BenchmarkReconcile100Regions/noop" {
		t.Fatalf("benchmarks %+v", benches)
	}
	if got := benches[1].Metrics["writes/op"]; len(got) != 2 || got[0] != 0 {
		t.Fatalf("noop writes/op %v", got)
	}
	figs := reconcileFigures(benches)
	byName := map[string]Figure{}
	for _, f := range figs {
		byName[f.Name] = f
	}
	first := byName["reconcile_100_regions_first_ms"]
	if len(first.Runs) != 2 || math.Abs(first.Value-361.828027) > 1e-6 {
		t.Fatalf("first reconcile figure %+v", first)
	}
	noop := byName["reconcile_100_regions_noop_writes"]
	if noop.Target == nil || !noop.Met() {
		t.Fatalf("no-op writes figure %+v: must be held to 0 and meet it", noop)
	}
	if _, ok := byName["reconcile_100_regions_first_requests"]; !ok {
		t.Fatalf("no request count among %v", figs)
	}
	for _, f := range figs {
		if strings.Contains(f.Name, "allocs") || strings.Contains(f.Name, "B/op") {
			t.Fatalf("memory micro-figures are not bench figures: %s", f.Name)
		}
	}
}

func TestParseGoBenchIgnoresNoise(t *testing.T) {
	in := "goos: linux\nBenchmarkFoo-2 notanumber 12 ns/op\nPASS\nBenchmarkBar 10 5 ns/op 3 writes/op\nok x 1s\n"
	benches, err := parseGoBench(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(benches) != 1 || benches[0].Name != "BenchmarkBar" || benches[0].Metrics["writes/op"][0] != 3 {
		t.Fatalf("got %+v", benches)
	}
	if _, err := parseGoBench(strings.NewReader("BenchmarkBad-2 10 x ns/op\n")); err == nil {
		t.Fatal("a malformed value passed")
	}
}

func TestReportPrintAndBaseline(t *testing.T) {
	rep := newReport("make bench", map[string]any{"checks": 100000})
	rep.add(
		newFigure("ingest_events_per_sec", "ingest, maximum, events/s", "events/s", Higher, 1_100_000, 1_200_000).withTarget(1_000_000),
		newFigure("half_rate_p99_ms", "ingest, half rate, p99 latency", "ms", Lower, 61).withTarget(50).withNote("open loop"),
	)
	rep.finish()
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.Save(path); err != nil {
		t.Fatal(err)
	}
	old, err := loadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(old.Figures) != 2 || old.Figures[0].Value != 1_200_000 || *old.Figures[1].Target != 50 {
		t.Fatalf("round trip lost figures: %+v", old.Figures)
	}
	old.Figures[0].Value = 1_000_000

	var out bytes.Buffer
	if err := rep.Print(&out, old); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"1,200,000", ">= 1,000,000 met", "<= 50 MISSED", "+20.0%", "half rate, p99 latency: open loop", "8%"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if err := missed(rep, false); err != nil {
		t.Fatalf("not strict: %v", err)
	}
	if err := missed(rep, true); err == nil || !strings.Contains(err.Error(), "half rate, p99") {
		t.Fatalf("strict: %v", err)
	}
	if _, err := loadReport(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing baseline loaded")
	}
}
