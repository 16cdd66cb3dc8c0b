package grafanatest

import (
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/models"
	"github.com/prometheus/common/model"
)

// Grafana keeps every alerting duration as a Prometheus model.Duration: a
// rule's "for" and "keep_firing_for", the group_wait, group_interval and
// repeat_interval of notification settings and policy routes. It reads them
// with model.ParseDuration (units y w d h m s ms, biggest first, integers
// only, so Go's "5m0s" passes and "1.5h" does not) and answers with
// model.Duration.String() ("1m30s" for "90s", "1w" for "7d", "0s" for
// zero). The fake uses the same package rather than its own code, so that it
// cannot share a mistake with the code under test.

// parseDuration reads v as Grafana reads an alerting duration.
func parseDuration(v string) (time.Duration, error) {
	d, err := model.ParseDuration(v)
	return time.Duration(d), err
}

// formatDuration renders d as Grafana answers it.
func formatDuration(d time.Duration) string { return model.Duration(d).String() }

// normalDuration is v as Grafana gives it back after storing it: "" stays
// unset, anything else is parsed and rendered again. Callers validate v
// first; a value that does not parse is returned as it is.
func normalDuration(v string) string {
	if v == "" {
		return ""
	}
	d, err := parseDuration(v)
	if err != nil {
		return v
	}
	return formatDuration(d)
}

// ruleBody is an alert rule as Grafana decodes it from a request. The
// client model's durations are strfmt.Durations, which accept what Grafana
// refuses ("1.5h", "1 day") and refuse what it accepts ("1y"), so the two
// durations are decoded as model.Durations instead: these fields, being
// shallower, take the JSON keys from the embedded rule's.
type ruleBody struct {
	models.ProvisionedAlertRule
	For           *model.Duration `json:"for"`
	KeepFiringFor model.Duration  `json:"keep_firing_for,omitempty"`
}

// rule is the decoded rule with its durations in the client model.
func (b *ruleBody) rule() *models.ProvisionedAlertRule {
	r := b.ProvisionedAlertRule
	r.For = nil
	if b.For != nil {
		r.For = ptr(strfmt.Duration(*b.For))
	}
	r.KeepFiringFor = strfmt.Duration(b.KeepFiringFor)
	return &r
}

// groupBody is a rule group as Grafana decodes it from a request.
type groupBody struct {
	models.AlertRuleGroup
	Rules []*ruleBody `json:"rules"`
}

// normaliseNotificationSettings rewrites the durations of validated
// notification settings the way Grafana stores them.
func normaliseNotificationSettings(ns *models.AlertRuleNotificationSettings) {
	if ns == nil {
		return
	}
	ns.GroupWait = normalDuration(ns.GroupWait)
	ns.GroupInterval = normalDuration(ns.GroupInterval)
	ns.RepeatInterval = normalDuration(ns.RepeatInterval)
}
