// Package health holds healthrouter's domain types: health-check results as
// they arrive, the per-check state the engine keeps, the alerts it decides,
// maintenance windows, transitions and dead-lettered events. It has no
// dependencies beyond the standard library so every other package can share
// it: the wire decoder produces Results, the engine turns them into Alerts,
// the store persists CheckStates, Transitions and Windows.
package health

import (
	"strconv"
	"time"
)

// Status is the outcome of one health-check run, ordered by badness except
// for Unknown, which Nagios places after Critical.
type Status uint8

const (
	Passing Status = iota
	Warning
	Critical
	Unknown
)

var statusNames = [...]string{"passing", "warning", "critical", "unknown"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Failing reports whether the status counts against the host: anything but
// Passing.
func (s Status) Failing() bool { return s != Passing }

// MarshalText makes Status render as its name in JSON and YAML.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts every spelling ParseStatus does.
func (s *Status) UnmarshalText(b []byte) error {
	v, ok := ParseStatus(b)
	if !ok {
		return &ParseError{Field: "status", Value: string(b)}
	}
	*s = v
	return nil
}

// ParseStatus maps a status word or number to a Status, case-insensitively:
//
//	passing  ok pass up 0
//	warning  warn 1
//	critical crit fail failing down error 2
//	unknown  3
//
// It does not allocate.
func ParseStatus(b []byte) (Status, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var buf [8]byte
	n := copy(buf[:], b)
	lower := buf[:n]
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + ('a' - 'A')
		}
	}
	switch string(lower) { // compiled to comparisons, no allocation
	case "passing", "ok", "pass", "up", "0":
		return Passing, true
	case "warning", "warn", "1":
		return Warning, true
	case "critical", "crit", "fail", "failing", "down", "error", "2":
		return Critical, true
	case "unknown", "3":
		return Unknown, true
	}
	return 0, false
}

// StatusFromValue maps a metric gauge value (0..3) to a Status.
func StatusFromValue(v float64) (Status, bool) {
	switch v {
	case 0:
		return Passing, true
	case 1:
		return Warning, true
	case 2:
		return Critical, true
	case 3:
		return Unknown, true
	}
	return 0, false
}

// Severity says how urgently an alert wants a human. The zero value means
// "not given": the engine then resolves it from config or from the status.
// The names match PagerDuty's severities so the mapping is the identity.
type Severity uint8

const (
	SeverityNone Severity = iota
	SeverityInfo
	SeverityWarning
	SeverityError
	SeverityCritical
)

var severityNames = [...]string{"", "info", "warning", "error", "critical"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText renders the severity name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts every spelling ParseSeverity does.
func (s *Severity) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = SeverityNone
		return nil
	}
	v, ok := ParseSeverity(b)
	if !ok {
		return &ParseError{Field: "severity", Value: string(b)}
	}
	*s = v
	return nil
}

// ParseSeverity maps a severity word to a Severity, case-insensitively:
// critical (crit), error (err), warning (warn), info. It does not allocate.
func ParseSeverity(b []byte) (Severity, bool) {
	if len(b) == 0 || len(b) > 8 {
		return SeverityNone, false
	}
	var buf [8]byte
	n := copy(buf[:], b)
	lower := buf[:n]
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + ('a' - 'A')
		}
	}
	switch string(lower) {
	case "critical", "crit":
		return SeverityCritical, true
	case "error", "err":
		return SeverityError, true
	case "warning", "warn":
		return SeverityWarning, true
	case "info":
		return SeverityInfo, true
	}
	return SeverityNone, false
}

// SeverityFor is the default severity of a status when neither the event nor
// the config gives one: critical for critical (and unknown), warning for
// warning, none for passing.
func SeverityFor(s Status) Severity {
	switch s {
	case Warning:
		return SeverityWarning
	case Critical, Unknown:
		return SeverityCritical
	}
	return SeverityNone
}

// ParseError reports a value that is not one of a field's accepted words.
type ParseError struct {
	Field string
	Value string
}

func (e *ParseError) Error() string {
	return "invalid " + e.Field + " " + strconv.Quote(e.Value)
}

// Key identifies one check on one host. All state is kept per Key.
type Key struct {
	Region string `json:"region"`
	Host   string `json:"host"`
	Check  string `json:"check"`
}

func (k Key) String() string { return k.Region + "/" + k.Host + "/" + k.Check }

// Label is one event label whose key the config allows through.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Result is one decoded health-check result, as the ingest decoder hands it
// to the engine. Byte slices point into the decoder's buffers and are valid
// only until the Apply call that receives them returns: whoever keeps one
// copies it (the engine interns names, so a known check costs no allocation).
type Result struct {
	Region, Host, Check []byte
	Status              Status
	// Time is the result's own timestamp in Unix nanoseconds, 0 when the
	// event had none (the receiver's clock is used instead).
	Time     int64
	Output   []byte // already truncated to the configured limit
	Severity Severity
	Team     []byte
	Interval int32 // expected seconds between results, 0 when not given
	EventID  []byte
	Labels   []ResultLabel
}

// ResultLabel is a Label still pointing into decoder buffers. Key is the
// configured key (a string shared by all results), Value is borrowed.
type ResultLabel struct {
	Key   string
	Value []byte
}

// Batch is what one ingest request hands over: the valid results in arrival
// order. Received is the receiver's clock at decode time, used for results
// without a timestamp and for last-seen.
type Batch struct {
	Received time.Time
	Results  []Result
}

// Rejected is a dead-lettered event: why it was refused and the bounded raw
// bytes, so an operator can see exactly what a sender got wrong.
type Rejected struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"` // stable metric label, e.g. "missing_field"
	Error  string    `json:"error"`  // human-readable detail
	Index  int       `json:"index"`  // position of the event in its request from 0; -1 for a whole undecodable body
	Remote string    `json:"remote,omitempty"`
	Event  string    `json:"event"` // raw event, at most ingest.MaxRawBytes
	// Truncated says Event was cut: the event as sent was longer.
	Truncated bool `json:"truncated,omitempty"`
}
