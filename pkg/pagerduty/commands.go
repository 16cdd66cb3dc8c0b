package pagerduty

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Integration types of the PagerDuty REST API.
const (
	IntegrationEventsV2 = "events_api_v2_inbound_integration"
	// IntegrationEventsV1 is the older Events API (and most vendor
	// integrations); its keys do not work with the v2 endpoint.
	IntegrationEventsV1 = "generic_events_api_inbound_integration"
	referenceSuffix     = "_reference"
)

// hasRoutingKey reports whether integrations of this type (full or
// reference) carry an integration key worth fetching.
func hasRoutingKey(typ string) bool {
	typ = strings.TrimSuffix(typ, referenceSuffix)
	return typ == IntegrationEventsV2 || typ == IntegrationEventsV1
}

// keyNames is the routing key names to act on: one, or all of them sorted.
func keyNames(cfg *config.PagerDuty, keyName string) ([]string, error) {
	if keyName != "" {
		if _, ok := cfg.RoutingKeys[keyName]; !ok {
			return nil, fmt.Errorf("routing key %q is not in pagerduty.routing_keys", keyName)
		}
		return []string{keyName}, nil
	}
	names := make([]string, 0, len(cfg.RoutingKeys))
	for name := range cfg.RoutingKeys {
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, errors.New("pagerduty.routing_keys is empty")
	}
	sort.Strings(names)
	return names, nil
}

// redact renders err with every configured secret masked, for output that
// an operator may paste into a ticket.
func redact(cfg *config.PagerDuty, err error) string {
	s := err.Error()
	for _, k := range cfg.Keys {
		if k != "" {
			s = strings.ReplaceAll(s, k.Reveal(), k.String())
		}
	}
	if t := cfg.APIToken; t != "" {
		s = strings.ReplaceAll(s, t.Reveal(), t.String())
	}
	return s
}

// SendTest sends a test trigger and then its resolve through the routing key
// named keyName, or through every configured key when keyName is empty,
// printing one line per key to w. The events have severity info and are
// resolved at once. It fails if any key fails.
func SendTest(ctx context.Context, cfg *config.PagerDuty, keyName string, w io.Writer) error {
	names, err := keyNames(cfg, keyName)
	if err != nil {
		return err
	}
	client := newEventsClient(cfg)
	failed := 0
	for _, name := range names {
		line, ok := sendTest(ctx, cfg, client, name)
		if !ok {
			failed++
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", name, line); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("test event failed for %d of %d routing keys", failed, len(names))
	}
	return nil
}

func sendTest(ctx context.Context, cfg *config.PagerDuty, client eventSender, name string) (string, bool) {
	key := cfg.Keys[name]
	if key == "" {
		return fmt.Sprintf("FAIL: %s is not set", cfg.RoutingKeys[name]), false
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "FAIL: " + err.Error(), false
	}
	dedup := dedupPrefix + "test/" + name + "/" + hex.EncodeToString(nonce[:])
	trigger := pagerduty.V2Event{
		RoutingKey: key.Reveal(),
		Action:     ActionTrigger,
		DedupKey:   dedup,
		Payload: &pagerduty.V2Payload{
			Summary:   fmt.Sprintf("healthrouter test event for routing key %q (resolved right away)", name),
			Source:    Source,
			Severity:  "info",
			Component: Source,
			Class:     "test",
			Details:   map[string]any{"key": name},
		},
	}
	if _, err := client.ManageEventWithContext(ctx, &trigger); err != nil {
		return "FAIL: trigger: " + redact(cfg, err), false
	}
	resolve := ResolveEvent(dedup)
	resolve.RoutingKey = key.Reveal()
	if _, err := client.ManageEventWithContext(ctx, &resolve); err != nil {
		return fmt.Sprintf("FAIL: trigger accepted (dedup_key %s) but resolve failed, resolve it by hand: %s",
			dedup, redact(cfg, err)), false
	}
	return fmt.Sprintf("OK: trigger and resolve accepted (dedup_key %s)", dedup), true
}

// integrationMatch is a service integration found for a routing key.
type integrationMatch struct {
	service     *pagerduty.Service
	integration pagerduty.Integration
}

// Verify checks through the PagerDuty REST API that the routing key named
// keyName, or every configured key when keyName is empty, is the integration
// key of an Events API v2 integration on an enabled service whose escalation
// policy has rules with targets, and whose urgency rule gives the alerts the
// routes can send it their urgency: high for critical and error, low for
// warnings when pagerduty.warning is low. It prints one line per key name to w, OK or
// what is wrong; ok is false when any key is wrong. err reports what kept
// Verify from checking (unknown key name, no token, API unreachable or
// refusing).
func Verify(ctx context.Context, cfg *config.PagerDuty, keyName string, w io.Writer) (ok bool, err error) {
	names, err := keyNames(cfg, keyName)
	if err != nil {
		return false, err
	}
	if cfg.APIToken == "" {
		return false, fmt.Errorf("%s is not set: verify needs a PagerDuty REST API token", config.EnvPagerDutyAPIToken)
	}
	client := pagerduty.NewClient(cfg.APIToken.Reveal(), pagerduty.WithAPIEndpoint(cfg.APIURL))
	client.HTTPClient = &http.Client{Timeout: cfg.Timeout.D()}

	byKey, err := integrationsByKey(ctx, cfg, client)
	if err != nil {
		return false, err
	}
	policies := map[string]*pagerduty.EscalationPolicy{}
	ok = true
	for _, name := range names {
		line, good, err := verifyKey(ctx, cfg, client, byKey, policies, name)
		if err != nil {
			return false, err
		}
		if !good {
			ok = false
			line = "FAIL: " + line
		} else {
			line = "OK: " + line
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", name, line); err != nil {
			return false, fmt.Errorf("write output: %w", err)
		}
	}
	return ok, nil
}

// integrationsByKey lists every service with its integrations and indexes
// them by integration key. Events integrations listed without their key (as
// references) are fetched one by one.
func integrationsByKey(ctx context.Context, cfg *config.PagerDuty, client *pagerduty.Client) (map[string]integrationMatch, error) {
	services, err := client.ListServicesPaginated(ctx, pagerduty.ListServiceOptions{
		Limit:    100,
		Includes: []string{"integrations"},
	})
	if err != nil {
		return nil, restError(cfg, "list PagerDuty services", err)
	}
	byKey := map[string]integrationMatch{}
	for i := range services {
		svc := &services[i]
		for _, in := range svc.Integrations {
			if in.IntegrationKey == "" && hasRoutingKey(in.Type) {
				full, err := client.GetIntegrationWithContext(ctx, svc.ID, in.ID, pagerduty.GetIntegrationOptions{})
				if err != nil {
					return nil, restError(cfg, fmt.Sprintf("get integration %s of service %s", in.ID, svc.ID), err)
				}
				in = *full
			}
			if in.IntegrationKey == "" {
				continue
			}
			if _, dup := byKey[in.IntegrationKey]; !dup {
				byKey[in.IntegrationKey] = integrationMatch{service: svc, integration: in}
			}
		}
	}
	return byKey, nil
}

// verifyKey checks one routing key and says what it found. It returns an
// error only when the REST API could not answer.
func verifyKey(ctx context.Context, cfg *config.PagerDuty, client *pagerduty.Client,
	byKey map[string]integrationMatch, policies map[string]*pagerduty.EscalationPolicy, name string) (string, bool, error) {
	key := cfg.Keys[name]
	if key == "" {
		return fmt.Sprintf("%s is not set", cfg.RoutingKeys[name]), false, nil
	}
	match, found := byKey[key.Reveal()]
	if !found {
		return "no service this API token can see has an integration with this routing key (keys of Event Orchestrations, or of services outside the token's teams, cannot be checked)", false, nil
	}
	svc, in := match.service, match.integration
	svcName := fmt.Sprintf("service %q (%s)", svc.Name, svc.ID)
	if in.Type != IntegrationEventsV2 {
		return fmt.Sprintf("the key belongs to integration %q of %s, which is a %s, not an Events API v2 integration",
			in.Name, svcName, in.Type), false, nil
	}
	if svc.Status == "disabled" {
		return svcName + " is disabled", false, nil
	}
	if svc.EscalationPolicy.ID == "" {
		return svcName + " has no escalation policy", false, nil
	}
	epID := svc.EscalationPolicy.ID
	ep, seen := policies[epID]
	if !seen {
		var err error
		ep, err = client.GetEscalationPolicyWithContext(ctx, epID, nil)
		var apiErr pagerduty.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.NotFound():
			ep = nil
		case err != nil:
			return "", false, restError(cfg, "get escalation policy "+epID, err)
		}
		policies[epID] = ep
	}
	if ep == nil {
		return fmt.Sprintf("%s uses escalation policy %s, which does not exist", svcName, epID), false, nil
	}
	epName := fmt.Sprintf("escalation policy %q (%s)", ep.Name, ep.ID)
	if len(ep.EscalationRules) == 0 {
		return fmt.Sprintf("%s: %s has no escalation rules", svcName, epName), false, nil
	}
	for i, r := range ep.EscalationRules {
		if len(r.Targets) == 0 {
			return fmt.Sprintf("%s: %s rule %d has no targets", svcName, epName, i+1), false, nil
		}
	}
	line := fmt.Sprintf("%s, %s with %d rules", svcName, epName, len(ep.EscalationRules))
	if rule := svc.IncidentUrgencyRule; rule != nil {
		high := keyReceives(cfg, name, health.SeverityCritical) || keyReceives(cfg, name, health.SeverityError)
		low := cfg.Warning == "low" && keyReceives(cfg, name, health.SeverityWarning)
		if p := urgencyProblem(rule, high, low); p != "" {
			return fmt.Sprintf("%s: %s", svcName, p), false, nil
		}
		line += ", " + describeUrgency(rule)
	}
	return line, true, nil
}

// restError explains a REST API failure, naming the usual cause of a 401.
func restError(cfg *config.PagerDuty, what string, err error) error {
	var apiErr pagerduty.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: the API token was refused (401): check %s", what, config.EnvPagerDutyAPIToken)
	}
	return fmt.Errorf("%s: %w", what, &redactedError{msg: redact(cfg, err), err: err})
}

// redactedError is an error whose message has the secrets masked; the
// original stays reachable for errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
