package loadgen

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

var testTime = time.Date(2026, 8, 21, 10, 0, 0, 123456789, time.UTC)

// TestEncodeDecodesAsVectorEvents feeds every encoded batch to the real
// ingest decoder: what the generator sends must be what healthrouter
// reads, event for event.
func TestEncodeDecodesAsVectorEvents(t *testing.T) {
	cases := []struct {
		name        string
		framing     Framing
		compression Compression
		shape       Shape
		shuffle     bool
		passes      int
	}{
		{"gzip json array", JSONArray, Gzip, Pipeline, false, DefaultIDPasses},
		{"zstd ndjson", NDJSON, Zstd, Pipeline, false, DefaultIDPasses},
		{"uncompressed json array", JSONArray, None, Pipeline, false, DefaultIDPasses},
		{"gzip ndjson shuffled", NDJSON, Gzip, Pipeline, true, DefaultIDPasses},
		{"gzip json array lean", JSONArray, Gzip, Lean, false, 1},
	}
	dec, err := ingest.NewDecoder(config.Default().Ingest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := Workload{Checks: 2500, PerHost: 10, Regions: 3, Failing: 0.02, BatchEvents: 1000,
				Framing: tc.framing, Compression: tc.compression, Shape: tc.shape, Shuffle: tc.shuffle, Time: testTime, Seed: 7}
			enc, err := w.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if enc.Passes != tc.passes || enc.PassBatches() != 3 || len(enc.Batches) != 3*tc.passes || enc.Batches[2].Events != 500 {
				t.Fatalf("got %d passes of %d batches (%d in all), the third of %d events; want %d passes of 3, the third of 500",
					enc.Passes, enc.PassBatches(), len(enc.Batches), enc.Batches[2].Events, tc.passes)
			}
			if enc.Hosts != 250 || enc.Failing != 50 || enc.Events() != 2500 {
				t.Fatalf("hosts %d, failing %d, events %d; want 250, 50, 2500", enc.Hosts, enc.Failing, enc.Events())
			}
			ids := map[string]bool{}
			for pass := 0; pass < enc.Passes; pass++ {
				keys := map[string]bool{}
				regions := map[string]bool{}
				failing := 0
				for i, b := range enc.Batches[pass*3 : pass*3+3] {
					d, err := dec.Decode(ingest.Request{Body: bytes.NewReader(b.Body), ContentEncoding: string(tc.compression), Received: testTime.Add(time.Minute)})
					if err != nil {
						t.Fatalf("pass %d batch %d: %v", pass, i, err)
					}
					if len(d.Rejected) > 0 {
						t.Fatalf("pass %d batch %d: rejected %+v", pass, i, d.Rejected[0])
					}
					if len(d.Batch.Results) != b.Events {
						t.Fatalf("pass %d batch %d: decoded %d results, want %d", pass, i, len(d.Batch.Results), b.Events)
					}
					batchFailing := 0
					for _, r := range d.Batch.Results {
						keys[string(r.Region)+"/"+string(r.Host)+"/"+string(r.Check)] = true
						regions[string(r.Region)] = true
						if r.Status == health.Critical {
							batchFailing++
						} else if r.Status != health.Passing {
							t.Fatalf("status %v", r.Status)
						}
						if got := time.Unix(0, r.Time); got.Before(testTime) || got.After(testTime.Add(time.Second)) {
							t.Fatalf("timestamp %v, want just after %v", got, testTime)
						}
						switch {
						case tc.shape == Lean && (r.EventID != nil || r.Interval != 0):
							t.Fatalf("lean event with event_id %q, interval %v", r.EventID, r.Interval)
						case tc.shape == Pipeline && r.Interval != execInterval:
							t.Fatalf("interval %v, want %ds", r.Interval, execInterval)
						case tc.shape == Pipeline && ids[string(r.EventID)]:
							t.Fatalf("event_id %q sent twice", r.EventID)
						}
						ids[string(r.EventID)] = true
					}
					if batchFailing != b.Failing {
						t.Fatalf("pass %d batch %d: %d failing decoded, %d counted", pass, i, batchFailing, b.Failing)
					}
					failing += batchFailing
					d.Release()
				}
				if len(keys) != 2500 || len(regions) != 3 || failing != 50 {
					t.Fatalf("pass %d: %d distinct checks in %d regions, %d failing; want 2500 in 3, 50", pass, len(keys), len(regions), failing)
				}
			}
		})
	}
}

var uuidV4Pattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestEventShape: keys sorted and compact as Vector's json codec writes
// them, framed as its http sink frames them; the pipeline shape has the
// fields of an exec-sourced event in testdata/vector/events.json, the body
// vector/healthrouter.yaml's remap produces.
func TestEventShape(t *testing.T) {
	fixture, err := os.ReadFile("../../testdata/vector/events.json")
	if err != nil {
		t.Fatal(err)
	}
	var pipelineEvents []map[string]any
	if err := json.Unmarshal(fixture, &pipelineEvents); err != nil {
		t.Fatal(err)
	}
	// The fixture's first event is a passing exec result, as generated.
	wantKeys := slices.Sorted(maps.Keys(pipelineEvents[0]))
	if pipelineEvents[0]["source_type"] != "exec" {
		t.Fatalf("fixture's first event is not from the exec source: %v", pipelineEvents[0])
	}
	cases := []struct {
		shape Shape
		first *regexp.Regexp
		keys  []string
	}{
		{Pipeline, regexp.MustCompile(`^\{"check":"disk_root","event_id":"([0-9a-f-]{36})","host":"web-000000\.eu-west-1\.example\.net",` +
			`"interval":60,"output":"OK - disk_root within thresholds \(\d+% used\)","region":"eu-west-1","source_type":"exec",` +
			`"status":"passing","timestamp":"2026-08-21T10:00:00\.123456789Z"\}$`), wantKeys},
		{Lean, regexp.MustCompile(`^\{"check":"disk_root","host":"web-000000\.eu-west-1\.example\.net",` +
			`"output":"OK - disk_root within thresholds \(\d+% used\)","region":"eu-west-1",` +
			`"status":"passing","timestamp":"2026-08-21T10:00:00\.123456789Z"\}$`),
			[]string{"check", "host", "output", "region", "status", "timestamp"}},
	}
	for _, tc := range cases {
		for _, framing := range []Framing{JSONArray, NDJSON} {
			t.Run(tc.shape.String()+" "+framing.String(), func(t *testing.T) {
				w := Workload{Checks: 3, PerHost: 3, Regions: 1, BatchEvents: 3, Framing: framing, Shape: tc.shape, Time: testTime}
				enc, err := w.Encode()
				if err != nil {
					t.Fatal(err)
				}
				body := string(enc.Batches[0].Body)
				var events []string
				switch framing {
				case JSONArray:
					if !strings.HasPrefix(body, "[{") || !strings.HasSuffix(body, "}]") {
						t.Fatalf("json array body:\n%s", body)
					}
					events = strings.Split(body[1:len(body)-1], "},{")
					for i := range events[:len(events)-1] {
						events[i] += "}"
						events[i+1] = "{" + events[i+1]
					}
				case NDJSON:
					if strings.HasSuffix(body, "\n") {
						t.Fatalf("ndjson body with a trailing newline:\n%q", body)
					}
					events = strings.Split(body, "\n")
				}
				if len(events) != 3 {
					t.Fatalf("%d events in %q", len(events), body)
				}
				m := tc.first.FindStringSubmatch(events[0])
				if m == nil {
					t.Fatalf("first event:\n%s", events[0])
				}
				if tc.shape == Pipeline && !uuidV4Pattern.MatchString(m[1]) {
					t.Fatalf("event_id %q is not a UUID v4", m[1])
				}
				for _, e := range events {
					var fields map[string]any
					if err := json.Unmarshal([]byte(e), &fields); err != nil {
						t.Fatal(err)
					}
					if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, tc.keys) {
						t.Fatalf("keys %v, want %v", got, tc.keys)
					}
				}
			})
		}
	}
}

func TestUUIDV4(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 1000 {
		u := uuidV4(rng)
		if !uuidV4Pattern.MatchString(u) || seen[u] {
			t.Fatalf("uuid %q: not a v4 UUID, or a repeat", u)
		}
		seen[u] = true
	}
}

func TestAlertmanagerAlerts(t *testing.T) {
	w := Workload{Sink: Alertmanager, Checks: 100, PerHost: 10, Regions: 2, Failing: 0.1, BatchEvents: 100, Time: testTime}
	enc, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var alerts []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	}
	if err := json.Unmarshal(enc.Batches[0].Body, &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 100 {
		t.Fatalf("%d alerts", len(alerts))
	}
	firing := 0
	for _, a := range alerts {
		for _, l := range []string{"alertname", "region", "host", "check", "severity"} {
			if a.Labels[l] == "" {
				t.Fatalf("alert without %s: %+v", l, a.Labels)
			}
		}
		if a.EndsAt.After(a.StartsAt) {
			firing++
			if !strings.HasPrefix(a.Annotations["output"], "CRITICAL") {
				t.Fatalf("firing alert with output %q", a.Annotations["output"])
			}
		} else if !a.EndsAt.Equal(a.StartsAt) {
			t.Fatalf("resolved alert ends %v before it starts %v", a.EndsAt, a.StartsAt)
		}
	}
	if firing != 10 || enc.Failing != 10 {
		t.Fatalf("%d firing alerts, %d counted; want 10", firing, enc.Failing)
	}
}

// TestHostsArriveTogether: by default each host's checks are contiguous,
// as an agent reports them.
func TestHostsArriveTogether(t *testing.T) {
	w := Workload{Checks: 400, PerHost: 4, Regions: 2, BatchEvents: 400, Seed: 3}
	enc, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var events []event
	if err := json.Unmarshal(enc.Batches[0].Body, &events); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range events {
		if i > 0 && events[i-1].Host != e.Host {
			if seen[e.Host] {
				t.Fatalf("host %s comes back at event %d", e.Host, i)
			}
		}
		seen[e.Host] = true
	}
	if events[0].Host == "web-000000.eu-west-1.example.net" && events[4].Host == "web-000000.us-east-1.example.net" {
		t.Fatal("hosts are not shuffled")
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	w := Workload{Checks: 300, BatchEvents: 100, Failing: 0.3, Time: testTime, Seed: 11}
	a, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Batches {
		if !bytes.Equal(a.Batches[i].Body, b.Batches[i].Body) {
			t.Fatalf("batch %d differs between two encodings with one seed", i)
		}
	}
	w.Seed = 12
	c, err := w.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Batches[0].Body, c.Batches[0].Body) {
		t.Fatal("another seed gave the same batch")
	}
}

func TestWorkloadValidate(t *testing.T) {
	ok := Workload{Checks: 10, BatchEvents: 5}
	cases := []struct {
		name   string
		modify func(*Workload)
		want   string
	}{
		{"no checks", func(w *Workload) { w.Checks = 0 }, "checks must be positive"},
		{"failing share over 1", func(w *Workload) { w.Failing = 1.5 }, "failing share"},
		{"negative failing share", func(w *Workload) { w.Failing = -0.1 }, "failing share"},
		{"empty batches", func(w *Workload) { w.BatchEvents = 0 }, "events per batch"},
		{"negative regions", func(w *Workload) { w.Regions = -1 }, "must not be negative"},
		{"compressed alerts", func(w *Workload) { w.Sink, w.Compression = Alertmanager, Gzip }, "uncompressed JSON array"},
		{"ndjson alerts", func(w *Workload) { w.Sink, w.Framing = Alertmanager, NDJSON }, "uncompressed JSON array"},
		{"negative id passes", func(w *Workload) { w.IDPasses = -1 }, "must not be negative"},
		{"one id pass with event_ids", func(w *Workload) { w.IDPasses = 1 }, "repeat every event_id"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid workload: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := ok
			tc.modify(&w)
			err := w.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
			if _, err := w.Encode(); err == nil {
				t.Fatal("Encode accepted an invalid workload")
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	for in, want := range map[string]Framing{"json": JSONArray, "array": JSONArray, "ndjson": NDJSON} {
		if got, err := ParseFraming(in); err != nil || got != want {
			t.Errorf("ParseFraming(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFraming("csv"); err == nil {
		t.Error("ParseFraming accepted csv")
	}
	for in, want := range map[string]Compression{"": None, "none": None, "gzip": Gzip, "zstd": Zstd} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseCompression("brotli"); err == nil {
		t.Error("ParseCompression accepted brotli")
	}
	for in, want := range map[string]Shape{"": Pipeline, "pipeline": Pipeline, "lean": Lean} {
		if got, err := ParseShape(in); err != nil || got != want {
			t.Errorf("ParseShape(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseShape("full"); err == nil {
		t.Error("ParseShape accepted full")
	}
}
