package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/healthrouter/healthrouter/pkg/replay"
)

// TestTruncatedInput: a compressed recording cut short replays the events
// before the cut, returns their summary, and says after which event the
// input ended, small files (one chunk) included.
func TestTruncatedInput(t *testing.T) {
	plain := gunzip(t, readFile(t, filepath.Join(scenarioDir, "01-cpu-steal.ndjson.gz")))
	small := plain[:bytes.IndexByte(plain[4000:], '\n')+4001]
	for _, tc := range []struct {
		name     string
		plain    []byte
		compress func(testing.TB, []byte) []byte
		keep     float64 // share of the compressed bytes kept
	}{
		{"gzip cut in half", plain, gzipBytes, 0.5},
		{"gzip cut in its trailer", plain, gzipBytes, -4},
		{"zstd cut in half", plain, zstdBytes, 0.5},
		// A file still being written: flushed line by line.
		{"small gzip cut in half", small, gzipLines, 0.5},
		{"small zstd cut in half", small, zstdLines, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := tc.compress(t, tc.plain)
			cut := len(full) + int(tc.keep) // negative: bytes off the end
			if tc.keep > 0 {
				cut = int(float64(len(full)) * tc.keep)
			}
			// What can be decompressed before the cut, whole lines only.
			got := decompressPrefix(t, full[:cut])
			whole := got[:bytes.LastIndexByte(got, '\n')+1]
			lines := bytes.Count(whole, []byte("\n"))
			if lines == 0 {
				t.Fatalf("the cut leaves no whole line")
			}

			r, err := replay.New(replay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sum, err := r.Run(context.Background(), bytes.NewReader(full[:cut]))
			var trunc *replay.TruncatedError
			if !errors.As(err, &trunc) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v, want a TruncatedError", err)
			}
			if trunc.Events != lines {
				t.Errorf("truncated after event %d, want %d", trunc.Events, lines)
			}
			want := run(t, replay.Options{}, bytes.NewReader(whole))
			if sum == nil || sum.Events != want.Events || sum.RawFailing != want.RawFailing ||
				sum.DirectPages != want.DirectPages || sum.Pages != want.Pages || sum.Rejected != 0 {
				t.Errorf("summary %+v, want that of the %d whole lines: %+v", sum, lines, want)
			}
		})
	}
}

// TestReadErrorNumbersTheEvent: a read failure that is not a truncation
// aborts with no summary, numbering the first event it lost.
func TestReadErrorNumbersTheEvent(t *testing.T) {
	in := io.MultiReader(bytes.NewReader([]byte(
		`{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:00Z"}`+"\n"+
			`{"region":"r1","host":"a","check":"disk","status":"ok","timestamp":"2026-03-02T08:00:30Z"}`+"\n"+
			`{"region":"r1","host":"a","check"`)), errReader{errors.New("disk read error")})
	r, err := replay.New(replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background(), in)
	if sum != nil || err == nil || err.Error() != "replay: event 3: read: disk read error" {
		t.Errorf("summary %v, error %v; want none and the failure at event 3", sum, err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type flushWriter interface {
	io.WriteCloser
	Flush() error
}

func gzipBytes(t testing.TB, b []byte) []byte { return compress(t, b, newGzip, false) }
func gzipLines(t testing.TB, b []byte) []byte { return compress(t, b, newGzip, true) }
func zstdBytes(t testing.TB, b []byte) []byte { return compress(t, b, newZstd, false) }
func zstdLines(t testing.TB, b []byte) []byte { return compress(t, b, newZstd, true) }

func newGzip(w io.Writer) (flushWriter, error) { return gzip.NewWriter(w), nil }
func newZstd(w io.Writer) (flushWriter, error) { return zstd.NewWriter(w) }

// compress compresses b, flushing after each line when lines is set.
func compress(t testing.TB, b []byte, newWriter func(io.Writer) (flushWriter, error), lines bool) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := newWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{b}
	if lines {
		parts = bytes.SplitAfter(b, []byte("\n"))
	}
	for _, p := range parts {
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		if lines {
			if err := zw.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// decompressPrefix decompresses what it can of a cut gzip or zstd stream.
func decompressPrefix(t testing.TB, b []byte) []byte {
	var zr io.Reader
	if b[0] == 0x1f {
		gr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		zr = gr
	} else {
		dr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer dr.Close()
		zr = dr
	}
	out, err := io.ReadAll(zr)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("decompressing the cut stream: %v, want unexpected EOF", err)
	}
	return out
}
