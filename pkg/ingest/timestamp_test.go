package ingest

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDaysFromCivil(t *testing.T) {
	for day := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2400; day = day.AddDate(0, 0, 1) {
		if got, want := daysFromCivil(day.Year(), int(day.Month()), day.Day()), day.Unix()/86400; got != want {
			t.Fatalf("%s: %d days, want %d", day.Format(time.DateOnly), got, want)
		}
		if day.Day() == 1 {
			last := day.AddDate(0, 1, -1).Day()
			if got := daysIn(int(day.Month()), day.Year()); got != last {
				t.Fatalf("%s: daysIn %d, want %d", day.Format("2006-01"), got, last)
			}
		}
	}
}

// TestParseRFC3339AgreesWithTime formats random instants in every layout
// Vector and other senders use and checks the result against time.
func TestParseRFC3339AgreesWithTime(t *testing.T) {
	layouts := []string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05.0Z07:00",
		"2006-01-02T15:04:05.000Z07:00",
		"2006-01-02T15:04:05.000000Z07:00",
		"2006-01-02T15:04:05.000000000Z07:00",
		"2006-01-02T15:04:05.999999999Z07:00",
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600+1800), time.FixedZone("", -11*3600), time.FixedZone("", 14*3600)}
	rng := rand.New(rand.NewPCG(3, 4))
	lo, hi := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC).UnixNano(), time.Date(2262, 4, 10, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 20000; i++ {
		ts := time.Unix(0, lo+rng.Int64N(hi-lo)).In(zones[rng.IntN(len(zones))])
		s := ts.Format(layouts[rng.IntN(len(layouts))])
		parsed, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseRFC3339([]byte(s))
		if !ok || got != parsed.UnixNano() {
			t.Fatalf("%s: %d %v, want %d", s, got, ok, parsed.UnixNano())
		}
	}
}

func TestParseUnix(t *testing.T) {
	const sec = 1787306400
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1787306400", sec * 1e9, true},
		{"1787306400.5", sec*1e9 + 5e8, true},
		{"1787306400.123456789123", sec*1e9 + 123456789, true},
		{"1787306400123", sec*1e9 + 123e6, true},
		{"1787306400123.456", sec*1e9 + 123456e3, true},
		{"1787306400123456", sec*1e9 + 123456e3, true},
		{"1787306400123456.7", sec*1e9 + 123456700, true},
		{"1787306400123456789", sec*1e9 + 123456789, true},
		{"1787306400123456789.9", sec*1e9 + 123456789, true},
		{"1.7873064005e9", sec*1e9 + 5e8, true},
		{"17873064001E2", sec*1e9 + 1e8, true},
		{"1", 1e9, true},
		{"100000000000", 1e11 * 1e6, true}, // 1e11 and above: milliseconds
		{"99999999999", 0, false},          // seconds, past 2262
		{"9223372037", 0, false},
		{"9223372036854775808", 0, false},
		{"0", 0, false},
		{"0.0", 0, false},
		{"-1", 0, false},
		{"1.", 0, false},
		{"1e", 0, false},
		{"12ab", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseUnix([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseUnix(%s) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseInterval(t *testing.T) {
	tests := []struct {
		v    value
		want int32
		ok   bool
	}{
		{value{kindNumber, []byte("60")}, 60, true},
		{value{kindNumber, []byte("0")}, 0, true},
		{value{kindNumber, []byte("0.001")}, 1, true},
		{value{kindNumber, []byte("1e3")}, 1000, true},
		{value{kindNumber, []byte("-5")}, 0, false},
		{value{kindNumber, []byte("1e12")}, 0, false},
		{value{kindString, []byte("90")}, 90, true},
		{value{kindString, []byte("2.5")}, 3, true},
		{value{kindString, []byte("5m")}, 300, true},
		{value{kindString, []byte("250ms")}, 1, true},
		{value{kindString, []byte("-1m")}, 0, false},
		{value{kindString, []byte("9000h")}, 0, false},
		{value{kindString, []byte("soon")}, 0, false},
		{value{kindString, []byte("")}, 0, false},
		{value{kindBool, []byte("true")}, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInterval(tt.v)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseInterval(%s) = %d, %v; want %d, %v", tt.v.b, got, ok, tt.want, tt.ok)
		}
	}
}
