package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
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

	restore := redirect(t, s.Path(), "/dev/null")
	err := s.Commit(ctx, commit(4))
	restore()
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

// redirect points this process's descriptor on path at target until the
// returned function (or the test's end) points it back.
func redirect(t *testing.T, path, target string) (restore func()) {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	fd := -1
	for _, e := range entries {
		if link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && link == want {
			if fd, err = strconv.Atoi(e.Name()); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if fd < 0 {
		t.Fatalf("no descriptor open on %s", want)
	}
	saved, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("cannot open %s: %v", target, err)
	}
	defer f.Close()
	if err := syscall.Dup3(int(f.Fd()), fd, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		if err := syscall.Dup3(saved, fd, syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		syscall.Close(saved)
	}
	t.Cleanup(restore)
	return restore
}
