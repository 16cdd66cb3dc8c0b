package grafana

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/models"

	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// managedRoutes returns healthrouter's routes among the root's children of
// a tree read through the fake's inspection API.
func managedRoutes(tree *models.Route) []*models.Route {
	if tree == nil {
		return nil
	}
	var out []*models.Route
	for _, r := range tree.Routes {
		if isManagedRoute(r) {
			out = append(out, r)
		}
	}
	return out
}

// sameRoute reports whether two routes built with the client model are the
// same route once Grafana has stored them.
func sameRoute(a, b *models.Route) bool { return sameRouteJSON(routeJSON(a), routeJSON(b)) }

// foreignTree is a policy tree as real Grafana answers it when routes were
// written through its Alertmanager configuration API: string `matchers`,
// match and match_re, and a nested child with a multi-matcher string.
func foreignTree(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/policy_foreign_tree.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParseTree(t *testing.T, s string) *policyTree {
	t.Helper()
	tree, err := parsePolicyTree([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return tree
}

// assertOthersUnchanged fails unless the tree Grafana holds keeps before's
// root fields and routes other than healthrouter's, byte for byte.
func assertOthersUnchanged(t *testing.T, srv *grafanatest.Server, before *policyTree) {
	t.Helper()
	after := mustParseTree(t, srv.PolicyJSON())
	ob, oa := before.others(), after.others()
	if len(oa) != len(ob) {
		t.Fatalf("%d other routes, want %d:\n%s", len(oa), len(ob), srv.PolicyJSON())
	}
	for i := range ob {
		if !bytes.Equal(oa[i], ob[i]) {
			t.Errorf("route %d changed:\n was %s\n now %s", i, ob[i], oa[i])
		}
	}
	for k, v := range before.fields {
		if !bytes.Equal(after.fields[k], v) {
			t.Errorf("root %s changed: %s -> %s", k, v, after.fields[k])
		}
	}
	if len(after.fields) != len(before.fields) {
		t.Errorf("root fields %v, want %v", after.fields, before.fields)
	}
}

func TestForeignStringMatchersNotificationSettingsMode(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: notification_settings"})
	if err := f.srv.SetPolicyJSON(foreignTree(t)); err != nil {
		t.Fatal(err)
	}
	before := f.srv.PolicyJSON()
	if !strings.Contains(before, `"matchers":["env=~\"p.*\"","team=\"b\""]`) {
		t.Fatalf("the fake does not answer string matchers: %s", before)
	}
	rs := regions("eu-west-1")
	f.apply(t, rs)
	if n := f.srv.CountWrites(http.MethodPut, "/v1/provisioning/policies"); n != 0 {
		t.Errorf("%d policy writes in notification_settings mode", n)
	}
	if after := f.srv.PolicyJSON(); after != before {
		t.Errorf("tree changed:\n%s\n%s", before, after)
	}
	if st := f.r.Status(); !st.Healthy || !st.UnreachableSince.IsZero() {
		t.Errorf("status %+v", st)
	}
	f.assertNoWrites(t, rs)
}

func TestForeignStringMatchersPolicyMode(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
	if err := f.srv.SetPolicyJSON(foreignTree(t)); err != nil {
		t.Fatal(err)
	}
	assertRouteCycleKeepsOthers(t, f, 3, func() {})
}

// assertRouteCycleKeepsOthers adds healthrouter's route to the tree Grafana
// holds (others routes of someone else's), updates it, and removes it by
// going back to notification settings. After each step someone else's
// routes read back as before, kept holds, and a second reconcile writes
// nothing.
func assertRouteCycleKeepsOthers(t *testing.T, f *fixture, others int, kept func()) {
	t.Helper()
	before := mustParseTree(t, f.srv.PolicyJSON())
	b, err := newBuilder(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	rs := regions("eu-west-1")

	// Add: healthrouter's route goes first, the others stay as they were.
	p := f.apply(t, rs)
	tree, _ := f.srv.Policy()
	if len(tree.Routes) != others+1 || !sameRoute(tree.Routes[0], b.policyRoute()) {
		t.Fatalf("tree after adding:\n%s\n%s", f.srv.PolicyJSON(), p)
	}
	assertOthersUnchanged(t, f.srv, before)
	kept()
	f.assertNoWrites(t, rs)

	// Update: one write of the tree.
	f.cfg = loadConfig(t, f.srv.URL, "routing: policy\ngroup_wait: 45s", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	f.srv.ResetLog()
	p = f.apply(t, rs)
	if len(p.Changes) != 1 || p.Changes[0].Kind != kindPolicy || p.Changes[0].Action != actionUpdate {
		t.Fatalf("plan:\n%s", p)
	}
	if n := f.srv.CountWrites(http.MethodPut, "/v1/provisioning/policies"); n != 1 {
		t.Errorf("%d policy writes, want 1", n)
	}
	if tree, _ := f.srv.Policy(); tree.Routes[0].GroupWait != "45s" {
		t.Errorf("route not updated: %s", f.srv.PolicyJSON())
	}
	assertOthersUnchanged(t, f.srv, before)
	kept()
	f.assertNoWrites(t, rs)

	// Remove, back to notification settings.
	f.cfg = loadConfig(t, f.srv.URL, "routing: notification_settings", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	p = f.apply(t, rs)
	if tree, _ := f.srv.Policy(); len(managedRoutes(tree)) != 0 || len(tree.Routes) != others {
		t.Fatalf("tree after removing:\n%s\n%s", f.srv.PolicyJSON(), p)
	}
	assertOthersUnchanged(t, f.srv, before)
	kept()
	f.assertNoWrites(t, rs)
}

// TestOwnRouteWithStringMatchers: a route marking healthrouter's alerts
// with a string matcher is taken for healthrouter's and replaced by the
// one it writes.
func TestOwnRouteWithStringMatchers(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
	if err := f.srv.SetPolicyJSON(`{"receiver": "grafana-default-email", "routes": [
		{"receiver": "grafana-default-email", "matchers": ["managed_by=healthrouter"]},
		{"receiver": "grafana-default-email", "matchers": ["team=b"]}]}`); err != nil {
		t.Fatal(err)
	}
	rs := regions("eu-west-1")
	p := f.apply(t, rs)
	updated := false
	for _, c := range p.Changes {
		updated = updated || (c.Kind == kindPolicy && c.Action == actionUpdate)
	}
	if !updated {
		t.Errorf("plan does not update the route:\n%s", p)
	}
	b, _ := newBuilder(f.cfg)
	tree, _ := f.srv.Policy()
	if len(tree.Routes) != 2 || !sameRoute(tree.Routes[0], b.policyRoute()) || *tree.Routes[1].Matchers[0].Name != "team" {
		t.Fatalf("tree: %s", f.srv.PolicyJSON())
	}
	f.assertNoWrites(t, rs)
}

// brokenPolicyGrafana fronts the fake with a proxy that answers GET
// policies with body, as a Grafana whose tree healthrouter cannot read.
func brokenPolicyGrafana(t *testing.T, srv *grafanatest.Server, body string) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = srv.HTTPClient().Transport
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/api/v1/provisioning/policies" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL
}

// TestUndecodableTreeIsNotAnOutage: Grafana answered, so a tree that
// cannot be read fails the reconcile with context but leaves Grafana
// reachable: it must not start direct paging.
func TestUndecodableTreeIsNotAnOutage(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.cfg = loadConfig(t, brokenPolicyGrafana(t, f.srv, `{"receiver": "x", "routes": {"not": "a list"}}`), "", "", testEnv(f.srv))
	f.r = f.newReconciler(t, fixtureOpts{})
	_, err := f.r.Apply(context.Background(), regions("eu-west-1"))
	if err == nil || !strings.Contains(err.Error(), "GET notification policies: grafana answered 200 with a tree healthrouter cannot read") {
		t.Fatalf("apply error %v", err)
	}
	if isUnreachable(err) {
		t.Errorf("%v counts as Grafana unreachable", err)
	}
	st := f.r.Status()
	if !st.UnreachableSince.IsZero() || st.LastAnswer.IsZero() || st.Healthy {
		t.Errorf("status %+v: want reachable, answered, not healthy", st)
	}
	if up := f.metricValue(t, "healthrouter_grafana_up", nil); up != 1 {
		t.Errorf("healthrouter_grafana_up %v, want 1", up)
	}
}

func TestPolicyCallErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		put         bool
		wantErr     string // "" for success
		wantStatus  int    // of the callError; 0 when none is wanted
		unreachable bool
	}{
		{"tree read", 200, `{"receiver":"r","routes":[{"matchers":["a=\"b\""]}],"provenance":"api"}`, false, "", 0, false},
		{"not JSON", 200, `{"receiver":`, false, "cannot read", 0, false},
		{"null", 200, `null`, false, "cannot read", 0, false},
		{"routes not a list", 200, `{"routes":{}}`, false, "cannot read", 0, false},
		{"route not an object", 200, `{"routes":["a"]}`, false, "routes[0]", 0, false},
		{"provenance not a string", 200, `{"provenance":1}`, false, "provenance", 0, false},
		{"404", 404, `{"message":"no alertmanager configuration"}`, false, "no alertmanager configuration", 404, false},
		{"502", 502, `bad gateway`, false, "bad gateway", 502, true},
		{"put accepted", 202, `{"message":"policies updated"}`, true, "", 0, false},
		{"put refused", 400, `{"message":"invalid object specification: bad"}`, true, "invalid object specification: bad", 400, false},
		{"put answered 200", 200, `{}`, true, "grafana answered 200", 200, false},
		{"put 503", 503, `{}`, true, "503", 503, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, tt.status, tt.body)
			a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, false), srv.Client(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.put {
				err = a.putPolicy(context.Background(), mustParseTree(t, `{"receiver":"r"}`), actionUpdate)
			} else {
				var tree *policyTree
				tree, err = a.getPolicy(context.Background())
				if err == nil && (tree.provenance != "api" || len(tree.routes) != 1) {
					t.Errorf("tree %+v", tree)
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			if isUnreachable(err) != tt.unreachable {
				t.Errorf("unreachable %v, want %v", isUnreachable(err), tt.unreachable)
			}
			var ce *callError
			if got := errors.As(err, &ce); got != (tt.wantStatus != 0) || (got && ce.Status != tt.wantStatus) {
				t.Errorf("callError %+v, want status %d", ce, tt.wantStatus)
			}
		})
	}
}

// TestPutPolicySendsTreeAsRead checks the body of the PUT: the tree as
// read, unknown fields included, without provenance.
func TestPutPolicySendsTreeAsRead(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		got = buf.Bytes()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, false), srv.Client(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := `{"receiver":"r","future":{"x":[1,2.50]},"provenance":"api",` +
		`"routes":[{"receiver":"r","matchers":["a=\"b\""],"also_future":true}]}`
	if err := a.putPolicy(context.Background(), mustParseTree(t, in), actionUpdate); err != nil {
		t.Fatal(err)
	}
	want := `{"future":{"x":[1,2.50]},"receiver":"r","routes":[{"receiver":"r","matchers":["a=\"b\""],"also_future":true}]}`
	if string(bytes.TrimSpace(got)) != want {
		t.Errorf("PUT body\n%s\nwant\n%s", got, want)
	}
}

func TestWithManagedRoute(t *testing.T) {
	ours := `{"receiver":"old","object_matchers":[["managed_by","=","healthrouter"]]}`
	foreignA := `{"receiver":"a","matchers":["team=\"b\""],"future":[1]}`
	foreignB := `{"receiver":"b","match":{"x":"y"},"routes":[{"matchers":["{c=\"d\",e=~\"f\"}"]}]}`
	tree := func(routes ...string) string {
		return `{"receiver":"root","extra":{"k":"v"},"provenance":"api","routes":[` + strings.Join(routes, ",") + `]}`
	}
	want := &models.Route{Receiver: "healthrouter-default", ObjectMatchers: models.ObjectMatchers{{ManagedByLabel, "=", ManagedByValue}}}
	wantJSON := string(routeJSON(want))
	tests := []struct {
		name string
		in   string
		want *models.Route
		out  []string
	}{
		{"added first", tree(foreignA, foreignB), want, []string{wantJSON, foreignA, foreignB}},
		{"replaced in place", tree(foreignA, ours, foreignB), want, []string{foreignA, wantJSON, foreignB}},
		{"duplicates merged", tree(ours, foreignA, ours), want, []string{wantJSON, foreignA}},
		{"removed", tree(foreignA, ours, foreignB), nil, []string{foreignA, foreignB}},
		{"absent stays absent", tree(foreignA), nil, []string{foreignA}},
		{"empty tree", `{"receiver":"root"}`, want, []string{wantJSON}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustParseTree(t, tt.in)
			next := withManagedRoute(in, tt.want)
			raw, err := json.Marshal(next)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]json.RawMessage
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if _, has := back["provenance"]; has {
				t.Errorf("provenance sent: %s", raw)
			}
			if tt.in != `{"receiver":"root"}` && string(back["extra"]) != `{"k":"v"}` {
				t.Errorf("root field lost: %s", raw)
			}
			var routes []json.RawMessage
			if err := json.Unmarshal(back["routes"], &routes); err != nil {
				t.Fatal(err)
			}
			if len(routes) != len(tt.out) {
				t.Fatalf("routes %s, want %s", back["routes"], tt.out)
			}
			for i := range routes {
				if string(routes[i]) != tt.out[i] {
					t.Errorf("route %d: %s, want %s", i, routes[i], tt.out[i])
				}
			}
			if len(in.routes) == 0 && tt.want != nil {
				return
			}
			// The tree read is not changed.
			if again := mustParseTree(t, tt.in); len(again.routes) != len(in.routes) {
				t.Error("input tree modified")
			}
		})
	}
}

func TestParsePolicyTree(t *testing.T) {
	tree := mustParseTree(t, `{"receiver":"r","provenance":"file","routes":[{"receiver":"a"}],"x":1}`)
	if tree.provenance != "file" || len(tree.routes) != 1 || string(tree.fields["x"]) != "1" || tree.fields["routes"] != nil || tree.fields["provenance"] != nil {
		t.Errorf("tree %+v", tree)
	}
	if tree := mustParseTree(t, `{"receiver":"r","provenance":null,"routes":null}`); tree.provenance != "" || len(tree.routes) != 0 {
		t.Errorf("nulls: %+v", tree)
	}
	for _, bad := range []string{``, `[]`, `null`, `"s"`, `{"routes":1}`, `{"routes":[null]}`, `{"routes":[[]]}`, `{"provenance":{}}`} {
		if _, err := parsePolicyTree([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestIsManagedRouteJSON(t *testing.T) {
	tests := []struct {
		route string
		want  bool
	}{
		{`{"object_matchers":[["managed_by","=","healthrouter"]]}`, true},
		{`{"object_matchers":[["team","=","b"],["managed_by","=","healthrouter"]]}`, true},
		{`{"match":{"managed_by":"healthrouter"}}`, true},
		{`{"matchers":["managed_by=\"healthrouter\""]}`, true},
		{`{"matchers":["a=\"b\"","managed_by=\"healthrouter\""],"object_matchers":"odd"}`, true},
		{`{"object_matchers":[["managed_by","!=","healthrouter"]]}`, false},
		{`{"object_matchers":[["managed_by","=~","healthrouter"]]}`, false},
		{`{"matchers":["managed_by!=\"healthrouter\""]}`, false},
		{`{"matchers":[{"name":"managed_by","value":"healthrouter","isEqual":true}]}`, false},
		{`{"match":{"managed_by":"other"}}`, false},
		{`{"receiver":"healthrouter-default"}`, false},
		{`{"match":"odd"}`, false},
		{`not json`, false},
	}
	for _, tt := range tests {
		if got := isManagedRouteJSON(json.RawMessage(tt.route)); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.route, got, tt.want)
		}
	}
}

func TestSameRouteJSON(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"key order", `{"receiver":"a","continue":true}`, `{"continue":true,"receiver":"a"}`, true},
		{"matcher order", `{"matchers":["b=\"2\"","a=\"1\""]}`, `{"matchers":["a=\"1\"","b=\"2\""]}`, true},
		{"object matcher order", `{"object_matchers":[["b","=","2"],["a","=","1"]]}`, `{"object_matchers":[["a","=","1"],["b","=","2"]]}`, true},
		{"group_by order", `{"group_by":["x","y"]}`, `{"group_by":["y","x"]}`, true},
		{"empty fields", `{"receiver":"a","routes":null,"group_by":[],"continue":false,"match":{}}`, `{"receiver":"a"}`, true},
		{"duration notation", `{"group_wait":"1m0s","repeat_interval":"60m"}`, `{"group_wait":"1m","repeat_interval":"1h"}`, true},
		{"provenance", `{"receiver":"a","provenance":"api","routes":[{"provenance":"api"}]}`, `{"receiver":"a","routes":[{}]}`, true},
		{"nested", `{"routes":[{"matchers":["b=\"2\"","a=\"1\""]}]}`, `{"routes":[{"matchers":["a=\"1\"","b=\"2\""]}]}`, true},
		{"unknown field kept", `{"future":{"x":1}}`, `{"future":{"x":1}}`, true},
		{"receiver", `{"receiver":"a"}`, `{"receiver":"b"}`, false},
		{"matcher value", `{"matchers":["a=\"1\""]}`, `{"matchers":["a=\"2\""]}`, false},
		{"child order", `{"routes":[{"receiver":"a"},{"receiver":"b"}]}`, `{"routes":[{"receiver":"b"},{"receiver":"a"}]}`, false},
		{"continue", `{"continue":true}`, `{}`, false},
		{"duration", `{"group_wait":"1m"}`, `{"group_wait":"2m"}`, false},
		{"unknown field", `{"future":1}`, `{"future":2}`, false},
		{"invalid JSON", `{`, `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameRouteJSON(json.RawMessage(tt.a), json.RawMessage(tt.b)); got != tt.want {
				t.Errorf("sameRouteJSON(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestVerifyPolicy(t *testing.T) {
	want := &models.Route{Receiver: "healthrouter-default", ObjectMatchers: models.ObjectMatchers{{ManagedByLabel, "=", ManagedByValue}},
		GroupWait: "30s"}
	srv := grafanatest.New()
	defer srv.Close()
	if err := srv.SetPolicyJSON(foreignTree(t)); err != nil {
		t.Fatal(err)
	}
	next := withManagedRoute(mustParseTree(t, srv.PolicyJSON()), want)
	ours := `{"receiver":"healthrouter-default","object_matchers":[["managed_by","=","healthrouter"]],"group_wait":"30s"}`
	// As Grafana answers after storing next: keys and matchers reordered,
	// durations rewritten, provenance set.
	stored := `{"provenance":"api","group_by":["grafana_folder","alertname"],"group_wait":"30s","receiver":"grafana-default-email","routes":[` + ours + `,
		{"continue":true,"matchers":["env=~\"p.*\"","team=\"b\""],"receiver":"grafana-default-email"},
		{"match":{"service":"db"},"match_re":{"cluster":"eu-.*"},"receiver":"grafana-default-email","repeat_interval":"4h"},
		{"object_matchers":[["team","=","c"]],"receiver":"grafana-default-email","routes":[
			{"group_wait":"1m","matchers":["host=~\"db-.*\"","severity=\"critical\""],"receiver":"grafana-default-email"}]}]}`
	tests := []struct {
		name string
		got  string
		want *models.Route
		err  string
	}{
		{"as written", stored, want, ""},
		{"foreign route changed", strings.Replace(stored, `"service":"db"`, `"service":"web"`, 1), want, "other routes read back differ"},
		{"foreign route gone", strings.Replace(stored, `{"continue":true,"matchers":["env=~\"p.*\"","team=\"b\""],"receiver":"grafana-default-email"},`, "", 1),
			want, "other routes read back differ"},
		{"root changed", strings.Replace(stored, `"group_wait":"30s","receiver"`, `"group_wait":"45s","receiver"`, 1), want, "other routes read back differ"},
		{"ours changed", strings.Replace(stored, `"healthrouter-default"`, `"grafana-default-email"`, 1), want, "healthrouter's route read back differs"},
		{"ours doubled", strings.Replace(stored, ours, ours+","+ours, 1), want, "holds 2 routes"},
		{"ours still there", stored, nil, "still in the tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := next
			if tt.want == nil {
				n = withManagedRoute(next, nil)
			}
			err := verifyPolicy(mustParseTree(t, tt.got), n, tt.want)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
}

// A tree holding healthrouter's route twice (a hand edit, a restore) gets
// a policy update that leaves one.
func TestDuplicatedManagedRouteIsPlannedAway(t *testing.T) {
	f := newFixture(t, fixtureOpts{grafana: "routing: policy"})
	rs := regions("eu-west-1")
	f.apply(t, rs)
	var tree map[string]any
	if err := json.Unmarshal([]byte(f.srv.PolicyJSON()), &tree); err != nil {
		t.Fatal(err)
	}
	routes := tree["routes"].([]any)
	tree["routes"] = append(routes, routes[0])
	raw, _ := json.Marshal(tree)
	if err := f.srv.SetPolicyJSON(string(raw)); err != nil {
		t.Fatal(err)
	}
	p, text := planText(t, f, rs)
	if changeFor(p, kindPolicy, "route managed_by="+ManagedByValue) == nil {
		t.Errorf("duplicate route not planned away:\n%s", text)
	}
}
