package pagerduty

import (
	"testing"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

func TestKeyReceives(t *testing.T) {
	route := func(key string, kv ...string) config.Route {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return config.Route{Match: m, Key: key}
	}
	crit, warn := health.SeverityCritical, health.SeverityWarning
	tests := []struct {
		name   string
		routes []config.Route
		key    string
		sev    health.Severity
		want   bool
	}{
		{"no routes: default gets all", nil, DefaultKey, warn, true},
		{"no routes: another key gets nothing", nil, "storage", crit, false},
		{"a team route", []config.Route{route("storage", "team", "storage")}, "storage", warn, true},
		{"default keeps other teams", []config.Route{route("storage", "team", "storage")}, DefaultKey, crit, true},
		{"a severity route takes every one", []config.Route{route("pager", "severity", "critical")}, DefaultKey, crit, false},
		{"and leaves the others", []config.Route{route("pager", "severity", "critical")}, DefaultKey, warn, true},
		{"a severity route gets no other", []config.Route{route("pager", "severity", "critical")}, "pager", warn, false},
		{"values compared as routing does", []config.Route{route("pager", "severity", "CRITICAL")}, "pager", crit, true},
		{"a wider earlier route shadows", []config.Route{route("a", "region", "eu"), route("b", "region", "eu", "team", "web")}, "b", crit, false},
		{"a narrower earlier route does not", []config.Route{route("a", "region", "eu", "team", "web"), route("b", "region", "eu")}, "b", crit, true},
		{"an earlier severity catch-all shadows", []config.Route{route("low", "severity", "warning"), route("k", "team", "x")}, "k", warn, false},
		{"only for its severity", []config.Route{route("low", "severity", "warning"), route("k", "team", "x")}, "k", crit, true},
		{"two routes to one key", []config.Route{route("k", "team", "x", "severity", "critical"), route("k", "team", "y")}, "k", warn, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.PagerDuty{Routes: tt.routes}
			if got := keyReceives(cfg, tt.key, tt.sev); got != tt.want {
				t.Errorf("keyReceives(%q, %s) = %v, want %v", tt.key, tt.sev, got, tt.want)
			}
		})
	}
}

func TestUrgencyProblem(t *testing.T) {
	constant := func(u string) *pagerduty.IncidentUrgencyRule {
		return &pagerduty.IncidentUrgencyRule{Type: "constant", Urgency: u}
	}
	hours := func(during, outside string) *pagerduty.IncidentUrgencyRule {
		return &pagerduty.IncidentUrgencyRule{Type: urgencySupportHours,
			DuringSupportHours:  &pagerduty.IncidentUrgencyType{Type: "constant", Urgency: during},
			OutsideSupportHours: &pagerduty.IncidentUrgencyType{Type: "constant", Urgency: outside}}
	}
	tests := []struct {
		name      string
		rule      *pagerduty.IncidentUrgencyRule
		high, low bool
		want      string // "" for no problem, else the start of it
		describe  string
	}{
		{"severity-based suits everything", constant("severity_based"), true, true, "", "urgency severity-based"},
		{"high suits critical only", constant("high"), true, false, "", "urgency high"},
		{"high pages warnings loudly", constant("high"), true, true, "warnings (pagerduty.warning: low) would open high-urgency incidents:", ""},
		{"low mutes critical", constant("low"), true, false, "critical and error alerts would open low-urgency incidents:", ""},
		{"low suits warnings only", constant("low"), false, true, "", "urgency low"},
		{"low outside support hours", hours("high", "low"), true, false,
			"critical and error alerts would open low-urgency incidents outside support hours:", ""},
		{"support hours, both fine", hours("high", "severity_based"), true, false, "",
			"urgency high during support hours, severity-based outside support hours"},
		{"a key nothing is routed to", constant("low"), false, false, "", "urgency low"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := urgencyProblem(tt.rule, tt.high, tt.low)
			if (tt.want == "") != (got == "") || len(got) < len(tt.want) || got[:len(tt.want)] != tt.want {
				t.Fatalf("urgencyProblem = %q, want %q...", got, tt.want)
			}
			if tt.describe != "" {
				if d := describeUrgency(tt.rule); d != tt.describe {
					t.Errorf("describeUrgency = %q, want %q", d, tt.describe)
				}
			}
		})
	}
}
