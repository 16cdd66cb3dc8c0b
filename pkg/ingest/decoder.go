// Package ingest decodes request bodies exactly as Vector's http sink sends
// them into health-check results. It owns the wire contract of POST
// /v1/events: Content-Encoding (none, gzip, zlib "deflate", zstd, raw snappy),
// framing (JSON array, NDJSON, single object, detected from the bytes), the
// event fields and their renaming, Vector metric events, and the size
// limits that keep a hostile or broken sender from exhausting memory.
//
// Decoding is the hot path of the service: buffers, decompressors and
// result slices are pooled, JSON is read by a purpose-built scanner that
// validates as strictly as encoding/json but allocates nothing for a
// well-formed event, and results are views into the decoder's buffers.
package ingest

//go:generate go test -run TestGolden -update .

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Routes of the ingest contract. The HTTP server registers these, and the
// Vector pipeline check in this package holds vector/*.yaml to them; they
// live here so the server can import them without a cycle.
const (
	EventsPath = "/v1/events"
	HealthPath = "/healthz"
)

// Errors Decode returns for a request as a whole. Test with errors.Is; a
// *BodyError is matched with errors.As.
var (
	// ErrBodyTooLarge: the compressed body is past max_body_bytes (HTTP 413).
	// When the server's http.MaxBytesReader tripped, the *http.MaxBytesError
	// is wrapped too.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrDecodedTooLarge: the body decompresses past max_decoded_bytes, a
	// decompression bomb or a batch too big to hold (HTTP 413).
	ErrDecodedTooLarge = errors.New("decoded body too large")
	// ErrTooManyEvents: more events than max_events (HTTP 413).
	ErrTooManyEvents = errors.New("too many events")
	// ErrUnsupportedEncoding: a Content-Encoding this service cannot decode
	// (HTTP 415).
	ErrUnsupportedEncoding = errors.New("unsupported Content-Encoding")
)

// BodyError reports a body of which nothing can be decoded: a corrupt
// compressed stream, or bytes that hold no well-formed JSON event at all
// (HTTP 400). A batch where only some events are bad is not a BodyError:
// those events come back as Rejections.
type BodyError struct {
	// Reason is a stable, low-cardinality label: BodyBadEncoding,
	// BodyEmpty or BodyInvalidJSON.
	Reason string
	// Raw is a copy of the start of the decoded body (at most MaxRawBytes),
	// so the request can be dead-lettered; empty when decompression failed.
	// Truncated says the body was longer.
	Raw       []byte
	Truncated bool
	Err       error
}

// Body error reasons.
const (
	BodyBadEncoding = "bad_encoding" // the compressed stream is corrupt
	BodyEmpty       = "empty_body"   // no bytes but whitespace
	BodyInvalidJSON = "invalid_json" // no event in the body is well-formed JSON
)

func (e *BodyError) Error() string { return "undecodable body: " + e.Err.Error() }

func (e *BodyError) Unwrap() error { return e.Err }

// Request is one POST /v1/events as the server hands it over.
type Request struct {
	// Body is already limited by the server to max_body_bytes with
	// http.MaxBytesReader; Decode enforces the limit too. Decode reads it
	// into a pooled buffer.
	Body io.Reader
	// BodyBytes, when not nil, is the whole body already read, and Body
	// is ignored. Decode works on it in place, without copying, and the
	// results of an uncompressed body point into it: the caller must not
	// change or reuse it until Release.
	BodyBytes       []byte
	ContentEncoding string
	// Received is the receiver's clock, used for results without a
	// timestamp and for last-seen.
	Received time.Time
}

// Rejection is one event that could not become a result. It is
// dead-lettered, not dropped: Raw is a copy the caller owns.
type Rejection struct {
	// Index is the event's position in the request, from 0.
	Index int
	// Reason is a stable, low-cardinality metric label: one of the Reason
	// constants.
	Reason string
	// Err says what is wrong, naming the field.
	Err string
	// Raw is a copy of the event as sent, at most MaxRawBytes; it survives
	// Release. Truncated says it was cut.
	Raw       []byte
	Truncated bool
}

// MaxRawBytes bounds the copy of a rejected event kept in a Rejection.
const MaxRawBytes = 4 << 10

// CapRaw bounds raw bytes kept for the dead-letter store to MaxRawBytes,
// cutting at a UTF-8 boundary, and says whether it cut.
func CapRaw(b []byte) (kept []byte, truncated bool) {
	kept = truncateUTF8(b, MaxRawBytes)
	return kept, len(kept) < len(b)
}

// Decoded is the outcome of one Decode. It comes from a pool: call Release
// exactly once, after the engine has applied the batch, and use nothing
// from it afterwards except Rejection.Raw.
type Decoded struct {
	// Batch holds the valid results in arrival order; their byte slices
	// point into this Decoded's buffers. Batch.Received is Request.Received.
	Batch health.Batch
	// Rejected lists the invalid events in arrival order.
	Rejected []Rejection
	// Total is the number of events seen:
	// len(Batch.Results) + len(Rejected).
	Total int

	d *Decoder
	// body is the request body as read; data the decompressed body when
	// the request was compressed. Results point into one of them or into
	// arena, which holds strings that had JSON escapes.
	body, data, arena []byte
	labels            []health.ResultLabel
	// Scratch for the event being decoded.
	fields, tags fieldSet
	labelVals    [][]byte
	labelsDirty  bool
	stack        []byte
	wellFormed   int
	// lastHost and lastRegion cache the latest region_from_host match:
	// consecutive events usually come from the same host.
	lastHost   []byte
	lastRegion []byte
	released   bool
}

// Decoder turns request bodies into results and rejections: it decides
// which encodings, framings and events are accepted, how fields map to a
// health.Result, and which limits refuse a request outright. A Decoder is
// immutable after NewDecoder and safe for concurrent use.
type Decoder struct {
	maxBody, maxDecoded int64
	maxEvents           int
	maxField, maxOutput int
	statusMetric        string
	regionFromHost      *regexp.Regexp

	// fieldNames and tagNames name the fields in rejection messages.
	fieldNames, tagNames [numEventFields]string
	// topKeys resolves an event's top-level keys; tagKeys the keys of a
	// metric's tags and of a labels object.
	topKeys, tagKeys keyTable
	labelKeys        []string

	decodedPool sync.Pool
	codecs      codecPools
}

// NewDecoder checks the ingest settings the decoder depends on and compiles
// region_from_host.
func NewDecoder(cfg config.Ingest) (*Decoder, error) {
	d := &Decoder{
		maxBody:      int64(cfg.MaxBodyBytes),
		maxDecoded:   int64(cfg.MaxDecodedBytes),
		maxEvents:    cfg.MaxEvents,
		maxField:     cfg.MaxFieldBytes,
		maxOutput:    cfg.MaxOutputBytes,
		statusMetric: cfg.StatusMetric,
		labelKeys:    append([]string(nil), cfg.Labels...),
	}
	switch {
	case d.maxBody <= 0:
		return nil, errors.New("ingest: max_body_bytes must be positive")
	case d.maxDecoded <= 0:
		return nil, errors.New("ingest: max_decoded_bytes must be positive")
	case d.maxEvents <= 0:
		return nil, errors.New("ingest: max_events must be positive")
	case d.maxField <= 0:
		return nil, errors.New("ingest: max_field_bytes must be positive")
	case d.maxOutput <= 0:
		return nil, errors.New("ingest: max_output_bytes must be positive")
	case d.statusMetric == "":
		return nil, errors.New("ingest: status_metric must not be empty")
	}
	if cfg.RegionFromHost != "" {
		re, err := regexp.Compile(cfg.RegionFromHost)
		if err != nil {
			return nil, fmt.Errorf("ingest: region_from_host: %w", err)
		}
		if re.NumSubexp() > 1 {
			return nil, errors.New("ingest: region_from_host: use at most one capture group (the region)")
		}
		d.regionFromHost = re
	}
	if err := d.buildKeyTables(cfg.Fields); err != nil {
		return nil, err
	}
	if err := d.codecs.init(); err != nil {
		return nil, err
	}
	d.decodedPool.New = func() any { return &Decoded{d: d} }
	return d, nil
}

// Decode reads the whole body, decompresses it within the limits and
// decodes every event. It returns a pooled *Decoded, or one of the errors
// above (then nothing needs releasing). A read error other than the size
// limit, such as a client disconnect, is returned wrapped as is.
func (d *Decoder) Decode(req Request) (*Decoded, error) {
	enc, err := parseEncoding(req.ContentEncoding)
	if err != nil {
		return nil, err
	}
	dec := d.decodedPool.Get().(*Decoded)
	dec.released = false
	dec.Batch.Received = req.Received
	if err := dec.decode(req, enc); err != nil {
		dec.Release()
		return nil, err
	}
	return dec, nil
}

// decode reads, decompresses and decodes one body into dec.
func (dec *Decoded) decode(req Request, enc encoding) error {
	d := dec.d
	body := req.BodyBytes
	if body == nil {
		var err error
		if dec.body, err = readBody(req.Body, dec.body[:0], d.maxBody); err != nil {
			return err
		}
		body = dec.body
	} else if int64(len(body)) > d.maxBody {
		return fmt.Errorf("%w: more than max_body_bytes %d", ErrBodyTooLarge, d.maxBody)
	}
	data, err := d.codecs.decompress(enc, body, &dec.data, d.maxDecoded)
	if err != nil {
		return err
	}
	return dec.decodeEvents(data)
}

// Buffers above these sizes are not kept for the next request: one huge
// batch must not pin its memory for the life of the process.
const (
	maxPooledBytes   = 4 << 20
	maxPooledResults = 1 << 14
)

// Release returns the Decoded and its buffers to the pool. Results become
// invalid; Rejection.Raw stays valid. Calling Release again before the
// Decoded is reused does nothing.
func (dec *Decoded) Release() {
	if dec == nil || dec.d == nil || dec.released {
		return
	}
	dec.released = true
	clear(dec.Rejected)
	dec.Rejected = dec.Rejected[:0]
	dropped := false
	for _, b := range []*[]byte{&dec.body, &dec.data, &dec.arena} {
		if cap(*b) > maxPooledBytes {
			*b, dropped = nil, true
		} else {
			*b = (*b)[:0]
		}
	}
	results := dec.Batch.Results
	if cap(results) > maxPooledResults {
		results, dropped = nil, true
	}
	if dropped {
		// Results still point into the dropped buffers; let them go.
		clear(results[:cap(results)])
		clear(dec.labels[:cap(dec.labels)])
	}
	if cap(dec.labels) > maxPooledResults {
		dec.labels = nil
	}
	dec.Batch = health.Batch{Results: results[:0]}
	dec.labels = dec.labels[:0]
	dec.Total, dec.wellFormed = 0, 0
	dec.lastHost, dec.lastRegion = nil, nil
	dec.d.decodedPool.Put(dec)
}

// tooManyEvents is checked before each event is decoded.
func (dec *Decoded) tooManyEvents() error {
	if dec.Total >= dec.d.maxEvents {
		return fmt.Errorf("%w: more than max_events %d", ErrTooManyEvents, dec.d.maxEvents)
	}
	return nil
}
