package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

// compareCmd runs one load against healthrouter and against Alertmanager,
// alternating their runs so both see the same machine and the same noise.
func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", stderr)
	var lf loadFlags
	lf.register(fs)
	server := fs.String("server", "bin/healthrouter", "healthrouter `binary`")
	amBin := fs.String("alertmanager", "/usr/bin/prometheus-alertmanager", "Alertmanager `binary` (Debian's prometheus-alertmanager)")
	count := fs.Int("count", 3, "runs against each receiver")
	duration := fs.Duration("duration", 15*time.Second, "length of each run")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured traffic to each receiver first")
	jsonPath := fs.String("json", "", "write the report as JSON to this `file`")
	keep := fs.Bool("keep", false, "keep data directories and logs")
	strict := fs.Bool("strict", false, "exit 3 when the ratio misses its target")
	var scratchRoot string
	registerScratch(fs, &scratchRoot)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count <= 0 {
		return fmt.Errorf("--count must be positive")
	}
	if _, err := exec.LookPath(*amBin); err != nil {
		return fmt.Errorf("alertmanager: %w (Debian: apt-get install prometheus-alertmanager, or make bench-compare)", err)
	}
	hrLoad, err := lf.workload(loadgen.Healthrouter)
	if err != nil {
		return err
	}
	// The same fleet, order and failing checks: only the encoding differs.
	amLoad := hrLoad
	amLoad.Sink, amLoad.Framing, amLoad.Compression = loadgen.Alertmanager, loadgen.JSONArray, loadgen.None
	amLoad.IDPasses = 0 // alerts carry no event_id: one pass
	amVersion, err := alertmanagerVersion(ctx, *amBin)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "alertmanager:", amVersion)
	hrEnc, err := encode(hrLoad, stderr)
	if err != nil {
		return err
	}
	amEnc, err := encode(amLoad, stderr)
	if err != nil {
		return err
	}

	sc, cleanup, err := scratchDir(scratchRoot, "healthrouter-compare-", *keep, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	dir := sc.dir
	hr, err := startReadyHealthrouter(ctx, *server, filepath.Join(dir, "healthrouter"), filepath.Join(dir, "healthrouter.log"))
	if err != nil {
		return err
	}
	defer hr.kill()
	am, err := startAlertmanager(ctx, *amBin, dir)
	if err != nil {
		return err
	}
	defer am.kill()

	hrGen, err := loadgen.New(hr.target(), hrEnc, lf.concurrency)
	if err != nil {
		return err
	}
	defer hrGen.Close()
	amGen, err := loadgen.New(loadgen.Target{URL: am.url}, amEnc, lf.concurrency)
	if err != nil {
		return err
	}
	defer amGen.Close()
	receivers := []struct {
		name string
		m    measured
		runs []runOutcome
	}{
		{name: "healthrouter", m: measured{gen: hrGen, pid: hr.PID()}},
		{name: "alertmanager", m: measured{gen: amGen, pid: am.PID()}},
	}
	for _, r := range receivers {
		// Two passes create every check (confirming the failing ones) or
		// alert; what follows repeats known state, as in bench.
		pre, _, err := r.m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Passes: 2})
		if err != nil {
			return fmt.Errorf("%s preload: %w", r.name, err)
		}
		if err := allAccepted(r.name+" preload", pre); err != nil {
			return err
		}
		if _, _, err := r.m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Duration: *warmup}); err != nil {
			return fmt.Errorf("%s warm-up: %w", r.name, err)
		}
	}
	if err := expectTracked(ctx, hr, hrEnc.Events()); err != nil {
		return fmt.Errorf("healthrouter after preload: %w", err)
	}
	settings := lf.settings()
	settings["count"], settings["duration"] = *count, duration.String()
	settings["alertmanager"], settings["alertmanager_version"] = *amBin, amVersion
	sc.settings(settings)
	rep := newReport("make bench-compare", settings)
	for i := 0; i < *count; i++ {
		for j := range receivers {
			r := &receivers[j]
			res, usage, err := r.m.run(ctx, loadgen.Pace{Concurrency: lf.concurrency, Duration: *duration})
			if err != nil {
				return fmt.Errorf("%s run %d: %w", r.name, i+1, err)
			}
			if err := allAccepted(fmt.Sprintf("%s run %d", r.name, i+1), res); err != nil {
				return err
			}
			r.runs = append(r.runs, runOutcome{res, usage})
			progress(stderr, r.name, i+1, *count, res, usage)
		}
	}

	if err := expectTracked(ctx, hr, hrEnc.Events()); err != nil {
		return fmt.Errorf("healthrouter after the runs: %w", err)
	}
	hrFigs := runFigures("healthrouter_", "healthrouter", receivers[0].runs)
	hrFigs[0] = hrFigs[0].withNote(fmt.Sprintf("%s %s, %d events per request", hrLoad.Compression, hrLoad.Framing, hrLoad.BatchEvents))
	amFigs := runFigures("alertmanager_", "alertmanager", receivers[1].runs)
	amFigs[0] = amFigs[0].withNote(fmt.Sprintf("the same results as alerts on /api/v2/alerts, uncompressed JSON (its API takes no Content-Encoding), %d per request", amLoad.BatchEvents))
	rep.add(hrFigs...)
	rep.add(amFigs...)
	rep.add(ratioFigure(receivers[0].runs, receivers[1].runs))
	rep.Details["healthrouter"], rep.Details["alertmanager"] = receivers[0].runs, receivers[1].runs
	rep.finish()

	if _, err := hr.stop(stopTimeout); err != nil {
		return err
	}
	if _, err := am.stop(stopTimeout); err != nil {
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

// alertmanagerVersion is the first line `alertmanager --version` prints,
// so a report says which Alertmanager it compared against.
func alertmanagerVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// ratioFigure is healthrouter's best rate over Alertmanager's best; its
// runs are the ratios of each pair of neighbouring runs, for the spread.
func ratioFigure(hr, am []runOutcome) Figure {
	var pairs []float64
	bestHR, bestAM := 0.0, 0.0
	for i := range hr {
		bestHR = max(bestHR, hr[i].Result.EventsPerSec)
		bestAM = max(bestAM, am[i].Result.EventsPerSec)
		if am[i].Result.EventsPerSec > 0 {
			pairs = append(pairs, hr[i].Result.EventsPerSec/am[i].Result.EventsPerSec)
		}
	}
	f := newFigure("ratio_vs_alertmanager", "healthrouter / alertmanager", "x", Higher, pairs...)
	if bestAM > 0 {
		f.Value = bestHR / bestAM
	}
	return f.withTarget(targetVsAlertmgr).withNote("best rate over best rate; runs are the ratios of neighbouring runs")
}
