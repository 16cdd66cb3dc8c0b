package pagerdutytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Events API v2 limits.
const (
	maxBodyBytes   = 512 * 1024
	maxSummaryLen  = 1024
	maxDedupKeyLen = 255
	routingKeyLen  = 32
)

// Event is one event the server accepted.
type Event struct {
	Time       time.Time
	RoutingKey string
	Action     string
	DedupKey   string
	Payload    *Payload
}

// Payload is a trigger's payload as received.
type Payload struct {
	Summary   string         `json:"summary"`
	Source    string         `json:"source"`
	Severity  string         `json:"severity"`
	Timestamp string         `json:"timestamp,omitempty"`
	Component string         `json:"component,omitempty"`
	Group     string         `json:"group,omitempty"`
	Class     string         `json:"class,omitempty"`
	Details   map[string]any `json:"custom_details,omitempty"`
}

// Incident is PagerDuty's alert for one dedup key on one routing key.
type Incident struct {
	RoutingKey string
	DedupKey   string
	Open       bool
	// Opened counts the alerts created: a trigger opens one unless one is
	// already open, in which case it only adds to Triggers.
	Opened   int
	Triggers int
	Resolves int // resolves that closed an open alert
	// Dropped counts resolves and acknowledges for no open alert, which
	// PagerDuty accepts (202) and ignores.
	Dropped int
	// Last is the payload of the latest trigger.
	Last *Payload
}

// wireEvent is the request body, decoded strictly.
type wireEvent struct {
	RoutingKey *string          `json:"routing_key"`
	Action     *string          `json:"event_action"`
	DedupKey   *string          `json:"dedup_key"`
	Payload    *json.RawMessage `json:"payload"`
	Images     []struct {
		Src  string `json:"src"`
		Href string `json:"href,omitempty"`
		Alt  string `json:"alt,omitempty"`
	} `json:"images"`
	Links []struct {
		Href string `json:"href"`
		Text string `json:"text,omitempty"`
	} `json:"links"`
	Client    string `json:"client"`
	ClientURL string `json:"client_url"`
}

type eventsAnswer struct {
	Status   string   `json:"status"`
	Message  string   `json:"message"`
	DedupKey string   `json:"dedup_key,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) enqueue(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.answer(w, http.StatusMethodNotAllowed, "", eventsAnswer{Status: "Method not allowed", Message: "use POST"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		s.answer(w, http.StatusBadRequest, "", eventsAnswer{Status: "invalid event", Message: "Event object is invalid",
			Errors: []string{"could not read the request body"}})
		return
	}

	// Every request is counted, before any answer, under the routing key it
	// names: that is what a client's rate budget is measured against.
	var probe struct {
		RoutingKey string `json:"routing_key"`
	}
	_ = json.Unmarshal(body, &probe)

	s.mu.Lock()
	now := s.now()
	s.requests[probe.RoutingKey] = append(s.requests[probe.RoutingKey], now)
	delay := s.delay
	var injected *fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		injected = &f
	}
	s.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if injected != nil {
		s.fault(w, injected.status, probe.RoutingKey)
		return
	}

	if len(body) > maxBodyBytes {
		s.answer(w, http.StatusBadRequest, probe.RoutingKey, eventsAnswer{Status: "invalid event", Message: "Event object is invalid",
			Errors: []string{"Request body is larger than 512 KB"}})
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		s.answer(w, http.StatusBadRequest, probe.RoutingKey, eventsAnswer{Status: "Unrecognized object", Message: "Event object format is unrecognized",
			Errors: []string{"Content-Type must be application/json"}})
		return
	}
	ev, payload, problems, parseErr := decodeEvent(body)
	if parseErr != nil {
		s.answer(w, http.StatusBadRequest, probe.RoutingKey, eventsAnswer{Status: "Unrecognized object", Message: "Event object format is unrecognized",
			Errors: []string{"JSON parse error"}})
		return
	}
	if len(problems) == 0 && !s.knownKey(*ev.RoutingKey) {
		problems = append(problems, "Invalid routing key")
	}
	if len(problems) > 0 {
		s.answer(w, http.StatusBadRequest, probe.RoutingKey, eventsAnswer{Status: "invalid event", Message: "Event object is invalid", Errors: problems})
		return
	}

	key, action := *ev.RoutingKey, *ev.Action
	dedup := ""
	if ev.DedupKey != nil {
		dedup = *ev.DedupKey
	}

	s.mu.Lock()
	recent := s.ingested[key][:0:0]
	for _, t := range s.ingested[key] {
		if now.Sub(t) < s.rateWindow {
			recent = append(recent, t)
		}
	}
	s.ingested[key] = recent
	if len(recent) >= s.rateLimit {
		s.mu.Unlock()
		s.answer(w, http.StatusTooManyRequests, key, throttled)
		return
	}
	s.ingested[key] = append(s.ingested[key], now)
	if action == "trigger" && dedup == "" {
		dedup = newDedupKey()
	}
	s.apply(now, key, action, dedup, payload)
	s.statuses[http.StatusAccepted]++
	s.mu.Unlock()

	writeJSON(w, http.StatusAccepted, eventsAnswer{Status: "success", Message: "Event processed", DedupKey: dedup})
}

// throttled is the answer to an event over the rate limit.
var throttled = eventsAnswer{Status: "throttle event",
	Message: "Requests for this service are arriving too quickly. Please retry later."}

// answer writes a JSON answer to a request naming routingKey ("" when none
// could be read), quoting the key when the server echoes keys.
func (s *Server) answer(w http.ResponseWriter, status int, routingKey string, a eventsAnswer) {
	s.mu.Lock()
	s.statuses[status]++
	echo := s.echoKeys && routingKey != ""
	s.mu.Unlock()
	if echo {
		a = quoteKey(a, routingKey)
	}
	writeJSON(w, status, a)
}

// quoteKey names the routing key in an answer's message and in its errors
// about the key.
func quoteKey(a eventsAnswer, routingKey string) eventsAnswer {
	a.Message += " (routing_key " + routingKey + ")"
	errs := make([]string, len(a.Errors))
	for i, e := range a.Errors {
		if strings.Contains(strings.ToLower(e), "routing key") || strings.Contains(e, "routing_key") {
			e += ": " + routingKey
		}
		errs[i] = e
	}
	a.Errors = errs
	return a
}

// fault answers an injected failure: 429 as PagerDuty's throttle, 5xx as a
// bare error page (PagerDuty's load balancers do not answer JSON).
func (s *Server) fault(w http.ResponseWriter, status int, routingKey string) {
	if status == http.StatusTooManyRequests {
		s.answer(w, status, routingKey, throttled)
		return
	}
	s.mu.Lock()
	s.statuses[status]++
	s.mu.Unlock()
	http.Error(w, http.StatusText(status), status)
}

func (s *Server) knownKey(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routingKeys[key]
}

// apply updates the alert for an accepted event, with PagerDuty's
// semantics: trigger opens or re-triggers, resolve and acknowledge act on
// an open alert only and are otherwise dropped.
func (s *Server) apply(now time.Time, key, action, dedup string, p *Payload) {
	s.events = append(s.events, Event{Time: now, RoutingKey: key, Action: action, DedupKey: dedup, Payload: p})
	ik := incidentKey{key, dedup}
	inc := s.incidents[ik]
	if inc == nil {
		inc = &Incident{RoutingKey: key, DedupKey: dedup}
		s.incidents[ik] = inc
	}
	switch action {
	case "trigger":
		if !inc.Open {
			inc.Open = true
			inc.Opened++
		}
		inc.Triggers++
		inc.Last = p
	case "resolve":
		if inc.Open {
			inc.Open = false
			inc.Resolves++
		} else {
			inc.Dropped++
		}
	case "acknowledge":
		if !inc.Open {
			inc.Dropped++
		}
	}
}

// decodeEvent parses and validates an event body. parseErr is set when the
// body is not a JSON event object at all; problems lists what is invalid,
// in PagerDuty's words.
func decodeEvent(body []byte) (ev wireEvent, p *Payload, problems []string, parseErr error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, nil, nil, err
	}
	if dec.More() {
		return ev, nil, nil, errors.New("trailing data after the event object")
	}

	switch {
	case ev.RoutingKey == nil || *ev.RoutingKey == "":
		problems = append(problems, "'routing_key' is missing or blank")
	case len(*ev.RoutingKey) != routingKeyLen:
		problems = append(problems, "Length of 'routing_key' is incorrect (should be 32 characters)")
	case !alphanumeric(*ev.RoutingKey):
		problems = append(problems, "'routing_key' cannot contain non-alphanumeric characters.")
	}

	action := ""
	if ev.Action != nil {
		action = *ev.Action
	}
	switch action {
	case "trigger", "acknowledge", "resolve":
	case "":
		problems = append(problems, "'event_action' is missing or blank")
	default:
		problems = append(problems, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
	}

	if ev.DedupKey != nil && utf8.RuneCountInString(*ev.DedupKey) > maxDedupKeyLen {
		problems = append(problems, "'dedup_key' is too long (maximum is 255 characters)")
	}
	if (action == "acknowledge" || action == "resolve") && (ev.DedupKey == nil || strings.TrimSpace(*ev.DedupKey) == "") {
		problems = append(problems, "'dedup_key' is missing or blank")
	}
	for _, img := range ev.Images {
		if img.Src == "" {
			problems = append(problems, "'images[].src' is missing or blank")
		}
	}
	for _, l := range ev.Links {
		if l.Href == "" {
			problems = append(problems, "'links[].href' is missing or blank")
		}
	}

	if ev.Payload != nil && string(*ev.Payload) != "null" {
		var payload Payload
		pd := json.NewDecoder(bytes.NewReader(*ev.Payload))
		pd.DisallowUnknownFields()
		if err := pd.Decode(&payload); err != nil {
			return ev, nil, nil, err
		}
		p = &payload
	}
	if action == "trigger" {
		problems = append(problems, validatePayload(p)...)
	}
	return ev, p, problems, nil
}

func validatePayload(p *Payload) []string {
	if p == nil {
		return []string{"'payload' is missing"}
	}
	var problems []string
	switch {
	case strings.TrimSpace(p.Summary) == "":
		problems = append(problems, "'payload.summary' is missing or blank")
	case utf8.RuneCountInString(p.Summary) > maxSummaryLen:
		problems = append(problems, "'payload.summary' is too long (maximum is 1024 characters)")
	}
	if strings.TrimSpace(p.Source) == "" {
		problems = append(problems, "'payload.source' is missing or blank")
	}
	switch p.Severity {
	case "critical", "error", "warning", "info":
	case "":
		problems = append(problems, "'payload.severity' is missing or blank")
	default:
		problems = append(problems, "'payload.severity' is invalid (must be one of: critical, error, warning, info)")
	}
	if p.Timestamp != "" && !validTimestamp(p.Timestamp) {
		problems = append(problems, "'payload.timestamp' is not a valid ISO 8601 date-time")
	}
	return problems
}

// validTimestamp accepts the ISO 8601 forms PagerDuty documents: RFC 3339
// and its example's numeric zone without a colon.
func validTimestamp(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
