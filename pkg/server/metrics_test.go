package server

import (
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// padExposition registers series enough for an exposition of about n
// bytes: far more than the socket buffers of a connection that never
// reads can absorb.
func padExposition(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_padding", Help: "Series that make the exposition large."}, []string{"series"})
	reg.MustRegister(g)
	label := strings.Repeat("x", 100)
	for i := range n / 130 {
		g.WithLabelValues(label + strconv.Itoa(i)).Set(1)
	}
}

// stallMetrics opens n connections that ask for the plain exposition, the
// largest answer, and never read it.
func stallMetrics(t *testing.T, ts *testServer, n int) {
	t.Helper()
	// A small receive buffer set before connecting, so the window the
	// server sees stays small: the kernel would otherwise absorb megabytes.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	for range n {
		conn, err := d.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.1\r\nHost: healthrouter\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitPending waits until the bytes of /metrics answers being sent
// satisfy ok.
func waitPending(t *testing.T, ts *testServer, what string, ok func(int64) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok(ts.srv.metrics.pending.used.Load()) {
		if time.Now().After(deadline) {
			for _, e := range ts.logs.All() {
				t.Log(e.Message, e.ContextMap())
			}
			t.Fatalf("%s: %d bytes pending", what, ts.srv.metrics.pending.used.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Connections that ask for /metrics and never read the answer must not
// make Prometheus's scrape fail: they once held promhttp's four in-flight
// slots until the server's write timeout.
func TestSlowMetricsReadersDoNotBlockScrapes(t *testing.T) {
	ts := newTestServer(t, true)
	padExposition(t, ts.reg, 5<<20)
	// Long enough to outlast encoding and the scrape under the race
	// detector, where 5 MiB take seconds to encode.
	ts.srv.metrics.writeTimeout = 2 * time.Minute
	ts.srv.metrics.encoderWait = time.Minute
	// Twice the encoders, 5 MiB each: within the pending budget.
	const held = 2 * metricsEncoders
	const stalled = held * (9 << 19)
	stallMetrics(t, ts, held)
	waitPending(t, ts, "stalled answers being sent", func(n int64) bool { return n >= stalled })

	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "test_padding") {
		t.Fatalf("scrape while %d readers stall: %d, %d bytes, %v", held, resp.StatusCode, len(body), err)
	}
	if used := ts.srv.metrics.pending.used.Load(); used < stalled {
		t.Fatalf("the stalled answers were no longer pending (%d bytes): the scrape did not overlap them", used)
	}
}

// A stalled reader is cut at the handler's write deadline, well before the
// server's, and gives its pending bytes back.
func TestStalledMetricsAnswersAreCut(t *testing.T) {
	ts := newTestServer(t, true)
	padExposition(t, ts.reg, 5<<20)
	// Each answer is pending from its encoding's end to its cut, one
	// deadline later. Under the race detector on a busy machine the two
	// encodings may end further apart than that: wait for one answer
	// pending, not both at once.
	ts.srv.metrics.writeTimeout = 3 * time.Second
	ts.srv.metrics.encoderWait = time.Minute
	stallMetrics(t, ts, 2)
	waitPending(t, ts, "stalled answers being sent", func(n int64) bool { return n >= 9<<19 })
	start := time.Now()
	waitPending(t, ts, "stalled answers cut", func(n int64) bool { return n == 0 })
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("stalled answers cut after %v, want about the 1s write deadline", waited)
	}
}

// The answer is promhttp's, negotiated the same way: only where it is
// written from changed.
func TestMetricsAnswer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "A counter."})
	reg.MustRegister(c)
	c.Add(3)
	tests := []struct {
		name          string
		header        map[string]string
		budget        int64
		busy          bool // every encoder taken
		code          int
		contentType   string
		encoding      string
		body          string
		retryAfterSet bool
	}{
		{name: "plain text", code: 200, contentType: "text/plain; version=0.0.4", body: "test_total 3\n"},
		{name: "gzip when asked", header: map[string]string{"Accept-Encoding": "gzip"}, code: 200,
			contentType: "text/plain; version=0.0.4", encoding: "gzip", body: "test_total 3\n"},
		{name: "protobuf when asked", header: map[string]string{"Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"},
			code: 200, contentType: "application/vnd.google.protobuf", body: "test_total"},
		{name: "pending budget spent", budget: 8, code: 503, contentType: "application/json", body: "answers still being sent", retryAfterSet: true},
		{name: "encoders busy", busy: true, code: 503, contentType: "application/json", body: "encoders busy", retryAfterSet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetricsHandler(reg, zap.NewNop())
			if tt.budget > 0 {
				m.pending.limit = tt.budget
			}
			if tt.busy {
				m.encoderWait = 10 * time.Millisecond
				for range cap(m.encoders) {
					m.encoders <- struct{}{}
				}
			}
			r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			res := w.Result()
			sent := w.Body.Len()
			body := w.Body.Bytes()
			if res.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(w.Body)
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if res.StatusCode != tt.code || !strings.HasPrefix(res.Header.Get("Content-Type"), tt.contentType) ||
				res.Header.Get("Content-Encoding") != tt.encoding || !strings.Contains(string(body), tt.body) {
				t.Fatalf("%d %q %q %q, want %d %q %q with %q", res.StatusCode, res.Header.Get("Content-Type"),
					res.Header.Get("Content-Encoding"), body, tt.code, tt.contentType, tt.encoding, tt.body)
			}
			if got := res.Header.Get("Content-Length"); tt.code == 200 && got != fmt.Sprint(sent) {
				t.Errorf("Content-Length %q, body %d bytes", got, sent)
			}
			if (res.Header.Get("Retry-After") != "") != tt.retryAfterSet {
				t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
			}
			if used := m.pending.used.Load(); used != 0 {
				t.Errorf("%d pending bytes left after the answer", used)
			}
		})
	}
}
