package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// BenchmarkCheckpoint writes one checkpoint of every tracked check over a
// store that already holds them, as the tracker does every checkpoint
// interval under steady traffic (every check's last-seen moved). Every
// ingest acknowledgement submitted meanwhile waits for it: ms/op is the
// stall a checkpoint puts on ingest.
func BenchmarkCheckpoint(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			s := openTest(b, b.TempDir(), Options{})
			defer s.Close()
			ctx := context.Background()
			states := make([]health.CheckState, n)
			for i := range states {
				st := state(fmt.Sprintf("region-%02d", i%10), fmt.Sprintf("web-%06d.example.net", i/10), fmt.Sprintf("check_%02d", i%10), health.Passing)
				st.LastSeen, st.Updated, st.FlapCount, st.Interval = int64(i), int64(i), 21, 30
				states[i] = st
			}
			if err := s.Commit(ctx, &Commit{States: states}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range states {
					states[j].LastSeen += 1e9
				}
				if err := s.Commit(ctx, &Commit{States: states}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/checkpoint")
		})
	}
}
