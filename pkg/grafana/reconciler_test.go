package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
	"github.com/healthrouter/healthrouter/pkg/internal/fakeclock"
)

const folder = "healthrouter"

func TestFirstApplyCreatesEverything(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	p := f.apply(t, regions("eu-west-1", "us-east-1"))

	var kinds []string
	for _, c := range p.Changes {
		if c.Action != actionCreate {
			t.Errorf("first apply: %s %s %s, want only creates", c.Action, c.Kind, c.Name)
		}
		kinds = append(kinds, c.Kind+" "+c.Name)
	}
	want := []string{
		"folder healthrouter",
		"contact_point healthrouter-default", "contact_point healthrouter-storage",
		"rule_group healthrouter-pipeline", "rule_group eu-west-1", "rule_group us-east-1",
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("changes:\n got %q\nwant %q", kinds, want)
	}
	if !f.srv.FolderExists(folder) {
		t.Fatal("folder not created")
	}
	if got, want := f.srv.GroupNames(folder), []string{"eu-west-1", PipelineGroup, "us-east-1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups %q, want %q", got, want)
	}
	interval, uids, _ := f.srv.Group(folder, "eu-west-1")
	if interval != 60 {
		t.Errorf("group interval %d, want 60", interval)
	}
	if want := []string{"hr-hostr1-eu-west-1", "hr-host-eu-west-1", "hr-regionr1-eu-west-1", "hr-region-eu-west-1"}; !reflect.DeepEqual(uids, want) {
		t.Errorf("eu-west-1 rules %q, want %q", uids, want)
	}

	tests := []struct {
		uid         string
		receiver    string
		labels      map[string]string
		noData      string
		execErr     string
		forDur      time.Duration
		exprHas     []string
		exprHasNot  []string
		threshold   float64
		annotations []string
	}{
		{
			uid: "hr-host-eu-west-1", receiver: "healthrouter-default",
			labels: map[string]string{"managed_by": "healthrouter", "level": "host", "region": "eu-west-1"},
			noData: "OK", execErr: "KeepLast", forDur: 2 * time.Minute,
			exprHas: []string{`max by (region, host, check, severity)`, `healthrouter_alert{level="host", region="eu-west-1"`,
				`severity=~"critical|error|warning"`,
				`unless (healthrouter_alert{level="host", region="eu-west-1", severity=~"critical|error|warning"} and on (region, host, check) healthrouter_alert_team{level="host", region="eu-west-1", team="storage"})`},
			annotations: []string{"summary", "description", "explain_url", "region_url"},
		},
		{
			uid: "hr-hostr1-eu-west-1", receiver: "healthrouter-storage",
			labels: map[string]string{"managed_by": "healthrouter", "level": "host", "region": "eu-west-1", "team": "storage"},
			noData: "OK", execErr: "KeepLast", forDur: 2 * time.Minute,
			exprHas: []string{`and on (region, host, check) healthrouter_alert_team{level="host", region="eu-west-1", team="storage"}`}, exprHasNot: []string{`unless`},
		},
		{
			uid: "hr-region-eu-west-1", receiver: "healthrouter-default",
			labels: map[string]string{"managed_by": "healthrouter", "level": "region", "region": "eu-west-1"},
			noData: "OK", execErr: "KeepLast", forDur: time.Minute,
			exprHas: []string{`max by (region, check, severity)`, `healthrouter_alert{level="region", region="eu-west-1"`},
		},
		{
			uid: "hr-watchdog-healthrouter", receiver: "healthrouter-default",
			labels: map[string]string{"managed_by": "healthrouter", "level": "pipeline", "check": "watchdog", "severity": "critical"},
			noData: "Alerting", execErr: "Alerting", forDur: 2 * time.Minute,
			exprHas: []string{`time() - max(healthrouter_last_event_timestamp_seconds)`}, threshold: 300,
		},
	}
	for _, tt := range tests {
		t.Run(tt.uid, func(t *testing.T) {
			r, ok := f.srv.Rule(tt.uid)
			if !ok {
				t.Fatal("rule missing")
			}
			if got := s(r.NotificationSettings.Receiver); got != tt.receiver {
				t.Errorf("receiver %s, want %s", got, tt.receiver)
			}
			if !reflect.DeepEqual(r.Labels, tt.labels) {
				t.Errorf("labels %v, want %v", r.Labels, tt.labels)
			}
			if s(r.NoDataState) != tt.noData || s(r.ExecErrState) != tt.execErr {
				t.Errorf("states %s/%s, want %s/%s", s(r.NoDataState), s(r.ExecErrState), tt.noData, tt.execErr)
			}
			if got := dur(r.For); got != tt.forDur {
				t.Errorf("for %s, want %s", got, tt.forDur)
			}
			if r.Provenance != "api" {
				t.Errorf("provenance %q, want api", r.Provenance)
			}
			if s(r.Condition) != "C" || len(r.Data) != 3 {
				t.Fatalf("condition %s with %d queries, want C over A, B, C", s(r.Condition), len(r.Data))
			}
			a := r.Data[0]
			if a.DatasourceUID != "prometheus" || timeRange(a.RelativeTimeRange) != [2]int64{600, 0} {
				t.Errorf("query A on %s over %v, want prometheus over [600 0]", a.DatasourceUID, timeRange(a.RelativeTimeRange))
			}
			model := a.Model.(map[string]any)
			if model["instant"] != true {
				t.Error("query A is not instant")
			}
			expr := model["expr"].(string)
			for _, sub := range tt.exprHas {
				if !strings.Contains(expr, sub) {
					t.Errorf("expr %s\nlacks %s", expr, sub)
				}
			}
			for _, sub := range tt.exprHasNot {
				if strings.Contains(expr, sub) {
					t.Errorf("expr %s\nhas %s", expr, sub)
				}
			}
			cond := r.Data[2].Model.(map[string]any)["conditions"].([]any)[0].(map[string]any)["evaluator"].(map[string]any)
			if cond["type"] != "gt" || cond["params"].([]any)[0] != tt.threshold {
				t.Errorf("threshold %v, want gt %v", cond, tt.threshold)
			}
			for _, k := range tt.annotations {
				if r.Annotations[k] == "" {
					t.Errorf("annotation %s missing", k)
				}
			}
		})
	}

	for uid, key := range map[string]string{"hr-pd-default": keyDefault, "hr-pd-storage": keyStorage} {
		cp, stored, ok := f.srv.ContactPoint(uid)
		if !ok {
			t.Fatalf("contact point %s missing", uid)
		}
		if stored != key {
			t.Errorf("%s holds the wrong routing key", uid)
		}
		settings := cp.Settings.(map[string]any)
		if settings[keyFingerprintSetting] != fingerprintOf(key) {
			t.Errorf("%s: fingerprint %v, want %s", uid, settings[keyFingerprintSetting], fingerprintOf(key))
		}
		if settings["group"] != `{{ or .CommonLabels.region "healthrouter" }}` || settings["client"] != "healthrouter" ||
			settings["client_url"] != `{{ or .CommonAnnotations.explain_url .CommonAnnotations.status_url .ExternalURL }}` {
			t.Errorf("%s: PagerDuty field mapping: %v", uid, settings)
		}
		if cp.Provenance != "api" {
			t.Errorf("%s: provenance %q", uid, cp.Provenance)
		}
	}
	if tree, _ := f.srv.Policy(); len(tree.Routes) != 0 {
		t.Errorf("notification_settings mode touched the policy tree: %+v", tree)
	}

	if got := f.metricValue(t, "healthrouter_grafana_writes_total", map[string]string{"kind": "rule_group", "action": "create"}); got != 3 {
		t.Errorf("rule group creates counted %v, want 3", got)
	}
	if got := f.metricValue(t, "healthrouter_grafana_reconcile_total", map[string]string{"result": "applied"}); got != 1 {
		t.Errorf("applied reconciles %v, want 1", got)
	}
	if got := f.metricValue(t, "healthrouter_grafana_up", nil); got != 1 {
		t.Errorf("healthrouter_grafana_up %v, want 1", got)
	}
	st := f.r.Status()
	if !st.Healthy || !st.LastSuccess.Equal(t0) || !st.RulesSince.Equal(t0) || !st.FirstAttempt.Equal(t0) ||
		!st.UnreachableSince.IsZero() || st.ConsecutiveFailures != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestSecondApplySendsNoWrite(t *testing.T) {
	for _, mode := range []string{"notification_settings", "policy"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: "routing: " + mode})
			rs := regions("eu-west-1", "us-east-1", "ap-south-1")
			f.apply(t, rs)
			f.assertNoWrites(t, rs)
			p, err := f.r.Plan(context.Background(), rs)
			if err != nil || !p.Empty() {
				t.Fatalf("plan after apply: %v\n%s", err, p)
			}
			if got := f.metricValue(t, "healthrouter_grafana_reconcile_total", map[string]string{"result": "noop"}); got != 1 {
				t.Errorf("noop reconciles %v, want 1", got)
			}
		})
	}
}

// editRule changes a stored rule the way a person in Grafana's UI would.
func editRule(t *testing.T, srv *grafanatest.Server, uid string, edit func(*models.ProvisionedAlertRule)) {
	t.Helper()
	c := srv.Client()
	got, err := c.Provisioning.GetAlertRule(uid)
	if err != nil {
		t.Fatal(err)
	}
	rule := got.Payload
	edit(rule)
	if _, err := c.Provisioning.PutAlertRule(provisioning.NewPutAlertRuleParams().WithUID(uid).WithBody(rule)); err != nil {
		t.Fatalf("edit %s: %v", uid, err)
	}
}

func TestManagedDriftIsRestored(t *testing.T) {
	rs := regions("eu-west-1")
	tests := []struct {
		name   string
		drift  func(t *testing.T, srv *grafanatest.Server)
		change string // kind and name of the one change that repairs it
		check  func(t *testing.T, srv *grafanatest.Server)
	}{
		{
			name: "title edited",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				editRule(t, srv, "hr-host-eu-west-1", func(r *models.ProvisionedAlertRule) { r.Title = ptr("my title") })
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if r, _ := srv.Rule("hr-host-eu-west-1"); s(r.Title) != "eu-west-1: host failing checks" {
					t.Errorf("title %q not restored", s(r.Title))
				}
			},
		},
		{
			name: "query edited and rule paused",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				editRule(t, srv, "hr-region-eu-west-1", func(r *models.ProvisionedAlertRule) {
					r.Data[0].Model.(map[string]any)["expr"] = "vector(1)"
					r.IsPaused = true
				})
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				r, _ := srv.Rule("hr-region-eu-west-1")
				if r.IsPaused || !strings.Contains(r.Data[0].Model.(map[string]any)["expr"].(string), "healthrouter_alert") {
					t.Error("query or pause not restored")
				}
			},
		},
		{
			name: "missing series evaluations edited",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				editRule(t, srv, "hr-host-eu-west-1", func(r *models.ProvisionedAlertRule) { r.MissingSeriesEvalsToResolve = 10 })
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if r, _ := srv.Rule("hr-host-eu-west-1"); r.MissingSeriesEvalsToResolve != 0 {
					t.Errorf("missingSeriesEvalsToResolve %d not restored", r.MissingSeriesEvalsToResolve)
				}
			},
		},
		{
			name: "pending period and label edited",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				editRule(t, srv, "hr-watchdog-healthrouter", func(r *models.ProvisionedAlertRule) {
					d := strfmt.Duration(time.Hour)
					r.For = &d
					delete(r.Labels, "severity")
				})
			},
			change: "rule_group " + PipelineGroup,
			check: func(t *testing.T, srv *grafanatest.Server) {
				if r, _ := srv.Rule("hr-watchdog-healthrouter"); dur(r.For) != 2*time.Minute || r.Labels["severity"] != "critical" {
					t.Errorf("for %s, labels %v not restored", dur(r.For), r.Labels)
				}
			},
		},
		{
			name: "rule deleted",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				if _, err := srv.Client().Provisioning.DeleteAlertRule(provisioning.NewDeleteAlertRuleParams().WithUID("hr-host-eu-west-1")); err != nil {
					t.Fatal(err)
				}
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if _, ok := srv.Rule("hr-host-eu-west-1"); !ok {
					t.Error("deleted rule not recreated")
				}
			},
		},
		{
			name: "rule moved to another group",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				editRule(t, srv, "hr-host-eu-west-1", func(r *models.ProvisionedAlertRule) { r.RuleGroup = ptr("elsewhere") })
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if r, _ := srv.Rule("hr-host-eu-west-1"); s(r.RuleGroup) != "eu-west-1" {
					t.Errorf("rule left in %s", s(r.RuleGroup))
				}
				if _, _, ok := srv.Group(folder, "elsewhere"); ok {
					t.Error("the group it was moved to still exists")
				}
			},
		},
		{
			name: "group interval changed",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				p := provisioning.NewPutAlertRuleGroupParams().WithFolderUID(folder).WithGroup("eu-west-1").
					WithBody(&models.AlertRuleGroup{Interval: 300})
				if _, err := srv.Client().Provisioning.PutAlertRuleGroup(p); err != nil {
					t.Fatal(err)
				}
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if iv, _, _ := srv.Group(folder, "eu-west-1"); iv != 60 {
					t.Errorf("interval %d not restored", iv)
				}
			},
		},
		{
			name: "stale managed rule added to the group",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				r, _ := srv.Rule("hr-host-eu-west-1")
				r.UID, r.Title = "hr-host-old", ptr("old rule")
				if _, err := srv.Client().Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r)); err != nil {
					t.Fatal(err)
				}
			},
			change: "rule_group eu-west-1",
			check: func(t *testing.T, srv *grafanatest.Server) {
				if _, ok := srv.Rule("hr-host-old"); ok {
					t.Error("stale managed rule kept")
				}
			},
		},
		{
			name: "contact point settings edited",
			drift: func(t *testing.T, srv *grafanatest.Server) {
				cp, _, _ := srv.ContactPoint("hr-pd-storage")
				cp.Settings.(map[string]any)["severity"] = "warning"
				cp.Settings.(map[string]any)["integrationKey"] = "[REDACTED]"
				if _, err := srv.Client().Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID(cp.UID).WithBody(&cp)); err != nil {
					t.Fatal(err)
				}
			},
			change: "contact_point healthrouter-storage",
			check: func(t *testing.T, srv *grafanatest.Server) {
				cp, key, _ := srv.ContactPoint("hr-pd-storage")
				if cp.Settings.(map[string]any)["severity"] != `{{ or .CommonLabels.severity "critical" }}` || key != keyStorage {
					t.Errorf("settings %v not restored or key lost", cp.Settings)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.apply(t, rs)
			tt.drift(t, f.srv)
			p := f.apply(t, rs)
			if len(p.Changes) != 1 || p.Changes[0].Kind+" "+p.Changes[0].Name != tt.change {
				t.Fatalf("repair:\n%s\nwant one change to %s", p, tt.change)
			}
			tt.check(t, f.srv)
			f.assertNoWrites(t, rs)
		})
	}
}

// humanObjects creates objects healthrouter does not manage, in and around
// its folder, the way people and other tools do.
func humanObjects(t *testing.T, srv *grafanatest.Server) {
	t.Helper()
	c := srv.Client()
	for _, f := range []struct{ uid, title string }{{"team-b", "Team B"}, {folder, "Health checks"}} {
		if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: f.uid, Title: f.title}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(&models.EmbeddedContactPoint{
		UID: "team-b-slack", Name: "team-b-slack", Type: ptr("slack"),
		Settings: map[string]any{"url": "https://hooks.slack.example.com/secret", "recipient": "#team-b"},
	})); err != nil {
		t.Fatal(err)
	}
	tree := &models.Route{
		Receiver: grafanatest.DefaultReceiver, GroupBy: []string{"grafana_folder", "alertname"},
		Routes: []*models.Route{
			{Receiver: "team-b-slack", ObjectMatchers: models.ObjectMatchers{{"team", "=", "b"}},
				Routes: []*models.Route{{Receiver: grafanatest.DefaultReceiver, ObjectMatchers: models.ObjectMatchers{{"severity", "=", "info"}}}}},
			{Receiver: grafanatest.DefaultReceiver, ObjectMatchers: models.ObjectMatchers{{"env", "=~", "dev|test"}}, Continue: true},
		},
	}
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
		t.Fatal(err)
	}
	rule := func(uid, folderUID, group, title string) *models.ProvisionedAlertRule {
		d := strfmt.Duration(5 * time.Minute)
		return &models.ProvisionedAlertRule{
			UID: uid, OrgID: ptr(int64(1)), FolderUID: ptr(folderUID), RuleGroup: ptr(group), Title: ptr(title),
			Condition: ptr("B"), For: &d, NoDataState: ptr("NoData"), ExecErrState: ptr("Error"),
			Labels: map[string]string{"team": "b"},
			Data: []*models.AlertQuery{
				{RefID: "A", DatasourceUID: "prometheus", RelativeTimeRange: &models.RelativeTimeRange{From: 300},
					Model: map[string]any{"refId": "A", "expr": "up == 0", "instant": true}},
				{RefID: "B", DatasourceUID: "__expr__", Model: map[string]any{"refId": "B", "type": "threshold", "expression": "A",
					"conditions": []any{map[string]any{"evaluator": map[string]any{"type": "gt", "params": []any{0}}}}}},
			},
		}
	}
	for _, r := range []*models.ProvisionedAlertRule{
		rule("team-b-down", "team-b", "team-b", "Team B target down"),
		rule("human-in-our-group", folder, "eu-west-1", "Someone's rule in a region group"),
		rule("human-own-group", folder, "custom", "Someone's rule in healthrouter's folder"),
	} {
		if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r)); err != nil {
			t.Fatal(err)
		}
	}
}

func ruleJSONOf(t *testing.T, srv *grafanatest.Server, uid string) string {
	t.Helper()
	r, ok := srv.Rule(uid)
	if !ok {
		t.Fatalf("rule %s is gone", uid)
	}
	b, _ := json.Marshal(r)
	return string(b)
}

func TestUnmanagedObjectsAreUntouched(t *testing.T) {
	for _, mode := range []string{"notification_settings", "policy"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: "routing: " + mode})
			humanObjects(t, f.srv)
			before := map[string]string{}
			for _, uid := range []string{"team-b-down", "human-own-group", "human-in-our-group"} {
				before[uid] = ruleJSONOf(t, f.srv, uid)
			}
			cpBefore, keyBefore, _ := f.srv.ContactPoint("team-b-slack")
			treeBefore, _ := f.srv.Policy()

			rs := regions("eu-west-1")
			p := f.apply(t, rs)
			for _, c := range p.Changes {
				if c.Kind == kindFolder {
					t.Errorf("recreated the existing folder: %+v", c)
				}
			}
			for _, uid := range []string{"team-b-down", "human-own-group"} {
				if got := ruleJSONOf(t, f.srv, uid); got != before[uid] {
					t.Errorf("%s changed:\n%s\n%s", uid, before[uid], got)
				}
			}
			// A rule sharing a region's group goes along with the group's
			// whole-group write: it must come through unchanged.
			var was, is models.ProvisionedAlertRule
			_ = json.Unmarshal([]byte(before["human-in-our-group"]), &was)
			_ = json.Unmarshal([]byte(ruleJSONOf(t, f.srv, "human-in-our-group")), &is)
			if d := diffRule(&was, &is); len(d) > 0 {
				t.Errorf("rule in a region's group changed: %v", d)
			}
			cpAfter, keyAfter, _ := f.srv.ContactPoint("team-b-slack")
			if !reflect.DeepEqual(cpBefore, cpAfter) || keyAfter != keyBefore {
				t.Errorf("contact point team-b-slack changed: %+v -> %+v", cpBefore, cpAfter)
			}
			treeAfter, _ := f.srv.Policy()
			var others []*models.Route
			for _, r := range treeAfter.Routes {
				if !isManagedRoute(r) {
					others = append(others, r)
				}
			}
			if len(others) != len(treeBefore.Routes) {
				t.Fatalf("policy tree has %d other routes, want %d", len(others), len(treeBefore.Routes))
			}
			for i := range others {
				if !sameRoute(others[i], treeBefore.Routes[i]) {
					t.Errorf("route %d changed: %+v -> %+v", i, treeBefore.Routes[i], others[i])
				}
			}
			if treeAfter.Receiver != treeBefore.Receiver || !sameSet(treeAfter.GroupBy, treeBefore.GroupBy) {
				t.Errorf("root policy changed: %+v", treeAfter)
			}
			f.assertNoWrites(t, rs)
		})
	}
}

func TestNewRegionGetsItsGroup(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.apply(t, regions("eu-west-1"))
	f.srv.ResetLog()
	p := f.apply(t, regions("eu-west-1", "ap-south-1"))
	if len(p.Changes) != 1 || p.Changes[0].Name != "ap-south-1" || p.Changes[0].Action != actionCreate {
		t.Fatalf("plan:\n%s", p)
	}
	if n := f.srv.CountWrites("PUT", "/v1/provisioning/folder/healthrouter/rule-groups/ap-south-1"); n != 1 || f.srv.Writes() != 1 {
		t.Errorf("writes: %d total, %d to the new group; want exactly the new group's", f.srv.Writes(), n)
	}
}

// assertWholeGroups fails when a group healthrouter manages holds anything
// but exactly its desired rules: the mark of a half-written apply.
func assertWholeGroups(t *testing.T, f *fixture, rs []Region) {
	t.Helper()
	b, _ := newBuilder(f.cfg)
	d := b.build(rs, f.clk.Now())
	for _, g := range d.groups {
		_, uids, ok := f.srv.Group(folder, g.name)
		if !ok {
			continue
		}
		var want []string
		for _, r := range g.rules {
			want = append(want, r.UID)
		}
		if !reflect.DeepEqual(uids, want) {
			t.Errorf("group %s holds %q, want all of %q or nothing", g.name, uids, want)
		}
	}
}

func TestFailedApplyLeavesNothingHalfWritten(t *testing.T) {
	rs := regions("eu-west-1", "us-east-1")
	clean := newFixture(t, fixtureOpts{})
	clean.apply(t, rs)
	writes := clean.srv.Writes()
	if writes != 6 {
		t.Fatalf("a first apply makes %d writes, expected 6", writes)
	}
	type fault struct {
		name   string
		inject func(srv *grafanatest.Server, n int)
		// unreachable: the failure says Grafana is not answering.
		unreachable bool
	}
	faults := []fault{
		// A 500 to a write is Grafana answering (a refusal it words so);
		// 502-504 are a proxy saying it is not there.
		{"500", func(srv *grafanatest.Server, n int) { srv.FailWrite(n, 500) }, false},
		{"503", func(srv *grafanatest.Server, n int) { srv.FailWrite(n, 503) }, true},
		{"400", func(srv *grafanatest.Server, n int) { srv.FailWrite(n, 400) }, false},
		{"timeout after applying", func(srv *grafanatest.Server, n int) { srv.HangWrite(n, time.Minute) }, true},
	}
	for _, ft := range faults {
		for n := 1; n <= writes; n++ {
			t.Run(ft.name+"/write "+strconv.Itoa(n), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, fixtureOpts{httpTimeout: 3 * time.Second})
				ft.inject(f.srv, n)
				done, err := f.r.Apply(context.Background(), rs)
				if err == nil {
					t.Fatal("apply succeeded through a failed write")
				}
				if got := isUnreachable(err); got != ft.unreachable {
					t.Errorf("unreachable=%v for %v", got, err)
				}
				if len(done.Changes) >= writes {
					t.Errorf("apply reports %d changes made despite the failure", len(done.Changes))
				}
				assertWholeGroups(t, f, rs)
				f.apply(t, rs)
				assertWholeGroups(t, f, rs)
				f.assertNoWrites(t, rs)
			})
		}
	}
}

func TestGrafanaUnreachable(t *testing.T) {
	rs := regions("eu-west-1")
	t.Run("5xx", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.srv.FailAll(503)
		_, err := f.r.Apply(context.Background(), rs)
		var ce *callError
		if !errors.As(err, &ce) || ce.Status != 503 || !ce.Unreachable() {
			t.Fatalf("error %v, want a 503 callError", err)
		}
		st := f.r.Status()
		if st.Healthy || !st.UnreachableSince.Equal(t0) || !st.ReachableSince.IsZero() ||
			st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, "503") {
			t.Errorf("status %+v", st)
		}
		if f.metricValue(t, "healthrouter_grafana_up", nil) != 0 ||
			f.metricValue(t, "healthrouter_grafana_reconcile_total", map[string]string{"result": "error"}) != 1 {
			t.Error("metrics do not show the failure")
		}
		f.clk.Advance(time.Minute)
		if _, err := f.r.Apply(context.Background(), rs); err == nil {
			t.Fatal("second attempt succeeded while Grafana is down")
		}
		if st := f.r.Status(); !st.UnreachableSince.Equal(t0) || st.ConsecutiveFailures != 2 {
			t.Errorf("status after a second failure %+v: UnreachableSince must stay at the first", st)
		}
		f.srv.FailAll(0)
		f.clk.Advance(time.Minute)
		back := f.clk.Now()
		f.apply(t, rs)
		st = f.r.Status()
		if !st.Healthy || !st.UnreachableSince.IsZero() || !st.ReachableSince.Equal(back) ||
			st.ConsecutiveFailures != 0 || st.LastError != "" {
			t.Errorf("status after recovery %+v, want reachable since %v", st, back)
		}
		// Reachable since the first answer after the outage, not the latest.
		f.clk.Advance(time.Minute)
		f.apply(t, rs)
		if st := f.r.Status(); !st.ReachableSince.Equal(back) {
			t.Errorf("reachable since %v after a second answer, want %v", st.ReachableSince, back)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{httpTimeout: 3 * time.Second})
		f.srv.SetDelay(time.Minute)
		_, err := f.r.Apply(context.Background(), rs)
		if !isUnreachable(err) || f.r.Status().UnreachableSince.IsZero() {
			t.Fatalf("timeout: %v, status %+v", err, f.r.Status())
		}
		f.srv.SetDelay(0)
		f.apply(t, rs)
		f.assertNoWrites(t, rs)
	})
	t.Run("4xx is reachable", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		env := testEnv(f.srv)
		env["HEALTHROUTER_GRAFANA_TOKEN"] = "wrong-token-wrong-token"
		f.cfg = loadConfig(t, f.srv.URL, "", "", env)
		f.r = f.newReconciler(t, fixtureOpts{})
		_, err := f.r.Apply(context.Background(), rs)
		var ce *callError
		if !errors.As(err, &ce) || ce.Status != 401 {
			t.Fatalf("error %v, want 401", err)
		}
		if st := f.r.Status(); !st.UnreachableSince.IsZero() || st.ReachableSince.IsZero() || st.Healthy {
			t.Errorf("a 401 means Grafana answers but provisioning is broken: status %+v", st)
		}
	})
}

func TestPruning(t *testing.T) {
	day := 24 * time.Hour
	// seen is a region and how long before the second apply it was last
	// seen; unknown leaves its last-seen time zero.
	type seen struct {
		name    string
		age     time.Duration
		unknown bool
	}
	tests := []struct {
		name    string
		prune   bool
		advance time.Duration
		second  []seen
		kept    bool
		note    string
	}{
		{"off: stale region kept", false, 0, []seen{{"eu", 0, false}, {"ap", 30 * day, false}}, true, ""},
		{"off: region missing from the source kept past prune_after of uptime", false, 8 * day, []seen{{"eu", 0, false}}, true, ""},
		{"on: region not seen for prune_after deleted", true, 0, []seen{{"eu", 0, false}, {"ap", 8 * day, false}}, false, ""},
		{"on: region seen within prune_after kept", true, 0, []seen{{"eu", 0, false}, {"ap", 6 * day, false}}, true, ""},
		{"on: unknown last-seen kept", true, 0, []seen{{"eu", 0, false}, {"ap", 0, true}}, true, ""},
		{"on: missing region kept until prune_after of uptime", true, 6 * day, []seen{{"eu", 0, false}}, true, "not seen since healthrouter started"},
		{"on: missing region deleted after prune_after of uptime", true, 8 * day, []seen{{"eu", 0, false}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// prune_after is set in both modes so that the "off" cases that
			// advance past it tell "prune off" from "not yet due".
			extra := "prune: " + strconv.FormatBool(tt.prune) + "\nprune_after: 168h"
			f := newFixture(t, fixtureOpts{grafana: extra})
			f.apply(t, regions("eu", "ap"))
			f.clk.Advance(tt.advance)
			var second []Region
			for _, r := range tt.second {
				reg := Region{Name: r.name, LastSeen: f.clk.Now().Add(-r.age)}
				if r.unknown {
					reg.LastSeen = time.Time{}
				}
				second = append(second, reg)
			}
			p := f.apply(t, second)
			_, _, kept := f.srv.Group(folder, "ap")
			if kept != tt.kept {
				t.Fatalf("group ap kept=%v, want %v\n%s", kept, tt.kept, p)
			}
			if _, _, ok := f.srv.Group(folder, "eu"); !ok {
				t.Fatal("group eu lost")
			}
			if tt.note != "" && !strings.Contains(p.String(), tt.note) {
				t.Errorf("plan lacks a note %q:\n%s", tt.note, p)
			}
			if !tt.kept {
				if len(p.Changes) != 1 || p.Changes[0].Action != actionDelete || p.Changes[0].Name != "ap" {
					t.Errorf("plan:\n%s", p)
				}
			}
			f.assertNoWrites(t, second)
		})
	}
}

func TestPruneKeepsOthersRulesInTheGroup(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "prune: true\nprune_after: 24h"})
	f.apply(t, regions("eu", "ap"))
	r, _ := f.srv.Rule("hr-host-ap")
	r.UID, r.Title, r.Labels = "someone", ptr("someone's rule"), map[string]string{"team": "x"}
	r.NotificationSettings = nil
	if _, err := f.srv.Client().Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r)); err != nil {
		t.Fatal(err)
	}
	f.apply(t, []Region{{Name: "eu", LastSeen: t0}, {Name: "ap", LastSeen: t0.Add(-48 * time.Hour)}})
	_, uids, ok := f.srv.Group(folder, "ap")
	if !ok || !reflect.DeepEqual(uids, []string{"someone"}) {
		t.Fatalf("group ap holds %q, want only someone's rule", uids)
	}
}

func TestPolicyRouting(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
	humanObjects(t, f.srv)
	rs := regions("eu-west-1")
	f.apply(t, rs)

	tree, _ := f.srv.Policy()
	if len(tree.Routes) != 3 || !isManagedRoute(tree.Routes[0]) {
		t.Fatalf("healthrouter's route is not the first of 3: %+v", tree.Routes)
	}
	b, _ := newBuilder(f.cfg)
	if !sameRoute(tree.Routes[0], b.policyRoute()) {
		t.Errorf("route %+v", tree.Routes[0])
	}
	ours := tree.Routes[0]
	if ours.Receiver != "healthrouter-default" || len(ours.Routes) != 1 || ours.Routes[0].Receiver != "healthrouter-storage" {
		t.Errorf("route targets: %+v", ours)
	}
	_, uids, _ := f.srv.Group(folder, "eu-west-1")
	if !reflect.DeepEqual(uids, []string{"hr-host-eu-west-1", "hr-region-eu-west-1", "human-in-our-group"}) {
		t.Errorf("policy mode rules %q: one host and one region rule per region", uids)
	}
	for _, uid := range uids[:2] {
		if r, _ := f.srv.Rule(uid); r.NotificationSettings != nil {
			t.Errorf("%s has notification settings in policy mode", uid)
		}
	}
	f.assertNoWrites(t, rs)

	// Someone edits healthrouter's route and adds one of their own.
	c := f.srv.Client()
	got, _ := c.Provisioning.GetPolicyTree()
	edited := got.Payload
	edited.Routes[0].Receiver = grafanatest.DefaultReceiver
	edited.Routes = append(edited.Routes, &models.Route{Receiver: "team-b-slack", ObjectMatchers: models.ObjectMatchers{{"team", "=", "c"}}})
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(edited)); err != nil {
		t.Fatal(err)
	}
	f.srv.ResetLog()
	p := f.apply(t, rs)
	if len(p.Changes) != 1 || p.Changes[0].Kind != kindPolicy || p.Changes[0].Action != actionUpdate {
		t.Fatalf("plan:\n%s", p)
	}
	if n := f.srv.CountWrites("PUT", "/v1/provisioning/policies"); n != 1 {
		t.Errorf("%d policy writes, want 1", n)
	}
	tree, _ = f.srv.Policy()
	if len(tree.Routes) != 4 || !sameRoute(tree.Routes[0], b.policyRoute()) || tree.Routes[3].ObjectMatchers[0][2] != "c" {
		t.Fatalf("tree after repair: %+v", tree.Routes)
	}
	f.assertNoWrites(t, rs)

	// Back to notification settings: the route goes, everything else stays.
	f.cfg = loadConfig(t, f.srv.URL, "routing: notification_settings", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p = f.apply(t, rs)
	tree, _ = f.srv.Policy()
	if len(managedRoutes(tree)) != 0 || len(tree.Routes) != 3 {
		t.Fatalf("tree after switching back: %+v\n%s", tree.Routes, p)
	}
	f.assertNoWrites(t, rs)
}

func TestDisableProvenance(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "disable_provenance: true\nrouting: policy"})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	assertProvenance := func(t *testing.T, want string) {
		t.Helper()
		for _, uid := range []string{"hr-host-eu-west-1", "hr-watchdog-healthrouter"} {
			if r, _ := f.srv.Rule(uid); string(r.Provenance) != want {
				t.Errorf("rule %s provenance %q, want %q", uid, r.Provenance, want)
			}
		}
		for _, uid := range []string{"hr-pd-default", "hr-pd-storage"} {
			if cp, _, _ := f.srv.ContactPoint(uid); cp.Provenance != want {
				t.Errorf("contact point %s provenance %q, want %q", uid, cp.Provenance, want)
			}
		}
		if _, prov := f.srv.Policy(); prov != want {
			t.Errorf("policy provenance %q, want %q", prov, want)
		}
	}
	assertProvenance(t, "")
	f.assertNoWrites(t, rs)

	// Turning provenance back on re-marks contact points and the policy
	// tree (none -> api is allowed). Grafana stamps provenance on every
	// rule of a group it writes, but no group is written for provenance
	// alone: rules keep theirs until their group's next write, with a note.
	f.cfg = loadConfig(t, f.srv.URL, "routing: policy", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p := f.apply(t, rs)
	for _, want := range []string{"~ contact point healthrouter-default", "~ contact point healthrouter-storage", "~ policy route",
		`provenance "" -> "api"`, `note: rule hr-host-eu-west-1 has provenance "", not "api"`} {
		if !strings.Contains(p.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, p)
		}
	}
	for _, c := range p.Changes {
		if c.Kind == kindRuleGroup {
			t.Errorf("a group written for provenance alone: %+v", c)
		}
	}
	if r, _ := f.srv.Rule("hr-host-eu-west-1"); r.Provenance != "" {
		t.Errorf("unchanged rule's provenance %q, want it kept", r.Provenance)
	}
	f.assertNoWrites(t, rs)
	// The next write of a group marks its rules.
	f.cfg = loadConfig(t, f.srv.URL, "routing: policy\nwatchdog_no_events: 10m", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	f.apply(t, rs)
	if r, _ := f.srv.Rule("hr-watchdog-healthrouter"); r.Provenance != "api" {
		t.Errorf("changed rule's provenance %q, want api", r.Provenance)
	}
	if r, _ := f.srv.Rule("hr-host-eu-west-1"); r.Provenance != "" {
		t.Errorf("provenance %q of a rule whose group was not written, want it kept", r.Provenance)
	}
	f.assertNoWrites(t, rs)

	// Turning it off again: Grafana refuses api -> none for contact points
	// and the policy tree. No write is attempted for that alone; the plan
	// says what to do. Rules (group writes may clear it) become editable.
	f.cfg = loadConfig(t, f.srv.URL, "disable_provenance: true\nrouting: policy", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p = f.apply(t, rs)
	for _, c := range p.Changes {
		if c.Kind != kindRuleGroup {
			t.Errorf("change to a %s Grafana would refuse: %+v", c.Kind, c)
		}
	}
	for _, want := range []string{"contact point healthrouter-default has provenance \"api\"", "contact point healthrouter-storage has provenance \"api\"",
		"the notification policy tree has provenance \"api\"", "DELETE /api/v1/provisioning/policies"} {
		if !strings.Contains(p.String(), want) {
			t.Errorf("plan lacks the note %q:\n%s", want, p)
		}
	}
	if r, _ := f.srv.Rule("hr-host-eu-west-1"); r.Provenance != "" {
		t.Errorf("rule provenance %q after disabling", r.Provenance)
	}
	f.assertNoWrites(t, rs)

	// A key rotation still reaches the locked contact point, and a route
	// change the locked tree: both are written keeping provenance api.
	env := testEnv(f.srv)
	const rotated = "00000000000000002222222222222222"
	env["HR_PD_DEFAULT"] = rotated
	f.cfg = loadConfig(t, f.srv.URL, "disable_provenance: true\nrouting: policy\ngroup_wait: 45s", "", env)
	f.r = f.newReconciler(t, fixtureOpts{})
	p = f.apply(t, rs)
	if len(p.Changes) != 2 {
		t.Fatalf("plan:\n%s", p)
	}
	if _, key, _ := f.srv.ContactPoint("hr-pd-default"); key != rotated {
		t.Error("rotated key not written to the locked contact point")
	}
	if tree, _ := f.srv.Policy(); tree.Routes[0].GroupWait != "45s" {
		t.Errorf("route not updated: %+v", tree.Routes[0])
	}
	if cp, _, _ := f.srv.ContactPoint("hr-pd-default"); cp.Provenance != "api" {
		t.Errorf("contact point provenance %q", cp.Provenance)
	}
	f.assertNoWrites(t, rs)
}

func TestDuplicateOfManagedRuleIsKept(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	// Grafana's "Duplicate": same labels (managed_by included), new uid.
	dup, _ := f.srv.Rule("hr-host-eu-west-1")
	dup.UID, dup.ID = "copy-of-host-rule", 0
	dup.Title = ptr(s(dup.Title) + " (copy)")
	if _, err := f.srv.Client().Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(dup)); err != nil {
		t.Fatal(err)
	}
	if !isManagedRule(&models.ProvisionedAlertRule{UID: "hr-host-x", Labels: dup.Labels}) || isManagedRule(dup) {
		t.Fatal("isManagedRule must need both the label and the uid prefix")
	}
	f.assertNoWrites(t, rs)
	if _, ok := f.srv.Rule("copy-of-host-rule"); !ok {
		t.Fatal("the duplicate was deleted")
	}
	// A change to the group keeps the duplicate along with it.
	f.cfg = loadConfig(t, f.srv.URL, "group_wait: 45s", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	f.apply(t, rs)
	if _, uids, _ := f.srv.Group(folder, "eu-west-1"); !slices.Contains(uids, "copy-of-host-rule") {
		t.Fatalf("group after an update holds %q, lost the duplicate", uids)
	}
}

// TestOthersPagerDutyContactPointsAreKept covers contact points that look
// like healthrouter's (PagerDuty, named healthrouter-*) but carry their
// author's uid: only the hr-pd- uid makes one healthrouter's to delete.
func TestOthersPagerDutyContactPointsAreKept(t *testing.T) {
	const ownKey = "99999999999999998888888888888888"
	tests := []struct {
		name, uid, cpName string
		note              string // a plan note the first apply must give, if any
	}{
		{name: "healthrouter- name of no configured key", uid: "team-b-oncall", cpName: "healthrouter-oncall"},
		{name: "healthrouter- name of a configured key", uid: "team-b-default", cpName: "healthrouter-default",
			note: "contact point healthrouter-default already has an integration with uid team-b-default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			if _, err := f.srv.Client().Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(&models.EmbeddedContactPoint{
				UID: tt.uid, Name: tt.cpName, Type: ptr("pagerduty"),
				Settings: map[string]any{"integrationKey": ownKey, "severity": "critical"},
			})); err != nil {
				t.Fatal(err)
			}
			before, _, _ := f.srv.ContactPoint(tt.uid)

			rs := regions("eu-west-1")
			p := f.apply(t, rs)
			for _, c := range p.Changes {
				if c.Kind == kindContactPoint && c.Action != actionCreate {
					t.Errorf("first apply: %s %s %s, want only creates of its own contact points", c.Action, c.Kind, c.Name)
				}
			}
			if tt.note != "" && !strings.Contains(p.String(), tt.note) {
				t.Errorf("plan lacks the note %q:\n%s", tt.note, p)
			}
			after, key, ok := f.srv.ContactPoint(tt.uid)
			if !ok {
				t.Fatalf("contact point %s (%s) was deleted", tt.uid, tt.cpName)
			}
			if !reflect.DeepEqual(before, after) || key != ownKey {
				t.Errorf("contact point %s changed: %+v -> %+v", tt.uid, before, after)
			}
			if n := f.srv.CountWrites("DELETE", "/v1/provisioning/contact-points"); n != 0 {
				t.Errorf("%d contact point deletes", n)
			}
			f.assertNoWrites(t, rs)
			if _, _, ok := f.srv.ContactPoint(tt.uid); !ok {
				t.Fatalf("contact point %s deleted by the second apply", tt.uid)
			}
			if !isManagedContactPoint(&models.EmbeddedContactPoint{UID: contactPointUID("x"), Name: tt.cpName, Type: ptr("pagerduty")}) ||
				isManagedContactPoint(&before) {
				t.Error("isManagedContactPoint must need the hr-pd- uid as well as the type and name")
			}
		})
	}
}

// TestUnlabelledRuleWithOurPrefixIsKept covers a rule whose uid happens to
// start hr- but that lacks the managed_by label: someone else's, kept in a
// region group's write and in the pruning of a group.
func TestUnlabelledRuleWithOurPrefixIsKept(t *testing.T) {
	tests := []struct {
		name   string
		config string
		group  string
		second []Region
		pruned bool // whether the second apply removes healthrouter's rules from the group
	}{
		{name: "in a region group", config: "prune: false", group: "eu", second: regions("eu", "ap")},
		{name: "in a pruned region group", config: "prune: true\nprune_after: 24h", group: "ap",
			second: []Region{{Name: "eu", LastSeen: t0}, {Name: "ap", LastSeen: t0.Add(-48 * time.Hour)}}, pruned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: tt.config})
			f.apply(t, regions("eu", "ap"))
			_, ours, _ := f.srv.Group(folder, tt.group)
			r, _ := f.srv.Rule("hr-host-" + tt.group)
			r.UID, r.ID, r.Title, r.Labels = "hr-human", 0, ptr("someone's hr- rule"), map[string]string{"team": "x"}
			r.NotificationSettings = nil
			if _, err := f.srv.Client().Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r)); err != nil {
				t.Fatal(err)
			}
			before := ruleJSONOf(t, f.srv, "hr-human")
			f.apply(t, tt.second)
			want := []string{"hr-human"}
			if !tt.pruned {
				want = append(want, ours...)
			}
			slices.Sort(want)
			_, uids, _ := f.srv.Group(folder, tt.group)
			slices.Sort(uids)
			if !reflect.DeepEqual(uids, want) {
				t.Fatalf("group %s holds %q, want %q", tt.group, uids, want)
			}
			if got := ruleJSONOf(t, f.srv, "hr-human"); got != before {
				t.Errorf("hr-human changed:\n%s\n%s", before, got)
			}
			f.assertNoWrites(t, tt.second)
			if isManagedRule(r) {
				t.Error("isManagedRule must need the managed_by label as well as the uid prefix")
			}
		})
	}
}

func TestPolicyWriteIsVerified(t *testing.T) {
	tests := []struct {
		name   string
		change func(tree *models.Route)
		want   string
	}{
		{"our route changed", func(tree *models.Route) {
			for _, r := range tree.Routes {
				if isManagedRoute(r) {
					r.Receiver = grafanatest.DefaultReceiver
				}
			}
		}, "healthrouter's route read back differs"},
		{"our route removed", func(tree *models.Route) {
			var kept []*models.Route
			for _, r := range tree.Routes {
				if !isManagedRoute(r) {
					kept = append(kept, r)
				}
			}
			tree.Routes = kept
		}, "holds 0 routes"},
		{"someone else's route changed", func(tree *models.Route) {
			tree.Routes = append(tree.Routes, &models.Route{Receiver: grafanatest.DefaultReceiver,
				ObjectMatchers: models.ObjectMatchers{{"team", "=", "late"}}})
		}, "other routes read back differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
			f.srv.OnWrite(func(req grafanatest.Request) {
				if req.Method == "PUT" && req.Path == "/api/v1/provisioning/policies" {
					tree, _ := f.srv.Policy()
					tt.change(tree)
					f.srv.SetPolicy(tree)
				}
			})
			_, err := f.r.Apply(context.Background(), regions("eu-west-1"))
			if err == nil || !strings.Contains(err.Error(), "verify notification policies: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("apply error %v, want a failed verification saying %q", err, tt.want)
			}
			if st := f.r.Status(); st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, tt.want) {
				t.Errorf("status %+v does not report the failed verification", st)
			}
		})
	}
}

func TestRoutingKeys(t *testing.T) {
	rs := regions("eu-west-1")
	t.Run("rotated key is rewritten, once", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.apply(t, rs)
		env := testEnv(f.srv)
		const rotated = "00000000000000001111111111111111"
		env["HR_PD_STORAGE"] = rotated
		f.cfg = loadConfig(t, f.srv.URL, "", "", env)
		f.r = f.newReconciler(t, fixtureOpts{})
		p := f.apply(t, rs)
		if len(p.Changes) != 1 || p.Changes[0].Name != "healthrouter-storage" ||
			!strings.Contains(p.String(), "routing key from $HR_PD_STORAGE differs") {
			t.Fatalf("plan:\n%s", p)
		}
		if _, key, _ := f.srv.ContactPoint("hr-pd-storage"); key != rotated {
			t.Error("rotated key not written")
		}
		if _, key, _ := f.srv.ContactPoint("hr-pd-default"); key != keyDefault {
			t.Error("the other key changed")
		}
		f.assertNoWrites(t, rs)
	})
	t.Run("missing key blocks the create before any write", func(t *testing.T) {
		srv := grafanatest.New()
		defer srv.Close()
		env := testEnv(srv)
		delete(env, "HR_PD_STORAGE")
		f := newFixture(t, fixtureOpts{env: env})
		f.srv = srv
		f.cfg = loadConfig(t, srv.URL, "", "", env)
		f.r = f.newReconciler(t, fixtureOpts{})
		p, err := f.r.Plan(context.Background(), rs)
		if err != nil || !strings.Contains(p.String(), "routing key from $HR_PD_STORAGE (not set: apply will fail until it is)") {
			t.Fatalf("plan %v:\n%s", err, p)
		}
		_, err = f.r.Apply(context.Background(), rs)
		if err == nil || !strings.Contains(err.Error(), "HR_PD_STORAGE") {
			t.Fatalf("apply error %v", err)
		}
		if n := srv.Writes(); n != 0 {
			t.Errorf("%d writes before failing", n)
		}
	})
	t.Run("missing key keeps the stored one", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.apply(t, rs)
		cp, _, _ := f.srv.ContactPoint("hr-pd-storage")
		cp.Settings.(map[string]any)["class"] = "edited"
		cp.Settings.(map[string]any)["integrationKey"] = "[REDACTED]"
		if _, err := f.srv.Client().Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID(cp.UID).WithBody(&cp)); err != nil {
			t.Fatal(err)
		}
		env := testEnv(f.srv)
		delete(env, "HR_PD_STORAGE")
		f.cfg = loadConfig(t, f.srv.URL, "", "", env)
		f.r = f.newReconciler(t, fixtureOpts{})
		p := f.apply(t, rs)
		if !strings.Contains(p.String(), "$HR_PD_STORAGE is not set") || len(p.Changes) != 1 {
			t.Fatalf("plan:\n%s", p)
		}
		cp, key, _ := f.srv.ContactPoint("hr-pd-storage")
		if key != keyStorage || cp.Settings.(map[string]any)[keyFingerprintSetting] != fingerprintOf(keyStorage) {
			t.Error("the stored key or its fingerprint was lost")
		}
		f.assertNoWrites(t, rs)
	})
}

func TestWarningSeverityRouting(t *testing.T) {
	tests := []struct {
		warning, want string
	}{
		{"low", `severity=~"critical|error|warning"`},
		{"none", `severity=~"critical|error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.warning, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{pagerduty: "warning: " + tt.warning})
			f.apply(t, regions("eu"))
			r, _ := f.srv.Rule("hr-host-eu")
			if expr := r.Data[0].Model.(map[string]any)["expr"].(string); !strings.Contains(expr, tt.want) {
				t.Errorf("expr %s lacks %s", expr, tt.want)
			}
		})
	}
}

func TestApplyStopsAtCanceledContext(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.r.Apply(ctx, regions("eu")); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if n := f.srv.Writes(); n != 0 {
		t.Errorf("%d writes after cancel", n)
	}
	if !f.r.Status().UnreachableSince.IsZero() {
		t.Error("our own cancel marked Grafana unreachable")
	}
}

func TestNewRejectsUnusableConfig(t *testing.T) {
	srv := grafanatest.New()
	defer srv.Close()
	good := loadConfig(t, srv.URL, "", "", testEnv(srv))
	tests := []struct {
		name   string
		break_ func(c *config.Config)
		want   string
	}{
		{"no grafana section", func(c *config.Config) { c.Grafana = nil }, "not configured"},
		{"no routing keys", func(c *config.Config) { c.PagerDuty.RoutingKeys = nil }, "routing_keys"},
		{"no default key", func(c *config.Config) { delete(c.PagerDuty.RoutingKeys, "default") }, `"default"`},
		{"route to an unknown key", func(c *config.Config) { c.PagerDuty.Routes[0].Key = "nope" }, "nope"},
		{"interval not a multiple of 10s", func(c *config.Config) { c.Grafana.Interval = config.Duration(15 * time.Second) }, "multiple of 10s"},
		{"bad folder uid", func(c *config.Config) { c.Grafana.FolderUID = "a/b" }, "folder_uid"},
		{"bad url", func(c *config.Config) { c.Grafana.URL = "grafana:3000" }, "grafana url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadConfig(t, srv.URL, "", "", testEnv(srv))
			tt.break_(c)
			_, err := New(c, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one about %s", err, tt.want)
			}
		})
	}
	// Two reconcilers on one registry collide on metric names.
	reg := prometheus.NewRegistry()
	if _, err := New(good, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(good, nil, reg); err == nil {
		t.Error("a second registration on one registry succeeded")
	}
}

// Two instances sharding regions (DESIGN §8), each with a folder of its own,
// share one Grafana: each keeps to its folder, they agree on what they
// share (contact points), and once both have applied neither writes again,
// pruning on or not.
func TestShardsShareOneGrafana(t *testing.T) {
	srv := grafanatest.New()
	defer srv.Close()
	clk := fakeclock.New(t0)
	shard := func(folderUID, externalURL string) *Reconciler {
		cfg := loadConfig(t, srv.URL, "", "", testEnv(srv))
		cfg.Grafana.FolderUID, cfg.Grafana.FolderTitle = folderUID, folderUID
		cfg.Grafana.Prune, cfg.Grafana.PruneAfter = true, config.Duration(time.Hour)
		cfg.ExternalURL = externalURL
		r, err := New(cfg, nil, nil, WithClock(clk), WithHTTPClient(srv.HTTPClient()))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := shard("healthrouter-eu", "https://hr-eu.example.com")
	b := shard("healthrouter-us", "https://hr-us.example.com")
	clk.Advance(2 * time.Hour) // past prune_after since both started
	ra := []Region{{Name: "eu-west-1", LastSeen: clk.Now()}}
	rb := []Region{{Name: "us-east-1", LastSeen: clk.Now()}}

	for _, step := range []struct {
		r  *Reconciler
		rs []Region
	}{{a, ra}, {b, rb}} {
		if _, err := step.r.Apply(context.Background(), step.rs); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ {
		for name, step := range map[string]struct {
			r  *Reconciler
			rs []Region
		}{"eu": {a, ra}, "us": {b, rb}} {
			srv.ResetLog()
			p, err := step.r.Apply(context.Background(), step.rs)
			if err != nil || !p.Empty() || srv.Writes() != 0 {
				t.Fatalf("round %d, shard %s: %v, %d writes:\n%s", round, name, err, srv.Writes(), p)
			}
		}
	}
	for folderUID, want := range map[string][]string{
		"healthrouter-eu": {"eu-west-1", PipelineGroup},
		"healthrouter-us": {PipelineGroup, "us-east-1"},
	} {
		if got := srv.GroupNames(folderUID); !reflect.DeepEqual(got, want) {
			t.Errorf("folder %s holds groups %q, want %q", folderUID, got, want)
		}
		if _, ok := srv.Rule(watchdogUID(folderUID)); !ok {
			t.Errorf("folder %s has no watchdog of its own", folderUID)
		}
	}
}

// An installation from before watchdog uids were per folder has its
// watchdog under the old fixed uid: one group write replaces it.
func TestWatchdogUIDMigrates(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	old, _ := f.srv.Rule(watchdogUID(folder))
	old.UID = "hr-watchdog"
	body := &models.AlertRuleGroup{Title: PipelineGroup, FolderUID: folder, Interval: 60, Rules: []*models.ProvisionedAlertRule{old}}
	if _, err := f.srv.Client().Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().
		WithFolderUID(folder).WithGroup(PipelineGroup).WithBody(body)); err != nil {
		t.Fatal(err)
	}
	p := f.apply(t, rs)
	if len(p.Changes) != 1 || !strings.Contains(p.String(), "- rule hr-watchdog ") {
		t.Fatalf("plan:\n%s", p)
	}
	if _, uids, _ := f.srv.Group(folder, PipelineGroup); !reflect.DeepEqual(uids, []string{watchdogUID(folder)}) {
		t.Fatalf("pipeline group holds %q", uids)
	}
	f.assertNoWrites(t, rs)
}

// fingerprintOf is the fingerprint healthrouter stores for routing key key.
func fingerprintOf(key string) string {
	return (&config.PagerDuty{Keys: map[string]config.Secret{"k": config.Secret(key)}}).KeyFingerprint("k")
}

// RulesSince says when this process first knew Grafana to hold
// healthrouter's rules, the fallback pager's test of whether Grafana can
// page: a reconcile that wrote everything, or one that read region rules in
// the folder though a write failed (a restart meeting a Grafana that
// refuses one region's group); never one that read none, or only the
// watchdog.
func TestRulesSince(t *testing.T) {
	t.Run("a restart, one region's group refused: the others' rules stand", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.apply(t, regions("eu-west-1"))
		f.r = f.newReconciler(t, fixtureOpts{}) // a restart
		f.clk.Advance(time.Minute)
		f.srv.FailWrite(1, 400) // the new region's group
		if _, err := f.r.Apply(context.Background(), regions("eu-west-1", "us-east-1")); err == nil {
			t.Fatal("want the refused write reported")
		}
		if st := f.r.Status(); !st.RulesSince.Equal(t0.Add(time.Minute)) || !st.LastSuccess.IsZero() {
			t.Fatalf("status %+v, want the rules known to stand from this reconcile, and no success", st)
		}
	})
	t.Run("every write refused on a first deployment: none stand", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.srv.FailAll(403)
		for range 2 {
			if _, err := f.r.Apply(context.Background(), regions("eu-west-1")); err == nil {
				t.Fatal("want the refusal reported")
			}
		}
		if st := f.r.Status(); !st.RulesSince.IsZero() || st.LastAnswer.IsZero() {
			t.Fatalf("status %+v, want Grafana answering and no rules known", st)
		}
	})
	t.Run("only the watchdog written: no region rule stands", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		f.apply(t, nil) // the folder and the pipeline group
		f.r = f.newReconciler(t, fixtureOpts{})
		f.srv.FailWrite(1, 400)
		if _, err := f.r.Apply(context.Background(), regions("eu-west-1")); err == nil {
			t.Fatal("want the refused write reported")
		}
		if st := f.r.Status(); !st.RulesSince.IsZero() {
			t.Fatalf("status %+v: the watchdog alone pages no region's alerts", st)
		}
	})
}
