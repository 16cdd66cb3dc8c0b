package grafanatest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/go-openapi/strfmt"
	goapi "github.com/grafana/grafana-openapi-client-go/client"
	"github.com/grafana/grafana-openapi-client-go/client/folders"
	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

// setup starts a server with folder "f" and returns a client for it.
func setup(t *testing.T) (*Server, *goapi.GrafanaHTTPAPI) {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	c := s.Client()
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "f", Title: "F"}); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// validRule is a rule every check accepts.
func validRule(uid, group, title string) *models.ProvisionedAlertRule {
	d := strfmt.Duration(time.Minute)
	return &models.ProvisionedAlertRule{
		UID: uid, OrgID: ptr(int64(1)), FolderUID: ptr("f"), RuleGroup: ptr(group), Title: ptr(title),
		Condition: ptr("B"), For: &d, NoDataState: ptr("OK"), ExecErrState: ptr("Error"),
		Data: []*models.AlertQuery{
			{RefID: "A", DatasourceUID: "prom", RelativeTimeRange: &models.RelativeTimeRange{From: 600},
				Model: map[string]any{"refId": "A", "expr": "up"}},
			{RefID: "B", DatasourceUID: "__expr__", Model: map[string]any{"refId": "B", "type": "threshold", "expression": "A"}},
		},
	}
}

// status extracts the HTTP status from a client error (0 for none).
func status(err error) int {
	if err == nil {
		return 0
	}
	var apiErr *runtime.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code()
	}
	return -1
}

func TestRuleValidation(t *testing.T) {
	// pathDecides: the group endpoint takes folder and group from its path,
	// so a bad value in the body does not matter there.
	pathDecides := map[string]bool{"group name over 190": true, "missing folder": true}
	tests := []struct {
		name string
		edit func(r *models.ProvisionedAlertRule)
		want int
	}{
		{"valid", func(r *models.ProvisionedAlertRule) {}, 0},
		{"uid over 40", func(r *models.ProvisionedAlertRule) { r.UID = strings.Repeat("u", 41) }, 400},
		{"uid with a dot", func(r *models.ProvisionedAlertRule) { r.UID = "a.b" }, 400},
		{"title over 190", func(r *models.ProvisionedAlertRule) { r.Title = ptr(strings.Repeat("t", 191)) }, 400},
		{"empty title", func(r *models.ProvisionedAlertRule) { r.Title = ptr("") }, 400},
		{"group name over 190", func(r *models.ProvisionedAlertRule) { r.RuleGroup = ptr(strings.Repeat("g", 191)) }, 400},
		{"missing folder", func(r *models.ProvisionedAlertRule) { r.FolderUID = ptr("nope") }, 400},
		{"no queries", func(r *models.ProvisionedAlertRule) { r.Data = nil }, 400},
		{"datasource query without time range", func(r *models.ProvisionedAlertRule) { r.Data[0].RelativeTimeRange = nil }, 400},
		{"time range from not after to", func(r *models.ProvisionedAlertRule) {
			r.Data[0].RelativeTimeRange = &models.RelativeTimeRange{From: 60, To: 60}
		}, 400},
		{"condition names no query", func(r *models.ProvisionedAlertRule) { r.Condition = ptr("C") }, 400},
		{"duplicate refId", func(r *models.ProvisionedAlertRule) { r.Data[1].RefID = "A"; r.Condition = ptr("A") }, 400},
		{"unknown noDataState", func(r *models.ProvisionedAlertRule) { r.NoDataState = ptr("Maybe") }, 400},
		{"execErrState Error is fine", func(r *models.ProvisionedAlertRule) { r.ExecErrState = ptr("Error") }, 0},
		{"execErrState NoData is not", func(r *models.ProvisionedAlertRule) { r.ExecErrState = ptr("NoData") }, 400},
		{"null for", func(r *models.ProvisionedAlertRule) { r.For = nil }, 400},
		{"reserved label", func(r *models.ProvisionedAlertRule) { r.Labels = map[string]string{"__grafana_receiver__": "x"} }, 400},
		{"dashboard without panel", func(r *models.ProvisionedAlertRule) { r.Annotations = map[string]string{"__dashboardUid__": "d"} }, 400},
		{"unknown receiver", func(r *models.ProvisionedAlertRule) {
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr("nobody")}
		}, 400},
		{"known receiver", func(r *models.ProvisionedAlertRule) {
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), GroupBy: []string{"alertname"}}
		}, 0},
		{"duplicate group_by", func(r *models.ProvisionedAlertRule) {
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), GroupBy: []string{"a", "a"}}
		}, 400},
		{"zero repeat interval", func(r *models.ProvisionedAlertRule) {
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), RepeatInterval: "0s"}
		}, 400},
		{"unknown mute timing", func(r *models.ProvisionedAlertRule) {
			r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr(DefaultReceiver), MuteTimeIntervals: []string{"x"}}
		}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := setup(t)
			r := validRule("r1", "g", "rule")
			tt.edit(r)
			_, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r))
			if got := status(err); got != tt.want {
				t.Fatalf("POST: status %d (%v), want %d", got, err, tt.want)
			}
			// The same checks guard the group endpoint.
			if tt.want != 0 && !pathDecides[tt.name] {
				g := &models.AlertRuleGroup{Interval: 60, Rules: []*models.ProvisionedAlertRule{r}}
				_, err := c.Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().WithFolderUID("f").WithGroup("g").WithBody(g))
				if status(err) != 400 {
					t.Errorf("group PUT: %v, want 400", err)
				}
				if len(s.RuleUIDs()) != 0 {
					t.Errorf("a rejected write stored rules: %v", s.RuleUIDs())
				}
			}
		})
	}
}

func TestStoredForm(t *testing.T) {
	s, c := setup(t)
	if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(validRule("r1", "g", "rule"))); err != nil {
		t.Fatal(err)
	}
	got, err := c.Provisioning.GetAlertRule("r1")
	if err != nil {
		t.Fatal(err)
	}
	r := got.Payload
	if time.Duration(*r.For) != time.Minute || r.Provenance != ProvenanceAPI || r.ID == 0 || time.Time(r.Updated).IsZero() {
		t.Errorf("stored rule %+v", r)
	}
	// AlertQuery.GetModel fills the defaults into every query's model,
	// server-side expressions included.
	for _, q := range r.Data {
		model := q.Model.(map[string]any)
		if model["intervalMs"] != float64(1000) || model["maxDataPoints"] != float64(43200) {
			t.Errorf("query %s: defaults not filled in: %v", q.RefID, model)
		}
	}
	if iv, _, _ := s.Group("f", "g"); iv != 60 {
		t.Errorf("POST into a new group: interval %d, want the default 60", iv)
	}
	if _, err := c.Provisioning.GetAlertRule("missing"); status(err) != 404 {
		t.Errorf("GET unknown rule: %v", err)
	}
	if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(validRule("r1", "g", "other"))); status(err) != 409 {
		t.Errorf("duplicate uid: %v, want 409", err)
	}
	if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(validRule("r2", "g2", "rule"))); status(err) != 400 {
		t.Errorf("duplicate title in the folder: %v, want 400", err)
	}
}

func TestGroupPutReplacesTheGroup(t *testing.T) {
	s, c := setup(t)
	put := func(interval int64, rules ...*models.ProvisionedAlertRule) error {
		g := &models.AlertRuleGroup{Interval: interval, Rules: rules}
		_, err := c.Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().WithFolderUID("f").WithGroup("g").WithBody(g))
		return err
	}
	if err := put(60, validRule("a", "", "A"), validRule("b", "", "B")); err != nil {
		t.Fatal(err)
	}
	// A rule elsewhere moves in when its uid is in the body.
	if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(validRule("c", "other", "C"))); err != nil {
		t.Fatal(err)
	}
	if err := put(120, validRule("c", "", "C"), validRule("a", "", "A2")); err != nil {
		t.Fatal(err)
	}
	iv, uids, _ := s.Group("f", "g")
	if iv != 120 || strings.Join(uids, ",") != "c,a" {
		t.Fatalf("group: interval %d rules %v, want 120 and c,a", iv, uids)
	}
	if _, ok := s.Rule("b"); ok {
		t.Error("rule b, left out of the body, survived")
	}
	if _, _, ok := s.Group("f", "other"); ok {
		t.Error("the emptied group still exists")
	}
	if r, _ := s.Rule("a"); *r.Title != "A2" {
		t.Error("rule a not updated")
	}
	for _, iv := range []int64{0, 15, -10} {
		if err := put(iv, validRule("a", "", "A")); status(err) != 400 {
			t.Errorf("interval %d: %v, want 400", iv, err)
		}
	}
	g := &models.AlertRuleGroup{Interval: 60, Rules: []*models.ProvisionedAlertRule{validRule("x", "", "X")}}
	if _, err := c.Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().WithFolderUID("nope").WithGroup("g").WithBody(g)); status(err) != 400 {
		t.Errorf("group in a missing folder: %v, want 400", err)
	}
	if err := put(60, validRule("d", "", "D"), validRule("d", "", "D2")); status(err) != 400 {
		t.Errorf("uid twice in a body: %v, want 400", err)
	}
	// Interval-only update.
	if _, err := c.Provisioning.PutAlertRuleGroup(provisioning.NewPutAlertRuleGroupParams().WithFolderUID("f").WithGroup("g").
		WithBody(&models.AlertRuleGroup{Interval: 30})); err != nil {
		t.Fatal(err)
	}
	if iv, uids, _ := s.Group("f", "g"); iv != 30 || len(uids) != 2 {
		t.Errorf("interval-only update: %d %v", iv, uids)
	}
	if _, err := c.Provisioning.DeleteAlertRuleGroup("g", "f"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.Group("f", "g"); ok {
		t.Error("group not deleted")
	}
	if _, err := c.Provisioning.DeleteAlertRuleGroup("g", "f"); status(err) != 404 {
		t.Errorf("deleting a missing group: %v, want 404", err)
	}
}

func TestProvenance(t *testing.T) {
	s, c := setup(t)
	disable := ptr("true")
	group := func(disableProv bool, rules ...*models.ProvisionedAlertRule) error {
		p := provisioning.NewPutAlertRuleGroupParams().WithFolderUID("f").WithGroup("g").
			WithBody(&models.AlertRuleGroup{Interval: 60, Rules: rules})
		if disableProv {
			p = p.WithXDisableProvenance(disable)
		}
		_, err := c.Provisioning.PutAlertRuleGroup(p)
		return err
	}
	if err := group(false, validRule("a", "", "A")); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Rule("a"); r.Provenance != ProvenanceAPI {
		t.Fatalf("provenance %q, want api", r.Provenance)
	}
	// Single PUT api -> none: Grafana answers 500 (#74558).
	p := provisioning.NewPutAlertRuleParams().WithUID("a").WithBody(validRule("a", "g", "A")).WithXDisableProvenance(disable)
	if _, err := c.Provisioning.PutAlertRule(p); status(err) != 500 {
		t.Errorf("single PUT api->none: %v, want 500", err)
	}
	// Single DELETE with a mismatch: 409.
	if _, err := c.Provisioning.DeleteAlertRule(provisioning.NewDeleteAlertRuleParams().WithUID("a").WithXDisableProvenance(disable)); status(err) != 409 {
		t.Errorf("single DELETE api->none: %v, want 409", err)
	}
	// A group replace stamps every rule of the group, changed or not
	// (TestGroupWriteStampsEveryRule): api -> none is allowed, and none ->
	// api too.
	if err := group(true, validRule("a", "", "A")); err != nil {
		t.Errorf("group api->none, rule unchanged: %v", err)
	}
	if r, _ := s.Rule("a"); r.Provenance != ProvenanceNone {
		t.Errorf("provenance %q of an unchanged rule after X-Disable-Provenance, want none", r.Provenance)
	}
	if err := group(false, validRule("a", "", "A2")); err != nil {
		t.Errorf("group none->api: %v", err)
	}
	if r, _ := s.Rule("a"); r.Provenance != ProvenanceAPI {
		t.Errorf("provenance %q after a group write without X-Disable-Provenance", r.Provenance)
	}
	// Contact point and policy: api -> none refused.
	cp := &models.EmbeddedContactPoint{UID: "pd", Name: "pd", Type: ptr("pagerduty"), Settings: map[string]any{"integrationKey": "k"}}
	if _, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(cp)); err != nil {
		t.Fatal(err)
	}
	cp.Settings = map[string]any{"integrationKey": "[REDACTED]"}
	if _, err := c.Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID("pd").WithBody(cp).WithXDisableProvenance(disable)); status(err) != 500 {
		t.Errorf("contact point api->none: %v, want 500", err)
	}
	tree := &models.Route{Receiver: DefaultReceiver}
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree).WithXDisableProvenance(disable)); status(err) != 403 {
		t.Errorf("policy api->none: %v, want 403", err)
	}
}

func TestContactPoints(t *testing.T) {
	s, c := setup(t)
	cp := &models.EmbeddedContactPoint{UID: "pd", Name: "pd", Type: ptr("pagerduty"),
		Settings: map[string]any{"integrationKey": "secret-key", "severity": "critical", "extra": "kept"}}
	created, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(cp))
	if err != nil {
		t.Fatal(err)
	}
	if created.Payload.Settings.(map[string]any)["integrationKey"] != "[REDACTED]" {
		t.Error("POST answer shows the key")
	}
	list, _ := c.Provisioning.GetContactpoints(provisioning.NewGetContactpointsParams().WithName(ptr("pd")))
	if len(list.Payload) != 1 || list.Payload[0].Settings.(map[string]any)["integrationKey"] != "[REDACTED]" ||
		list.Payload[0].Settings.(map[string]any)["extra"] != "kept" {
		t.Fatalf("GET: %+v", list.Payload)
	}
	// "[REDACTED]" keeps the key; a new value replaces it.
	cp.Settings = map[string]any{"integrationKey": "[REDACTED]", "severity": "warning"}
	if _, err := c.Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID("pd").WithBody(cp)); err != nil {
		t.Fatal(err)
	}
	if _, key, _ := s.ContactPoint("pd"); key != "secret-key" {
		t.Errorf("key after a redacted PUT: %q", key)
	}
	cp.Settings = map[string]any{"integrationKey": "new-key"}
	if _, err := c.Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID("pd").WithBody(cp)); err != nil {
		t.Fatal(err)
	}
	if _, key, _ := s.ContactPoint("pd"); key != "new-key" {
		t.Errorf("key after a new value: %q", key)
	}
	tests := []struct {
		name string
		cp   *models.EmbeddedContactPoint
		want int
	}{
		{"no key", &models.EmbeddedContactPoint{Name: "x", Type: ptr("pagerduty"), Settings: map[string]any{}}, 400},
		{"unknown type", &models.EmbeddedContactPoint{Name: "x", Type: ptr("pigeon"), Settings: map[string]any{}}, 400},
		{"no name", &models.EmbeddedContactPoint{Type: ptr("pagerduty"), Settings: map[string]any{"integrationKey": "k"}}, 400},
		{"details not strings", &models.EmbeddedContactPoint{Name: "x", Type: ptr("pagerduty"),
			Settings: map[string]any{"integrationKey": "k", "details": map[string]any{"n": 1}}}, 400},
		{"duplicate uid", &models.EmbeddedContactPoint{UID: "pd", Name: "y", Type: ptr("pagerduty"), Settings: map[string]any{"integrationKey": "k"}}, 500},
	}
	for _, tt := range tests {
		_, err := c.Provisioning.PostContactpoints(provisioning.NewPostContactpointsParams().WithBody(tt.cp))
		if status(err) != tt.want {
			t.Errorf("%s: %v, want %d", tt.name, err, tt.want)
		}
	}
	if _, err := c.Provisioning.PutContactpoint(provisioning.NewPutContactpointParams().WithUID("nope").WithBody(cp)); status(err) != 404 {
		t.Errorf("PUT unknown uid: %v, want 404", err)
	}
	// Referenced by a rule: cannot be deleted.
	r := validRule("r", "g", "R")
	r.NotificationSettings = &models.AlertRuleNotificationSettings{Receiver: ptr("pd")}
	if _, err := c.Provisioning.PostAlertRule(provisioning.NewPostAlertRuleParams().WithBody(r)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Provisioning.DeleteContactpoints("pd"); status(err) != 409 {
		t.Errorf("deleting a used contact point: %v, want 409", err)
	}
	if _, err := c.Provisioning.DeleteAlertRule(provisioning.NewDeleteAlertRuleParams().WithUID("r")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Provisioning.DeleteContactpoints("pd"); err != nil {
		t.Errorf("deleting an unused contact point: %v", err)
	}
}

func TestPolicyValidation(t *testing.T) {
	tests := []struct {
		name string
		tree *models.Route
		want int
	}{
		{"default", &models.Route{Receiver: DefaultReceiver}, 0},
		{"root without receiver", &models.Route{}, 400},
		{"root with matchers", &models.Route{Receiver: DefaultReceiver, ObjectMatchers: models.ObjectMatchers{{"a", "=", "b"}}}, 400},
		{"unknown receiver", &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{Receiver: "nobody"}}}, 400},
		{"inherited receiver", &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{ObjectMatchers: models.ObjectMatchers{{"a", "=", "b"}}}}}, 0},
		{"bad operator", &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{ObjectMatchers: models.ObjectMatchers{{"a", "==", "b"}}}}}, 400},
		{"wildcard with labels", &models.Route{Receiver: DefaultReceiver, GroupBy: []string{"...", "a"}}, 400},
		{"zero group interval", &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{GroupInterval: "0s"}}}, 400},
		{"unknown mute timing", &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{MuteTimeIntervals: []string{"x"}}}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := setup(t)
			_, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tt.tree))
			if got := status(err); got != tt.want {
				t.Fatalf("status %d (%v), want %d", got, err, tt.want)
			}
			tree, _ := s.Policy()
			if tt.want != 0 && (tree.Receiver != DefaultReceiver || len(tree.Routes) != 0) {
				t.Errorf("a rejected tree was stored: %+v", tree)
			}
		})
	}
}

func TestFoldersAndAuth(t *testing.T) {
	s, c := setup(t)
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "f", Title: "again"}); status(err) != 409 {
		t.Errorf("duplicate folder uid: %v, want 409", err)
	}
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "general", Title: "root"}); status(err) != 400 {
		t.Errorf("folder with the root folder's uid: %v, want 400", err)
	}
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "g"}); status(err) != 400 {
		t.Errorf("folder without title: %v, want 400", err)
	}
	_, err := c.Folders.GetFolderByUID("missing")
	var nf *folders.GetFolderByUIDNotFound
	if !errors.As(err, &nf) {
		t.Errorf("missing folder: %v, want the declared 404", err)
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/provisioning/alert-rules", nil)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + s.Token} {
		req.Header.Set("Authorization", auth)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("Authorization %q: %d, want 401", auth, resp.StatusCode)
		}
	}
	resp, err := s.HTTPClient().Get(s.URL + "/api/health")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("health needs no token: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestFaultsAndLog(t *testing.T) {
	s, c := setup(t)
	s.ResetLog()
	s.FailWrite(2, 503)
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "one", Title: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Folders.CreateFolder(&models.CreateFolderCommand{UID: "two", Title: "two"}); status(err) != 503 {
		t.Errorf("second write: %v, want 503", err)
	}
	if s.FolderExists("two") {
		t.Error("a failed write was applied")
	}
	if _, err := c.Folders.GetFolderByUID("one"); err != nil {
		t.Error(err)
	}
	if s.Writes() != 2 || s.Reads() != 1 || s.CountWrites("POST", "/folders") != 2 {
		t.Errorf("log: %v", s.Requests())
	}
	s.FailAll(500)
	if _, err := c.Folders.GetFolderByUID("one"); status(err) != 500 {
		t.Errorf("FailAll: %v", err)
	}
	s.FailAll(0)

	// A hung write is applied; the client that gave up does not know.
	s.HangWrite(1, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Folders.CreateFolderWithParams(folders.NewCreateFolderParamsWithContext(ctx).WithBody(&models.CreateFolderCommand{UID: "three", Title: "three"}))
	if err == nil {
		t.Fatal("hung write answered")
	}
	// The client gives up after 200 ms, whether or not the write reached
	// the server by then on a busy machine: wait for it.
	for wait := time.Now().Add(5 * time.Second); !s.FolderExists("three"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatal("hung write not applied")
		}
	}
	s.SetDelay(time.Minute)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if _, err := c.Folders.GetFolderByUIDWithParams(folders.NewGetFolderByUIDParamsWithContext(ctx2).WithFolderUID("one")); err == nil {
		t.Error("delayed request answered within the timeout")
	}
	s.SetDelay(0)
	s.ResetLog()
	if len(s.Requests()) != 0 {
		t.Error("ResetLog kept requests")
	}
}

// TestOnWrite checks the concurrent-writer hook: it runs after the write
// took effect and before the client has its answer, so what it changes is
// what the client's read-back sees.
func TestOnWrite(t *testing.T) {
	s, c := setup(t)
	var seen []Request
	s.OnWrite(func(r Request) {
		seen = append(seen, r)
		tree, _ := s.Policy()
		tree.GroupBy = []string{"late"}
		s.SetPolicy(tree)
	})
	tree := &models.Route{Receiver: DefaultReceiver, GroupBy: []string{"alertname"}}
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
		t.Fatal(err)
	}
	got, err := c.Provisioning.GetPolicyTree()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Payload.GroupBy) != 1 || got.Payload.GroupBy[0] != "late" {
		t.Errorf("read-back %v, want the hook's change", got.Payload.GroupBy)
	}
	if len(seen) != 1 || seen[0].Method != "PUT" || seen[0].Path != "/api/v1/provisioning/policies" || seen[0].Status != 202 {
		t.Errorf("hook saw %+v", seen)
	}
	if _, prov := s.Policy(); prov != ProvenanceAPI {
		t.Errorf("SetPolicy changed the provenance to %q", prov)
	}
	s.OnWrite(nil)
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 {
		t.Error("the hook ran after being turned off")
	}
}
