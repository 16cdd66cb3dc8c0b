package grafana

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDashboard checks grafana/dashboards/healthrouter.json: it parses,
// panel ids are unique, every query names a metric healthrouter exports and
// the metrics the dashboard promises are all shown.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../grafana/dashboards/healthrouter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		} `json:"panels"`
		Templating struct {
			List []struct{ Name string } `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID != "healthrouter" {
		t.Errorf("uid %q", dash.UID)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q does not fit the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, "healthrouter_") {
				t.Errorf("panel %q queries %q, not a healthrouter metric", p.Title, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, m := range []string{
		"healthrouter_ingest_events_total", "healthrouter_ingest_rejected_total", "healthrouter_http_request_duration_seconds_bucket",
		"healthrouter_alert", "healthrouter_alert_suppressed", "healthrouter_last_event_timestamp_seconds",
		"healthrouter_grafana_up", "healthrouter_grafana_reconcile_total", "healthrouter_grafana_last_success_timestamp_seconds",
		"healthrouter_grafana_writes_total", "healthrouter_pagerduty_outbox_depth",
	} {
		if !strings.Contains(all, m) {
			t.Errorf("no panel shows %s", m)
		}
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["region"] {
		t.Errorf("variables %v, want datasource and region", vars)
	}
}

// TestProvisioningExamplesParse checks the hand-written provisioning files.
func TestProvisioningExamplesParse(t *testing.T) {
	for _, path := range []string{
		"../../grafana/provisioning/datasources/prometheus.yaml",
		"../../grafana/provisioning/dashboards/healthrouter.yaml",
	} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if doc["apiVersion"] != 1 {
			t.Errorf("%s: apiVersion %v", path, doc["apiVersion"])
		}
	}
}
