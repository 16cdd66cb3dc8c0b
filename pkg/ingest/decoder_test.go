package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// res is a health.Result with owned, comparable fields.
type res struct {
	Region, Host, Check string
	Status              health.Status
	Time                int64
	Output              string
	Severity            health.Severity
	Team                string
	Interval            int32
	EventID             string
	Labels              string // key=value,key=value
}

func toRes(r health.Result) res {
	var labels []string
	for _, l := range r.Labels {
		labels = append(labels, l.Key+"="+string(l.Value))
	}
	return res{
		Region: string(r.Region), Host: string(r.Host), Check: string(r.Check), Status: r.Status,
		Time: r.Time, Output: string(r.Output), Severity: r.Severity, Team: string(r.Team),
		Interval: r.Interval, EventID: string(r.EventID), Labels: strings.Join(labels, ","),
	}
}

// rej is a Rejection without the raw bytes.
type rej struct {
	Index  int
	Reason string
	Err    string
}

// outcome is everything one Decode produced, owned.
type outcome struct {
	Results  []res
	Rejected []rej
	Raw      [][]byte
	Total    int
}

func decode(t testing.TB, d *Decoder, enc string, body []byte) (outcome, error) {
	t.Helper()
	received := time.Date(2026, 8, 21, 12, 0, 0, 0, time.UTC)
	dec, err := d.Decode(Request{Body: bytes.NewReader(body), ContentEncoding: enc, Received: received})
	if err != nil {
		if dec != nil {
			t.Fatalf("Decode returned both a Decoded and error %v", err)
		}
		return outcome{}, err
	}
	defer dec.Release()
	if !dec.Batch.Received.Equal(received) {
		t.Errorf("Batch.Received = %v, want %v", dec.Batch.Received, received)
	}
	var o outcome
	for _, r := range dec.Batch.Results {
		o.Results = append(o.Results, toRes(r))
	}
	for _, r := range dec.Rejected {
		o.Rejected = append(o.Rejected, rej{r.Index, r.Reason, r.Err})
		o.Raw = append(o.Raw, r.Raw)
	}
	o.Total = dec.Total
	if o.Total != len(o.Results)+len(o.Rejected) {
		t.Errorf("Total %d != %d results + %d rejected", o.Total, len(o.Results), len(o.Rejected))
	}
	return o, nil
}

func mustDecode(t testing.TB, d *Decoder, enc string, body []byte) outcome {
	t.Helper()
	o, err := decode(t, d, enc, body)
	if err != nil {
		t.Fatalf("Decode(%.200q): %v", body, err)
	}
	return o
}

// one decodes a single event object and returns its result or rejection.
func one(t testing.TB, d *Decoder, event string) (res, rej) {
	t.Helper()
	o := mustDecode(t, d, "", []byte(event))
	if o.Total != 1 {
		t.Fatalf("decoded %d events from %s, want 1", o.Total, event)
	}
	if len(o.Results) == 1 {
		return o.Results[0], rej{Index: -1}
	}
	return res{}, o.Rejected[0]
}

func nanos(s string) int64 {
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return ts.UnixNano()
}

func diff[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d, want %d\n got: %+v\nwant: %+v", what, len(got), len(want), got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s[%d]:\n got: %+v\nwant: %+v", what, i, got[i], want[i])
		}
	}
}

func TestDecodeFramingsAndEncodings(t *testing.T) {
	events := [][]byte{
		[]byte(`{"check":"disk_root","host":"web-1","output":"OK - 41% used","region":"eu-west-1","source_type":"exec","status":"passing","timestamp":"2026-08-21T10:00:00.123456789Z"}`),
		[]byte(`{"check":"load","host":"web\u002d2","output":"CRITICAL - load 31.2\n\"15m\" average","region":"eu-west-1","status":"critical","timestamp":"2026-08-21T10:00:01Z"}`),
		[]byte(`{"check":"tcp_ssh","host":"db-1","region":"us-east-1","status":1}`),
	}
	want := []res{
		{Region: "eu-west-1", Host: "web-1", Check: "disk_root", Status: health.Passing,
			Time: nanos("2026-08-21T10:00:00.123456789Z"), Output: "OK - 41% used"},
		{Region: "eu-west-1", Host: "web-2", Check: "load", Status: health.Critical,
			Time: nanos("2026-08-21T10:00:01Z"), Output: "CRITICAL - load 31.2\n\"15m\" average"},
		{Region: "us-east-1", Host: "db-1", Check: "tcp_ssh", Status: health.Warning},
	}
	framings := []struct {
		name  string
		body  []byte
		count int
	}{
		{"array", vectorArray(events), 3},
		{"array pretty", []byte("[\n  " + string(bytes.Join(events, []byte(",\n  "))) + "\n]\n"), 3},
		{"ndjson", vectorNDJSON(events), 3},
		{"ndjson trailing newline", append(vectorNDJSON(events), '\n'), 3},
		{"ndjson crlf and blank lines", []byte("\r\n" + string(bytes.Join(events, []byte("\r\n\r\n  \n"))) + "\r\n"), 3},
		{"object", events[0], 1},
		{"array after a UTF-8 BOM", append([]byte("\xef\xbb\xbf"), vectorArray(events)...), 3},
		{"ndjson after a UTF-8 BOM", append([]byte("\xef\xbb\xbf"), vectorNDJSON(events)...), 3},
		{"object pretty", []byte("{\n  \"check\": \"disk_root\",\n  \"host\": \"web-1\",\n  \"output\": \"OK - 41% used\",\n" +
			"  \"region\": \"eu-west-1\",\n  \"status\": \"passing\",\n  \"timestamp\": \"2026-08-21T10:00:00.123456789Z\"\n}\n"), 1},
	}
	encodings := []string{"", "identity", "gzip", "deflate", "zstd", "snappy", "GZIP", " Zstd "}
	d := newTestDecoder(t, nil)
	for _, f := range framings {
		for _, enc := range encodings {
			t.Run(f.name+"/"+strings.TrimSpace(enc), func(t *testing.T) {
				body := compress(t, strings.ToLower(strings.TrimSpace(enc)), f.body)
				o := mustDecode(t, d, enc, body)
				diff(t, "results", o.Results, want[:f.count])
				diff(t, "rejected", o.Rejected, nil)
			})
		}
	}
}

func TestStatusValues(t *testing.T) {
	ok := map[string]health.Status{
		`"passing"`: health.Passing, `"OK"`: health.Passing, `"Pass"`: health.Passing, `"up"`: health.Passing, `"0"`: health.Passing,
		`"warning"`: health.Warning, `"WARN"`: health.Warning, `"1"`: health.Warning,
		`"critical"`: health.Critical, `"crit"`: health.Critical, `"fail"`: health.Critical, `"Failing"`: health.Critical,
		`"down"`: health.Critical, `"error"`: health.Critical, `"2"`: health.Critical,
		`"unknown"`: health.Unknown, `"UNKNOWN"`: health.Unknown, `"3"`: health.Unknown,
		`0`: health.Passing, `1`: health.Warning, `2`: health.Critical, `3`: health.Unknown,
		`2.0`: health.Critical, `3e0`: health.Unknown, `"cr\u0069t"`: health.Critical,
	}
	bad := map[string]rej{
		`"sideways"`: {Reason: ReasonInvalidStatus, Err: `invalid value "sideways" for field "status": want ` + statusWords},
		`""`:         {Reason: ReasonInvalidStatus, Err: `invalid value "" for field "status": want ` + statusWords},
		`4`:          {Reason: ReasonInvalidStatus, Err: `invalid value 4 for field "status": want 0, 1, 2 or 3`},
		`-1`:         {Reason: ReasonInvalidStatus, Err: `invalid value -1 for field "status": want 0, 1, 2 or 3`},
		`2.5`:        {Reason: ReasonInvalidStatus, Err: `invalid value 2.5 for field "status": want 0, 1, 2 or 3`},
		`true`:       {Reason: ReasonInvalidStatus, Err: `field "status" must be a string or a number, got boolean`},
		`{}`:         {Reason: ReasonInvalidStatus, Err: `field "status" must be a string or a number, got object`},
		`null`:       {Reason: ReasonMissingField, Err: `missing required field "status"`},
	}
	d := newTestDecoder(t, nil)
	for lit, want := range ok {
		t.Run(lit, func(t *testing.T) {
			r, j := one(t, d, `{"host":"h","region":"r","check":"c","status":`+lit+`}`)
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r.Status != want {
				t.Errorf("status %s decoded as %v, want %v", lit, r.Status, want)
			}
		})
	}
	for lit, want := range bad {
		t.Run(lit, func(t *testing.T) {
			_, j := one(t, d, `{"host":"h","region":"r","check":"c","status":`+lit+`}`)
			if j.Reason != want.Reason || j.Err != want.Err {
				t.Errorf("status %s: got %s %q, want %s %q", lit, j.Reason, j.Err, want.Reason, want.Err)
			}
		})
	}
}

func TestTimestampForms(t *testing.T) {
	const sec = "2026-08-21T10:00:00Z"
	base := nanos(sec)
	tests := []struct {
		lit  string
		want int64 // 0 with ok: absent
		ok   bool
	}{
		{`"2026-08-21T10:00:00Z"`, base, true},
		{`"2026-08-21T10:00:00.123Z"`, base + 123e6, true},
		{`"2026-08-21T10:00:00.123456Z"`, base + 123456e3, true},
		{`"2026-08-21T10:00:00.123456789Z"`, base + 123456789, true},
		{`"2026-08-21T10:00:00.1Z"`, base + 1e8, true},
		{`"2026-08-21T12:30:00+02:30"`, base, true},
		{`"2026-08-21T04:00:00.5-06:00"`, base + 5e8, true},
		{`"2026-08-21t10:00:00z"`, base, true},
		{`"2024-02-29T00:00:00Z"`, nanos("2024-02-29T00:00:00Z"), true},
		{`1787306400`, base, true},
		{`1787306400.25`, base + 25e7, true},
		{`1787306400123`, base + 123e6, true},
		{`1787306400123.5`, base + 123e6 + 5e5, true},
		{`1787306400123456`, base + 123456e3, true},
		{`1787306400123456789`, base + 123456789, true},
		{`1.7873064e9`, base, true},
		{`"1787306400"`, base, true},
		{`"1787306400123"`, base + 123e6, true},
		{`null`, 0, true},
		{`"yesterday"`, 0, false},
		{`""`, 0, false},
		{`"2026-13-01T00:00:00Z"`, 0, false},
		{`"2026-02-29T00:00:00Z"`, 0, false},
		{`"2026-08-21T24:00:00Z"`, 0, false},
		{`"2026-08-21T10:00:60Z"`, 0, false},
		{`"2026-08-21T10:00:00.1234567891Z"`, 0, false},
		{`"2026-08-21T10:00:00."`, 0, false},
		{`"2026-08-21T10:00:00"`, 0, false},
		{`"2026-08-21 10:00:00Z"`, 0, false},
		{`"2026-08-21T10:00:00+0200"`, 0, false},
		{`"2026-08-21T10:00:00+24:00"`, 0, false},
		{`"1969-12-31T23:59:59Z"`, 0, false},
		{`"1970-01-01T00:00:00Z"`, 0, false}, // 0 means "no timestamp" inside
		{`"2263-01-01T00:00:00Z"`, 0, false},
		{`"9999-12-31T23:59:59.999999999+14:00"`, 0, false},
		{`"2262-04-11T23:47:16Z"`, 0, false},
		{`"2262-04-11T23:47:15Z"`, maxUnixSeconds * 1e9, true},
		{`-5`, 0, false},
		{`0`, 0, false},
		{`1e400`, 0, false},
		{`99999999999999999999`, 0, false},
		{`true`, 0, false},
		{`{"t":1}`, 0, false},
	}
	// Well-formed, but not representable: said to be out of range.
	outOfRange := map[string]bool{
		`"1969-12-31T23:59:59Z"`: true, `"1970-01-01T00:00:00Z"`: true, `"2263-01-01T00:00:00Z"`: true,
		`"9999-12-31T23:59:59.999999999+14:00"`: true, `"2262-04-11T23:47:16Z"`: true,
	}
	d := newTestDecoder(t, nil)
	for _, tt := range tests {
		t.Run(tt.lit, func(t *testing.T) {
			r, j := one(t, d, `{"host":"h","region":"r","check":"c","status":"ok","timestamp":`+tt.lit+`}`)
			if !tt.ok {
				if j.Reason != ReasonInvalidTimestamp {
					t.Fatalf("timestamp %s: got %+v %+v, want an invalid_timestamp rejection", tt.lit, r, j)
				}
				want := `invalid value ` + quote(tsText(tt.lit)) + ` for field "timestamp": want RFC 3339 or Unix seconds, milliseconds, microseconds or nanoseconds`
				if outOfRange[tt.lit] {
					want = `field "timestamp" ` + quote(tsText(tt.lit)) + ` is out of range: want a time after 1970-01-01 and before 2262-04-11T23:47:15Z`
				}
				if j.Err != want {
					t.Errorf("message %q, want %q", j.Err, want)
				}
				return
			}
			if j.Index >= 0 {
				t.Fatalf("timestamp %s rejected: %+v", tt.lit, j)
			}
			if r.Time != tt.want {
				t.Errorf("timestamp %s = %d (%v), want %d (%v)", tt.lit, r.Time, time.Unix(0, r.Time).UTC(),
					tt.want, time.Unix(0, tt.want).UTC())
			}
		})
	}
}

// tsText is how a timestamp literal appears in a rejection message: the
// decoded string, or the raw JSON of anything else.
func tsText(lit string) []byte {
	if strings.HasPrefix(lit, `"`) {
		return []byte(strings.Trim(lit, `"`))
	}
	return []byte(lit)
}

func TestFieldMapping(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.Labels = []string{"service", "rack"} })
	r, j := one(t, d, `{"check":"raid","event_id":"3f1c","host":"db-7","interval":60,"labels":{"rack":"r12","service":"pg"},`+
		`"message":"ignored: output wins","output":"degraded","pid":4242,"region":"eu-west-1","severity":"Error",`+
		`"source_type":"exec","status":"crit","team":"storage","timestamp":"2026-08-21T10:00:00Z","extra":{"a":[1,2,{"b":null}]}}`)
	if j.Index >= 0 {
		t.Fatalf("rejected: %+v", j)
	}
	want := res{Region: "eu-west-1", Host: "db-7", Check: "raid", Status: health.Critical,
		Time: nanos("2026-08-21T10:00:00Z"), Output: "degraded", Severity: health.SeverityError, Team: "storage",
		Interval: 60, EventID: "3f1c", Labels: "service=pg,rack=r12"}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}

	optional := []struct {
		name, fields string
		check        func(res) bool
	}{
		{"message when no output", `"message":"from message"`, func(r res) bool { return r.Output == "from message" }},
		{"message when output null", `"output":null,"message":"m"`, func(r res) bool { return r.Output == "m" }},
		{"no output", ``, func(r res) bool { return r.Output == "" }},
		{"interval float rounds up", `"interval":0.5`, func(r res) bool { return r.Interval == 1 }},
		{"interval duration", `"interval":"1m30s"`, func(r res) bool { return r.Interval == 90 }},
		{"interval numeric string", `"interval":"45"`, func(r res) bool { return r.Interval == 45 }},
		{"event_id number", `"event_id":12345678901234567890`, func(r res) bool { return r.EventID == "12345678901234567890" }},
		{"severity warn", `"severity":"warn"`, func(r res) bool { return r.Severity == health.SeverityWarning }},
		{"severity info", `"severity":"INFO"`, func(r res) bool { return r.Severity == health.SeverityInfo }},
		{"severity empty", `"severity":""`, func(r res) bool { return r.Severity == health.SeverityNone }},
		{"null optionals", `"team":null,"severity":null,"interval":null,"event_id":null,"labels":null,"timestamp":null`,
			func(r res) bool { return r == res{Region: "r", Host: "h", Check: "c"} }},
		{"duplicate key last wins", `"host":"first","host":"second"`, func(r res) bool { return r.Host == "second" }},
		{"unicode host", `"host":"wéb-1"`, func(r res) bool { return r.Host == "wéb-1" }},
	}
	for _, tt := range optional {
		t.Run(tt.name, func(t *testing.T) {
			ev := `{"host":"h","region":"r","check":"c","status":"ok"`
			if tt.fields != "" {
				ev += "," + tt.fields
			}
			r, j := one(t, d, ev+"}")
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if !tt.check(r) {
				t.Errorf("unexpected result %+v", r)
			}
		})
	}
}

func TestFieldRenaming(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) {
		c.Fields = config.Fields{
			Host: "hostname", Region: "dc", Check: "name", Status: "state", Timestamp: "ts", Output: "text",
			Message: "msg", Severity: "sev", Team: "owner", Interval: "every", EventID: "id", Labels: "tags",
		}
		c.Labels = []string{"service"}
	})
	r, j := one(t, d, `{"dc":"fra1","every":"30s","hostname":"web-1","id":"e1","name":"disk","owner":"sre","sev":"critical",`+
		`"state":"down","tags":{"service":"api"},"text":"full","ts":1787306400,`+
		`"host":"ignored","region":"ignored","check":"ignored","status":"ignored"}`)
	if j.Index >= 0 {
		t.Fatalf("rejected: %+v", j)
	}
	want := res{Region: "fra1", Host: "web-1", Check: "disk", Status: health.Critical, Time: nanos("2026-08-21T10:00:00Z"),
		Output: "full", Severity: health.SeverityCritical, Team: "sre", Interval: 30, EventID: "e1", Labels: "service=api"}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	_, j = one(t, d, `{"host":"web-1","region":"fra1","check":"disk","status":"ok"}`)
	if j.Reason != ReasonMissingField || j.Err != `missing required field "hostname"` {
		t.Errorf("default names after renaming: got %+v, want missing hostname", j)
	}
	// "message" renamed to "msg": used when "text" is absent.
	r, _ = one(t, d, `{"hostname":"h","dc":"r","name":"c","state":"ok","msg":"m"}`)
	if r.Output != "m" {
		t.Errorf("renamed message: output %q, want m", r.Output)
	}
}

func TestLabels(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) {
		c.Labels = []string{"service", "rack", "tier", "canary"}
		c.MaxFieldBytes = 16
	})
	const head = `{"host":"h","region":"r","check":"c","status":"ok","labels":`
	tests := []struct {
		labels string
		want   string
		reject rej
	}{
		{`{"tier":"web","service":"api","rack":12,"canary":true,"other":"x"}`, "service=api,rack=12,tier=web,canary=true", rej{}},
		{`{"service":"api","service":"db"}`, "service=db", rej{}},
		{`{"service":null,"rack":""}`, "", rej{}},
		{`{}`, "", rej{}},
		{`{"other":{"deep":[1]}}`, "", rej{}},
		{`"service=api"`, "", rej{Reason: ReasonInvalidField, Err: `field "labels" must be an object, got string`}},
		{`{"service":["a"]}`, "", rej{Reason: ReasonInvalidField, Err: `label "service" must be a string, number or boolean, got array`}},
		{`{"service":"an-overly-long-service-name"}`, "", rej{Reason: ReasonFieldTooLong, Err: `label "service" is 27 bytes, longer than max_field_bytes 16`}},
		{`{"rack":"a\tb"}`, "", rej{Reason: ReasonInvalidField, Err: `label "rack" contains control character '\t'`}},
	}
	for _, tt := range tests {
		t.Run(tt.labels, func(t *testing.T) {
			r, j := one(t, d, head+tt.labels+"}")
			if tt.reject.Reason != "" {
				if j.Reason != tt.reject.Reason || j.Err != tt.reject.Err {
					t.Errorf("got %+v, want %+v", j, tt.reject)
				}
				return
			}
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r.Labels != tt.want {
				t.Errorf("labels %q, want %q", r.Labels, tt.want)
			}
		})
	}

	// Labels of one event never leak into the next, rejected or not.
	o := mustDecode(t, d, "", []byte(`[`+head+`{"service":"a"}},`+head+`{"service":"b","rack":{}}},`+head+`{}},`+head+`{"rack":"7"}}]`))
	var got []string
	for _, r := range o.Results {
		got = append(got, r.Labels)
	}
	diff(t, "labels per event", got, []string{"service=a", "", "rack=7"})

	none := newTestDecoder(t, nil)
	r, _ := one(t, none, head+`{"service":"api"}}`)
	if r.Labels != "" {
		t.Errorf("labels kept without configured keys: %q", r.Labels)
	}
}

func TestRegionFromHost(t *testing.T) {
	grouped := newTestDecoder(t, func(c *config.Ingest) { c.RegionFromHost = `^[a-z]+-\d+\.([a-z0-9-]+)\.` })
	whole := newTestDecoder(t, func(c *config.Ingest) { c.RegionFromHost = `^[a-z]+` })
	none := newTestDecoder(t, nil)
	tests := []struct {
		name   string
		d      *Decoder
		event  string
		region string
		err    string
	}{
		{"capture group", grouped, `{"host":"web-1.eu-west-1.example.net","check":"c","status":0}`, "eu-west-1", ""},
		{"explicit region wins", grouped, `{"host":"web-1.eu-west-1.example.net","region":"fra","check":"c","status":0}`, "fra", ""},
		{"null region derives", grouped, `{"host":"web-1.eu-west-1.example.net","region":null,"check":"c","status":0}`, "eu-west-1", ""},
		{"empty region derives", grouped, `{"host":"web-1.eu-west-1.example.net","region":"","check":"c","status":0}`, "eu-west-1", ""},
		{"empty region, no match", grouped, `{"host":"localhost","region":"","check":"c","status":0}`, "",
			`missing required field "region", and host "localhost" does not match region_from_host "^[a-z]+-\\d+\\.([a-z0-9-]+)\\."`},
		{"whole match", whole, `{"host":"fra12","check":"c","status":0}`, "fra", ""},
		{"no match", grouped, `{"host":"localhost","check":"c","status":0}`, "",
			`missing required field "region", and host "localhost" does not match region_from_host "^[a-z]+-\\d+\\.([a-z0-9-]+)\\."`},
		{"empty match", whole, `{"host":"42","check":"c","status":0}`, "",
			`missing required field "region", and host "42" does not match region_from_host "^[a-z]+"`},
		{"not configured", none, `{"host":"web-1.eu-west-1.example.net","check":"c","status":0}`, "", `missing required field "region"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, j := one(t, tt.d, tt.event)
			if tt.err != "" {
				if j.Reason != ReasonMissingField || j.Err != tt.err {
					t.Errorf("got %+v, want missing_field %q", j, tt.err)
				}
				return
			}
			if r.Region != tt.region {
				t.Errorf("region %q, want %q (rejection %+v)", r.Region, tt.region, j)
			}
		})
	}

	// Consecutive events of one host reuse the match; a different host
	// after it must not.
	o := mustDecode(t, grouped, "", []byte(`{"host":"web-1.eu-west-1.x","check":"a","status":0}
{"host":"web-1.eu-west-1.x","check":"b","status":0}
{"host":"localhost","check":"c","status":0}
{"host":"localhost","check":"d","status":0}
{"host":"db-2.us-east-1.x","check":"e","status":0}`))
	var regions []string
	for _, r := range o.Results {
		regions = append(regions, r.Region)
	}
	diff(t, "regions", regions, []string{"eu-west-1", "eu-west-1", "us-east-1"})
	if len(o.Rejected) != 2 || o.Rejected[0].Index != 2 || o.Rejected[1].Index != 3 {
		t.Errorf("rejected %+v, want events 2 and 3", o.Rejected)
	}
}

func TestMetricEvents(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) {
		c.Labels = []string{"service"}
		c.RegionFromHost = `\.([a-z0-9-]+)$`
	})
	tests := []struct {
		name   string
		event  string
		want   res
		reject rej
	}{
		{name: "gauge", event: `{"name":"health_check_status","namespace":"vector","tags":{"check":"disk","host":"web-1","region":"eu"},` +
			`"timestamp":"2026-08-21T10:00:00.000000011Z","kind":"absolute","gauge":{"value":2.0}}`,
			want: res{Region: "eu", Host: "web-1", Check: "disk", Status: health.Critical, Time: nanos("2026-08-21T10:00:00.000000011Z")}},
		{name: "optional tags", event: `{"gauge":{"value":1},"interval_ms":15000,"kind":"absolute","name":"health_check_status",` +
			`"tags":{"check":"ntp","event_id":"e-9","host":"web-1","output":"offset 120ms","region":"eu","service":"chrony",` +
			`"severity":"warning","source":"exec","team":"infra"}}`,
			want: res{Region: "eu", Host: "web-1", Check: "ntp", Status: health.Warning, Output: "offset 120ms",
				Severity: health.SeverityWarning, Team: "infra", Interval: 15, EventID: "e-9", Labels: "service=chrony"}},
		{name: "tag interval wins over interval_ms", event: `{"gauge":{"value":0},"interval_ms":15000,"kind":"absolute",` +
			`"name":"health_check_status","tags":{"check":"c","host":"h","interval":"1m","region":"r"}}`,
			want: res{Region: "r", Host: "h", Check: "c", Interval: 60}},
		{name: "metric_tag_values full", event: `{"gauge":{"value":3},"kind":"absolute","name":"health_check_status",` +
			`"tags":{"check":["disk"],"host":["old",null,"web-2"],"region":["eu",null],"team":[null]}}`,
			want: res{Region: "eu", Host: "web-2", Check: "disk", Status: health.Unknown}},
		{name: "region from host", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status",` +
			`"tags":{"check":"c","host":"web-1.fra"}}`,
			want: res{Region: "fra", Host: "web-1.fra", Check: "c"}},
		{name: "status tag ignored", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status",` +
			`"tags":{"check":"c","host":"h","region":"r","status":"critical"}}`,
			want: res{Region: "r", Host: "h", Check: "c", Status: health.Passing}},
		{name: "without kind", event: `{"name":"health_check_status","tags":{"host":"h7","region":"r1","check":"m7"},"gauge":{"value":2}}`,
			want: res{Region: "r1", Host: "h7", Check: "m7", Status: health.Critical}},
		{name: "counter without kind", event: `{"counter":{"value":2.0},"name":"health_check_status","tags":{"host":"h"}}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `metric "health_check_status" must be a gauge`}},
		{name: "other metric", event: `{"counter":{"value":1.0},"kind":"incremental","name":"cpu_seconds_total","tags":{"host":"h"}}`,
			reject: rej{Reason: ReasonUnknownMetric, Err: `metric "cpu_seconds_total" is not the status metric "health_check_status"`}},
		{name: "counter", event: `{"counter":{"value":2.0},"kind":"absolute","name":"health_check_status","tags":{"host":"h"}}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `metric "health_check_status" must be a gauge`}},
		{name: "gauge without value", event: `{"gauge":{},"kind":"absolute","name":"health_check_status","tags":{"host":"h"}}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `gauge "value" must be a number, got nothing`}},
		{name: "gauge string value", event: `{"gauge":{"value":"2"},"kind":"absolute","name":"health_check_status"}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `gauge "value" must be a number, got string`}},
		{name: "gauge out of range", event: `{"gauge":{"value":7},"kind":"absolute","name":"health_check_status","tags":{"check":"c","host":"h","region":"r"}}`,
			reject: rej{Reason: ReasonInvalidStatus, Err: `invalid value 7 for gauge "value": want 0, 1, 2 or 3`}},
		{name: "missing host tag", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status","tags":{"check":"c","region":"r"}}`,
			reject: rej{Reason: ReasonMissingField, Err: `missing required tag "host"`}},
		{name: "no tags", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status"}`,
			reject: rej{Reason: ReasonMissingField, Err: `missing required tag "host"`}},
		{name: "tags not an object", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status","tags":["host"]}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `field "tags" must be an object, got array`}},
		{name: "numeric tag", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status","tags":{"host":7}}`,
			reject: rej{Reason: ReasonInvalidField, Err: `tag "host" must be a string, got number`}},
		{name: "numeric tag in array", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status","tags":{"host":["a",7]}}`,
			reject: rej{Reason: ReasonInvalidField, Err: `tag "host" must hold strings, got number`}},
		{name: "bad metric timestamp", event: `{"gauge":{"value":0},"kind":"absolute","name":"health_check_status","timestamp":"soon",` +
			`"tags":{"check":"c","host":"h","region":"r"}}`,
			reject: rej{Reason: ReasonInvalidTimestamp, Err: `invalid value "soon" for field "timestamp": want RFC 3339 or Unix seconds, milliseconds, microseconds or nanoseconds`}},
		{name: "bad severity tag", event: `{"gauge":{"value":2},"kind":"absolute","name":"health_check_status",` +
			`"tags":{"check":"c","host":"h","region":"r","severity":"sev1"}}`,
			reject: rej{Reason: ReasonInvalidSeverity, Err: `invalid value "sev1" for tag "severity": want critical, error, warning or info`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, j := one(t, d, tt.event)
			if tt.reject.Reason != "" {
				if j.Reason != tt.reject.Reason || j.Err != tt.reject.Err {
					t.Errorf("got %+v, want %+v", j, tt.reject)
				}
				return
			}
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r != tt.want {
				t.Errorf("got  %+v\nwant %+v", r, tt.want)
			}
		})
	}

	// A log event may carry "name" and "kind" (Kubernetes objects do):
	// without a metric value it stays a log event.
	r, j := one(t, d, `{"check":"c","host":"h","kind":"Pod","name":"api-0","region":"r","status":"ok"}`)
	if j.Index >= 0 || r.Host != "h" {
		t.Errorf("log event with name and kind: %+v %+v", r, j)
	}
	// Nor does a "name" beside a plain "gauge" field, without a kind.
	r, j = one(t, d, `{"check":"c","gauge":3,"host":"h","name":"fuel","region":"r","status":"ok"}`)
	if j.Index >= 0 || r.Host != "h" {
		t.Errorf("log event with name and gauge: %+v %+v", r, j)
	}
}

// TestConfiguredStatusMetric pins that the status metric is the configured
// name, not the default: a pipeline that renames its metric must not have
// every event dropped, nor have the default name slip through.
func TestConfiguredStatusMetric(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.StatusMetric = "hc" })
	tests := []struct {
		name   string
		event  string
		want   res
		reject rej
	}{
		{name: "configured name", event: `{"gauge":{"value":2},"kind":"absolute","name":"hc","tags":{"check":"disk","host":"web-1","region":"eu"}}`,
			want: res{Region: "eu", Host: "web-1", Check: "disk", Status: health.Critical}},
		{name: "default name", event: `{"gauge":{"value":2},"kind":"absolute","name":"health_check_status","tags":{"check":"disk","host":"web-1","region":"eu"}}`,
			reject: rej{Reason: ReasonUnknownMetric, Err: `metric "health_check_status" is not the status metric "hc"`}},
		{name: "configured name as a prefix", event: `{"gauge":{"value":2},"kind":"absolute","name":"hc_total","tags":{"check":"disk","host":"web-1","region":"eu"}}`,
			reject: rej{Reason: ReasonUnknownMetric, Err: `metric "hc_total" is not the status metric "hc"`}},
		{name: "configured name not a gauge", event: `{"counter":{"value":2},"kind":"absolute","name":"hc","tags":{"host":"h"}}`,
			reject: rej{Reason: ReasonInvalidMetric, Err: `metric "hc" must be a gauge`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, j := one(t, d, tt.event)
			if tt.reject.Reason != "" {
				if j != (rej{Index: 0, Reason: tt.reject.Reason, Err: tt.reject.Err}) {
					t.Errorf("got %+v, want %+v", j, tt.reject)
				}
				return
			}
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r != tt.want {
				t.Errorf("got  %+v\nwant %+v", r, tt.want)
			}
		})
	}
}

func TestOutputTruncation(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.MaxOutputBytes = 10 })
	tests := []struct{ output, want string }{
		{"short", "short"},
		{"exactly 10", "exactly 10"},
		{"eleven char", "eleven cha"},
		{"123456789é", "123456789"},        // é is 2 bytes and would end at byte 11
		{"12345678é", "12345678é"},         // ends exactly at byte 10
		{"1234567😀x", "1234567"},           // a 4-byte rune straddles the cut
		{"line\none\ntwo", "line\none\nt"}, // output may hold newlines
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			ev := vectorJSON(t, map[string]any{"host": "h", "region": "r", "check": "c", "status": "ok", "output": tt.output})
			r, j := one(t, d, string(ev))
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r.Output != tt.want {
				t.Errorf("output %q, want %q", r.Output, tt.want)
			}
		})
	}
}

func TestRejectionReasons(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.MaxFieldBytes = 8 })
	tests := []struct {
		name, event string
		reason, err string
	}{
		{"missing host", `{"region":"r","check":"c","status":"ok"}`, ReasonMissingField, `missing required field "host"`},
		{"null host", `{"host":null,"region":"r","check":"c","status":"ok"}`, ReasonMissingField, `missing required field "host"`},
		{"missing region", `{"host":"h","check":"c","status":"ok"}`, ReasonMissingField, `missing required field "region"`},
		{"missing check", `{"host":"h","region":"r","status":"ok"}`, ReasonMissingField, `missing required field "check"`},
		{"missing status", `{"host":"h","region":"r","check":"c"}`, ReasonMissingField, `missing required field "status"`},
		{"empty object", `{}`, ReasonMissingField, `missing required field "host"`},
		{"host number", `{"host":1,"region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" must be a string, got number`},
		{"host object", `{"host":{},"region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" must be a string, got object`},
		{"empty host", `{"host":"","region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" is empty`},
		{"blank host", `{"host":"   ","region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" is blank: nothing but whitespace`},
		{"unicode-blank host", `{"host":"\u00a0\u3000","region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" is blank: nothing but whitespace`},
		{"blank region", `{"host":"h","region":" ","check":"c","status":"ok"}`, ReasonInvalidField, `field "region" is blank: nothing but whitespace`},
		{"blank check", `{"host":"h","region":"r","check":"  ","status":"ok"}`, ReasonInvalidField, `field "check" is blank: nothing but whitespace`},
		{"blank event_id", `{"host":"h","region":"r","check":"c","status":"ok","event_id":" "}`, ReasonInvalidField, `field "event_id" is blank: nothing but whitespace`},
		{"host control", `{"host":"a\u0007b","region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" contains control character '\a'`},
		{"host newline", `{"host":"a\nb","region":"r","check":"c","status":"ok"}`, ReasonInvalidField, `field "host" contains control character '\n'`},
		{"host DEL", "{\"host\":\"a\x7fb\",\"region\":\"r\",\"check\":\"c\",\"status\":\"ok\"}", ReasonInvalidField, `field "host" contains control character '\x7f'`},
		{"host bad utf8", "{\"host\":\"a\xffb\",\"region\":\"r\",\"check\":\"c\",\"status\":\"ok\"}", ReasonInvalidField, `field "host" is not valid UTF-8`},
		{"host too long", `{"host":"123456789","region":"r","check":"c","status":"ok"}`, ReasonFieldTooLong, `field "host" is 9 bytes, longer than max_field_bytes 8`},
		{"region too long", `{"host":"h","region":"eu-west-12","check":"c","status":"ok"}`, ReasonFieldTooLong, `field "region" is 10 bytes, longer than max_field_bytes 8`},
		{"check too long", `{"host":"h","region":"r","check":"disk_root_x","status":"ok"}`, ReasonFieldTooLong, `field "check" is 11 bytes, longer than max_field_bytes 8`},
		{"team too long", `{"host":"h","region":"r","check":"c","status":"ok","team":"platform-sre"}`, ReasonFieldTooLong, `field "team" is 12 bytes, longer than max_field_bytes 8`},
		{"event_id too long", `{"host":"h","region":"r","check":"c","status":"ok","event_id":"0123456789"}`, ReasonFieldTooLong, `field "event_id" is 10 bytes, longer than max_field_bytes 8`},
		{"empty team", `{"host":"h","region":"r","check":"c","status":"ok","team":""}`, ReasonInvalidField, `field "team" is empty`},
		{"event_id bool", `{"host":"h","region":"r","check":"c","status":"ok","event_id":true}`, ReasonInvalidField, `field "event_id" must be a string, got boolean`},
		{"bad status", `{"host":"h","region":"r","check":"c","status":"meh"}`, ReasonInvalidStatus, `invalid value "meh" for field "status": want ` + statusWords},
		{"bad timestamp", `{"host":"h","region":"r","check":"c","status":"ok","timestamp":"now"}`, ReasonInvalidTimestamp,
			`invalid value "now" for field "timestamp": want RFC 3339 or Unix seconds, milliseconds, microseconds or nanoseconds`},
		{"bad severity", `{"host":"h","region":"r","check":"c","status":"ok","severity":"p1"}`, ReasonInvalidSeverity,
			`invalid value "p1" for field "severity": want critical, error, warning or info`},
		{"severity number", `{"host":"h","region":"r","check":"c","status":"ok","severity":1}`, ReasonInvalidSeverity,
			`invalid value "1" for field "severity": want critical, error, warning or info`},
		{"bad interval", `{"host":"h","region":"r","check":"c","status":"ok","interval":"often"}`, ReasonInvalidField,
			`invalid value "often" for field "interval": want a number of seconds or a duration such as "30s"`},
		{"negative interval", `{"host":"h","region":"r","check":"c","status":"ok","interval":-1}`, ReasonInvalidField,
			`invalid value "-1" for field "interval": want a number of seconds or a duration such as "30s"`},
		{"output number", `{"host":"h","region":"r","check":"c","status":"ok","output":42}`, ReasonInvalidField, `field "output" must be a string, got number`},
		{"message array", `{"host":"h","region":"r","check":"c","status":"ok","message":[]}`, ReasonInvalidField, `field "message" must be a string, got array`},
		{"not an object: string", `"web-1 disk ok"`, ReasonNotAnObject, `event is a JSON string, not an object`},
		{"not an object: array", `[[{"host":"h"}]]`, ReasonNotAnObject, `event is a JSON array, not an object`},
		{"not an object: number", `[42]`, ReasonNotAnObject, `event is a JSON number, not an object`},
		{"not an object: null", `[null]`, ReasonNotAnObject, `event is a JSON null, not an object`},
		{"not an object: bool", `[true]`, ReasonNotAnObject, `event is a JSON boolean, not an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mustDecode(t, d, "", []byte(tt.event))
			if len(o.Rejected) != 1 || o.Total != 1 {
				t.Fatalf("got %+v, want one rejection", o)
			}
			if got := o.Rejected[0]; got.Reason != tt.reason || got.Err != tt.err || got.Index != 0 {
				t.Errorf("got %s %q (index %d)\nwant %s %q", got.Reason, got.Err, got.Index, tt.reason, tt.err)
			}
		})
	}
}

func TestInvalidJSONIsolated(t *testing.T) {
	const (
		a = `{"check":"a","host":"h","region":"r","status":"ok"}`
		b = `{"check":"b","host":"h","region":"r","status":"ok"}`
	)
	tests := []struct {
		name    string
		body    string
		checks  []string // accepted, in order
		rejects []rej    // Err prefix only
		raws    []string
	}{
		{"bad literal", `[` + a + `,{"host":tru},` + b + `]`, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 11: invalid character '}' in literal true`}}, []string{`{"host":tru}`}},
		{"bad escape", `[` + a + `,{"host":"\x"},` + b + `]`, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 10: invalid character 'x' in string escape code`}}, []string{`{"host":"\x"}`}},
		{"control char in string", "[" + a + ",{\"host\":\"a\tb\"}," + b + "]", []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 10: control character '\t' in string literal`}}, []string{"{\"host\":\"a\tb\"}"}},
		{"unbalanced bracket", `[` + a + `,{"x":[1,2},` + b + `]`, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 9: invalid character '}' after array element`}}, []string{`{"x":[1,2}`}},
		{"truncated tail", `[` + a + `,` + b + `,{"check":"c","host":"h`, []string{"a", "b"},
			[]rej{{2, ReasonInvalidJSON, `invalid JSON at byte 22: unexpected end of data in string literal`}}, []string{`{"check":"c","host":"h`}},
		{"cut after comma", `[` + a + `,`, []string{"a"}, nil, nil},
		{"no closing bracket", `[` + a, []string{"a"}, nil, nil},
		{"missing comma", `[` + a + ` ` + b + `]`, []string{"a"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON: unexpected data between array elements`}}, []string{b}},
		{"junk after element", `[` + a + `x,` + b + `]`, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON: unexpected data between array elements`}}, []string{"x"}},
		{"trailing comma", `[` + a + `,]`, []string{"a"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 0: invalid character ']' looking for a value`}}, []string{""}},
		{"data after array", `[` + a + `] {"more":1}`, []string{"a"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON: unexpected data after the closing ]`}}, []string{`{"more":1}`}},
		{"comma inside string", `[{"check":"a,]","host":"h","region":"r","status":"ok"},{"host":"\"]"` + `,` + b + `]`, []string{"a,]"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 14: invalid character '{' looking for beginning of object key string`}},
			[]string{`{"host":"\"]",` + b}},
		{"deep nesting", `[` + a + `,` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,` + b + `]`, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 64: nested too deep`}}, []string{strings.Repeat("[", 100) + strings.Repeat("]", 100)}},
		{"ndjson bad line", a + "\n{\"host\":\n" + b, []string{"a", "b"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 8: unexpected end of data looking for a value`}}, []string{`{"host":`}},
		{"ndjson junk after event", a + "\n" + b + " trailing\n" + a, []string{"a", "a"},
			[]rej{{1, ReasonInvalidJSON, `invalid JSON at byte 52: unexpected data after the event`}}, []string{b + " trailing"}},
		{"ndjson not json line", "hello\n" + a, []string{"a"},
			[]rej{{0, ReasonInvalidJSON, `invalid JSON at byte 0: invalid character 'h' looking for a value`}}, []string{"hello"}},
		{"broken first line", `{"check":` + "\n" + a, []string{"a"},
			[]rej{{0, ReasonInvalidJSON, `invalid JSON at byte 9: unexpected end of data looking for a value`}}, []string{`{"check":`}},
	}
	d := newTestDecoder(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mustDecode(t, d, "", []byte(tt.body))
			var checks []string
			for _, r := range o.Results {
				checks = append(checks, r.Check)
			}
			diff(t, "accepted", checks, tt.checks)
			diff(t, "rejected", o.Rejected, tt.rejects)
			var raws []string
			for _, r := range o.Raw {
				raws = append(raws, string(r))
			}
			diff(t, "raw", raws, tt.raws)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) {
		c.MaxBodyBytes = 4 << 10
		c.MaxDecodedBytes = 8 << 10
		c.MaxEvents = 3
	})
	ev := `{"check":"c","host":"h","region":"r","status":"ok"}`
	big := []byte(`{"check":"c","host":"h","region":"r","status":"ok","output":"` + strings.Repeat("x", 6<<10) + `"}`)
	tests := []struct {
		name    string
		enc     string
		body    []byte
		target  error
		body400 string // BodyError reason
		msg     string
	}{
		{name: "brotli", enc: "br", body: []byte(ev), target: ErrUnsupportedEncoding,
			msg: `unsupported Content-Encoding "br": want gzip, deflate, zstd, snappy or none`},
		{name: "two codings", enc: "gzip, zstd", target: ErrUnsupportedEncoding},
		{name: "x-gzip", enc: "x-gzip", target: ErrUnsupportedEncoding},
		{name: "body too large", body: big, target: ErrBodyTooLarge, msg: "request body too large: more than max_body_bytes 4096"},
		{name: "decoded too large", enc: "gzip", body: compress(t, "gzip", bytes.Repeat(big, 2)), target: ErrDecodedTooLarge,
			msg: "decoded body too large: decompresses past max_decoded_bytes 8192"},
		{name: "too many events", body: []byte(strings.Repeat(ev+"\n", 4)), target: ErrTooManyEvents,
			msg: "too many events: more than max_events 3"},
		{name: "too many events in array", body: []byte("[" + strings.Repeat(ev+",", 3) + ev + "]"), target: ErrTooManyEvents},
		{name: "too many with junk", body: []byte("[" + strings.Repeat(ev+",", 2) + ev + "]x"), target: ErrTooManyEvents},
		{name: "empty", body: nil, body400: BodyEmpty, msg: "undecodable body: the body is empty"},
		{name: "whitespace", body: []byte(" \r\n\t"), body400: BodyEmpty},
		{name: "not json", body: []byte("hello world"), body400: BodyInvalidJSON,
			msg: "undecodable body: no event is valid JSON: first: invalid JSON at byte 0: invalid character 'h' looking for a value"},
		{name: "all lines broken", body: []byte("{\n}\n{"), body400: BodyInvalidJSON},
		{name: "all elements broken", body: []byte(`[{"a":},{"b"}]`), body400: BodyInvalidJSON},
		{name: "open bracket only", body: []byte("["), body400: BodyInvalidJSON,
			msg: "undecodable body: the JSON array ends before its first element"},
		{name: "bad gzip", enc: "gzip", body: []byte("definitely not gzip"), body400: BodyBadEncoding,
			msg: "undecodable body: gzip: invalid header"},
		{name: "zlib streams concatenated", enc: "deflate", body: append(compress(t, "deflate", []byte(ev)), compress(t, "deflate", []byte(ev))...),
			body400: BodyBadEncoding, msg: fmt.Sprintf("undecodable body: deflate: %d more byte(s) after the end of the zlib stream", len(compress(t, "deflate", []byte(ev))))},
		{name: "zlib then junk", enc: "deflate", body: append(compress(t, "deflate", []byte(ev)), "junk"...), body400: BodyBadEncoding,
			msg: "undecodable body: deflate: 4 more byte(s) after the end of the zlib stream"},
		{name: "truncated gzip", enc: "gzip", body: compress(t, "gzip", []byte(ev))[:20], body400: BodyBadEncoding},
		{name: "gzip bad checksum", enc: "gzip", body: corruptTrailer(compress(t, "gzip", []byte(ev))), body400: BodyBadEncoding},
		{name: "bad zlib", enc: "deflate", body: compress(t, "gzip", []byte(ev)), body400: BodyBadEncoding},
		{name: "raw deflate is not zlib", enc: "deflate", body: compress(t, "deflate", []byte(ev))[2:], body400: BodyBadEncoding},
		{name: "bad zstd", enc: "zstd", body: []byte("\x28\xb5\x2f\xfd garbage"), body400: BodyBadEncoding},
		{name: "bad snappy", enc: "snappy", body: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, body400: BodyBadEncoding},
		{name: "snappy framed stream", enc: "snappy", body: []byte("\xff\x06\x00\x00sNaPpY"), body400: BodyBadEncoding},
		{name: "gzip empty body", enc: "gzip", body: nil, body400: BodyBadEncoding},
		{name: "zstd window past 8 MiB", enc: "zstd", body: zstdFrame(25, []byte(ev)), body400: BodyBadEncoding,
			msg: "undecodable body: zstd: a frame needs a window over the 8388608 bytes this server allocates: window size exceeded"},
		{name: "zstd claims past the limit", enc: "zstd", body: zstdSingleSegment(1<<32, []byte(ev)), target: ErrDecodedTooLarge},
		{name: "zstd single segment past the window cap", enc: "zstd",
			body: append(zstdFrame(10, []byte(ev)), zstdSingleSegment(16<<20, []byte(ev))...), body400: BodyBadEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, d, tt.enc, tt.body)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %v, want errors.Is %v", err, tt.target)
			}
			var be *BodyError
			if isBody := errors.As(err, &be); isBody != (tt.body400 != "") {
				t.Errorf("error %v: BodyError %v, want %v", err, isBody, tt.body400 != "")
			} else if isBody && be.Reason != tt.body400 {
				t.Errorf("BodyError reason %q, want %q", be.Reason, tt.body400)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("error %q\nwant %q", err.Error(), tt.msg)
			}
			if tt.target == ErrUnsupportedEncoding {
				if cerr := CheckEncoding(tt.enc); !errors.Is(cerr, ErrUnsupportedEncoding) {
					t.Errorf("CheckEncoding(%q) = %v", tt.enc, cerr)
				}
			}
		})
	}

	t.Run("body error keeps the start of the body", func(t *testing.T) {
		_, err := decode(t, d, "", []byte("not json\nneither"))
		var be *BodyError
		if !errors.As(err, &be) || string(be.Raw) != "not json\nneither" {
			t.Errorf("BodyError %+v, want the body in Raw", err)
		}
	})
	t.Run("zstd 2 MiB window as Vector's level 3 sends", func(t *testing.T) {
		o := mustDecode(t, d, "zstd", zstdFrame(21, []byte(ev)))
		if len(o.Results) != 1 {
			t.Errorf("got %+v, want one result", o)
		}
	})
	t.Run("empty array is fine", func(t *testing.T) {
		o := mustDecode(t, d, "", []byte(" [ ] \n"))
		if o.Total != 0 {
			t.Errorf("Total %d, want 0", o.Total)
		}
	})
	t.Run("exactly max events", func(t *testing.T) {
		o := mustDecode(t, d, "", []byte(strings.Repeat(ev+"\n", 3)))
		if len(o.Results) != 3 {
			t.Errorf("%d results, want 3", len(o.Results))
		}
	})
	t.Run("not-an-object events are decoded JSON", func(t *testing.T) {
		o := mustDecode(t, d, "", []byte(`["a","b"]`))
		if len(o.Rejected) != 2 {
			t.Errorf("got %+v, want two not_an_object rejections", o)
		}
	})
}

// zstdFrame builds a zstd frame declaring a 1<<windowLog window, without
// content size, holding data in one raw block: what a streaming encoder
// with that window writes.
func zstdFrame(windowLog int, data []byte) []byte {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	hdr := uint32(1 | len(data)<<3) // last block, raw
	frame = append(frame, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	return append(frame, data...)
}

// zstdSingleSegment builds a single-segment zstd frame claiming size
// bytes of content (its window), holding data in one raw block.
func zstdSingleSegment(size uint64, data []byte) []byte {
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0}
	frame = binary.LittleEndian.AppendUint64(frame, size)
	hdr := uint32(1 | len(data)<<3)
	frame = append(frame, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	return append(frame, data...)
}

func corruptTrailer(gz []byte) []byte {
	out := bytes.Clone(gz)
	out[len(out)-8] ^= 0xff // CRC-32
	return out
}

func TestCheckEncoding(t *testing.T) {
	for _, enc := range []string{"", "identity", "IDENTITY", "gzip", "Gzip", "deflate", "DEFLATE", "zstd", "snappy", " snappy "} {
		if err := CheckEncoding(enc); err != nil {
			t.Errorf("CheckEncoding(%q) = %v, want nil", enc, err)
		}
	}
	for _, enc := range []string{"br", "compress", "lz4", "gzip,deflate", "x-snappy-framed", "zlib", strings.Repeat("z", 500)} {
		err := CheckEncoding(enc)
		if !errors.Is(err, ErrUnsupportedEncoding) {
			t.Errorf("CheckEncoding(%q) = %v, want ErrUnsupportedEncoding", enc, err)
		}
		if len(err.Error()) > 200 {
			t.Errorf("error for a long header is %d bytes: %q", len(err.Error()), err)
		}
	}
}

// TestMaxBytesReader checks the translation of the server's
// http.MaxBytesReader error: 413 with the original error kept.
func TestMaxBytesReader(t *testing.T) {
	d := newTestDecoder(t, nil)
	body := []byte(`{"check":"c","host":"h","region":"r","status":"ok","output":"` + strings.Repeat("x", 200) + `"}`)
	req := httptest.NewRequest(http.MethodPost, EventsPath, bytes.NewReader(body))
	limited := http.MaxBytesReader(httptest.NewRecorder(), req.Body, 100)
	_, err := d.Decode(Request{Body: limited})
	var mbe *http.MaxBytesError
	if !errors.Is(err, ErrBodyTooLarge) || !errors.As(err, &mbe) || mbe.Limit != 100 {
		t.Errorf("Decode over MaxBytesReader: %v, want ErrBodyTooLarge wrapping *http.MaxBytesError", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadError(t *testing.T) {
	d := newTestDecoder(t, nil)
	cause := errors.New("connection reset by peer")
	_, err := d.Decode(Request{Body: io.MultiReader(strings.NewReader("[{"), failingReader{cause})})
	var be *BodyError
	if !errors.Is(err, cause) || errors.As(err, &be) || errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("Decode with a failing body: %v, want the read error wrapped", err)
	}
}

func TestEscapes(t *testing.T) {
	d := newTestDecoder(t, nil)
	tests := []struct {
		name, host, output string
		wantHost, wantOut  string
	}{
		{"hyphen", `web\u002d1`, `ok`, "web-1", "ok"},
		{"all simple escapes", `h`, `q\" b\\ s\/ \b\f\n\r\t`, "h", "q\" b\\ s/ \b\f\n\r\t"},
		{"latin", `caf\u00e9`, `\u00E9t\u00e9`, "café", "été"},
		{"surrogate pair", `h`, `\ud83d\ude00 up`, "h", "😀 up"},
		{"unpaired high surrogate", `h`, `a\ud83db`, "h", "a\ufffdb"},
		{"unpaired low surrogate", `h`, `a\ude00b`, "h", "a\ufffdb"},
		{"high then non-low", `h`, `\ud83d\u0041`, "h", "\ufffdA"},
		{"raw utf8", `wéb`, `ünïcødé`, "wéb", "ünïcødé"},
		{"escaped key and long string", `` + strings.Repeat(`\u0061`, 40), strings.Repeat(`x\n`, 100),
			strings.Repeat("a", 40), strings.Repeat("x\n", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := `{"h\u006fst":"` + tt.host + `","region":"r","check":"c","status":"ok","output":"` + tt.output + `"}`
			r, j := one(t, d, ev)
			if j.Index >= 0 {
				t.Fatalf("rejected: %+v", j)
			}
			if r.Host != tt.wantHost || r.Output != tt.wantOut {
				t.Errorf("host %q output %q, want %q %q", r.Host, r.Output, tt.wantHost, tt.wantOut)
			}
		})
	}
}

func TestRawCopy(t *testing.T) {
	d := newTestDecoder(t, nil)
	long := `{"host":"h","output":"` + strings.Repeat("é", 3000) + `"}`
	dec, err := d.Decode(Request{Body: strings.NewReader("[" + long + `,{"host":"x"}]`)})
	if err != nil {
		t.Fatal(err)
	}
	first, second := dec.Rejected[0], dec.Rejected[1]
	dec.Release()
	// Reuse the pooled buffers with different bytes: the raw copies must
	// not change.
	again, err := d.Decode(Request{Body: strings.NewReader(strings.Repeat(" ", 9000) + `{"host":"overwritten"}`)})
	if err != nil {
		t.Fatal(err)
	}
	again.Release()
	if !first.Truncated || len(first.Raw) > MaxRawBytes || len(first.Raw) < MaxRawBytes-3 ||
		!strings.HasPrefix(long, string(first.Raw)) || !utf8.Valid(first.Raw) {
		t.Errorf("long raw: %d bytes, truncated %v, want a UTF-8 prefix of at most %d", len(first.Raw), first.Truncated, MaxRawBytes)
	}
	if second.Truncated || string(second.Raw) != `{"host":"x"}` {
		t.Errorf("short raw %q truncated %v", second.Raw, second.Truncated)
	}
}

func TestReleaseAndReuse(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.Labels = []string{"svc"} })
	first := []byte(`[{"check":"a","host":"h\u0031","labels":{"svc":"x"},"region":"r","status":"ok"},{"host":1}]`)
	second := []byte(`{"check":"b","host":"h2","region":"r","status":"warn"}`)
	o1 := mustDecode(t, d, "gzip", compress(t, "gzip", first))
	o2 := mustDecode(t, d, "", second)
	o3 := mustDecode(t, d, "gzip", compress(t, "gzip", first))
	if len(o2.Results) != 1 || len(o2.Rejected) != 0 || o2.Total != 1 ||
		o2.Results[0] != (res{Region: "r", Host: "h2", Check: "b", Status: health.Warning}) {
		t.Errorf("second decode carries state from the first: %+v", o2)
	}
	if fmt.Sprint(o1) != fmt.Sprint(o3) {
		t.Errorf("same body decoded differently:\n%+v\n%+v", o1, o3)
	}

	dec, err := d.Decode(Request{Body: bytes.NewReader(second)})
	if err != nil {
		t.Fatal(err)
	}
	dec.Release()
	dec.Release() // a second Release before reuse is harmless
	var nilDecoded *Decoded
	nilDecoded.Release()

	// A huge batch is decoded, but its buffers are not kept in the pool.
	huge := bytes.Repeat([]byte(`{"check":"c","host":"h","region":"r","status":"ok","output":"`+strings.Repeat("y", 900)+`"}`+"\n"), 6000)
	big, err := d.Decode(Request{Body: bytes.NewReader(huge)})
	if err != nil {
		t.Fatal(err)
	}
	if len(big.Batch.Results) != 6000 {
		t.Fatalf("%d results, want 6000", len(big.Batch.Results))
	}
	big.Release()
	if big.body != nil {
		t.Errorf("a %d-byte body buffer went back to the pool", len(huge))
	}
}

// TestConcurrentDecode runs decoders on many goroutines; with -race it
// checks that pooled state is never shared.
func TestConcurrentDecode(t *testing.T) {
	d := newTestDecoder(t, nil)
	events := fleetEvents(t, 200)
	type job struct {
		enc  string
		body []byte
	}
	var jobs []job
	for _, enc := range []string{"", "gzip", "deflate", "zstd", "snappy"} {
		jobs = append(jobs, job{enc, compress(t, enc, vectorArray(events))}, job{enc, compress(t, enc, vectorNDJSON(events[:50]))})
	}
	want := make([]string, len(jobs))
	for i, j := range jobs {
		want[i] = fmt.Sprint(mustDecode(t, d, j.enc, j.body))
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				k := (g + i) % len(jobs)
				o, err := decode(t, d, jobs[k].enc, jobs[k].body)
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				if got := fmt.Sprint(o); got != want[k] {
					t.Errorf("goroutine %d job %d decoded differently", g, k)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestNewDecoderErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Ingest)
		msg    string
	}{
		{"bad regexp", func(c *config.Ingest) { c.RegionFromHost = "([a-z]+" }, "ingest: region_from_host: error parsing regexp: missing closing ): `([a-z]+`"},
		{"two groups", func(c *config.Ingest) { c.RegionFromHost = `^(\w+)-(\d+)` }, "ingest: region_from_host: use at most one capture group (the region)"},
		{"zero body", func(c *config.Ingest) { c.MaxBodyBytes = 0 }, "ingest: max_body_bytes must be positive"},
		{"zero decoded", func(c *config.Ingest) { c.MaxDecodedBytes = 0 }, "ingest: max_decoded_bytes must be positive"},
		{"zero events", func(c *config.Ingest) { c.MaxEvents = 0 }, "ingest: max_events must be positive"},
		{"zero field", func(c *config.Ingest) { c.MaxFieldBytes = 0 }, "ingest: max_field_bytes must be positive"},
		{"zero output", func(c *config.Ingest) { c.MaxOutputBytes = 0 }, "ingest: max_output_bytes must be positive"},
		{"no metric", func(c *config.Ingest) { c.StatusMetric = "" }, "ingest: status_metric must not be empty"},
		{"empty field", func(c *config.Ingest) { c.Fields.Team = "" }, "ingest: fields.team must not be empty"},
		{"duplicate field", func(c *config.Ingest) { c.Fields.Check = "host" }, `ingest: fields.check: "host" already names host`},
		{"empty label", func(c *config.Ingest) { c.Labels = []string{"a", ""} }, "ingest: labels[1] must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.mutate(&cfg)
			d, err := NewDecoder(cfg)
			if err == nil || d != nil {
				t.Fatalf("NewDecoder = %v, %v; want an error", d, err)
			}
			if err.Error() != tt.msg {
				t.Errorf("error %q\nwant  %q", err, tt.msg)
			}
		})
	}
}

// TestDecodeBodyBytesInPlace: a body handed over already read decodes as
// the same body read from Body, without being copied, and is held to
// max_body_bytes all the same.
func TestDecodeBodyBytesInPlace(t *testing.T) {
	d := newTestDecoder(t, func(c *config.Ingest) { c.MaxBodyBytes = 64 << 10 })
	plain := vectorArray(pipelineEvents(t, 50))
	received := time.Date(2026, 8, 21, 12, 0, 0, 0, time.UTC)
	for _, enc := range []string{"", "gzip", "zstd", "snappy"} {
		t.Run("encoding "+enc, func(t *testing.T) {
			body := compress(t, enc, plain)
			want := mustDecode(t, d, enc, body)
			if len(want.Results) != 50 {
				t.Fatalf("%d results from the reader", len(want.Results))
			}
			dec, err := d.Decode(Request{BodyBytes: body, Body: failingReader{errors.New("Body must not be read")},
				ContentEncoding: enc, Received: received})
			if err != nil {
				t.Fatal(err)
			}
			var got []res
			for _, r := range dec.Batch.Results {
				got = append(got, toRes(r))
			}
			diff(t, "results", got, want.Results)
			if enc == "" {
				// Uncompressed, the results are views into the caller's
				// bytes: nothing was copied.
				i := bytes.Index(body, []byte(want.Results[0].Host))
				body[i] = '#'
				if dec.Batch.Results[0].Host[0] != '#' {
					t.Fatal("results do not point into BodyBytes: the body was copied")
				}
			}
			dec.Release()
		})
	}
	t.Run("too large", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), 64<<10+1)
		if _, err := d.Decode(Request{BodyBytes: big, Received: received}); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("got %v, want ErrBodyTooLarge", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		var be *BodyError
		if _, err := d.Decode(Request{BodyBytes: []byte{}, Received: received}); !errors.As(err, &be) || be.Reason != BodyEmpty {
			t.Fatalf("got %v, want an empty-body error", err)
		}
	})
}

// TestPlainText holds the word-at-a-time test to the byte-by-byte
// definition, at every length and with any bytes after the value (short
// values are read with what follows them).
func TestPlainText(t *testing.T) {
	reference := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 || c >= 0x7f {
				return false
			}
		}
		return true
	}
	bad := []byte{0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff}
	for n := 1; n <= 40; n++ {
		for pos := -1; pos < n; pos++ {
			for _, c := range bad {
				if pos < 0 && c != bad[0] {
					continue // the clean value, once per length
				}
				// Followed by a control byte, a DEL and a high byte: a
				// short value must not see them.
				buf := append(bytes.Repeat([]byte("x"), n), 0x00, 0x7f, 0xff, '"', 0x01, 0x02, 0x03, 0x04)
				if pos >= 0 {
					buf[pos] = c
				}
				for _, b := range [][]byte{buf[:n], buf[:n:n], bytes.Clone(buf[:n])} {
					if got, want := plainText(b), reference(b); got != want {
						t.Fatalf("plainText(%q, cap %d) = %v, want %v", b, cap(b), got, want)
					}
				}
			}
		}
	}
}

// TestKeyTable: keys that share their first and last eight bytes are told
// apart, at every length class (up to 8, up to 16, longer).
func TestKeyTable(t *testing.T) {
	names := []string{"host", "kind", "timestamp", "timestanp", "source_type", "sourcextype",
		"a_very_long_field_name_x", "a_very_long_other_name_x", "a_very_long_field_name_y"}
	var kt keyTable
	for i, n := range names {
		kt.add(n, 1<<i, -1)
	}
	for i, n := range names {
		// Looked up from a larger buffer, as keys are read from a body.
		body := []byte(`"` + n + `":1}`)
		e := kt.lookup(body[1 : 1+len(n)])
		if e == nil || e.fields != 1<<i || e.name != n {
			t.Errorf("lookup(%q) = %+v", n, e)
		}
	}
	for _, n := range []string{"", "hos", "hosts", "timestamq", "a_very_long_xxxxx_name_x", "source_typ", "a_very_long_field_name_z"} {
		if e := kt.lookup([]byte(n)); e != nil {
			t.Errorf("lookup(%q) = %+v, want none", n, e)
		}
	}
}

func TestBlank(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{" ", true},
		{"   ", true},
		{"\u00a0", true},
		{" \u2003 ", true},
		{"web-1", false},
		{" web-1", false},
		{"web-1 ", false},
		{"\u00a0web", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := blank([]byte(tt.in)); got != tt.want {
			t.Errorf("blank(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
