package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Why an ingest request is refused for what it is (413, 415): Vector
// drops such a batch without retry, so each is counted and logged.
const (
	refusedTooLarge            = "too_large"
	refusedDecodedTooLarge     = "decoded_too_large"
	refusedTooManyEvents       = "too_many_events"
	refusedUnsupportedEncoding = "unsupported_encoding"
)

var refusedReasons = []string{refusedTooLarge, refusedDecodedTooLarge, refusedTooManyEvents, refusedUnsupportedEncoding}

// refusedLogEvery is how often each refusal reason is logged at most: a
// sender misconfigured this way repeats it with every batch.
const refusedLogEvery = 10 * time.Second

// refuseIngest counts an ingest request refused for reason and logs it,
// sampled, with the sender's address and the limit it passed. Neither the
// body nor any header that may carry a token is logged.
func (s *Server) refuseIngest(r *http.Request, reason string, limit zap.Field) {
	s.refused.WithLabelValues(reason).Inc()
	fields := []zap.Field{zap.String("reason", reason), zap.String("remote", r.RemoteAddr), limit}
	if r.ContentLength >= 0 {
		fields = append(fields, zap.Int64("content_length", r.ContentLength))
	}
	s.refusedLog.warn(reason, "ingest request refused: the sender drops this batch without retry", fields...)
}

// limitField names the configured limit a request passed, and its value.
func limitField(name string, value int64) zap.Field {
	return zap.String("limit", name+"="+strconv.FormatInt(value, 10))
}

// sampledLog logs at most one line per key every interval, so a flood of
// the same event costs a line, not a line per request. The line it logs
// says how many it left out since the previous one.
type sampledLog struct {
	log   *zap.Logger
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	last    map[string]time.Time
	skipped map[string]int
}

func newSampledLog(log *zap.Logger, every time.Duration, now func() time.Time) *sampledLog {
	return &sampledLog{log: log, every: every, now: now, last: map[string]time.Time{}, skipped: map[string]int{}}
}

// warn logs msg at warn level unless a line for key was logged within the
// interval. Keys must come from a fixed set: each is remembered.
func (l *sampledLog) warn(key, msg string, fields ...zap.Field) {
	l.mu.Lock()
	now := l.now()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.skipped[key]++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped[key]
	l.last[key], l.skipped[key] = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		fields = append(fields, zap.Int("not_logged_since_last", skipped))
	}
	l.log.Warn(msg, fields...)
}
