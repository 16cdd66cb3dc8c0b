package tracker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// BenchmarkCheckpointStall measures what a checkpoint of 100k checks, all
// refreshed since the previous one as under steady traffic, costs the
// ingest requests that arrive meanwhile: batches that only repeat known
// states are applied in a loop while the checkpoint is written. One op is
// one checkpoint; stall-ms is the slowest of those requests, ckpt-ms the
// checkpoint itself. full is the final checkpoint's speed, paced the
// periodic one's.
func BenchmarkCheckpointStall(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchCheckpointStall(b, false) })
	b.Run("paced", func(b *testing.B) { benchCheckpointStall(b, true) })
}

func benchCheckpointStall(b *testing.B, paced bool) {
	const checks, perBatch = 100_000, 1000
	cfg := config.Default()
	st, err := store.Open(b.TempDir(), store.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tr, err := Open(cfg, st, zap.NewNop(), clock)
	if err != nil {
		b.Fatal(err)
	}
	batches := make([]*ingest.Decoded, checks/perBatch)
	for i := range batches {
		d := &ingest.Decoded{}
		for j := 0; j < perBatch; j++ {
			n := i*perBatch + j
			d.Batch.Results = append(d.Batch.Results, health.Result{
				Region: []byte(fmt.Sprintf("region-%d", n%10)),
				Host:   []byte(fmt.Sprintf("web-%06d.example.net", n/10)),
				Check:  []byte(fmt.Sprintf("check_%d", n%10)),
				Status: health.Passing,
			})
		}
		d.Total = perBatch
		batches[i] = d
	}
	ctx := context.Background()
	apply := func(i int, at time.Time) time.Duration {
		d := batches[i%len(batches)]
		d.Batch.Received = at
		start := time.Now()
		if _, err := tr.Apply(ctx, d, "127.0.0.1"); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for i := range batches {
		apply(i, now)
	}
	var stall, ckpt time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		now = now.Add(time.Second)
		for j := range batches { // every check refreshed: all are due
			apply(j, now)
		}
		b.StartTimer()
		done := make(chan time.Duration)
		go func() {
			start := time.Now()
			if _, err := tr.checkpoint(ctx, paced); err != nil {
				b.Error(err)
			}
			done <- time.Since(start)
		}()
	loop:
		for j := 0; ; j++ {
			select {
			case d := <-done:
				ckpt = max(ckpt, d)
				break loop
			default:
				stall = max(stall, apply(j, now))
			}
		}
	}
	b.ReportMetric(float64(stall.Microseconds())/1000, "stall-ms")
	b.ReportMetric(float64(ckpt.Microseconds())/1000, "ckpt-ms")
}
