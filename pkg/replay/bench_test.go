package replay_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

// benchScenario is a larger fleet (4 regions of 260 hosts, about 11,000
// events a round) with an incident every 20 rounds, so that alerts fire,
// roll up and resolve all along the stream.
func benchScenario(rounds int) *scenario.Scenario {
	f := scenario.DefaultFleet()
	f.WebHosts, f.RegistryHosts = 250, 10
	s := &scenario.Scenario{
		Number: 1, Name: "bench", Fleet: f, Rounds: rounds,
		Start:  time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
		Expect: scenario.Expectation{Suppressed: map[string]int{}},
	}
	for k := 2; k+10 <= rounds; k += 20 {
		s.Effects = append(s.Effects,
			scenario.Effect{Region: "us-east", Host: "web-0[0-3]?", Check: "disk", From: k, To: k + 8, Status: health.Critical},
			scenario.Effect{Region: "eu-west", Host: "*", Check: "dns", From: k, To: k + 8, Status: health.Critical},
			scenario.Effect{Region: "ap-south", Host: "web-3??", Check: "ntp", From: k, To: k + 10, Status: health.Critical, Flap: true},
		)
	}
	return s
}

// BenchmarkReplayStream replays generated streams of two sizes, eight times
// apart, produced on the fly through a pipe so that the input is never held
// whole. Memory must not grow with the stream: peak-heap-MiB (sampled
// between chunks) stays flat and B/event falls as the fleet's fixed cost is
// spread over more events.
func BenchmarkReplayStream(b *testing.B) {
	for _, rounds := range []int{24, 192} {
		s := benchScenario(rounds)
		if err := s.Validate(); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rounds=%d", rounds), func(b *testing.B) {
			var ms runtime.MemStats
			var peak uint64
			clock := time.Unix(0, 0)
			r, err := replay.New(replay.Options{
				// A clock that moves a second per read samples memory after
				// every chunk.
				Now: func() time.Time { clock = clock.Add(time.Second); return clock },
				Progress: func(replay.Progress) {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			events := 0
			b.ReportAllocs()
			for b.Loop() {
				pr, pw := io.Pipe()
				go func() {
					bw := bufio.NewWriterSize(pw, 64<<10)
					_, err := s.WriteEvents(bw)
					if err == nil {
						err = bw.Flush()
					}
					pw.CloseWithError(err)
				}()
				sum, err := r.Run(context.Background(), pr)
				if err != nil {
					b.Fatal(err)
				}
				if sum.Pages == 0 || sum.Rejected != 0 {
					b.Fatalf("replay found %d pages, %d rejected: the stream is not what it should be", sum.Pages, sum.Rejected)
				}
				events += sum.Events
			}
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(ms.TotalAlloc-before)/float64(events), "B/event")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
