package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

// TestSlowDiskDoesNotStarveDecoding: while commits wait for a slow disk,
// requests beyond the decode slots are still decoded, applied and, once
// the disk catches up, answered 200; none is told the decoder is busy.
func TestSlowDiskDoesNotStarveDecoding(t *testing.T) {
	ts := newTestServer(t, true)
	ts.srv.decodeWait = 100 * time.Millisecond
	requests := cap(ts.srv.decodeSlots) + 3

	waiting := make(chan struct{}, requests)
	disk := make(chan struct{})
	var release sync.Once
	catchUp := func() { release.Do(func() { close(disk) }) }
	t.Cleanup(catchUp)
	ts.srv.testHookCommitWait = func() {
		waiting <- struct{}{}
		<-disk
	}

	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, requests)
	for i := range requests {
		body := jsonArray(event(fmt.Sprintf("web-%d.eu-west.example.com", i), "eu-west", "disk", "critical"))
		go func() {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/events", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+ingestToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{-1, err.Error()}
				return
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, string(data)}
		}()
	}
	deadline := time.After(10 * time.Second)
	for waited := 0; waited < requests; {
		select {
		case <-waiting:
			waited++
		case a := <-answers:
			t.Fatalf("answered %d %s while %d of %d requests waited for the disk; want every one decoded and waiting",
				a.code, a.body, waited, requests)
		case <-deadline:
			t.Fatalf("%d of %d requests reached the commit wait", waited, requests)
		}
	}
	catchUp()
	for range requests {
		if a := <-answers; a.code != http.StatusOK {
			t.Errorf("after the disk caught up: %d %s, want 200", a.code, a.body)
		}
	}
	if got := ts.tracker.Stats().TrackedChecks; got != requests {
		t.Errorf("tracked checks = %d, want %d", got, requests)
	}
}

// TestShutdownCutsStalledClients: a client still sending its body when
// shutdown_timeout passes has its connection closed then, the cut is
// logged, and Serve reports a completed shutdown.
func TestShutdownCutsStalledClients(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Auth.IngestTokens = []config.Secret{ingestToken}
	cfg.ShutdownTimeout = config.Duration(200 * time.Millisecond)
	dec, _ := ingest.NewDecoder(cfg.Ingest)
	core, logs := observer.New(zap.InfoLevel)
	srv, err := New(Options{Config: cfg, Decoder: dec, Logger: zap.New(core), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers and part of a body; the rest never comes.
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n[", ingestToken)
	// Not ready, the handler answers 503 at once; the server then waits
	// for the rest of the body before it sends the answer. Shut down only
	// once the request got that far.
	waitAnswered(t, srv, ingest.EventsPath, http.StatusServiceUnavailable)
	cancel()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cutting a stalled client: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown_timeout")
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the stalled connection is still open after Serve returned")
		}
	}
	cut := logs.FilterMessageSnippet("cut the connections").All()
	if len(cut) != 1 {
		t.Fatalf("logged cuts: %v, want one", logs.All())
	}
	fields := cut[0].ContextMap()
	if fields["connections"] != int64(1) || fields["requests_in_flight"] != int64(1) {
		t.Errorf("cut logged %v, want 1 connection with 1 request in flight", fields)
	}
}

// waitReading waits until an ingest request holds body bytes: it is in its
// handler, reading the body.
func waitReading(t *testing.T, srv *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); srv.bodyBudget.used.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no ingest request started reading its body")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAnswered waits until a handler of route has returned code.
func waitAnswered(t *testing.T, srv *Server, route string, code int) {
	t.Helper()
	h := srv.latency.WithLabelValues(route, strconv.Itoa(code)).(prometheus.Histogram)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var m dto.Metric
		if err := h.Write(&m); err != nil {
			t.Fatal(err)
		}
		if m.GetHistogram().GetSampleCount() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s request answered %d", route, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
