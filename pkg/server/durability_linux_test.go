package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFullDiskShowsInReadyzAndMetrics: while the disk is full, ingest
// answers 503, /readyz says since when commits fail and why, the failures
// are counted, and the events are counted not_durable rather than
// accepted; once the disk has room again the retry is accepted and
// /readyz clears.
func TestFullDiskShowsInReadyzAndMetrics(t *testing.T) {
	ts := newTestServer(t, true)
	disk := fillDisk(t, ts.store.Path())
	body := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "critical"),
		event("web-2.eu-west.example.com", "eu-west", "disk", "passing"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/events", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(data), "no space left") {
		t.Fatalf("ingest on a full disk: %d %s, want 503 naming the disk error", resp.StatusCode, data)
	}

	ready := readyzStore(t, ts)
	if ready["failing"] != true || ready["failing_since"] == nil ||
		!strings.Contains(fmt.Sprint(ready["last_error"]), "no space left") {
		t.Errorf("/readyz store while the disk is full = %v, want failing with since and last_error", ready)
	}
	_, exposition := ts.do(t, "GET", "/metrics", nil)
	for _, want := range []string{
		`healthrouter_ingest_events_total{result="not_durable"} 2`,
	} {
		if !strings.Contains(string(exposition), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(exposition), `healthrouter_ingest_events_total{result="accepted"}`) {
		t.Error("events counted accepted though their commit failed")
	}
	if s := seriesOf(string(exposition), "healthrouter_ingest_transitions_total"); len(s) != 1 || !strings.HasSuffix(s[0], " 0") {
		t.Error("transitions counted though their commit failed")
	}
	if s := seriesOf(string(exposition), "healthrouter_store_commit_failures_total"); len(s) != 1 || strings.HasSuffix(s[0], " 0") {
		t.Errorf("healthrouter_store_commit_failures_total = %v, want counted", s)
	}

	disk.restore()
	// The sender retries; the first commit, retried by the store, lands.
	var code int
	for range 100 {
		resp, data = ts.do(t, "POST", "/v1/events", body, withToken(ingestToken))
		if code = resp.StatusCode; code == http.StatusOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("retry after the disk has room: %d %s", code, data)
	}
	if ready := readyzStore(t, ts); ready["failing"] != false || ready["last_error"] != nil {
		t.Errorf("/readyz store after recovery = %v, want not failing", ready)
	}
}

func readyzStore(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	resp, data := ts.do(t, "GET", "/readyz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d %s, want 200: ingest answers 503 on its own", resp.StatusCode, data)
	}
	var body struct {
		Store map[string]any `json:"store"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	return body.Store
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
