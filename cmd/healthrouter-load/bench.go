package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

// DESIGN §7 and the performance targets the figures are held to.
const (
	targetIngestRate   = 1_000_000 // events/s, gzip JSON, 1,000-event batches
	targetHalfRateP99  = 50        // ms, at half the maximum rate
	targetBytesK       = 512       // bytes per tracked check at 1M: live heap, and all the process's own memory
	targetStartup1M    = 2         // seconds from exec to ready at 1M checks
	targetVsAlertmgr   = 20        // times Alertmanager's rate
	stopTimeout        = time.Minute
	readyTimeout       = 2 * time.Minute
	trackedChecksGauge = "healthrouter_tracked_checks"
)

// benchOptions are bench's flags.
type benchOptions struct {
	load      loadFlags
	server    string
	count     int
	duration  time.Duration
	warmup    time.Duration
	million   int
	reconcile string
	jsonPath  string
	baseline  string
	profile   string
	scratch   string
	keep      bool
	strict    bool
	// ingestTarget is the maximum rate's target; a miss takes a CPU
	// profile.
	ingestTarget float64
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	var o benchOptions
	o.load.register(fs)
	fs.StringVar(&o.server, "server", "bin/healthrouter", "healthrouter `binary` to measure")
	fs.IntVar(&o.count, "count", 3, "runs of each measurement (best and spread are reported)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of each measured ingest run (the default spans one checkpoint interval)")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured traffic before the first run")
	fs.IntVar(&o.million, "million", 1_000_000, "tracked checks for the memory and start-up figures")
	fs.StringVar(&o.reconcile, "reconcile", "", "`file` with BenchmarkReconcile100Regions output (go test -bench) to include")
	fs.StringVar(&o.jsonPath, "json", "", "write the report as JSON to this `file`")
	fs.StringVar(&o.baseline, "baseline", "", "a previous JSON report to compare against")
	fs.StringVar(&o.profile, "profile", "", "save CPU and heap profiles of the server to this `directory`")
	fs.BoolVar(&o.keep, "keep", false, "keep the data directories and server logs")
	registerScratch(fs, &o.scratch)
	fs.BoolVar(&o.strict, "strict", false, "exit 3 when a figure misses its target")
	fs.Float64Var(&o.ingestTarget, "ingest-target", targetIngestRate, "events/s the maximum ingest rate is held to; a miss takes a CPU profile of one more run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.count <= 0 || o.million <= 0 {
		return errors.New("--count and --million must be positive")
	}
	var baseline *Report
	if o.baseline != "" {
		var err error
		if baseline, err = loadReport(o.baseline); err != nil {
			return err
		}
	}
	var reconcile []Figure
	if o.reconcile != "" {
		f, err := os.Open(o.reconcile)
		if err != nil {
			return fmt.Errorf("reconcile figures: %w", err)
		}
		benches, err := parseGoBench(f)
		f.Close()
		if err != nil {
			return err
		}
		if reconcile = reconcileFigures(benches); len(reconcile) == 0 {
			return fmt.Errorf("no BenchmarkReconcile100Regions results in %s", o.reconcile)
		}
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	sc, cleanup, err := scratchDir(o.scratch, "healthrouter-bench-", o.keep, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	dir := sc.dir

	settings := o.load.settings()
	settings["count"], settings["duration"], settings["million"] = o.count, o.duration.String(), o.million
	sc.settings(settings)
	rep := newReport("make bench", settings)
	if err := benchIngest(ctx, &o, dir, rep, stderr); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if err := benchMillion(ctx, &o, dir, rep, stderr); err != nil {
		return fmt.Errorf("%d checks: %w", o.million, err)
	}
	rep.add(reconcile...)
	rep.finish()
	if err := rep.Print(stdout, baseline); err != nil {
		return err
	}
	if o.jsonPath != "" {
		if err := rep.Save(o.jsonPath); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\nreport saved to", o.jsonPath)
	}
	return missed(rep, o.strict)
}

// missed names the figures that missed their targets; an error only when
// strict.
func missed(rep *Report, strict bool) error {
	var names []string
	for _, f := range rep.Figures {
		if !f.Met() {
			names = append(names, f.Label)
		}
	}
	if len(names) == 0 || !strict {
		return nil
	}
	return fmt.Errorf("%w: %v", errTargetsMissed, names)
}

// benchIngest measures the ingest path: the maximum rate over a closed
// loop, then latency at half that rate over an open loop, then the maximum
// rate again with the batches in the other order (each host's checks
// spread over the batches, or together), the same fleet either way.
func benchIngest(ctx context.Context, o *benchOptions, dir string, rep *Report, stderr io.Writer) error {
	w, err := o.load.workload(loadgen.Healthrouter)
	if err != nil {
		return err
	}
	enc, err := encode(w, stderr)
	if err != nil {
		return err
	}
	srv, err := startReadyHealthrouter(ctx, o.server, filepath.Join(dir, "ingest"), filepath.Join(dir, "ingest.log"))
	if err != nil {
		return err
	}
	defer srv.kill()
	gen, err := loadgen.New(srv.target(), enc, o.load.concurrency)
	if err != nil {
		return err
	}
	defer gen.Close()
	m := measured{gen: gen, pid: srv.PID()}

	// Two passes create every check and confirm the failing ones; what
	// follows is steady traffic, each result repeating its check's state
	// under a new event_id.
	pre, _, err := m.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Passes: 2})
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	if err := allAccepted("preload", pre); err != nil {
		return err
	}
	if err := expectTracked(ctx, srv, enc.Events()); err != nil {
		return err
	}
	if _, _, err := m.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Duration: o.warmup}); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	order := func(shuffled bool) string {
		if shuffled {
			return "checks shuffled over the batches"
		}
		return "each host's checks together"
	}
	maxRuns, err := maxRateRuns(ctx, o, srv, m, "maximum rate", enc.Events(), stderr)
	if err != nil {
		return err
	}
	ingest := runFigures("ingest_", "ingest, maximum", maxRuns)
	ingest[0] = ingest[0].withTarget(o.ingestTarget).withNote(fmt.Sprintf(
		"%d-event %s %s batches of %s events, %d checks, %.0f%% failing, %s, %d in flight, closed loop",
		w.BatchEvents, w.Compression, w.Framing, w.Shape, w.Checks, w.Failing*100, order(w.Shuffle), o.load.concurrency))
	rep.add(ingest...)
	rep.Details["ingest_max"] = maxRuns

	if o.profile != "" {
		if err := profileRun(ctx, o, srv, m, filepath.Join(o.profile, "ingest-cpu.pprof")); err != nil {
			return err
		}
	} else if !ingest[0].Met() {
		// A miss is explained by where the time went: profile one more
		// run, kept past the scratch directory.
		path := filepath.Join(o.scratch, "profiles", "ingest-cpu-"+time.Now().UTC().Format("20060102T150405Z")+".pprof")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := profileRun(ctx, o, srv, m, path); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "ingest target missed (%.0f < %.0f events/s): CPU profile of one more run in %s (go tool pprof -top %s %s)\n",
			ingest[0].Value, o.ingestTarget, path, o.server, path)
		rep.Details["ingest_miss_profile"] = path
	}

	half := ingest[0].Value / 2
	var halfRuns []runOutcome
	for i := 0; i < o.count; i++ {
		res, usage, err := m.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Duration: o.duration, Rate: half})
		if err != nil {
			return fmt.Errorf("half rate run %d: %w", i+1, err)
		}
		if err := allAccepted(fmt.Sprintf("half rate run %d", i+1), res); err != nil {
			return err
		}
		halfRuns = append(halfRuns, runOutcome{res, usage})
		progress(stderr, "half rate", i+1, o.count, res, usage)
	}
	if err := expectTracked(ctx, srv, enc.Events()); err != nil {
		return fmt.Errorf("after the half rate runs: %w", err)
	}
	halfFigs := runFigures("half_rate_", "ingest, half rate", halfRuns)
	halfFigs[2] = halfFigs[2].withTarget(targetHalfRateP99).withNote(fmt.Sprintf(
		"open loop at %.0f events/s, latency from each request's scheduled start", half))
	rep.add(halfFigs...)
	rep.Details["ingest_half_rate"] = halfRuns

	// The other order last, stamped later than every result of the first
	// workload, so none of it is older than its check's state.
	other := w
	other.Shuffle = !w.Shuffle
	other.Time = time.Now().Add(-time.Second).UTC()
	if last := enc.Workload.Time.Add(time.Duration(w.BatchEvents) * time.Microsecond); !other.Time.After(last) {
		other.Time = last.Add(time.Microsecond)
	}
	otherEnc, err := encode(other, stderr)
	if err != nil {
		return err
	}
	otherGen, err := loadgen.New(srv.target(), otherEnc, o.load.concurrency)
	if err != nil {
		return err
	}
	defer otherGen.Close()
	om := measured{gen: otherGen, pid: srv.PID()}
	if _, _, err := om.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Duration: o.warmup}); err != nil {
		return fmt.Errorf("warm-up, %s: %w", order(other.Shuffle), err)
	}
	name, label := "ingest_shuffled_", "ingest, maximum, shuffled"
	if !other.Shuffle {
		name, label = "ingest_by_host_", "ingest, maximum, by host"
	}
	otherRuns, err := maxRateRuns(ctx, o, srv, om, "maximum rate, "+order(other.Shuffle), enc.Events(), stderr)
	if err != nil {
		return err
	}
	otherFigs := runFigures(name, label, otherRuns)
	otherFigs[0] = otherFigs[0].withNote("the same fleet and batches' size, " + order(other.Shuffle))
	rep.add(otherFigs...)
	rep.Details[name+"max"] = otherRuns

	if _, err := srv.stop(stopTimeout); err != nil {
		return err
	}
	return nil
}

// maxRateRuns takes o.count closed-loop runs, each of which must have had
// every event accepted, and checks the server still tracks the fleet.
func maxRateRuns(ctx context.Context, o *benchOptions, srv *healthrouter, m measured, what string, checks int, stderr io.Writer) ([]runOutcome, error) {
	var runs []runOutcome
	for i := 0; i < o.count; i++ {
		res, usage, err := m.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Duration: o.duration})
		if err != nil {
			return nil, fmt.Errorf("%s run %d: %w", what, i+1, err)
		}
		if err := allAccepted(fmt.Sprintf("%s run %d", what, i+1), res); err != nil {
			return nil, err
		}
		runs = append(runs, runOutcome{res, usage})
		progress(stderr, what, i+1, o.count, res, usage)
	}
	if err := expectTracked(ctx, srv, checks); err != nil {
		return nil, fmt.Errorf("after the %s runs: %w", what, err)
	}
	return runs, nil
}

// allAccepted checks a run's answers add up: every event sent was
// accepted. A duplicate means an event_id came back to a check that had
// just seen it (the generator's id passes did not work) or a result was
// older than its check's state; either way the run did not measure the
// path it claims to.
func allAccepted(what string, res loadgen.Result) error {
	if res.Accepted != res.Events || res.Duplicates != 0 || res.Rejected != 0 {
		return fmt.Errorf("%s: %d events sent, %d accepted, %d duplicates, %d rejected; want every one accepted",
			what, res.Events, res.Accepted, res.Duplicates, res.Rejected)
	}
	return nil
}

// profileRun takes a CPU profile, saved to path, over one more
// maximum-rate run, apart from the measured ones since profiling costs the
// server CPU.
func profileRun(ctx context.Context, o *benchOptions, srv *healthrouter, m measured, path string) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.profile(ctx, o.duration, path) }()
	if _, _, err := m.run(ctx, loadgen.Pace{Concurrency: o.load.concurrency, Duration: o.duration}); err != nil {
		return fmt.Errorf("profiled run: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	return nil
}

func progress(w io.Writer, what string, i, n int, res loadgen.Result, u *loadgen.Usage) {
	fmt.Fprintf(w, "%s %d/%d: %.0f events/s, p50 %.1f ms, p99 %.1f ms", what, i, n,
		res.EventsPerSec, ms(res.Latency.P50), ms(res.Latency.P99))
	if u != nil {
		fmt.Fprintf(w, ", server %.2f cores, %.0f MiB peak", u.Cores, mib(u.PeakRSS))
	}
	fmt.Fprintf(w, ", generator %.2f cores", res.ClientCPU.Seconds()/res.Elapsed.Seconds())
	fmt.Fprintln(w, slowest(res))
}

// slowest describes the slowest requests: when a p99 is far above the p50,
// the times say whether one stall or a steady queue made it.
func slowest(res loadgen.Result) string {
	if len(res.Slowest) == 0 || res.Slowest[0].Took < 4*res.Latency.P50 {
		return ""
	}
	var b strings.Builder
	b.WriteString("; slowest:")
	for _, s := range res.Slowest {
		fmt.Fprintf(&b, " %.0f ms at %.1f s,", ms(s.Took), s.At.Seconds())
	}
	return strings.TrimSuffix(b.String(), ",")
}

// expectTracked checks that the server tracks exactly n checks: a bench
// whose events were silently dropped would measure nothing.
func expectTracked(ctx context.Context, srv *healthrouter, n int) error {
	s, err := loadgen.Scrape(ctx, srv.client, srv.url+"/metrics")
	if err != nil {
		return err
	}
	if got, ok := s[trackedChecksGauge]; !ok || int(got) != n {
		return fmt.Errorf("server tracks %v checks, want %d", got, n)
	}
	return nil
}

// benchMillion measures memory per tracked check and start-up time on the
// real binary: a million checks sent through the API, then restarts.
func benchMillion(ctx context.Context, o *benchOptions, dir string, rep *Report, stderr io.Writer) error {
	lf := o.load
	lf.checks = o.million
	// Two id passes: one creates the checks, the other is the steady pass
	// before the stop. More would only cost encoding time.
	lf.idPasses = 2
	w, err := lf.workload(loadgen.Healthrouter)
	if err != nil {
		return err
	}
	enc, err := encode(w, stderr)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "million")
	srv, err := startReadyHealthrouter(ctx, o.server, dataDir, filepath.Join(dir, "million.log"))
	if err != nil {
		return err
	}
	defer srv.kill()
	empty, err := srv.liveHeap(ctx)
	if err != nil {
		return err
	}

	gen, err := loadgen.New(srv.target(), enc, lf.concurrency)
	if err != nil {
		return err
	}
	defer gen.Close()
	res, usage, err := measured{gen: gen, pid: srv.PID()}.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Passes: 1})
	if err != nil {
		return fmt.Errorf("load %d checks: %w", o.million, err)
	}
	if res.Accepted != enc.Events() {
		return fmt.Errorf("load: %d of %d events accepted", res.Accepted, enc.Events())
	}
	progress(stderr, "new checks", 1, 1, res, usage)
	rep.add(newFigure("new_checks_events_per_sec", "new checks, each committed", "events/s", Higher, res.EventsPerSec).
		withNote(fmt.Sprintf("one pass creating %d checks; every batch is fsynced", o.million)))
	if err := expectTracked(ctx, srv, o.million); err != nil {
		return err
	}
	full, err := srv.liveHeap(ctx)
	if err != nil {
		return err
	}
	if o.profile != "" {
		if err := saveHeapProfile(ctx, srv, filepath.Join(o.profile, "million-heap.pprof")); err != nil {
			return err
		}
	}
	ingest := perCheck(empty, full, o.million)
	// One steady pass moves every check's last-seen time, so the stop
	// below writes a real final checkpoint instead of finding everything
	// committed already.
	steady, steadyUsage, err := measured{gen: gen, pid: srv.PID()}.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Passes: 1})
	if err != nil {
		return fmt.Errorf("steady pass over %d checks: %w", o.million, err)
	}
	if err := allAccepted("steady pass", steady); err != nil {
		return err
	}
	progress(stderr, "steady pass", 1, 1, steady, steadyUsage)
	stopTook, err := srv.stop(stopTimeout)
	if err != nil {
		return err
	}

	var startup, loadTook, heapRestart, rssRestart, anonRestart []float64
	for i := 0; i < o.count; i++ {
		srv, err := startHealthrouter(ctx, o.server, dataDir, filepath.Join(dir, fmt.Sprintf("million-restart-%d.log", i+1)))
		if err != nil {
			return err
		}
		ready, err := srv.waitReady(ctx, readyTimeout)
		if err != nil {
			srv.kill()
			return err
		}
		startup = append(startup, ready.Seconds())
		select {
		case took := <-srv.loadedIn:
			loadTook = append(loadTook, took.Seconds())
		default:
		}
		if err := expectTracked(ctx, srv, o.million); err != nil {
			srv.kill()
			return err
		}
		restarted, err := srv.liveHeap(ctx)
		if err != nil {
			srv.kill()
			return err
		}
		m := perCheck(empty, restarted, o.million)
		heapRestart, rssRestart, anonRestart = append(heapRestart, m.heap), append(rssRestart, m.rss), append(anonRestart, m.anon)
		fmt.Fprintf(stderr, "restart %d/%d at %d checks: ready in %.2f s, %.0f heap bytes/check, %.0f anonymous RSS bytes/check\n",
			i+1, o.count, o.million, ready.Seconds(), m.heap, m.anon)
		if _, err := srv.stop(stopTimeout); err != nil {
			return err
		}
	}
	label := fmt.Sprintf("%dk checks", o.million/1000)
	rep.add(
		newFigure("heap_per_check_bytes", "heap per tracked check, "+label+" after ingest", "bytes", Lower, ingest.heap).
			withTarget(targetBytesK).withNote("live heap after a forced collection, less the empty server's"),
		newFigure("heap_per_check_restart_bytes", "heap per tracked check, "+label+" after restart", "bytes", Lower, heapRestart...).
			withTarget(targetBytesK),
		newFigure("anon_rss_per_check_bytes", "anonymous RSS per tracked check, "+label+" after ingest", "bytes", Lower, ingest.anon).
			withTarget(targetBytesK).withNote("all the process's own resident memory (RssAnon: heap with its garbage, stacks, runtime), less the empty server's"),
		newFigure("anon_rss_per_check_restart_bytes", "anonymous RSS per tracked check, "+label+" after restart", "bytes", Lower, anonRestart...).
			withTarget(targetBytesK),
		newFigure("rss_per_check_bytes", "RSS per tracked check, "+label+" after ingest", "bytes", Lower, ingest.rss).
			withNote("anonymous RSS plus the pages of the memory-mapped store file read or written, which the kernel drops under pressure"),
		newFigure("rss_per_check_restart_bytes", "RSS per tracked check, "+label+" after restart", "bytes", Lower, rssRestart...),
		newFigure("startup_seconds", "start-up to ready, "+label, "s", Lower, startup...).
			withTarget(targetStartup1M).withNote("from exec to the first 200 on /readyz"),
		newFigure("state_load_seconds", "state load (store and engine), "+label, "s", Lower, loadTook...),
		newFigure("steady_pass_events_per_sec", "steady pass, "+label, "events/s", Higher, steady.EventsPerSec).
			withNote("one pass over every check, each result new (fresh event_id, same state)"),
		newFigure("shutdown_seconds", "graceful stop with final checkpoint, "+label, "s", Lower, stopTook.Seconds()).
			withNote("SIGTERM right after the steady pass: the final checkpoint writes every check's new last-seen time"),
	)
	return nil
}

// memoryPerCheck is what a fleet added to the server's memory, per check.
type memoryPerCheck struct {
	heap, anon, rss float64
}

// perCheck divides what a fleet added to the live heap, the anonymous RSS
// and the RSS by its size.
func perCheck(empty, full loadgen.Samples, n int) memoryPerCheck {
	per := func(sample string) float64 { return (full[sample] - empty[sample]) / float64(n) }
	return memoryPerCheck{
		heap: per("go_memstats_heap_alloc_bytes"),
		anon: per(anonRSSSample),
		rss:  per("process_resident_memory_bytes"),
	}
}

func saveHeapProfile(ctx context.Context, srv *healthrouter, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = srv.admin(ctx, "/debug/pprof/heap", func(r io.Reader) error {
		_, err := io.Copy(f, r)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
