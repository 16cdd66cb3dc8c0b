package ingest

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

var update = flag.Bool("update", false, "rewrite ../../testdata/vector and the FuzzDecode seed corpus")

// goldenDir holds request bodies byte for byte as Vector's http sink sends
// them, for this package's tests and for the server's.
const goldenDir = "../../testdata/vector"

// goldenEvents are log events as the remap transform of
// vector/healthrouter.yaml emits them, in the order Vector batches them.
var goldenEvents = []map[string]any{
	{"check": "disk_root", "event_id": "0b1e6f3c-5d2a-4c1e-9a57-6f0e2d7c4b11", "host": "web-01.eu-west-1.example.net",
		"interval": 60, "output": "OK - / is 41% full", "region": "eu-west-1", "source_type": "exec",
		"status": "passing", "timestamp": "2026-08-21T10:00:00.123456789Z"},
	{"check": "load", "event_id": "5c7d2e1a-08f4-4b3e-b6a9-1d2c3e4f5a60", "host": "web-01.eu-west-1.example.net",
		"interval": 60, "output": "WARNING - load 7.9 over 4 cores\n\"15m\" average 6.2", "region": "eu-west-1",
		"severity": "warning", "source_type": "exec", "status": "warning", "timestamp": "2026-08-21T10:00:00.123501234Z"},
	{"check": "tcp_ssh", "event_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "host": "db-03.eu-west-1.example.net",
		"interval": 60, "output": "CRITICAL - connect 10.0.4.17:22: timed out after 2s", "region": "eu-west-1",
		"source_type": "exec", "status": "critical", "team": "platform", "timestamp": "2026-08-21T10:00:00.987650Z"},
	{"check": "raid_state", "event_id": "raid-db-03-1787306401", "host": "db-03.eu-west-1.example.net",
		"labels": map[string]any{"rack": "r12", "service": "md0"}, "output": "md0 degraded: 1 of 4 disks failed",
		"region": "eu-west-1", "severity": "critical", "source_type": "http_server", "status": "critical",
		"team": "storage", "timestamp": "2026-08-21T10:00:01.500Z"},
	{"check": "ntp_offset", "event_id": "c3d4e5f6-a7b8-49c0-8d1e-2f3a4b5c6d7e", "host": "api-12.us-east-1.example.net",
		"interval": 300, "output": "température du châssis 71°C, offset 12ms", "region": "us-east-1",
		"source_type": "http_server", "status": "ok", "timestamp": "2026-08-21T10:00:02Z"},
	{"check": "disk_root", "event_id": "d1e2f3a4-b5c6-47d8-99ea-fb0c1d2e3f40", "host": "api-12.us-east-1.example.net",
		"interval": 60, "output": "OK - / is 12% full", "region": "us-east-1", "source_type": "exec",
		"status": "passing", "timestamp": "2026-08-21T10:00:02.000001Z"},
}

// goldenMetrics are Vector metric events as its json codec writes them:
// struct field order (name, namespace, tags, timestamp, kind, value), f64
// values with a decimal point. The last uses metric_tag_values: full.
var goldenMetrics = []string{
	`{"name":"health_check_status","namespace":"healthrouter","tags":{"check":"disk_root","host":"web-01.eu-west-1.example.net","region":"eu-west-1"},"timestamp":"2026-08-21T10:00:00.123456789Z","kind":"absolute","gauge":{"value":0.0}}`,
	`{"name":"health_check_status","namespace":"healthrouter","tags":{"check":"raid_state","host":"db-03.eu-west-1.example.net","region":"eu-west-1","severity":"critical","team":"storage"},"timestamp":"2026-08-21T10:00:01.500Z","kind":"absolute","gauge":{"value":2.0}}`,
	`{"name":"health_check_status","tags":{"check":["ntp_offset"],"host":["api-12.us-east-1.example.net"],"region":["us-east-1"]},"timestamp":"2026-08-21T10:00:02Z","kind":"absolute","gauge":{"value":1.0}}`,
}

type goldenFile struct {
	name, encoding string
	plain          []byte
	vector         string // the Vector sink settings that send this body
}

func goldenFiles(t testing.TB) []goldenFile {
	events := make([][]byte, len(goldenEvents))
	for i, e := range goldenEvents {
		events[i] = vectorJSON(t, e)
	}
	metrics := make([][]byte, len(goldenMetrics))
	for i, m := range goldenMetrics {
		metrics[i] = []byte(m)
	}
	array := vectorArray(events)
	return []goldenFile{
		{"events.json", "", array, "`encoding.codec: json` (default framing: a JSON array), `compression: none`"},
		{"events.ndjson", "", vectorNDJSON(events), "`encoding.codec: json`, `framing.method: newline_delimited` (no trailing newline), `compression: none`"},
		{"events.json.gz", "gzip", array, "`encoding.codec: json`, `compression: gzip` (`Content-Encoding: gzip`), as vector/healthrouter.yaml sends"},
		{"events.json.zz", "deflate", array, "`encoding.codec: json`, `compression: zlib` (`Content-Encoding: deflate`, zlib-wrapped RFC 1950)"},
		{"events.json.zst", "zstd", array, "`encoding.codec: json`, `compression: zstd` (`Content-Encoding: zstd`)"},
		{"events.json.snappy", "snappy", array, "`encoding.codec: json`, `compression: snappy` (`Content-Encoding: snappy`, raw block format)"},
		{"event.json", "", events[0], "`encoding.codec: json`, `framing.method: newline_delimited`, `batch.max_events: 1`: one object, no newline"},
		{"metrics.json", "", vectorArray(metrics), "metric events (e.g. from a `log_to_metric` transform, gauge `health_check_status`), `encoding.codec: json`, `compression: none`; the last event as with `metric_tag_values: full`"},
	}
}

// goldenConfig is the configuration the golden bodies are decoded with.
func goldenConfig(c *config.Ingest) { c.Labels = []string{"service", "rack"} }

// TestGolden decodes every body in testdata/vector and checks each result
// against the events it was made from. With -update it first rewrites the
// files (go generate runs that).
func TestGolden(t *testing.T) {
	files := goldenFiles(t)
	if *update {
		writeGolden(t, files)
		writeFuzzSeeds(t, files)
	}
	d := newTestDecoder(t, goldenConfig)
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(goldenDir, f.name))
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if plain := decompressForTest(t, f.encoding, body); !bytes.Equal(plain, f.plain) {
				t.Fatalf("%s is out of date with goldenFiles (run go test -run TestGolden -update)", f.name)
			}
			o := mustDecode(t, d, f.encoding, body)
			diff(t, "rejected", o.Rejected, nil)
			var want []res
			switch {
			case f.name == "metrics.json":
				want = expectedMetrics()
			case f.name == "event.json":
				want = expectedEvents(t)[:1]
			default:
				want = expectedEvents(t)
			}
			diff(t, "results", o.Results, want)
		})
	}
}

// expectedEvents derives the results from goldenEvents field by field,
// independently of the decoder.
func expectedEvents(t testing.TB) []res {
	var out []res
	for _, e := range goldenEvents {
		r := res{Region: e["region"].(string), Host: e["host"].(string), Check: e["check"].(string),
			Time: nanos(e["timestamp"].(string)), Output: e["output"].(string), EventID: e["event_id"].(string)}
		st, ok := health.ParseStatus([]byte(e["status"].(string)))
		if !ok {
			t.Fatalf("golden status %v", e["status"])
		}
		r.Status = st
		if s, ok := e["severity"].(string); ok {
			r.Severity, _ = health.ParseSeverity([]byte(s))
		}
		if s, ok := e["team"].(string); ok {
			r.Team = s
		}
		if n, ok := e["interval"].(int); ok {
			r.Interval = int32(n)
		}
		if l, ok := e["labels"].(map[string]any); ok {
			r.Labels = fmt.Sprintf("service=%s,rack=%s", l["service"], l["rack"])
		}
		out = append(out, r)
	}
	return out
}

func expectedMetrics() []res {
	return []res{
		{Region: "eu-west-1", Host: "web-01.eu-west-1.example.net", Check: "disk_root", Status: health.Passing,
			Time: nanos("2026-08-21T10:00:00.123456789Z")},
		{Region: "eu-west-1", Host: "db-03.eu-west-1.example.net", Check: "raid_state", Status: health.Critical,
			Time: nanos("2026-08-21T10:00:01.5Z"), Severity: health.SeverityCritical, Team: "storage"},
		{Region: "us-east-1", Host: "api-12.us-east-1.example.net", Check: "ntp_offset", Status: health.Warning,
			Time: nanos("2026-08-21T10:00:02Z")},
	}
}

// decompressForTest undoes a Content-Encoding with the libraries directly,
// not through the decoder under test.
func decompressForTest(t testing.TB, enc string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch enc {
	case "":
		return body
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(body))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(body))
	case "zstd":
		var zr *zstd.Decoder
		zr, err = zstd.NewReader(bytes.NewReader(body))
		if err == nil {
			defer zr.Close()
		}
		r = zr
	case "snappy":
		var out []byte
		out, err = snappy.Decode(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeGolden(t *testing.T, files []goldenFile) {
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var readme strings.Builder
	readme.WriteString("# Vector request bodies\n\n" +
		"Request bodies for `POST /v1/events` byte for byte as Vector's `http` sink sends them (sorted keys,\n" +
		"compact JSON, no trailing newline), with the sink settings that produce each. They are generated by\n" +
		"`go generate ./pkg/ingest` (`go test -run TestGolden -update`) and decoded by pkg/ingest's tests.\n\n" +
		"| file | Vector `http` sink settings |\n| --- | --- |\n")
	for _, f := range files {
		body := compress(t, f.encoding, f.plain)
		if err := os.WriteFile(filepath.Join(goldenDir, f.name), body, 0o644); err != nil {
			t.Fatal(err)
		}
		readme.WriteString("| `" + f.name + "` | " + f.vector + " |\n")
	}
	if err := os.WriteFile(filepath.Join(goldenDir, "README.md"), []byte(readme.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFuzzSeeds writes FuzzDecode's seed corpus: every golden body, plus
// bodies that reach each framing and rejection path.
func writeFuzzSeeds(t *testing.T, files []goldenFile) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	type seed struct {
		body       []byte
		encoding   string
		compressed bool
	}
	seeds := map[string]seed{}
	for _, f := range files {
		seeds["golden-"+strings.ReplaceAll(f.name, ".", "-")] = seed{compress(t, f.encoding, f.plain), f.encoding, true}
	}
	ev := `{"check":"c","host":"h","region":"r","status":"ok"}`
	for name, body := range map[string]string{
		"broken-element":  `[` + ev + `,{"host":tru},` + ev + `]`,
		"truncated-array": `[` + ev + `,{"check":"c","host":"h`,
		"unbalanced":      `[` + ev + `,{"x":[1,2},` + ev + `]`,
		"ndjson-crlf":     ev + "\r\n\r\n" + ev + "\r\nnot json\r\n",
		"escapes":         `{"host":"web\u002d1","region":"r","check":"c","status":"crit","output":"\ud83d\ude00 \ud800 \"q\"\n"}`,
		"all-fields":      `{"check":"c","event_id":7,"host":"h","interval":"1m","labels":{"rack":1,"service":"s"},"message":"m","region":"r","severity":"warn","status":2,"team":"t","timestamp":1787306400.5}`,
		"metric-unknown":  `{"name":"cpu","kind":"absolute","counter":{"value":1.0},"tags":{"host":"h"}}`,
		"not-objects":     `["a",1,null,true,[],{}]`,
		"junk":            `[` + ev + `] trailing`,
		"deep":            strings.Repeat("[", 80) + strings.Repeat("]", 80),
		"empty":           "",
	} {
		seeds[name] = seed{[]byte(body), "", false}
	}
	seeds["gzip-of-plain"] = seed{[]byte(`[` + ev + `]`), "gzip", false}
	seeds["zstd-of-ndjson"] = seed{[]byte(ev + "\n" + ev), "zstd", false}
	seeds["snappy-lying-header"] = seed{[]byte("\xff\xff\xff\xff\x0f\x00x"), "snappy", true}
	seeds["bad-encoding"] = seed{[]byte(ev), "br", false}
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := seeds[name]
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nstring(%q)\nbool(%v)\n", s.body, s.encoding, s.compressed)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
