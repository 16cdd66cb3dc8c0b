package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

const (
	// metricsEncoders bounds the scrapes gathering and encoding at once:
	// that part costs CPU and holds the gathered families.
	metricsEncoders = 4
	// metricsEncoderWait is how long a scrape waits for an encoder before
	// it is answered 503. Encoding takes milliseconds, so a wait this long
	// means the process is starved, not busy.
	metricsEncoderWait = 5 * time.Second
	// metricsWriteTimeout bounds how long sending one exposition may take:
	// Prometheus's default scrape_timeout, after which the scraper has
	// given up anyway. It is shorter than the server's WriteTimeout so a
	// reader that stalls is cut well before then.
	metricsWriteTimeout = 10 * time.Second
	// metricsPendingBytes bounds the encoded expositions held for clients
	// still receiving them. Past it a scrape is answered 503 rather than
	// let slow readers grow the heap without bound.
	metricsPendingBytes = 64 << 20
	// maxPooledExposition: larger buffers are left to the collector so one
	// outage-sized exposition does not stay pinned in the pool.
	maxPooledExposition = 16 << 20
)

// metricsHandler serves /metrics so that clients which never read their
// answer cannot starve Prometheus. promhttp's own in-flight limit is held
// while the answer is written, so a few connections that stop reading
// would block every scrape until the server's write timeout. Here the
// limit covers only gathering and encoding, into memory; the slot is
// released before the first byte is sent, and sending has a deadline of
// its own. Content negotiation and compression stay promhttp's.
type metricsHandler struct {
	encode       http.Handler
	encoders     chan struct{}
	pending      byteBudget // bytes of encoded answers not yet sent
	encoderWait  time.Duration
	writeTimeout time.Duration
	log          *zap.Logger
}

func newMetricsHandler(reg prometheus.Gatherer, log *zap.Logger) *metricsHandler {
	return &metricsHandler{
		encode:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log)}),
		encoders:     make(chan struct{}, metricsEncoders),
		pending:      byteBudget{limit: metricsPendingBytes},
		encoderWait:  metricsEncoderWait,
		writeTimeout: metricsWriteTimeout,
		log:          log,
	}
}

// bufferedResponse is an http.ResponseWriter that keeps the answer in
// memory.
type bufferedResponse struct {
	header http.Header
	code   int
	body   *bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

var expositionPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (m *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ans, ok := m.encodeAnswer(w, r)
	if !ok {
		return
	}
	defer func() {
		if ans.body.Cap() <= maxPooledExposition {
			ans.body.Reset()
			expositionPool.Put(ans.body)
		}
	}()
	size := int64(ans.body.Len())
	if !m.pending.take(size) {
		m.log.Warn("/metrics answer refused: slow readers hold the pending-bytes budget",
			zap.Int64("budget_bytes", m.pending.limit), zap.Int64("answer_bytes", size), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded: too many /metrics answers still being sent, retry later")
		return
	}
	defer m.pending.give(size)

	h := w.Header()
	for k, v := range ans.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	rc := http.NewResponseController(w)
	deadline := rc.SetWriteDeadline(time.Now().Add(m.writeTimeout))
	w.WriteHeader(ans.code)
	if _, err := w.Write(ans.body.Bytes()); err != nil {
		m.log.Debug("sending /metrics failed", zap.Error(err), zap.String("remote", r.RemoteAddr))
		return
	}
	if deadline == nil {
		// Sent in full under this deadline, then cleared: a server
		// without a WriteTimeout of its own would otherwise keep it for
		// the connection's next request.
		if err := rc.Flush(); err == nil {
			_ = rc.SetWriteDeadline(time.Time{})
		}
	}
}

// encodeAnswer gathers and encodes the exposition under an encoder slot.
// It answers 503 itself and reports false when no slot frees in time.
func (m *metricsHandler) encodeAnswer(w http.ResponseWriter, r *http.Request) (*bufferedResponse, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), m.encoderWait)
	defer cancel()
	select {
	case m.encoders <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			m.log.Warn("/metrics answer refused: no encoder free in time", zap.Duration("waited", m.encoderWait),
				zap.String("remote", r.RemoteAddr))
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "overloaded: /metrics encoders busy, retry later")
		}
		return nil, false
	}
	defer func() { <-m.encoders }()
	ans := &bufferedResponse{header: http.Header{}, body: expositionPool.Get().(*bytes.Buffer)}
	m.encode.ServeHTTP(ans, r)
	if ans.code == 0 {
		ans.code = http.StatusOK
	}
	return ans, true
}
