package ingest

import (
	"bytes"
	"syscall"
	"testing"
	"time"
)

// benchmarkDecode decodes one 1,000-event body per iteration. MB/s counts
// the decoded JSON; events/s is the headline figure.
func benchmarkDecode(b *testing.B, enc string, frame func([][]byte) []byte) {
	benchmarkDecodeEvents(b, enc, frame, fleetEvents, false)
}

// benchmarkDecodeEvents decodes a body of 1,000 events; inPlace hands it
// over as Request.BodyBytes, as the server does, instead of as a reader.
func benchmarkDecodeEvents(b *testing.B, enc string, frame func([][]byte) []byte, events func(testing.TB, int) [][]byte, inPlace bool) {
	const n = 1000
	d := newTestDecoder(b, nil)
	plain := frame(events(b, n))
	body := compress(b, enc, plain)
	received := time.Now()
	var r bytes.Reader
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		req := Request{BodyBytes: body, ContentEncoding: enc, Received: received}
		if !inPlace {
			r.Reset(body)
			req = Request{Body: &r, ContentEncoding: enc, Received: received}
		}
		dec, err := d.Decode(req)
		if err != nil {
			b.Fatal(err)
		}
		if len(dec.Batch.Results) != n {
			b.Fatalf("decoded %d results, want %d", len(dec.Batch.Results), n)
		}
		dec.Release()
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	// CPU time, garbage collection included, holds up better than wall
	// time on a shared machine, where the benchmark waits for a core.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N*n), "cpu-ns/event")
	b.ReportMetric(float64(len(body))/float64(n), "wire-B/event")
}

// BenchmarkDecodeGzipJSONArray1000 is the shape Vector's http sink sends
// by default with compression gzip: a JSON array of 1,000 events.
func BenchmarkDecodeGzipJSONArray1000(b *testing.B) { benchmarkDecode(b, "gzip", vectorArray) }

// BenchmarkDecodeZstdNDJSON1000 is framing newline_delimited with zstd.
func BenchmarkDecodeZstdNDJSON1000(b *testing.B) { benchmarkDecode(b, "zstd", vectorNDJSON) }

// BenchmarkDecodeJSONArray1000 is the uncompressed JSON array: the cost
// of the decoder itself.
func BenchmarkDecodeJSONArray1000(b *testing.B) { benchmarkDecode(b, "", vectorArray) }

// BenchmarkDecodeGzipPipeline1000 is what Vector sends with the project's
// own pipeline (vector/healthrouter.yaml): a gzip JSON array of 1,000
// exec-sourced events, each with a fresh UUID event_id and interval,
// handed over already read as the server does.
func BenchmarkDecodeGzipPipeline1000(b *testing.B) {
	benchmarkDecodeEvents(b, "gzip", vectorArray, pipelineEvents, true)
}

// BenchmarkDecodePipeline1000 is the same body uncompressed: the decoder's
// own share of the pipeline shape's cost.
func BenchmarkDecodePipeline1000(b *testing.B) {
	benchmarkDecodeEvents(b, "", vectorArray, pipelineEvents, true)
}

// processCPU is the user and system CPU time this process has used, in
// nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
