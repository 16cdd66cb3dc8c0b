// Package scenario generates the acceptance scenarios of DESIGN §9: a
// deterministic fleet of regions, hosts and checks reporting every 30
// seconds, with the eleven real incidents layered on it, each with the page
// set healthrouter must produce written down beside it.
//
// A Scenario is data: the fleet, the effects (which checks report what, from
// which round to which), the maintenance windows and restart points replay
// applies, and the expectation. The generator (go generate, or go run
// ./pkg/scenario/gen) writes each one as testdata/scenarios/NN-name.ndjson.gz
// (the events, Vector-shaped NDJSON) and NN-name.expected.json (the Scenario
// itself), and a test fails when the files differ from what the code
// produces.
//
// # Timing
//
// Round k is at Start + k × interval. Each host runs its checks on its own
// timer, started with its agent, so it reports at a fixed offset within
// the interval that has nothing to do with the other hosts': here a
// pseudo-random offset between 0.5 s and interval - 0.5 s drawn from the
// host's name (deterministic: the same fleet gives the same files), all
// its checks at once. An incident that hits a whole region therefore
// reaches healthrouter host by host over the interval, as it does in
// production; Grafana's pending period is what keeps the first hosts'
// alerts from paging before the region's rolls up.
package scenario

//go:generate go run ./gen -dir ../../testdata/scenarios

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Scenario is one incident on a simulated fleet: it decides what every
// check of every host reports in every round, and states what healthrouter
// must make of it. It marshals to the NN-name.expected.json file.
type Scenario struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	// Incident is the DESIGN §9 line; Story says how this scenario plays it.
	Incident string `json:"incident"`
	Story    string `json:"story"`

	Fleet  Fleet     `json:"fleet"`
	Start  time.Time `json:"start"`
	Rounds int       `json:"rounds"`
	// Effects change what checks report; every check passes otherwise.
	Effects []Effect `json:"effects"`
	// Windows are maintenance windows, each created at its Created time
	// (event time); replay adds them when its clock gets there.
	Windows []health.Window `json:"windows,omitempty"`
	// Restarts are the event times at which replay restarts healthrouter.
	Restarts []time.Time `json:"restarts,omitempty"`

	// Events is how many events the scenario's stream holds; the generator
	// fills it in.
	Events int         `json:"events"`
	Expect Expectation `json:"expect"`
}

// Expectation is what replaying a scenario must give.
type Expectation struct {
	// Pages is how many alerts page: fire unsuppressed at a paging
	// severity for their rule's pending period (the default grafana.pending),
	// as Grafana pages them; DirectPages how many pages check-to-pager
	// routing would send for the same events.
	Pages       int `json:"pages"`
	DirectPages int `json:"direct_pages"`
	// Alerts lists every alert Grafana fires (unsuppressed for its pending
	// period), paging or not, once per firing. Alerts shorter than that,
	// such as the hosts of a region that fail before the region's alert
	// rolls them up, are not in it.
	Alerts []ExpectedAlert `json:"alerts"`
	// Suppressed counts the suppressions that start, by reason.
	Suppressed map[string]int `json:"suppressed"`
}

// ExpectedAlert is one alert that must fire. Host is empty for a region
// alert; Check is the alert's check, for a host alert the one that made it
// fire ("not_reporting" for a silent host).
type ExpectedAlert struct {
	Level    health.Level    `json:"level"`
	Region   string          `json:"region"`
	Host     string          `json:"host"`
	Check    string          `json:"check"`
	Severity health.Severity `json:"severity"`
}

func (a ExpectedAlert) String() string {
	return fmt.Sprintf("%s %s %s %s %s", a.Level, a.Region, a.Host, a.Check, a.Severity)
}

// Effect makes the checks it matches report Status (with Severity, when
// set) in rounds From to To-1, or report nothing when Silent. A later
// effect overrides an earlier one where both match.
type Effect struct {
	// Region, Host and Check are globs (path.Match); Host matches the short
	// host name (web-042), and an empty Check matches every check.
	Region string `json:"region"`
	Host   string `json:"host"`
	Check  string `json:"check,omitempty"`
	From   int    `json:"from"`
	To     int    `json:"to"`

	Status   health.Status   `json:"status"`
	Severity health.Severity `json:"severity,omitempty"`
	// Flap alternates Status (rounds From, From+2, ...) and passing.
	Flap bool `json:"flap,omitempty"`
	// Silent: the matching checks send nothing.
	Silent bool `json:"silent,omitempty"`
}

func (e *Effect) matches(h *Host, check string, round int) bool {
	if round < e.From || round >= e.To {
		return false
	}
	if ok, _ := path.Match(e.Region, h.Region); !ok {
		return false
	}
	if ok, _ := path.Match(e.Host, h.Name); !ok {
		return false
	}
	if e.Check == "" {
		return true
	}
	ok, _ := path.Match(e.Check, check)
	return ok
}

// Result is what one check reports in one round.
type Result struct {
	Status   health.Status
	Severity health.Severity
	Silent   bool
}

// ResultAt decides what check reports on h in round.
func (s *Scenario) ResultAt(h *Host, check string, round int) Result {
	var r Result
	for i := range s.Effects {
		e := &s.Effects[i]
		if !e.matches(h, check, round) {
			continue
		}
		r = Result{Status: e.Status, Severity: e.Severity, Silent: e.Silent}
		if e.Flap && (round-e.From)%2 == 1 {
			r.Status, r.Severity = health.Passing, health.SeverityNone
		}
	}
	return r
}

// RoundTime is when round k's boundary is.
func (s *Scenario) RoundTime(k int) time.Time {
	return s.Start.Add(time.Duration(k) * s.Fleet.interval())
}

// FileBase is the scenario's file name without extension: NN-name.
func (s *Scenario) FileBase() string { return fmt.Sprintf("%02d-%s", s.Number, s.Name) }

// Validate checks that the scenario can be generated and replayed.
func (s *Scenario) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Number < 1 || s.Name == "" || strings.ContainsAny(s.Name, " /") {
		add("number %d and name %q: want a positive number and a name without spaces or slashes", s.Number, s.Name)
	}
	if err := s.Fleet.validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Start.IsZero() || s.Rounds < 1 {
		add("start %s and rounds %d: want a start time and at least one round", s.Start, s.Rounds)
	}
	for i, e := range s.Effects {
		for _, g := range []string{e.Region, e.Host, e.Check} {
			if _, err := path.Match(g, ""); err != nil {
				add("effects[%d]: glob %q: %v", i, g, err)
			}
		}
		if e.From < 0 || e.To <= e.From || e.To > s.Rounds {
			add("effects[%d]: rounds %d..%d: want 0 <= from < to <= %d", i, e.From, e.To, s.Rounds)
		}
		if e.Status > health.Unknown {
			add("effects[%d]: invalid status %d", i, e.Status)
		}
	}
	end := s.RoundTime(s.Rounds)
	for i, w := range s.Windows {
		if w.Region == "" || w.Created.Before(s.Start) || !w.Until.After(w.Created) || w.Created.After(end) {
			add("windows[%d]: want a region and start <= created < until, created before the end", i)
		}
	}
	for i, r := range s.Restarts {
		if !r.After(s.Start) || !r.Before(end) {
			add("restarts[%d]: %s is not within the scenario", i, r.Format(time.RFC3339))
		}
	}
	pages := 0
	for _, a := range s.Expect.Alerts {
		if a.Severity == health.SeverityCritical || a.Severity == health.SeverityError {
			pages++
		}
	}
	if pages != s.Expect.Pages {
		add("expect: %d pages but %d alerts at a paging severity", s.Expect.Pages, pages)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scenario %s: %w", s.FileBase(), err)
	}
	return nil
}

// WriteEvents writes the scenario's events as NDJSON, one per line in time
// order, and returns how many it wrote.
func (s *Scenario) WriteEvents(w io.Writer) (int, error) {
	hosts := s.Fleet.Hosts()
	// The hosts in the order they report within a round.
	order := make([]int, len(hosts))
	offsets := make([]time.Duration, len(hosts))
	for i := range hosts {
		order[i], offsets[i] = i, s.Fleet.ReportOffset(&hosts[i])
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(offsets[a], offsets[b]) })
	var line []byte
	n := 0
	for k := 0; k < s.Rounds; k++ {
		base := s.RoundTime(k)
		for _, i := range order {
			h := &hosts[i]
			at := base.Add(offsets[i])
			for _, check := range h.Checks {
				r := s.ResultAt(h, check, k)
				if r.Silent {
					continue
				}
				line = appendEvent(line[:0], &s.Fleet, h, check, r, at)
				if _, err := w.Write(line); err != nil {
					return n, fmt.Errorf("scenario %s: write events: %w", s.FileBase(), err)
				}
				n++
			}
		}
	}
	return n, nil
}

// arrivalMargin keeps every host's offset this far from the interval's
// boundaries, so that a round never runs into the next.
const arrivalMargin = 500 * time.Millisecond

// arrivalSeed makes the offsets a fixed function of the host names; change
// it and the whole fleet reshuffles.
const arrivalSeed = "healthrouter-scenario-arrival-1"

// ReportOffset is when, after each round's boundary, host h reports: a
// pseudo-random whole number of milliseconds within the interval, fixed by
// the host's full name. It is never on a multiple of 5 s, so that no
// deadline computed from it coincides with one of the engine's ticks.
func (f *Fleet) ReportOffset(h *Host) time.Duration {
	hash := fnv.New64a()
	hash.Write([]byte(arrivalSeed))
	hash.Write([]byte(f.FQDN(h)))
	span := uint64((f.interval() - 2*arrivalMargin) / time.Millisecond)
	off := arrivalMargin + time.Duration(hash.Sum64()%span)*time.Millisecond
	if off%(5*time.Second) == 0 {
		off += time.Millisecond
	}
	return off
}

// appendEvent renders one event as the Vector pipeline delivers it: the
// contract's fields, keys sorted, the timestamp in RFC 3339 with nine
// fractional digits, output only when the check is not passing.
func appendEvent(b []byte, f *Fleet, h *Host, check string, r Result, at time.Time) []byte {
	b = append(b, `{"check":`...)
	b = appendString(b, check)
	b = append(b, `,"host":`...)
	b = appendString(b, f.FQDN(h))
	b = append(b, `,"interval":`...)
	b = strconv.AppendInt(b, int64(f.interval()/time.Second), 10)
	if r.Status != health.Passing {
		b = append(b, `,"output":`...)
		b = appendString(b, output(check, r.Status))
	}
	b = append(b, `,"region":`...)
	b = appendString(b, h.Region)
	if r.Severity != health.SeverityNone {
		b = append(b, `,"severity":`...)
		b = appendString(b, r.Severity.String())
	}
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status.String())
	b = append(b, `,"timestamp":"`...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
	return append(b, "\"}\n"...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// output is the plugin output a failing check prints.
func output(check string, st health.Status) string {
	msg, ok := outputs[check]
	if !ok {
		msg = check + " check failed"
	}
	return strings.ToUpper(st.String()) + " - " + msg
}

var outputs = map[string]string{
	"cpu_steal":    "cpu steal 38% over 5m (hypervisor contention)",
	"load":         "load average 14.2, 9.8, 6.1 on 8 cpus",
	"memory":       "memory available 4% (1.2 GiB of 31 GiB)",
	"disk":         "/var 96% used",
	"lvm":          "volume group vg0: 2 of 4 physical volumes missing",
	"raid":         "md0 degraded [U_], resync stalled",
	"connectivity": "tcp probe to gateway: no route to host, 100% loss",
	"dns":          "resolver 10.0.0.2: SERVFAIL for internal.example.com",
	"ntp":          "clock offset 1.84 s from pool",
	"kernel":       "kernel 6.1.0-18 differs from running 6.1.0-17",
	"sshd":         "sshd not listening on :22",
	"registry":     "GET /v2/ returned 503 (upstream storage errors)",
}

// Encode renders the scenario as its expected.json file.
func (s *Scenario) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", s.FileBase(), err)
	}
	return append(b, '\n'), nil
}

// Load reads and validates a scenario from its expected.json file.
func Load(file string) (*Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	var s Scenario
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("load scenario %s: %w", file, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Files renders a scenario's two files: the NDJSON events (uncompressed)
// and the expected.json, with Events filled in.
func Files(s *Scenario) (events, expected []byte, err error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	n, err := s.WriteEvents(&buf)
	if err != nil {
		return nil, nil, err
	}
	c := *s
	c.Events = n
	expected, err = c.Encode()
	if err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), expected, nil
}

// WriteFiles writes every scenario's NN-name.ndjson.gz and
// NN-name.expected.json into dir.
func WriteFiles(dir string, scenarios []*Scenario) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write scenarios: %w", err)
	}
	for _, s := range scenarios {
		events, expected, err := Files(s)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(events); err != nil {
			return fmt.Errorf("scenario %s: compress: %w", s.FileBase(), err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("scenario %s: compress: %w", s.FileBase(), err)
		}
		base := filepath.Join(dir, s.FileBase())
		if err := os.WriteFile(base+".ndjson.gz", gz.Bytes(), 0o644); err != nil {
			return fmt.Errorf("scenario %s: %w", s.FileBase(), err)
		}
		if err := os.WriteFile(base+".expected.json", expected, 0o644); err != nil {
			return fmt.Errorf("scenario %s: %w", s.FileBase(), err)
		}
	}
	return nil
}
