package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestReadProcFixture(t *testing.T) {
	got, err := readProc(os.DirFS("testdata/proc"), 4242)
	if err != nil {
		t.Fatal(err)
	}
	// utime 1234 + stime 567 ticks at 100 Hz; sizes in kB.
	want := ProcStat{CPU: 18010 * time.Millisecond, RSS: 81920 << 10, PeakRSS: 131072 << 10, AnonRSS: 61440 << 10}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestReadProcErrors(t *testing.T) {
	status := &fstest.MapFile{Data: []byte("VmRSS:\t 10 kB\nVmHWM:\t 20 kB\n")}
	cases := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"no such process", fstest.MapFS{}, "read process 7"},
		{"stat without command", fstest.MapFS{"7/stat": {Data: []byte("7 S 1 2")}, "7/status": status}, "no command field"},
		{"stat cut short", fstest.MapFS{"7/stat": {Data: []byte("7 (x) S 1 2 3")}, "7/status": status}, "fields after the command"},
		{"cpu time not a number", fstest.MapFS{"7/stat": {Data: []byte("7 (x) S 1 1 1 0 -1 0 0 0 0 0 x 5 0 0")}, "7/status": status}, "cpu time"},
		{"rss in pages", fstest.MapFS{"7/stat": {Data: []byte("7 (x) S 1 1 1 0 -1 0 0 0 0 0 1 5 0 0")}, "7/status": {Data: []byte("VmRSS:\t 10 pages\n")}}, "unexpected line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readProc(tc.fs, 7)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestWatchSelf watches this very process burn some CPU.
func TestWatchSelf(t *testing.T) {
	m, err := Watch(os.Getpid(), 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		n++
	}
	u, err := m.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.Cores <= 0 || u.PeakRSS <= 0 || u.EndRSS <= 0 || u.PeakRSS < u.EndRSS || u.Wall < 100*time.Millisecond {
		t.Fatalf("usage %+v after %d spins", u, n)
	}
	if _, err := Watch(-1, time.Millisecond); err == nil {
		t.Fatal("watching a process that cannot exist")
	}
}

func TestParseSamples(t *testing.T) {
	f, err := os.Open("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseSamples(f)
	if err != nil {
		t.Fatal(err)
	}
	want := Samples{
		"go_goroutines":                          23,
		"go_memstats_heap_alloc_bytes":           54525952,
		`go_gc_duration_seconds{quantile="0.5"}`: 0.000101,
		`healthrouter_alert{level="host",region="eu-west-1",host="web 01 {primary}",severity="critical"}`: 2,
		"process_resident_memory_bytes": 83886080,
		"healthrouter_tracked_checks":   100000,
	}
	if len(s) != len(want) {
		t.Fatalf("got %d samples, want %d: %v", len(s), len(want), s)
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %v, want %v", k, s[k], v)
		}
	}
	for _, bad := range []string{"lonely_name\n", "name not_a_number\n", "{} 1\n"} {
		if _, err := ParseSamples(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("healthrouter_tracked_checks 42\n"))
	}))
	defer srv.Close()
	s, err := Scrape(context.Background(), srv.Client(), srv.URL+"/metrics")
	if err != nil || s["healthrouter_tracked_checks"] != 42 {
		t.Fatalf("got %v, %v", s, err)
	}
	if _, err := Scrape(context.Background(), srv.Client(), srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a 404 scrape gave %v", err)
	}
}
