package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// encoding is a Content-Encoding the decoder understands. The names are
// what Vector's http sink sends for compression none, gzip, zlib, zstd and
// snappy.
type encoding uint8

const (
	encIdentity encoding = iota
	encGzip
	encDeflate // zlib-wrapped (RFC 1950), what Vector's "zlib" sends
	encZstd
	encSnappy // raw block format, not the framed stream
)

var encodingNames = [...]string{"identity", "gzip", "deflate", "zstd", "snappy"}

func (e encoding) String() string { return encodingNames[e] }

// CheckEncoding validates a Content-Encoding header value before the body
// is read: "", "identity", "gzip", "deflate" (zlib-wrapped), "zstd" or
// "snappy" (raw block), case-insensitively. Anything else, including a list
// of several codings, is ErrUnsupportedEncoding.
func CheckEncoding(contentEncoding string) error {
	_, err := parseEncoding(contentEncoding)
	return err
}

// parseEncoding maps a Content-Encoding header value to an encoding.
func parseEncoding(v string) (encoding, error) {
	t := strings.TrimSpace(v)
	switch {
	case t == "", strings.EqualFold(t, "identity"):
		return encIdentity, nil
	case strings.EqualFold(t, "gzip"):
		return encGzip, nil
	case strings.EqualFold(t, "deflate"):
		return encDeflate, nil
	case strings.EqualFold(t, "zstd"):
		return encZstd, nil
	case strings.EqualFold(t, "snappy"):
		return encSnappy, nil
	}
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return 0, fmt.Errorf("%w %s: want gzip, deflate, zstd, snappy or none", ErrUnsupportedEncoding, strconv.Quote(v))
}

// errOverLimit is readLimited's signal that the limit was passed.
var errOverLimit = errors.New("over limit")

// minReadBuffer is the first allocation when a pooled buffer has none.
const minReadBuffer = 32 << 10

// readLimited appends everything r yields to buf and fails with
// errOverLimit as soon as more than limit bytes arrived. It grows buf by
// doubling but never past limit+1, so a stream that never ends costs at
// most about twice the limit in allocations before it is refused. A
// caller that knows the likely size presizes buf (presize) so the common
// case reads into one buffer without copying.
func readLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, errOverLimit
			}
			n := int64(max(2*cap(buf), minReadBuffer))
			n = min(n, limit+1)
			grown := make([]byte, len(buf), n)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errOverLimit
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readBody reads the request body, translating the server's
// http.MaxBytesReader error and enforcing the limit itself as well.
func readBody(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	if r == nil {
		return buf, nil
	}
	buf, err := readLimited(r, buf, limit)
	if err == nil {
		return buf, nil
	}
	if errors.Is(err, errOverLimit) {
		return buf, fmt.Errorf("%w: more than max_body_bytes %d", ErrBodyTooLarge, limit)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return buf, fmt.Errorf("%w: %w", ErrBodyTooLarge, err)
	}
	return buf, fmt.Errorf("reading request body: %w", err)
}

// presize returns buf, emptied, with room for hint bytes (at most limit)
// and the read that finds the end: readLimited then neither copies nor
// doubles past the size. hint is a claim of the body, so callers bound it
// by what the body can produce.
func presize(buf []byte, hint, limit int64) []byte {
	want := min(hint, limit) + 1
	if hint <= 0 || int64(cap(buf)) >= want {
		return buf[:0]
	}
	return make([]byte, 0, want)
}

// maxDeflateRatio bounds what deflate produces per input byte: a
// 258-byte match costs at least two bits.
const maxDeflateRatio = 1032

// gzipSizeHint is the decoded size a gzip body states in its trailer
// (ISIZE: the last member's length mod 2^32), bounded by what deflate can
// produce from the body; 0 when the body is too short to hold a trailer.
// Vector sends one member, so for its bodies the hint is exact.
func gzipSizeHint(body []byte) int64 {
	const minGzip = 10 + 2 + 8 // header, empty deflate block, trailer
	if len(body) < minGzip {
		return 0
	}
	isize := int64(binary.LittleEndian.Uint32(body[len(body)-4:]))
	return min(isize, int64(len(body))*maxDeflateRatio)
}

// codecPools keeps decompressors for reuse: setting one up costs more than
// decompressing a typical batch.
type codecPools struct {
	gzip, zlib, zstd sync.Pool
	zstdOptions      []zstd.DOption
}

type gzipState struct {
	src bytes.Reader
	zr  gzip.Reader
}

type zlibState struct {
	src bytes.Reader
	zr  io.ReadCloser // implements zlib.Resetter
}

type zstdState struct {
	src bytes.Reader
	zr  *zstd.Decoder
}

// emptyZlib is a complete zlib stream of no data: zlib readers can only be
// made from a valid header, and pooled ones are Reset before each use.
var emptyZlib = []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}

// The zstd decoder allocates a frame's whole window up front (for a
// single-segment frame, its claimed content size), so what a frame may ask
// for is capped: 8 MiB covers every level up to 19 without long mode, and
// Vector's default level 3 streams use 2 MiB. The cap does not follow
// max_decoded_bytes: a streaming encoder declares its window whatever the
// size of the data.
const maxZstdWindow = 8 << 20

// init sets the decompressor options and checks them once.
func (p *codecPools) init() error {
	p.zstdOptions = []zstd.DOption{
		// One goroutine per stream: requests are the unit of parallelism.
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxZstdWindow),
		// In streaming mode this caps the window and a single-segment
		// frame's content size; the decoded total is readLimited's job.
		zstd.WithDecoderMaxMemory(maxZstdWindow),
	}
	p.gzip.New = func() any { return new(gzipState) }
	// Check the options once so the pool's constructor cannot fail later.
	zr, err := zstd.NewReader(nil, p.zstdOptions...)
	if err != nil {
		return fmt.Errorf("ingest: zstd decoder: %w", err)
	}
	p.zstd.Put(&zstdState{zr: zr})
	return nil
}

// getZlib takes a pooled zlib reader or makes one.
func (p *codecPools) getZlib() (*zlibState, error) {
	if st, ok := p.zlib.Get().(*zlibState); ok {
		return st, nil
	}
	st := new(zlibState)
	st.src.Reset(emptyZlib)
	zr, err := zlib.NewReader(&st.src)
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	st.zr = zr
	return st, nil
}

// getZstd takes a pooled zstd decoder or makes one.
func (p *codecPools) getZstd() (*zstdState, error) {
	if st, ok := p.zstd.Get().(*zstdState); ok {
		return st, nil
	}
	zr, err := zstd.NewReader(nil, p.zstdOptions...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &zstdState{zr: zr}, nil
}

// decompress returns the decoded body: body itself for identity, else
// *out refilled. It refuses output past limit without allocating beyond it.
func (p *codecPools) decompress(enc encoding, body []byte, out *[]byte, limit int64) ([]byte, error) {
	var err error
	switch enc {
	case encIdentity:
		if int64(len(body)) > limit {
			return nil, decodedTooLarge(limit)
		}
		return body, nil
	case encGzip:
		st := p.gzip.Get().(*gzipState)
		st.src.Reset(body)
		if err = st.zr.Reset(&st.src); err == nil {
			*out, err = readLimited(&st.zr, presize(*out, gzipSizeHint(body), limit), limit)
		}
		st.src.Reset(nil)
		p.gzip.Put(st)
	case encDeflate:
		var st *zlibState
		if st, err = p.getZlib(); err != nil {
			return nil, err
		}
		st.src.Reset(body)
		if err = st.zr.(zlib.Resetter).Reset(&st.src, nil); err == nil {
			*out, err = readLimited(st.zr, (*out)[:0], limit)
		}
		if n := st.src.Len(); err == nil && n > 0 {
			// zlib is one stream: what follows it would be lost unseen
			// (the reader reads through a ByteReader, so exactly up to the
			// stream's checksum).
			err = fmt.Errorf("%d more byte(s) after the end of the zlib stream", n)
		}
		st.src.Reset(nil)
		p.zlib.Put(st)
	case encZstd:
		// The first frame's header is read here, before any allocation: a
		// stated content size past the limit is refused outright.
		if h := (zstd.Header{}); h.Decode(body) == nil && h.HasFCS && h.FrameContentSize > uint64(limit) {
			return nil, decodedTooLarge(limit)
		}
		var st *zstdState
		if st, err = p.getZstd(); err != nil {
			return nil, err
		}
		// A *bytes.Reader (not a *bytes.Buffer) keeps the decoder streaming:
		// its in-memory shortcut would decode the whole frame up front.
		st.src.Reset(body)
		if err = st.zr.Reset(&st.src); err == nil {
			*out, err = readLimited(st.zr, (*out)[:0], limit)
		}
		st.src.Reset(nil)
		if rerr := st.zr.Reset(nil); rerr == nil {
			p.zstd.Put(st)
		}
	case encSnappy:
		*out, err = snappyDecode(body, (*out)[:0], limit)
	}
	switch {
	case err == nil:
		return *out, nil
	case errors.Is(err, errOverLimit):
		return nil, decodedTooLarge(limit)
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		err = fmt.Errorf("a frame needs a window over the %d bytes this server allocates: %w", maxZstdWindow, err)
	}
	if !strings.HasPrefix(err.Error(), enc.String()+": ") { // the codecs' own errors name themselves
		err = fmt.Errorf("%s: %w", enc, err)
	}
	return nil, &BodyError{Reason: BodyBadEncoding, Err: err}
}

// maxSnappyRatio bounds what a snappy block produces per input byte: its
// best element, a 3-byte copy, yields 64 bytes; a literal yields less than
// it costs.
const maxSnappyRatio = 64.0 / 3

// errSnappyClaim: a block states a decoded length its bytes cannot hold.
var errSnappyClaim = errors.New("the block claims more decoded bytes than its size can produce")

// snappyDecode decodes a raw snappy block, checking the length it claims
// before allocating for it: past the limit it is refused as too large, and
// past what the block's elements can produce as corrupt, so a few bytes
// claiming the whole limit cost nothing.
func snappyDecode(body, buf []byte, limit int64) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return buf, err
	}
	if int64(n) > limit {
		return buf, errOverLimit
	}
	if float64(n) > float64(len(body))*maxSnappyRatio {
		return buf, fmt.Errorf("%w: %d bytes claim %d", errSnappyClaim, len(body), n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := snappy.Decode(buf[:n], body)
	if err != nil {
		return buf, err
	}
	return out, nil
}

func decodedTooLarge(limit int64) error {
	return fmt.Errorf("%w: decompresses past max_decoded_bytes %d", ErrDecodedTooLarge, limit)
}
