package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/loadgen"
)

// runOutcome is one measured run: what the sender saw and what the
// receiving process spent meanwhile.
type runOutcome struct {
	Result loadgen.Result `json:"result"`
	Server *loadgen.Usage `json:"server,omitempty"`
}

// measured runs a generator while watching the receiver's process.
type measured struct {
	gen *loadgen.Generator
	pid int // 0: the receiver is not on this machine or not known
}

// run fails when any request failed: a figure from a run that was partly
// refused would flatter the receiver.
func (m measured) run(ctx context.Context, p loadgen.Pace) (loadgen.Result, *loadgen.Usage, error) {
	var mon *loadgen.Monitor
	if m.pid > 0 {
		var err error
		if mon, err = loadgen.Watch(m.pid, 100*time.Millisecond); err != nil {
			return loadgen.Result{}, nil, err
		}
	}
	res, err := m.gen.Run(ctx, p)
	var usage *loadgen.Usage
	if mon != nil {
		u, uerr := mon.Stop()
		if uerr != nil && err == nil {
			err = fmt.Errorf("watch receiver: %w", uerr)
		}
		usage = &u
	}
	if err != nil {
		return res, usage, err
	}
	if res.Failed > 0 {
		return res, usage, fmt.Errorf("%d of %d requests failed (%s); first: %s",
			res.Failed, res.Failed+res.Requests, codes(res.Codes), res.FirstError)
	}
	return res, usage, ctx.Err()
}

func codes(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, c[k])
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// runFigures are the figures of a series of runs of one kind: rate,
// latency, and what the two sides spent. Rate and latency are each the
// best run's; what the processes spent is the fastest run's, since cores
// and memory grow with the rate; CPU per event is comparable across runs.
func runFigures(name, label string, runs []runOutcome) []Figure {
	var rate, p50, p99, srvCores, srvPerEvent, srvRSS, cliCores []float64
	fastest := 0
	for i, r := range runs {
		rate = append(rate, r.Result.EventsPerSec)
		p50 = append(p50, ms(r.Result.Latency.P50))
		p99 = append(p99, ms(r.Result.Latency.P99))
		cliCores = append(cliCores, r.Result.ClientCPU.Seconds()/r.Result.Elapsed.Seconds())
		if r.Server != nil {
			srvCores = append(srvCores, r.Server.Cores)
			srvRSS = append(srvRSS, mib(r.Server.PeakRSS))
			if r.Result.Events > 0 {
				srvPerEvent = append(srvPerEvent, float64(r.Server.CPU.Nanoseconds())/float64(r.Result.Events))
			}
		}
		if r.Result.EventsPerSec > runs[fastest].Result.EventsPerSec {
			fastest = i
		}
	}
	if label != "" {
		label += ", "
	}
	ofFastest := func(f Figure) Figure {
		if fastest < len(f.Runs) {
			f.Value = f.Runs[fastest]
		}
		return f
	}
	out := []Figure{
		newFigure(name+"events_per_sec", label+"events/s", "events/s", Higher, rate...),
		newFigure(name+"p50_ms", label+"p50 latency", "ms", Lower, p50...),
		newFigure(name+"p99_ms", label+"p99 latency", "ms", Lower, p99...),
	}
	if len(srvCores) == len(runs) {
		out = append(out,
			newFigure(name+"server_ns_per_event", label+"server CPU per event", "ns", Lower, srvPerEvent...),
			ofFastest(newFigure(name+"server_cores", label+"server CPU (fastest run)", "cores", Lower, srvCores...)),
			ofFastest(newFigure(name+"server_peak_rss_mib", label+"server peak RSS (fastest run)", "MiB", Lower, srvRSS...)))
	}
	return append(out, ofFastest(newFigure(name+"client_cores", label+"load generator CPU (fastest run)", "cores", Lower, cliCores...)))
}
