package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/ingest"
)

// bodyPool recycles the buffers compressed bodies are read into: most
// requests are alike in size, so steady traffic allocates nothing here.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps one huge request from pinning its buffer forever.
const maxPooledBody = 4 << 20

// postEvents is POST /v1/events.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	t := s.tracker.Load()
	if t == nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "not ready: state is loading")
		return
	}
	limit := int64(s.cfg.Ingest.MaxBodyBytes)
	if r.ContentLength > limit {
		// Refused from the header alone: the body is never read.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge,
			"body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes exceeds ingest.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
		return
	}
	ce := r.Header.Get("Content-Encoding")
	if err := ingest.CheckEncoding(ce); err != nil {
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "overloaded: too many ingest requests in flight, retry later")
		return
	}

	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodyPool.Put(buf)
		}
	}()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge,
				"body exceeds ingest.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
			return
		}
		// The client went away or stalled: nothing was applied; 408 is
		// retried by Vector.
		s.log.Debug("reading ingest body failed", zap.Error(err), zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusRequestTimeout, "reading body: "+err.Error())
		return
	}

	// Decoding is CPU- and memory-bound: bound how many run at once so a
	// burst queues here briefly instead of growing the heap.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	select {
	case s.decodeSlots <- struct{}{}:
	case <-ctx.Done():
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded: decoder busy, retry later")
		return
	}
	received := time.Now()
	dec, err := s.decoder.Decode(ingest.Request{
		Body:            bytes.NewReader(buf.Bytes()),
		ContentEncoding: ce,
		Received:        received,
	})
	if err != nil {
		<-s.decodeSlots
		var bodyErr *ingest.BodyError
		if errors.As(err, &bodyErr) {
			if derr := t.DeadLetter(r.Context(), received, remoteIP(r), bodyErr.Reason, bodyErr.Error(), bodyErr.Raw); derr != nil {
				s.log.Error("dead-lettering an undecodable body", zap.Error(derr))
			}
		}
		s.decodeError(w, r, err)
		return
	}
	res, err := t.Apply(r.Context(), dec, remoteIP(r))
	dec.Release()
	<-s.decodeSlots
	if err != nil {
		s.log.Error("ingest not acknowledged", zap.Error(err), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "state not durable, retry: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) decodeError(w http.ResponseWriter, r *http.Request, err error) {
	var bodyErr *ingest.BodyError
	switch {
	case errors.Is(err, ingest.ErrBodyTooLarge), errors.Is(err, ingest.ErrDecodedTooLarge), errors.Is(err, ingest.ErrTooManyEvents):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, ingest.ErrUnsupportedEncoding):
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
	case errors.As(err, &bodyErr):
		s.log.Warn("undecodable ingest body", zap.Error(err), zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.log.Error("decoding ingest body", zap.Error(err), zap.String("remote", r.RemoteAddr))
		writeError(w, http.StatusInternalServerError, "decoding failed: "+err.Error())
	}
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
