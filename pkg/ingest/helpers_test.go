package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// testConfig is the default ingest configuration the tests start from.
func testConfig() config.Ingest {
	return config.Default().Ingest
}

func newTestDecoder(t testing.TB, mutate func(*config.Ingest)) *Decoder {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := NewDecoder(cfg)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

// vectorJSON renders v as Vector's json codec does: object keys sorted,
// compact, no HTML escaping, no trailing newline.
func vectorJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding event: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// vectorArray frames events as the http sink's default json framing does.
func vectorArray(events [][]byte) []byte {
	return append(append([]byte("["), bytes.Join(events, []byte(","))...), ']')
}

// vectorNDJSON frames events as framing.method newline_delimited does: no
// trailing newline.
func vectorNDJSON(events [][]byte) []byte {
	return bytes.Join(events, []byte("\n"))
}

// compress encodes body as Vector's compression option named by
// Content-Encoding value enc.
func compress(t testing.TB, enc string, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch enc {
	case "", "identity":
		return body
	case "gzip":
		zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, zw, body)
	case "deflate":
		zw, err := zlib.NewWriterLevel(&buf, zlib.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, zw, body)
	case "zstd":
		// Vector's zstd (libzstd level 3, streaming) uses a 2 MiB window.
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(2<<20))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, zw, body)
	case "snappy":
		return snappy.Encode(nil, body)
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	return buf.Bytes()
}

type writeCloser interface {
	Write([]byte) (int, error)
	Close() error
}

func mustWrite(t testing.TB, w writeCloser, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

var benchEpoch = time.Date(2026, 8, 21, 10, 0, 0, 0, time.UTC)

// fleetEvents makes n Vector-shaped events from the exec pipeline: sorted
// keys check, host, output, region, source_type, status, timestamp with 9
// fractional digits; every 50th event fails (2%).
func fleetEvents(t testing.TB, n int) [][]byte {
	t.Helper()
	regions := []string{"eu-west-1", "us-east-1", "ap-south-1", "sa-east-1", "eu-north-1"}
	checks := []string{"disk_root", "disk_var", "load", "memory", "ntp_offset", "tcp_ssh", "dns_resolve",
		"raid_state", "lvm_thin_pool", "systemd_failed"}
	events := make([][]byte, n)
	for i := range events {
		region := regions[i%len(regions)]
		check := checks[i%len(checks)]
		status, output := "passing", fmt.Sprintf("OK - %s within thresholds (%d%% used)", check, 20+i%50)
		if i%50 == 49 {
			status, output = "critical", fmt.Sprintf("CRITICAL - %s: /var is 97%% full (threshold 90%%)", check)
		}
		ts := benchEpoch.Add(time.Duration(i)*time.Second + time.Duration(123456789+i)).Format("2006-01-02T15:04:05.000000000Z")
		events[i] = vectorJSON(t, map[string]any{
			"check":       check,
			"host":        fmt.Sprintf("web-%05d.%s.example.net", i/len(checks), region),
			"output":      output,
			"region":      region,
			"source_type": "exec",
			"status":      status,
			"timestamp":   ts,
		})
	}
	return events
}

// pipelineEvents makes n events as vector/healthrouter.yaml's remap emits
// them for exec-sourced checks: fleetEvents' fields plus a random UUID v4
// event_id and interval 60, keys sorted. The ids come from a fixed seed.
func pipelineEvents(t testing.TB, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	events := fleetEvents(t, n)
	for i, e := range events {
		var m map[string]any
		if err := json.Unmarshal(e, &m); err != nil {
			t.Fatal(err)
		}
		var u [16]byte
		binary.LittleEndian.PutUint64(u[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(u[8:], rng.Uint64())
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		h := hex.EncodeToString(u[:])
		m["event_id"] = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		m["interval"] = 60
		events[i] = vectorJSON(t, m)
	}
	return events
}
