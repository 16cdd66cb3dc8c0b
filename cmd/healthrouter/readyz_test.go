package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana/grafanatest"
)

// TestReadyzShowsGrafanaFailures serves with Grafana provisioning against a
// Grafana that fails, and checks that /readyz says so (the error and how many
// reconciles failed in a row) without showing the token or a routing key.
func TestReadyzShowsGrafanaFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	srv := grafanatest.New()
	defer srv.Close()
	srv.FailAll(http.StatusInternalServerError)

	cfg := strings.ReplaceAll(provisionConfig, "%URL%", srv.URL) +
		"  events_url: http://127.0.0.1:1\n" // nothing leaves the machine
	path := filepath.Join(t.TempDir(), "healthrouter.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvGrafanaToken, srv.Token)
	t.Setenv("HR_PD_DEFAULT", provisionKeyDefault)
	t.Setenv("HR_PD_STORAGE", provisionKeyStorage)
	p := start(t, t.TempDir(), "--config", path)

	type grafanaStatus struct {
		Healthy             bool   `json:"healthy"`
		LastError           string `json:"last_error"`
		ConsecutiveFailures int    `json:"consecutive_failures"`
	}
	var body []byte
	var got struct {
		Ready   bool           `json:"ready"`
		Grafana *grafanaStatus `json:"grafana"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("readyz %d: %v in %s", resp.StatusCode, err, body)
		}
		if got.Grafana != nil && got.Grafana.ConsecutiveFailures >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never showed two failed reconciles: %s\n%s", body, p.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !got.Ready || got.Grafana.Healthy || !strings.Contains(got.Grafana.LastError, "grafana answered 500: injected failure") {
		t.Errorf("readyz: %s", body)
	}
	// Never succeeded: no last_success at all, rather than year 1.
	if strings.Contains(string(body), "last_success") || strings.Contains(string(body), "0001-01-01") {
		t.Errorf("readyz shows times that never happened: %s", body)
	}
	for _, secret := range []string{srv.Token, provisionKeyDefault, provisionKeyStorage} {
		if strings.Contains(string(body), secret) || strings.Contains(p.logs.String(), secret) {
			t.Errorf("a secret is in /readyz or the logs:\n%s", body)
		}
	}

	// Grafana back: the next reconcile clears the error.
	srv.FailAll(0)
	deadline = time.Now().Add(30 * time.Second)
	for {
		var ok struct {
			Grafana grafanaStatus `json:"grafana"`
		}
		p.get(t, "/readyz", &ok)
		if ok.Grafana.ConsecutiveFailures == 0 && ok.Grafana.LastError == "" && ok.Grafana.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still shows a failure after Grafana came back: %+v", ok.Grafana)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
