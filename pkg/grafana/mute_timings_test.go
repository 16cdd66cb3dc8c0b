package grafana

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

// maintWindow is the mute timing the policy tree in
// testdata/policy_tree_mute_timing.json names.
func maintWindow() *models.MuteTimeInterval {
	return &models.MuteTimeInterval{
		Name: "maint-window",
		TimeIntervals: []*models.TimeIntervalItem{{
			Times:    []*models.TimeIntervalTimeRange{{StartTime: "02:00", EndTime: "04:00"}},
			Weekdays: []string{"saturday"},
			Location: "UTC",
		}},
	}
}

// seedMutedTree gives the fake another team's policy tree: the receivers
// and the mute timing it names, then the tree itself, whose first route
// mutes its alerts in a maintenance window.
func seedMutedTree(t *testing.T, f *fixture) {
	t.Helper()
	c := f.srv.Client()
	for _, cp := range []*models.EmbeddedContactPoint{
		{UID: "pd-sre", Name: "pd-sre", Type: ptr("pagerduty"), Settings: map[string]any{"integrationKey": "sre-team-key"}},
		{UID: "team-b-slack", Name: "team-b-slack", Type: ptr("slack"), Settings: map[string]any{"url": "https://hooks.slack.example.com/b"}},
	} {
		if _, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(cp)); err != nil {
			t.Fatalf("contact point %s: %v", cp.Name, err)
		}
	}
	if err := f.srv.AddMuteTiming(maintWindow()); err != nil {
		t.Fatal(err)
	}
	tree, err := os.ReadFile("testdata/policy_tree_mute_timing.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetPolicyJSON(string(tree)); err != nil {
		t.Fatal(err)
	}
}

// assertMuteTimingsKept fails unless the foreign routes of the tree Grafana
// holds still name the mute timing where the fixture put it, and the
// timing itself is unchanged.
func assertMuteTimingsKept(t *testing.T, f *fixture) {
	t.Helper()
	others := mustParseTree(t, f.srv.PolicyJSON()).others()
	if len(others) != 2 {
		t.Fatalf("%d foreign routes, want 2:\n%s", len(others), f.srv.PolicyJSON())
	}
	var first struct {
		Mute   []string          `json:"mute_time_intervals"`
		Routes []json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(others[0], &first); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.Mute, []string{"maint-window"}) || len(first.Routes) != 1 {
		t.Errorf("foreign route lost its mute timing or child: %s", others[0])
	}
	if mt, ok := f.srv.MuteTiming("maint-window"); !ok || !reflect.DeepEqual(mt, maintWindow()) {
		t.Errorf("mute timing now %+v (stored %v)", mt, ok)
	}
}

// TestPolicyModeKeepsForeignMuteTimings: healthrouter's read-modify-write
// of the policy tree carries another team's routes through every write with
// their mute timings, which Grafana checks against the ones it stores.
func TestPolicyModeKeepsForeignMuteTimings(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
	seedMutedTree(t, f)
	assertRouteCycleKeepsOthers(t, f, 2, func() { assertMuteTimingsKept(t, f) })
}
