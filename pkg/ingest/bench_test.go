package ingest

import (
	"bytes"
	"testing"
	"time"
)

// benchmarkDecode decodes one 1,000-event body per iteration. MB/s counts
// the decoded JSON; events/s is the headline figure.
func benchmarkDecode(b *testing.B, enc string, frame func([][]byte) []byte) {
	const n = 1000
	d := newTestDecoder(b, nil)
	plain := frame(fleetEvents(b, n))
	body := compress(b, enc, plain)
	received := time.Now()
	var r bytes.Reader
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Reset(body)
		dec, err := d.Decode(Request{Body: &r, ContentEncoding: enc, Received: received})
		if err != nil {
			b.Fatal(err)
		}
		if len(dec.Batch.Results) != n {
			b.Fatalf("decoded %d results, want %d", len(dec.Batch.Results), n)
		}
		dec.Release()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeGzipJSONArray1000 is the shape Vector's http sink sends
// by default with compression gzip: a JSON array of 1,000 events.
func BenchmarkDecodeGzipJSONArray1000(b *testing.B) { benchmarkDecode(b, "gzip", vectorArray) }

// BenchmarkDecodeZstdNDJSON1000 is framing newline_delimited with zstd.
func BenchmarkDecodeZstdNDJSON1000(b *testing.B) { benchmarkDecode(b, "zstd", vectorNDJSON) }

// BenchmarkDecodeJSONArray1000 is the uncompressed JSON array: the cost
// of the decoder itself.
func BenchmarkDecodeJSONArray1000(b *testing.B) { benchmarkDecode(b, "", vectorArray) }
