package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

var fuzzConfig = func(c *config.Ingest) {
	c.Labels = []string{"service", "rack"}
	c.MaxEvents = 1000
	c.MaxBodyBytes = 1 << 20
	c.MaxDecodedBytes = 4 << 20
	c.MaxFieldBytes = 64
	c.MaxOutputBytes = 128
	c.RegionFromHost = `^[a-z]+-\d+\.([a-z0-9-]+)\.`
}

var reasons = []string{ReasonInvalidJSON, ReasonNotAnObject, ReasonMissingField, ReasonInvalidStatus,
	ReasonInvalidTimestamp, ReasonInvalidSeverity, ReasonFieldTooLong, ReasonInvalidField,
	ReasonUnknownMetric, ReasonInvalidMetric}

// FuzzDecode checks that decoding never panics, accounts for every event
// as a result or a rejection, only emits results within the contract, and
// agrees with encoding/json on what is well-formed. With compressed unset
// the body is compressed by the harness as encoding names, so the fuzzer
// explores the JSON behind every decompressor.
func FuzzDecode(f *testing.F) {
	d := newTestDecoder(f, fuzzConfig)
	var cfg config.Ingest = testConfig()
	fuzzConfig(&cfg)
	f.Fuzz(func(t *testing.T, body []byte, encoding string, compressed bool) {
		req := body
		if enc := strings.ToLower(strings.TrimSpace(encoding)); !compressed && CheckEncoding(enc) == nil {
			req = compress(t, enc, body)
		}
		dec, err := d.Decode(Request{Body: bytes.NewReader(req), ContentEncoding: encoding})
		if err != nil {
			var be *BodyError
			if dec != nil {
				t.Fatalf("Decode returned a Decoded with error %v", err)
			}
			if !errors.Is(err, ErrBodyTooLarge) && !errors.Is(err, ErrDecodedTooLarge) && !errors.Is(err, ErrTooManyEvents) &&
				!errors.Is(err, ErrUnsupportedEncoding) && !errors.As(err, &be) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		defer dec.Release()
		if dec.Total != len(dec.Batch.Results)+len(dec.Rejected) {
			t.Fatalf("Total %d != %d results + %d rejected", dec.Total, len(dec.Batch.Results), len(dec.Rejected))
		}
		if dec.Total > cfg.MaxEvents {
			t.Fatalf("Total %d past max_events", dec.Total)
		}
		rejected := map[int]bool{}
		last := -1
		for _, r := range dec.Rejected {
			if r.Index <= last || r.Index >= dec.Total {
				t.Fatalf("rejection index %d after %d of %d", r.Index, last, dec.Total)
			}
			last = r.Index
			rejected[r.Index] = true
			if !slices.Contains(reasons, r.Reason) || r.Err == "" || len(r.Raw) > MaxRawBytes {
				t.Fatalf("bad rejection %+v", r)
			}
		}
		for _, r := range dec.Batch.Results {
			checkResult(t, &cfg, r)
		}
		if !compressed && CheckEncoding(encoding) == nil {
			agreeWithEncodingJSON(t, body, dec, rejected)
		}
	})
}

func checkResult(t *testing.T, cfg *config.Ingest, r health.Result) {
	for name, v := range map[string][]byte{"host": r.Host, "region": r.Region, "check": r.Check, "team": r.Team, "event_id": r.EventID} {
		if v == nil && (name == "team" || name == "event_id") {
			continue
		}
		if len(v) == 0 || len(v) > cfg.MaxFieldBytes || !utf8.Valid(v) || bytes.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			t.Fatalf("result %s %q breaks the field contract", name, v)
		}
	}
	if len(r.Output) > cfg.MaxOutputBytes || r.Status > health.Unknown || r.Severity > health.SeverityCritical ||
		r.Time < 0 || r.Interval < 0 {
		t.Fatalf("result out of range: %+v", r)
	}
	for _, l := range r.Labels {
		if !slices.Contains(cfg.Labels, l.Key) || len(l.Value) == 0 || len(l.Value) > cfg.MaxFieldBytes {
			t.Fatalf("label %q=%q", l.Key, l.Value)
		}
	}
}

// agreeWithEncodingJSON: a body encoding/json finds valid has no
// invalid_json rejection, one event per array element (or one for an
// object), and each accepted log event's host is what encoding/json
// decodes.
func agreeWithEncodingJSON(t *testing.T, body []byte, dec *Decoded, rejected map[int]bool) {
	body = bytes.TrimPrefix(body, utf8BOM)
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !json.Valid(body) || len(trimmed) == 0 || bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) >= maxDepth {
		return
	}
	var elems []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(body, &elems); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
	} else {
		elems = []json.RawMessage{body}
	}
	if dec.Total != len(elems) {
		t.Fatalf("decoded %d events, encoding/json sees %d", dec.Total, len(elems))
	}
	for _, r := range dec.Rejected {
		if r.Reason == ReasonInvalidJSON {
			t.Fatalf("valid JSON rejected as %s: %s", r.Reason, r.Err)
		}
	}
	next := 0
	for i, e := range elems {
		if rejected[i] {
			continue
		}
		res := dec.Batch.Results[next]
		next++
		var m map[string]json.RawMessage
		if json.Unmarshal(e, &m) != nil {
			t.Fatalf("accepted event %d is not an object: %s", i, e)
		}
		var host string
		if _, metric := m["gauge"]; metric || json.Unmarshal(m["host"], &host) != nil {
			continue
		}
		if host != string(res.Host) {
			t.Fatalf("event %d host %q, encoding/json says %q", i, res.Host, host)
		}
	}
}
