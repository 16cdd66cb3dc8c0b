package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
)

const (
	pdDefaultKey = "0123456789abcdef0123456789abcdef"
	pdStorageKey = "fedcba9876543210fedcba9876543210"
)

// TestServeProvisionsGrafanaAndFallsBackToPagerDuty runs the real binary
// against the strict Grafana and PagerDuty fakes: a new region gets its
// rule group at once; when Grafana stops answering, the page set is paged
// directly after fallback_after and resolved when it clears.
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
grafana:
  url: %s
  org_id: %d
  reconcile_every: 1h
  timeout: 2s
pagerduty:
  routing_keys: {default: TEST_PD_DEFAULT, storage: TEST_PD_STORAGE}
  routes: [{match: {team: storage}, key: storage}]
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
	p := start(t, filepath.Join(dir, "data"), "--config", cfgPath)

	at := time.Now().UTC().Add(-time.Minute)
	event := func(region, host, check, status string) []byte {
		at = at.Add(time.Second)
		return []byte(fmt.Sprintf(`{"check":%q,"host":%q,"region":%q,"status":%q,"timestamp":%q}`,
			check, host, region, status, at.Format(time.RFC3339Nano)))
	}
	if code := p.post(event("eu", "db-1", "raid", "critical")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	waitFor(t, "rule group for the new region", func() bool {
		return slices.Contains(gf.RuleUIDs(), "hr-host-eu")
	})

	// Grafana goes down; a reconcile for a second region finds out.
	gf.FailAll(http.StatusServiceUnavailable)
	if code := p.post(event("us", "web-1", "disk", "passing")); code != http.StatusOK {
		t.Fatalf("post: %d", code)
	}
	alert := health.Alert{Level: health.LevelHost, Region: "eu", Host: "db-1"}
	dedup := pagerduty.DedupKey(&alert)
	waitFor(t, "a direct page for db-1 through the storage key", func() bool {
		inc, ok := pd.Incident(pdStorageKey, dedup)
		return ok && inc.Open
	})
	if inc, _ := pd.Incident(pdStorageKey, dedup); inc.Last == nil || inc.Last.Severity != "critical" || inc.Last.Group != "eu" || inc.Last.Component != "db-1" {
		t.Fatalf("page payload %+v", inc.Last)
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
	for _, secret := range []string{pdDefaultKey, pdStorageKey, gf.Token, testToken} {
		if strings.Contains(p.logs.String(), secret) {
			t.Fatalf("a secret reached the log")
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
