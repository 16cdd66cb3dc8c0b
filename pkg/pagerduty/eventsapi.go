package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// maxErrorBody bounds how much of an Events API error answer is read.
const maxErrorBody = 64 << 10

// EventError is a non-2xx answer of the Events API with the reason PagerDuty
// gave in its body ({"status", "message", "errors": [...]}), which
// go-pagerduty does not read. It wraps the go-pagerduty error, so
// errors.As(err, &pagerduty.APIError{}) still finds the status code.
type EventError struct {
	StatusCode int
	Status     string   // "invalid event", "Unrecognized object", ...
	Message    string   // "Event object is invalid", ...
	Errors     []string // what is wrong, e.g. "Invalid routing key"
	err        error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("PagerDuty answered %d: %s", e.StatusCode, e.Reason())
}

func (e *EventError) Unwrap() error { return e.err }

// Reason is what PagerDuty said was wrong, in its words.
func (e *EventError) Reason() string {
	var parts []string
	if e.Message != "" {
		parts = append(parts, e.Message)
	} else if e.Status != "" {
		parts = append(parts, e.Status)
	}
	if len(e.Errors) > 0 {
		parts = append(parts, strings.Join(e.Errors, "; "))
	}
	if len(parts) == 0 {
		return http.StatusText(e.StatusCode)
	}
	return strings.Join(parts, ": ")
}

// KeyRejected reports whether PagerDuty refused the routing key itself
// (unknown, wrong length or characters) rather than the event: every event
// through that key will fail the same way.
func (e *EventError) KeyRejected() bool {
	for _, s := range e.Errors {
		if l := strings.ToLower(s); strings.Contains(l, "routing_key") || strings.Contains(l, "routing key") {
			return true
		}
	}
	return false
}

// eventsClient sends events through go-pagerduty's client and returns
// PagerDuty's error answers as *EventError.
type eventsClient struct {
	pd *pagerduty.Client
}

func newEventsClient(cfg *config.PagerDuty) *eventsClient {
	c := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(cfg.EventsURL))
	c.HTTPClient = errorBodyCapture{next: &http.Client{Timeout: cfg.Timeout.D()}}
	return &eventsClient{pd: c}
}

// captureKey is the context key under which ManageEventWithContext leaves
// errorBodyCapture the place to put an error answer's body.
type captureKey struct{}

// ManageEventWithContext sends e. A non-2xx answer whose body is the Events
// API's error object comes back as *EventError.
func (c *eventsClient) ManageEventWithContext(ctx context.Context, e *pagerduty.V2Event) (*pagerduty.V2EventResponse, error) {
	var answer *EventError
	resp, err := c.pd.ManageEventWithContext(context.WithValue(ctx, captureKey{}, &answer), e)
	if err != nil && answer != nil {
		answer.err = err
		return resp, answer
	}
	return resp, err
}

// errorBodyCapture is the HTTP client under go-pagerduty: it reads the body
// of an Events API error answer (and gives the client an identical copy) for
// the request's caller.
type errorBodyCapture struct {
	next pagerduty.HTTPClient
}

func (c errorBodyCapture) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil || resp.StatusCode/100 == 2 {
		return resp, err
	}
	slot, _ := req.Context().Value(captureKey{}).(**EventError)
	if slot == nil {
		return resp, nil
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if readErr != nil {
		return resp, nil
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/json" {
		return resp, nil // a proxy's or load balancer's page: nothing from PagerDuty
	}
	var doc struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return resp, nil
	}
	*slot = &EventError{StatusCode: resp.StatusCode, Status: doc.Status, Message: doc.Message, Errors: doc.Errors}
	return resp, nil
}
