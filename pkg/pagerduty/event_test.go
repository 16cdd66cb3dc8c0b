package pagerduty

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

var since = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))

func TestEventMapping(t *testing.T) {
	const ext = "https://hr.example.com/"
	tests := []struct {
		name  string
		alert health.Alert
		// want: payload fields and custom_details
		severity, component, group, class, summary, dedup string
		details                                           map[string]any
	}{
		{
			name: "host alert",
			alert: health.Alert{Level: health.LevelHost, Region: "eu1", Host: "web-1.eu1", Severity: health.SeverityCritical,
				Value: 2, Since: since, Checks: []string{"lvm", "raid"}, Summary: "web-1.eu1: lvm, raid critical"},
			severity: "critical", component: "web-1.eu1", group: "eu1", class: "host",
			summary: "web-1.eu1: lvm, raid critical", dedup: "healthrouter/host/eu1/web-1.eu1/critical",
			details: map[string]any{"level": "host", "region": "eu1", "host": "web-1.eu1", "checks": []string{"lvm", "raid"},
				"value": 2.0, "since": "2025-03-04T04:06:07Z", "explain": "https://hr.example.com/v1/explain?region=eu1&host=web-1.eu1"},
		},
		{
			name: "host not reporting",
			alert: health.Alert{Level: health.LevelHost, Region: "eu1", Host: "db-2", Check: health.NotReporting,
				Severity: health.SeverityError, Value: 1, Since: since, Summary: "db-2 stopped reporting"},
			severity: "error", component: "db-2", group: "eu1", class: "not_reporting",
			summary: "db-2 stopped reporting", dedup: "healthrouter/host/eu1/db-2/not_reporting/error",
			details: map[string]any{"level": "host", "region": "eu1", "host": "db-2", "check": "not_reporting",
				"value": 1.0, "since": "2025-03-04T04:06:07Z", "explain": "https://hr.example.com/v1/explain?region=eu1&host=db-2&check=not_reporting"},
		},
		{
			name: "region alert",
			alert: health.Alert{Level: health.LevelRegion, Region: "us-east", Check: "dns resolve", Severity: health.SeverityWarning,
				Value: 0.5, Since: since, Summary: "dns resolve failing on 50% of us-east"},
			severity: "warning", component: "us-east", group: "us-east", class: "dns resolve",
			summary: "dns resolve failing on 50% of us-east", dedup: "healthrouter/region/us-east/dns resolve/warning",
			details: map[string]any{"level": "region", "region": "us-east", "check": "dns resolve", "value": 0.5,
				"since": "2025-03-04T04:06:07Z", "explain": "https://hr.example.com/v1/explain?region=us-east&check=dns+resolve"},
		},
		{
			name:     "info, no since, no summary",
			alert:    health.Alert{Level: health.LevelHost, Region: "ap", Host: "h&1", Severity: health.SeverityInfo, Value: 1},
			severity: "info", component: "h&1", group: "ap", class: "host",
			summary: "info alert host/ap/h&1", dedup: "healthrouter/host/ap/h&1/info",
			details: map[string]any{"level": "host", "region": "ap", "host": "h&1", "value": 1.0,
				"explain": "https://hr.example.com/v1/explain?region=ap&host=h%261"},
		},
		{
			name:     "no severity counts as critical",
			alert:    health.Alert{Level: health.LevelHost, Region: "ap", Host: "h", Value: 1, Summary: "x"},
			severity: "critical", component: "h", group: "ap", class: "host", summary: "x", dedup: "healthrouter/host/ap/h/critical",
			details: map[string]any{"level": "host", "region": "ap", "host": "h", "value": 1.0,
				"explain": "https://hr.example.com/v1/explain?region=ap&host=h"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Event(&tt.alert, ext)
			if ev.RoutingKey != "" {
				t.Errorf("routing key set: the outbox adds it")
			}
			if ev.Action != ActionTrigger || ev.DedupKey != tt.dedup {
				t.Errorf("action, dedup_key = %q, %q; want trigger, %q", ev.Action, ev.DedupKey, tt.dedup)
			}
			p := ev.Payload
			got := []string{p.Severity, p.Component, p.Group, p.Class, p.Summary, p.Source}
			want := []string{tt.severity, tt.component, tt.group, tt.class, tt.summary, "healthrouter"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("severity, component, group, class, summary, source = %q; want %q", got, want)
			}
			if !reflect.DeepEqual(p.Details, tt.details) {
				t.Errorf("custom_details = %#v\nwant %#v", p.Details, tt.details)
			}
			if ev.Client != "healthrouter" || ev.ClientURL != "https://hr.example.com" {
				t.Errorf("client, client_url = %q, %q", ev.Client, ev.ClientURL)
			}
			if tt.alert.Since.IsZero() != (p.Timestamp == "") {
				t.Errorf("timestamp = %q for since %v", p.Timestamp, tt.alert.Since)
			}
		})
	}
}

func TestEventWithoutExternalURLHasNoExplainLink(t *testing.T) {
	a := health.Alert{Level: health.LevelHost, Region: "r", Host: "h", Severity: health.SeverityCritical, Summary: "s"}
	ev := Event(&a, "")
	details := ev.Payload.Details.(map[string]any)
	if _, ok := details["explain"]; ok {
		t.Fatalf("explain link without an external URL: %v", details["explain"])
	}
	if ev.Client != "" || ev.ClientURL != "" {
		t.Errorf("client set without an external URL: %q %q", ev.Client, ev.ClientURL)
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[health.Severity]string{
		health.SeverityCritical: "critical", health.SeverityError: "error", health.SeverityWarning: "warning",
		health.SeverityInfo: "info", health.SeverityNone: "critical", health.Severity(42): "critical",
	} {
		if got := Severity(in); got != want {
			t.Errorf("Severity(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestSummaryTruncation(t *testing.T) {
	tests := []struct {
		name    string
		summary string
		wantLen int
	}{
		{"short", "disk full", 9},
		{"exactly the limit", strings.Repeat("a", MaxSummaryLen), MaxSummaryLen},
		{"ascii over", strings.Repeat("a", 5000), MaxSummaryLen},
		{"multibyte over, cut on a rune boundary", strings.Repeat("é", 600), 1024},
		{"three-byte runes, backs off to the rune start", "xx" + strings.Repeat("€", 400), 1022},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summary(&health.Alert{Summary: tt.summary})
			if len(got) != tt.wantLen {
				t.Errorf("len = %d, want %d", len(got), tt.wantLen)
			}
			if !strings.HasPrefix(tt.summary, got) {
				t.Errorf("not a prefix of the summary")
			}
			if !utf8Valid(got) {
				t.Errorf("split a rune")
			}
		})
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestDedupKey(t *testing.T) {
	short := health.Alert{Level: health.LevelRegion, Region: "eu", Check: "ping", Severity: health.SeverityError}
	if got := DedupKey(&short); got != "healthrouter/region/eu/ping/error" {
		t.Errorf("DedupKey = %q", got)
	}
	// The severity sent is part of the identity: an escalation is a new
	// incident; no severity is sent (and keyed) as critical.
	escalated := short
	escalated.Severity = health.SeverityCritical
	unset := short
	unset.Severity = health.SeverityNone
	if DedupKey(&escalated) == DedupKey(&short) || DedupKey(&unset) != DedupKey(&escalated) {
		t.Errorf("severity not in the key: %q, %q, %q", DedupKey(&short), DedupKey(&escalated), DedupKey(&unset))
	}
	long := health.Alert{Level: health.LevelHost, Region: "eu", Host: strings.Repeat("h", 300)}
	got := DedupKey(&long)
	if len(got) > MaxDedupKeyLen || !strings.HasPrefix(got, "healthrouter/") || len(got) != len("healthrouter/")+64 {
		t.Errorf("long DedupKey = %q (%d chars)", got, len(got))
	}
	if DedupKey(&long) != got {
		t.Errorf("not stable")
	}
	other := long
	other.Host += "x"
	if DedupKey(&other) == got {
		t.Errorf("different alerts share a hashed dedup key")
	}
	otherSev := long
	otherSev.Severity = health.SeverityWarning
	if DedupKey(&otherSev) == got {
		t.Errorf("severities share a hashed dedup key")
	}
	// The boundary: a key of exactly 255 characters is kept as is.
	edge := health.Alert{Level: health.LevelHost, Region: "r", Severity: health.SeverityInfo,
		Host: strings.Repeat("h", MaxDedupKeyLen-len("healthrouter/host/r//info"))}
	if got := DedupKey(&edge); got != "healthrouter/"+edge.ID()+"/info" || len(got) != MaxDedupKeyLen {
		t.Errorf("255-character key changed: %q", got)
	}
}

func TestPages(t *testing.T) {
	low := &config.PagerDuty{Warning: "low"}
	none := &config.PagerDuty{Warning: "none"}
	tests := []struct {
		name     string
		alert    health.Alert
		low, non bool
	}{
		{"critical", health.Alert{Severity: health.SeverityCritical}, true, true},
		{"error", health.Alert{Severity: health.SeverityError}, true, true},
		{"warning", health.Alert{Severity: health.SeverityWarning}, true, false},
		{"info", health.Alert{Severity: health.SeverityInfo}, false, false},
		{"no severity", health.Alert{}, true, true},
		{"suppressed critical", health.Alert{Severity: health.SeverityCritical, Suppressed: health.SuppressedByRegion}, false, false},
		{"in maintenance", health.Alert{Severity: health.SeverityError, Suppressed: health.SuppressedByMaintenance}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Pages(low, &tt.alert); got != tt.low {
				t.Errorf("warning=low: Pages = %v, want %v", got, tt.low)
			}
			if got := Pages(none, &tt.alert); got != tt.non {
				t.Errorf("warning=none: Pages = %v, want %v", got, tt.non)
			}
		})
	}
}

func TestRouteKey(t *testing.T) {
	cfg := &config.PagerDuty{Routes: []config.Route{
		{Match: map[string]string{"team": "storage"}, Key: "storage"},
		{Match: map[string]string{"region": "eu1", "severity": "Warning"}, Key: "eu-low"},
		{Match: map[string]string{"level": "region", "check": "dns"}, Key: "network"},
		{Match: map[string]string{"host": "db-1"}, Key: "dba"},
		{Match: map[string]string{"team": "storage", "region": "us"}, Key: "never"}, // shadowed by the first
		{Match: map[string]string{"colour": "red"}, Key: "unknown-label"},
		{Match: map[string]string{}, Key: "empty"},
	}}
	tests := []struct {
		name  string
		alert health.Alert
		want  string
	}{
		{"team", health.Alert{Team: "storage", Region: "us", Host: "db-1"}, "storage"},
		{"first match wins over later ones", health.Alert{Team: "storage", Host: "db-1"}, "storage"},
		{"all labels must match", health.Alert{Region: "eu1", Severity: health.SeverityCritical}, "default"},
		{"region and severity", health.Alert{Region: "eu1", Severity: health.SeverityWarning}, "eu-low"},
		{"level and check", health.Alert{Level: health.LevelRegion, Region: "us", Check: "dns"}, "network"},
		{"host level does not match level region", health.Alert{Level: health.LevelHost, Region: "us", Check: "dns"}, "default"},
		{"host", health.Alert{Host: "db-1", Region: "us"}, "dba"},
		{"no route", health.Alert{Team: "web", Region: "ap", Host: "w-1"}, "default"},
		{"unknown labels and empty matches never match", health.Alert{}, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RouteKey(cfg, &tt.alert); got != tt.want {
				t.Errorf("RouteKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRouteKeyWithExampleConfig(t *testing.T) {
	cfg, err := config.Load("../../testdata/config/example.yaml", func(string) string { return "" })
	if cfg == nil {
		t.Fatalf("load example config: %v", err)
	}
	storage := health.Alert{Level: health.LevelHost, Region: "eu", Host: "s1", Team: "storage"}
	web := health.Alert{Level: health.LevelHost, Region: "eu", Host: "w1", Team: "web"}
	if got := RouteKey(cfg.PagerDuty, &storage); got != "storage" {
		t.Errorf("storage alert -> %q", got)
	}
	if got := RouteKey(cfg.PagerDuty, &web); got != "default" {
		t.Errorf("web alert -> %q", got)
	}
}

func BenchmarkEvent(b *testing.B) {
	a := health.Alert{Level: health.LevelHost, Region: "eu1", Host: "web-1.eu1", Severity: health.SeverityCritical,
		Value: 2, Since: since, Checks: []string{"lvm", "raid"}, Summary: "web-1.eu1: lvm, raid critical"}
	b.ReportAllocs()
	for b.Loop() {
		_ = Event(&a, "https://hr.example.com")
	}
}

func BenchmarkRouteKey(b *testing.B) {
	cfg := &config.PagerDuty{Routes: []config.Route{
		{Match: map[string]string{"team": "storage"}, Key: "storage"},
		{Match: map[string]string{"region": "eu1", "severity": "warning"}, Key: "eu-low"},
		{Match: map[string]string{"level": "region", "check": "dns"}, Key: "network"},
	}}
	a := health.Alert{Level: health.LevelHost, Region: "eu1", Host: "web-1", Severity: health.SeverityCritical}
	b.ReportAllocs()
	for b.Loop() {
		_ = RouteKey(cfg, &a)
	}
}

func TestEventCapsTheListOfChecks(t *testing.T) {
	checks := func(n, nameLen int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("c%05d%s", i, strings.Repeat("x", max(0, nameLen-6)))
		}
		return out
	}
	tests := []struct {
		name       string
		checks     []string
		wantListed int    // names in custom_details.checks, not counting "and N more"
		wantMore   string // last entry when capped
		wantGone   bool   // the list had to go: checks_omitted instead
	}{
		{"a few", checks(3, 10), 3, "", false},
		{"exactly the cap", checks(MaxListedChecks, 10), MaxListedChecks, "", false},
		{"one over", checks(MaxListedChecks+1, 10), MaxListedChecks, "and 1 more", false},
		{"thousands", checks(5000, 10), MaxListedChecks, "and 4950 more", false},
		{"fifty names of 20 KB", checks(60, 20000), 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := health.Alert{Level: health.LevelHost, Region: "eu", Host: "h", Severity: health.SeverityCritical,
				Checks: tt.checks, Summary: "s"}
			ev := Event(&a, "https://hr.example.com")
			size, err := eventSize(&ev)
			if err != nil || size > MaxEventBytes {
				t.Fatalf("event is %d bytes (%v), over %d", size, err, MaxEventBytes)
			}
			details := ev.Payload.Details.(map[string]any)
			if tt.wantGone {
				if _, ok := details["checks"]; ok || details["checks_omitted"] != fmt.Sprintf("%d checks: names too long for one PagerDuty event", len(tt.checks)) {
					t.Errorf("details = checks %v, omitted %v", ok, details["checks_omitted"])
				}
				if details["host"] != "h" {
					t.Errorf("the rest of the details went too: %v", details)
				}
				return
			}
			listed := details["checks"].([]string)
			want := tt.wantListed
			if tt.wantMore != "" {
				want++
				if last := listed[len(listed)-1]; last != tt.wantMore {
					t.Errorf("last entry %q, want %q", last, tt.wantMore)
				}
			}
			if len(listed) != want || listed[0] != tt.checks[0] {
				t.Errorf("listed %d entries starting %q, want %d starting %q", len(listed), listed[0], want, tt.checks[0])
			}
		})
	}
}

func TestSizeBoundIsAnUpperBound(t *testing.T) {
	for _, a := range []health.Alert{
		{Level: health.LevelHost, Region: "eu", Host: "h", Checks: []string{"a", "b"}, Summary: "s", Since: since},
		{Level: health.LevelRegion, Region: "\x01\x02\"<>&", Check: strings.Repeat("\x1f", 300), Summary: strings.Repeat("\"", 900)},
	} {
		ev := Event(&a, "https://hr.example.com/x?y=\"z\"")
		size, err := eventSize(&ev)
		if err != nil || sizeBound(&ev) < size {
			t.Errorf("bound %d under the encoded size %d (%v)", sizeBound(&ev), size, err)
		}
	}
	// What it cannot measure, it does not guess.
	odd := Event(&web1, "")
	odd.Payload.Details = map[string]any{"nested": map[string]any{"x": strings.Repeat("y", 100)}}
	if sizeBound(&odd) != math.MaxInt {
		t.Errorf("nested details measured as %d", sizeBound(&odd))
	}
}
