package pagerdutytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PagerDuty/go-pagerduty"
)

const (
	key   = "abcdefghijklmnopqrstuvwxyz012345"
	token = "y_NbAkKc66ryYTWUXYEu"
)

func post(t *testing.T, s *Server, contentType, body string) (int, eventsAnswer) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/v2/enqueue", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a eventsAnswer
	data, _ := io.ReadAll(resp.Body)
	// Injected 5xx answers are plain text, as a load balancer's are.
	if err := json.Unmarshal(data, &a); err != nil && resp.StatusCode < 500 {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, data)
	}
	return resp.StatusCode, a
}

func TestEventsValidation(t *testing.T) {
	s := New(WithRoutingKeys(key))
	defer s.Close()
	trigger := func(payload string) string {
		return `{"routing_key":"` + key + `","event_action":"trigger","dedup_key":"d1","payload":` + payload + `}`
	}
	const goodPayload = `{"summary":"disk full","source":"healthrouter","severity":"critical"}`
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string // one of the errors, or the status word for 2xx
	}{
		{"trigger", trigger(goodPayload), 202, "success"},
		{"trigger with every field", `{"routing_key":"` + key + `","event_action":"trigger","dedup_key":"d2","client":"hr",
			"client_url":"https://x","links":[{"href":"https://x","text":"x"}],"images":[{"src":"https://x/i.png"}],
			"payload":{"summary":"s","source":"s","severity":"info","timestamp":"2015-07-17T08:42:58.315+0000",
			"component":"c","group":"g","class":"k","custom_details":{"a":1}}}`, 202, "success"},
		{"trigger without dedup key", `{"routing_key":"` + key + `","event_action":"trigger","payload":` + goodPayload + `}`, 202, "success"},
		{"resolve", `{"routing_key":"` + key + `","event_action":"resolve","dedup_key":"d1"}`, 202, "success"},
		{"bad JSON", `{"routing_key":`, 400, "JSON parse error"},
		{"not an object", `[1,2]`, 400, "JSON parse error"},
		{"unknown field", `{"routing_key":"` + key + `","event_action":"resolve","dedup_key":"d","severity":"x"}`, 400, "JSON parse error"},
		{"missing routing key", `{"event_action":"resolve","dedup_key":"d"}`, 400, "'routing_key' is missing or blank"},
		{"short routing key", `{"routing_key":"abc","event_action":"resolve","dedup_key":"d"}`, 400, "Length of 'routing_key' is incorrect (should be 32 characters)"},
		{"non-alphanumeric key", `{"routing_key":"abcdefghijklmnopqrstuvwxyz01234-","event_action":"resolve","dedup_key":"d"}`, 400, "'routing_key' cannot contain non-alphanumeric characters."},
		{"unknown routing key", `{"routing_key":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz","event_action":"resolve","dedup_key":"d"}`, 400, "Invalid routing key"},
		{"bad action", `{"routing_key":"` + key + `","event_action":"escalate","dedup_key":"d"}`, 400, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"},
		{"missing action", `{"routing_key":"` + key + `","dedup_key":"d"}`, 400, "'event_action' is missing or blank"},
		{"resolve without dedup key", `{"routing_key":"` + key + `","event_action":"resolve"}`, 400, "'dedup_key' is missing or blank"},
		{"acknowledge without dedup key", `{"routing_key":"` + key + `","event_action":"acknowledge","dedup_key":" "}`, 400, "'dedup_key' is missing or blank"},
		{"dedup key too long", `{"routing_key":"` + key + `","event_action":"resolve","dedup_key":"` + strings.Repeat("d", 256) + `"}`, 400, "'dedup_key' is too long (maximum is 255 characters)"},
		{"trigger without payload", `{"routing_key":"` + key + `","event_action":"trigger","dedup_key":"d"}`, 400, "'payload' is missing"},
		{"blank summary", trigger(`{"summary":" ","source":"s","severity":"critical"}`), 400, "'payload.summary' is missing or blank"},
		{"summary of 1024 characters", trigger(`{"summary":"` + strings.Repeat("é", 1024) + `","source":"s","severity":"critical"}`), 202, "success"},
		{"summary too long", trigger(`{"summary":"` + strings.Repeat("s", 1025) + `","source":"s","severity":"critical"}`), 400, "'payload.summary' is too long (maximum is 1024 characters)"},
		{"missing source", trigger(`{"summary":"s","severity":"critical"}`), 400, "'payload.source' is missing or blank"},
		{"missing severity", trigger(`{"summary":"s","source":"s"}`), 400, "'payload.severity' is missing or blank"},
		{"bad severity", trigger(`{"summary":"s","source":"s","severity":"fatal"}`), 400, "'payload.severity' is invalid (must be one of: critical, error, warning, info)"},
		{"bad timestamp", trigger(`{"summary":"s","source":"s","severity":"info","timestamp":"yesterday"}`), 400, "'payload.timestamp' is not a valid ISO 8601 date-time"},
		{"custom_details not an object", trigger(`{"summary":"s","source":"s","severity":"info","custom_details":"x"}`), 400, "JSON parse error"},
		{"image without src", `{"routing_key":"` + key + `","event_action":"resolve","dedup_key":"d","images":[{"alt":"x"}]}`, 400, "'images[].src' is missing or blank"},
		{"body over 512 KB", trigger(`{"summary":"s","source":"s","severity":"info","custom_details":{"x":"` + strings.Repeat("x", 512*1024) + `"}}`), 400, "Request body is larger than 512 KB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := post(t, s, "application/json", tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status %d (%+v), want %d", status, a, tt.wantStatus)
			}
			if status == 202 {
				if a.Status != "success" || a.Message != "Event processed" || a.DedupKey == "" {
					t.Errorf("answer %+v", a)
				}
				return
			}
			found := false
			for _, e := range a.Errors {
				found = found || e == tt.wantError
			}
			if !found {
				t.Errorf("errors %q, want %q", a.Errors, tt.wantError)
			}
			if a.Status != "invalid event" && a.Status != "Unrecognized object" {
				t.Errorf("status word %q", a.Status)
			}
		})
	}
	if status, _ := post(t, s, "text/plain", trigger(goodPayload)); status != 400 {
		t.Errorf("text/plain accepted: %d", status)
	}
}

func TestEventsDedupSemantics(t *testing.T) {
	s := New(WithRoutingKeys(key))
	defer s.Close()
	send := func(action string) {
		body := `{"routing_key":"` + key + `","event_action":"` + action + `","dedup_key":"k"`
		if action == "trigger" {
			body += `,"payload":{"summary":"s","source":"s","severity":"error"}`
		}
		if status, a := post(t, s, "application/json", body+"}"); status != 202 {
			t.Fatalf("%s: %d %+v", action, status, a)
		}
	}
	steps := []struct {
		action                              string
		open                                bool
		opened, triggers, resolves, dropped int
	}{
		{"resolve", false, 0, 0, 0, 1}, // nothing open: dropped
		{"trigger", true, 1, 1, 0, 1},  // opens
		{"trigger", true, 1, 2, 0, 1},  // adds to the open alert
		{"acknowledge", true, 1, 2, 0, 1},
		{"resolve", false, 1, 2, 1, 1}, // resolves
		{"resolve", false, 1, 2, 1, 2}, // already resolved: dropped
		{"trigger", true, 2, 3, 1, 2},  // a new alert
	}
	for i, st := range steps {
		send(st.action)
		inc, _ := s.Incident(key, "k")
		got := []int{inc.Opened, inc.Triggers, inc.Resolves, inc.Dropped}
		want := []int{st.opened, st.triggers, st.resolves, st.dropped}
		if inc.Open != st.open || !equalInts(got, want) {
			t.Errorf("step %d (%s): open %v counts %v, want %v %v", i, st.action, inc.Open, got, st.open, want)
		}
	}
	if got := s.OpenIncidents(key); len(got) != 1 || got[0] != "k" {
		t.Errorf("OpenIncidents = %v", got)
	}
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestEventsRoutingKeyEcho: with WithRoutingKeyEcho, JSON error answers
// quote the key the request named; without it, none does.
func TestEventsRoutingKeyEcho(t *testing.T) {
	const unknown = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
	resolve := func(k string) string { return `{"routing_key":"` + k + `","event_action":"resolve","dedup_key":"d"}` }
	tests := []struct {
		name      string
		body      string
		fault     int // injected before the request, 0 for none
		rateLimit bool
		status    int
		key       string // the key the answer quotes with echo on
		keyError  string // the errors[] entry quoting it, "" when only the message does
	}{
		{name: "unknown key", body: resolve(unknown), status: 400, key: unknown, keyError: "Invalid routing key: " + unknown},
		{name: "invalid event", body: `{"routing_key":"` + key + `","event_action":"escalate","dedup_key":"d"}`, status: 400, key: key},
		{name: "injected throttle", body: resolve(key), fault: 429, status: 429, key: key},
		{name: "rate limit", body: resolve(key), rateLimit: true, status: 429, key: key},
		{name: "no key to quote", body: `{"event_action":"resolve","dedup_key":"d"}`, status: 400},
	}
	for _, tt := range tests {
		for _, echo := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/echo %v", tt.name, echo), func(t *testing.T) {
				opts := []Option{WithRoutingKeys(key)}
				if echo {
					opts = append(opts, WithRoutingKeyEcho())
				}
				if tt.rateLimit {
					opts = append(opts, WithRateLimit(0, time.Minute))
				}
				s := New(opts...)
				defer s.Close()
				if tt.fault != 0 {
					s.FailNext(1, tt.fault)
				}
				status, a := post(t, s, "application/json", tt.body)
				if status != tt.status {
					t.Fatalf("status %d (%+v), want %d", status, a, tt.status)
				}
				text := a.Message + " " + strings.Join(a.Errors, " ")
				for _, k := range []string{key, unknown} {
					quoted := echo && k == tt.key
					if strings.Contains(text, k) != quoted {
						t.Errorf("answer %+v quotes %s: %v, want %v", a, k, !quoted, quoted)
					}
				}
				if !echo || tt.key == "" {
					return
				}
				if !strings.HasSuffix(a.Message, " (routing_key "+tt.key+")") {
					t.Errorf("message %q does not end quoting the key", a.Message)
				}
				if tt.keyError != "" && !slices.Contains(a.Errors, tt.keyError) {
					t.Errorf("errors %q, want %q", a.Errors, tt.keyError)
				}
			})
		}
	}
}

func TestEventsRateLimitAndFaults(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := New(WithRoutingKeys(key), WithRateLimit(3, time.Minute), WithClock(clock))
	defer s.Close()
	body := func(dk string) string {
		return `{"routing_key":"` + key + `","event_action":"trigger","dedup_key":"` + dk + `","payload":{"summary":"s","source":"s","severity":"info"}}`
	}
	for i, want := range []int{202, 202, 202, 429} {
		if status, _ := post(t, s, "application/json", body(string(rune('a'+i)))); status != want {
			t.Fatalf("event %d: %d, want %d", i, status, want)
		}
		advance(10 * time.Second)
	}
	if _, ok := s.Incident(key, "d"); ok {
		t.Errorf("a throttled event was ingested")
	}
	advance(21 * time.Second) // the first event (t=0) leaves the window at t=60s
	if status, _ := post(t, s, "application/json", body("e")); status != 202 {
		t.Errorf("after the window: %d", status)
	}
	if got := s.MaxRequestsInWindow(key, time.Minute); got != 4 {
		t.Errorf("MaxRequestsInWindow = %d, want 4 (the 429 counts as a request)", got)
	}

	s.FailNext(1, http.StatusServiceUnavailable)
	s.FailNext(1, http.StatusTooManyRequests)
	advance(time.Hour)
	for _, want := range []int{503, 429, 202} {
		if status, _ := post(t, s, "application/json", body("f")); status != want {
			t.Errorf("with faults: %d, want %d", status, want)
		}
	}
	if inc, _ := s.Incident(key, "f"); inc.Triggers != 1 {
		t.Errorf("faulted events were ingested: %+v", inc)
	}
	s.FailNext(5, http.StatusBadGateway)
	s.ClearFaults()
	if status, _ := post(t, s, "application/json", body("g")); status != 202 {
		t.Errorf("after ClearFaults: %d", status)
	}

	s.SetDelay(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(s.URL()))
	ev := pagerduty.V2Event{RoutingKey: key, Action: "trigger", DedupKey: "slow",
		Payload: &pagerduty.V2Payload{Summary: "s", Source: "s", Severity: "info"}}
	if _, err := client.ManageEventWithContext(ctx, &ev); err == nil {
		t.Errorf("delayed answer arrived before the client's deadline")
	}
	s.SetDelay(0)
	time.Sleep(20 * time.Millisecond)
	if _, ok := s.Incident(key, "slow"); ok {
		t.Errorf("an event whose client gave up was ingested")
	}
	if st := s.Statuses(); st[202] != 6 || st[429] != 2 || st[503] != 1 {
		t.Errorf("statuses %v", st)
	}
}

func TestRESTWithGoPagerDuty(t *testing.T) {
	s := New(WithAPIToken(token))
	defer s.Close()
	s.AddEscalationPolicy(EscalationPolicy{ID: "PEP", Name: "On call", Rules: [][]string{{"PU1"}}})
	for i := range 7 {
		s.AddService(Service{ID: "PS" + string(rune('A'+i)), Name: "svc", EscalationPolicyID: "PEP",
			Integrations: []Integration{{ID: "PI" + string(rune('A'+i)), Name: "hr", Key: key}}})
	}
	s.AddService(Service{ID: "PNONE", Name: "bare"})
	ctx := context.Background()
	client := pagerduty.NewClient(token, pagerduty.WithAPIEndpoint(s.URL()))

	svcs, err := client.ListServicesPaginated(ctx, pagerduty.ListServiceOptions{Limit: 3, Includes: []string{"integrations"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 8 {
		t.Fatalf("paginated %d services, want 8", len(svcs))
	}
	if in := svcs[0].Integrations[0]; in.IntegrationKey != key || in.Type != TypeEventsV2 || in.Service.ID != "PSA" {
		t.Errorf("included integration %+v", in)
	}
	if svcs[7].EscalationPolicy.ID != "" {
		t.Errorf("null escalation policy decoded as %+v", svcs[7].EscalationPolicy)
	}
	plain, err := client.ListServicesWithContext(ctx, pagerduty.ListServiceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in := plain.Services[0].Integrations[0]; in.IntegrationKey != "" || in.Type != TypeEventsV2+"_reference" {
		t.Errorf("integration without include = %+v", in)
	}
	svc, err := client.GetServiceWithContext(ctx, "PSB", &pagerduty.GetServiceOptions{Includes: []string{"integrations"}})
	if err != nil || svc.Name != "svc" || svc.Status != "active" || svc.Integrations[0].IntegrationKey != key {
		t.Errorf("GetService = %+v, %v", svc, err)
	}
	ep, err := client.GetEscalationPolicyWithContext(ctx, "PEP", nil)
	if err != nil || len(ep.EscalationRules) != 1 || ep.EscalationRules[0].Targets[0].ID != "PU1" || len(ep.Services) != 7 {
		t.Errorf("GetEscalationPolicy = %+v, %v", ep, err)
	}
	in, err := client.GetIntegrationWithContext(ctx, "PSC", "PIC", pagerduty.GetIntegrationOptions{})
	if err != nil || in.IntegrationKey != key {
		t.Errorf("GetIntegration = %+v, %v", in, err)
	}

	for _, call := range []func() error{
		func() error { _, err := client.GetServiceWithContext(ctx, "PNOPE", nil); return err },
		func() error { _, err := client.GetEscalationPolicyWithContext(ctx, "PNOPE", nil); return err },
		func() error {
			_, err := client.GetIntegrationWithContext(ctx, "PSA", "PNOPE", pagerduty.GetIntegrationOptions{})
			return err
		},
	} {
		var apiErr pagerduty.APIError
		if err := call(); !errors.As(err, &apiErr) || !apiErr.NotFound() || apiErr.APIError.ErrorObject.Code != 2100 {
			t.Errorf("missing object: %v", err)
		}
	}

	bad := pagerduty.NewClient("wrong", pagerduty.WithAPIEndpoint(s.URL()))
	_, err = bad.ListServicesWithContext(ctx, pagerduty.ListServiceOptions{})
	var apiErr pagerduty.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.APIError.ErrorObject.Code != 2006 {
		t.Errorf("bad token: %v", err)
	}
	oauth := pagerduty.NewClient(token, pagerduty.WithAPIEndpoint(s.URL()), pagerduty.WithOAuth())
	if _, err := oauth.ListServicesWithContext(ctx, pagerduty.ListServiceOptions{}); err == nil {
		t.Errorf("Bearer auth accepted: the REST token must be sent as Token token=")
	}
}

func TestRESTQueryChecks(t *testing.T) {
	s := New(WithAPIToken(token))
	defer s.Close()
	tests := []struct {
		path       string
		wantStatus int
		wantCode   int
	}{
		{"/services?include%5B%5D=integrations", 200, 0},
		{"/services?include%5B%5D=vendors", 400, 2001},
		{"/services?limit=0", 400, 2001},
		{"/services?offset=9950&limit=100", 400, 2001},
		{"/escalation_policies/X?include%5B%5D=integrations", 400, 2001},
		{"/users", 404, 2100},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+tt.path, nil)
		req.Header.Set("Authorization", "Token token="+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantStatus || body.Error.Code != tt.wantCode {
			t.Errorf("%s: %d code %d, want %d code %d", tt.path, resp.StatusCode, body.Error.Code, tt.wantStatus, tt.wantCode)
		}
	}
}
