package tracker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

// TestFullDiskIsReportedAndNotCounted: a commit the disk refuses is
// reported by StoreHealth, counted as a commit failure and its events as
// not_durable, never as accepted; once the disk has room again, a request
// submitted after the failure succeeds and clears it.
func TestFullDiskIsReportedAndNotCounted(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	m := f.tr.Metrics()
	request := func(hosts ...string) *ingest.Decoded {
		d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now()}}
		for _, h := range hosts {
			d.Batch.Results = append(d.Batch.Results, health.Result{
				Region: []byte("eu"), Host: []byte(h), Check: []byte("disk"), Status: health.Critical})
		}
		return d
	}
	counts := func() (accepted, notDurable, transitions, failures float64) {
		return counterValue(t, m.events.WithLabelValues("accepted")),
			counterValue(t, m.events.WithLabelValues("not_durable")),
			counterValue(t, m.transitions), counterValue(t, m.commitFailures)
	}

	if _, err := f.tr.Apply(ctx, request("web-1"), "test"); err != nil {
		t.Fatal(err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Fatalf("StoreHealth on a healthy disk = %+v", h)
	}
	accepted0, _, transitions0, _ := counts()
	if accepted0 != 1 || transitions0 == 0 {
		t.Fatalf("after a durable request: accepted %v, transitions %v", accepted0, transitions0)
	}

	disk := fillDisk(t, f.st.Path())
	failedAt := f.clock.now()
	if _, err := f.tr.Apply(ctx, request("web-2", "web-3"), "test"); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Apply on a full disk: %v, want the disk's error", err)
	}
	f.clock.add(time.Minute)
	// web-2 again: a duplicate now, its empty commit waits for the failed one.
	if _, err := f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
		t.Fatal("a request depending on a failed commit was acknowledged")
	}
	h := f.tr.StoreHealth()
	if !h.FailingSince.Equal(failedAt) || h.LastError == nil || !strings.Contains(h.LastError.Error(), "no space left") {
		t.Errorf("StoreHealth on a full disk = %+v, want failing since %v (the first failure) with the disk's error", h, failedAt)
	}
	accepted, notDurable, transitions, failures := counts()
	if accepted != accepted0 || transitions != transitions0 {
		t.Errorf("counted accepted %v (want %v), transitions %v (want %v) for commits that failed", accepted, accepted0, transitions, transitions0)
	}
	if notDurable != 3 || failures != 2 {
		t.Errorf("not_durable %v, commit failures %v; want 3 and 2", notDurable, failures)
	}

	disk.restore()
	var err error
	for range 100 { // the store retries the failed commit with a backoff
		if _, err = f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Apply once the disk has room: %v", err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Errorf("StoreHealth after recovery = %+v, want cleared", h)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// fullDisk stands in for a full disk under an open store: the store file's
// descriptor is pointed at /dev/full, where every write fails with ENOSPC,
// while its memory map keeps serving reads.
type fullDisk struct {
	t        *testing.T
	fd, file int // the store's descriptor, and a copy of the file's
	restored bool
}

func fillDisk(t *testing.T, path string) *fullDisk {
	t.Helper()
	fd := openDescriptor(t, path)
	saved, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	if err := syscall.Dup3(int(full.Fd()), fd, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	d := &fullDisk{t: t, fd: fd, file: saved}
	t.Cleanup(d.restore)
	return d
}

// restore points the descriptor back at the store file.
func (d *fullDisk) restore() {
	if d.restored {
		return
	}
	d.restored = true
	if err := syscall.Dup3(d.file, d.fd, syscall.O_CLOEXEC); err != nil {
		d.t.Fatal(err)
	}
	syscall.Close(d.file)
}

// openDescriptor finds the process's descriptor open on path.
func openDescriptor(t *testing.T, path string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != want {
			continue
		}
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
			return fd
		}
	}
	t.Fatalf("no descriptor open on %s", want)
	return -1
}
