package pagerduty

import (
	"strings"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// PagerDuty incident urgencies, as a service's urgency rule names them.
const (
	urgencyHigh          = "high"
	urgencyLow           = "low"
	urgencySeverityBased = "severity_based" // critical and error high, warning and info low
	urgencySupportHours  = "use_support_hours"
)

// keyReceives reports whether some alert of severity sev can be routed to
// the key named key: a route to it that such an alert can match, and that
// no earlier route shadows (every alert of sev matching it matching the
// earlier one too); for the default key, no route catching every alert of
// sev.
func keyReceives(cfg *config.PagerDuty, key string, sev health.Severity) bool {
	s := sev.String()
	var earlier []map[string]string // routes alerts of sev can match, in order
	for _, r := range cfg.Routes {
		if want, ok := r.Match["severity"]; ok && !strings.EqualFold(want, s) {
			continue
		}
		if r.Key == key && !shadowed(earlier, r.Match, s) {
			return true
		}
		earlier = append(earlier, r.Match)
	}
	return key == DefaultKey && !shadowed(earlier, nil, s)
}

// shadowed reports whether one of the earlier routes matches every alert
// of severity sev that match matches: each of its labels is fixed by match
// (or is the severity) to the value it wants.
func shadowed(earlier []map[string]string, match map[string]string, sev string) bool {
	for _, e := range earlier {
		implied := len(e) > 0 // an empty route matches nothing (routeMatches)
		for label, want := range e {
			got, ok := match[label]
			if label == "severity" {
				got, ok = sev, true
			}
			if !ok || !sameLabelValue(label, got, want) {
				implied = false
				break
			}
		}
		if implied {
			return true
		}
	}
	return false
}

// sameLabelValue compares route values as routeMatches does: severity and
// level whatever their case, the rest exactly.
func sameLabelValue(label, a, b string) bool {
	if label == "severity" || label == "level" {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// urgencyBranch is one urgency a service's rule can give an incident, and
// when ("" when always).
type urgencyBranch struct{ when, urgency string }

func urgencyBranches(rule *pagerduty.IncidentUrgencyRule) []urgencyBranch {
	if rule.Type != urgencySupportHours {
		return []urgencyBranch{{"", rule.Urgency}}
	}
	var out []urgencyBranch
	if t := rule.DuringSupportHours; t != nil {
		out = append(out, urgencyBranch{"during support hours", t.Urgency})
	}
	if t := rule.OutsideSupportHours; t != nil {
		out = append(out, urgencyBranch{"outside support hours", t.Urgency})
	}
	return out
}

// describeUrgency renders a service's urgency rule for verify's OK line.
func describeUrgency(rule *pagerduty.IncidentUrgencyRule) string {
	var parts []string
	for _, b := range urgencyBranches(rule) {
		u := strings.ReplaceAll(b.urgency, "_", "-")
		if b.when != "" {
			u += " " + b.when
		}
		parts = append(parts, u)
	}
	return "urgency " + strings.Join(parts, ", ")
}

// urgencyProblem says why a service's incident urgency rule does not give
// the alerts routed to it the urgency healthrouter means: high for critical
// and error alerts (high), low for warnings when pagerduty.warning is low
// (low). PagerDuty sets an incident's urgency from the service's rule, not
// from the event, unless the rule is severity-based. "" when it does.
func urgencyProblem(rule *pagerduty.IncidentUrgencyRule, high, low bool) string {
	for _, b := range urgencyBranches(rule) {
		when := ""
		if b.when != "" {
			when = " " + b.when
		}
		switch {
		case b.urgency == urgencyLow && high:
			return "critical and error alerts would open low-urgency incidents" + when +
				": set the service's urgency to \"High\" or \"Based on alert severity\""
		case b.urgency == urgencyHigh && low:
			return "warnings (pagerduty.warning: low) would open high-urgency incidents" + when +
				": set the service's urgency to \"Based on alert severity\", or pagerduty.warning to none"
		}
	}
	return ""
}
