package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// fleet is a synthetic fleet: regions x hosts x checks keys as byte slices,
// as the ingest decoder hands them over.
type fleet struct {
	keys [][3][]byte
}

var checkNames = []string{"cpu", "cpu-steal", "memory", "disk", "lvm", "raid", "connectivity", "dns", "ntp", "load", "swap", "registry"}

func newFleet(regions, hosts, checks int) *fleet {
	f := &fleet{keys: make([][3][]byte, 0, regions*hosts*checks)}
	for r := 0; r < regions; r++ {
		region := []byte(fmt.Sprintf("region-%03d", r))
		for h := 0; h < hosts; h++ {
			host := []byte(fmt.Sprintf("web-%06d.region-%03d", h, r))
			for c := 0; c < checks; c++ {
				name := checkNames[c%len(checkNames)]
				if c >= len(checkNames) {
					name = fmt.Sprintf("%s-%d", name, c/len(checkNames))
				}
				f.keys = append(f.keys, [3][]byte{region, host, []byte(name)})
			}
		}
	}
	return f
}

// batches cuts one round over the whole fleet into batches of size
// results, with failing checks critical and carrying an output. Like the
// ingest decoder's, each batch's names are views into one buffer. With
// byHost the hosts are shuffled but each host's checks arrive together, as
// when every host's agent sends its checks at once; otherwise every result
// is shuffled, the worst case for memory locality.
func (f *fleet) batches(size int, failing []bool, rng *rand.Rand, byHost bool) [][]health.Result {
	var order []int
	if byHost {
		// Keys are laid out host by host; shuffle runs of equal host.
		var runs [][2]int
		for i := 0; i < len(f.keys); {
			j := i
			for j < len(f.keys) && string(f.keys[j][1]) == string(f.keys[i][1]) && string(f.keys[j][0]) == string(f.keys[i][0]) {
				j++
			}
			runs = append(runs, [2]int{i, j})
			i = j
		}
		rng.Shuffle(len(runs), func(a, b int) { runs[a], runs[b] = runs[b], runs[a] })
		for _, r := range runs {
			for i := r[0]; i < r[1]; i++ {
				order = append(order, i)
			}
		}
	} else {
		order = rng.Perm(len(f.keys))
	}
	const output = "CRITICAL - check failed"
	var out [][]health.Result
	for start := 0; start < len(order); start += size {
		end := min(start+size, len(order))
		buf := make([]byte, 0, (end-start)*48)
		b := make([]health.Result, 0, end-start)
		view := func(p []byte) []byte {
			buf = append(buf, p...)
			return buf[len(buf)-len(p) : len(buf) : len(buf)]
		}
		for _, i := range order[start:end] {
			k := f.keys[i]
			r := health.Result{Region: view(k[0]), Host: view(k[1]), Check: view(k[2]), Interval: 30}
			if failing[i] {
				r.Status = health.Critical
				r.Output = view([]byte(output))
			}
			b = append(b, r)
		}
		out = append(out, b)
	}
	return out
}

// benchEngine returns a started engine holding the fleet with frac of its
// checks hard failing.
func benchEngine(tb testing.TB, f *fleet, frac float64, rng *rand.Rand) (*Engine, []bool, time.Time) {
	e, err := New(Config{Engine: config.Default().Engine})
	if err != nil {
		tb.Fatal(err)
	}
	now := t0
	e.Start(0, now)
	failing := make([]bool, len(f.keys))
	for i := range failing {
		failing[i] = rng.Float64() < frac
	}
	// Two rounds 30 s apart: the failing checks are confirmed hard.
	var out Outcome
	for round := 0; round < 2; round++ {
		now = now.Add(30 * time.Second)
		for _, b := range f.batches(1000, failing, rng, true) {
			out.Reset()
			e.Apply(&health.Batch{Received: now, Results: b}, &out)
		}
	}
	return e, failing, now
}

// BenchmarkApply applies batches of 1,000 results over 100k checks (10
// regions x 1,000 hosts x 10 checks), 2% failing, with churn: every round
// 0.5% of the checks change status, plus a Tick every 5 s of event time.
// One op is one batch; events/s is the figure to read. by_host sends each
// host's checks together (agents report a host at once), shuffled spreads
// every result at random (the worst case for memory locality).
func BenchmarkApply(b *testing.B) {
	for _, byHost := range []bool{true, false} {
		name := "by_host"
		if !byHost {
			name = "shuffled"
		}
		b.Run(name, func(b *testing.B) { benchmarkApply(b, byHost) })
	}
}

func benchmarkApply(b *testing.B, byHost bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := newFleet(10, 1000, 10)
	e, failing, now := benchEngine(b, f, 0.02, rng)
	rounds := make([][][]health.Result, 4)
	for i := range rounds {
		for j := 0; j < len(f.keys)/200; j++ {
			k := rng.IntN(len(f.keys))
			failing[k] = !failing[k]
		}
		rounds[i] = f.batches(1000, failing, rng, byHost)
	}
	var out Outcome
	perRound := len(rounds[0])
	step := 30 * time.Second / time.Duration(perRound)
	lastTick := now
	events := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := rounds[(i/perRound)%len(rounds)][i%perRound]
		now = now.Add(step)
		out.Reset()
		e.Apply(&health.Batch{Received: now, Results: batch}, &out)
		events += len(batch)
		if now.Sub(lastTick) >= 5*time.Second {
			out.Reset()
			e.Tick(now, &out)
			lastTick = now
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}

// BenchmarkTick1M measures Tick on 1M checks (100k hosts) with every check
// reporting every 30 s. steady ticks every 5 s: each tick visits the hosts
// whose lazily kept key has come, nothing becomes stale. restart runs the
// six minutes after Start that cover the end of the grace period (one op is
// a restart and 72 ticks). Only ticks are timed; max-ms reports the slowest
// tick.
func BenchmarkTick1M(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := newFleet(10, 10_000, 10)
	e, failing, now := benchEngine(b, f, 0.02, rng)
	round := f.batches(1000, failing, rng, true)
	feed := func(e *Engine, at time.Time) {
		var out Outcome
		for j, batch := range round {
			out.Reset()
			e.Apply(&health.Batch{Received: at.Add(time.Duration(j) * 30 * time.Millisecond), Results: batch}, &out)
		}
	}
	b.Run("steady", func(b *testing.B) {
		var out Outcome
		var slowest time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%6 == 0 {
				b.StopTimer()
				feed(e, now)
				b.StartTimer()
			}
			now = now.Add(5 * time.Second)
			out.Reset()
			start := time.Now()
			e.Tick(now, &out)
			slowest = max(slowest, time.Since(start))
			if len(out.Transitions) != 0 {
				b.Fatalf("steady state tick changed %d things", len(out.Transitions))
			}
		}
		b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms")
	})
	b.Run("restart", func(b *testing.B) {
		states := loadStates(1_000_000)
		var out Outcome
		var slowest time.Duration
		ticks := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			r, err := New(Config{Engine: config.Default().Engine})
			if err != nil {
				b.Fatal(err)
			}
			for j := range states {
				if err := r.Load(&states[j]); err != nil {
					b.Fatal(err)
				}
			}
			at := t0.Add(time.Minute)
			r.Start(0, at)
			// Six minutes after the restart: results every 30 s, a tick
			// every 5 s, through the end of the grace period.
			for k := 1; k <= 72; k++ {
				if k%6 == 1 {
					b.StopTimer()
					feed(r, at)
				}
				at = at.Add(5 * time.Second)
				out.Reset()
				b.StartTimer()
				start := time.Now()
				r.Tick(at, &out)
				slowest = max(slowest, time.Since(start))
				ticks++
				if len(out.Transitions) != 0 {
					b.Fatalf("tick changed %d things", len(out.Transitions))
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(ticks), "ms/tick")
		b.ReportMetric(float64(slowest.Microseconds())/1000, "max-ms")
	})
}

// loadStates builds n persisted states: 10 regions x n/100 hosts x 10
// checks, 2% failing with output.
func loadStates(n int) []health.CheckState {
	rng := rand.New(rand.NewPCG(5, 6))
	f := newFleet(10, n/100, 10)
	states := make([]health.CheckState, len(f.keys))
	seen := t0.UnixNano()
	for i, k := range f.keys {
		s := health.CheckState{
			Key:         health.Key{Region: string(k[0]), Host: string(k[1]), Check: string(k[2])},
			Updated:     seen,
			LastSeen:    seen,
			HardSince:   seen - int64(time.Hour),
			Interval:    30,
			FlapCount:   21,
			EventID:     rng.Uint64(),
			FlapHistory: 0,
		}
		if rng.Float64() < 0.02 {
			s.Status, s.Hard, s.Output = health.Critical, health.Critical, "CRITICAL - check failed"
		}
		states[i] = s
	}
	return states
}

// BenchmarkLoad1M restores 1M persisted checks: New, Load each, Start.
func BenchmarkLoad1M(b *testing.B) {
	states := loadStates(1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := New(Config{Engine: config.Default().Engine})
		if err != nil {
			b.Fatal(err)
		}
		for j := range states {
			if err := e.Load(&states[j]); err != nil {
				b.Fatal(err)
			}
		}
		e.Start(0, t0.Add(time.Minute))
		if e.Stats().TrackedChecks != len(states) {
			b.Fatalf("loaded %d", e.Stats().TrackedChecks)
		}
	}
}

// heapPerCheck builds an engine of regions x hosts x checks through Apply
// (2% failing with output) and returns the live heap it holds per check.
func heapPerCheck(tb testing.TB, regions, hosts, checks int) float64 {
	f := newFleet(regions, hosts, checks)
	rng := rand.New(rand.NewPCG(7, 8))
	failing := make([]bool, len(f.keys))
	for i := range failing {
		failing[i] = rng.Float64() < 0.02
	}
	batches := f.batches(1000, failing, rng, true)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e, err := New(Config{Engine: config.Default().Engine})
	if err != nil {
		tb.Fatal(err)
	}
	e.Start(0, t0)
	var out Outcome
	for _, b := range batches {
		out.Reset()
		e.Apply(&health.Batch{Received: t0, Results: b}, &out)
	}
	out = Outcome{}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := e.Stats().TrackedChecks; n != len(f.keys) {
		tb.Fatalf("tracking %d checks, want %d", n, len(f.keys))
	}
	runtime.KeepAlive(e)
	runtime.KeepAlive(batches)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(len(f.keys))
}

// BenchmarkMemory1M reports the live heap per tracked check at 1M checks in
// two fleet shapes.
func BenchmarkMemory1M(b *testing.B) {
	shapes := []struct {
		name                   string
		regions, hosts, checks int
	}{
		{"10x10kx10", 10, 10_000, 10},
		{"1000x100x10", 1000, 100, 10},
		{"10x50kx2", 10, 50_000, 2},
	}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			var per float64
			for i := 0; i < b.N; i++ {
				per = heapPerCheck(b, s.regions, s.hosts, s.checks)
			}
			b.ReportMetric(per, "bytes/check")
		})
	}
}

// TestMemoryPerCheck holds the engine to its memory budget of 512 bytes
// per tracked check on a fleet large enough for fixed costs not to matter.
func TestMemoryPerCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200k checks")
	}
	per := heapPerCheck(t, 10, 2000, 10)
	t.Logf("%.0f bytes per tracked check", per)
	if per > 512 {
		t.Fatalf("%.0f bytes per tracked check, budget 512", per)
	}
}

// TestApplyKnownChecksDoesNotAllocate: a batch of known checks whose
// results equal their state costs no allocation.
func TestApplyKnownChecksDoesNotAllocate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	f := newFleet(2, 50, 10)
	e, failing, now := benchEngine(t, f, 0.02, rng)
	batch := f.batches(1000, failing, rng, false)[0]
	var out Outcome
	allocs := testing.AllocsPerRun(20, func() {
		now = now.Add(time.Second)
		out.Reset()
		e.Apply(&health.Batch{Received: now, Results: batch}, &out)
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per batch of known checks", allocs)
	}
}

// BenchmarkRead measures the read side /metrics calls on every scrape, on
// 1M checks with 2% failing: host alerts spread over the fleet.
func BenchmarkRead(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	f := newFleet(10, 10_000, 10)
	e, _, _ := benchEngine(b, f, 0.02, rng)
	b.Run("Alerts", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if len(e.Alerts()) == 0 {
				b.Fatal("no alerts")
			}
		}
	})
	b.Run("FailingChecks", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := 0
			e.FailingChecks(func(health.Key, health.Status, bool) { n++ })
			if n == 0 {
				b.Fatal("no failing checks")
			}
		}
	})
	b.Run("Regions", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = e.Regions()
		}
	})
	// GET /v1/hosts: a page costs the page, wherever it starts.
	for _, p := range []struct {
		name          string
		offset, limit int
	}{{"HostsPage/first1", 0, 1}, {"HostsPage/mid1000", 50_000, 1000}, {"HostsPage/all", 0, math.MaxInt}} {
		b.Run(p.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, total := e.HostsPage("", p.offset, p.limit); total != 100_000 {
					b.Fatalf("total %d", total)
				}
			}
		})
	}
}

// BenchmarkForget measures forgetting on 100k checks (10 regions x 1,000
// hosts x 10 checks). ForgetHost: one op forgets one host of 10 checks, 2%
// of them failing (it reports again, untimed, before its next turn). Tick:
// one op is the ticks at the deadline that forget the 10% of the hosts
// silent for forget_after (1,000 hosts, 10k checks) while the rest report
// once a period; the hosts visited count against the 4,096-host bound per
// tick, so it takes up to three. Reports are untimed, and the forgotten
// hosts come back as new ones for the next op.
func BenchmarkForget(b *testing.B) {
	b.Run("ForgetHost", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(13, 14))
		f := newFleet(10, 1000, 10)
		e, failing, now := benchEngine(b, f, 0.02, rng)
		hosts := f.batches(10, failing, rng, true) // one host per batch
		var out Outcome
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			batch := hosts[i%len(hosts)]
			now = now.Add(time.Millisecond)
			out.Reset()
			if _, ok := e.ForgetHost(string(batch[0].Region), string(batch[0].Host), now, &out); !ok {
				b.Fatal("host not found")
			}
			b.StopTimer()
			out.Reset()
			e.Apply(&health.Batch{Received: now, Results: batch}, &out)
			b.StartTimer()
		}
	})
	b.Run("Tick", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(15, 16))
		f := newFleet(10, 1000, 10)
		c := config.Default().Engine
		c.ForgetAfter = c.StaleAfter
		e, err := New(Config{Engine: c})
		if err != nil {
			b.Fatal(err)
		}
		now := t0
		e.Start(0, now)
		hosts := f.batches(10, make([]bool, len(f.keys)), rng, true)
		var silent, live []health.Result
		for i, batch := range hosts {
			if i%10 == 0 {
				silent = append(silent, batch...)
			} else {
				live = append(live, batch...)
			}
		}
		period := c.ForgetAfter.D()
		var out Outcome
		ticks := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			out.Reset()
			e.Apply(&health.Batch{Received: now, Results: silent}, &out)
			out.Reset()
			e.Apply(&health.Batch{Received: now.Add(period - time.Second), Results: live}, &out)
			now = now.Add(period)
			b.StartTimer()
			for forgotten := 0; forgotten < len(silent); ticks++ {
				if ticks > 4*(i+1) {
					b.Fatalf("op %d: %d of %d checks forgotten after %d ticks", i, forgotten, len(silent), ticks)
				}
				out.Reset()
				e.Tick(now, &out)
				forgotten += len(out.Forgotten)
			}
		}
		b.ReportMetric(float64(ticks)/float64(b.N), "ticks/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(silent)/10), "ns/host")
	})
}
