package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/golang/snappy"
)

// allocatedBy is the bytes fn allocates: the least of a few runs, since
// the count is process-wide and the runtime (the race detector's, say)
// sometimes allocates beside it.
func allocatedBy(fn func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// A snappy block's length header is a claim: one that its bytes cannot
// produce is refused as corrupt before anything is allocated for it.
func TestSnappyClaims(t *testing.T) {
	const limit = 64 << 20
	claim := func(n uint64, rest ...byte) []byte { return append(binary.AppendUvarint(nil, n), rest...) }
	text := bytes.Repeat([]byte(`{"host":"web-1","status":"ok"} `), 1000)
	tests := []struct {
		name     string
		body     []byte
		want     []byte // decoded, when it decodes
		overflow bool   // refused as over the limit
		maxAlloc uint64
	}{
		{name: "zeros, the densest block", body: snappy.Encode(nil, make([]byte, 1<<20)), want: make([]byte, 1<<20), maxAlloc: 1<<20 + 4096},
		{name: "text", body: snappy.Encode(nil, text), want: text, maxAlloc: uint64(len(text)) + 4096},
		{name: "empty", body: claim(0), want: []byte{}, maxAlloc: 0},
		{name: "six bytes claiming 60 MiB", body: claim(60<<20, 0, 'x'), maxAlloc: 4096},
		{name: "claim one past what the size allows", body: claim(uint64(float64(len(claim(1<<20)))*maxSnappyRatio) + 1), maxAlloc: 4096},
		{name: "claim past the limit", body: claim(limit+1, 0, 'x'), overflow: true, maxAlloc: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			var err error
			alloc := allocatedBy(func() { out, err = snappyDecode(tt.body, nil, limit) })
			switch {
			case tt.want != nil:
				if err != nil || !bytes.Equal(out, tt.want) {
					t.Fatalf("decoded %d bytes, %v; want %d bytes", len(out), err, len(tt.want))
				}
			case tt.overflow:
				if !errors.Is(err, errOverLimit) {
					t.Fatalf("error %v, want errOverLimit", err)
				}
			default:
				if !errors.Is(err, errSnappyClaim) {
					t.Fatalf("error %v, want errSnappyClaim", err)
				}
			}
			if alloc > tt.maxAlloc {
				t.Errorf("allocated %d bytes, want at most %d", alloc, tt.maxAlloc)
			}
		})
	}

	// Through the decoder, a corrupt claim is a 400-class body error.
	d := newTestDecoder(t, nil)
	_, err := d.Decode(Request{BodyBytes: claim(1<<20, 0, 'x'), ContentEncoding: "snappy"})
	var be *BodyError
	if !errors.As(err, &be) || be.Reason != BodyBadEncoding {
		t.Fatalf("Decode: %v, want a BodyError %s", err, BodyBadEncoding)
	}
}

// A gzip body's trailer states its decoded size: the output is read into
// one buffer of that size instead of doubling and copying up to it. The
// claim is bounded by what deflate can produce, and a wrong one only
// costs the doubling it would have cost anyway.
func TestGzipPresizedFromTrailer(t *testing.T) {
	const limit = 64 << 20
	plain := bytes.Repeat([]byte(`{"check":"disk","host":"web-17.eu-west.example.com","status":"passing"}`+"\n"), 60000) // ~4.2 MB
	body := compress(t, "gzip", plain)
	lying := bytes.Clone(body)
	binary.LittleEndian.PutUint32(lying[len(lying)-4:], 1<<31) // trailer claims 2 GiB
	small := bytes.Clone(body)
	binary.LittleEndian.PutUint32(small[len(small)-4:], 10) // trailer claims 10 bytes
	twoMembers := append(compress(t, "gzip", plain[:1000]), compress(t, "gzip", plain[1000:])...)
	tiny := compress(t, "gzip", []byte("{}"))
	binary.LittleEndian.PutUint32(tiny[len(tiny)-4:], 1<<31)
	tests := []struct {
		name     string
		body     []byte
		ok       bool
		maxAlloc uint64
	}{
		// The decompressor's own state is some 50 KB.
		{name: "one member", body: body, ok: true, maxAlloc: uint64(len(plain)) + 128<<10},
		{name: "two members", body: twoMembers, ok: true, maxAlloc: 4*uint64(len(plain)) + 128<<10},
		{name: "trailer understates", body: small, ok: false, maxAlloc: 4*uint64(len(plain)) + 128<<10},
		{name: "trailer overstates, bounded by the limit", body: lying, ok: false, maxAlloc: limit + 256<<10},
		{name: "trailer overstates, bounded by deflate", body: tiny, ok: false, maxAlloc: uint64(len(tiny))*maxDeflateRatio + 128<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p codecPools
			if err := p.init(); err != nil {
				t.Fatal(err)
			}
			var out []byte
			var got []byte
			var err error
			alloc := allocatedBy(func() { out = nil; got, err = p.decompress(encGzip, tt.body, &out, limit) })
			if tt.ok && (err != nil || !bytes.Equal(got, plain)) {
				t.Fatalf("decoded %d bytes, %v; want %d bytes", len(got), err, len(plain))
			}
			if !tt.ok && err == nil {
				t.Fatal("a body with a wrong trailer decoded")
			}
			if alloc > tt.maxAlloc {
				t.Errorf("allocated %d bytes decoding %d, want at most %d", alloc, len(plain), tt.maxAlloc)
			}
		})
	}
}

func TestPresize(t *testing.T) {
	tests := []struct {
		name               string
		capacity           int
		hint, limit        int64
		wantCap            int
		wantSameBackingArr bool
	}{
		{"no hint keeps the buffer", 100, 0, 1000, 100, true},
		{"room enough keeps the buffer", 100, 50, 1000, 100, true},
		{"exact fit plus the end", 51, 50, 1000, 51, true},
		{"grows to the hint", 10, 50, 1000, 51, false},
		{"never past the limit", 10, 5000, 1000, 1001, false},
	}
	for _, tt := range tests {
		buf := make([]byte, 3, tt.capacity)
		got := presize(buf, tt.hint, tt.limit)
		same := cap(got) > 0 && &got[:1][0] == &buf[:1][0]
		if len(got) != 0 || cap(got) != tt.wantCap || same != tt.wantSameBackingArr {
			t.Errorf("%s: len %d cap %d same %v, want 0, %d, %v", tt.name, len(got), cap(got), same, tt.wantCap, tt.wantSameBackingArr)
		}
	}
}

// TestReadLimitedAtTheEdge: exactly the limit is read; one byte more is
// refused however the reader hands it over, with its last bytes and
// io.EOF together included.
func TestReadLimitedAtTheEdge(t *testing.T) {
	const limit = 1000
	readers := map[string]func([]byte) io.Reader{
		"plain":         func(b []byte) io.Reader { return bytes.NewReader(b) },
		"data with EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"byte by byte":  func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	}
	for name, reader := range readers {
		for _, n := range []int{limit - 1, limit, limit + 1, 3 * limit} {
			buf, err := readLimited(reader(bytes.Repeat([]byte{'x'}, n)), nil, limit)
			switch {
			case n > limit && !errors.Is(err, errOverLimit):
				t.Errorf("%s, %d bytes: err %v, want over the limit", name, n, err)
			case n <= limit && (err != nil || len(buf) != n):
				t.Errorf("%s, %d bytes: read %d, err %v; want all of it", name, n, len(buf), err)
			}
		}
	}
}
