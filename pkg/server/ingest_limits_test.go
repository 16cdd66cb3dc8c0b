package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// slowPost opens a connection that announces a body of announced bytes,
// sends only its first byte and then stalls, as a slow or hostile sender
// does. The connection closes with the test.
func slowPost(t *testing.T, ts *testServer, announced int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: healthrouter\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n[", ingestToken, announced)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitBudget waits until the bodies in flight hold exactly want bytes.
func waitBudget(t *testing.T, ts *testServer, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := ts.srv.bodyBudget.used.Load()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bodies in flight hold %d bytes, want %d", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A Content-Length is a claim: connections announcing the largest body and
// sending one byte must not make the server reserve what they announce.
func TestSlowLargeBodiesReserveNoMemory(t *testing.T) {
	ts := newTestServer(t, true)
	const conns = 48
	announced := int(ts.srv.cfg.Ingest.MaxBodyBytes) // 16 MiB each: 768 MiB if reserved
	before := heapInUse()
	for range conns {
		slowPost(t, ts, announced)
	}
	waitBudget(t, ts, conns*bodyReservation)
	grown := int64(heapInUse()) - int64(before)
	if limit := int64(64 << 20); grown > limit {
		t.Fatalf("%d stalled requests grew the heap by %d MiB (limit %d MiB)", conns, grown>>20, limit>>20)
	}
}

func TestInflightByteBudget(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) {
		c.Ingest.MaxBodyBytes = 512 << 10
		c.Ingest.MaxInflightBytes = 512 << 10
	})
	padded := func(size int) []byte {
		ev := event("web-1.eu-west.example.com", "eu-west", "disk", "passing")
		return []byte("[" + ev + strings.Repeat(" ", size-len(ev)-2) + "]")
	}
	large, small := padded(300<<10), padded(1<<10)
	expect429 := func(what string, body []byte) {
		t.Helper()
		resp, data := ts.do(t, http.MethodPost, "/v1/events", body, withToken(ingestToken))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with the budget spent: %d (Retry-After %q) %s, want 429 with Retry-After",
				what, resp.StatusCode, resp.Header.Get("Retry-After"), data)
		}
		if !strings.Contains(string(data), "max_inflight_bytes") {
			t.Fatalf("%s: 429 body %s does not name the limit", what, data)
		}
	}

	stalled := slowPost(t, ts, 400<<10)
	waitBudget(t, ts, bodyReservation)
	// 300 KiB fits its first 256 KiB, not its growth to 512 KiB.
	expect429("a body that outgrows the budget", large)
	waitBudget(t, ts, bodyReservation)
	// Two stalled bodies hold it all: not even 1 KiB more.
	stalled2 := slowPost(t, ts, 400<<10)
	waitBudget(t, ts, 2*bodyReservation)
	expect429("a small body", small)

	stalled.Close()
	stalled2.Close()
	waitBudget(t, ts, 0)
	if resp, res := ts.post(t, large); resp.StatusCode != http.StatusOK || res.Accepted != 1 {
		t.Fatalf("large body once the budget is free: %d %+v", resp.StatusCode, res)
	}
	waitBudget(t, ts, 0)
}

// unsized hides a reader's length so the client sends it chunked.
type unsized struct{ io.Reader }

func TestChunkedBodyPastTheLimitIs413(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.MaxBodyBytes = 64 << 10 })
	for _, tc := range []struct {
		size int
		want int
	}{
		{64<<10 + 1, http.StatusRequestEntityTooLarge},
		{4 << 20, http.StatusRequestEntityTooLarge},
		{64 << 10, http.StatusOK},
	} {
		ev := event("web-1.eu-west.example.com", "eu-west", "disk", "passing")
		body := "[" + ev + strings.Repeat(" ", tc.size-len(ev)-2) + "]"
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/events", unsized{strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("chunked body of %d bytes: %d %s, want %d", tc.size, resp.StatusCode, data, tc.want)
		}
	}
	waitBudget(t, ts, 0)
}

func TestBusyDecoderAnswers503(t *testing.T) {
	ts := newTestServer(t, true)
	ts.srv.decodeWait = 50 * time.Millisecond
	for range cap(ts.srv.decodeSlots) {
		ts.srv.decodeSlots <- struct{}{}
	}
	body := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "passing"))
	resp, data := ts.do(t, http.MethodPost, "/v1/events", body, withToken(ingestToken))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(data), "decoder busy") {
		t.Fatalf("all decoders busy: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
	for range cap(ts.srv.decodeSlots) {
		<-ts.srv.decodeSlots
	}
	if resp, _ := ts.post(t, body); resp.StatusCode != http.StatusOK {
		t.Fatalf("decoders free again: %d", resp.StatusCode)
	}
}

// TestVectorBodiesOverHTTP posts the request bodies Vector's http sink
// sends (testdata/vector) with their Content-Encoding, each to a fresh
// server.
func TestVectorBodiesOverHTTP(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "vector")
	tests := []struct {
		file, encoding string
		accepted       int
	}{
		{"events.json", "", 6},
		{"events.ndjson", "", 6},
		{"events.json.gz", "gzip", 6},
		{"events.json.zz", "deflate", 6},
		{"events.json.zst", "zstd", 6},
		{"events.json.snappy", "snappy", 6},
		{"event.json", "", 1},
		{"metrics.json", "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ts := newTestServer(t, true)
			var opts []reqOpt
			if tt.encoding != "" {
				opts = append(opts, withEncoding(tt.encoding))
			}
			resp, res := ts.post(t, body, opts...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if res.Accepted != tt.accepted || res.Rejected != 0 || res.Duplicates != 0 {
				t.Fatalf("result %+v, want %d accepted", res, tt.accepted)
			}
			// The same batch again, as Vector retries it: nothing new.
			if _, again := ts.post(t, body, opts...); again.Accepted+again.Duplicates != tt.accepted || again.Rejected != 0 {
				t.Fatalf("retried batch: %+v", again)
			}
		})
	}
}

// Bodies are read into chunks that double up to the largest pooled size,
// never past the limit, each taken from the budget and all given back.
func TestBodyChunks(t *testing.T) {
	const kib, mib = 1 << 10, 1 << 20
	budget := &byteBudget{limit: 1 << 30}
	for _, tc := range []struct {
		size, announced, limit int64
		want                   []int // chunk capacities
	}{
		{0, 0, mib, []int{1}},
		{100, 100, mib, []int{101}},
		{100, -1, mib, []int{256 * kib}},
		{300 * kib, 300 * kib, 16 * mib, []int{256 * kib, 512 * kib}},
		{3 * mib, -1, 16 * mib, []int{256 * kib, 512 * kib, mib, 2 * mib}},
		{12 * mib, 12 * mib, 12 * mib, []int{256 * kib, 512 * kib, mib, 2 * mib, 4 * mib, 4 * mib, 256 * kib}},
		{64 * kib, -1, 64 * kib, []int{64 * kib}},
	} {
		data := make([]byte, tc.size)
		for i := range data {
			data[i] = byte(i)
		}
		src := http.MaxBytesReader(nil, io.NopCloser(bufio.NewReaderSize(bytes.NewReader(data), 4096)), tc.limit)
		b, err := readBody(src, tc.announced, tc.limit, budget)
		if err != nil {
			t.Fatalf("body of %d: %v", tc.size, err)
		}
		var caps []int
		var held int64
		for _, c := range b.chunks {
			caps = append(caps, cap(c))
			held += int64(cap(c))
		}
		if fmt.Sprint(caps) != fmt.Sprint(tc.want) {
			t.Errorf("body of %d (announced %d): chunks %v, want %v", tc.size, tc.announced, caps, tc.want)
		}
		if got := budget.used.Load(); got != held {
			t.Errorf("body of %d holds %d of the budget, want its chunks' %d", tc.size, got, held)
		}
		req := b.request("gzip", time.Time{})
		got := req.BodyBytes
		if req.Body != nil {
			got, _ = io.ReadAll(req.Body)
		}
		if (len(b.chunks) == 1) != (req.Body == nil) {
			t.Errorf("body of %d in %d chunks: in place %v", tc.size, len(b.chunks), req.Body == nil)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("body of %d reads back %d different bytes", tc.size, len(got))
		}
		b.release()
		b.release()
		if got := budget.used.Load(); got != 0 {
			t.Fatalf("released body still holds %d", got)
		}
	}
	// One byte past the limit, whether the last chunk is full or not.
	for _, size := range []int64{64*kib + 1, 300 * kib} {
		src := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(make([]byte, size))), 64*kib)
		b, err := readBody(src, -1, 64*kib, budget)
		var tooBig *http.MaxBytesError
		if !errors.As(err, &tooBig) {
			t.Errorf("body of %d past a 64 KiB limit: %v", size, err)
		}
		b.release()
	}
	if got := budget.used.Load(); got != 0 {
		t.Fatalf("bodies past the limit still hold %d", got)
	}
}

func BenchmarkReadBody(b *testing.B) {
	for _, size := range []int{4 << 10, 200 << 10, 1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			data := bytes.Repeat([]byte("x"), size)
			budget := &byteBudget{limit: 1 << 30}
			src := bytes.NewReader(data)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(data)
				body, err := readBody(src, int64(size), 16<<20, budget)
				if err != nil {
					b.Fatal(err)
				}
				if req := body.request("", time.Time{}); req.Body != nil {
					if _, err := io.Copy(io.Discard, req.Body); err != nil {
						b.Fatal(err)
					}
				}
				body.release()
			}
		})
	}
}

// TestBodyReadErrors: a body whose framing is broken gets 400 (the same
// bytes would fail again, so not an answer Vector retries); one that ends
// before its announced length gets 408. Neither answer shows addresses.
func TestBodyReadErrors(t *testing.T) {
	ts := newTestServer(t, true, func(c *config.Config) { c.Ingest.RequestTimeout = config.Duration(300 * time.Millisecond) })
	addr := ts.serveLoopback(t) // Serve's own timeouts are the subject
	tests := []struct {
		name     string
		request  string
		halfShut bool // close the write side after sending, as a client cut short
		status   int
		msg      string
	}{
		{"bad chunk size", "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ingestToken +
			"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n", false, http.StatusBadRequest, "reading body: invalid byte in chunk length"},
		{"shorter than announced", "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ingestToken +
			"\r\nContent-Length: 100\r\n\r\n[{\"host\":", true, http.StatusRequestTimeout, "reading body: the connection ended before the body was complete"},
		{"stalled", "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ingestToken +
			"\r\nContent-Length: 100\r\n\r\n[{\"host\":", false, http.StatusRequestTimeout, "reading body: not complete within ingest.request_timeout (300ms)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.request); err != nil {
				t.Fatal(err)
			}
			if tt.halfShut {
				_ = conn.(*net.TCPConn).CloseWrite()
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.msg) || strings.Contains(string(body), "127.0.0.1") {
				t.Fatalf("%d %s, want %d with %q and no address", resp.StatusCode, body, tt.status, tt.msg)
			}
		})
	}
}

// TestConnectionsAreCapped: past max_connections a new connection waits to
// be accepted while the others are busy, and is served once one closes;
// at the cap each new connection closes the longest-idle keep-alive one,
// so a client that opens many and sends nothing cannot lock senders out.
func TestConnectionsAreCapped(t *testing.T) {
	healthz := func(conn net.Conn) error {
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	dialAll := func(t *testing.T, addr string, n int, use func(net.Conn) error) []net.Conn {
		t.Helper()
		var conns []net.Conn
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		for range n {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			if err := use(conn); err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
		}
		return conns
	}

	t.Run("busy connections hold their slots", func(t *testing.T) {
		ts := newTestServer(t, true, func(c *config.Config) { c.MaxConnections = 16 })
		addr := ts.serveLoopback(t)
		// Each is mid-request: an upload that has not finished.
		busy := dialAll(t, addr, 16, func(conn net.Conn) error {
			_, err := io.WriteString(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+ingestToken+"\r\nContent-Length: 100\r\n\r\n[")
			return err
		})
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics(t, ts), "healthrouter_http_open_connections 16"); {
			if time.Now().After(deadline) {
				t.Fatal("16 connections not open within 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		extra, err := net.Dial("tcp", addr) // the kernel's backlog takes it
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		if err := healthz(extra); err == nil {
			t.Fatal("a 17th connection was served beside 16 busy ones")
		}
		if n := ts.logs.FilterMessageSnippet("max_connections reached").Len(); n != 1 {
			t.Errorf("%d warnings about the cap, want 1", n)
		}
		busy[0].Close()
		if err := healthz(extra); err != nil {
			t.Fatalf("once one closed, the waiting connection: %v", err)
		}
	})

	t.Run("idle connections give their slots up", func(t *testing.T) {
		ts := newTestServer(t, true, func(c *config.Config) { c.MaxConnections = 16 })
		addr := ts.serveLoopback(t)
		idle := dialAll(t, addr, 16, healthz) // kept open, idle, after one answered request each
		extra, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		if err := healthz(extra); err != nil {
			t.Fatalf("a new connection beside 16 idle ones: %v", err)
		}
		// The longest idle were closed, one per new connection at the cap
		// (the 16th and the 17th); their clients reconnect. The rest stay.
		// The server marks a connection idle a moment after its client has
		// read the answer, so on a loaded machine the two closed can be any
		// of the oldest few, never the newest half.
		var closed []int
		for i, conn := range idle {
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := conn.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
				closed = append(closed, i)
			}
		}
		if len(closed) != 2 || closed[1] >= len(idle)/2 {
			t.Errorf("closed idle connections %v (in dial order), want two of the oldest half", closed)
		}
	})
}

// serveLoopback runs the server's own Serve, with its timeouts, limits and
// graceful shutdown, on a loopback port until the test ends, and returns
// the address.
func (ts *testServer) serveLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ts.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}
