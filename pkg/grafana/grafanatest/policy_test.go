package grafanatest

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/grafana/grafana-openapi-client-go/client/provisioning"
	"github.com/grafana/grafana-openapi-client-go/models"
)

const policiesPath = "/api/v1/provisioning/policies"

// call sends a raw request to the server with its token and returns the
// answer's status and body.
func call(t *testing.T, s *Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// childRoutes decodes the root's routes of a tree as answered, each as
// plain JSON values.
func childRoutes(t *testing.T, tree string) []map[string]any {
	t.Helper()
	var root struct {
		Routes []map[string]any `json:"routes"`
	}
	if err := json.Unmarshal([]byte(tree), &root); err != nil {
		t.Fatalf("tree %s: %v", tree, err)
	}
	return root.Routes
}

func TestPolicyStringMatchersAnsweredAsGrafanaDoes(t *testing.T) {
	s, c := setup(t)
	err := s.SetPolicyJSON(`{"receiver": "grafana-default-email", "routes": [
		{"receiver": "grafana-default-email", "matchers": ["team=b", "{env=~\"p.*\", host!=\"db-1\"}"], "group_wait": "1m0s"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	code, body := call(t, s, http.MethodGet, policiesPath, "")
	if code != http.StatusOK {
		t.Fatalf("GET %d %s", code, body)
	}
	routes := childRoutes(t, body)
	if len(routes) != 1 {
		t.Fatalf("routes %v", routes)
	}
	// One string per matcher, sorted by name, values quoted; durations
	// in Grafana's notation.
	want := []any{`env=~"p.*"`, `host!="db-1"`, `team="b"`}
	if got := routes[0]["matchers"]; !reflect.DeepEqual(got, want) {
		t.Errorf("matchers %v, want %v", got, want)
	}
	if got := routes[0]["group_wait"]; got != "1m" {
		t.Errorf("group_wait %v, want 1m", got)
	}
	if s.PolicyJSON() != body {
		t.Errorf("PolicyJSON %s differs from GET's %s", s.PolicyJSON(), body)
	}
	// The generated client cannot read it: that is real Grafana's answer
	// too, and why healthrouter decodes the tree itself.
	if _, err := c.Provisioning.GetPolicyTree(); err == nil || !strings.Contains(err.Error(), "cannot unmarshal string") {
		t.Errorf("client read a tree with string matchers: %v", err)
	}
	// Inspection converts them to the client's matcher objects.
	tree, _ := s.Policy()
	var got []string
	for _, m := range tree.Routes[0].Matchers {
		got = append(got, *m.Name+"|"+*m.Value+"|"+boolString(m.IsEqual)+"|"+boolString(*m.IsRegex))
	}
	if w := []string{"env|p.*|true|true", "host|db-1|false|false", "team|b|true|false"}; !reflect.DeepEqual(got, w) {
		t.Errorf("Policy() matchers %v, want %v", got, w)
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestPolicyPutMatchers(t *testing.T) {
	tests := []struct {
		name  string
		child string
		want  int
		// stored is the child's matchers as answered after an accepted PUT.
		stored []any
	}{
		{"string matchers", `{"matchers": ["team=\"b\"", "env=~p.*"]}`, http.StatusAccepted, []any{`env=~"p.*"`, `team="b"`}},
		{"braced list in one string", `{"matchers": ["{a=\"1\",b!~\"x|y\"}"]}`, http.StatusAccepted, []any{`a="1"`, `b!~"x|y"`}},
		{"quoted comma and escapes", `{"matchers": ["msg=\"a, \\\"b\\\"\""]}`, http.StatusAccepted, []any{`msg="a, \"b\""`}},
		{"empty list", `{"matchers": []}`, http.StatusAccepted, nil},
		{"matcher objects as the client model sends them", `{"matchers": [{"name": "team", "value": "b", "isEqual": true, "isRegex": false}]}`, http.StatusBadRequest, nil},
		{"no operator", `{"matchers": ["team"]}`, http.StatusBadRequest, nil},
		{"bad label name", `{"matchers": ["1team=\"b\""]}`, http.StatusBadRequest, nil},
		{"unterminated quote", `{"matchers": ["team=\"b"]}`, http.StatusBadRequest, nil},
		{"text after the value", `{"matchers": ["team=\"b\" c"]}`, http.StatusBadRequest, nil},
		{"bad regular expression", `{"matchers": ["team=~\"(\""]}`, http.StatusBadRequest, nil},
		{"bad regular expression in object_matchers", `{"object_matchers": [["team", "=~", "("]]}`, http.StatusBadRequest, nil},
		{"bad regular expression in match_re", `{"match_re": {"team": "("}}`, http.StatusBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := setup(t)
			before := s.PolicyJSON()
			code, body := call(t, s, http.MethodPut, policiesPath,
				`{"receiver": "grafana-default-email", "routes": [`+tt.child+`]}`)
			if code != tt.want {
				t.Fatalf("PUT %d %s, want %d", code, body, tt.want)
			}
			if tt.want != http.StatusAccepted {
				if after := s.PolicyJSON(); after != before {
					t.Errorf("a refused tree was stored: %s", after)
				}
				return
			}
			routes := childRoutes(t, s.PolicyJSON())
			if len(routes) != 1 {
				t.Fatalf("routes %v", routes)
			}
			if got := routes[0]["matchers"]; !reflect.DeepEqual(got, any(tt.stored)) && !(got == nil && tt.stored == nil) {
				t.Errorf("matchers %#v, want %#v", got, tt.stored)
			}
		})
	}
}

func TestPolicyRootStringMatchersRefused(t *testing.T) {
	s, _ := setup(t)
	code, body := call(t, s, http.MethodPut, policiesPath, `{"receiver": "grafana-default-email", "matchers": ["a=\"b\""]}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "root route must not have any matchers") {
		t.Errorf("PUT %d %s, want 400 for matchers on the root", code, body)
	}
	if err := s.SetPolicyJSON(`{"receiver": "grafana-default-email", "matchers": ["a=\"b\""]}`); err == nil {
		t.Error("SetPolicyJSON accepted matchers on the root")
	}
	if err := s.SetPolicyJSON(`{"receiver": "grafana-default-email", "routes": [{"receiver": "nobody"}]}`); err == nil {
		t.Error("SetPolicyJSON accepted an unknown receiver")
	}
	if err := s.SetPolicyJSON(`{"receiver": "grafana-default-email", "surprise": 1}`); err == nil {
		t.Error("SetPolicyJSON accepted an unknown field")
	}
}

// TestPolicyObjectMatchersSorted: Grafana sorts a route's matchers by name,
// value and operator when it stores the tree.
func TestPolicyObjectMatchersSorted(t *testing.T) {
	_, c := setup(t)
	tree := &models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{
		ObjectMatchers: models.ObjectMatchers{{"team", "=", "b"}, {"env", "!=", "dev"}, {"env", "=", "dev"}, {"env", "=", "a"}},
	}}}
	if _, err := c.Provisioning.PutPolicyTree(provisioning.NewPutPolicyTreeParams().WithBody(tree)); err != nil {
		t.Fatal(err)
	}
	got, err := c.Provisioning.GetPolicyTree()
	if err != nil {
		t.Fatal(err)
	}
	want := models.ObjectMatchers{{"env", "=", "a"}, {"env", "=", "dev"}, {"env", "!=", "dev"}, {"team", "=", "b"}}
	if om := got.Payload.Routes[0].ObjectMatchers; !reflect.DeepEqual(om, want) {
		t.Errorf("object_matchers %v, want %v", om, want)
	}
}

// TestSetPolicyStoresMatcherObjectsAsStrings: a tree built with the client
// model keeps its matchers, in the form Grafana answers with.
func TestSetPolicyStoresMatcherObjectsAsStrings(t *testing.T) {
	s := New()
	defer s.Close()
	yes, no := true, false
	s.SetPolicy(&models.Route{Receiver: DefaultReceiver, Routes: []*models.Route{{
		Matchers: models.Matchers{
			{Name: ptr("team"), Value: ptr("b"), IsEqual: true, IsRegex: &no},
			{Name: ptr("env"), Value: ptr("p.*"), IsEqual: false, IsRegex: &yes},
		},
	}}})
	routes := childRoutes(t, s.PolicyJSON())
	if want := []any{`env!~"p.*"`, `team="b"`}; len(routes) != 1 || !reflect.DeepEqual(routes[0]["matchers"], want) {
		t.Errorf("routes %v, want matchers %v", routes, want)
	}
}

func TestParseMatchers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`team="b"`, []string{`team="b"`}, false},
		{`team=b`, []string{`team="b"`}, false},
		{` team = "b" `, []string{`team="b"`}, false},
		{`{a="1", b=~"x.*",}`, []string{`a="1"`, `b=~"x.*"`}, false},
		{`{}`, nil, false},
		{`"service.name"="api"`, []string{`"service.name"="api"`}, false},
		{`v="line\nbreak"`, []string{`v="line\nbreak"`}, false},
		{`a!="", b!~"^$"`, []string{`a!=""`, `b!~"^$"`}, false},
		{`{a="1"`, nil, true},
		{`a`, nil, true},
		{`="b"`, nil, true},
		{`a="b`, nil, true},
		{`a=~"["`, nil, true},
		{`a="b"c`, nil, true},
		{`a=b"c`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ms, err := parseMatchers(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parsed %v, want an error", ms)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
