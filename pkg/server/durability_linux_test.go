package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/internal/fulldisk"
)

// TestFullDiskShowsInReadyzAndMetrics: while the disk is full, ingest
// answers 503, /readyz says since when commits fail and why, the failures
// are counted, and the events are counted not_durable rather than
// accepted; once the disk has room again the retry is accepted and
// /readyz clears.
func TestFullDiskShowsInReadyzAndMetrics(t *testing.T) {
	ts := newTestServer(t, true)
	disk := fulldisk.Fill(t, ts.store.Path())
	body := jsonArray(event("web-1.eu-west.example.com", "eu-west", "disk", "critical"),
		event("web-2.eu-west.example.com", "eu-west", "disk", "passing"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/events", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(data), "no space left") {
		t.Fatalf("ingest on a full disk: %d %s, want 503 naming the disk error", resp.StatusCode, data)
	}

	ready := readyzStore(t, ts)
	if ready["failing"] != true || ready["failing_since"] == nil ||
		!strings.Contains(fmt.Sprint(ready["last_error"]), "no space left") {
		t.Errorf("/readyz store while the disk is full = %v, want failing with since and last_error", ready)
	}
	_, exposition := ts.do(t, "GET", "/metrics", nil)
	for _, want := range []string{
		`healthrouter_ingest_events_total{result="not_durable"} 2`,
	} {
		if !strings.Contains(string(exposition), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(exposition), `healthrouter_ingest_events_total{result="accepted"}`) {
		t.Error("events counted accepted though their commit failed")
	}
	if s := seriesOf(string(exposition), "healthrouter_ingest_transitions_total"); len(s) != 1 || !strings.HasSuffix(s[0], " 0") {
		t.Error("transitions counted though their commit failed")
	}
	if s := seriesOf(string(exposition), "healthrouter_store_commit_failures_total"); len(s) != 1 || strings.HasSuffix(s[0], " 0") {
		t.Errorf("healthrouter_store_commit_failures_total = %v, want counted", s)
	}

	disk.Restore()
	// The sender retries; the first commit, retried by the store, lands.
	var code int
	for range 100 {
		resp, data = ts.do(t, "POST", "/v1/events", body, withToken(ingestToken))
		if code = resp.StatusCode; code == http.StatusOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("retry after the disk has room: %d %s", code, data)
	}
	if ready := readyzStore(t, ts); ready["failing"] != false || ready["last_error"] != nil {
		t.Errorf("/readyz store after recovery = %v, want not failing", ready)
	}
}

func readyzStore(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	resp, data := ts.do(t, "GET", "/readyz", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d %s, want 200: ingest answers 503 on its own", resp.StatusCode, data)
	}
	var body struct {
		Store map[string]any `json:"store"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	return body.Store
}
