// Package loadgen sends health-check traffic the way Vector's http sink
// does: events shaped as vector/healthrouter.yaml's remap emits them (a
// fresh event_id on every result), pre-encoded into batches (JSON array or
// NDJSON; gzip, zstd or none), over keep-alive HTTP/1.1 connections with
// Vector's headers, a fixed number of requests in flight, and
// measures what the receiver does with it: events per second, request
// latency, and the receiving process's CPU and memory. The same fleet can be
// encoded as Alertmanager alerts, to compare receivers on one load.
package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Target is where a Generator posts.
type Target struct {
	// URL is the receiver's base URL (http://127.0.0.1:8080); the sink's
	// path is appended.
	URL string
	// Token is sent as a bearer token when not empty.
	Token string
	// UserAgent defaults to one shaped like Vector's.
	UserAgent string
}

// Pace is how hard a run pushes.
type Pace struct {
	// Concurrency is the number of requests in flight, as Vector's
	// request.concurrency. A check's results go out one at a time, so a
	// fleet of fewer batches than this has fewer in flight.
	Concurrency int
	// Duration ends the run; Passes ends it after that many passes over
	// the batches instead (whichever comes first when both are set).
	Duration time.Duration
	Passes   int
	// Rate, in events per second, paces an open loop: requests start on a
	// fixed schedule whatever the answers, and latency counts from the
	// scheduled start, so a receiver falling behind shows in the figures
	// instead of slowing the sender (no coordinated omission). Zero runs a
	// closed loop: each worker sends as soon as its previous answer came.
	Rate float64
}

// Result is what one run measured.
type Result struct {
	Requests     int            `json:"requests"`
	Events       int            `json:"events"`
	Failed       int            `json:"failed_requests"`
	Codes        map[string]int `json:"codes"` // status code (or "error") -> requests
	FirstError   string         `json:"first_error,omitempty"`
	Accepted     int            `json:"accepted"`
	Duplicates   int            `json:"duplicates"`
	Rejected     int            `json:"rejected"`
	Elapsed      time.Duration  `json:"elapsed_ns"`
	EventsPerSec float64        `json:"events_per_sec"`
	Latency      Latency        `json:"latency"`
	// Slowest are the slowest requests and when they started: stalls
	// line up with what the receiver did at that moment (a checkpoint, a
	// collection, another process taking the CPU).
	Slowest []Slow `json:"slowest"`
	// ClientCPU is the CPU time this process spent during the run: the
	// load generator's share of the machine.
	ClientCPU time.Duration `json:"client_cpu_ns"`
}

// Slow is one slow request: when it was due or sent, counted from the
// start of the run, and how long it took.
type Slow struct {
	At   time.Duration `json:"at_ns"`
	Took time.Duration `json:"took_ns"`
}

// slowestKept is how many slow requests a Result lists.
const slowestKept = 5

// Latency summarises request latencies of successful requests.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Generator posts the batches of one encoded workload to one target.
// It decides nothing about the receiver: it replays, paces and measures.
type Generator struct {
	load     *Encoded
	client   *http.Client
	url      string
	headers  http.Header
	maxConns int

	// seq numbers every request the generator hands out, across runs: a
	// run carries on where the previous one stopped, as Vector's stream
	// does. Request seq sends batch seq % len(Batches).
	mu  sync.Mutex
	seq int
	// Results of one check must reach the receiver in the order they were
	// sent, as from Vector, whose results for a check are an interval
	// apart: a stalled request overtaken by the check's next result would
	// land after it and, once the id passes come round, repeat the
	// event_id the check had just seen. So a request waits until the
	// previous request carrying the same checks (seq - PassBatches) is
	// done; turns counts, per position in a pass, the requests done.
	turnMu sync.Mutex
	turn   *sync.Cond
	turns  []int
}

// New prepares a generator; maxConns bounds its keep-alive connections
// and so the concurrency of its runs.
func New(target Target, load *Encoded, maxConns int) (*Generator, error) {
	if target.URL == "" {
		return nil, errors.New("loadgen: target URL is required")
	}
	if load == nil || len(load.Batches) == 0 {
		return nil, errors.New("loadgen: nothing to send")
	}
	if maxConns <= 0 {
		maxConns = 1
	}
	ua := target.UserAgent
	if ua == "" {
		ua = "Vector/0.57.0 (x86_64-unknown-linux-gnu; healthrouter-load)"
	}
	w := load.Workload
	h := http.Header{}
	h.Set("User-Agent", ua)
	if w.Sink == Healthrouter {
		// Vector's http sink wraps its client in tower-http's
		// DecompressionLayer, which asks for these before the client's own
		// default of identity applies.
		h.Set("Accept-Encoding", vectorAcceptEncoding)
	} else {
		// What Go's client, and so Prometheus, asks Alertmanager for.
		h.Set("Accept-Encoding", "gzip")
	}
	if w.Sink == Healthrouter && w.Framing == NDJSON {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "application/json")
	}
	if w.Compression != None {
		h.Set("Content-Encoding", string(w.Compression))
	}
	if target.Token != "" {
		h.Set("Authorization", "Bearer "+target.Token)
	}
	tr := &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	g := &Generator{
		load:     load,
		client:   &http.Client{Transport: tr, Timeout: time.Minute},
		url:      strings.TrimRight(target.URL, "/") + w.Sink.Path(),
		headers:  h,
		maxConns: maxConns,
		turns:    make([]int, load.PassBatches()),
	}
	g.turn = sync.NewCond(&g.turnMu)
	return g, nil
}

// vectorAcceptEncoding is the Accept-Encoding Vector's http sink sends.
const vectorAcceptEncoding = "zstd,gzip,deflate,br"

// Close drops the idle connections.
func (g *Generator) Close() { g.client.CloseIdleConnections() }

// job is one request to send: the seq-th of the generator, sending
// batch; due is when it was meant to start.
type job struct {
	seq, batch int
	due        time.Time
}

// waitTurn blocks until the request before seq carrying the same checks
// is done. The oldest request out never waits, so all make progress.
func (g *Generator) waitTurn(seq int) {
	pos, turn := seq%len(g.turns), seq/len(g.turns)
	g.turnMu.Lock()
	for g.turns[pos] != turn {
		g.turn.Wait()
	}
	g.turnMu.Unlock()
}

// endTurn lets the next request carrying seq's checks go.
func (g *Generator) endTurn(seq int) {
	g.turnMu.Lock()
	g.turns[seq%len(g.turns)]++
	g.turnMu.Unlock()
	g.turn.Broadcast()
}

// tally is one worker's part of a Result, merged at the end.
type tally struct {
	requests, events, failed       int
	accepted, duplicates, rejected int
	codes                          map[string]int
	firstError                     string
	latencies                      []time.Duration
	slowest                        []Slow // at most slowestKept, unordered
}

// noteSlow keeps the slowest requests seen.
func (t *tally) noteSlow(s Slow) {
	if len(t.slowest) < slowestKept {
		t.slowest = append(t.slowest, s)
		return
	}
	least := 0
	for i := range t.slowest {
		if t.slowest[i].Took < t.slowest[least].Took {
			least = i
		}
	}
	if s.Took > t.slowest[least].Took {
		t.slowest[least] = s
	}
}

// Run sends until the pace's duration or passes are done, or ctx ends.
// Requests still out when the duration ends are waited for and counted;
// ending ctx abandons them.
func (g *Generator) Run(ctx context.Context, p Pace) (Result, error) {
	if p.Concurrency <= 0 || p.Concurrency > g.maxConns {
		// Past maxConns, requests would wait for a connection inside the
		// client and count it as the receiver's latency.
		return Result{}, fmt.Errorf("loadgen: concurrency %d: want 1 to %d", p.Concurrency, g.maxConns)
	}
	if p.Duration <= 0 && p.Passes <= 0 {
		return Result{}, errors.New("loadgen: a run needs a duration or a number of passes")
	}
	if p.Rate < 0 {
		return Result{}, errors.New("loadgen: rate must not be negative")
	}
	scheduling := ctx
	if p.Duration > 0 {
		var cancel context.CancelFunc
		scheduling, cancel = context.WithTimeout(ctx, p.Duration)
		defer cancel()
	}
	limit := -1
	if p.Passes > 0 {
		limit = p.Passes * g.load.PassBatches()
	}
	g.mu.Lock()
	first := g.seq
	g.mu.Unlock()
	jobs := make(chan job, p.Concurrency)
	scheduled := make(chan int, 1)
	cpu0 := processCPU()
	start := time.Now()
	go func() { scheduled <- g.schedule(scheduling, p, start, first, limit, jobs) }()

	tallies := make([]tally, p.Concurrency)
	var wg sync.WaitGroup
	for i := range tallies {
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			t.codes = map[string]int{}
			for j := range jobs {
				// Waiting for the checks' previous request is not
				// latency in a closed loop; in an open loop latency counts
				// from the due time, so it is.
				g.waitTurn(j.seq)
				g.send(ctx, start, j, t)
				g.endTurn(j.seq)
			}
		}(&tallies[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	g.mu.Lock()
	g.seq = first + <-scheduled
	g.mu.Unlock()
	res := Result{Codes: map[string]int{}, Elapsed: elapsed, ClientCPU: processCPU() - cpu0}
	var lat []time.Duration
	for i := range tallies {
		t := &tallies[i]
		res.Requests += t.requests
		res.Events += t.events
		res.Failed += t.failed
		res.Accepted += t.accepted
		res.Duplicates += t.duplicates
		res.Rejected += t.rejected
		for c, n := range t.codes {
			res.Codes[c] += n
		}
		if res.FirstError == "" {
			res.FirstError = t.firstError
		}
		lat = append(lat, t.latencies...)
		res.Slowest = append(res.Slowest, t.slowest...)
	}
	slices.SortFunc(res.Slowest, func(a, b Slow) int { return cmp.Compare(b.Took, a.Took) })
	res.Slowest = res.Slowest[:min(len(res.Slowest), slowestKept)]
	res.EventsPerSec = float64(res.Events) / elapsed.Seconds()
	res.Latency = summarise(lat)
	if res.Requests == 0 && res.Failed == 0 {
		return res, fmt.Errorf("loadgen: no request completed in %v", elapsed.Round(time.Millisecond))
	}
	return res, nil
}

// schedule feeds the workers, starting with batch first: as fast as they
// take jobs (closed loop), or on the rate's schedule (open loop). It
// closes jobs when the run ends and returns how many it handed out.
func (g *Generator) schedule(ctx context.Context, p Pace, start time.Time, first, limit int, jobs chan<- job) (sent int) {
	defer close(jobs)
	var interval time.Duration
	if p.Rate > 0 {
		perBatch := float64(g.load.Events()) / float64(g.load.PassBatches())
		interval = time.Duration(float64(time.Second) * perBatch / p.Rate)
	}
	for i := 0; limit < 0 || i < limit; i++ {
		j := job{seq: first + i, batch: (first + i) % len(g.load.Batches)}
		if interval > 0 {
			j.due = start.Add(time.Duration(i) * interval)
			if d := time.Until(j.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return i
				case <-t.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			return i
		case jobs <- j:
		}
	}
	return limit
}

// answer is the receiver's ingest response; Alertmanager sends none.
type answer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

func (g *Generator) send(ctx context.Context, start time.Time, j job, t *tally) {
	b := &g.load.Batches[j.batch]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(b.Body))
	if err != nil {
		t.fail("error", err.Error())
		return
	}
	req.Header = g.headers.Clone()
	began := time.Now()
	if !j.due.IsZero() {
		began = j.due
	}
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return // the run ended while this request was out: not a failure
		}
		t.fail("error", err.Error())
		return
	}
	body, err := readAnswer(resp)
	resp.Body.Close()
	took := time.Since(began)
	code := strconv.Itoa(resp.StatusCode)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		t.fail(code, "reading answer: "+err.Error())
		return
	}
	if resp.StatusCode/100 != 2 {
		t.fail(code, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)))
		return
	}
	if g.load.Workload.Sink == Healthrouter {
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.fail(code, "unreadable answer: "+err.Error())
			return
		}
		t.accepted += a.Accepted
		t.duplicates += a.Duplicates
		t.rejected += a.Rejected
	} else {
		t.accepted += b.Events
	}
	t.codes[code]++
	t.requests++
	t.events += b.Events
	t.latencies = append(t.latencies, took)
	t.noteSlow(Slow{At: began.Sub(start), Took: took})
}

// readAnswer reads a response body, inflating it when the receiver took up
// the Accept-Encoding offer with gzip.
func readAnswer(resp *http.Response) ([]byte, error) {
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip answer: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

func (t *tally) fail(code, msg string) {
	t.failed++
	t.codes[code]++
	if t.firstError == "" {
		t.firstError = msg
	}
}

// summarise takes nearest-rank percentiles.
func summarise(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(lat))+0.5) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	return Latency{P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: lat[len(lat)-1]}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
