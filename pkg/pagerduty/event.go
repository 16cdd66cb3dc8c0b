package pagerduty

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
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
	// MaxEventBytes is the largest request body PagerDuty accepts (512 KB);
	// a larger one is answered 400 and the page is lost.
	MaxEventBytes = 512 * 1024
)

// MaxListedChecks is how many failing checks custom_details.checks names;
// the rest are counted ("and N more"), so that a host failing thousands of
// checks still pages within MaxEventBytes.
const MaxListedChecks = 50

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

// DedupKey is the alert's Events API dedup_key: its health.Alert.ID and
// the severity sent, so it is stable across restarts and identical on both
// instances of an HA pair, hashed when it would exceed PagerDuty's 255
// characters. The severity is part of it because Grafana's rules carry the
// severity as a label: there a change of severity is a new alert instance,
// and an escalation pages again at the new urgency. The fallback does the
// same: a new severity is a new incident.
func DedupKey(a *health.Alert) string {
	return dedupKeyFor(a.ID() + "/" + Severity(a.Severity))
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
// <externalURL>/v1/explain?region=..&host=..&check=.. (no host for a
// region alert). It is empty when externalURL is.
func ExplainURL(a *health.Alert, externalURL string) string {
	if externalURL == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(externalURL, "/"))
	b.WriteString("/v1/explain?region=")
	b.WriteString(url.QueryEscape(a.Region))
	if a.Level == health.LevelHost {
		// With its region: a host name may be reused in another region.
		b.WriteString("&host=")
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
		details["checks"] = listChecks(a.Checks)
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
	fitEvent(&ev, len(a.Checks))
	return ev
}

// listChecks is custom_details.checks: at most MaxListedChecks names, then
// "and N more".
func listChecks(checks []string) []string {
	if len(checks) <= MaxListedChecks {
		return append([]string(nil), checks...)
	}
	out := make([]string, MaxListedChecks, MaxListedChecks+1)
	copy(out, checks)
	return append(out, fmt.Sprintf("and %d more", len(checks)-MaxListedChecks))
}

// eventSize is the size of ev's request body once the outbox adds a
// routing key (always 32 characters).
func eventSize(ev *pagerduty.V2Event) (int, error) {
	withKey := *ev
	withKey.RoutingKey = strings.Repeat("k", 32)
	b, err := json.Marshal(&withKey)
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	return len(b), nil
}

// sizeBound is at least the encoded size of ev, cheaply: every string
// escaped at worst (6 bytes a byte, \u00XX) plus room for field names,
// punctuation and numbers. Events with parts it does not measure get
// math.MaxInt, which sends the caller to encode them.
func sizeBound(ev *pagerduty.V2Event) int {
	const escape, overhead, number = 6, 2048, 32
	p := ev.Payload
	if p == nil || len(ev.Images) > 0 || len(ev.Links) > 0 {
		return math.MaxInt
	}
	n := len(ev.DedupKey) + len(ev.Client) + len(ev.ClientURL) + len(p.Summary) + len(p.Source) + len(p.Severity) +
		len(p.Component) + len(p.Group) + len(p.Class) + len(p.Timestamp)
	details, ok := p.Details.(map[string]any)
	if !ok && p.Details != nil {
		return math.MaxInt
	}
	for k, v := range details {
		n += len(k) + 4
		switch v := v.(type) {
		case string:
			n += len(v)
		case []string:
			for _, s := range v {
				n += len(s) + 3 // quotes and comma
			}
		case float64, int:
			n += number
		default:
			return math.MaxInt
		}
	}
	return n*escape + overhead
}

// fitEvent keeps a trigger within MaxEventBytes: what does not fit is the
// custom_details (the list of failing checks first, then
// the rest), never the page.
func fitEvent(ev *pagerduty.V2Event, checks int) {
	if sizeBound(ev) <= MaxEventBytes {
		return // the common case, without encoding the event
	}
	if n, err := eventSize(ev); err != nil || n <= MaxEventBytes {
		return
	}
	details, _ := ev.Payload.Details.(map[string]any)
	if _, ok := details["checks"]; ok {
		delete(details, "checks")
		details["checks_omitted"] = fmt.Sprintf("%d checks: names too long for one PagerDuty event", checks)
		if n, err := eventSize(ev); err == nil && n <= MaxEventBytes {
			return
		}
	}
	ev.Payload.Details = map[string]any{"omitted": "details too large for one PagerDuty event"}
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
	return a.Suppressed == "" && cfg.Pages(a.Severity)
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
