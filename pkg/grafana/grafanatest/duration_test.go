package grafanatest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

// grafanaDurations are alerting durations as a request may carry them and
// what Grafana answers after storing them (model.ParseDuration, then
// model.Duration.String()); "" marks a value Grafana refuses.
var grafanaDurations = []struct{ in, stored string }{
	{"0", "0s"},
	{"0s", "0s"},
	{"10s", "10s"},
	{"1m", "1m"},
	{"90s", "1m30s"},
	{"5m0s", "5m"}, // Go's form, which the client sends
	{"1h30m0s", "1h30m"},
	{"36h", "1d12h"},
	{"7d", "1w"},
	{"14d", "2w"},
	{"365d", "1y"},
	{"1500ms", "1s500ms"},
	{"1.5h", ""}, // no fractions
	{"1 day", ""},
	{"5s1m", ""}, // units biggest first
	{"-5m", ""},
	{"1h30", ""},
	{"", ""},
}

// rawCall sends body (JSON-encoded) and decodes the answer into out when
// out is not nil. It returns the status.
func rawCall(t *testing.T, s *Server, method, path string, body, out any) int {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.URL+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decoding the answer: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// ruleWithFor is validRule as JSON, with "for" and "keep_firing_for" set to
// the raw string v.
func ruleWithFor(t *testing.T, uid, v string) map[string]any {
	t.Helper()
	raw, err := json.Marshal(validRule(uid, "g", uid))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["for"], m["keep_firing_for"] = v, v
	return m
}

func TestRuleDurations(t *testing.T) {
	for _, tt := range grafanaDurations {
		t.Run(tt.in, func(t *testing.T) {
			s, _ := setup(t)
			status := rawCall(t, s, http.MethodPost, "/api/v1/provisioning/alert-rules", ruleWithFor(t, "r1", tt.in), nil)
			if tt.stored == "" {
				if status != http.StatusBadRequest {
					t.Fatalf("POST with for %q: status %d, want 400", tt.in, status)
				}
				group := map[string]any{"interval": 60, "rules": []any{ruleWithFor(t, "r2", tt.in)}}
				if status := rawCall(t, s, http.MethodPut, "/api/v1/provisioning/folder/f/rule-groups/g", group, nil); status != http.StatusBadRequest {
					t.Errorf("group PUT with for %q: status %d, want 400", tt.in, status)
				}
				return
			}
			if status != http.StatusCreated {
				t.Fatalf("POST with for %q: status %d, want 201", tt.in, status)
			}
			var got map[string]any
			if status := rawCall(t, s, http.MethodGet, "/api/v1/provisioning/alert-rules/r1", nil, &got); status != http.StatusOK {
				t.Fatalf("GET: status %d", status)
			}
			if got["for"] != tt.stored || got["keep_firing_for"] != tt.stored {
				t.Errorf("for %q stored as for %v, keep_firing_for %v; want %q", tt.in, got["for"], got["keep_firing_for"], tt.stored)
			}
		})
	}
}

func TestNotificationDurations(t *testing.T) {
	for _, tt := range grafanaDurations {
		t.Run(tt.in, func(t *testing.T) {
			if tt.in == "" {
				t.Skip(`"" leaves group_wait unset`)
			}
			_, c := setup(t)
			r := validRule("r1", "g", "rule")
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), GroupWait: tt.in}
			_, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r))
			if tt.stored == "" {
				if status(err) != http.StatusBadRequest {
					t.Fatalf("group_wait %q: %v, want 400", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("group_wait %q: %v", tt.in, err)
			}
			got, err := c.Provisioning.GetAlertRule("r1")
			if err != nil {
				t.Fatal(err)
			}
			if gw := got.Payload.NotificationSettings.GroupWait; gw != tt.stored {
				t.Errorf("group_wait %q stored as %q, want %q", tt.in, gw, tt.stored)
			}
		})
	}
}

func TestPolicyDurations(t *testing.T) {
	for _, tt := range grafanaDurations {
		t.Run(tt.in, func(t *testing.T) {
			if tt.in == "" {
				t.Skip(`"" leaves group_wait unset`)
			}
			_, c := setup(t)
			tree := &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{GroupWait: tt.in, RepeatInterval: "90s"}}}
			_, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree))
			if tt.stored == "" {
				if status(err) != http.StatusBadRequest {
					t.Fatalf("group_wait %q: %v, want 400", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("group_wait %q: %v", tt.in, err)
			}
			got, err := c.Provisioning.GetPolicyTree()
			if err != nil {
				t.Fatal(err)
			}
			child := got.Payload.Routes[0]
			if child.GroupWait != tt.stored || child.RepeatInterval != "1m30s" {
				t.Errorf("group_wait %q, repeat_interval 90s stored as %q, %q; want %q, 1m30s", tt.in, child.GroupWait, child.RepeatInterval, tt.stored)
			}
		})
	}
}
