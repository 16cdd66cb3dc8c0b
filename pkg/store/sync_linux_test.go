package store

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/internal/fulldisk"
)

// A commit is acknowledged only once the disk has it: every group commit
// is fdatasynced. To see that from outside, the file's descriptor is
// pointed at /dev/null, where writes succeed but a sync fails (EINVAL): a
// commit that skipped the sync would be acknowledged with its data on no
// disk at all.
func TestCommitsAreSynced(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	ctx := context.Background()
	commit := func(i int) *Commit {
		return &Commit{States: []health.CheckState{state("r", "h", "c"+strconv.Itoa(i%2), health.Critical)}}
	}
	// A few commits of the same shape first, so the probe below reuses
	// freed pages and need not grow the file (growing fails on /dev/null
	// with or without syncs).
	for i := range 4 {
		if err := s.Commit(ctx, commit(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.db.NoSync || s.db.NoGrowSync || !s.db.NoFreelistSync {
		t.Errorf("bolt options NoSync %v, NoGrowSync %v, NoFreelistSync %v; want data synced, the freelist rebuilt on open",
			s.db.NoSync, s.db.NoGrowSync, s.db.NoFreelistSync)
	}

	unsyncable := fulldisk.Redirect(t, s.Path(), "/dev/null")
	err := s.Commit(ctx, commit(4))
	unsyncable.Restore()
	if err == nil {
		t.Fatal("a commit was acknowledged though its sync could not succeed")
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Errorf("commit on an unsyncable file: %v, want the sync's EINVAL", err)
	}
	// The failed commit is retried against the real file and lands.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Submit(&Commit{}).Wait(wctx); err != nil {
		t.Fatalf("after the descriptor was restored: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
