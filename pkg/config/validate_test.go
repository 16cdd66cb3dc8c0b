package config

import (
	"errors"
	"strings"
	"testing"
)

// problemKeys parses yaml and returns the keys of the problems found whose
// message contains msg.
func problemKeys(t *testing.T, yaml, msg string) []string {
	t.Helper()
	_, err := Parse([]byte(yaml), env(nil))
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("%q: not a problem list: %v", yaml, err)
	}
	var keys []string
	for _, p := range ps {
		if strings.Contains(p.Message, msg) {
			keys = append(keys, p.Key)
		} else {
			t.Errorf("%q: unexpected problem %s", yaml, p)
		}
	}
	return keys
}

func TestFieldRenamesAvoidMetricEventKeys(t *testing.T) {
	const clash = "top-level key of Vector's metric events"
	tests := []struct {
		name, fields string
		want         []string // keys refused for clashing, in the order reported
	}{
		{"defaults", "{}", nil},
		{"timestamp keeps its shared name", "{timestamp: timestamp}", nil},
		{"timestamp renamed", "{timestamp: ts}", nil},
		{"plain renames", "{check: service_check, host: hostname, status: state}", nil},
		{"check as the metric name", "{check: name}", []string{"ingest.fields.check"}},
		{"status as the gauge", "{status: gauge}", []string{"ingest.fields.status"}},
		{"kind and tags", "{host: kind, region: tags}", []string{"ingest.fields.host", "ingest.fields.region"}},
		{"interval as interval_ms", "{interval: interval_ms}", []string{"ingest.fields.interval"}},
		{"other metric values", "{output: counter, message: set, team: distribution, labels: sketch}",
			[]string{"ingest.fields.labels", "ingest.fields.message", "ingest.fields.output", "ingest.fields.team"}},
		{"histogram and summary", "{event_id: aggregated_histogram, severity: aggregated_summary}",
			[]string{"ingest.fields.event_id", "ingest.fields.severity"}},
		{"another field as timestamp", "{timestamp: ts, output: timestamp}", []string{"ingest.fields.output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemKeys(t, "ingest:\n  fields: "+tt.fields+"\n", clash)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("fields %s: refused %v, want %v", tt.fields, got, tt.want)
			}
		})
	}
}

func TestPendingIsWhatGrafanaReadsBack(t *testing.T) {
	const base = "pagerduty: {routing_keys: {default: PD}}\ngrafana:\n  pending: "
	tests := []struct {
		pending, msg string
		want         []string
	}{
		{"{host: 2m, region: 90s}", "", nil},
		{"{host: 0s, region: 1h}", "", nil},
		{"{host: 1s, region: 500ms}", "", nil}, // Go writes "500ms", which Grafana reads
		{"{host: 1500ms}", "must be whole seconds", []string{"grafana.pending.host"}},
		{"{region: 1m0.5s}", "must be whole seconds", []string{"grafana.pending.region"}},
		{"{host: -1s}", "must not be negative", []string{"grafana.pending.host"}},
		{"{host: 8759h59m59s}", "", nil},
		{"{region: 8760h}", "must be under 365 days", []string{"grafana.pending.region"}},
	}
	for _, tt := range tests {
		got := problemKeys(t, base+tt.pending+"\n", tt.msg)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("pending %s: problems on %v, want %v", tt.pending, got, tt.want)
		}
	}
}
