package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// receiver is a fake ingest endpoint that records what it was sent and
// answers as healthrouter does, or as told.
type receiver struct {
	mu       sync.Mutex
	requests int
	headers  []http.Header
	answer   func(n int, r *http.Request) (int, string)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in = zr
	}
	body, _ := io.ReadAll(in)
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.mu.Unlock()
	code, answer := http.StatusOK, fmt.Sprintf(`{"accepted":%d,"duplicates":0,"rejected":0,"errors":[]}`, strings.Count(string(body), `"check"`))
	if rc.answer != nil {
		code, answer = rc.answer(n, r)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, answer)
}

func encodeTest(t *testing.T, w Workload) *Encoded {
	t.Helper()
	enc, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestRunPassesSendsEveryBatch(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	enc := encodeTest(t, Workload{Checks: 1000, BatchEvents: 100, Compression: Gzip, Failing: 0.02})
	g, err := New(Target{URL: srv.URL + "/", Token: "s3cret-token"}, enc, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := g.Run(context.Background(), Pace{Concurrency: 4, Passes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.Events != 3000 || res.Accepted != 3000 || res.Failed != 0 || res.Codes["200"] != 30 {
		t.Fatalf("result %+v; want 30 requests, 3000 events accepted", res)
	}
	if rc.requests != 30 {
		t.Fatalf("receiver saw %d requests", rc.requests)
	}
	h := rc.headers[0]
	want := map[string]string{
		"Content-Encoding": "gzip",
		"Content-Type":     "application/json",
		"Authorization":    "Bearer s3cret-token",
		"Accept-Encoding":  "zstd,gzip,deflate,br",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if !strings.HasPrefix(h.Get("User-Agent"), "Vector/") {
		t.Errorf("User-Agent %q", h.Get("User-Agent"))
	}
	if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Fatalf("latency %+v", res.Latency)
	}
	if res.EventsPerSec <= 0 {
		t.Fatalf("rate %v", res.EventsPerSec)
	}
}

func TestRunCountsFailures(t *testing.T) {
	cases := []struct {
		name     string
		answer   func(n int, r *http.Request) (int, string)
		failed   int
		code     string
		firstErr string
	}{
		{"overloaded every other request", func(n int, _ *http.Request) (int, string) {
			if n%2 == 0 {
				return http.StatusServiceUnavailable, `{"error":"overloaded"}`
			}
			return http.StatusOK, `{"accepted":10}`
		}, 5, "503", "overloaded"},
		{"unreadable answer", func(int, *http.Request) (int, string) { return http.StatusOK, "not json" }, 10, "200", "unreadable answer"},
		{"refused", func(int, *http.Request) (int, string) { return http.StatusUnauthorized, `{"error":"bad token"}` }, 10, "401", "bad token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&receiver{answer: tc.answer})
			defer srv.Close()
			g, err := New(Target{URL: srv.URL}, encodeTest(t, Workload{Checks: 100, BatchEvents: 10}), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			res, err := g.Run(context.Background(), Pace{Concurrency: 1, Passes: 1})
			if err != nil && res.Requests > 0 {
				t.Fatal(err)
			}
			if res.Failed != tc.failed || res.Codes[tc.code] < tc.failed || !strings.Contains(res.FirstError, tc.firstErr) {
				t.Fatalf("failed %d, codes %v, first error %q; want %d failed with %s, %q",
					res.Failed, res.Codes, res.FirstError, tc.failed, tc.code, tc.firstErr)
			}
			if res.Requests+res.Failed != 10 {
				t.Fatalf("%d succeeded and %d failed of 10", res.Requests, res.Failed)
			}
		})
	}
}

// TestRunOpenLoopKeepsSchedule: at a fixed rate the run sends what the
// schedule says however fast the receiver is, and a slow receiver shows
// in latency measured from the scheduled start.
func TestRunOpenLoopKeepsSchedule(t *testing.T) {
	var slow atomic.Bool
	srv := httptest.NewServer(&receiver{answer: func(int, *http.Request) (int, string) {
		if slow.Load() {
			time.Sleep(30 * time.Millisecond)
		}
		return http.StatusOK, `{"accepted":10}`
	}})
	defer srv.Close()
	g, err := New(Target{URL: srv.URL}, encodeTest(t, Workload{Checks: 100, BatchEvents: 10}), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// 400 events/s in batches of 10: a request every 25 ms, 20 in 500 ms.
	res, err := g.Run(context.Background(), Pace{Concurrency: 2, Duration: 500 * time.Millisecond, Rate: 400})
	if err != nil {
		t.Fatal(err)
	}
	// Never ahead of the schedule; behind it only as far as a busy
	// machine makes the workers late.
	if res.Requests < 10 || res.Requests > 21 {
		t.Fatalf("%d requests in 500 ms at one per 25 ms", res.Requests)
	}
	// One worker and a receiver slower than the schedule: requests queue,
	// and the queueing is in the latency.
	slow.Store(true)
	res, err = g.Run(context.Background(), Pace{Concurrency: 1, Duration: 300 * time.Millisecond, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Latency.Max < 2*30*time.Millisecond {
		t.Fatalf("max latency %v: the queueing behind a 30 ms receiver at 10 ms intervals is missing", res.Latency.Max)
	}
	// The slowest requests are listed slowest first, the first of them
	// the maximum, each due within the run.
	if len(res.Slowest) != slowestKept || res.Slowest[0].Took != res.Latency.Max {
		t.Fatalf("slowest %+v, max %v", res.Slowest, res.Latency.Max)
	}
	for i, s := range res.Slowest {
		if s.At < 0 || s.At > 300*time.Millisecond || i > 0 && s.Took > res.Slowest[i-1].Took {
			t.Fatalf("slowest %+v", res.Slowest)
		}
	}
}

func TestNoteSlowKeepsTheSlowest(t *testing.T) {
	var tl tally
	for i := 1; i <= 20; i++ {
		tl.noteSlow(Slow{At: time.Duration(i), Took: time.Duration((i * 7) % 20)})
	}
	var kept []time.Duration
	for _, s := range tl.slowest {
		kept = append(kept, s.Took)
	}
	slices.Sort(kept)
	if want := []time.Duration{15, 16, 17, 18, 19}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
}

func TestRunAlertmanagerSink(t *testing.T) {
	var path, encoding string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, encoding = r.URL.Path, r.Header.Get("Content-Encoding")
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	g, err := New(Target{URL: srv.URL}, encodeTest(t, Workload{Sink: Alertmanager, Checks: 50, BatchEvents: 25}), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := g.Run(context.Background(), Pace{Concurrency: 1, Passes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 50 || path != "/api/v2/alerts" || encoding != "" {
		t.Fatalf("accepted %d on %s with encoding %q", res.Accepted, path, encoding)
	}
}

func TestRunRefusesBadPace(t *testing.T) {
	g, err := New(Target{URL: "http://127.0.0.1:1"}, encodeTest(t, Workload{Checks: 10, BatchEvents: 10}), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Pace{{Concurrency: 0, Passes: 1}, {Concurrency: 2, Passes: 1}, {Concurrency: 1}, {Concurrency: 1, Passes: 1, Rate: -1}} {
		if _, err := g.Run(context.Background(), p); err == nil {
			t.Errorf("pace %+v accepted", p)
		}
	}
	if _, err := New(Target{}, encodeTest(t, Workload{Checks: 10, BatchEvents: 10}), 1); err == nil {
		t.Error("a target without URL accepted")
	}
	if _, err := New(Target{URL: "http://x"}, &Encoded{}, 1); err == nil {
		t.Error("an empty workload accepted")
	}
	// Nothing listens on port 1: every request fails and says why.
	res, err := g.Run(context.Background(), Pace{Concurrency: 1, Passes: 1})
	if err != nil || res.Failed != 1 || res.Codes["error"] != 1 || res.FirstError == "" {
		t.Fatalf("unreachable receiver: %+v, %v", res, err)
	}
}

func TestSummarise(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, ms(i))
	}
	cases := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"none", nil, Latency{}},
		{"one", []time.Duration{ms(5)}, Latency{P50: ms(5), P90: ms(5), P99: ms(5), Max: ms(5)}},
		{"1..100 ms", hundred, Latency{P50: ms(50), P90: ms(90), P99: ms(99), Max: ms(100)}},
	}
	for _, tc := range cases {
		if got := summarise(tc.in); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// dedupReceiver answers as healthrouter's engine counts: a result whose
// event_id equals its check's last one is a duplicate.
type dedupReceiver struct {
	mu   sync.Mutex
	last map[string]string
}

func (rc *dedupReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var events []event
	if err := json.NewDecoder(zr).Decode(&events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	accepted, duplicates := 0, 0
	for _, e := range events {
		k := e.Region + "/" + e.Host + "/" + e.Check
		if e.EventID != "" && rc.last[k] == e.EventID {
			duplicates++
			continue
		}
		rc.last[k] = e.EventID
		accepted++
	}
	rc.mu.Unlock()
	fmt.Fprintf(w, `{"accepted":%d,"duplicates":%d,"rejected":0}`, accepted, duplicates)
}

// TestRunsCarryOnThroughIDPasses: each run starts where the previous one
// stopped, so consecutive results of a check never share an event_id,
// whether runs end after whole passes or mid-pass.
func TestRunsCarryOnThroughIDPasses(t *testing.T) {
	srv := httptest.NewServer(&dedupReceiver{last: map[string]string{}})
	defer srv.Close()
	enc := encodeTest(t, Workload{Checks: 200, BatchEvents: 20, Compression: Gzip, IDPasses: 2})
	g, err := New(Target{URL: srv.URL}, enc, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sent := 0
	for i, p := range []Pace{{Concurrency: 2, Passes: 1}, {Concurrency: 1, Passes: 1}, {Concurrency: 2, Passes: 3},
		{Concurrency: 2, Duration: 30 * time.Millisecond}, {Concurrency: 1, Passes: 2}} {
		res, err := g.Run(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != 0 || res.Duplicates != 0 || res.Accepted != res.Events {
			t.Fatalf("run %d: %+v; want every event accepted", i+1, res)
		}
		if p.Passes > 0 && res.Events != p.Passes*200 {
			t.Fatalf("run %d: %d events in %d passes of 200", i+1, res.Events, p.Passes)
		}
		sent += res.Requests
	}
	g.mu.Lock()
	seq := g.seq
	g.mu.Unlock()
	if seq != sent {
		t.Fatalf("next request %d after %d requests", seq, sent)
	}
}

// TestStalledBatchIsNotSentTwiceAtOnce: with a ring shorter than the
// requests in flight, a stalled batch comes round again while it is still
// out; it must wait, not reach the receiver as duplicates.
func TestStalledBatchIsNotSentTwiceAtOnce(t *testing.T) {
	dedup := &dedupReceiver{last: map[string]string{}}
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			time.Sleep(50 * time.Millisecond)
		}
		dedup.ServeHTTP(w, r)
	}))
	defer srv.Close()
	// One batch per pass, two id passes: a ring of two batches.
	enc := encodeTest(t, Workload{Checks: 20, BatchEvents: 20, Compression: Gzip, IDPasses: 2})
	g, err := New(Target{URL: srv.URL}, enc, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := g.Run(context.Background(), Pace{Concurrency: 2, Passes: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 8 || res.Duplicates != 0 || res.Accepted != 160 {
		t.Fatalf("%+v; want 8 requests, all 160 events accepted", res)
	}
}
