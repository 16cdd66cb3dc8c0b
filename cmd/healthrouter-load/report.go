package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Direction says which way a figure improves.
type Direction string

const (
	Higher Direction = "higher"
	Lower  Direction = "lower"
)

// Figure is one measured number: the best of its runs, every run for the
// spread, and the target it is held to when it has one.
type Figure struct {
	Name   string    `json:"name"` // stable identifier, for comparisons
	Label  string    `json:"label"`
	Unit   string    `json:"unit"`
	Better Direction `json:"better"`
	Value  float64   `json:"value"` // the best run
	Runs   []float64 `json:"runs"`
	// Target, when set, is the bound Value must reach (>= for Higher, <=
	// for Lower).
	Target *float64 `json:"target,omitempty"`
	Note   string   `json:"note,omitempty"`
}

// newFigure keeps every run and takes the best one as the value.
func newFigure(name, label, unit string, better Direction, runs ...float64) Figure {
	f := Figure{Name: name, Label: label, Unit: unit, Better: better, Runs: runs}
	if len(runs) > 0 {
		f.Value = runs[0]
		for _, v := range runs[1:] {
			if better == Higher && v > f.Value || better == Lower && v < f.Value {
				f.Value = v
			}
		}
	}
	return f
}

func (f Figure) withTarget(t float64) Figure { f.Target = &t; return f }

func (f Figure) withNote(n string) Figure { f.Note = n; return f }

// Met reports whether the figure reaches its target; true without one.
func (f Figure) Met() bool {
	if f.Target == nil {
		return true
	}
	if f.Better == Higher {
		return f.Value >= *f.Target
	}
	return f.Value <= *f.Target
}

// Spread is (max - min) / best over the runs, in percent.
func (f Figure) Spread() float64 {
	if len(f.Runs) < 2 || f.Value == 0 {
		return 0
	}
	return (slices.Max(f.Runs) - slices.Min(f.Runs)) / math.Abs(f.Value) * 100
}

// Report is a suite's outcome, as printed and as saved for comparisons.
type Report struct {
	Suite    string         `json:"suite"`
	Started  time.Time      `json:"started"`
	Machine  Machine        `json:"machine"`
	Settings map[string]any `json:"settings"`
	Figures  []Figure       `json:"figures"`
	Details  map[string]any `json:"details,omitempty"`
}

// Machine records what the figures were measured on, noise included.
type Machine struct {
	CPUs         int    `json:"cpus"`
	Go           string `json:"go"`
	LoadAvgStart string `json:"load_avg_start"`
	LoadAvgEnd   string `json:"load_avg_end"`
}

func newReport(suite string, settings map[string]any) *Report {
	return &Report{
		Suite: suite, Started: time.Now().UTC(), Settings: settings, Details: map[string]any{},
		Machine: Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAvgStart: loadAvg()},
	}
}

func (r *Report) add(f ...Figure) { r.Figures = append(r.Figures, f...) }

func (r *Report) finish() { r.Machine.LoadAvgEnd = loadAvg() }

// loadAvg is the 1, 5 and 15 minute load averages: how busy the shared
// machine was around the measurement.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Print writes the figures as a table; with a baseline, each figure's
// change against the baseline's figure of the same name.
func (r *Report) Print(w io.Writer, baseline *Report) error {
	fmt.Fprintf(w, "\n%s: %d CPUs, %s, load average %s -> %s\n\n", r.Suite, r.Machine.CPUs, r.Machine.Go,
		r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	header := "figure\tbest\tunit\truns\tspread\ttarget\t"
	if baseline != nil {
		header += "baseline\tchange\t"
	}
	fmt.Fprintln(tw, header)
	old := map[string]Figure{}
	if baseline != nil {
		for _, f := range baseline.Figures {
			old[f.Name] = f
		}
	}
	for _, f := range r.Figures {
		target := "-"
		if f.Target != nil {
			op := ">="
			if f.Better == Lower {
				op = "<="
			}
			verdict := "met"
			if !f.Met() {
				verdict = "MISSED"
			}
			target = op + " " + formatValue(*f.Target) + " " + verdict
		}
		spread := "-"
		if len(f.Runs) > 1 {
			spread = fmt.Sprintf("%.0f%%", f.Spread())
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s\t", f.Label, formatValue(f.Value), f.Unit, len(f.Runs), spread, target)
		if baseline != nil {
			if o, ok := old[f.Name]; ok {
				change := "-"
				if o.Value != 0 {
					change = fmt.Sprintf("%+.1f%%", (f.Value-o.Value)/math.Abs(o.Value)*100)
				}
				line += formatValue(o.Value) + "\t" + change + "\t"
			} else {
				line += "-\t-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", f.Label, f.Note)
		}
	}
	return nil
}

// formatValue prints large numbers with thousands separators and small ones
// with enough digits to read.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15 || a >= 1000:
		return groupThousands(int64(math.Round(v)))
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Save writes the report as indented JSON.
func (r *Report) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save report: %w", err)
	}
	return nil
}

// loadReport reads a report saved by Save.
func loadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return &r, nil
}

// goBenchmark is one benchmark's lines from `go test -bench` output: its
// metrics by unit, one value per -count run.
type goBenchmark struct {
	Name    string
	Metrics map[string][]float64
	units   []string // in first-seen order
}

// parseGoBench reads the standard benchmark output format ("BenchmarkX-2
// N 123 ns/op 4 writes/op ..."), ignoring every other line.
func parseGoBench(r io.Reader) ([]*goBenchmark, error) {
	var out []*goBenchmark
	byName := map[string]*goBenchmark{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		b := byName[name]
		if b == nil {
			b = &goBenchmark{Name: name, Metrics: map[string][]float64{}}
			byName[name] = b
			out = append(out, b)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: value %q: %w", name, f[i], err)
			}
			unit := f[i+1]
			if _, seen := b.Metrics[unit]; !seen {
				b.units = append(b.units, unit)
			}
			b.Metrics[unit] = append(b.Metrics[unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return out, nil
}

// reconcileFigures turns BenchmarkReconcile100Regions' output into
// figures: time per reconcile in ms and the requests and writes it sends.
// A no-op reconcile must write nothing (DESIGN §3).
func reconcileFigures(benches []*goBenchmark) []Figure {
	var out []Figure
	for _, b := range benches {
		if !strings.HasPrefix(b.Name, "BenchmarkReconcile100Regions/") {
			continue
		}
		sub := strings.TrimPrefix(b.Name, "BenchmarkReconcile100Regions/")
		for _, unit := range b.units {
			runs := b.Metrics[unit]
			switch unit {
			case "ns/op":
				ms := make([]float64, len(runs))
				for i, v := range runs {
					ms[i] = v / 1e6
				}
				out = append(out, newFigure("reconcile_100_regions_"+sub+"_ms", "reconcile 100 regions, "+sub, "ms", Lower, ms...))
			case "requests/op", "writes/op":
				what := strings.TrimSuffix(unit, "/op")
				f := newFigure("reconcile_100_regions_"+sub+"_"+what, "reconcile 100 regions, "+sub+", "+what, what, Lower, runs...)
				if sub == "noop" && what == "writes" {
					f = f.withTarget(0)
				}
				out = append(out, f)
			}
		}
	}
	return out
}
