package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// bodyReservation is the most a request reserves for its body before any
// byte of it arrives. A Content-Length is a claim, not bytes: trusting it
// let idle connections pin max_body_bytes each. Past this, the body grows
// as bytes arrive.
const bodyReservation = 256 << 10

// A body is read into chunks of bodyReservation<<i bytes, each twice the
// last up to the largest class (4 MiB), so growing never copies and the
// chunks held exceed the bytes read by at most one chunk. Chunks are pooled
// per class, so steady traffic allocates nothing here.
const bodyClasses = 5

var bodyPools [bodyClasses]sync.Pool

// sizeClass is the pool index of a chunk capacity, or -1 when not pooled.
func sizeClass(capacity int) int {
	for i := range bodyClasses {
		if capacity == bodyReservation<<i {
			return i
		}
	}
	return -1
}

func newChunk(capacity int) []byte {
	if c := sizeClass(capacity); c >= 0 {
		if b, ok := bodyPools[c].Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, capacity)
}

func recycleChunk(b []byte) {
	if c := sizeClass(cap(b)); c >= 0 {
		b = b[:0]
		bodyPools[c].Put(&b)
	}
}

// byteBudget bounds the body bytes all in-flight ingest requests hold
// together (ingest.max_inflight_bytes), counted as the capacity of their
// chunks. Taking never waits: a request that cannot have its next chunk is
// answered 429 and Vector sends it again later.
type byteBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *byteBudget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// errBudgetSpent: the shared byte budget cannot cover the next chunk.
var errBudgetSpent = errors.New("ingest.max_inflight_bytes is spent")

// requestBody is one request's body as read so far, and the share of the
// budget its chunks hold.
type requestBody struct {
	chunks [][]byte
	size   int64 // bytes read
	held   int64 // capacity of chunks, taken from budget
	budget *byteBudget
}

// smallBody is the announced size below which a body gets one chunk of
// exactly its size rather than a pooled one.
const smallBody = 32 << 10

// readBody reads r, an http.MaxBytesReader of limit, to the end. The first
// chunk is bodyReservation, or the announced size when that is small; the
// next are taken only once the last is full, never past limit in all.
// Every chunk is taken from the budget first. The caller releases the
// body, also on error.
func readBody(r io.Reader, announced, limit int64, budget *byteBudget) (*requestBody, error) {
	b := &requestBody{budget: budget}
	next := int64(bodyReservation)
	if announced >= 0 && announced+1 < smallBody {
		// One byte more than announced: the read that reports the end of
		// the body then needs no second chunk.
		next = announced + 1
	}
	var last []byte
	for {
		if len(last) == cap(last) {
			if b.size == limit {
				return b, atLimit(r, limit)
			}
			size := min(next, limit-b.size)
			if !budget.take(size) {
				return b, errBudgetSpent
			}
			b.held += size
			last = newChunk(int(size))
			b.chunks = append(b.chunks, last)
			next = min(2*next, bodyReservation<<(bodyClasses-1))
		}
		n, err := r.Read(last[len(last):cap(last)])
		last = last[:len(last)+n]
		b.chunks[len(b.chunks)-1] = last
		b.size += int64(n)
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// atLimit reads what follows a body of exactly the limit: the end, or the
// reader's error for a longer body.
func atLimit(r io.Reader, limit int64) error {
	var probe [1]byte
	for {
		n, err := r.Read(probe[:])
		switch {
		case err == io.EOF && n == 0:
			return nil
		case err != nil:
			return err
		case n > 0:
			return &http.MaxBytesError{Limit: limit}
		}
	}
}

// request is the body as the decoder takes it. A body in one chunk (every
// body up to 256 KiB, Vector's batches among them) is decoded in place,
// so the chunk must outlive the decoded batch; a larger one is streamed
// from its chunks into the decoder's own buffer.
func (b *requestBody) request(contentEncoding string, received time.Time) ingest.Request {
	req := ingest.Request{ContentEncoding: contentEncoding, Received: received}
	if b.inPlace() {
		req.BodyBytes = b.chunks[0]
		return req
	}
	rs := make([]io.Reader, len(b.chunks))
	for i, c := range b.chunks {
		rs[i] = bytes.NewReader(c)
	}
	req.Body = io.MultiReader(rs...)
	return req
}

// inPlace reports whether the decoder works on the body's own chunk, which
// must then outlive the decoded batch.
func (b *requestBody) inPlace() bool { return len(b.chunks) == 1 }

// release returns the chunks and their share of the budget; idempotent.
func (b *requestBody) release() {
	for _, c := range b.chunks {
		recycleChunk(c)
	}
	b.chunks = nil
	b.budget.give(b.held)
	b.held = 0
}

// postEvents is POST /v1/events.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	t := s.tracker.Load()
	if t == nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "not ready: state is loading")
		return
	}
	if !s.storeWritable(r.Context(), t) {
		// Nothing applied now could be acknowledged: refused before the
		// engine sees it, so the page set (and /metrics) holds only what
		// is on disk, and memory does not fill with commits the disk
		// cannot take. The store retries by itself; /readyz says why.
		msg := "state not durable: the store is failing to commit; retry later"
		if since := t.StoreHealth().FailingSince; !since.IsZero() {
			msg = "state not durable: the store has failed to commit since " + since.UTC().Format(time.RFC3339) + "; retry later"
		}
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, msg)
		return
	}
	limit := int64(s.cfg.Ingest.MaxBodyBytes)
	if r.ContentLength > limit {
		// Refused from the header alone: the body is never read.
		s.refuseIngest(r, refusedTooLarge, limitField("ingest.max_body_bytes", limit))
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge,
			"body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes exceeds ingest.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
		return
	}
	ce := r.Header.Get("Content-Encoding")
	if err := ingest.CheckEncoding(ce); err != nil {
		s.refuseIngest(r, refusedUnsupportedEncoding, zap.String("content_encoding", capText(ce, 64)))
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	// The body is read before the request counts against max_in_flight:
	// the byte budget bounds what bodies being read hold, and a sender on a
	// slow link (or trickling on purpose) must not hold the slots every
	// other sender needs.
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit, s.bodyBudget)
	defer body.release()
	if err != nil {
		s.bodyReadError(w, r, err)
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

	// Decoding is CPU- and memory-bound: bound how many run at once so a
	// burst queues here briefly instead of growing the heap.
	ctx, cancel := context.WithTimeout(r.Context(), s.decodeWait)
	defer cancel()
	select {
	case s.decodeSlots <- struct{}{}:
	case <-ctx.Done():
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded: decoder busy, retry later")
		return
	}
	received := s.now()
	dec, err := s.decoder.Decode(body.request(ce, received))
	if !body.inPlace() {
		// The decoder has its own copy (and Raw copies of rejects).
		body.release()
	}
	if err != nil {
		<-s.decodeSlots
		var bodyErr *ingest.BodyError
		if errors.As(err, &bodyErr) {
			if derr := t.DeadLetter(r.Context(), received, remoteIP(r), bodyErr.Reason, bodyErr.Error(), bodyErr.Raw, bodyErr.Truncated); derr != nil {
				s.log.Error("dead-lettering an undecodable body", zap.Error(derr))
			}
		}
		s.decodeError(w, r, err)
		return
	}
	pending := t.Submit(dec, remoteIP(r))
	// Applied and submitted: the decode slot and buffers go back before
	// waiting for the disk, so a slow fsync delays acknowledgements
	// without starving decoding (503 "decoder busy" would blame the wrong
	// part).
	dec.Release()
	body.release() // results of a body decoded in place pointed into it
	<-s.decodeSlots
	if s.testHookCommitWait != nil {
		s.testHookCommitWait()
	}
	res, err := pending.Wait(r.Context())
	if err != nil && r.Context().Err() != nil {
		// Nobody to answer; the commit goes on, and the retry is deduplicated.
		s.log.Info("ingest sender went away before its commit was confirmed", zap.String("remote", r.RemoteAddr))
		return
	}
	if err != nil {
		s.log.Error("ingest not acknowledged", zap.Error(err), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "state not durable, retry: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// bodyReadError answers an ingest request whose body could not be read:
// nothing was applied, and the status tells Vector whether to retry.
func (s *Server) bodyReadError(w http.ResponseWriter, r *http.Request, err error) {
	limit := int64(s.cfg.Ingest.MaxBodyBytes)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.refuseIngest(r, refusedTooLarge, limitField("ingest.max_body_bytes", limit))
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge,
			"body exceeds ingest.max_body_bytes ("+strconv.FormatInt(limit, 10)+")")
	case errors.Is(err, errBudgetSpent):
		s.log.Warn("ingest body refused: the in-flight byte budget is spent",
			zap.Int64("max_inflight_bytes", s.bodyBudget.limit), zap.Int64("content_length", r.ContentLength),
			zap.String("remote", r.RemoteAddr))
		// The rest of the body stays unread: the connection cannot be
		// reused.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "overloaded: "+err.Error()+" by requests in flight, retry later")
	default:
		s.log.Debug("reading ingest body failed", zap.Error(err), zap.String("remote", r.RemoteAddr))
		var netErr net.Error
		switch {
		case errors.As(err, &netErr) && netErr.Timeout():
			// Stalled past request_timeout: nothing was applied, and
			// Vector retries a 408.
			writeError(w, http.StatusRequestTimeout, "reading body: not complete within ingest.request_timeout ("+s.cfg.Ingest.RequestTimeout.D().String()+")")
		case errors.Is(err, io.ErrUnexpectedEOF):
			writeError(w, http.StatusRequestTimeout, "reading body: the connection ended before the body was complete")
		default:
			// Malformed framing (a bad chunk size, say): the same bytes
			// would fail again, so not an answer Vector retries.
			writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		}
	}
}

// storeProbeWait bounds how long an ingest request waits, while commits
// fail, for the store to show it writes again.
const storeProbeWait = 2 * time.Second

// storeWritable asks the tracker whether the store takes commits, waiting
// at most storeProbeWait while it is known to fail.
func (s *Server) storeWritable(ctx context.Context, t *tracker.Tracker) bool {
	ctx, cancel := context.WithTimeout(ctx, storeProbeWait)
	defer cancel()
	return t.Writable(ctx)
}

func (s *Server) decodeError(w http.ResponseWriter, r *http.Request, err error) {
	var bodyErr *ingest.BodyError
	in := s.cfg.Ingest
	switch {
	case errors.Is(err, ingest.ErrBodyTooLarge), errors.Is(err, ingest.ErrDecodedTooLarge), errors.Is(err, ingest.ErrTooManyEvents):
		switch {
		case errors.Is(err, ingest.ErrBodyTooLarge):
			s.refuseIngest(r, refusedTooLarge, limitField("ingest.max_body_bytes", int64(in.MaxBodyBytes)))
		case errors.Is(err, ingest.ErrDecodedTooLarge):
			s.refuseIngest(r, refusedDecodedTooLarge, limitField("ingest.max_decoded_bytes", int64(in.MaxDecodedBytes)))
		default:
			s.refuseIngest(r, refusedTooManyEvents, limitField("ingest.max_events", int64(in.MaxEvents)))
		}
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, ingest.ErrUnsupportedEncoding):
		s.refuseIngest(r, refusedUnsupportedEncoding, zap.String("content_encoding", capText(r.Header.Get("Content-Encoding"), 64)))
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
