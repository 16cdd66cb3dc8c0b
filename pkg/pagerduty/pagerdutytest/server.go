// Package pagerdutytest is a strict in-process PagerDuty for tests: the
// Events API v2 (/v2/enqueue) with PagerDuty's validation, answers, rate
// limit and de-duplication, and the REST reads `pagerduty verify` makes
// (services with their integrations, escalation policies, integrations),
// with token auth, classic pagination and PagerDuty's error bodies. Faults
// (5xx, 429, delays) can be injected, and everything the server accepted is
// kept for assertions.
package pagerdutytest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"
)

// Defaults of the Events API rate limit: about 120 events per minute per
// integration key, over a window looking back from now.
const (
	DefaultRateLimit  = 120
	DefaultRateWindow = time.Minute
)

// Server is a fake PagerDuty. Its URL serves both the Events API and the
// REST API, as the base URL go-pagerduty's WithV2EventsAPIEndpoint and
// WithAPIEndpoint take.
type Server struct {
	srv *httptest.Server

	mu             sync.Mutex
	now            func() time.Time
	apiToken       string
	routingKeys    map[string]bool
	rateLimit      int
	rateWindow     time.Duration
	faults         []fault
	delay          time.Duration
	requests       map[string][]time.Time // Events API requests by routing key, arrival times
	ingested       map[string][]time.Time // accepted events by routing key, for the rate limit
	incidents      map[incidentKey]*Incident
	events         []Event
	statuses       map[int]int
	services       []Service
	policies       map[string]EscalationPolicy
	referencesOnly bool
	echoKeys       bool
	restRequests   int
}

type fault struct {
	status int
}

type incidentKey struct{ routingKey, dedupKey string }

// Option configures a Server.
type Option func(*Server)

// WithRoutingKeys makes the Events API accept these integration keys; any
// other well-formed key is answered "Invalid routing key".
func WithRoutingKeys(keys ...string) Option {
	return func(s *Server) {
		for _, k := range keys {
			s.routingKeys[k] = true
		}
	}
}

// WithAPIToken sets the REST API token (Authorization: Token token=<t>).
func WithAPIToken(token string) Option { return func(s *Server) { s.apiToken = token } }

// WithClock makes the server tell time by now (rate-limit windows and event
// times), so tests can share a fake clock with the code under test.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit sets the per-routing-key limit: at most n accepted events in
// any window.
func WithRateLimit(n int, window time.Duration) Option {
	return func(s *Server) { s.rateLimit, s.rateWindow = n, window }
}

// WithIntegrationReferences makes GET /services list integrations as
// references even with include[]=integrations, so clients must fetch each
// integration to learn its key.
func WithIntegrationReferences() Option { return func(s *Server) { s.referencesOnly = true } }

// WithRoutingKeyEcho makes the Events API quote the routing key a request
// named in its JSON error answers (a refusal's message and errors[], a
// throttle's message), as an API quoting the field it objects to may: what
// a client reports of such an answer must mask the key itself.
func WithRoutingKeyEcho() Option { return func(s *Server) { s.echoKeys = true } }

// New starts a Server; Close stops it.
func New(opts ...Option) *Server {
	s := &Server{
		now:         time.Now,
		routingKeys: map[string]bool{},
		rateLimit:   DefaultRateLimit,
		rateWindow:  DefaultRateWindow,
		requests:    map[string][]time.Time{},
		ingested:    map[string][]time.Time{},
		incidents:   map[incidentKey]*Incident{},
		statuses:    map[int]int{},
		policies:    map[string]EscalationPolicy{},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/enqueue", s.enqueue)
	mux.HandleFunc("/", s.rest)
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the base URL of both APIs.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AddRoutingKeys makes the Events API accept these integration keys from
// now on, as when an operator adds the integration in PagerDuty.
func (s *Server) AddRoutingKeys(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.routingKeys[k] = true
	}
}

// FailNext makes the next n Events API requests answer status (a 5xx, or
// 429) without ingesting the event.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status})
	}
}

// ClearFaults drops the failures FailNext queued and not yet served.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetDelay holds every Events API response for d (or until the client gives
// up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the arrival times of every Events API request made with
// routingKey, whatever its answer, oldest first.
func (s *Server) Requests(routingKey string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests[routingKey]...)
}

// MaxRequestsInWindow is the largest number of Events API requests made with
// routingKey within any window of the given length: what a rate budget
// must keep at or below its limit.
func (s *Server) MaxRequestsInWindow(routingKey string, window time.Duration) int {
	times := s.Requests(routingKey)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// Statuses counts Events API answers by HTTP status.
func (s *Server) Statuses() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.statuses))
	for k, v := range s.statuses {
		out[k] = v
	}
	return out
}

// Events returns the events the server accepted (answered 202), in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Incident returns the state of the alert with dedupKey on routingKey.
func (s *Server) Incident(routingKey, dedupKey string) (Incident, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc, ok := s.incidents[incidentKey{routingKey, dedupKey}]
	if !ok {
		return Incident{}, false
	}
	return *inc, true
}

// Incidents returns every alert the server has seen, sorted by dedup key.
func (s *Server) Incidents() []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Incident, 0, len(s.incidents))
	for _, inc := range s.incidents {
		out = append(out, *inc)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DedupKey != out[j].DedupKey {
			return out[i].DedupKey < out[j].DedupKey
		}
		return out[i].RoutingKey < out[j].RoutingKey
	})
	return out
}

// OpenIncidents returns the dedup keys of the open alerts on routingKey,
// sorted.
func (s *Server) OpenIncidents(routingKey string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, inc := range s.incidents {
		if k.routingKey == routingKey && inc.Open {
			out = append(out, k.dedupKey)
		}
	}
	sort.Strings(out)
	return out
}

// RESTRequests counts REST API requests, authorised or not.
func (s *Server) RESTRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restRequests
}

// newDedupKey makes the key PagerDuty generates for a trigger without one.
func newDedupKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
