package ingest

import (
	"bytes"
	"errors"
)

// utf8BOM is tolerated at the start of a body; some tools write one.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decodeEvents detects the framing from the bytes (Content-Type is not
// trusted: Vector's request.headers can override it) and decodes every
// event:
//
//	[ {..},{..} ]   JSON array, Vector's default json framing
//	{..}            a single object, possibly pretty-printed
//	{..}\n{..}      NDJSON, with or without a trailing newline, \r\n and
//	                blank lines tolerated
//
// Only when no event at all is well-formed JSON is the body refused.
func (dec *Decoded) decodeEvents(data []byte) error {
	data = bytes.TrimPrefix(data, utf8BOM)
	s := scanner{data: data, arena: &dec.arena}
	s.ws()
	if s.pos == len(data) {
		return &BodyError{Reason: BodyEmpty, Err: errors.New("the body is empty")}
	}
	var err error
	switch {
	case data[s.pos] == '[':
		err = dec.array(data, s.pos)
	case data[s.pos] == '{' && isSingleValue(data, s.pos):
		err = dec.single(data)
	default:
		err = dec.lines(data, s.pos)
	}
	if err != nil {
		return err
	}
	if dec.wellFormed == 0 && dec.Total > 0 {
		first := dec.Rejected[0]
		return invalidBody(data, errors.New("no event is valid JSON: first: "+first.Err))
	}
	return nil
}

// invalidBody is the BodyError of a body that holds no well-formed event,
// with the start of the body kept for the dead-letter store.
func invalidBody(data []byte, err error) *BodyError {
	kept, truncated := CapRaw(data)
	return &BodyError{Reason: BodyInvalidJSON, Raw: bytes.Clone(kept), Truncated: truncated, Err: err}
}

// isSingleValue reports whether the body is exactly one JSON value (and
// not the first line of NDJSON). It only validates, so it allocates
// nothing for a well-formed body.
func isSingleValue(data []byte, pos int) bool {
	s := scanner{data: data, pos: pos}
	if s.skip(0) != nil {
		return false
	}
	s.ws()
	return s.pos == len(data)
}

// single decodes a body that is one JSON object.
func (dec *Decoded) single(data []byte) error {
	if err := dec.tooManyEvents(); err != nil {
		return err
	}
	s := scanner{data: data, arena: &dec.arena}
	index := dec.Total
	dec.Total++
	if err := dec.decodeEvent(&s, index, true); err != nil {
		// isSingleValue has parsed it, so only a rare defect lands here;
		// keep the invariant that every event is a result or a rejection.
		dec.reject(index, &fault{reason: ReasonInvalidJSON, msg: err.Error()}, data)
	}
	return nil
}

// lines decodes NDJSON: one event per non-blank line.
func (dec *Decoded) lines(data []byte, pos int) error {
	for pos < len(data) {
		end := len(data)
		if nl := bytes.IndexByte(data[pos:], '\n'); nl >= 0 {
			end = pos + nl
		}
		line := trimSpace(data[pos:end])
		pos = end + 1
		if len(line) == 0 {
			continue
		}
		if err := dec.tooManyEvents(); err != nil {
			return err
		}
		index := dec.Total
		dec.Total++
		s := scanner{data: line, arena: &dec.arena}
		if err := dec.decodeEvent(&s, index, true); err != nil {
			dec.reject(index, &fault{reason: ReasonInvalidJSON, msg: err.Error()}, line)
		}
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// array decodes a JSON array element by element. Each element is parsed
// on its own: when one is broken, elementEnd finds where it ends and only
// that element is rejected. A body cut short keeps every complete element
// before the cut.
func (dec *Decoded) array(data []byte, open int) error {
	s := scanner{data: data, pos: open + 1, arena: &dec.arena}
	s.ws()
	if s.pos < len(data) && data[s.pos] == ']' {
		return dec.afterArray(data, s.pos+1)
	}
	for {
		s.ws()
		if s.pos >= len(data) {
			if dec.Total == 0 {
				return invalidBody(data, errors.New("the JSON array ends before its first element"))
			}
			return nil
		}
		if err := dec.tooManyEvents(); err != nil {
			return err
		}
		index := dec.Total
		dec.Total++
		start := s.pos
		s.base = start
		if err := dec.decodeEvent(&s, index, false); err != nil {
			end := dec.elementEnd(data, start)
			dec.reject(index, &fault{reason: ReasonInvalidJSON, msg: err.Error()}, data[start:end])
			s.pos = end
		}
		s.ws()
		if s.pos >= len(data) {
			return nil // cut short: no closing bracket
		}
		switch data[s.pos] {
		case ',':
			s.pos++
		case ']':
			return dec.afterArray(data, s.pos+1)
		default:
			// Junk after an element (a missing comma, stray bytes): it is
			// dead-lettered as an element of its own.
			if err := dec.tooManyEvents(); err != nil {
				return err
			}
			junk := s.pos
			end := dec.elementEnd(data, junk)
			index := dec.Total
			dec.Total++
			dec.reject(index, &fault{reason: ReasonInvalidJSON,
				msg: "invalid JSON: unexpected data between array elements"}, data[junk:end])
			s.pos = end
			if end < len(data) && data[end] == ',' {
				s.pos++
			} else if end < len(data) && data[end] == ']' {
				return dec.afterArray(data, end+1)
			}
		}
	}
}

// afterArray dead-letters anything but whitespace after the closing ']'.
func (dec *Decoded) afterArray(data []byte, pos int) error {
	rest := trimSpace(data[pos:])
	if len(rest) == 0 {
		return nil
	}
	if err := dec.tooManyEvents(); err != nil {
		return err
	}
	index := dec.Total
	dec.Total++
	dec.reject(index, &fault{reason: ReasonInvalidJSON, msg: "invalid JSON: unexpected data after the closing ]"}, rest)
	return nil
}

// elementEnd finds where the array element starting at i ends: the next
// ',' or ']' outside strings and brackets, or the end of data. It tracks
// which brackets are open so that one unbalanced bracket does not swallow
// the elements after it: a closer pops back to its matching opener, and a
// ']' that matches nothing ends the element (it closes the array).
func (dec *Decoded) elementEnd(data []byte, i int) int {
	stack := dec.stack[:0]
	defer func() { dec.stack = stack[:0] }()
	for i < len(data) {
		switch c := data[i]; c {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			opener := byte('{')
			if c == ']' {
				opener = '['
			}
			j := len(stack) - 1
			for j >= 0 && stack[j] != opener {
				j--
			}
			switch {
			case j >= 0:
				stack = stack[:j]
			case c == ']':
				return i
			}
		case ',':
			if len(stack) == 0 {
				return i
			}
		}
		i++
	}
	return len(data)
}
