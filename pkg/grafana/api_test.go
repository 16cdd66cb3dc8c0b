package grafana

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-openapi-client-go/models"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// recordingServer answers every request with status and body and keeps the
// requests' headers.
func recordingServer(t *testing.T, status int, body string) (*httptest.Server, func() []http.Header) {
	t.Helper()
	var mu sync.Mutex
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := r.Header.Clone()
		h.Set("X-Method", r.Method)
		headers = append(headers, h)
		mu.Unlock()
		// As Grafana or a proxy in front of it would label the body.
		switch {
		case strings.HasPrefix(body, "{"), strings.HasPrefix(body, "["), body == "":
			w.Header().Set("Content-Type", "application/json")
		case strings.HasPrefix(body, "<"):
			w.Header().Set("Content-Type", "text/html")
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return append([]http.Header(nil), headers...)
	}
}

func testGrafanaConfig(url string, disableProvenance bool) *config.Grafana {
	return &config.Grafana{
		URL: url, OrgID: 3, FolderUID: "hr", Token: "sa-token-0123456789",
		DisableProvenance: disableProvenance, Timeout: config.Duration(5 * time.Second),
	}
}

func TestRequestHeaders(t *testing.T) {
	for _, disable := range []bool{false, true} {
		srv, headers := recordingServer(t, 202, `{"message":"policies updated"}`)
		a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, disable), srv.Client(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, _ = a.listContactPoints(ctx)
		_ = a.putPolicy(ctx, nil, actionUpdate)
		_ = a.deleteContactPoint(ctx, "uid", "name")
		for _, h := range headers() {
			method := h.Get("X-Method")
			if h.Get("Authorization") != "Bearer sa-token-0123456789" || h.Get("X-Grafana-Org-Id") != "3" {
				t.Errorf("%s: auth headers %q %q", method, h.Get("Authorization"), h.Get("X-Grafana-Org-Id"))
			}
			_, has := h[http.CanonicalHeaderKey(headerDisableProvenance)]
			if want := disable && method != http.MethodGet; has != want {
				t.Errorf("disable_provenance=%v: %s carries X-Disable-Provenance=%v", disable, method, has)
			}
		}
	}
}

func TestCallErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		call        func(a *grafanaAPI) error
		wantStatus  int
		wantMessage string
		unreachable bool
	}{
		{"declared 400 with its payload", 400, `{"message":"invalid alert rule: interval (0s) should be non-zero"}`,
			func(a *grafanaAPI) error { return a.putGroup(context.Background(), nilGroup(), actionUpdate) },
			400, "invalid alert rule: interval (0s) should be non-zero", false},
		{"undeclared 409 keeps Grafana's message", 409, `{"message":"provenance mismatch","messageId":"alerting.provenanceMismatch"}`,
			func(a *grafanaAPI) error { return a.putGroup(context.Background(), nilGroup(), actionUpdate) },
			409, "provenance mismatch", false},
		{"5xx is unreachable", 502, `<html>bad gateway</html>`,
			func(a *grafanaAPI) error { _, err := a.listRules(context.Background()); return err },
			502, "<html>bad gateway</html>", true},
		{"a proxy's plain-text 401 keeps its status: Grafana answered", 401, "Unauthorized by proxy\n",
			func(a *grafanaAPI) error { _, err := a.getFolder(context.Background(), "x"); return err },
			401, "Unauthorized by proxy", false},
		{"an HTML 403 to a write keeps its status", 403, "<html><body>Forbidden</body></html>",
			func(a *grafanaAPI) error { return a.putGroup(context.Background(), nilGroup(), actionUpdate) },
			403, "<html><body>Forbidden</body></html>", false},
		{"404 folder is absent, not an error", 404, `{"status":"not-found","message":"folder not found"}`,
			func(a *grafanaAPI) error { _, err := a.getFolder(context.Background(), "x"); return err },
			0, "", false},
		{"2xx other than the declared one is an error", 200, `{}`,
			func(a *grafanaAPI) error { return a.createContactPoint(context.Background(), contactPointForTest()) },
			200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, tt.status, tt.body)
			a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, false), srv.Client(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(a)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			var ce *callError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v, want a callError", err, err)
			}
			if ce.Status != tt.wantStatus || ce.Message != tt.wantMessage || ce.Unreachable() != tt.unreachable {
				t.Errorf("got status %d message %q unreachable %v", ce.Status, ce.Message, ce.Unreachable())
			}
			if hint := strings.Contains(err.Error(), config.EnvGrafanaToken); hint != (tt.wantStatus == http.StatusUnauthorized) {
				t.Errorf("error %q: names the token's variable %v, want only for a 401", err, hint)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	a, err := newGrafanaAPI(testGrafanaConfig(url, false), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.listRules(context.Background())
	if !isUnreachable(err) {
		t.Fatalf("connection refused: %v, want unreachable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = a.listRules(ctx)
	if err == nil || isUnreachable(err) {
		t.Fatalf("canceled call: %v, want an error that does not blame Grafana", err)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct{ body, want string }{
		{``, ""},
		{`null`, ""},
		{`{"message":"m","traceID":""}`, "m"},
		{`{"status":"version-mismatch"}`, "version-mismatch"},
		{`plain text`, "plain text"},
		{strings.Repeat("x", 400), strings.Repeat("x", 300) + "..."},
	}
	for _, tt := range tests {
		if got := errorMessage([]byte(tt.body)); got != tt.want {
			t.Errorf("errorMessage(%.20q) = %.40q, want %.40q", tt.body, got, tt.want)
		}
	}
}

func nilGroup() *models.AlertRuleGroup {
	return &models.AlertRuleGroup{Title: "g", Interval: 60}
}

// contactPointForTest is a minimal PagerDuty contact point.
func contactPointForTest() *models.EmbeddedContactPoint {
	return &models.EmbeddedContactPoint{UID: "hr-pd-x", Name: "healthrouter-x", Type: ptr("pagerduty"), Settings: map[string]any{}}
}

// A 500 to a read is Grafana unable to serve: long enough, and direct
// paging starts.
func TestReadAnswered500IsUnreachable(t *testing.T) {
	srv, _ := recordingServer(t, 500, `{"message":"db locked"}`)
	a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, false), srv.Client(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.listRules(context.Background()); !isUnreachable(err) {
		t.Errorf("500 to a read: %v, want unreachable", err)
	}
}

// A 500 to a policy PUT or a contact-point update is Grafana refusing that
// write, not Grafana down: it must not start direct paging.
func TestWriteAnswered500IsARefusal(t *testing.T) {
	srv, _ := recordingServer(t, 500, `{"message":"refused"}`)
	a, err := newGrafanaAPI(testGrafanaConfig(srv.URL, false), srv.Client(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.putPolicy(context.Background(), mustParseTree(t, `{"receiver":"r"}`), actionUpdate); err == nil || isUnreachable(err) {
		t.Errorf("500 to PUT policies: %v, want a refusal", err)
	}
	if err := a.updateContactPoint(context.Background(), contactPointForTest()); err == nil || isUnreachable(err) {
		t.Errorf("500 to update contact point: %v, want a refusal", err)
	}
}
