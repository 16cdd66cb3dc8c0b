package tracker

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// storedLastSeen reads every check's last-seen from the store.
func (f *fixture) storedLastSeen() map[health.Key]int64 {
	f.t.Helper()
	out := map[health.Key]int64{}
	if _, _, err := f.st.LoadChecks(func(cs *health.CheckState) error {
		out[cs.Key] = cs.LastSeen
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestRunCheckpointsPeriodicallyAndOnStop: refreshes reach the store through
// the periodic checkpoint while Run goes on ticking, and the refreshes after
// the last one through the final checkpoint when ctx ends.
func TestRunCheckpointsPeriodicallyAndOnStop(t *testing.T) {
	f := newFixture(t, func(e *config.Engine) {
		e.Checkpoint = config.Duration(20 * time.Millisecond)
		e.TickEvery = config.Duration(5 * time.Millisecond)
		e.StaleAfter = config.Duration(time.Hour)
	})
	// More checks than one checkpoint part, one per host: the worst case
	// for parts and the sort.
	var keys []health.Key
	for i := 0; i < checkpointPart+500; i++ {
		keys = append(keys, health.Key{Region: fmt.Sprintf("r%d", i%3), Host: fmt.Sprintf("h%05d", i), Check: "ping"})
	}
	f.report(health.Passing, keys...) // new: committed with the request
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.tr.Run(ctx) }()

	f.clock.add(time.Minute)
	f.report(health.Passing, keys...) // refreshes: only a checkpoint writes them
	want := f.clock.now().UnixNano()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen, stale := f.storedLastSeen(), 0
		for _, k := range keys {
			if seen[k] != want {
				stale++
			}
		}
		if stale == 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("%d of %d refreshes not checkpointed after 10s of Run", stale, len(keys))
		}
		time.Sleep(10 * time.Millisecond)
	}

	var m dto.Metric
	if err := f.tr.metrics.checkpoints.WithLabelValues("written").Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
		t.Errorf("healthrouter_checkpoints_total{result=written} = %v (%v), want at least 1", m.GetCounter().GetValue(), err)
	}

	f.clock.add(time.Minute)
	f.report(health.Passing, keys[:10]...)
	last := f.clock.now().UnixNano()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	// A periodic checkpoint cut short by ctx may have submitted the last
	// refreshes without waiting for them (its caller gave up), leaving the
	// final one nothing to write: they are on disk once the store is
	// closed, as serve closes it after Run. Reopened without a checkpoint
	// of its own, the store shows what Run wrote.
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	f.open()
	seen := f.storedLastSeen()
	for i, k := range keys {
		if w := map[bool]int64{true: last, false: want}[i < 10]; seen[k] != w {
			t.Fatalf("%v last-seen %d after stop, want %d", k, seen[k], w)
		}
	}
}
