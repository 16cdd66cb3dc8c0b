package ingest

import "github.com/healthrouter/healthrouter/pkg/health"

// metricEvent decodes a Vector metric event. Only the status metric is
// accepted: its gauge value (0..3) is the status, and its tags carry the
// same fields a log event has, under the same configured names.
func (dec *Decoded) metricEvent(top *fieldSet, raw []byte, index int) {
	r, f := dec.metricResult(top)
	if f != nil {
		if r != nil {
			dec.dropResult()
		}
		dec.reject(index, f, raw)
		return
	}
	dec.finishLabels(r)
}

// metricResult maps a metric event onto a new result; the result is nil
// when the event failed before one was started.
func (dec *Decoded) metricResult(top *fieldSet) (*health.Result, *fault) {
	d := dec.d
	name := top.vals[metricName].b
	if string(name) != d.statusMetric {
		return nil, faultf(ReasonUnknownMetric, "metric %s is not the status metric %q", quote(name), d.statusMetric)
	}
	gauge := top.get(metricGauge)
	if gauge.kind != kindObject {
		return nil, faultf(ReasonInvalidMetric, "metric %q must be a gauge", d.statusMetric)
	}
	status, f := dec.gaugeValue(gauge.b)
	if f != nil {
		return nil, f
	}
	fs := &dec.tags
	fs.present = 0
	switch tags := top.get(metricTags); tags.kind {
	case kindNone, kindNull:
	case kindObject:
		if f := dec.readTags(tags.b, fs); f != nil {
			return nil, f
		}
	default:
		return nil, faultf(ReasonInvalidMetric, `field "tags" must be an object, got %s`, tags.kind)
	}
	fs.set(1<<fieldStatus, status)
	if ts := top.get(metricTimestamp); ts.kind != kindNone {
		fs.set(1<<fieldTimestamp, ts)
	}
	r := dec.newResult()
	if f := dec.fill(r, fs, &d.tagNames); f != nil {
		return r, f
	}
	if ms := top.get(metricIntervalMs); r.Interval == 0 && ms.kind == kindNumber {
		if v, ok := parseNumber(ms.b); ok {
			if sec, ok := secondsCeil(v / 1000); ok {
				r.Interval = sec
			}
		}
	}
	return r, nil
}

// gaugeValue reads {"value": N} of a gauge.
func (dec *Decoded) gaugeValue(b []byte) (value, *fault) {
	s := scanner{data: b, arena: &dec.arena}
	var v value
	if !s.enterObject() {
		for {
			k, err := s.key()
			if err != nil {
				return v, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
			}
			if string(k) == "value" {
				if v, err = s.value(2); err != nil {
					return v, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
				}
			} else if err := s.skip(2); err != nil {
				return v, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
			}
			more, err := s.objectMore()
			if err != nil {
				return v, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
			}
			if !more {
				break
			}
		}
	}
	if v.kind != kindNumber {
		return v, faultf(ReasonInvalidMetric, `gauge "value" must be a number, got %s`, v.kind)
	}
	return v, nil
}

// readTags reads a metric's tags. With metric_tag_values: full a tag's
// value is an array; the last non-null element is the tag's value, as in
// Vector's own single-value view.
func (dec *Decoded) readTags(b []byte, fs *fieldSet) *fault {
	keys := &dec.d.tagKeys
	s := scanner{data: b, arena: &dec.arena}
	if s.enterObject() {
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		e := keys.lookup(k)
		if e == nil {
			err = s.skip(1)
		} else {
			var v value
			if v, err = s.value(1); err == nil {
				if f := dec.tagValue(e, k, v, fs); f != nil {
					return f
				}
			}
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

// tagValue records one tag of a metric under the fields and label its key
// feeds.
func (dec *Decoded) tagValue(e *keyEntry, k []byte, v value, fs *fieldSet) *fault {
	if v.kind == kindArray {
		var f *fault
		if v, f = dec.lastTagValue(v.b, k); f != nil {
			return f
		}
	}
	switch v.kind {
	case kindNone, kindNull:
		return nil
	case kindString:
	default:
		return faultf(ReasonInvalidField, "tag %s must be a string, got %s", quote(k), v.kind)
	}
	if e.fields != 0 {
		fs.set(e.fields, v)
	}
	if e.label >= 0 {
		return dec.setLabel(e.label, v)
	}
	return nil
}

// lastTagValue picks the last non-null string of a full tag value array.
func (dec *Decoded) lastTagValue(b, k []byte) (value, *fault) {
	s := scanner{data: b, pos: 1, arena: &dec.arena}
	var last value
	s.ws()
	if s.pos < len(b) && b[s.pos] == ']' {
		return last, nil
	}
	for {
		v, err := s.value(2)
		if err != nil {
			return last, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		switch v.kind {
		case kindString:
			last = v
		case kindNull:
		default:
			return last, faultf(ReasonInvalidField, "tag %s must hold strings, got %s", quote(k), v.kind)
		}
		more, err := s.arrayMore()
		if err != nil {
			return last, &fault{reason: ReasonInvalidJSON, msg: err.Error()}
		}
		if !more {
			return last, nil
		}
	}
}
