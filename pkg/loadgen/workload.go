package loadgen

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Sink is the kind of receiver a workload is encoded for: it decides the
// body, the headers and how a response is read.
type Sink uint8

const (
	// Healthrouter receives health-check events as Vector's http sink
	// sends them to POST /v1/events.
	Healthrouter Sink = iota
	// Alertmanager receives the same results as Alertmanager alerts on
	// POST /api/v2/alerts, as Prometheus sends them: an uncompressed JSON
	// array.
	Alertmanager
)

func (s Sink) String() string {
	if s == Alertmanager {
		return "alertmanager"
	}
	return "healthrouter"
}

// Path is the endpoint the sink is posted to.
func (s Sink) Path() string {
	if s == Alertmanager {
		return "/api/v2/alerts"
	}
	return "/v1/events"
}

// Framing is how events are put together in one body, as Vector's json
// codec frames them.
type Framing uint8

const (
	// JSONArray is the json codec's default framing: [e1,e2,...].
	JSONArray Framing = iota
	// NDJSON is framing.method newline_delimited: e1\ne2 without a
	// trailing newline.
	NDJSON
)

// ParseFraming reads "json" or "ndjson".
func ParseFraming(s string) (Framing, error) {
	switch s {
	case "json", "array":
		return JSONArray, nil
	case "ndjson":
		return NDJSON, nil
	}
	return 0, fmt.Errorf("framing %q: want json or ndjson", s)
}

func (f Framing) String() string {
	if f == NDJSON {
		return "ndjson"
	}
	return "json"
}

// Compression is the body's Content-Encoding, at the levels Vector uses
// by default (gzip 6, zstd 3).
type Compression string

const (
	None Compression = ""
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// ParseCompression reads "none", "gzip" or "zstd".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "zstd":
		return Zstd, nil
	}
	return "", fmt.Errorf("compression %q: want none, gzip or zstd", s)
}

func (c Compression) String() string {
	if c == None {
		return "none"
	}
	return string(c)
}

// Shape is which fields an event carries.
type Shape uint8

const (
	// Pipeline is what vector/healthrouter.yaml's remap emits for a check
	// run by the exec source: check, event_id (a fresh UUID v4 on every
	// result), host, interval, output, region, source_type, status and
	// timestamp. Empty labels and absent severity and team are compacted
	// away, as the remap does.
	Pipeline Shape = iota
	// Lean is the identity, status and output alone: check, host, output,
	// region, status, timestamp. No event_id, so nothing to deduplicate.
	Lean
)

// ParseShape reads "pipeline" or "lean".
func ParseShape(s string) (Shape, error) {
	switch s {
	case "", "pipeline":
		return Pipeline, nil
	case "lean":
		return Lean, nil
	}
	return 0, fmt.Errorf("shape %q: want pipeline or lean", s)
}

func (s Shape) String() string {
	if s == Lean {
		return "lean"
	}
	return "pipeline"
}

// DefaultIDPasses is how many passes a pipeline-shaped workload encodes
// when Workload.IDPasses is zero.
const DefaultIDPasses = 4

// execInterval is the interval the remap sets for exec-sourced checks.
const execInterval = 60

// Workload is the traffic a run replays: a fleet of distinct checks, a
// share of them failing, cut into batches the way a Vector aggregator
// forwards them.
type Workload struct {
	Sink        Sink
	Checks      int     // distinct (region, host, check) keys
	PerHost     int     // checks per host; default 10
	Regions     int     // default 10
	Failing     float64 // share of checks reporting critical, 0..1
	BatchEvents int     // events per request
	Framing     Framing
	Compression Compression
	// Shape is the events' fields; the zero value is the pipeline's.
	Shape Shape
	// IDPasses is how many passes over the fleet are encoded, each with
	// fresh event_ids; the generator cycles through them. Compressing a
	// pass costs more CPU than the receiver spends on it, so passes cannot
	// be encoded while sending: an id comes back every IDPasses passes.
	// The receiver deduplicates a check's result against its last
	// event_id, so any value from 2 up makes every replayed result new to
	// it, as Vector's fresh UUIDs are. Zero means DefaultIDPasses for the
	// pipeline shape and 1 for the lean shape and Alertmanager, which
	// carry no event_id.
	IDPasses int
	// Shuffle spreads every event at random over the batches; by default
	// hosts come in random order but each host's checks arrive together,
	// as when an agent reports a host at once.
	Shuffle bool
	// Time is the events' timestamp (each event adds its index in the
	// batch in microseconds); zero means one second before Encode.
	Time time.Time
	Seed uint64
}

// Validate reports the first field out of range.
func (w *Workload) Validate() error {
	switch {
	case w.Checks <= 0:
		return errors.New("checks must be positive")
	case w.PerHost < 0 || w.Regions < 0:
		return errors.New("checks per host and regions must not be negative")
	case w.Failing < 0 || w.Failing > 1:
		return fmt.Errorf("failing share %v: want 0..1", w.Failing)
	case w.BatchEvents <= 0:
		return errors.New("events per batch must be positive")
	case w.IDPasses < 0:
		return errors.New("id passes must not be negative")
	case w.IDPasses == 1 && w.hasEventIDs():
		return errors.New("one id pass would repeat every event_id on the next pass: want 2 or more")
	case w.Sink == Alertmanager && (w.Compression != None || w.Framing != JSONArray):
		return errors.New("alertmanager takes an uncompressed JSON array")
	}
	return nil
}

// Batch is one pre-encoded request body.
type Batch struct {
	Body    []byte
	Events  int
	Failing int // events reporting critical
	Plain   int // size before compression
}

// Encoded is a workload ready to send.
type Encoded struct {
	Workload Workload
	// Batches holds Passes passes over the fleet, one after the other:
	// the same checks in the same order, each pass with its own
	// event_ids.
	Batches []Batch
	Passes  int
	Hosts   int
	Failing int // failing checks
}

// PassBatches is the number of batches in one pass over the fleet.
func (e *Encoded) PassBatches() int {
	if e.Passes <= 1 {
		return len(e.Batches)
	}
	return len(e.Batches) / e.Passes
}

// Bytes is the size of one pass's bodies as sent.
func (e *Encoded) Bytes() int {
	n := 0
	for i := range e.Batches[:e.PassBatches()] {
		n += len(e.Batches[i].Body)
	}
	return n
}

// Events is the number of events in one pass over the fleet.
func (e *Encoded) Events() int {
	n := 0
	for i := range e.Batches[:e.PassBatches()] {
		n += e.Batches[i].Events
	}
	return n
}

// hasEventIDs reports whether the events carry an event_id.
func (w *Workload) hasEventIDs() bool {
	return w.Sink == Healthrouter && w.Shape == Pipeline
}

// idPasses is IDPasses with its default.
func (w *Workload) idPasses() int {
	switch {
	case w.IDPasses > 0:
		return w.IDPasses
	case w.hasEventIDs():
		return DefaultIDPasses
	}
	return 1
}

// Names that look like a fleet's: the first ten check names and regions
// are real-world ones, more get a numeric suffix.
var (
	checkNames  = []string{"disk_root", "disk_var", "load", "memory", "ntp_offset", "tcp_ssh", "dns_resolve", "raid_state", "lvm_thin_pool", "systemd_failed"}
	regionNames = []string{"eu-west-1", "us-east-1", "ap-south-1", "sa-east-1", "eu-north-1", "us-west-2", "ap-northeast-1", "eu-central-1", "ca-central-1", "af-south-1"}
)

func nameAt(names []string, i int) string {
	if i < len(names) {
		return names[i]
	}
	return names[i%len(names)] + "-" + strconv.Itoa(i/len(names))
}

// key is one check of the fleet. used is the figure its output reports,
// fixed per check so a steady pass repeats the check's result.
type key struct {
	region, host, check string
	used                int
	failing             bool
}

// fleet lays the checks out host by host: hosts are spread round-robin
// over the regions, each runs PerHost checks.
func (w *Workload) fleet(rng *rand.Rand) ([]key, int) {
	perHost, regions := w.PerHost, w.Regions
	if perHost == 0 {
		perHost = 10
	}
	if regions == 0 {
		regions = 10
	}
	hosts := (w.Checks + perHost - 1) / perHost
	keys := make([]key, 0, w.Checks)
	for h := 0; h < hosts && len(keys) < w.Checks; h++ {
		region := nameAt(regionNames, h%regions)
		host := fmt.Sprintf("web-%06d.%s.example.net", h/regions, region)
		for c := 0; c < perHost && len(keys) < w.Checks; c++ {
			keys = append(keys, key{region: region, host: host, check: nameAt(checkNames, c), used: 5 + rng.IntN(80)})
		}
	}
	// Exactly the share asked for fails, spread at random.
	failing := int(w.Failing*float64(len(keys)) + 0.5)
	for _, i := range rng.Perm(len(keys))[:failing] {
		keys[i].failing = true
	}
	return keys, hosts
}

// order is the sequence in which the keys are sent.
func (w *Workload) order(keys []key, rng *rand.Rand) []int {
	if w.Shuffle {
		return rng.Perm(len(keys))
	}
	var runs [][2]int // [start, end) of each host's checks
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j].host == keys[i].host {
			j++
		}
		runs = append(runs, [2]int{i, j})
		i = j
	}
	rng.Shuffle(len(runs), func(a, b int) { runs[a], runs[b] = runs[b], runs[a] })
	order := make([]int, 0, len(keys))
	for _, r := range runs {
		for i := r[0]; i < r[1]; i++ {
			order = append(order, i)
		}
	}
	return order
}

// Encode renders and compresses every batch of IDPasses passes over the
// fleet.
func (w Workload) Encode() (*Encoded, error) {
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	if w.Time.IsZero() {
		w.Time = time.Now().Add(-time.Second).UTC()
	}
	rng := rand.New(rand.NewPCG(w.Seed, w.Seed^0x9e3779b97f4a7c15))
	keys, hosts := w.fleet(rng)
	order := w.order(keys, rng)
	enc := &Encoded{Workload: w, Hosts: hosts, Passes: w.idPasses()}
	comp, err := newCompressor(w.Compression)
	if err != nil {
		return nil, err
	}
	var plain bytes.Buffer
	for pass := 0; pass < enc.Passes; pass++ {
		for start := 0; start < len(order); start += w.BatchEvents {
			end := min(start+w.BatchEvents, len(order))
			plain.Reset()
			b := Batch{Events: end - start}
			if w.Framing == JSONArray {
				plain.WriteByte('[')
			}
			for i, k := range order[start:end] {
				if i > 0 {
					if w.Framing == JSONArray {
						plain.WriteByte(',')
					} else {
						plain.WriteByte('\n')
					}
				}
				key := &keys[k]
				if key.failing {
					b.Failing++
				}
				ts := w.Time.Add(time.Duration(i) * time.Microsecond)
				if err := w.render(&plain, key, ts, rng); err != nil {
					return nil, err
				}
			}
			if w.Framing == JSONArray {
				plain.WriteByte(']')
			}
			b.Plain = plain.Len()
			if b.Body, err = comp(plain.Bytes()); err != nil {
				return nil, fmt.Errorf("compress batch: %w", err)
			}
			if pass == 0 {
				enc.Failing += b.Failing
			}
			enc.Batches = append(enc.Batches, b)
		}
	}
	return enc, nil
}

// event is a health-check event as Vector's json codec writes it: keys
// sorted, compact. The lean shape leaves the omitempty fields out.
type event struct {
	Check      string `json:"check"`
	EventID    string `json:"event_id,omitempty"`
	Host       string `json:"host"`
	Interval   int    `json:"interval,omitempty"`
	Output     string `json:"output"`
	Region     string `json:"region"`
	SourceType string `json:"source_type,omitempty"`
	Status     string `json:"status"`
	Timestamp  string `json:"timestamp"`
}

// alert is the same result as Prometheus would post it to Alertmanager.
type alert struct {
	Labels      alertLabels       `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    string            `json:"startsAt"`
	EndsAt      string            `json:"endsAt"`
}

type alertLabels struct {
	Alertname string `json:"alertname"`
	Check     string `json:"check"`
	Host      string `json:"host"`
	Region    string `json:"region"`
	Severity  string `json:"severity"`
}

// alertTTL is how long a firing alert stays firing without a refresh, the
// endsAt Prometheus would set (4 x its resend delay), rounded up so that
// no alert resolves during a run.
const alertTTL = time.Hour

// rfc3339Nano renders Vector's timestamps: UTC, nine fractional digits.
const rfc3339Nano = "2006-01-02T15:04:05.000000000Z07:00"

func (w *Workload) render(buf *bytes.Buffer, k *key, ts time.Time, rng *rand.Rand) error {
	stamp := ts.UTC().Format(rfc3339Nano)
	status, output := "passing", "OK - "+k.check+" within thresholds ("+strconv.Itoa(k.used)+"% used)"
	if k.failing {
		status, output = "critical", "CRITICAL - "+k.check+" over threshold ("+strconv.Itoa(95+k.used%5)+"% used)"
	}
	var v any
	if w.Sink == Alertmanager {
		// A passing result resolves the alert: endsAt is its time. The
		// severity label is the check's, the same firing or resolved, so
		// the resolve matches the firing alert's fingerprint.
		a := alert{
			Labels:      alertLabels{Alertname: "HealthCheckFailing", Check: k.check, Host: k.host, Region: k.region, Severity: "critical"},
			Annotations: map[string]string{"output": output},
			StartsAt:    stamp,
			EndsAt:      stamp,
		}
		if k.failing {
			a.EndsAt = ts.Add(alertTTL).UTC().Format(rfc3339Nano)
		}
		v = a
	} else {
		e := event{Check: k.check, Host: k.host, Output: output, Region: k.region, Status: status, Timestamp: stamp}
		if w.Shape == Pipeline {
			e.EventID, e.Interval, e.SourceType = uuidV4(rng), execInterval, "exec"
		}
		v = e
	}
	// Vector's serde_json escapes no HTML; the encoder's newline is framing
	// this function does not own.
	start := buf.Len()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if buf.Len() > start {
		buf.Truncate(buf.Len() - 1)
	}
	return nil
}

// uuidV4 renders a random (version 4, RFC 9562 variant) UUID as VRL's
// uuid_v4() does: lowercase hex, hyphenated.
func uuidV4(rng *rand.Rand) string {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rng.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rng.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}

// newCompressor returns a function compressing one body into a new slice.
func newCompressor(c Compression) (func([]byte) ([]byte, error), error) {
	switch c {
	case None:
		return func(p []byte) ([]byte, error) { return bytes.Clone(p), nil }, nil
	case Gzip:
		var out bytes.Buffer
		zw, err := gzip.NewWriterLevel(&out, 6)
		if err != nil {
			return nil, err
		}
		return func(p []byte) ([]byte, error) {
			out.Reset()
			zw.Reset(&out)
			if _, err := zw.Write(p); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			return bytes.Clone(out.Bytes()), nil
		}, nil
	case Zstd:
		zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return func(p []byte) ([]byte, error) { return zw.EncodeAll(p, nil), nil }, nil
	}
	return nil, fmt.Errorf("unknown compression %q", string(c))
}
