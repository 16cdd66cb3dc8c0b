package grafana

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Alert levels as they appear in the level label.
const (
	levelHost     = "host"
	levelRegion   = "region"
	levelPipeline = "pipeline"
)

// pagingSeverities are the severities that reach PagerDuty, the same set the
// direct (fallback) paging uses (config.PagerDuty.Pages): critical and error
// always, warning unless pagerduty.warning is "none", info never.
func pagingSeverities(pd *config.PagerDuty) []string {
	sev := []string{"critical", "error"}
	if pd.Pages(health.SeverityWarning) {
		sev = append(sev, "warning")
	}
	return sev
}

// ruleRoute is the share of a region's alerts of one level that one
// pagerduty route (or the default key) receives. In notification_settings
// mode each share is its own rule, because a rule names one receiver.
type ruleRoute struct {
	// index is the route's position in pagerduty.routes, -1 for the default.
	index int
	key   string
	// match is the route's whole match, set as rule labels so the alert
	// carries what routed it.
	match map[string]string
	// want are the matchers the series must have; exclude are the matchers
	// of earlier routes, whose series are not this route's.
	want    map[string]string
	exclude []map[string]string
}

// routesFor splits the alerts of one level in one region between the
// configured routes, first match wins as in pagerduty.routes, the rest to the
// default key. Labels known per rule (region, level) are decided here; those
// that vary per alert (team, severity, check, host) become query matchers.
func routesFor(pd *config.PagerDuty, region, level string) []ruleRoute {
	paging := map[string]bool{}
	for _, s := range pagingSeverities(pd) {
		paging[s] = true
	}
	var out []ruleRoute
	var earlier []map[string]string
	for i, r := range pd.Routes {
		want, ok := perAlertMatchers(r.Match, region, level, paging)
		if !ok {
			continue
		}
		out = append(out, ruleRoute{index: i, key: r.Key, match: r.Match, want: want, exclude: cloneMatchers(earlier)})
		if len(want) == 0 {
			return out // matches everything left: later routes and the default get nothing
		}
		earlier = append(earlier, want)
	}
	return append(out, ruleRoute{index: -1, key: defaultKey, exclude: cloneMatchers(earlier)})
}

// defaultKey names the routing key alerts go to when no route matches.
const defaultKey = "default"

// perAlertMatchers returns the part of a route's match that must be checked
// per alert, or false when the route can never match this rule's alerts.
func perAlertMatchers(match map[string]string, region, level string, paging map[string]bool) (map[string]string, bool) {
	want := map[string]string{}
	for l, v := range match {
		switch l {
		case "region":
			if v != region {
				return nil, false
			}
		case "level":
			if v != level {
				return nil, false
			}
		case "severity":
			if !paging[v] {
				return nil, false
			}
			want[l] = v
		case "host":
			if level != levelHost {
				return nil, false // region alerts carry no host
			}
			want[l] = v
		default:
			want[l] = v
		}
	}
	return want, true
}

func cloneMatchers(ms []map[string]string) []map[string]string {
	return append([]map[string]string(nil), ms...)
}

// staticRouteKey picks the routing key for an alert whose labels are all
// known up front (the pipeline watchdog): the first route whose every label
// equals the alert's, else the default.
func staticRouteKey(pd *config.PagerDuty, labels map[string]string) string {
	for _, r := range pd.Routes {
		ok := true
		for l, v := range r.Match {
			if labels[l] != v {
				ok = false
				break
			}
		}
		if ok {
			return r.Key
		}
	}
	return defaultKey
}

// routeSuffix names a route in rule titles and uids.
func routeSuffix(r ruleRoute) string {
	if r.index < 0 {
		return ""
	}
	return "r" + strconv.Itoa(r.index+1)
}

// describeMatch renders a match as team=storage,severity=critical, sorted.
func describeMatch(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// promSelector renders healthrouter_alert{...} with the given equality
// matchers, the paging-severity filter and negative matchers.
func promSelector(metric string, eq map[string]string, severities []string, neq map[string][]string) string {
	var b strings.Builder
	b.WriteString(metric)
	b.WriteByte('{')
	first := true
	add := func(l, op, v string) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(l)
		b.WriteString(op)
		b.WriteString(strconv.Quote(v))
	}
	// level and region first: they are what a reader looks for.
	for _, l := range []string{"level", "region"} {
		if v, ok := eq[l]; ok {
			add(l, "=", v)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(eq)) {
		if l != "level" && l != "region" {
			add(l, "=", eq[l])
		}
	}
	if _, fixed := eq["severity"]; !fixed && len(severities) > 0 {
		quoted := make([]string, len(severities))
		for i, s := range severities {
			quoted[i] = regexpQuote(s)
		}
		add("severity", "=~", strings.Join(quoted, "|"))
	}
	for _, l := range slices.Sorted(maps.Keys(neq)) {
		for _, v := range neq[l] {
			add(l, "!=", v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// regexpQuote escapes RE2 metacharacters in a severity name (they have none,
// but the matcher must stay correct whatever the config holds).
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
