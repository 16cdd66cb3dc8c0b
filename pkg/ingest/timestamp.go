package ingest

import (
	"math"
	"strconv"
	"time"
)

// maxUnixSeconds is the last whole second whose nanoseconds fit an int64
// (2262-04-11): later timestamps cannot be represented and are refused.
const maxUnixSeconds = math.MaxInt64/1_000_000_000 - 1

// parseRFC3339 parses an RFC 3339 timestamp with 0 to 9 fractional digits
// and a Z or ±hh:mm offset into Unix nanoseconds, without allocating.
// Times at or before the epoch are refused: the decoder uses 0 for "no
// timestamp", and no health check ran in 1970.
func parseRFC3339(b []byte) (int64, bool) {
	secs, frac, ok := splitRFC3339(b)
	if !ok || secs < 0 || secs > maxUnixSeconds {
		return 0, false
	}
	ns := secs*1e9 + frac
	return ns, ns > 0
}

// splitRFC3339 parses an RFC 3339 timestamp as parseRFC3339 accepts it
// into Unix seconds and the nanoseconds within the second, whatever the
// range.
func splitRFC3339(b []byte) (int64, int64, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, 0, false
	}
	y1, ok1 := digits2(b[0], b[1])
	y2, ok2 := digits2(b[2], b[3])
	year := y1*100 + y2
	month, ok3 := digits2(b[5], b[6])
	day, ok4 := digits2(b[8], b[9])
	hour, ok5 := digits2(b[11], b[12])
	minute, ok6 := digits2(b[14], b[15])
	sec, ok7 := digits2(b[17], b[18])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, 0, false
	}
	i := 19
	var frac int64
	if b[i] == '.' {
		i++
		n := 0
		for i < len(b) && isDigit(b[i]) {
			if n == 9 {
				return 0, 0, false
			}
			frac = frac*10 + int64(b[i]-'0')
			n++
			i++
		}
		if n == 0 {
			return 0, 0, false
		}
		frac *= pow10[9-n]
	}
	if i >= len(b) {
		return 0, 0, false
	}
	var offset int64
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, 0, false
		}
		oh, ok1 := digits2(b[i+1], b[i+2])
		om, ok2 := digits2(b[i+4], b[i+5])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, 0, false
		}
		offset = int64(oh*3600 + om*60)
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, 0, false
	}
	if i != len(b) {
		return 0, 0, false
	}
	return daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset, frac, true
}

// digits2 parses two ASCII digits; a byte below '0' wraps past 9.
func digits2(a, b byte) (int, bool) {
	a, b = a-'0', b-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days from 1970-01-01 to the given proleptic
// Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := m + 9
	if m > 2 {
		mp = m - 3
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Magnitude bounds that tell Unix seconds, milliseconds, microseconds and
// nanoseconds apart: 1e11 seconds is the year 5138, so anything at or above
// it must be a finer unit. Each unit covers 1970 to far beyond 2262.
const (
	belowMillis = 1e11
	belowMicros = 1e14
	belowNanos  = 1e17
)

// unixUnit is the nanoseconds in one unit of a Unix time of this size.
func unixUnit(whole float64) int64 {
	switch {
	case whole < belowMillis:
		return 1e9
	case whole < belowMicros:
		return 1e6
	case whole < belowNanos:
		return 1e3
	}
	return 1
}

// parseUnix converts a positive Unix time written as a JSON number (an
// integer, a decimal fraction, or with an exponent) to nanoseconds; the
// unit is seconds, milliseconds, microseconds or nanoseconds by magnitude.
// Integers and decimals are converted exactly; only exponent forms go
// through float64.
func parseUnix(b []byte) (int64, bool) {
	i := 0
	var whole uint64
	for i < len(b) && isDigit(b[i]) {
		if whole > (math.MaxInt64-9)/10 {
			return 0, false
		}
		whole = whole*10 + uint64(b[i]-'0')
		i++
	}
	if i == 0 {
		return 0, false
	}
	fracStart, fracEnd := i, i
	if i < len(b) && b[i] == '.' {
		i++
		fracStart = i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		fracEnd = i
		if fracEnd == fracStart {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		return parseUnixFloat(b)
	}
	if i != len(b) {
		return 0, false
	}
	unit := unixUnit(float64(whole))
	if whole > uint64(math.MaxInt64/unit) {
		return 0, false
	}
	ns := int64(whole) * unit
	if fracEnd > fracStart && unit > 1 {
		// Keep at most 9 fractional digits; finer ones are below a nanosecond
		// for every unit.
		f := b[fracStart:min(fracEnd, fracStart+9)]
		var frac int64
		for _, c := range f {
			frac = frac*10 + int64(c-'0')
		}
		extra := frac * unit / pow10[len(f)]
		if ns > math.MaxInt64-extra {
			return 0, false
		}
		ns += extra
	}
	return ns, ns > 0
}

// parseUnixFloat handles Unix times with an exponent, through float64.
func parseUnixFloat(b []byte) (int64, bool) {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || !(v > 0) {
		return 0, false
	}
	ns := v * float64(unixUnit(math.Floor(v)))
	if ns >= math.MaxInt64 {
		return 0, false
	}
	n := int64(math.Round(ns))
	return n, n > 0
}

// parseNumber converts a validated JSON number to float64; single digits,
// the common status values, skip strconv.
func parseNumber(b []byte) (float64, bool) {
	// Small whole numbers, what status and interval are, skip the
	// general parser: fifteen digits fit a float64 exactly.
	if len(b) > 0 && len(b) <= 15 {
		n := int64(0)
		for _, c := range b {
			if !isDigit(c) {
				goto general
			}
			n = n*10 + int64(c-'0')
		}
		return float64(n), true
	}
general:
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

// maxIntervalSeconds bounds the interval field: a check promising results
// less often than yearly is a mistake, and the engine stores int32.
const maxIntervalSeconds = 366 * 24 * 3600

// secondsCeil turns a non-negative number of seconds into whole seconds,
// rounding up so a sub-second interval does not read as "none".
func secondsCeil(v float64) (int32, bool) {
	if !(v >= 0) || v > maxIntervalSeconds {
		return 0, false
	}
	return int32(math.Ceil(v)), true
}

// parseInterval reads an interval given as a number of seconds or a Go
// duration string ("30s", "1m30s"). Numeric strings count as seconds.
func parseInterval(v value) (int32, bool) {
	switch v.kind {
	case kindNumber:
		f, ok := parseNumber(v.b)
		if !ok {
			return 0, false
		}
		return secondsCeil(f)
	case kindString:
		if len(v.b) > 0 && (isDigit(v.b[0]) || v.b[0] == '.') {
			if f, err := strconv.ParseFloat(string(v.b), 64); err == nil {
				return secondsCeil(f)
			}
		}
		d, err := time.ParseDuration(string(v.b))
		if err != nil {
			return 0, false
		}
		return secondsCeil(d.Seconds())
	}
	return 0, false
}
