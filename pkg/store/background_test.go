package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestEmptyTicketSkipsBackgroundCommits: a request that changed nothing
// waits for the commits acknowledgements depend on, never for a
// checkpoint; a request with changes still waits for everything before it.
func TestEmptyTicketSkipsBackgroundCommits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	ctx := context.Background()
	if err := s.Commit(ctx, &Commit{States: []health.CheckState{state("r", "h", "a", health.Critical)}}); err != nil {
		t.Fatal(err)
	}

	// The disk stalls while a checkpoint is pending.
	stalled := errors.New("disk stalled")
	s.failWrite.Store(&stalled)
	checkpoint := s.Submit(&Commit{Background: true, States: []health.CheckState{state("r", "h", "a", health.Critical)}})

	quick, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.Submit(&Commit{}).Wait(quick); err != nil {
		t.Fatalf("a request that changed nothing waited for the checkpoint: %v", err)
	}
	changed := s.Submit(&Commit{States: []health.CheckState{state("r", "h", "b", health.Critical)}})
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if err := changed.Wait(short); err == nil {
		t.Fatal("a change was acknowledged before the commits ahead of it were written")
	}
	// Now an empty ticket depends on the change, which is not durable.
	if err := s.Submit(&Commit{}).Wait(short); err == nil {
		t.Fatal("a request that changed nothing was acknowledged before an earlier change")
	}

	// The tickets issued before the stall report it, as any failed commit.
	if err := checkpoint.Wait(ctx); !errors.Is(err, stalled) {
		t.Fatalf("checkpoint: want the stall, got %v", err)
	}
	// The disk recovers; the retries go through once everything is written.
	// An attempt already under way when it did may still fail, and fails
	// the ticket issued meanwhile, as it fails every commit it held: the
	// sender's next retry, issued after that attempt, must succeed.
	s.failWrite.Store(nil)
	wctx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	err := s.Submit(&Commit{}).Wait(wctx)
	if errors.Is(err, stalled) {
		err = s.Submit(&Commit{}).Wait(wctx)
	}
	if err != nil {
		t.Fatalf("after the disk recovered: %v", err)
	}
	n := 0
	if _, _, err := s.LoadChecks(func(*health.CheckState) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("%d checks on disk, %v; want 2", n, err)
	}
}
