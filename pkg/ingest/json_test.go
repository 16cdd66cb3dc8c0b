package ingest

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestScannerAgreesWithEncodingJSON checks validation against
// encoding/json on values that probe every branch of the grammar.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	values := []string{
		`0`, `-0`, `1`, `-1`, `10`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-01`, `1.5e3`, `+1`,
		`2.`, `0x10`, `1_000`, `NaN`, `Infinity`,
		`true`, `false`, `null`, `tru`, `nul`, `True`, `nulll`,
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0041"`, `"\u00e9"`, `"\uD83D\uDE00"`, `"\ud800"`,
		`"\u12"`, `"\u12g4"`, `"\x"`, `"\'"`, "\"a\tb\"", "\"a\x01\"", "\"a\x7f\"", `"unterminated`, `"a\`,
		`[]`, `[1]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[`, `]`, `[}`,
		`{}`, `{"a":1}`, `{"a":1,}`, `{a:1}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":{"b":[1,{"c":null}]}}`,
		`{"a":[1,2}`, `{"a":1]`, ` { "a" : [ 1 , 2 ] } `, "{\n\"a\":\r\n1\t}", `{"\u0061":1}`, `{"a":1}}`,
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	}
	for _, v := range values {
		s := scanner{data: []byte(v)}
		err := s.skip(0)
		if err == nil {
			s.ws()
			if s.pos != len(s.data) {
				err = s.errorf(s.pos, "trailing data")
			}
		}
		if got, want := err == nil, json.Valid([]byte(v)); got != want {
			t.Errorf("%q: scanner valid %v (%v), encoding/json valid %v", v, got, err, want)
		}
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if s := (scanner{data: []byte(deep)}); s.skip(0) == nil {
		t.Errorf("nesting past maxDepth accepted")
	}
}

// TestStringDecoding compares decoded strings with encoding/json on
// random strings full of escapes, surrogates and multi-byte text.
func TestStringDecoding(t *testing.T) {
	pieces := []string{"a", "Z", " ", "é", "😀", "日本", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
		`\u0041`, `\u00e9`, `\u20AC`, `\ud83d\ude00`, `\ud83d`, `\ude00`, `\ud83dx`, `\uffff`, `\u0000`, "\x7f"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		b.WriteByte('"')
		for n := rng.IntN(40); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		b.WriteByte('"')
		lit := b.String()
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("encoding/json rejects %s: %v", lit, err)
		}
		var arena []byte
		s := scanner{data: []byte(lit), arena: &arena}
		got, err := s.str()
		if err != nil || string(got) != want || s.pos != len(lit) {
			t.Fatalf("%s: decoded %q (%v), encoding/json %q", lit, got, err, want)
		}
	}
}

// TestScanString covers the eight-bytes-at-a-time path at every offset.
func TestScanString(t *testing.T) {
	for _, stop := range []byte{'"', '\\', 0x00, 0x1f} {
		for n := 0; n < 20; n++ {
			d := []byte(strings.Repeat("aé~\x7f", 10)[:n] + string(stop) + "xyz")
			if got := scanString(d, 0); got != n {
				t.Errorf("stop %#x after %d bytes: found at %d", stop, n, got)
			}
		}
	}
	if got := scanString([]byte("no stop here at all"), 3); got != len("no stop here at all") {
		t.Errorf("no stop byte: %d", got)
	}
}
