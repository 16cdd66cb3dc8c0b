package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

const (
	ingestToken = "ingest-token-0123456789"
	otherToken  = "rotated-token-abcdefghij"
	adminToken  = "admin-token-0123456789ab"
)

// testServer is a real server on loopback with a real store.
type testServer struct {
	*httptest.Server
	srv     *Server
	tracker *tracker.Tracker
	store   *store.Store
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
}

type option func(*config.Config)

func newTestServer(t testing.TB, ready bool, opts ...option) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Auth.IngestTokens = []config.Secret{ingestToken, otherToken}
	cfg.Auth.AdminToken = adminToken
	cfg.Ingest.RegionFromHost = `^[a-z]+-\d+\.([a-z-]+)\.`
	for _, o := range opts {
		o(cfg)
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	dec, err := ingest.NewDecoder(cfg.Ingest)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Options{Config: cfg, Decoder: dec, Logger: log, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Bounded as serve bounds it.
	st, err := store.Open(cfg.DataDir, store.Options{Logger: log, JournalMax: cfg.Engine.JournalMax, RejectedMax: cfg.Ingest.DeadLetterMax})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracker.Open(cfg, st, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(tr.Metrics())
	if ready {
		srv.SetTracker(tr)
	}
	ts := &testServer{Server: httptest.NewServer(srv.Handler()), srv: srv, tracker: tr, store: st, reg: reg, logs: logs}
	t.Cleanup(func() {
		ts.Close()
		st.Close()
	})
	return ts
}

// event renders one result the way Vector's json codec does: sorted keys,
// compact.
func event(host, region, check, status string) string {
	return fmt.Sprintf(`{"check":%q,"host":%q,"output":"%s output","region":%q,"source_type":"exec","status":%q,"timestamp":"2026-11-25T10:00:00.123456789Z"}`,
		check, host, check, region, status)
}

func jsonArray(events ...string) []byte { return []byte("[" + strings.Join(events, ",") + "]") }

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type reqOpt func(*http.Request)

func withToken(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func withEncoding(ce string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Content-Encoding", ce) }
}

func (ts *testServer) do(t *testing.T, method, path string, body []byte, opts ...reqOpt) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

func (ts *testServer) post(t *testing.T, body []byte, opts ...reqOpt) (*http.Response, tracker.Result) {
	t.Helper()
	resp, data := ts.do(t, http.MethodPost, "/v1/events", body, append([]reqOpt{withToken(ingestToken)}, opts...)...)
	var res tracker.Result
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &res); err != nil {
			t.Fatalf("decoding 200 body %q: %v", data, err)
		}
	}
	return resp, res
}

func TestIngestAcceptsVectorBatch(t *testing.T) {
	ts := newTestServer(t, true)
	body := jsonArray(
		event("web-1.eu-west.example.com", "eu-west", "disk", "passing"),
		event("web-2.eu-west.example.com", "eu-west", "disk", "critical"),
	)
	resp, res := ts.post(t, gz(t, body), withEncoding("gzip"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if res.Accepted != 2 || res.Rejected != 0 || res.Duplicates != 0 || len(res.Errors) != 0 {
		t.Fatalf("result %+v, want 2 accepted", res)
	}
	// Vector retries the same batch after a timeout: both events are
	// recognised as duplicates and nothing changes.
	_, again := ts.post(t, gz(t, body), withEncoding("gzip"))
	if again.Accepted != 0 || again.Duplicates != 2 || again.Rejected != 0 || len(again.Errors) != 0 {
		t.Fatalf("retry result %+v, want 0 accepted, 2 duplicates", again)
	}
	if n := ts.tracker.Stats().TrackedChecks; n != 2 {
		t.Fatalf("tracked checks = %d, want 2", n)
	}
}

func TestIngestPartialBatchDeadLettersTheBadEvent(t *testing.T) {
	ts := newTestServer(t, true)
	body := jsonArray(
		event("web-1.eu-west.example.com", "eu-west", "disk", "passing"),
		`{"check":"disk","host":"web-2.eu-west.example.com","region":"eu-west","status":"sideways"}`,
		event("web-3.eu-west.example.com", "eu-west", "disk", "critical"),
	)
	resp, res := ts.post(t, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a batch with one bad event must be 200, got %d", resp.StatusCode)
	}
	if res.Accepted != 2 || res.Rejected != 1 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "event 1") {
		t.Fatalf("result %+v, want 2 accepted, 1 rejected naming event 1", res)
	}
	resp, data := ts.do(t, http.MethodGet, "/v1/rejected", nil, withToken(ingestToken))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/rejected: %d", resp.StatusCode)
	}
	var out struct{ Rejected []health.Rejected }
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rejected) != 1 || out.Rejected[0].Reason == "" || !strings.Contains(out.Rejected[0].Event, "sideways") || out.Rejected[0].Index != 1 {
		t.Fatalf("dead letters %+v", out.Rejected)
	}
	if !strings.Contains(metrics(t, ts), `healthrouter_ingest_rejected_total{reason="`+out.Rejected[0].Reason+`"} 1`) {
		t.Fatal("rejection not counted by reason in /metrics")
	}
}

// A dead letter longer than the stored bound says it was cut, so an
// operator never mistakes the kept prefix for the whole event.
func TestDeadLetterSaysWhenCut(t *testing.T) {
	long := strings.Repeat("x", 6000)
	tests := []struct {
		name          string
		body          []byte
		wantIndex     int
		wantTruncated bool
	}{
		{"short bad event", jsonArray(`{"check":"disk","host":"web-2","region":"eu-west","status":"sideways"}`), 0, false},
		{"long bad event", jsonArray(`{"check":"disk","host":"web-2","region":"eu-west","status":"sideways","output":"` + long + `"}`), 0, true},
		{"long undecodable body", []byte(`{"check":"disk","output":"` + long), -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, true)
			ts.post(t, tt.body)
			_, data := ts.do(t, http.MethodGet, "/v1/rejected", nil, withToken(ingestToken))
			var out struct{ Rejected []health.Rejected }
			if err := json.Unmarshal(data, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Rejected) != 1 {
				t.Fatalf("dead letters %+v, want 1", out.Rejected)
			}
			got := out.Rejected[0]
			if got.Index != tt.wantIndex || got.Truncated != tt.wantTruncated || len(got.Event) > ingest.MaxRawBytes {
				t.Errorf("dead letter index %d truncated %v (%d bytes), want index %d truncated %v, at most %d bytes",
					got.Index, got.Truncated, len(got.Event), tt.wantIndex, tt.wantTruncated, ingest.MaxRawBytes)
			}
		})
	}
}

func TestIngestResponseCodes(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) {
		c.Ingest.MaxBodyBytes = 64 << 10
		c.Ingest.MaxDecodedBytes = 1 << 20
		c.Ingest.MaxEvents = 100
	})
	ok := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing"))
	bomb := gz(t, bytes.Repeat([]byte(" "), 20<<20)) // 20 MiB of spaces in ~20 KiB
	var many []string
	for i := 0; i < 101; i++ {
		many = append(many, event(fmt.Sprintf("web-%d.eu-west.example.com", i), "eu-west", "disk", "passing"))
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		opts   []reqOpt
		want   int
	}{
		{"json array", "POST", "/v1/events", ok, []reqOpt{withToken(ingestToken)}, 200},
		{"second token (rotation)", "POST", "/v1/events", ok, []reqOpt{withToken(otherToken)}, 200},
		{"admin token may ingest", "POST", "/v1/events", ok, []reqOpt{withToken(adminToken)}, 200},
		{"trailing slash is served, not redirected", "POST", "/v1/events/", ok, []reqOpt{withToken(ingestToken)}, 200},
		{"no token", "POST", "/v1/events", ok, nil, 401},
		{"wrong token", "POST", "/v1/events", ok, []reqOpt{withToken("not-the-token-at-all")}, 401},
		{"token prefix", "POST", "/v1/events", ok, []reqOpt{withToken(ingestToken[:10])}, 401},
		{"undecodable body", "POST", "/v1/events", []byte("this is not json"), []reqOpt{withToken(ingestToken)}, 400},
		{"bad gzip", "POST", "/v1/events", []byte("not gzip"), []reqOpt{withToken(ingestToken), withEncoding("gzip")}, 400},
		{"unknown encoding", "POST", "/v1/events", ok, []reqOpt{withToken(ingestToken), withEncoding("br")}, 415},
		{"body over the limit", "POST", "/v1/events", bytes.Repeat([]byte("x"), 65<<10), []reqOpt{withToken(ingestToken)}, 413},
		{"decompression bomb", "POST", "/v1/events", bomb, []reqOpt{withToken(ingestToken), withEncoding("gzip")}, 413},
		{"too many events", "POST", "/v1/events", jsonArray(many...), []reqOpt{withToken(ingestToken)}, 413},
		{"GET on ingest", "GET", "/v1/events", nil, []reqOpt{withToken(ingestToken)}, 405},
		{"health GET", "GET", "/healthz", nil, nil, 200},
		{"health HEAD", "HEAD", "/healthz", nil, nil, 200},
		{"ready", "GET", "/readyz", nil, nil, 200},
		{"unknown path", "GET", "/v2/nothing", nil, nil, 404},
		{"read API needs a token", "GET", "/v1/alerts", nil, nil, 401},
		{"read API with ingest token", "GET", "/v1/alerts", nil, []reqOpt{withToken(ingestToken)}, 200},
		{"write API needs the admin token", "POST", "/v1/maintenance", []byte(`{}`), []reqOpt{withToken(ingestToken)}, 403},
		{"profiles need the admin token", "GET", "/debug/pprof/heap", nil, []reqOpt{withToken(ingestToken)}, 403},
		{"profiles for the admin", "GET", "/debug/pprof/heap", nil, []reqOpt{withToken(adminToken)}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ts.do(t, tc.method, tc.path, tc.body, tc.opts...)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: status %d (%s), want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				t.Fatal("a redirect makes Vector drop the batch")
			}
			if tc.method != "HEAD" && resp.StatusCode != 200 && !json.Valid(body) {
				t.Fatalf("error body is not JSON: %q", body)
			}
		})
	}
}

func TestOversizedBodyRefusedBeforeRead(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.MaxBodyBytes = 1 << 20 })
	// Announce 1 GiB and send almost nothing: the answer must come from the
	// header alone, without waiting for (or reading) the body.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n[", ingestToken, 1<<30)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// A body refused from its Content-Length is left unread, so the connection
// is closed rather than kept alive: net/http would otherwise read and
// discard up to 256 KiB of it before the next request.
func TestOversizedBodyClosesTheConnection(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.MaxBodyBytes = 1 << 10 })
	body := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", strings.Repeat("x", 2<<10)))
	resp, data := ts.do(t, "POST", "/v1/events", body, withToken(ingestToken))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(data), fmt.Sprintf("body of %d bytes", len(body))) {
		t.Fatalf("%d %s, want 413 refused from the Content-Length", resp.StatusCode, data)
	}
	if !resp.Close {
		t.Errorf("413 left the connection open (Connection %q)", resp.Header.Get("Connection"))
	}
}

func TestNotReadyAnswers503(t *testing.T) {
	ts := newTestServer(t, false)
	ok := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing"))
	if resp, _ := ts.do(t, "POST", "/v1/events", ok, withToken(ingestToken)); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("ingest before ready: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := ts.do(t, "GET", "/readyz", nil); resp.StatusCode != 503 {
		t.Fatalf("readyz before ready: %d", resp.StatusCode)
	}
	if resp, _ := ts.do(t, "HEAD", "/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz must answer 200 while loading: %d", resp.StatusCode)
	}
	// A scrape waits for the state within its own timeout, and fails past
	// it rather than show an empty alert set.
	scrape := func(timeout string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	began := time.Now()
	resp, body, err := scrape("0.25")
	if took := time.Since(began); err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("scrape while loading: %v after %v: %+v %s, want 503 with Retry-After after most of its 0.25s timeout",
			err, took, resp, body)
	}
	waited := make(chan string, 1)
	go func() {
		resp, body, err := scrape("10")
		if err != nil {
			waited <- err.Error()
			return
		}
		waited <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	time.Sleep(100 * time.Millisecond)
	ts.srv.SetTracker(ts.tracker)
	if got := <-waited; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "healthrouter_tracked_checks") {
		t.Fatalf("scrape that waited for the state: %.300s", got)
	}
	if resp, _ := ts.do(t, "POST", "/v1/events", ok, withToken(ingestToken)); resp.StatusCode != 200 {
		t.Fatalf("ingest after ready: %d", resp.StatusCode)
	}
}

func TestOverloadAnswers429(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.MaxInFlight = 1 })
	// Hold the only slot with a request whose body is in and whose commit
	// waits, as on a slow disk.
	release := make(chan struct{})
	// A failed test must not leave the holder waiting: the server's Close
	// waits for it.
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	var once sync.Once
	waiting := make(chan struct{})
	ts.srv.testHookCommitWait = func() {
		once.Do(func() {
			close(waiting)
			<-release
		})
	}
	// The holder runs off the test goroutine, where t.Fatal must not be
	// called: it hands its answer or error back instead.
	type answer struct {
		status int
		err    error
	}
	held := make(chan answer, 1)
	holder := jsonArray(event("web-2.eu-west.example.com", "eu-west", "disk", "passing"))
	go func() {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/events", bytes.NewReader(holder))
		if err != nil {
			held <- answer{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- answer{err: err}
			return
		}
		resp.Body.Close()
		held <- answer{status: resp.StatusCode}
	}()
	select {
	case <-waiting:
	case a := <-held:
		t.Fatalf("the request meant to hold the slot was answered before its commit: %d %v", a.status, a.err)
	}
	resp, data := ts.do(t, "POST", "/v1/events", jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing")), withToken(ingestToken))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the only slot taken: %d (Retry-After %q) %s, want 429 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
	// The holder, once its commit is confirmed, is answered as usual.
	unblock()
	if a := <-held; a.err != nil || a.status != http.StatusOK {
		t.Fatalf("the request holding the slot: %d %v, want 200", a.status, a.err)
	}
}

// TestSlowBodyHoldsNoSlot: a request whose body trickles in takes no
// max_in_flight slot while it does, so one slow sender cannot make the
// rest of the fleet's requests 429.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.MaxInFlight = 1 })
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // a failed test must not leave it hanging
	req, _ := http.NewRequest("POST", ts.URL+"/v1/events", pr)
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	slow := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	_, _ = pw.Write([]byte("["))
	waitReading(t, ts.srv)
	for _, host := range []string{"web-1", "web-3"} {
		resp, data := ts.do(t, "POST", "/v1/events", jsonArray(event(host+".eu-west.example.com", "eu-west", "disk", "passing")), withToken(ingestToken))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("beside a slow body: %d %s, want 200", resp.StatusCode, data)
		}
	}
	// The slow one, once its body is complete, is applied as usual.
	_, _ = pw.Write([]byte(event("web-2.eu-west.example.com", "eu-west", "disk", "passing") + "]"))
	pw.Close()
	if status := <-slow; status != http.StatusOK {
		t.Fatalf("the slow request: %d, want 200", status)
	}
}

func TestMaintenanceAPI(t *testing.T) {
	ts := newTestServer(t, true)
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	body, _ := json.Marshal(WindowRequest{Region: "eu-west", Host: "web-1.eu-west.example.com", Until: until, Reason: "drain for disk swap"})
	resp, data := ts.do(t, "POST", "/v1/maintenance", body, withToken(adminToken))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, data)
	}
	var w health.Window
	if err := json.Unmarshal(data, &w); err != nil || w.ID == "" || !w.Until.Equal(until) {
		t.Fatalf("created window %+v, %v", w, err)
	}
	// Every case but its fault is a valid window ending tomorrow.
	soon := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	bad := []struct{ name, body, msg string }{
		{"no region", `{"until":"UNTIL","reason":"x"}`, "region is required"},
		{"no reason", `{"region":"eu","until":"UNTIL"}`, "reason is required"},
		{"past", `{"region":"eu","until":"2001-01-01T00:00:00Z","reason":"x"}`, ""},
		{"unknown field", `{"region":"eu","until":"UNTIL","reason":"x","colour":"red"}`, "colour"},
		{"bad glob", `{"region":"eu","check":"[","until":"UNTIL","reason":"x"}`, ""},
		{"not json", `region=eu`, ""},
		{"NUL in reason", `{"region":"eu","until":"UNTIL","reason":"a\u0000b"}`, `reason contains control character '\\x00'`},
		{"escape sequence in host", `{"region":"eu","host":"web-1\u001b[2J","until":"UNTIL","reason":"x"}`, `host contains control character '\\x1b'`},
		{"newline in region", `{"region":"eu\nwest","until":"UNTIL","reason":"x"}`, `region contains control character '\\n'`},
		{"blank region", `{"region":"  ","until":"UNTIL","reason":"x"}`, "region is required"},
		{"blank host", `{"region":"eu","host":" ","until":"UNTIL","reason":"x"}`, "host is blank"},
		{"DEL in check", `{"region":"eu","check":"disk\u007f","until":"UNTIL","reason":"x"}`, `check contains control character '\\x7f'`},
		{"until not a time", `{"region":"eu","until":"soon","reason":"x"}`, `until \"soon\" is not an RFC3339 time such as 2026-12-01T18:00:00Z`},
		{"until without a zone", `{"region":"eu","until":"2030-01-01T00:00:00","reason":"x"}`, `until \"2030-01-01T00:00:00\" is not an RFC3339 time`},
	}
	for _, b := range bad {
		body := strings.ReplaceAll(b.body, "UNTIL", soon)
		if resp, data := ts.do(t, "POST", "/v1/maintenance", []byte(body), withToken(adminToken)); resp.StatusCode != 400 || !strings.Contains(string(data), b.msg) {
			t.Errorf("%s: status %d (%s), want 400 with %q", b.name, resp.StatusCode, data, b.msg)
		}
	}
	resp, data = ts.do(t, "GET", "/v1/maintenance", nil, withToken(ingestToken))
	if resp.StatusCode != 200 || !strings.Contains(string(data), w.ID) {
		t.Fatalf("list: %d %s", resp.StatusCode, data)
	}
	if resp, _ := ts.do(t, "DELETE", "/v1/maintenance/"+w.ID, nil, withToken(ingestToken)); resp.StatusCode != 403 {
		t.Fatalf("delete with an ingest token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := ts.do(t, "DELETE", "/v1/maintenance/"+w.ID, nil, withToken(adminToken)); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	// Windows silence pages: opening and ending one is in the log, with
	// who asked.
	opened := ts.logs.FilterMessage("maintenance window opened").FilterField(zap.String("id", w.ID)).All()
	if len(opened) != 1 || opened[0].ContextMap()["reason"] != "drain for disk swap" || opened[0].ContextMap()["host"] != "web-1.eu-west.example.com" ||
		!strings.HasPrefix(opened[0].ContextMap()["remote"].(string), "127.0.0.1:") {
		t.Errorf("logged openings %+v, want one with the window's scope, reason and the caller", opened)
	}
	if ended := ts.logs.FilterMessage("maintenance window ended early").FilterField(zap.String("id", w.ID)).Len(); ended != 1 {
		t.Errorf("%d log lines for the window's end, want 1", ended)
	}
	if resp, _ := ts.do(t, "DELETE", "/v1/maintenance/"+w.ID, nil, withToken(adminToken)); resp.StatusCode != 404 {
		t.Fatalf("second delete: %d, want 404", resp.StatusCode)
	}
}

// A window naming a region or host no result has named is kept (it may
// come before them) and says so: a misspelled name covers nothing.
func TestMaintenanceWarnsOfNamesNotSeen(t *testing.T) {
	ts := newTestServer(t, true)
	if resp, res := ts.post(t, jsonArray(event("web-1", "eu-west", "cpu", "passing"))); resp.StatusCode != 200 || res.Accepted != 1 {
		t.Fatalf("post: %d %+v", resp.StatusCode, res)
	}
	until := time.Now().Add(time.Hour).UTC()
	tests := []struct {
		name, region, host, warning string
	}{
		{"known region", "eu-west", "", ""},
		{"known host", "eu-west", "web-1", ""},
		{"misspelled region", "eu-wset", "", `no host has reported in region "eu-wset"`},
		{"host not in the region", "eu-west", "web-9", `host "web-9" has not reported in region "eu-west"`},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(WindowRequest{Region: tt.region, Host: tt.host, Until: until, Reason: "test"})
		resp, data := ts.do(t, "POST", "/v1/maintenance", body, withToken(adminToken))
		var created WindowCreated
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(data, &created) != nil || created.ID == "" {
			t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, data)
		}
		switch {
		case tt.warning == "" && len(created.Warnings) != 0:
			t.Errorf("%s: warnings %q, want none", tt.name, created.Warnings)
		case tt.warning != "" && (len(created.Warnings) != 1 || !strings.Contains(created.Warnings[0], tt.warning)):
			t.Errorf("%s: warnings %q, want %q", tt.name, created.Warnings, tt.warning)
		}
	}
}

func TestForgetHostAPI(t *testing.T) {
	ts := newTestServer(t, true)
	// db-1 is a host name in two regions; eu-west's fails raid (confirmed
	// by the second round) and alerts.
	var evs []string
	for i := 1; i <= 2; i++ {
		at := func(e string) string { return strings.Replace(e, "10:00:00", fmt.Sprintf("10:00:%02d", i*20), 1) }
		evs = append(evs,
			at(event("db-1", "eu-west", "raid", "critical")), at(event("db-1", "eu-west", "cpu", "passing")),
			at(event("db-1", "us-east", "cpu", "passing")), at(event("web-1", "eu-west", "cpu", "passing")))
	}
	if resp, res := ts.post(t, jsonArray(evs...)); resp.StatusCode != 200 || res.Accepted != 8 {
		t.Fatalf("post: %d %+v", resp.StatusCode, res)
	}
	if m := metrics(t, ts); !strings.Contains(m, `healthrouter_alert{check="",host="db-1",level="host",region="eu-west",severity="critical"} 1`) {
		t.Fatalf("no host alert for db-1 before forgetting:\n%s", m)
	}

	errorCases := []struct {
		name, path string
		token      string
		want       int
		msg        string
	}{
		{"no token", "/v1/hosts/db-1?region=eu-west", "", 401, ""},
		{"ingest token", "/v1/hosts/db-1?region=eu-west", ingestToken, 403, "needs the admin token"},
		{"ambiguous", "/v1/hosts/db-1", adminToken, 400, "eu-west, us-east; give the region"},
		{"unknown host", "/v1/hosts/ghost", adminToken, 404, `unknown host \"ghost\"`},
		{"unknown region", "/v1/hosts/db-1?region=mars", adminToken, 404, `in region \"mars\"`},
		{"host of another region", "/v1/hosts/web-1?region=us-east", adminToken, 404, "unknown host"},
	}
	for _, c := range errorCases {
		var opts []reqOpt
		if c.token != "" {
			opts = append(opts, withToken(c.token))
		}
		resp, data := ts.do(t, http.MethodDelete, c.path, nil, opts...)
		if resp.StatusCode != c.want || !strings.Contains(string(data), c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, data, c.want, c.msg)
		}
	}

	resp, data := ts.do(t, http.MethodDelete, "/v1/hosts/db-1?region=eu-west", nil, withToken(adminToken))
	if resp.StatusCode != 200 {
		t.Fatalf("forget: %d %s", resp.StatusCode, data)
	}
	var got ForgetResponse
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := ForgetResponse{Region: "eu-west", Host: "db-1", Forgotten: []health.Key{
		{Region: "eu-west", Host: "db-1", Check: "cpu"}, {Region: "eu-west", Host: "db-1", Check: "raid"},
	}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answer %+v, want %+v", got, want)
	}
	m := metrics(t, ts)
	if strings.Contains(m, `host="db-1",level="host",region="eu-west"`) || strings.Contains(m, `region="eu-west",status="critical"`) {
		t.Errorf("/metrics still shows the forgotten host:\n%s", m)
	}
	if !strings.Contains(m, "healthrouter_tracked_checks 2") {
		t.Errorf("/metrics does not count 2 tracked checks")
	}
	resp, data = ts.do(t, http.MethodGet, "/v1/hosts/db-1", nil, withToken(ingestToken))
	if resp.StatusCode != 200 || strings.Contains(string(data), "eu-west") {
		t.Fatalf("GET db-1 after forgetting eu-west's: %d %s", resp.StatusCode, data)
	}
	if resp, _ := ts.do(t, http.MethodDelete, "/v1/hosts/db-1?region=eu-west", nil, withToken(adminToken)); resp.StatusCode != 404 {
		t.Fatalf("second forget: %d, want 404", resp.StatusCode)
	}
	// The name is unique now: no region needed, and the answer names it.
	resp, data = ts.do(t, http.MethodDelete, "/v1/hosts/db-1", nil, withToken(adminToken))
	if resp.StatusCode != 200 || !strings.Contains(string(data), `"region":"us-east"`) {
		t.Fatalf("forget without region: %d %s", resp.StatusCode, data)
	}
	if resp, _ := ts.do(t, http.MethodGet, "/v1/hosts/db-1", nil, withToken(ingestToken)); resp.StatusCode != 404 {
		t.Fatalf("GET db-1 after forgetting both: %d", resp.StatusCode)
	}
	if n, _, err := ts.store.LoadChecks(func(*health.CheckState) error { return nil }); err != nil || n != 1 {
		t.Fatalf("store holds %d checks, want web-1's only", n)
	}
}

func TestTokensNeverLogged(t *testing.T) {
	ts := newTestServer(t, true)
	ts.do(t, "POST", "/v1/events", []byte("garbage"), withToken(ingestToken))
	ts.do(t, "POST", "/v1/events", []byte("garbage"), withToken("wrong-token-but-secret"))
	for _, e := range ts.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, tok := range []string{ingestToken, adminToken, "wrong-token-but-secret"} {
			if strings.Contains(line, tok) {
				t.Fatalf("token in log line: %s", line)
			}
		}
	}
}

func TestMetricsExposeIngestAndPageSet(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) {
		c.Checks = []config.CheckRule{{Match: "raid*", Team: "storage"}}
	})
	var evs []string
	for i := 1; i <= 2; i++ { // confirm_after 2: two critical results make it hard
		for _, h := range []string{"web-1", "web-2"} {
			e := strings.Replace(event(h+".eu-west.example.com", "eu-west", "raid", "critical"), "10:00:00", fmt.Sprintf("10:00:%02d", i*20), 1)
			evs = append(evs, e)
		}
	}
	if resp, _ := ts.post(t, jsonArray(evs...)); resp.StatusCode != 200 {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	// Vector retrying the batch: every event a duplicate.
	if resp, _ := ts.post(t, jsonArray(evs...)); resp.StatusCode != 200 {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
	// A third host, passing: counted among the hosts, not the failing.
	if resp, _ := ts.post(t, jsonArray(event("web-3.eu-west.example.com", "eu-west", "raid", "passing"))); resp.StatusCode != 200 {
		t.Fatalf("post web-3: %d", resp.StatusCode)
	}
	m := metrics(t, ts)
	for _, want := range []string{
		`healthrouter_ingest_events_total{result="accepted"} 5`,
		`healthrouter_ingest_events_total{result="duplicate"} 4`,
		`healthrouter_ingest_events_total{result="not_durable"} 0`, // exported from the start
		`healthrouter_region_reporting_hosts{region="eu-west"} 3`,
		`healthrouter_region_failing_checks{region="eu-west"} 2`,
		`healthrouter_alert{check="",host="web-1.eu-west.example.com",level="host",region="eu-west",severity="critical"} 1`,
		`healthrouter_check_failing{check="raid",host="web-2.eu-west.example.com",region="eu-west",status="critical"} 1`,
		`healthrouter_region_hosts{region="eu-west"} 3`,
		`healthrouter_tracked_checks 3`,
		`healthrouter_alert_team{check="",host="web-1.eu-west.example.com",level="host",region="eu-west",team="storage"} 1`,
		`healthrouter_http_request_duration_seconds_bucket{code="200",route="/v1/events",le="+Inf"}`,
		`healthrouter_last_event_timestamp_seconds{region="eu-west"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func metrics(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, data := ts.do(t, "GET", "/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(data)
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Auth.IngestTokens = []config.Secret{ingestToken}
	dec, _ := ingest.NewDecoder(cfg.Ingest)
	srv, err := New(Options{Config: cfg, Decoder: dec, Logger: zap.NewNop(), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := store.Open(cfg.DataDir, store.Options{})
	defer st.Close()
	tr, _ := tracker.Open(cfg, st, zap.NewNop(), time.Now)
	srv.SetTracker(tr)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	// A request in flight when shutdown starts must complete.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/events", pr)
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	got := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	_, _ = pw.Write([]byte("[" + event("web-1.eu-west.example.com", "eu-west", "disk", "passing")))
	waitReading(t, srv)
	cancel()
	time.Sleep(100 * time.Millisecond) // let the shutdown begin; finishing first would test less
	_, _ = pw.Write([]byte("]"))
	pw.Close()
	if code := <-got; code != 200 {
		t.Fatalf("in-flight request during shutdown: %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still open after shutdown")
	}
}

func TestUndecodableBodyIsDeadLettered(t *testing.T) {
	ts := newTestServer(t, true)
	if resp, _ := ts.do(t, "POST", "/v1/events", []byte("certainly not json"), withToken(ingestToken)); resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	rej, err := ts.tracker.Rejected(10)
	if err != nil || len(rej) != 1 || rej[0].Reason != ingest.BodyInvalidJSON || rej[0].Event != "certainly not json" || rej[0].Remote != "127.0.0.1" {
		t.Fatalf("dead letters %+v, %v", rej, err)
	}
}

// /v1/rejected answers at most 10,000 dead letters whatever limit asks
// for, also when ingest.dead_letter_max keeps more: one answer stays a
// bounded amount of JSON.
func TestRejectedListIsCapped(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.DeadLetterMax = 20000 })
	const kept = 10050
	dead := make([]health.Rejected, kept)
	for i := range dead {
		dead[i] = health.Rejected{Time: time.Now(), Reason: ingest.ReasonMissingField, Error: "host is missing", Index: i, Event: "{}"}
	}
	if err := ts.store.Commit(context.Background(), &store.Commit{Rejected: dead}); err != nil {
		t.Fatal(err)
	}
	if n := ts.store.RejectedCount(); n != kept {
		t.Fatalf("%d dead letters kept, want %d", n, kept)
	}
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"", 100},
		{"?limit=7", 7},
		{"?limit=20000", 10000},
		{"?limit=99999999999999999999999", 10000},
	} {
		resp, data := ts.do(t, http.MethodGet, "/v1/rejected"+tt.query, nil, withToken(ingestToken))
		var out struct{ Rejected []health.Rejected }
		if err := json.Unmarshal(data, &out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/rejected%s: %d %v", tt.query, resp.StatusCode, err)
		}
		if len(out.Rejected) != tt.want {
			t.Errorf("GET /v1/rejected%s: %d dead letters, want %d", tt.query, len(out.Rejected), tt.want)
		} else if first := out.Rejected[0].Seq; first != kept {
			t.Errorf("GET /v1/rejected%s starts at seq %d, want the newest (%d)", tt.query, first, kept)
		}
	}
}

func TestReadAPI(t *testing.T) {
	ts := newTestServer(t, true)
	// Three of four hosts fail connectivity (a region alert); web-1 also
	// fails raid (a host alert). Two rounds confirm the failures.
	for i := 1; i <= 2; i++ {
		var evs []string
		for h := 1; h <= 4; h++ {
			host := fmt.Sprintf("web-%d.eu-west.example.com", h)
			st := "critical"
			if h == 4 {
				st = "passing"
			}
			evs = append(evs, event(host, "eu-west", "connectivity", st))
			raid := "passing"
			if h == 1 {
				raid = "critical"
			}
			evs = append(evs, event(host, "eu-west", "raid", raid))
		}
		body := strings.ReplaceAll(string(jsonArray(evs...)), "10:00:00", fmt.Sprintf("10:00:%02d", i*20))
		if resp, _ := ts.post(t, []byte(body)); resp.StatusCode != 200 {
			t.Fatalf("post: %d", resp.StatusCode)
		}
	}
	get := func(path string, want int, out any) {
		t.Helper()
		resp, data := ts.do(t, "GET", path, nil, withToken(ingestToken))
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, data, want)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
	}

	var alerts struct{ Firing, Suppressed []health.Alert }
	get("/v1/alerts", 200, &alerts)
	var firing []string
	for _, a := range alerts.Firing {
		firing = append(firing, a.ID())
	}
	if got := strings.Join(firing, " "); got != "host/eu-west/web-1.eu-west.example.com region/eu-west/connectivity" {
		t.Fatalf("firing %s", got)
	}
	if len(alerts.Suppressed) != 3 || alerts.Suppressed[0].Suppressed != health.SuppressedByRegion {
		t.Fatalf("suppressed %+v", alerts.Suppressed)
	}

	var regions struct {
		Regions []struct {
			Name          string
			Hosts         int
			FailingChecks int `json:"failing_checks"`
		}
	}
	get("/v1/regions", 200, &regions)
	if len(regions.Regions) != 1 || regions.Regions[0].Hosts != 4 || regions.Regions[0].FailingChecks != 4 {
		t.Fatalf("regions %+v", regions)
	}
	var hosts struct {
		Hosts []struct{ Host string }
		Total int
	}
	get("/v1/hosts?region=eu-west&limit=2&offset=1", 200, &hosts)
	if hosts.Total != 4 || len(hosts.Hosts) != 2 || hosts.Hosts[0].Host != "web-2.eu-west.example.com" {
		t.Fatalf("hosts page %+v", hosts)
	}
	get("/v1/hosts?limit=x", 400, nil)
	get("/v1/hosts/web-1.eu-west.example.com", 200, nil)
	get("/v1/hosts/nobody", 404, nil)

	var ex struct {
		Found, Pages bool
		Decision     string
	}
	get("/v1/explain?host=web-1.eu-west.example.com&check=raid", 200, &ex)
	if !ex.Pages || !strings.Contains(ex.Decision, "raid on web-1.eu-west.example.com pages") {
		t.Fatalf("explain raid: %+v", ex)
	}
	get("/v1/explain?host=web-2.eu-west.example.com&check=connectivity", 200, &ex)
	if ex.Pages || !strings.Contains(ex.Decision, "region") {
		t.Fatalf("explain suppressed connectivity: %+v", ex)
	}
	get("/v1/explain?region=eu-west&check=connectivity", 200, &ex)
	if !ex.Pages {
		t.Fatalf("explain region: %+v", ex)
	}
	get("/v1/explain?host=ghost", 404, nil)
	get("/v1/explain", 400, nil)

	var tr struct{ Transitions []health.Transition }
	get("/v1/transitions?limit=1000", 200, &tr)
	if len(tr.Transitions) == 0 || tr.Transitions[0].Seq != 1 {
		t.Fatalf("journal %+v", tr.Transitions)
	}
	last := tr.Transitions[len(tr.Transitions)-1].Seq
	get(fmt.Sprintf("/v1/transitions?after=%d", last), 200, &tr)
	if len(tr.Transitions) != 0 {
		t.Fatalf("transitions after the last: %+v", tr.Transitions)
	}
	var rep struct {
		Checks []struct {
			Check string
		}
	}
	get("/v1/report", 200, &rep)
	if len(rep.Checks) < 2 {
		t.Fatalf("report has %d checks, want several", len(rep.Checks))
	}
	get("/v1/report?limit=1", 200, &rep)
	if len(rep.Checks) != 1 {
		t.Fatalf("report?limit=1 has %d checks", len(rep.Checks))
	}
	get("/v1/transitions?limit=1", 200, &tr)
	if len(tr.Transitions) != 1 {
		t.Fatalf("transitions?limit=1: %d entries", len(tr.Transitions))
	}

	// Every list reads limit alike: zero, negative or not a number is
	// refused, not taken as none on one list and all on another.
	for _, list := range []string{"/v1/hosts", "/v1/transitions", "/v1/rejected", "/v1/report"} {
		for _, bad := range []string{"0", "-1", "x", ""} {
			resp, data := ts.do(t, http.MethodGet, list+"?limit="+bad, nil, withToken(ingestToken))
			want := 400
			if bad == "" {
				want = 200 // absent: the list's default
			}
			if resp.StatusCode != want || (want == 400 && !strings.Contains(string(data), "limit must be an integer of at least 1")) {
				t.Errorf("GET %s?limit=%s: %d %s, want %d", list, bad, resp.StatusCode, data, want)
			}
		}
	}
}

// Noise reports are built two at a time; a third is asked to come back
// rather than queued behind them.
func TestReportsAreBoundedInConcurrency(t *testing.T) {
	ts := newTestServer(t, true)
	for range maxConcurrentReports {
		ts.srv.reportSlots <- struct{}{}
	}
	resp, data := ts.do(t, "GET", "/v1/report", nil, withToken(ingestToken))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a report while two are built: %d %s, want 429 with Retry-After", resp.StatusCode, data)
	}
	<-ts.srv.reportSlots
	if resp, data := ts.do(t, "GET", "/v1/report", nil, withToken(ingestToken)); resp.StatusCode != http.StatusOK {
		t.Fatalf("a report once a slot is free: %d %s, want 200", resp.StatusCode, data)
	}
}

// The noise report counts pages as Grafana notifies them: with the
// server's own pending periods, and an alert still firing counts once it
// has fired that long by the time of the request.
func TestReportUsesTheServersPendingPeriods(t *testing.T) {
	parsed, err := config.Parse([]byte("grafana: {pending: {host: 50ms, region: 50ms}}\npagerduty: {routing_keys: {default: HR_TEST_PD_KEY}}\n"),
		func(k string) string {
			if k == "HR_TEST_PD_KEY" {
				return "routing-key-0123456789abcdef01"
			}
			return ""
		})
	if err != nil {
		t.Fatal(err)
	}
	shortPending := func(cfg *config.Config) { cfg.Grafana, cfg.PagerDuty = parsed.Grafana, parsed.PagerDuty }
	tests := []struct {
		name string
		opts []option
		want int
	}{
		{"default pending (2m) not over yet", nil, 0},
		{"50ms pending, over by the request", []option{shortPending}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, true, tt.opts...)
			for i := 1; i <= 2; i++ {
				body := strings.ReplaceAll(string(jsonArray(event("web-1.eu-west.example.com", "eu-west", "raid", "critical"))),
					"10:00:00", fmt.Sprintf("10:00:%02d", i*20))
				if resp, _ := ts.post(t, []byte(body)); resp.StatusCode != 200 {
					t.Fatalf("post: %d", resp.StatusCode)
				}
			}
			time.Sleep(100 * time.Millisecond)
			resp, data := ts.do(t, "GET", "/v1/report", nil, withToken(ingestToken))
			if resp.StatusCode != 200 {
				t.Fatalf("report: %d %s", resp.StatusCode, data)
			}
			var rep struct {
				Checks []struct {
					Check string
					Pages int
				}
			}
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Checks) != 1 || rep.Checks[0].Check != "raid" || rep.Checks[0].Pages != tt.want {
				t.Fatalf("report %s, want raid with %d page(s)", data, tt.want)
			}
		})
	}
}

// TestExplainFollowsRouting: the engine puts alerts of every severity in the
// alert set; explain says "pages" only for those routing sends to PagerDuty.
func TestExplainFollowsRouting(t *testing.T) {
	tests := []struct {
		name, severity, warning string
		pages                   bool
		decision                string
	}{
		{"critical pages", "critical", "low", true, "db-1.eu-west.example.com pages"},
		{"info never pages", "info", "low", false, "does not page: the host alert of db-1.eu-west.example.com fires at severity info"},
		{"warning at low urgency pages", "warning", "low", true, "pages"},
		{"warning with pagerduty.warning none", "warning", "none", false, "(pagerduty.warning is none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, true, func(c *config.Config) {
				c.Engine.ConfirmAfter = 1
				withPD, err := config.Parse([]byte("pagerduty: {routing_keys: {default: PD_KEY}, warning: "+tt.warning+"}\n"),
					func(string) string { return "" })
				if err != nil {
					t.Fatal(err)
				}
				c.PagerDuty = withPD.PagerDuty
			})
			ev := strings.Replace(event("db-1.eu-west.example.com", "eu-west", "dns", "critical"), `"source_type"`,
				`"severity":"`+tt.severity+`","source_type"`, 1)
			if resp, data := ts.post(t, []byte(ev)); resp.StatusCode != 200 {
				t.Fatalf("post: %d %+v", resp.StatusCode, data)
			}
			for _, q := range []string{"host=db-1.eu-west.example.com&check=dns", "host=db-1.eu-west.example.com"} {
				resp, data := ts.do(t, "GET", "/v1/explain?"+q, nil, withToken(ingestToken))
				var ex struct {
					Pages    bool
					Decision string
					Steps    []string
					Alert    *struct{ Severity string }
				}
				if resp.StatusCode != 200 {
					t.Fatalf("explain %s: %d %s", q, resp.StatusCode, data)
				}
				if err := json.Unmarshal(data, &ex); err != nil {
					t.Fatalf("explain %s: %v", q, err)
				}
				if ex.Pages != tt.pages || !strings.Contains(ex.Decision, tt.decision) || ex.Alert == nil || ex.Alert.Severity != tt.severity {
					t.Errorf("explain %s: pages %v, decision %q, alert %+v; want pages %v and %q", q, ex.Pages, ex.Decision, ex.Alert, tt.pages, tt.decision)
				}
				if !tt.pages && !slices.ContainsFunc(ex.Steps, func(s string) bool { return strings.HasPrefix(s, "alert set: ") }) {
					t.Errorf("explain %s: the engine's verdict is not kept as a step: %q", q, ex.Steps)
				}
			}
		})
	}
}
