package grafana

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"

	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// TestDurationsAgreeWithGrafana checks the reconciler's duration handling
// against the fake Grafana, which reads and renders durations with
// Prometheus' model package as Grafana does and shares no code with this
// package: every duration the reconciler writes is accepted, comes back in
// Grafana's form, reads back as the same duration and shows no change, so
// a reconcile after a write has nothing to do.
func TestDurationsAgreeWithGrafana(t *testing.T) {
	tests := []struct {
		d       time.Duration
		written string // promDuration(d), what the reconciler sends
		grafana string // what Grafana answers
	}{
		{0, "0s", "0s"},
		{10 * time.Second, "10s", "10s"},
		{time.Minute, "1m", "1m"},
		{90 * time.Second, "1m30s", "1m30s"},
		{time.Hour, "1h", "1h"},
		{90 * time.Minute, "1h30m", "1h30m"},
		{36 * time.Hour, "1d12h", "1d12h"},
		{7 * 24 * time.Hour, "7d", "1w"},
		{1500 * time.Millisecond, "1s500ms", "1s500ms"},
	}
	srv := grafanatest.New()
	t.Cleanup(srv.Close)
	c := srv.Client()
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "f", Title: "F"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.written, func(t *testing.T) {
			if got := promDuration(tt.d); got != tt.written {
				t.Fatalf("promDuration(%s) = %q, want %q", tt.d, got, tt.written)
			}
			if back, ok := parseDuration(tt.grafana); !ok || back != tt.d {
				t.Fatalf("parseDuration(%q) = %s, %v; want %s", tt.grafana, back, ok, tt.d)
			}

			uid := "dur-" + strconv.FormatInt(tt.d.Milliseconds(), 10)
			forDur, forGrafana := tt.d, tt.grafana
			if tt.d%time.Second != 0 {
				// The client sends "for" in Go's form ("1.5s"), which Grafana
				// refuses: config.Validate allows no such grafana.pending.
				_, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(durationRule(uid, tt.d, tt.d)))
				var refused *provisioning.PostAlertRuleBadRequest
				if !errors.As(err, &refused) || !strings.Contains(refused.Payload.Message, "duration") {
					t.Fatalf("POST rule with for %s: %v, want 400", tt.d, err)
				}
				forDur = tt.d.Truncate(time.Second)
				forGrafana = promDuration(forDur)
			}
			want := durationRule(uid, forDur, tt.d)
			if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(want)); err != nil {
				t.Fatalf("POST rule with %s: %v", tt.d, err)
			}
			raw := getJSON(t, srv, "/api/v1/provisioning/alert-rules/"+uid)
			ns, _ := raw["notification_settings"].(map[string]any)
			if raw["for"] != forGrafana || raw["keep_firing_for"] != forGrafana || ns["group_wait"] != tt.grafana {
				t.Errorf("Grafana answered for %v, keep_firing_for %v, group_wait %v; want %q, %q, %q",
					raw["for"], raw["keep_firing_for"], ns["group_wait"], forGrafana, forGrafana, tt.grafana)
			}
			have, err := c.Provisioning.GetAlertRule(uid)
			if err != nil {
				t.Fatalf("GET rule: %v", err)
			}
			if d := diffRule(want, have.Payload); len(d) != 0 {
				t.Errorf("rule written with %s reads back changed: %v", tt.d, d)
			}

			route := &models.Route{GroupWait: tt.written, GroupInterval: "5m", RepeatInterval: "4h"}
			tree := &models.Route{Receiver: grafanatest.DefaultReceiver, Routes: []*models.Route{route}}
			if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
				t.Fatalf("PUT policy with group_wait %s: %v", tt.written, err)
			}
			got, err := c.Provisioning.GetPolicyTree()
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Payload.Routes) != 1 || got.Payload.Routes[0].GroupWait != tt.grafana {
				t.Fatalf("policy route stored as %+v, want group_wait %q", got.Payload.Routes, tt.grafana)
			}
			if !sameRoute(route, got.Payload.Routes[0]) {
				t.Errorf("route with group_wait %s reads back changed", tt.written)
			}
		})
	}
}

// durationRule is a valid rule with "for" and "keep_firing_for" forDur and
// group_wait groupWait, written the way the reconciler writes them.
func durationRule(uid string, forDur, groupWait time.Duration) *models.ProvisionedAlertRule {
	sent := strfmt.Duration(forDur)
	return &models.ProvisionedAlertRule{
		UID: uid, OrgID: ptr(int64(1)), FolderUID: ptr("f"), RuleGroup: ptr("durations"), Title: ptr(uid),
		Condition: ptr("B"), For: &sent, KeepFiringFor: sent,
		NoDataState: ptr("OK"), ExecErrState: ptr("Error"),
		Data: []*models.AlertQuery{
			{RefID: "A", DatasourceUID: "prom", RelativeTimeRange: &models.RelativeTimeRange{From: 600},
				Model: map[string]any{"refId": "A", "expr": "up"}},
			{RefID: "B", DatasourceUID: "__expr__", RelativeTimeRange: &models.RelativeTimeRange{},
				Model: map[string]any{"refId": "B", "type": "threshold", "expression": "A"}},
		},
		NotificationSettings: &models.AlertRuleNotificationSettings{
			Receiver: ptr(grafanatest.DefaultReceiver), GroupWait: promDuration(groupWait),
		},
	}
}

// getJSON answers a GET on the fake as the raw JSON object Grafana sends.
func getJSON(t *testing.T, srv *grafanatest.Server, path string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return m
}
