package server

import (
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
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
// sender misconfigured this way repeats it with every batch, and the
// counter has the total.
const refusedLogEvery = 10 * time.Second

// newRefusedLog logs the first refusal of each reason per refusedLogEvery
// (zap samples by message, and each reason has its own) and drops the
// rest.
func newRefusedLog(log *zap.Logger) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, refusedLogEvery, 1, 0)
	}))
}

// refuseIngest counts an ingest request refused for reason and logs it,
// sampled, with the sender's address and the limit it passed. Neither the
// body nor any header that may carry a token is logged.
func (s *Server) refuseIngest(r *http.Request, reason string, limit zap.Field) {
	s.refused.WithLabelValues(reason).Inc()
	fields := []zap.Field{zap.String("reason", reason), zap.String("remote", r.RemoteAddr), limit}
	if r.ContentLength >= 0 {
		fields = append(fields, zap.Int64("content_length", r.ContentLength))
	}
	s.refusedLog.Warn("ingest request refused ("+reason+"): the sender drops this batch without retry", fields...)
}

// limitField names the configured limit a request passed, and its value.
func limitField(name string, value int64) zap.Field {
	return zap.String("limit", name+"="+strconv.FormatInt(value, 10))
}
