package ingest

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// field indexes the values of a fieldSet: first the event fields, whose
// names come from config, then the keys of Vector's metric JSON, whose
// names Vector fixes.
type field uint8

const (
	fieldHost field = iota
	fieldRegion
	fieldCheck
	fieldStatus
	fieldTimestamp
	fieldOutput
	fieldMessage
	fieldSeverity
	fieldTeam
	fieldInterval
	fieldEventID
	fieldLabels
	metricName
	metricKind
	metricTags
	metricGauge
	metricOtherValue // counter, set, distribution...: a metric, but no gauge
	metricTimestamp
	metricIntervalMs
	numFields

	numEventFields = metricName
)

// fieldSet holds the values of the fields one event carried. Only the
// present bits are reset between events; vals are overwritten.
type fieldSet struct {
	present uint32
	vals    [numFields]value
}

// set stores v for every field in mask.
func (f *fieldSet) set(mask uint32, v value) {
	f.present |= mask
	if mask&(mask-1) == 0 { // one field, the common case
		f.vals[bits.TrailingZeros32(mask)] = v
		return
	}
	for m := mask; m != 0; m &= m - 1 {
		f.vals[bits.TrailingZeros32(m)] = v
	}
}

// get returns the field's value; kind is kindNone when it was absent.
func (f *fieldSet) get(i field) value {
	if f.present&(1<<i) == 0 {
		return value{}
	}
	return f.vals[i]
}

// isMetric reports whether the event has the shape of a Vector metric: a
// name and a value. Vector always adds "kind"; a sender building DESIGN's
// documented shape by hand may not, so without a kind the value must be an
// object ("gauge": {"value": N}). A log event may have "name" and "kind"
// fields (Kubernetes objects do), but not a metric value too.
func (f *fieldSet) isMetric() bool {
	if f.get(metricName).kind != kindString {
		return false
	}
	if f.present&(1<<metricKind) != 0 {
		return f.present&(1<<metricGauge|1<<metricOtherValue) != 0
	}
	return f.get(metricGauge).kind == kindObject || f.get(metricOtherValue).kind == kindObject
}

// keyEntry says what one JSON key feeds: a set of fields (one key can feed
// several, say "timestamp" for both log and metric events) and a label.
type keyEntry struct {
	name string
	// prefix is the name's first eight bytes (see prefixWord), suffix its
	// last eight when it is longer: names up to 16 bytes compare as two
	// words.
	prefix, suffix uint64
	fields         uint32
	label          int // index in the configured label keys, -1 for none
}

// keyTable resolves JSON keys, bucketed by length so a lookup compares
// few candidates and never allocates.
type keyTable struct {
	byLen [][]keyEntry
}

// add makes name feed fields and the label (-1 for none).
func (t *keyTable) add(name string, fields uint32, label int) {
	for len(t.byLen) <= len(name) {
		t.byLen = append(t.byLen, nil)
	}
	bucket := t.byLen[len(name)]
	for i := range bucket {
		if bucket[i].name == name {
			bucket[i].fields |= fields
			if bucket[i].label < 0 {
				bucket[i].label = label
			}
			return
		}
	}
	t.byLen[len(name)] = append(bucket, keyEntry{name: name, prefix: prefixWord([]byte(name)), suffix: suffixWord([]byte(name)),
		fields: fields, label: label})
}

// lookup returns the entry for key k, nil for a key nothing reads.
func (t *keyTable) lookup(k []byte) *keyEntry {
	if len(k) >= len(t.byLen) {
		return nil
	}
	bucket := t.byLen[len(k)]
	if len(bucket) == 0 {
		return nil
	}
	p := prefixWord(k)
	if len(k) <= 8 {
		for i := range bucket {
			if bucket[i].prefix == p {
				return &bucket[i]
			}
		}
		return nil
	}
	sw := suffixWord(k)
	for i := range bucket {
		if e := &bucket[i]; e.prefix == p && e.suffix == sw && (len(k) <= 16 || string(k[8:len(k)-8]) == e.name[8:len(k)-8]) {
			return e
		}
	}
	return nil
}

// suffixWord is the last eight bytes of a key longer than eight, else 0.
func suffixWord(k []byte) uint64 {
	if len(k) <= 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(k[len(k)-8:])
}

// prefixWord packs the first (up to) eight bytes of k into a word, so most
// keys compare in one instruction.
func prefixWord(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.LittleEndian.Uint64(k)
	}
	if cap(k) >= 8 {
		// A key read from the body is followed by at least its closing
		// quote and more: load a whole word and mask off what follows.
		return binary.LittleEndian.Uint64(k[:8]) & (1<<(8*uint(len(k))) - 1)
	}
	var w uint64
	for i := len(k) - 1; i >= 0; i-- {
		w = w<<8 | uint64(k[i])
	}
	return w
}

// buildKeyTables resolves the configured field names and label keys into
// the lookup tables, refusing empty or duplicate names.
func (d *Decoder) buildKeyTables(f config.Fields) error {
	names := [numEventFields]string{
		fieldHost: f.Host, fieldRegion: f.Region, fieldCheck: f.Check, fieldStatus: f.Status,
		fieldTimestamp: f.Timestamp, fieldOutput: f.Output, fieldMessage: f.Message,
		fieldSeverity: f.Severity, fieldTeam: f.Team, fieldInterval: f.Interval,
		fieldEventID: f.EventID, fieldLabels: f.Labels,
	}
	keys := [numEventFields]string{"host", "region", "check", "status", "timestamp", "output",
		"message", "severity", "team", "interval", "event_id", "labels"}
	seen := map[string]string{}
	for i, name := range names {
		if name == "" {
			return fmt.Errorf("ingest: fields.%s must not be empty", keys[i])
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("ingest: fields.%s: %q already names %s", keys[i], name, other)
		}
		seen[name] = keys[i]
		d.topKeys.add(name, 1<<i, -1)
		if field(i) != fieldLabels {
			d.tagKeys.add(name, 1<<i, -1)
		}
		d.fieldNames[i] = "field " + strconv.Quote(name)
		d.tagNames[i] = "tag " + strconv.Quote(name)
	}
	// A metric's timestamp and value are top-level keys, not tags.
	d.tagNames[fieldTimestamp] = `field "timestamp"`
	d.tagNames[fieldStatus] = `gauge "value"`

	d.topKeys.add("name", 1<<metricName, -1)
	d.topKeys.add("kind", 1<<metricKind, -1)
	d.topKeys.add("tags", 1<<metricTags, -1)
	d.topKeys.add("gauge", 1<<metricGauge, -1)
	d.topKeys.add("timestamp", 1<<metricTimestamp, -1)
	d.topKeys.add("interval_ms", 1<<metricIntervalMs, -1)
	for _, k := range config.MetricValueKeys() {
		d.topKeys.add(k, 1<<metricOtherValue, -1)
	}
	for i, l := range d.labelKeys {
		if l == "" {
			return fmt.Errorf("ingest: labels[%d] must not be empty", i)
		}
		d.tagKeys.add(l, 0, i)
	}
	return nil
}
