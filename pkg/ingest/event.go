package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Rejection reasons, the stable `reason` label of rejected-event metrics.
const (
	ReasonInvalidJSON      = "invalid_json"      // the event is not well-formed JSON
	ReasonNotAnObject      = "not_an_object"     // well-formed JSON, but not an object
	ReasonMissingField     = "missing_field"     // host, region, check or status absent or null
	ReasonInvalidStatus    = "invalid_status"    // status is not a known word or 0..3
	ReasonInvalidTimestamp = "invalid_timestamp" // neither RFC 3339 nor a Unix time
	ReasonInvalidSeverity  = "invalid_severity"  // not critical, error, warning or info
	ReasonFieldTooLong     = "field_too_long"    // an identity field or label past max_field_bytes
	ReasonInvalidField     = "invalid_field"     // wrong JSON type, empty, control characters, bad UTF-8
	ReasonUnknownMetric    = "unknown_metric"    // a Vector metric other than the status metric
	ReasonInvalidMetric    = "invalid_metric"    // the status metric, but not a gauge with a number
)

// fault is why an event is rejected. Built only on the rejection path.
type fault struct {
	reason, msg string
}

func faultf(reason, format string, args ...any) *fault {
	return &fault{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// quote renders a value for a message, bounded so a hostile value cannot
// bloat the dead-letter store.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(truncateUTF8(b, max))) + "..."
	}
	return strconv.Quote(string(b))
}

// truncateUTF8 cuts b to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return b[:i]
		}
	}
	return b[:n]
}

// decodeEvent decodes the JSON value at s.pos as one event and records a
// result or a rejection. When the value is not well-formed JSON (or, with
// whole set, is followed by more than whitespace) it records nothing and
// returns the syntax error: the caller knows the event's extent and
// dead-letters it.
func (dec *Decoded) decodeEvent(s *scanner, index int, whole bool) error {
	s.ws()
	start := s.pos
	if start >= len(s.data) || s.data[start] != '{' {
		if err := s.skip(0); err != nil {
			return err
		}
		if err := s.end(whole); err != nil {
			return err
		}
		dec.wellFormed++
		dec.reject(index, &fault{reason: ReasonNotAnObject,
			msg: "event is a JSON " + kindOf(s.data[start]).String() + ", not an object"}, s.data[start:s.pos])
		return nil
	}
	fs := &dec.fields
	fs.present = 0
	if err := dec.readObject(s, fs); err != nil {
		return err
	}
	raw := s.data[start:s.pos]
	if err := s.end(whole); err != nil {
		return err
	}
	dec.wellFormed++
	if fs.isMetric() {
		dec.metricEvent(fs, raw, index)
	} else {
		dec.logEvent(fs, raw, index)
	}
	return nil
}

// end checks, for a value that must fill its data, that only whitespace
// follows.
func (s *scanner) end(whole bool) error {
	if !whole {
		return nil
	}
	s.ws()
	if s.pos < len(s.data) {
		return s.errorf(s.pos, "unexpected data after the event")
	}
	return nil
}

// kindOf is the JSON type of a well-formed value starting with c.
func kindOf(c byte) kind {
	switch {
	case c == '"':
		return kindString
	case c == '[':
		return kindArray
	case c == 't' || c == 'f':
		return kindBool
	case c == 'n':
		return kindNull
	}
	return kindNumber
}

// readObject reads the event object at s.pos into fs, decoding the values
// of known keys and validating the rest. Compact JSON, what Vector sends,
// takes the inlined branches; whitespace falls back to the general calls.
func (dec *Decoded) readObject(s *scanner, fs *fieldSet) error {
	if s.enterObject() {
		return nil
	}
	keys := &dec.d.topKeys
	for {
		var k []byte
		var err error
		if s.pos < len(s.data) && s.data[s.pos] == '"' {
			if k, err = s.str(); err == nil {
				if s.pos < len(s.data) && s.data[s.pos] == ':' {
					s.pos++
				} else {
					err = s.colon()
				}
			}
		} else {
			k, err = s.key()
		}
		if err != nil {
			return err
		}
		if e := keys.lookup(k); e != nil {
			v, err := s.value(1)
			if err != nil {
				return err
			}
			fs.set(e.fields, v)
		} else if err := s.skip(1); err != nil {
			return err
		}
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case '}':
				s.pos++
				return nil
			}
		}
		more, err := s.objectMore()
		if err != nil || !more {
			return err
		}
	}
}

// logEvent maps a log event, the usual shape, onto a result.
func (dec *Decoded) logEvent(fs *fieldSet, raw []byte, index int) {
	r := dec.newResult()
	f := dec.fill(r, fs, &dec.d.fieldNames)
	if f == nil {
		f = dec.logLabels(fs)
	}
	if f != nil {
		dec.dropResult()
		dec.reject(index, f, raw)
		return
	}
	dec.finishLabels(r)
}

// fill maps the fields every event kind shares onto r, checking each.
// names say how messages call the fields (field "host", tag "host").
func (dec *Decoded) fill(r *health.Result, fs *fieldSet, names *[numEventFields]string) *fault {
	d := dec.d
	var f *fault
	if r.Host, f = d.text(fs, fieldHost, names, true); f != nil {
		return f
	}
	// An empty region is a missing one when region_from_host can name it:
	// a remap that copies an absent field writes "".
	if v := fs.get(fieldRegion); v.kind == kindString && len(v.b) == 0 && d.regionFromHost != nil {
		r.Region, f = dec.regionOf(r.Host, names)
	} else if r.Region, f = d.text(fs, fieldRegion, names, false); f == nil && r.Region == nil {
		r.Region, f = dec.regionOf(r.Host, names)
	}
	if f != nil {
		return f
	}
	if r.Check, f = d.text(fs, fieldCheck, names, true); f != nil {
		return f
	}
	if r.Status, f = status(fs.get(fieldStatus), names); f != nil {
		return f
	}
	if r.Time, f = timestamp(fs.get(fieldTimestamp), names); f != nil {
		return f
	}
	if r.Output, f = d.output(fs, names); f != nil {
		return f
	}
	if r.Severity, f = severity(fs.get(fieldSeverity), names); f != nil {
		return f
	}
	if r.Team, f = d.text(fs, fieldTeam, names, false); f != nil {
		return f
	}
	if v := fs.get(fieldInterval); v.kind != kindNone && v.kind != kindNull {
		var ok bool
		if r.Interval, ok = parseInterval(v); !ok {
			return faultf(ReasonInvalidField, `invalid value %s for %s: want a number of seconds or a duration such as "30s"`,
				quote(v.b), names[fieldInterval])
		}
	}
	if r.EventID, f = d.text(fs, fieldEventID, names, false); f != nil {
		return f
	}
	return nil
}

// text reads an identity field: host, region, check, team or event_id.
// They name alert instances and metric labels, so they must be non-empty
// printable UTF-8 within max_field_bytes. event_id may also be a number.
func (d *Decoder) text(fs *fieldSet, i field, names *[numEventFields]string, required bool) ([]byte, *fault) {
	v := fs.get(i)
	switch v.kind {
	case kindNone, kindNull:
		if required {
			return nil, faultf(ReasonMissingField, "missing required %s", names[i])
		}
		return nil, nil
	case kindString:
	case kindNumber:
		if i != fieldEventID {
			return nil, faultf(ReasonInvalidField, "%s must be a string, got number", names[i])
		}
	default:
		return nil, faultf(ReasonInvalidField, "%s must be a string, got %s", names[i], v.kind)
	}
	if f := d.checkText(names[i], v.b); f != nil {
		return nil, f
	}
	if blank(v.b) {
		return nil, faultf(ReasonInvalidField, "%s is blank: nothing but whitespace", names[i])
	}
	return v.b, nil
}

// blank reports whether b, printable and not empty, is only whitespace:
// as meaningless as an empty name. A value that starts with a visible
// ASCII byte, every real name, is answered from that byte.
func blank(b []byte) bool {
	if c := b[0]; c != ' ' && c < utf8.RuneSelf {
		return false
	}
	return len(bytes.TrimSpace(b)) == 0
}

// checkText holds an identity value or label to max_field_bytes and
// printable UTF-8.
func (d *Decoder) checkText(name string, b []byte) *fault {
	if len(b) == 0 {
		return faultf(ReasonInvalidField, "%s is empty", name)
	}
	if len(b) > d.maxField {
		return faultf(ReasonFieldTooLong, "%s is %d bytes, longer than max_field_bytes %d", name, len(b), d.maxField)
	}
	if plainText(b) {
		return nil
	}
	// Skip eight plain ASCII bytes at a time; the byte loop gives the
	// exact answer from the first word that needs a closer look.
	i := 0
	for i+8 <= len(b) && textLanes(binary.LittleEndian.Uint64(b[i:])) == 0 {
		i += 8
	}
	ascii := true
	for _, c := range b[i:] {
		if c < 0x20 || c == 0x7f {
			return faultf(ReasonInvalidField, "%s contains control character %q", name, rune(c))
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(b) {
		return faultf(ReasonInvalidField, "%s is not valid UTF-8", name)
	}
	return nil
}

// plainText reports whether b (not empty) is printable ASCII, the common
// case, a word at a time: the last word overlaps the one before it rather
// than falling back to bytes, and a value shorter than a word is read
// with the bytes after it, which lie within its capacity (the rest of the
// body, or of the arena), masked off.
func plainText(b []byte) bool {
	n := len(b)
	switch {
	case n >= 8:
		var flags uint64
		for i := 0; i+8 <= n; i += 8 {
			flags |= textLanes(binary.LittleEndian.Uint64(b[i:]))
		}
		return flags|textLanes(binary.LittleEndian.Uint64(b[n-8:])) == 0
	case cap(b) >= 8:
		keep := uint64(1)<<(8*uint(n)) - 1
		w := binary.LittleEndian.Uint64(b[:8])&keep | 'a'*lanes01&^keep
		return textLanes(w) == 0
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// textLanes flags the lanes of x holding a control character (below 0x20,
// or DEL) or a non-ASCII byte.
func textLanes(x uint64) uint64 {
	del := x ^ (0x7f * lanes01)
	return ((x-0x20*lanes01)&^x | (del-lanes01)&^del | x) & lanes80
}

// regionOf derives the region from the host with region_from_host: the
// first capture group, else the whole match.
func (dec *Decoded) regionOf(host []byte, names *[numEventFields]string) ([]byte, *fault) {
	re := dec.d.regionFromHost
	if re == nil {
		return nil, faultf(ReasonMissingField, "missing required %s", names[fieldRegion])
	}
	if dec.lastHost == nil || !bytes.Equal(host, dec.lastHost) {
		var region []byte
		if m := re.FindSubmatchIndex(host); m != nil {
			if len(m) >= 4 && m[2] >= 0 {
				region = host[m[2]:m[3]]
			} else {
				region = host[m[0]:m[1]]
			}
		}
		dec.lastHost, dec.lastRegion = host, region
	}
	if len(dec.lastRegion) == 0 {
		return nil, faultf(ReasonMissingField, "missing required %s, and host %s does not match region_from_host %q",
			names[fieldRegion], quote(host), re.String())
	}
	return dec.lastRegion, nil
}

const statusWords = "passing, warning, critical or unknown (or ok, pass, up, warn, crit, fail, failing, down, error, 0-3)"

// status reads the status: a word or alias (health.ParseStatus) or a
// number 0..3.
func status(v value, names *[numEventFields]string) (health.Status, *fault) {
	switch v.kind {
	case kindNone, kindNull:
		return 0, faultf(ReasonMissingField, "missing required %s", names[fieldStatus])
	case kindString:
		if st, ok := health.ParseStatus(v.b); ok {
			return st, nil
		}
		return 0, faultf(ReasonInvalidStatus, "invalid value %s for %s: want %s", quote(v.b), names[fieldStatus], statusWords)
	case kindNumber:
		if n, ok := parseNumber(v.b); ok {
			if st, ok := health.StatusFromValue(n); ok {
				return st, nil
			}
		}
		return 0, faultf(ReasonInvalidStatus, "invalid value %s for %s: want 0, 1, 2 or 3", v.b, names[fieldStatus])
	}
	return 0, faultf(ReasonInvalidStatus, "%s must be a string or a number, got %s", names[fieldStatus], v.kind)
}

// timestamp reads an optional timestamp into Unix nanoseconds, 0 when
// absent.
func timestamp(v value, names *[numEventFields]string) (int64, *fault) {
	var ns int64
	ok := false
	switch v.kind {
	case kindNone, kindNull:
		return 0, nil
	case kindString:
		if ns, ok = parseRFC3339(v.b); !ok && len(v.b) > 0 && isDigit(v.b[0]) {
			ns, ok = parseUnix(v.b)
		}
	case kindNumber:
		ns, ok = parseUnix(v.b)
	}
	if !ok {
		if v.kind == kindString && wellFormedRFC3339(v.b) {
			return 0, faultf(ReasonInvalidTimestamp, "%s %s is out of range: want a time after %s and before %s",
				names[fieldTimestamp], quote(v.b), time.Unix(0, 0).UTC().Format(time.DateOnly),
				time.Unix(maxUnixSeconds, 0).UTC().Format(time.RFC3339))
		}
		return 0, faultf(ReasonInvalidTimestamp,
			"invalid value %s for %s: want RFC 3339 or Unix seconds, milliseconds, microseconds or nanoseconds",
			quote(v.b), names[fieldTimestamp])
	}
	return ns, nil
}

// wellFormedRFC3339 reports whether b is RFC 3339 as parseRFC3339 reads
// it, whatever the instant: asked only on the rejection path, so that a
// time Unix nanoseconds cannot hold is called out of range, not malformed.
func wellFormedRFC3339(b []byte) bool {
	_, _, ok := splitRFC3339(b)
	return ok
}

// output reads output, else message, truncated (never rejected for length)
// to max_output_bytes on a UTF-8 boundary.
func (d *Decoder) output(fs *fieldSet, names *[numEventFields]string) ([]byte, *fault) {
	i := fieldOutput
	v := fs.get(i)
	if v.kind == kindNone || v.kind == kindNull {
		i = fieldMessage
		v = fs.get(i)
	}
	switch v.kind {
	case kindNone, kindNull:
		return nil, nil
	case kindString:
		return truncateUTF8(v.b, d.maxOutput), nil
	}
	return nil, faultf(ReasonInvalidField, "%s must be a string, got %s", names[i], v.kind)
}

// severity reads an optional severity; an empty string means none.
func severity(v value, names *[numEventFields]string) (health.Severity, *fault) {
	switch v.kind {
	case kindNone, kindNull:
		return health.SeverityNone, nil
	case kindString:
		if len(v.b) == 0 {
			return health.SeverityNone, nil
		}
		if sev, ok := health.ParseSeverity(v.b); ok {
			return sev, nil
		}
	}
	return 0, faultf(ReasonInvalidSeverity, "invalid value %s for %s: want critical, error, warning or info",
		quote(v.b), names[fieldSeverity])
}

// logLabels keeps the configured keys of a log event's labels object.
func (dec *Decoded) logLabels(fs *fieldSet) *fault {
	v := fs.get(fieldLabels)
	switch v.kind {
	case kindNone, kindNull:
		return nil
	case kindObject:
	default:
		return faultf(ReasonInvalidField, "%s must be an object, got %s", dec.d.fieldNames[fieldLabels], v.kind)
	}
	if len(dec.d.labelKeys) == 0 {
		return nil
	}
	keys := &dec.d.tagKeys
	s := scanner{data: v.b, arena: &dec.arena}
	if s.enterObject() {
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		if e := keys.lookup(k); e != nil && e.label >= 0 {
			var lv value
			if lv, err = s.value(2); err == nil {
				if f := dec.setLabel(e.label, lv); f != nil {
					return f
				}
			}
		} else {
			err = s.skip(2)
		}
		if err != nil {
			return &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		more, err := s.objectMore()
		if err != nil {
			return &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		if !more {
			return nil
		}
	}
}

// setLabel keeps one configured label. Numbers and booleans are kept as
// their JSON text; null and empty strings mean no label.
func (dec *Decoded) setLabel(i int, v value) *fault {
	name := "label " + strconv.Quote(dec.d.labelKeys[i])
	switch v.kind {
	case kindNull:
		return nil
	case kindString:
		if len(v.b) == 0 {
			return nil
		}
	case kindNumber, kindBool:
	default:
		return faultf(ReasonInvalidField, "%s must be a string, number or boolean, got %s", name, v.kind)
	}
	if f := dec.d.checkText(name, v.b); f != nil {
		return f
	}
	if len(dec.labelVals) != len(dec.d.labelKeys) {
		dec.labelVals = make([][]byte, len(dec.d.labelKeys))
	}
	dec.labelVals[i] = v.b
	dec.labelsDirty = true
	return nil
}

// finishLabels moves the event's labels, in configured order, into the
// shared label slice and points r at them.
func (dec *Decoded) finishLabels(r *health.Result) {
	if !dec.labelsDirty {
		return
	}
	start := len(dec.labels)
	for i, v := range dec.labelVals {
		if v != nil {
			dec.labels = append(dec.labels, health.ResultLabel{Key: dec.d.labelKeys[i], Value: v})
			dec.labelVals[i] = nil
		}
	}
	dec.labelsDirty = false
	r.Labels = dec.labels[start:len(dec.labels):len(dec.labels)]
}

// newResult appends a zeroed result for the event being decoded.
func (dec *Decoded) newResult() *health.Result {
	rs := dec.Batch.Results
	if len(rs) < cap(rs) {
		rs = rs[:len(rs)+1]
		rs[len(rs)-1] = health.Result{}
	} else {
		rs = append(rs, health.Result{})
	}
	dec.Batch.Results = rs
	return &rs[len(rs)-1]
}

// dropResult takes back the result of an event that was rejected.
func (dec *Decoded) dropResult() {
	dec.Batch.Results = dec.Batch.Results[:len(dec.Batch.Results)-1]
}

// reject dead-letters an event with an owned copy of its bytes.
func (dec *Decoded) reject(index int, f *fault, raw []byte) {
	if dec.labelsDirty {
		clear(dec.labelVals)
		dec.labelsDirty = false
	}
	kept, truncated := CapRaw(raw)
	dec.Rejected = append(dec.Rejected, Rejection{
		Index:     index,
		Reason:    f.reason,
		Err:       f.msg,
		Raw:       bytes.Clone(kept),
		Truncated: truncated,
	})
}
