package grafanatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

// send makes a raw API call (the client hides the bodies of the answers it
// does not declare) and returns the answer's status and body.
func send(t *testing.T, s *Server, method, path string, body any, disable bool) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+"/api/v1/provisioning"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	if disable {
		req.Header.Set("X-Disable-Provenance", "true")
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// putGroup writes group g of folder f; rules nil is an interval-only
// update.
func putGroup(t *testing.T, s *Server, group string, disable bool, rules ...*models.ProvisionedAlertRule) (int, string) {
	t.Helper()
	return send(t, s, http.MethodPut, "/folder/f/rule-groups/"+group, &models.AlertRuleGroup{Interval: 60, Rules: rules}, disable)
}

// postRule creates a rule.
func postRule(t *testing.T, s *Server, r *models.ProvisionedAlertRule) {
	t.Helper()
	if code, body := send(t, s, http.MethodPost, "/alert-rules", r, false); code != http.StatusCreated {
		t.Fatalf("post rule: %d %s", code, body)
	}
}

func provenances(s *Server, uids ...string) map[string]string {
	out := map[string]string{}
	for _, uid := range uids {
		r, ok := s.Rule(uid)
		if !ok {
			out[uid] = "<gone>"
			continue
		}
		out[uid] = string(r.Provenance)
	}
	return out
}

// TestGroupWriteStampsEveryRule: a group write stamps its provenance on
// every rule of the groups it touches (the target group and the groups
// rules move out of), changed or not, and Grafana refuses the whole write
// when one of them has a provenance it cannot change.
func TestGroupWriteStampsEveryRule(t *testing.T) {
	// Writes, given rule own (written by the test's write) and rule other
	// (someone's) as Grafana holds them, both in group g.
	rewrite := func(t *testing.T, s *Server, disable bool, own, other *models.ProvisionedAlertRule) (int, string) {
		return putGroup(t, s, "g", disable, own, other)
	}
	dropOther := func(t *testing.T, s *Server, disable bool, own, _ *models.ProvisionedAlertRule) (int, string) {
		return putGroup(t, s, "g", disable, own)
	}
	intervalOnly := func(t *testing.T, s *Server, disable bool, _, _ *models.ProvisionedAlertRule) (int, string) {
		return putGroup(t, s, "g", disable)
	}
	moveOwnOut := func(t *testing.T, s *Server, disable bool, own, _ *models.ProvisionedAlertRule) (int, string) {
		return putGroup(t, s, "h", disable, own)
	}
	tests := []struct {
		name string
		// stored is the provenance of rule other.
		stored string
		// disable: the writes carry X-Disable-Provenance.
		disable bool
		write   func(t *testing.T, s *Server, disable bool, own, other *models.ProvisionedAlertRule) (int, string)
		// wantStatus 200: accepted, and every rule left has provenance
		// want. Else refused with wantMsg, and nothing changes.
		wantStatus int
		wantMsg    string
		want       string
	}{
		{"unchanged rules get api", ProvenanceNone, false, rewrite, 200, "", ProvenanceAPI},
		{"unchanged rules get none", ProvenanceAPI, true, rewrite, 200, "", ProvenanceNone},
		{"converted rules may lose provenance", ProvenanceConvertedPrometheus, true, rewrite, 200, "", ProvenanceNone},
		{"a file rule refuses api", ProvenanceFile, false, rewrite, 409, "cannot update with provided provenance 'api', needs 'file'", ""},
		{"a file rule refuses none", ProvenanceFile, true, rewrite, 409, "cannot update with provided provenance '', needs 'file'", ""},
		{"a converted rule refuses api", ProvenanceConvertedPrometheus, false, rewrite, 409,
			"cannot update with provided provenance 'api', needs 'converted_prometheus'", ""},
		{"a file rule refuses its delete", ProvenanceFile, false, dropOther, 409, "cannot delete with provided provenance 'api', needs 'file'", ""},
		{"an interval-only update stamps every rule", ProvenanceNone, false, intervalOnly, 200, "", ProvenanceAPI},
		{"an interval-only update refuses a file rule", ProvenanceFile, false, intervalOnly, 409,
			"cannot update with provided provenance 'api', needs 'file'", ""},
		{"a rule moving out stamps the rules it leaves", ProvenanceNone, false, moveOwnOut, 200, "", ProvenanceAPI},
		{"a rule moving out of a group with a file rule is refused", ProvenanceFile, false, moveOwnOut, 409,
			"cannot update with provided provenance 'api', needs 'file'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := setup(t)
			if code, body := putGroup(t, s, "g", tt.disable, validRule("own", "", "own")); code != 200 {
				t.Fatalf("create group: %d %s", code, body)
			}
			postRule(t, s, validRule("other", "g", "other"))
			if !s.SetRuleProvenance("other", tt.stored) {
				t.Fatal("SetRuleProvenance: rule not found")
			}
			own, _ := s.Rule("own")
			other, _ := s.Rule("other")
			before := provenances(s, "own", "other")
			_, uidsBefore, _ := s.Group("f", "g")

			code, body := tt.write(t, s, tt.disable, own, other)
			if code != tt.wantStatus || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("write: %d %s, want %d %q", code, body, tt.wantStatus, tt.wantMsg)
			}
			if code != 200 {
				if !strings.Contains(body, `"messageId":"alerting.provenanceMismatch"`) {
					t.Errorf("refusal %s lacks Grafana's messageId", body)
				}
				if got := provenances(s, "own", "other"); !reflect.DeepEqual(got, before) {
					t.Errorf("a refused write changed provenance: %v -> %v", before, got)
				}
				if _, uids, _ := s.Group("f", "g"); !reflect.DeepEqual(uids, uidsBefore) {
					t.Errorf("a refused write changed group g: %v -> %v", uidsBefore, uids)
				}
				return
			}
			for uid, got := range provenances(s, "own", "other") {
				if got != tt.want && got != "<gone>" {
					t.Errorf("rule %s provenance %q, want %q", uid, got, tt.want)
				}
			}
		})
	}
}

// TestGroupDeleteChecksEveryRule: deleting a group is refused when one of
// its rules has a provenance the request cannot change.
func TestGroupDeleteChecksEveryRule(t *testing.T) {
	s, _ := setup(t)
	if code, body := putGroup(t, s, "g", false, validRule("a", "", "a"), validRule("b", "", "b")); code != 200 {
		t.Fatalf("create group: %d %s", code, body)
	}
	s.SetRuleProvenance("b", ProvenanceFile)
	code, body := send(t, s, http.MethodDelete, "/folder/f/rule-groups/g", nil, false)
	if code != 409 || !strings.Contains(body, "cannot delete with provided provenance 'api', needs 'file'") {
		t.Fatalf("delete: %d %s, want 409", code, body)
	}
	if _, uids, _ := s.Group("f", "g"); len(uids) != 2 {
		t.Errorf("a refused delete left %v", uids)
	}
	// The single-rule delete answers the same refusal.
	code, body = send(t, s, http.MethodDelete, "/alert-rules/b", nil, false)
	if code != 409 || !strings.Contains(body, "cannot delete with provided provenance 'api', needs 'file'") {
		t.Fatalf("single delete: %d %s, want 409", code, body)
	}
	s.SetRuleProvenance("b", ProvenanceAPI)
	if code, body := send(t, s, http.MethodDelete, "/folder/f/rule-groups/g", nil, false); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if s.SetRuleProvenance("a", ProvenanceFile) {
		t.Error("SetRuleProvenance found a deleted rule")
	}
}

// TestContactPointProvenance: Grafana refuses an update that would change a
// contact point's stored provenance (other than none) with a plain 500,
// after validating the body, and deletes without looking at provenance.
func TestContactPointProvenance(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	cp := func(settings map[string]any) *models.EmbeddedContactPoint {
		return &models.EmbeddedContactPoint{UID: "pd", Name: "pd", Type: ptr("pagerduty"), Settings: settings}
	}
	rotated := cp(map[string]any{"integrationKey": "rotated"})
	tests := []struct {
		name       string
		stored     string
		disable    bool
		body       *models.EmbeddedContactPoint
		uid        string
		wantStatus int
		wantMsg    string
		wantProv   string
	}{
		{"file refuses api", ProvenanceFile, false, rotated, "pd", 500, "cannot change provenance from 'file' to 'api'", ProvenanceFile},
		{"file refuses none", ProvenanceFile, true, rotated, "pd", 500, "cannot change provenance from 'file' to ''", ProvenanceFile},
		{"api refuses none", ProvenanceAPI, true, rotated, "pd", 500, "cannot change provenance from 'api' to ''", ProvenanceAPI},
		{"validation comes first", ProvenanceFile, false, cp(map[string]any{"severity": 3, "integrationKey": "[REDACTED]"}), "pd", 400,
			"severity", ProvenanceFile},
		{"unknown uid", ProvenanceFile, false, rotated, "nope", 404, "not found", ProvenanceFile},
		{"none takes api", ProvenanceNone, false, rotated, "pd", 202, "", ProvenanceAPI},
		{"api keeps api", ProvenanceAPI, false, rotated, "pd", 202, "", ProvenanceAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := setup(t)
			if _, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().
				WithBody(cp(map[string]any{"integrationKey": key}))); err != nil {
				t.Fatal(err)
			}
			if !s.SetContactPointProvenance("pd", tt.stored) {
				t.Fatal("SetContactPointProvenance: not found")
			}
			list, err := c.Provisioning.GetContactpoints(provisioning.NewGetContactpointsParams().WithName(ptr("pd")))
			if err != nil || len(list.Payload) != 1 || list.Payload[0].Provenance != tt.stored {
				t.Fatalf("listed: %v %+v", err, list)
			}
			code, body := send(t, s, http.MethodPut, "/contact-points/"+tt.uid, tt.body, tt.disable)
			if code != tt.wantStatus || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("update: %d %s, want %d %q", code, body, tt.wantStatus, tt.wantMsg)
			}
			stored, storedKey, _ := s.ContactPoint("pd")
			if stored.Provenance != tt.wantProv {
				t.Errorf("provenance %q, want %q", stored.Provenance, tt.wantProv)
			}
			wantKey := key
			if tt.wantStatus == 202 {
				wantKey = "rotated"
			}
			if storedKey != wantKey {
				t.Errorf("stored key %q, want %q", storedKey, wantKey)
			}
		})
	}
	t.Run("delete ignores provenance", func(t *testing.T) {
		s, c := setup(t)
		if _, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().
			WithBody(cp(map[string]any{"integrationKey": key}))); err != nil {
			t.Fatal(err)
		}
		s.SetContactPointProvenance("pd", ProvenanceFile)
		if code, body := send(t, s, http.MethodDelete, "/contact-points/pd", nil, false); code != 202 {
			t.Fatalf("delete: %d %s", code, body)
		}
		if _, _, ok := s.ContactPoint("pd"); ok {
			t.Error("still there")
		}
		if s.SetContactPointProvenance("pd", ProvenanceFile) {
			t.Error("SetContactPointProvenance found a deleted contact point")
		}
	})
}
