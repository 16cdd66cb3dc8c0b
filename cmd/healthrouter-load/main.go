// Command healthrouter-load is healthrouter's load harness. It sends
// Vector-shaped traffic (pre-encoded batches, JSON array or NDJSON, gzip,
// zstd or none) to a receiver and measures events per second, request
// latency and the receiver's CPU and memory.
//
// Usage:
//
//	healthrouter-load run --url URL [--token T] [--pid PID] [load flags]
//	healthrouter-load bench --server bin/healthrouter [--reconcile FILE] [--json FILE] [--baseline FILE]
//	healthrouter-load compare --server bin/healthrouter [--alertmanager /usr/bin/prometheus-alertmanager]
//	healthrouter-load soak --server bin/healthrouter [--duration 10m] [--rate EVENTS/S]
//
// bench, compare and soak start the receivers themselves on loopback ports,
// with fresh data directories, and stop them when done.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

var commands = map[string]struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	"run":     {"send load to a running receiver and report what it did", runCmd},
	"bench":   {"the figures of `make bench`: ingest, 1M checks memory and start-up, reconcile", benchCmd},
	"compare": {"the same load against healthrouter and Alertmanager, in the same run", compareCmd},
	"soak":    {"steady duplicate traffic for a long time; memory must stay flat", soakCmd},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "healthrouter-load: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errTargetsMissed):
		fmt.Fprintln(stderr, "healthrouter-load "+args[0]+": "+err.Error())
		return 3
	default:
		fmt.Fprintln(stderr, "healthrouter-load "+args[0]+": "+err.Error())
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: healthrouter-load <command> [flags]\n\ncommands:")
	for _, name := range []string{"run", "bench", "compare", "soak"} {
		fmt.Fprintf(w, "  %-8s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'healthrouter-load <command> -h' for a command's flags.")
}

// errTargetsMissed: the run worked but a figure missed its target. The
// exit code (3) tells it from a harness failure (1).
var errTargetsMissed = errors.New("targets missed")

// loadFlags describe the traffic, as Vector's http sink would send it.
type loadFlags struct {
	checks, perHost, regions, batch, concurrency int
	failing                                      float64
	framing, compression, shape                  string
	idPasses                                     int
	shuffle                                      bool
	seed                                         uint64
}

func (l *loadFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.checks, "checks", 100_000, "distinct checks (region, host, check) in the fleet")
	fs.IntVar(&l.perHost, "per-host", 10, "checks per host")
	fs.IntVar(&l.regions, "regions", 10, "regions the hosts spread over")
	fs.Float64Var(&l.failing, "failing", 0.02, "share of checks reporting critical")
	fs.IntVar(&l.batch, "batch", 1000, "events per request (Vector's batch.max_events)")
	fs.StringVar(&l.framing, "framing", "json", "json (array, Vector's default) or ndjson")
	fs.StringVar(&l.compression, "compression", "gzip", "gzip, zstd or none")
	fs.StringVar(&l.shape, "shape", "pipeline", "event fields: pipeline (what vector/healthrouter.yaml sends: a fresh event_id per result, interval, source_type) or lean (identity, status and output only)")
	fs.IntVar(&l.idPasses, "id-passes", loadgen.DefaultIDPasses, "passes over the fleet encoded with their own event_ids, sent in turn (pipeline shape; at least 2)")
	fs.BoolVar(&l.shuffle, "shuffle", false, "spread each host's checks over batches instead of sending them together")
	fs.IntVar(&l.concurrency, "concurrency", 8, "requests in flight (Vector's request.concurrency)")
	fs.Uint64Var(&l.seed, "seed", 1, "seed for host order and failing checks")
}

func (l *loadFlags) workload(sink loadgen.Sink) (loadgen.Workload, error) {
	w := loadgen.Workload{
		Sink: sink, Checks: l.checks, PerHost: l.perHost, Regions: l.regions, Failing: l.failing,
		BatchEvents: l.batch, Shuffle: l.shuffle, Seed: l.seed,
	}
	if sink == loadgen.Alertmanager {
		return w, w.Validate()
	}
	var err error
	if w.Shape, err = loadgen.ParseShape(l.shape); err != nil {
		return w, err
	}
	if w.Shape == loadgen.Pipeline {
		// The lean shape carries no event_id: one pass is all it needs.
		w.IDPasses = l.idPasses
	}
	if w.Framing, err = loadgen.ParseFraming(l.framing); err != nil {
		return w, err
	}
	if w.Compression, err = loadgen.ParseCompression(l.compression); err != nil {
		return w, err
	}
	if l.concurrency <= 0 {
		return w, errors.New("concurrency must be positive")
	}
	return w, w.Validate()
}

func (l *loadFlags) settings() map[string]any {
	return map[string]any{
		"checks": l.checks, "per_host": l.perHost, "regions": l.regions, "failing": l.failing,
		"batch_events": l.batch, "framing": l.framing, "compression": l.compression,
		"shape": l.shape, "id_passes": l.idPasses,
		"shuffle": l.shuffle, "concurrency": l.concurrency, "seed": l.seed,
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("healthrouter-load "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// encode builds a workload and says so, since a million events take a
// moment to compress.
func encode(w loadgen.Workload, stderr io.Writer) (*loadgen.Encoded, error) {
	start := time.Now()
	enc, err := w.Encode()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "encoded %d %s events (%d hosts, %d failing) into %d batches, %.1f MiB, %d passes with their own event_ids, in %v\n",
		enc.Events(), w.Sink, enc.Hosts, enc.Failing, enc.PassBatches(), float64(enc.Bytes())/(1<<20), enc.Passes,
		time.Since(start).Round(time.Millisecond))
	return enc, nil
}

// runCmd sends load to a receiver someone else runs.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var lf loadFlags
	lf.register(fs)
	url := fs.String("url", "http://127.0.0.1:8080", "receiver base `URL`")
	token := fs.String("token", "", "bearer token (default $HEALTHROUTER_LOAD_TOKEN)")
	sinkName := fs.String("sink", "healthrouter", "healthrouter (events) or alertmanager (alerts on /api/v2/alerts)")
	duration := fs.Duration("duration", 20*time.Second, "measured time")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured time first (new checks, connections)")
	rate := fs.Float64("rate", 0, "events per second, open loop (0: as fast as the receiver answers)")
	pid := fs.Int("pid", 0, "receiver's process id on this machine, for its CPU and RSS")
	jsonPath := fs.String("json", "", "also write the report to this `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sink := loadgen.Healthrouter
	switch *sinkName {
	case "healthrouter":
	case "alertmanager":
		sink = loadgen.Alertmanager
	default:
		return fmt.Errorf("--sink %q: want healthrouter or alertmanager", *sinkName)
	}
	if *token == "" {
		*token = os.Getenv("HEALTHROUTER_LOAD_TOKEN")
	}
	w, err := lf.workload(sink)
	if err != nil {
		return err
	}
	enc, err := encode(w, stderr)
	if err != nil {
		return err
	}
	gen, err := loadgen.New(loadgen.Target{URL: *url, Token: *token}, enc, lf.concurrency)
	if err != nil {
		return err
	}
	defer gen.Close()
	if *warmup > 0 {
		if _, err := gen.Run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Duration: *warmup, Rate: *rate}); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	settings := lf.settings()
	settings["url"], settings["sink"], settings["rate"] = *url, *sinkName, *rate
	rep := newReport("healthrouter-load run", settings)
	m := measured{gen: gen, pid: *pid}
	res, usage, err := m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Duration: *duration, Rate: *rate})
	if err != nil {
		return err
	}
	rep.add(runFigures("", "", []runOutcome{{res, usage}})...)
	rep.Details["run"] = runOutcome{res, usage}
	rep.finish()
	if err := rep.Print(stdout, nil); err != nil {
		return err
	}
	if s := slowest(res); s != "" {
		fmt.Fprintln(stdout, "  "+strings.TrimPrefix(s, "; "))
	}
	if *jsonPath != "" {
		return rep.Save(*jsonPath)
	}
	return nil
}
