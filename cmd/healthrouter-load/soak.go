package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

// heapReads is how many forced-collection reads make one heap sample.
const heapReads = 3

// memorySample is the server's memory at one moment of a soak.
type memorySample struct {
	At         time.Duration `json:"at_ns"`
	HeapBytes  float64       `json:"heap_alloc_bytes"` // live, after a forced collection
	RSSBytes   float64       `json:"rss_bytes"`
	Goroutines float64       `json:"goroutines"`
}

// soakCmd sends steady duplicate traffic for a long time and checks that
// the server's memory stays flat: after warm-up, every result repeats its
// check's state, so nothing should accumulate.
func soakCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("soak", stderr)
	var lf loadFlags
	lf.register(fs)
	server := fs.String("server", "bin/healthrouter", "healthrouter `binary`")
	duration := fs.Duration("duration", 10*time.Minute, "length of the steady traffic")
	rate := fs.Float64("rate", 500_000, "events per second, open loop (0: as fast as the server answers)")
	every := fs.Duration("sample", 10*time.Second, "time between memory samples")
	settle := fs.Duration("settle", time.Minute, "time before the reference sample")
	maxHeap := fs.Float64("max-heap-growth", 5, "allowed live heap growth after settling, percent")
	maxRSS := fs.Float64("max-rss-growth", 10, "allowed RSS growth after settling, percent")
	jsonPath := fs.String("json", "", "write the report as JSON to this `file`")
	keep := fs.Bool("keep", false, "keep the data directory and server log")
	strict := fs.Bool("strict", false, "exit 3 when memory grew past the limits")
	var scratchRoot string
	registerScratch(fs, &scratchRoot)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *every <= 0 || *settle >= *duration {
		return fmt.Errorf("--sample must be positive and --settle shorter than --duration")
	}
	w, err := lf.workload(loadgen.Healthrouter)
	if err != nil {
		return err
	}
	enc, err := encode(w, stderr)
	if err != nil {
		return err
	}
	sc, cleanup, err := scratchDir(scratchRoot, "healthrouter-soak-", *keep, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	dir := sc.dir
	srv, err := startReadyHealthrouter(ctx, *server, filepath.Join(dir, "data"), filepath.Join(dir, "healthrouter.log"))
	if err != nil {
		return err
	}
	defer srv.kill()
	gen, err := loadgen.New(srv.target(), enc, lf.concurrency)
	if err != nil {
		return err
	}
	defer gen.Close()
	m := measured{gen: gen, pid: srv.PID()}
	if _, _, err := m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Passes: 2}); err != nil {
		return fmt.Errorf("preload: %w", err)
	}

	settings := lf.settings()
	settings["duration"], settings["rate"], settings["sample"] = duration.String(), *rate, every.String()
	sc.settings(settings)
	rep := newReport("make soak", settings)
	type outcome struct {
		res   loadgen.Result
		usage *loadgen.Usage
		err   error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		res, usage, err := m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Duration: *duration, Rate: *rate})
		done <- outcome{res, usage, err}
	}()
	var samples []memorySample
	sample := func() error {
		// The live heap after a forced collection still holds the bodies
		// of the requests in flight at that moment (up to a few MiB of a
		// ~17 MiB heap): the lowest of a few reads is the steady state.
		var s loadgen.Samples
		for range heapReads {
			r, err := srv.liveHeap(ctx)
			if err != nil {
				return err
			}
			if s == nil || r["go_memstats_heap_alloc_bytes"] < s["go_memstats_heap_alloc_bytes"] {
				s = r
			}
		}
		ms := memorySample{At: time.Since(start), HeapBytes: s["go_memstats_heap_alloc_bytes"],
			RSSBytes: s["process_resident_memory_bytes"], Goroutines: s["go_goroutines"]}
		samples = append(samples, ms)
		fmt.Fprintf(stderr, "soak %v: heap %.1f MiB, RSS %.1f MiB, %0.f goroutines\n", ms.At.Round(time.Second),
			ms.HeapBytes/(1<<20), ms.RSSBytes/(1<<20), ms.Goroutines)
		return nil
	}
	tick := time.NewTicker(*every)
	defer tick.Stop()
	var out outcome
wait:
	for {
		select {
		case out = <-done:
			break wait
		case <-tick.C:
			if err := sample(); err != nil {
				return fmt.Errorf("sample memory: %w", err)
			}
		}
	}
	if out.err != nil {
		return out.err
	}
	if len(samples) == 0 {
		// Shorter than one interval. Otherwise no sample after the traffic
		// stopped: an idle server's heap is no steady-state figure.
		if err := sample(); err != nil {
			return fmt.Errorf("sample memory: %w", err)
		}
	}
	if _, err := srv.stop(stopTimeout); err != nil {
		return err
	}

	rep.add(runFigures("soak_", "soak", []runOutcome{{out.res, out.usage}})...)
	settled := samples
	for i, s := range samples {
		if s.At >= *settle {
			settled = samples[i:]
			break
		}
	}
	heap := growth(settled, func(s memorySample) float64 { return s.HeapBytes })
	rss := growth(settled, func(s memorySample) float64 { return s.RSSBytes })
	last := samples[len(samples)-1]
	rep.add(
		newFigure("soak_heap_growth_pct", "live heap growth after settling", "%", Lower, heap.pct).
			withTarget(*maxHeap).withNote(heap.String()),
		newFigure("soak_rss_growth_pct", "RSS growth after settling", "%", Lower, rss.pct).
			withTarget(*maxRSS).withNote(rss.String()),
		newFigure("soak_heap_end_mib", "live heap at the end", "MiB", Lower, last.HeapBytes/(1<<20)),
		newFigure("soak_rss_max_mib", "RSS, highest sample", "MiB", Lower, maxOf(samples, func(s memorySample) float64 { return s.RSSBytes })/(1<<20)),
		newFigure("soak_goroutines_end", "goroutines at the end", "goroutines", Lower, last.Goroutines),
	)
	rep.Details["samples"] = samples
	rep.finish()
	if err := printSamples(stdout, samples); err != nil {
		return err
	}
	if err := rep.Print(stdout, nil); err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := rep.Save(*jsonPath); err != nil {
			return err
		}
	}
	return missed(rep, *strict)
}

func printSamples(w io.Writer, samples []memorySample) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "at\theap MiB\tRSS MiB\tgoroutines\t")
	for _, s := range samples {
		fmt.Fprintf(tw, "%v\t%.1f\t%.1f\t%.0f\t\n", s.At.Round(time.Second), s.HeapBytes/(1<<20), s.RSSBytes/(1<<20), s.Goroutines)
	}
	return tw.Flush()
}

// trend compares the median of the first third of the settled samples
// with the median of the last third: single samples swing with each
// checkpoint in flight and each collection, a leak moves the whole last
// third.
type trend struct {
	first, last float64 // medians, bytes
	pct         float64
}

func growth(samples []memorySample, value func(memorySample) float64) trend {
	third := max(1, len(samples)/3)
	median := func(ss []memorySample) float64 {
		vs := make([]float64, len(ss))
		for i, s := range ss {
			vs[i] = value(s)
		}
		slices.Sort(vs)
		if n := len(vs); n%2 == 0 {
			return (vs[n/2-1] + vs[n/2]) / 2
		}
		return vs[len(vs)/2]
	}
	t := trend{first: median(samples[:third]), last: median(samples[len(samples)-third:])}
	if t.first > 0 {
		t.pct = (t.last - t.first) / t.first * 100
	}
	return t
}

func (t trend) String() string {
	return fmt.Sprintf("median of the first third of the samples after settling %.1f MiB, of the last third %.1f MiB",
		t.first/(1<<20), t.last/(1<<20))
}

func maxOf(samples []memorySample, value func(memorySample) float64) float64 {
	m := 0.0
	for _, s := range samples {
		m = max(m, value(s))
	}
	return m
}
