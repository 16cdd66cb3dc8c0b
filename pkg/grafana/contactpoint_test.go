package grafana

import (
	"strings"
	"testing"
	"text/template"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
)

// TestContactPointMapsAsDirectPaging: the contact point's templates, run
// on the labels Grafana gives each kind of alert, send PagerDuty the
// severity, class, component and group that direct paging sends for the
// same alert, so escalation and urgency rules see one shape whichever path
// paged.
func TestContactPointMapsAsDirectPaging(t *testing.T) {
	cfg := loadConfig(t, "http://grafana.example.com:3000", "", "", map[string]string{})
	b, err := newBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	settings := b.contactPoint("default").cp.Settings.(map[string]any)
	render := func(field string, labels map[string]string) string {
		tpl, err := template.New(field).Parse(settings[field].(string))
		if err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		var out strings.Builder
		if err := tpl.Execute(&out, map[string]any{"CommonLabels": labels}); err != nil {
			t.Fatalf("%s: %v", field, err)
		}
		return out.String()
	}
	tests := []struct {
		name   string
		alert  health.Alert
		labels map[string]string // what the rule and its series give Grafana's alert
	}{
		{"host", health.Alert{Level: health.LevelHost, Region: "eu", Host: "web-1", Severity: health.SeverityCritical},
			map[string]string{"level": "host", "region": "eu", "host": "web-1", "severity": "critical"}},
		{"silent host", health.Alert{Level: health.LevelHost, Region: "eu", Host: "web-1", Check: health.NotReporting, Severity: health.SeverityCritical},
			map[string]string{"level": "host", "region": "eu", "host": "web-1", "check": "not_reporting", "severity": "critical"}},
		{"region", health.Alert{Level: health.LevelRegion, Region: "eu", Check: "dns", Severity: health.SeverityWarning},
			map[string]string{"level": "region", "region": "eu", "check": "dns", "severity": "warning"}},
		{"silent region", health.Alert{Level: health.LevelRegion, Region: "us", Check: health.NotReporting, Severity: health.SeverityError},
			map[string]string{"level": "region", "region": "us", "check": "not_reporting", "severity": "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for field, want := range map[string]string{
				"severity":  pagerduty.Severity(tt.alert.Severity),
				"class":     pagerduty.Class(&tt.alert),
				"component": pagerduty.Component(&tt.alert),
				"group":     tt.alert.Region, // as the direct event's payload.group
			} {
				if got := render(field, tt.labels); got != want {
					t.Errorf("%s: contact point sends %q, direct paging %q", field, got, want)
				}
			}
		})
	}
}
