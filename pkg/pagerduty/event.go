package pagerduty

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Events API v2 event actions.
const (
	ActionTrigger     = "trigger"
	ActionAcknowledge = "acknowledge"
	ActionResolve     = "resolve"
)

// Source is the payload.source of every event healthrouter sends.
const Source = "healthrouter"

// DefaultKey is the routing key name used when no route matches.
const DefaultKey = "default"

// Events API v2 limits.
const (
	MaxSummaryLen  = 1024
	MaxDedupKeyLen = 255
)

// dedupPrefix namespaces healthrouter's dedup keys within an integration.
const dedupPrefix = "healthrouter/"

// ClassHost is the payload.class of a host alert about failing checks (as
// opposed to a host that stopped reporting, whose class is the check).
const ClassHost = "host"

// Severity maps a healthrouter severity to PagerDuty's (the names are the
// same by design). An alert without a severity is treated as critical: the
// engine's default for a failing check.
func Severity(s health.Severity) string {
	switch s {
	case health.SeverityInfo, health.SeverityWarning, health.SeverityError, health.SeverityCritical:
		return s.String()
	}
	return health.SeverityCritical.String()
}

// effectiveSeverity is the severity Severity sends, as a health.Severity.
func effectiveSeverity(s health.Severity) health.Severity {
	if s == health.SeverityNone || s > health.SeverityCritical {
		return health.SeverityCritical
	}
	return s
}

// DedupKey is the alert's Events API dedup_key: derived from health.Alert.ID
// so it is stable across restarts and identical on both instances of an HA
// pair, hashed when it would exceed PagerDuty's 255 characters.
func DedupKey(a *health.Alert) string {
	return dedupKeyFor(a.ID())
}

func dedupKeyFor(id string) string {
	if len(dedupPrefix)+len(id) <= MaxDedupKeyLen {
		return dedupPrefix + id
	}
	sum := sha256.Sum256([]byte(id))
	return dedupPrefix + hex.EncodeToString(sum[:])
}

// Class is the payload.class of an alert: the check for region alerts and
// for hosts that stopped reporting, "host" for other host alerts.
func Class(a *health.Alert) string {
	if a.Level == health.LevelRegion || a.Check == health.NotReporting {
		return a.Check
	}
	return ClassHost
}

// Component is the payload.component of an alert: the host for host
// alerts, the region for region alerts.
func Component(a *health.Alert) string {
	if a.Level == health.LevelRegion {
		return a.Region
	}
	return a.Host
}

// ExplainURL links to healthrouter's explanation of the alert:
// <externalURL>/v1/explain?host=..&check=.. (region=..&check=.. for a
// region alert). It is empty when externalURL is.
func ExplainURL(a *health.Alert, externalURL string) string {
	if externalURL == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(externalURL, "/"))
	b.WriteString("/v1/explain?")
	if a.Level == health.LevelRegion {
		b.WriteString("region=")
		b.WriteString(url.QueryEscape(a.Region))
	} else {
		b.WriteString("host=")
		b.WriteString(url.QueryEscape(a.Host))
	}
	if a.Check != "" {
		b.WriteString("&check=")
		b.WriteString(url.QueryEscape(a.Check))
	}
	return b.String()
}

// Event is the trigger event for an alert, without the routing key (the
// outbox adds it at send time so keys never reach the disk).
func Event(a *health.Alert, externalURL string) pagerduty.V2Event {
	details := map[string]any{
		"level":  a.Level.String(),
		"region": a.Region,
		"value":  a.Value,
	}
	if a.Host != "" {
		details["host"] = a.Host
	}
	if a.Check != "" {
		details["check"] = a.Check
	}
	if len(a.Checks) > 0 {
		details["checks"] = append([]string(nil), a.Checks...)
	}
	payload := &pagerduty.V2Payload{
		Summary:   Summary(a),
		Source:    Source,
		Severity:  Severity(a.Severity),
		Component: Component(a),
		Group:     a.Region,
		Class:     Class(a),
		Details:   details,
	}
	if !a.Since.IsZero() {
		since := a.Since.UTC().Format(time.RFC3339)
		details["since"] = since
		payload.Timestamp = since
	}
	if link := ExplainURL(a, externalURL); link != "" {
		details["explain"] = link
	}
	ev := pagerduty.V2Event{
		Action:   ActionTrigger,
		DedupKey: DedupKey(a),
		Payload:  payload,
	}
	if externalURL != "" {
		// As the Grafana contact points do: PagerDuty shows it as the
		// event's origin.
		ev.Client, ev.ClientURL = Source, strings.TrimRight(externalURL, "/")
	}
	return ev
}

// ResolveEvent is the resolve event for an alert's incident.
func ResolveEvent(dedupKey string) pagerduty.V2Event {
	return pagerduty.V2Event{Action: ActionResolve, DedupKey: dedupKey}
}

// Summary is the alert's summary cut to PagerDuty's 1024 characters on a
// UTF-8 boundary. An alert without one (the engine always writes one) is
// summarised by its identity rather than rejected by PagerDuty.
func Summary(a *health.Alert) string {
	s := a.Summary
	if strings.TrimSpace(s) == "" {
		s = a.Severity.String() + " alert " + a.ID()
	}
	return truncateUTF8(s, MaxSummaryLen)
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune; n bytes
// are never more than n characters, whichever PagerDuty counts.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Pages reports whether an alert pages PagerDuty directly: firing (not
// suppressed) with severity critical or error, or warning when the
// configuration sends warnings at low urgency; info never.
func Pages(cfg *config.PagerDuty, a *health.Alert) bool {
	if a.Suppressed != "" {
		return false
	}
	switch effectiveSeverity(a.Severity) {
	case health.SeverityCritical, health.SeverityError:
		return true
	case health.SeverityWarning:
		return cfg.Warning == "low"
	}
	return false
}

// RouteKey names the routing key an alert goes to: the first of cfg.Routes
// whose every Match label equals the alert's (team, region, severity,
// check, host, level), else "default".
func RouteKey(cfg *config.PagerDuty, a *health.Alert) string {
	for _, r := range cfg.Routes {
		if routeMatches(r.Match, a) {
			return r.Key
		}
	}
	return DefaultKey
}

func routeMatches(match map[string]string, a *health.Alert) bool {
	if len(match) == 0 {
		return false // validation forbids it; never let an empty route swallow everything
	}
	for label, want := range match {
		var got string
		switch label {
		case "team":
			got = a.Team
		case "region":
			got = a.Region
		case "severity":
			got = effectiveSeverity(a.Severity).String()
			want = strings.ToLower(want)
		case "check":
			got = a.Check
		case "host":
			got = a.Host
		case "level":
			got = a.Level.String()
			want = strings.ToLower(want)
		default:
			return false
		}
		if got != want {
			return false
		}
	}
	return true
}
