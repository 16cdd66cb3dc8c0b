package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
)

const (
	pdDefaultKey = "0123456789abcdef0123456789abcdef"
	pdStorageKey = "fedcba9876543210fedcba9876543210"
	// pdGhostKey is well formed but unknown to PagerDuty.
	pdGhostKey = "0000ghost0000ghost0000ghost00000"
)

// TestServeProvisionsGrafanaAndFallsBackToPagerDuty runs the real binary
// against the strict Grafana and PagerDuty fakes: a new region gets its
// rule group at once; when Grafana stops answering, the page set is paged
// directly after fallback_after and resolved when it clears. A routing key
// PagerDuty refuses shows in /readyz, and no key or token shows anywhere.
func TestServeProvisionsGrafanaAndFallsBackToPagerDuty(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary against fake Grafana and PagerDuty")
	}
	gf := grafanatest.New()
	defer gf.Close()
	pd := pagerdutytest.New(pagerdutytest.WithRoutingKeys(pdDefaultKey, pdStorageKey))
	defer pd.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`
engine: {confirm_after: 1, tick_every: 200ms}
checks:
  - {match: 'raid*', severity: critical, team: storage}
  - {match: 'fan*', severity: critical, team: cooling}
grafana:
  url: %s
  org_id: %d
  reconcile_every: 1h
  timeout: 2s
  pending: {host: 10s, region: 10s}
pagerduty:
  routing_keys: {default: TEST_PD_DEFAULT, storage: TEST_PD_STORAGE, cooling: TEST_PD_GHOST}
  routes: [{match: {team: storage}, key: storage}, {match: {team: cooling}, key: cooling}]
  events_url: %s
  fallback_after: 2s
  timeout: 2s
`, gf.URL, gf.OrgID, pd.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HEALTHROUTER_GRAFANA_TOKEN", gf.Token)
	t.Setenv("TEST_PD_DEFAULT", pdDefaultKey)
	t.Setenv("TEST_PD_STORAGE", pdStorageKey)
	t.Setenv("TEST_PD_GHOST", pdGhostKey)
	const adminToken = "wiring-admin-token-0123456789"
	t.Setenv(config.EnvAdminToken, adminToken)
	secrets := []string{pdDefaultKey, pdStorageKey, pdGhostKey, gf.Token, testToken, adminToken}
	p := start(t, filepath.Join(dir, "data"), "--config", cfgPath)

	event := timedEvents()
	for _, ev := range [][]byte{event("eu", "db-1", "raid", "critical"), event("eu", "fan-1", "fan", "critical")} {
		if code := p.post(ev); code != http.StatusOK {
			t.Fatalf("post: %d", code)
		}
	}
	waitFor(t, "rule group for the new region", func() bool {
		return slices.Contains(gf.RuleUIDs(), "hr-host-eu")
	})

	// Grafana goes down; a reconcile for a second region finds out.
	gf.FailAll(http.StatusServiceUnavailable)
	if code := p.post(event("us", "web-1", "disk", "passing")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	alert := health.Alert{Level: health.LevelHost, Region: "eu", Host: "db-1", Severity: health.SeverityCritical}
	dedup := pagerduty.DedupKey(&alert)
	waitFor(t, "a direct page for db-1 through the storage key", func() bool {
		inc, ok := pd.Incident(pdStorageKey, dedup)
		return ok && inc.Open
	})
	if inc, _ := pd.Incident(pdStorageKey, dedup); inc.Last == nil || inc.Last.Severity != "critical" || inc.Last.Group != "eu" || inc.Last.Component != "db-1" {
		t.Fatalf("page payload %+v", inc.Last)
	}

	// fan-1's page went to a key PagerDuty refuses: /readyz says so, by
	// key name and with PagerDuty's reason.
	var ready struct {
		PagerDuty struct {
			FallbackActive bool              `json:"fallback_active"`
			KeyErrors      map[string]string `json:"key_errors"`
		} `json:"pagerduty"`
	}
	waitFor(t, "the refused key in /readyz", func() bool {
		p.get(t, "/readyz", &ready)
		return ready.PagerDuty.KeyErrors["cooling"] != ""
	})
	if !ready.PagerDuty.FallbackActive || ready.PagerDuty.KeyErrors["cooling"] != "Event object is invalid: Invalid routing key" {
		t.Errorf("readyz pagerduty = %+v", ready.PagerDuty)
	}
	// Nothing an operator or Prometheus can read shows a key or token.
	for _, path := range []string{"/readyz", "/metrics", "/v1/alerts", "/v1/transitions", "/v1/regions"} {
		for _, token := range []string{"", testToken, adminToken} {
			body := p.getRaw(t, path, token)
			for _, secret := range secrets {
				if strings.Contains(body, secret) {
					t.Errorf("GET %s shows a secret", path)
				}
			}
		}
	}

	// The failure clears: the page is resolved, once.
	if code := p.post(event("eu", "db-1", "raid", "passing")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	waitFor(t, "the direct page resolved", func() bool {
		inc, _ := pd.Incident(pdStorageKey, dedup)
		return !inc.Open && inc.Resolves == 1
	})
	if inc, _ := pd.Incident(pdStorageKey, dedup); inc.Opened != 1 {
		t.Fatalf("incident opened %d times, want once", inc.Opened)
	}
	p.stop(t)
	for _, secret := range secrets {
		if strings.Contains(p.logs.String(), secret) {
			t.Fatalf("a secret reached the log")
		}
	}
}

// TestServePagesDirectlyWhileGrafanaRefuses runs the binary against a
// Grafana that answers but refuses healthrouter from the start (a token
// without the permission): it holds none of healthrouter's rules, so
// nothing would page. After fallback_after healthrouter pages directly; once
// a reconcile succeeds and the rules have pended for fallback_recover_after,
// it resolves what it opened.
func TestServePagesDirectlyWhileGrafanaRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary against fake Grafana and PagerDuty")
	}
	gf := grafanatest.New()
	defer gf.Close()
	gf.FailAll(http.StatusForbidden)
	pd := pagerdutytest.New(pagerdutytest.WithRoutingKeys(pdDefaultKey))
	defer pd.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`
engine: {confirm_after: 1, tick_every: 200ms}
grafana:
  url: %s
  org_id: %d
  reconcile_every: 1h
  timeout: 2s
  pending: {host: 1s, region: 1s}
pagerduty:
  routing_keys: {default: TEST_PD_DEFAULT}
  events_url: %s
  fallback_after: 2s
  fallback_recover_after: 1s
  timeout: 2s
`, gf.URL, gf.OrgID, pd.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HEALTHROUTER_GRAFANA_TOKEN", gf.Token)
	t.Setenv("TEST_PD_DEFAULT", pdDefaultKey)
	p := start(t, filepath.Join(dir, "data"), "--config", cfgPath)

	event := timedEvents()
	if code := p.post(event("eu", "db-1", "raid", "critical")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	dedup := pagerduty.DedupKey(&health.Alert{Level: health.LevelHost, Region: "eu", Host: "db-1", Severity: health.SeverityCritical})
	waitFor(t, "a direct page while Grafana refuses every reconcile", func() bool {
		inc, ok := pd.Incident(pdDefaultKey, dedup)
		return ok && inc.Open
	})
	if rules := gf.RuleUIDs(); len(rules) != 0 {
		t.Fatalf("Grafana holds rules %v although it refused every write", rules)
	}
	if !strings.Contains(p.logs.String(), "holds none of healthrouter's rules") {
		t.Errorf("the log does not say why it pages directly:\n%s", p.logs.String())
	}

	// The permission is granted; a new region makes the next reconcile
	// come at once rather than after the backoff.
	gf.FailAll(0)
	if code := p.post(event("us", "web-1", "disk", "passing")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	waitFor(t, "the rules provisioned", func() bool { return slices.Contains(gf.RuleUIDs(), "hr-host-eu") })
	waitFor(t, "the direct page resolved once Grafana's rules stand", func() bool {
		inc, _ := pd.Incident(pdDefaultKey, dedup)
		return !inc.Open && inc.Resolves == 1
	})
	if inc, _ := pd.Incident(pdDefaultKey, dedup); inc.Opened != 1 {
		t.Fatalf("incident opened %d times, want once", inc.Opened)
	}
	p.stop(t)
}

// timedEvents returns a function rendering one result as Vector sends it,
// each a second after the one before, starting a minute ago.
func timedEvents() func(region, host, check, status string) []byte {
	at := time.Now().UTC().Add(-time.Minute)
	return func(region, host, check, status string) []byte {
		at = at.Add(time.Second)
		return []byte(fmt.Sprintf(`{"check":%q,"host":%q,"region":%q,"status":%q,"timestamp":%q}`,
			check, host, region, status, at.Format(time.RFC3339Nano)))
	}
}

// getRaw GETs path with token as bearer (none when empty) and returns the
// body, whatever the status.
func (p *proc) getRaw(t *testing.T, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return string(body)
}

// The fallback hears that Grafana answered only from an answer in this
// process: before the first call ends, a zero UnreachableSince means "no
// news", not "reachable". An answer is not enough to page, though: until
// this process has seen Grafana hold its rules, Grafana may hold none.
func TestFallbackViewOfGrafana(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	later := at.Add(time.Hour)
	tests := []struct {
		name string
		st   grafana.Status
		want pagerduty.GrafanaStatus
	}{
		{"just started, first call in flight", grafana.Status{FirstAttempt: at, LastAttempt: at}, pagerduty.GrafanaStatus{}},
		{"first call timed out", grafana.Status{FirstAttempt: at, LastAttempt: at, UnreachableSince: at.Add(time.Second)},
			pagerduty.GrafanaStatus{UnreachableSince: at}},
		{"reconciled", grafana.Status{FirstAttempt: at, RulesSince: at, LastSuccess: at, LastAnswer: at, ReachableSince: at, Healthy: true},
			pagerduty.GrafanaStatus{Answered: true, ReachableSince: at}},
		{"refused every reconcile since the first attempt: cannot page", grafana.Status{FirstAttempt: at, LastAttempt: later, LastAnswer: later,
			ReachableSince: at, ConsecutiveFailures: 3}, pagerduty.GrafanaStatus{Answered: true, UnreachableSince: at, HoldsNoRules: true}},
		{"unreachable, then refusing: cannot page since the first attempt", grafana.Status{FirstAttempt: at, LastAttempt: later,
			LastAnswer: later, ReachableSince: later, ConsecutiveFailures: 5}, pagerduty.GrafanaStatus{Answered: true, UnreachableSince: at, HoldsNoRules: true}},
		{"refusing, then unreachable: still since the first attempt", grafana.Status{FirstAttempt: at, LastAttempt: later,
			LastAnswer: at, UnreachableSince: later, ConsecutiveFailures: 5}, pagerduty.GrafanaStatus{Answered: true, UnreachableSince: at, HoldsNoRules: true}},
		{"refused, then reconciled: reachable from when the rules stood", grafana.Status{FirstAttempt: at, RulesSince: later,
			LastSuccess: later, LastAnswer: later, ReachableSince: at, Healthy: true}, pagerduty.GrafanaStatus{Answered: true, ReachableSince: later}},
		{"rules read, one region's group refused: they page", grafana.Status{FirstAttempt: at, RulesSince: at, LastAnswer: later,
			ReachableSince: at, ConsecutiveFailures: 2}, pagerduty.GrafanaStatus{Answered: true, ReachableSince: at}},
		{"reconciled, then refusing: the rules stand", grafana.Status{FirstAttempt: at, RulesSince: at, LastSuccess: at,
			LastAnswer: later, ReachableSince: at, ConsecutiveFailures: 2}, pagerduty.GrafanaStatus{Answered: true, ReachableSince: at}},
		{"reconciled, then unreachable", grafana.Status{FirstAttempt: at, RulesSince: at, LastSuccess: at, LastAnswer: at, UnreachableSince: later},
			pagerduty.GrafanaStatus{Answered: true, UnreachableSince: later}},
	}
	for _, tt := range tests {
		if got := fallbackView(tt.st); got != tt.want {
			t.Errorf("%s: fallbackView = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
