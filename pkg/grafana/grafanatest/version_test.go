package grafanatest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// Grafana before 11.5.2 fails (500) a group write that creates a rule with
// a uid the client chose; a rule without one, or one it holds, is fine.
// From 11.5.2 the uid is taken.
func TestGroupWriteWithNewUIDByVersion(t *testing.T) {
	tests := []struct {
		version string
		want    int
	}{
		{DefaultVersion, http.StatusOK},
		{"11.5.2", http.StatusOK},
		{"12.0.0-pre", http.StatusOK},
		{"11.5.1+security-01", http.StatusInternalServerError},
		{"10.4.3", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			s, _ := setup(t)
			s.SetVersion(tt.version)
			resp, err := s.HTTPClient().Get(s.URL + "/api/health")
			if err != nil {
				t.Fatal(err)
			}
			var health struct{ Version string }
			err = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil || health.Version != tt.version {
				t.Errorf("health: %d %v %+v, want version %s", resp.StatusCode, err, health, tt.version)
			}
			if code, body := putGroup(t, s, "g", false, validRule("", "", "no uid")); code != http.StatusOK {
				t.Fatalf("a rule without uid: %d %s", code, body)
			}
			if code, body := putGroup(t, s, "g", false, validRule("chosen", "", "chosen")); code != tt.want {
				t.Fatalf("a rule with a new uid: %d %s, want %d", code, body, tt.want)
			}
			postRule(t, s, validRule("held", "g", "held"))
			if code, body := putGroup(t, s, "g", false, validRule("held", "", "held, renamed")); code != http.StatusOK {
				t.Errorf("a rule it holds: %d %s", code, body)
			}
		})
	}
}
