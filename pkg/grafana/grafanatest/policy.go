package grafanatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grafana/grafana-openapi-client-go/models"
)

// route is a notification policy as Grafana holds it (grafana/alerting
// definition.Route), in the JSON form its provisioning API reads and
// answers. Unlike the client's models.Route it carries `matchers` the way
// Grafana does: a list of strings such as team="b" (prometheus/alertmanager
// config.Matchers), which is what a route written through Grafana's
// Alertmanager configuration API, or imported from an Alertmanager config,
// reads back as. Empty fields are left out, as Grafana leaves them out.
type route struct {
	Receiver            string                `json:"receiver,omitempty"`
	GroupBy             []string              `json:"group_by,omitempty"`
	Match               map[string]string     `json:"match,omitempty"`
	MatchRe             map[string]string     `json:"match_re,omitempty"`
	Matchers            matchers              `json:"matchers,omitempty"`
	ObjectMatchers      models.ObjectMatchers `json:"object_matchers,omitempty"`
	MuteTimeIntervals   []string              `json:"mute_time_intervals,omitempty"`
	ActiveTimeIntervals []string              `json:"active_time_intervals,omitempty"`
	Continue            bool                  `json:"continue,omitempty"`
	Routes              []*route              `json:"routes,omitempty"`
	GroupWait           string                `json:"group_wait,omitempty"`
	GroupInterval       string                `json:"group_interval,omitempty"`
	RepeatInterval      string                `json:"repeat_interval,omitempty"`
	Provenance          string                `json:"provenance,omitempty"`
}

// matcher is one parsed label matcher.
type matcher struct {
	name, op, value string
}

// matcherOps in the order alertmanager's labels.MatchType numbers them,
// which is the last key matchers sort by.
var matcherOps = []string{"=", "!=", "=~", "!~"}

func opRank(op string) int {
	for i, o := range matcherOps {
		if o == op {
			return i
		}
	}
	return len(matcherOps)
}

// matchers is a route's `matchers` field, as alertmanager's config.Matchers
// decodes and encodes it: a list of strings, each holding one or more
// matchers (`team="b"`, `{a="b", c=~"d.*"}`), kept sorted by name, value and
// operator, and written back one string per matcher with the value quoted.
// A list of objects, which the generated client sends for models.Matchers,
// does not decode: Grafana answers it with 400.
type matchers []matcher

func (ms *matchers) UnmarshalJSON(data []byte) error {
	var lines []string
	if err := json.Unmarshal(data, &lines); err != nil {
		return fmt.Errorf("matchers: %w", err)
	}
	var out matchers
	for _, line := range lines {
		parsed, err := parseMatchers(line)
		if err != nil {
			return err
		}
		out = append(out, parsed...)
	}
	out.sort()
	*ms = out
	return nil
}

func (ms matchers) MarshalJSON() ([]byte, error) {
	strs := make([]string, len(ms))
	for i, m := range ms {
		strs[i] = m.String()
	}
	return json.Marshal(strs)
}

func (ms matchers) sort() {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if a.value != b.value {
			return a.value < b.value
		}
		return opRank(a.op) < opRank(b.op)
	})
}

// String renders the matcher as alertmanager's Matcher.String does: the
// name bare when it is a classic label name (quoted otherwise), the value
// always quoted with \, " and newlines escaped.
func (m matcher) String() string {
	name := m.name
	if !classicLabelName.MatchString(name) {
		name = strconv.Quote(name)
	}
	v := strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(m.value)
	return name + m.op + `"` + v + `"`
}

var classicLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// parseMatchers reads one string of a `matchers` list: matchers separated by
// commas, optionally in braces; names bare or quoted, values bare or quoted.
func parseMatchers(line string) ([]matcher, error) {
	s := strings.TrimSpace(line)
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return nil, fmt.Errorf("bad matcher format: %s: missing closing '}'", line)
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" {
		return nil, nil
	}
	parts, err := splitOutsideQuotes(s)
	if err != nil {
		return nil, fmt.Errorf("bad matcher format: %s: %w", line, err)
	}
	var out []matcher
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" && i == len(parts)-1 && i > 0 {
			break // a trailing comma
		}
		m, err := parseMatcher(p)
		if err != nil {
			return nil, fmt.Errorf("bad matcher format: %s: %w", line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// splitOutsideQuotes splits s at the commas that are not inside a quoted
// string.
func splitOutsideQuotes(s string) ([]string, error) {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if quoted {
		return nil, errors.New("unterminated quoted string")
	}
	return append(parts, s[start:]), nil
}

func parseMatcher(s string) (matcher, error) {
	var m matcher
	rest := s
	if strings.HasPrefix(rest, `"`) {
		end := closingQuote(rest)
		if end < 0 {
			return m, fmt.Errorf("%q: unterminated label name", s)
		}
		name, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return m, fmt.Errorf("%q: label name: %w", s, err)
		}
		m.name, rest = name, strings.TrimSpace(rest[end+1:])
	} else {
		i := strings.IndexAny(rest, "=!")
		if i < 0 {
			return m, fmt.Errorf("%q: no operator", s)
		}
		m.name, rest = strings.TrimSpace(rest[:i]), rest[i:]
		if !classicLabelName.MatchString(m.name) {
			return m, fmt.Errorf("%q: invalid label name %q", s, m.name)
		}
	}
	if m.name == "" || !utf8.ValidString(m.name) {
		return m, fmt.Errorf("%q: invalid label name", s)
	}
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(rest, op) {
			m.op, rest = op, strings.TrimSpace(rest[len(op):])
			break
		}
	}
	if m.op == "" {
		return m, fmt.Errorf("%q: no operator", s)
	}
	if strings.HasPrefix(rest, `"`) {
		if closingQuote(rest) != len(rest)-1 {
			return m, fmt.Errorf("%q: text after the quoted value", s)
		}
		v, err := strconv.Unquote(rest)
		if err != nil {
			return m, fmt.Errorf("%q: value: %w", s, err)
		}
		rest = v
	} else if strings.ContainsAny(rest, `"`) {
		return m, fmt.Errorf("%q: stray quote in value", s)
	}
	m.value = rest
	if err := validMatcher(m.op, m.value); err != nil {
		return m, fmt.Errorf("%q: %w", s, err)
	}
	return m, nil
}

// closingQuote returns the index of the quote that closes the string
// opening s, or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// validMatcher checks what alertmanager's labels.NewMatcher checks: a
// regular expression operator needs a value that compiles, anchored.
func validMatcher(op, value string) error {
	if op != "=~" && op != "!~" {
		return nil
	}
	if _, err := regexp.Compile("^(?:" + value + ")$"); err != nil {
		return fmt.Errorf("invalid regular expression: %w", err)
	}
	return nil
}

// routeFromModel converts a tree built with the client's model. Its
// matcher objects become string matchers, as Grafana would store them.
func routeFromModel(r *models.Route) *route {
	if r == nil {
		return nil
	}
	out := &route{
		Receiver:            r.Receiver,
		GroupBy:             append([]string(nil), r.GroupBy...),
		Match:               cloneStrings(r.Match),
		MatchRe:             cloneStrings(r.MatchRe),
		MuteTimeIntervals:   append([]string(nil), r.MuteTimeIntervals...),
		ActiveTimeIntervals: append([]string(nil), r.ActiveTimeIntervals...),
		Continue:            r.Continue,
		GroupWait:           r.GroupWait,
		GroupInterval:       r.GroupInterval,
		RepeatInterval:      r.RepeatInterval,
		Provenance:          string(r.Provenance),
	}
	for _, om := range r.ObjectMatchers {
		out.ObjectMatchers = append(out.ObjectMatchers, append(models.ObjectMatcher(nil), om...))
	}
	for _, m := range r.Matchers {
		if m == nil {
			continue
		}
		regex := m.IsRegex != nil && *m.IsRegex
		op := "!="
		switch {
		case regex && m.IsEqual:
			op = "=~"
		case regex:
			op = "!~"
		case m.IsEqual:
			op = "="
		}
		out.Matchers = append(out.Matchers, matcher{name: deref(m.Name), op: op, value: deref(m.Value)})
	}
	for _, c := range r.Routes {
		if c != nil {
			out.Routes = append(out.Routes, routeFromModel(c))
		}
	}
	return out
}

// model converts the route to the client's model, its string matchers to
// matcher objects, for inspection in tests.
func (r *route) model() *models.Route {
	out := &models.Route{
		Receiver:            r.Receiver,
		GroupBy:             append([]string(nil), r.GroupBy...),
		Match:               cloneStrings(r.Match),
		MatchRe:             cloneStrings(r.MatchRe),
		MuteTimeIntervals:   append([]string(nil), r.MuteTimeIntervals...),
		ActiveTimeIntervals: append([]string(nil), r.ActiveTimeIntervals...),
		Continue:            r.Continue,
		GroupWait:           r.GroupWait,
		GroupInterval:       r.GroupInterval,
		RepeatInterval:      r.RepeatInterval,
		Provenance:          models.Provenance(r.Provenance),
	}
	for _, om := range r.ObjectMatchers {
		out.ObjectMatchers = append(out.ObjectMatchers, append(models.ObjectMatcher(nil), om...))
	}
	for _, m := range r.Matchers {
		out.Matchers = append(out.Matchers, &models.Matcher{
			Name: ptr(m.name), Value: ptr(m.value),
			IsEqual: m.op == "=" || m.op == "=~",
			IsRegex: ptr(m.op == "=~" || m.op == "!~"),
		})
	}
	for _, c := range r.Routes {
		out.Routes = append(out.Routes, c.model())
	}
	return out
}

// clone returns a deep copy.
func (r *route) clone() *route {
	out := *r
	out.GroupBy = append([]string(nil), r.GroupBy...)
	out.Match = cloneStrings(r.Match)
	out.MatchRe = cloneStrings(r.MatchRe)
	out.Matchers = append(matchers(nil), r.Matchers...)
	out.ObjectMatchers = nil
	for _, om := range r.ObjectMatchers {
		out.ObjectMatchers = append(out.ObjectMatchers, append(models.ObjectMatcher(nil), om...))
	}
	out.MuteTimeIntervals = append([]string(nil), r.MuteTimeIntervals...)
	out.ActiveTimeIntervals = append([]string(nil), r.ActiveTimeIntervals...)
	out.Routes = nil
	for _, c := range r.Routes {
		out.Routes = append(out.Routes, c.clone())
	}
	return &out
}

// normalise rewrites a validated tree the way Grafana stores it: durations
// in its own notation, object matchers sorted as alertmanager sorts
// matchers, string matchers sorted (they are on decoding), and no
// provenance on any route (the tree's is kept apart).
func (r *route) normalise() {
	r.GroupWait = normalDuration(r.GroupWait)
	r.GroupInterval = normalDuration(r.GroupInterval)
	r.RepeatInterval = normalDuration(r.RepeatInterval)
	r.Provenance = ""
	sort.SliceStable(r.ObjectMatchers, func(i, j int) bool {
		a, b := objectMatcher(r.ObjectMatchers[i]), objectMatcher(r.ObjectMatchers[j])
		if a.name != b.name {
			return a.name < b.name
		}
		if a.value != b.value {
			return a.value < b.value
		}
		return opRank(a.op) < opRank(b.op)
	})
	r.Matchers.sort()
	for _, c := range r.Routes {
		c.normalise()
	}
}

// objectMatcher reads an [name, operator, value] entry; one of another
// length (which validation refuses) reads as far as it goes.
func objectMatcher(om models.ObjectMatcher) matcher {
	var m matcher
	for i, v := range om {
		switch i {
		case 0:
			m.name = v
		case 1:
			m.op = v
		case 2:
			m.value = v
		}
	}
	return m
}

// references reports whether the route or one below it names receiver.
func (r *route) references(receiver string) bool {
	if r == nil {
		return false
	}
	if r.Receiver == receiver {
		return true
	}
	for _, c := range r.Routes {
		if c.references(receiver) {
			return true
		}
	}
	return false
}

func cloneStrings(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
