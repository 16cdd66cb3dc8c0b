package grafana

import (
	"reflect"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
)

func TestRoutesFor(t *testing.T) {
	pd := func(warning string, routes ...config.Route) *config.PagerDuty {
		return &config.PagerDuty{Warning: warning, Routes: routes}
	}
	route := func(key string, match map[string]string) config.Route { return config.Route{Match: match, Key: key} }
	tests := []struct {
		name   string
		pd     *config.PagerDuty
		region string
		level  string
		// want: key of each rule and its query's selector
		want []string
	}{
		{
			name: "no routes: one rule to the default key",
			pd:   pd("low"), region: "eu", level: "host",
			want: []string{`default: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity=~"critical|error|warning"})`},
		},
		{
			name: "team route: its share, the default gets the rest",
			pd:   pd("none", route("storage", map[string]string{"team": "storage"})), region: "eu", level: "region",
			want: []string{
				`storage: max by (region, check, severity) ((healthrouter_alert{level="region", region="eu", severity=~"critical|error"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="storage"}))`,
				`default: max by (region, check, severity) (healthrouter_alert{level="region", region="eu", severity=~"critical|error"} unless (healthrouter_alert{level="region", region="eu", severity=~"critical|error"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="storage"}))`,
			},
		},
		{
			name: "route for another region does not apply",
			pd:   pd("low", route("apac", map[string]string{"region": "ap"})), region: "eu", level: "host",
			want: []string{`default: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity=~"critical|error|warning"})`},
		},
		{
			name: "route for this region takes everything",
			pd:   pd("low", route("eu", map[string]string{"region": "eu"}), route("storage", map[string]string{"team": "storage"})), region: "eu", level: "host",
			want: []string{`eu: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity=~"critical|error|warning"})`},
		},
		{
			name: "host route does not apply to region alerts",
			pd:   pd("low", route("db", map[string]string{"host": "db-1"})), region: "eu", level: "region",
			want: []string{`default: max by (region, check, severity) (healthrouter_alert{level="region", region="eu", severity=~"critical|error|warning"})`},
		},
		{
			name: "warning route with warnings off does not apply",
			pd:   pd("none", route("low", map[string]string{"severity": "warning"})), region: "eu", level: "host",
			want: []string{`default: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity=~"critical|error"})`},
		},
		{
			name: "severity route replaces the severity filter",
			pd:   pd("low", route("crit", map[string]string{"severity": "critical", "level": "host"})), region: "eu", level: "host",
			want: []string{
				`crit: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity="critical"})`,
				`default: max by (region, host, check, severity) (healthrouter_alert{level="host", region="eu", severity=~"critical|error|warning", severity!="critical"})`,
			},
		},
		{
			name: "multi-label routes are excluded with unless, first match wins",
			pd: pd("low", route("a", map[string]string{"team": "db", "check": "disk"}),
				route("b", map[string]string{"team": "db"})), region: "eu", level: "region",
			want: []string{
				`a: max by (region, check, severity) ((healthrouter_alert{level="region", region="eu", check="disk", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="db"}))`,
				`b: max by (region, check, severity) ((healthrouter_alert{level="region", region="eu", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="db"}) unless (healthrouter_alert{level="region", region="eu", check="disk", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="db"}))`,
				`default: max by (region, check, severity) (healthrouter_alert{level="region", region="eu", severity=~"critical|error|warning"} unless (healthrouter_alert{level="region", region="eu", check="disk", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="db"}) unless (healthrouter_alert{level="region", region="eu", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="region", region="eu", team="db"}))`,
			},
		},
		{
			name: "label values are quoted",
			pd:   pd("low"), region: `we"ird\region`, level: "host",
			want: []string{`default: max by (region, host, check, severity) (healthrouter_alert{level="host", region="we\"ird\\region", severity=~"critical|error|warning"})`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &builder{pd: tt.pd, g: &config.Grafana{Routing: config.RoutingNotificationSettings}, severities: pagingSeverities(tt.pd)}
			var got []string
			for _, rr := range routesFor(tt.pd, tt.region, tt.level) {
				got = append(got, rr.key+": "+b.alertExpr(tt.level, tt.region, rr))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", join(got), join(tt.want))
			}
		})
	}
}

func join(xs []string) string {
	out := ""
	for _, x := range xs {
		out += "  " + x + "\n"
	}
	return out
}

func TestStaticRouteKey(t *testing.T) {
	pd := &config.PagerDuty{Routes: []config.Route{
		{Match: map[string]string{"team": "storage"}, Key: "storage"},
		{Match: map[string]string{"level": "pipeline"}, Key: "sre"},
		{Match: map[string]string{"severity": "critical"}, Key: "crit"},
	}}
	watchdog := map[string]string{"level": "pipeline", "severity": "critical", "check": "watchdog"}
	if got := staticRouteKey(pd, watchdog); got != "sre" {
		t.Errorf("watchdog routed to %s, want sre (first match)", got)
	}
	if got := staticRouteKey(&config.PagerDuty{}, watchdog); got != "default" {
		t.Errorf("no routes: %s, want default", got)
	}
}
