package grafana

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/models"
)

// ruleFields says, for every field of a provisioned rule, how drift in it
// shows: a mutation diffRule must report, or why the field is not compared.
// A field the client grows and nobody decided about fails the test.
var ruleFields = map[string]func(r *models.ProvisionedAlertRule){
	"Annotations":  func(r *models.ProvisionedAlertRule) { r.Annotations["summary"] = "edited" },
	"Condition":    func(r *models.ProvisionedAlertRule) { r.Condition = ptr("B") },
	"Data":         func(r *models.ProvisionedAlertRule) { r.Data = r.Data[:2] },
	"ExecErrState": func(r *models.ProvisionedAlertRule) { r.ExecErrState = ptr("Error") },
	"FolderUID":    func(r *models.ProvisionedAlertRule) { r.FolderUID = ptr("elsewhere") },
	"For":          func(r *models.ProvisionedAlertRule) { d := strfmt.Duration(time.Hour); r.For = &d },
	"IsPaused":     func(r *models.ProvisionedAlertRule) { r.IsPaused = true },
	"KeepFiringFor": func(r *models.ProvisionedAlertRule) {
		r.KeepFiringFor = strfmt.Duration(time.Minute)
	},
	"Labels":                      func(r *models.ProvisionedAlertRule) { r.Labels["severity"] = "info" },
	"MissingSeriesEvalsToResolve": func(r *models.ProvisionedAlertRule) { r.MissingSeriesEvalsToResolve = 5 },
	"NoDataState":                 func(r *models.ProvisionedAlertRule) { r.NoDataState = ptr("NoData") },
	"NotificationSettings":        func(r *models.ProvisionedAlertRule) { r.NotificationSettings = nil },
	"OrgID":                       func(r *models.ProvisionedAlertRule) { r.OrgID = ptr(int64(7)) },
	"Record": func(r *models.ProvisionedAlertRule) {
		r.Record = &models.Record{From: ptr("A"), Metric: ptr("copy")}
	},
	"RuleGroup": func(r *models.ProvisionedAlertRule) { r.RuleGroup = ptr("other") },
	"Title":     func(r *models.ProvisionedAlertRule) { r.Title = ptr("renamed") },
	// Identity and bookkeeping: the uid is how rules are matched, the
	// id and update time are Grafana's.
	"ID": nil, "UID": nil, "Updated": nil,
	// Grafana stamps provenance on every rule of a group it writes: a
	// difference in it alone is a note (TestDisableProvenance), and the
	// group's next write changes it.
	"Provenance": nil,
}

// testRule is a desired rule as the builder makes it, in notification
// settings mode.
func testRule(t *testing.T) *models.ProvisionedAlertRule {
	t.Helper()
	cfg := loadConfig(t, "http://grafana.example.com:3000", "", "", map[string]string{})
	b, err := newBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b.regionGroup("eu-west-1").rules[0]
}

// copyRule is a deep copy that went through JSON, as a rule read back does.
func copyRule(t *testing.T, r *models.ProvisionedAlertRule) *models.ProvisionedAlertRule {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var c models.ProvisionedAlertRule
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestDiffRuleSeesEveryField(t *testing.T) {
	want := testRule(t)
	if d := diffRule(want, copyRule(t, want)); len(d) > 0 {
		t.Fatalf("a rule differs from its own copy: %v", d)
	}
	typ := reflect.TypeOf(models.ProvisionedAlertRule{})
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Name
		mutate, known := ruleFields[name]
		if !known {
			t.Errorf("field %s of ProvisionedAlertRule: add it to diffRule and ruleFields, or say why it is not compared", name)
			continue
		}
		if mutate == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			have := copyRule(t, want)
			mutate(have)
			if d := diffRule(want, have); len(d) == 0 {
				t.Errorf("drift in %s goes unnoticed", name)
			}
		})
	}
}

func TestDiffRuleSeesQueriesAndNotificationSettings(t *testing.T) {
	want := testRule(t)
	tests := []struct {
		name   string
		mutate func(r *models.ProvisionedAlertRule)
		says   string
	}{
		{"expr", func(r *models.ProvisionedAlertRule) { r.Data[0].Model.(map[string]any)["expr"] = "vector(1)" }, "expr"},
		{"datasource", func(r *models.ProvisionedAlertRule) { r.Data[0].DatasourceUID = "other" }, "datasource"},
		{"time range", func(r *models.ProvisionedAlertRule) { r.Data[0].RelativeTimeRange.From = 60 }, "relativeTimeRange"},
		{"query type", func(r *models.ProvisionedAlertRule) { r.Data[0].QueryType = "range" }, "model changed"},
		{"model", func(r *models.ProvisionedAlertRule) { r.Data[1].Model.(map[string]any)["reducer"] = "max" }, "model changed"},
		{"refId", func(r *models.ProvisionedAlertRule) { r.Data[2].RefID = "D" }, "refId"},
		{"receiver", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.Receiver = ptr("someone") }, "receiver"},
		{"group_by", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.GroupBy = []string{"alertname"} }, "group_by"},
		{"group_wait", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.GroupWait = "1h" }, "group_wait"},
		{"group_interval", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.GroupInterval = "1h" }, "group_interval"},
		{"repeat_interval", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.RepeatInterval = "1m" }, "repeat_interval"},
		{"mute", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.MuteTimeIntervals = []string{"night"} }, "time intervals"},
		{"active", func(r *models.ProvisionedAlertRule) { r.NotificationSettings.ActiveTimeIntervals = []string{"day"} }, "time intervals"},
		{"missing series", func(r *models.ProvisionedAlertRule) { r.MissingSeriesEvalsToResolve = 3 }, "missingSeriesEvalsToResolve 3 -> default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := copyRule(t, want)
			tt.mutate(have)
			d := strings.Join(diffRule(want, have), "; ")
			if !strings.Contains(d, tt.says) {
				t.Errorf("diff %q does not say %q", d, tt.says)
			}
		})
	}
}
