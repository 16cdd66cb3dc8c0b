package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// zeros streams n zero bytes into w in chunks, so building a bomb never
// holds its decoded size in memory.
func zeros(t *testing.T, w writeCloser, n int64) {
	t.Helper()
	chunk := make([]byte, 1<<20)
	for ; n > 0; n -= int64(len(chunk)) {
		if _, err := w.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDecompressionBombs feeds each compression a body that inflates to
// hundreds of MiB or more and checks that Decode refuses it with
// ErrDecodedTooLarge after allocating a small multiple of the limit.
func TestDecompressionBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds large compressed streams")
	}
	const limit = 1 << 20
	cfg := func(c *config.Ingest) {
		c.MaxBodyBytes = 16 << 20
		c.MaxDecodedBytes = limit
	}
	bombs := []struct {
		name, enc string
		decoded   int64
		body      func(t *testing.T) []byte
	}{
		{"gzip multi-member", "gzip", 1 << 30, func(t *testing.T) []byte {
			// One 16 MiB member repeated: gzip readers decode concatenated
			// members as one stream.
			var member bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
			zeros(t, zw, 16<<20)
			return bytes.Repeat(member.Bytes(), 64)
		}},
		{"deflate", "deflate", 256 << 20, func(t *testing.T) []byte {
			var buf bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
			zeros(t, zw, 256<<20)
			return buf.Bytes()
		}},
		{"zstd frames", "zstd", 1 << 30, func(t *testing.T) []byte {
			var frame bytes.Buffer
			zw, _ := zstd.NewWriter(&frame, zstd.WithEncoderConcurrency(1))
			zeros(t, zw, 64<<20)
			return bytes.Repeat(frame.Bytes(), 16)
		}},
		{"zstd single frame, no content size", "zstd", 1 << 30, func(t *testing.T) []byte {
			var frame bytes.Buffer
			zw, _ := zstd.NewWriter(&frame, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
			zeros(t, zw, 1<<30)
			return frame.Bytes()
		}},
		{"zstd single segment claiming 4 GiB", "zstd", 1 << 32, func(t *testing.T) []byte {
			return zstdSingleSegment(1<<32, []byte("{}"))
		}},
		{"snappy", "snappy", 64 << 20, func(t *testing.T) []byte {
			return snappy.Encode(nil, make([]byte, 64<<20))
		}},
		{"snappy lying header", "snappy", 1<<32 - 1, func(t *testing.T) []byte {
			// Claims 4 GiB in its length header, holds a few bytes.
			hdr := binary.AppendUvarint(nil, 1<<32-1)
			return append(hdr, 0x00, 'x')
		}},
	}
	for _, bomb := range bombs {
		t.Run(bomb.name, func(t *testing.T) {
			body := bomb.body(t)
			t.Logf("%d compressed bytes claim %d decoded", len(body), bomb.decoded)
			// A new decoder: nothing pooled, every buffer and decompressor
			// this refusal needs is counted.
			d := newTestDecoder(t, cfg)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := d.Decode(Request{Body: bytes.NewReader(body), ContentEncoding: bomb.enc})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrDecodedTooLarge) {
				t.Fatalf("Decode: %v, want ErrDecodedTooLarge", err)
			}
			// Reading the compressed body costs up to twice its size (the
			// buffer doubles); decompressing, a few times the limit, plus
			// for zstd the capped window and its block buffers.
			allocated := after.TotalAlloc - before.TotalAlloc
			bound := uint64(2*len(body) + 4*limit + maxZstdWindow + 2<<20)
			t.Logf("allocated %d bytes refusing it (bound %d)", allocated, bound)
			if allocated > bound {
				t.Errorf("refusing a %d-byte bomb allocated %d bytes, want at most %d", bomb.decoded, allocated, bound)
			}
			if allocated > uint64(bomb.decoded)/8 {
				t.Errorf("allocated %d bytes, not far below the decoded size %d", allocated, bomb.decoded)
			}
		})
	}

	t.Run("identity past the decoded limit", func(t *testing.T) {
		d := newTestDecoder(t, cfg)
		body := bytes.Repeat([]byte(" "), limit+1)
		if _, err := d.Decode(Request{Body: bytes.NewReader(body)}); !errors.Is(err, ErrDecodedTooLarge) {
			t.Errorf("Decode: %v, want ErrDecodedTooLarge", err)
		}
	})
}
