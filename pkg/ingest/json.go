package ingest

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// kind is the JSON type of a value. kindNone marks a field the event did
// not carry.
type kind uint8

const (
	kindNone kind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

var kindNames = [...]string{"nothing", "null", "boolean", "number", "string", "object", "array"}

func (k kind) String() string { return kindNames[k] }

// value is one JSON value of an event. For strings b is the decoded text
// (a view into the body, or into the arena when the string had escapes);
// for everything else it is the raw JSON text, which for objects and arrays
// has already been validated.
type value struct {
	kind kind
	b    []byte
}

// maxDepth bounds nesting inside an event. Health-check events are flat;
// the bound keeps hostile input from driving deep recursion.
const maxDepth = 64

// syntaxError says where and why an event is not well-formed JSON. Offsets
// count from the start of the event.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.off) + ": " + e.msg
}

// scanner reads JSON values from data, validating as strictly as
// encoding/json (RFC 8259 grammar, escapes, no control characters in
// strings). Strings without escapes are returned as views into data, so
// the common case allocates nothing; escaped strings are decoded into
// *arena, which only ever grows by appending, so earlier views stay valid.
type scanner struct {
	data  []byte
	pos   int
	base  int // where the event starts in data: error offsets count from it
	arena *[]byte
}

func (s *scanner) errorf(at int, msg string) error {
	return &syntaxError{off: at - s.base, msg: msg}
}

func (s *scanner) unexpected(at int, context string) error {
	if at >= len(s.data) {
		return s.errorf(at, "unexpected end of data "+context)
	}
	return s.errorf(at, "invalid character "+quoteByte(s.data[at])+" "+context)
}

func quoteByte(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return strconv.QuoteRune(rune(c))
}

// ws skips insignificant whitespace. Vector's JSON is compact, so the
// inlined first test usually settles it.
func (s *scanner) ws() {
	if s.pos < len(s.data) && s.data[s.pos] > ' ' {
		return
	}
	s.wsSlow()
}

func (s *scanner) wsSlow() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value reads the value at s.pos (after whitespace). Strings are decoded;
// objects and arrays are validated and returned as raw text.
func (s *scanner) value(depth int) (value, error) {
	s.ws()
	if s.pos >= len(s.data) {
		return value{}, s.unexpected(s.pos, "looking for a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		str, err := s.str()
		return value{kind: kindString, b: str}, err
	case c == '{':
		err := s.skipObject(depth + 1)
		return value{kind: kindObject, b: s.data[start:s.pos]}, err
	case c == '[':
		err := s.skipArray(depth + 1)
		return value{kind: kindArray, b: s.data[start:s.pos]}, err
	case c == '-' || ('0' <= c && c <= '9'):
		err := s.number()
		return value{kind: kindNumber, b: s.data[start:s.pos]}, err
	case c == 't':
		err := s.literal("true")
		return value{kind: kindBool, b: s.data[start:s.pos]}, err
	case c == 'f':
		err := s.literal("false")
		return value{kind: kindBool, b: s.data[start:s.pos]}, err
	case c == 'n':
		err := s.literal("null")
		return value{kind: kindNull, b: s.data[start:s.pos]}, err
	}
	return value{}, s.unexpected(s.pos, "looking for a value")
}

// skip validates and skips the value at s.pos without decoding strings.
func (s *scanner) skip(depth int) error {
	s.ws()
	if s.pos >= len(s.data) {
		return s.unexpected(s.pos, "looking for a value")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.skipString()
	case c == '{':
		return s.skipObject(depth + 1)
	case c == '[':
		return s.skipArray(depth + 1)
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.unexpected(s.pos, "looking for a value")
}

// literal consumes true, false or null.
func (s *scanner) literal(lit string) error {
	end := s.pos + len(lit)
	if end > len(s.data) || string(s.data[s.pos:end]) != lit {
		for i := 0; i < len(lit); i++ {
			if s.pos+i >= len(s.data) || s.data[s.pos+i] != lit[i] {
				return s.unexpected(s.pos+i, "in literal "+lit)
			}
		}
	}
	s.pos = end
	return nil
}

// number validates a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		return s.unexpected(i, "in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return s.unexpected(i, "after decimal point in numeric literal")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return s.unexpected(i, "in exponent of numeric literal")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	s.pos = i
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// stringStop marks the bytes that end the fast scan of a string's body:
// the closing quote, a backslash, and control characters (never allowed
// raw inside a JSON string).
var stringStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// SWAR constants: eight byte lanes of one uint64.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// stopLanes flags (in bit 7 of a lane) the bytes of x that are '"', '\\'
// or below 0x20. A flag can be spurious only above a real one, so the
// lowest flag is exact.
func stopLanes(x uint64) uint64 {
	q := x ^ ('"' * lanes01)
	b := x ^ ('\\' * lanes01)
	return ((q-lanes01)&^q | (b-lanes01)&^b | (x-0x20*lanes01)&^x) & lanes80
}

// scanString returns the index of the first byte at or after i that ends
// the fast part of a string body, or len(d). It tests eight bytes at a
// time: event strings are mostly plain text.
func scanString(d []byte, i int) int {
	for i+8 <= len(d) {
		if m := stopLanes(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(d) && !stringStop[d[i]] {
		i++
	}
	return i
}

// str reads the string at s.pos and returns its decoded bytes.
func (s *scanner) str() ([]byte, error) {
	d := s.data
	start := s.pos + 1
	var i int
	// Keys and most values are shorter than eight bytes: test the first
	// word here rather than in a call.
	if start+8 <= len(d) {
		if m := stopLanes(binary.LittleEndian.Uint64(d[start:])); m != 0 {
			i = start + bits.TrailingZeros64(m)>>3
		} else {
			i = scanString(d, start+8)
		}
	} else {
		i = scanString(d, start)
	}
	if i < len(d) && d[i] == '"' {
		s.pos = i + 1
		return d[start:i], nil
	}
	if i < len(d) && d[i] == '\\' {
		return s.unescape(start, i)
	}
	if i >= len(d) {
		return nil, s.unexpected(i, "in string literal")
	}
	return nil, s.errorf(i, "control character "+quoteByte(d[i])+" in string literal")
}

// skipString validates the string at s.pos without decoding it.
func (s *scanner) skipString() error {
	d := s.data
	i := s.pos + 1
	for {
		i = scanString(d, i)
		if i >= len(d) {
			return s.unexpected(i, "in string literal")
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return nil
		case c == '\\':
			n, err := s.escapeLen(i)
			if err != nil {
				return err
			}
			i += n
		default:
			return s.errorf(i, "control character "+quoteByte(c)+" in string literal")
		}
	}
}

// escapeLen validates the escape sequence at d[i] (a backslash) and returns
// its length.
func (s *scanner) escapeLen(i int) (int, error) {
	d := s.data
	if i+1 >= len(d) {
		return 0, s.unexpected(i+1, "in string escape code")
	}
	switch d[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		if _, ok := hex4(d, i+2); !ok {
			return 0, s.errorf(i, `invalid \u escape in string literal`)
		}
		return 6, nil
	}
	return 0, s.unexpected(i+1, "in string escape code")
}

// hex4 reads the four hex digits of a \u escape at d[i].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape decodes a string with escapes into the arena. start is the
// first byte of the string body, i the first backslash. Unpaired UTF-16
// surrogates become U+FFFD, as encoding/json does.
func (s *scanner) unescape(start, i int) ([]byte, error) {
	d := s.data
	out := *s.arena
	mark := len(out)
	out = append(out, d[start:i]...)
	for {
		j := scanString(d, i)
		out = append(out, d[i:j]...)
		i = j
		if i >= len(d) {
			*s.arena = out
			return nil, s.unexpected(i, "in string literal")
		}
		c := d[i]
		if c == '"' {
			s.pos = i + 1
			*s.arena = out
			return out[mark:len(out):len(out)], nil
		}
		if c != '\\' {
			*s.arena = out
			return nil, s.errorf(i, "control character "+quoteByte(c)+" in string literal")
		}
		if i+1 >= len(d) {
			*s.arena = out
			return nil, s.unexpected(i+1, "in string escape code")
		}
		switch e := d[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
			i += 2
		case 'b':
			out = append(out, '\b')
			i += 2
		case 'f':
			out = append(out, '\f')
			i += 2
		case 'n':
			out = append(out, '\n')
			i += 2
		case 'r':
			out = append(out, '\r')
			i += 2
		case 't':
			out = append(out, '\t')
			i += 2
		case 'u':
			r, ok := hex4(d, i+2)
			if !ok {
				*s.arena = out
				return nil, s.errorf(i, `invalid \u escape in string literal`)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
					if lo, ok := hex4(d, i+2); ok {
						if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
							r2 = dec
							i += 6
						}
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			*s.arena = out
			return nil, s.unexpected(i+1, "in string escape code")
		}
	}
}

// skipObject validates the object at s.pos.
func (s *scanner) skipObject(depth int) error {
	if depth > maxDepth {
		return s.errorf(s.pos, "nested too deep")
	}
	s.pos++ // {
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected(s.pos, "looking for beginning of object key string")
		}
		if err := s.skipString(); err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if err := s.skip(depth); err != nil {
			return err
		}
		more, err := s.objectMore()
		if err != nil || !more {
			return err
		}
	}
}

// skipArray validates the array at s.pos.
func (s *scanner) skipArray(depth int) error {
	if depth > maxDepth {
		return s.errorf(s.pos, "nested too deep")
	}
	s.pos++ // [
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.skip(depth); err != nil {
			return err
		}
		more, err := s.arrayMore()
		if err != nil || !more {
			return err
		}
	}
}

// enterObject consumes the '{' at s.pos and reports whether the object is
// empty, consuming its '}' too.
func (s *scanner) enterObject() (empty bool) {
	s.pos++
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return true
	}
	return false
}

// key reads an object key and the colon after it.
func (s *scanner) key() ([]byte, error) {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, s.unexpected(s.pos, "looking for beginning of object key string")
	}
	k, err := s.str()
	if err != nil {
		return nil, err
	}
	return k, s.colon()
}

func (s *scanner) colon() error {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return s.unexpected(s.pos, "after object key")
	}
	s.pos++
	return nil
}

// objectMore consumes the ',' or '}' after an object member.
func (s *scanner) objectMore() (bool, error) { return s.more('}', "after object key:value pair") }

// arrayMore consumes the ',' or ']' after an array element.
func (s *scanner) arrayMore() (bool, error) { return s.more(']', "after array element") }

// more consumes a ',' (another member follows) or the closing byte.
func (s *scanner) more(closing byte, after string) (bool, error) {
	s.ws()
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',':
			s.pos++
			return true, nil
		case closing:
			s.pos++
			return false, nil
		}
	}
	return false, s.unexpected(s.pos, after)
}
