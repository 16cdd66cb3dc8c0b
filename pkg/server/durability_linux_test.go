package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
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
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 for a commit that failed has no Retry-After")
	}

	// Once the failure is known, a request is refused before the engine
	// applies it: the page set holds only what the disk could take, and
	// refused requests queue nothing.
	tracked := ts.tracker.Stats().TrackedChecks
	pendingBefore := ts.store.QueuedCommits()
	for i := range 3 {
		more := jsonArray(event(fmt.Sprintf("web-%d.eu-west.example.com", 10+i), "eu-west", "disk", "critical"))
		resp, data := ts.do(t, "POST", "/v1/events", more, withToken(ingestToken))
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(data), "the store has failed to commit since") ||
			resp.Header.Get("Retry-After") == "" {
			t.Fatalf("ingest while commits are known to fail: %d %s, want 503 with Retry-After", resp.StatusCode, data)
		}
	}
	if n := ts.tracker.Stats().TrackedChecks; n != tracked {
		t.Errorf("tracked checks went from %d to %d while the disk was full: refused events were applied", tracked, n)
	}
	if n := ts.store.QueuedCommits(); n > pendingBefore+1 {
		t.Errorf("pending commits went from %d to %d: refused requests queued commits", pendingBefore, n)
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
	if !strings.Contains(string(exposition), `healthrouter_ingest_events_total{result="accepted"} 0`) {
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

// TestMaintenanceOnFullDisk: a maintenance change made while the disk
// refuses writes is in force at once and answered as done with a warning
// that it is not on disk yet (201 for an add; 200 with a body, not 204,
// for a delete), never as failed: the store retries its commit until it
// lands, and an operator told "nothing changed" would retry an add into a
// second window. Once the disk has room the change is written.
func TestMaintenanceOnFullDisk(t *testing.T) {
	ts := newTestServer(t, true)
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	window := []byte(`{"region":"eu-west","host":"web-1.eu-west.example.com","until":"` + until + `","reason":"drain"}`)
	listed := func() []string {
		t.Helper()
		resp, data := ts.do(t, "GET", "/v1/maintenance", nil, withToken(ingestToken))
		var out struct{ Windows []struct{ ID string } }
		if err := json.Unmarshal(data, &out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /v1/maintenance: %d %s", resp.StatusCode, data)
		}
		var ids []string
		for _, w := range out.Windows {
			ids = append(ids, w.ID)
		}
		return ids
	}
	recovered := func(disk *fulldisk.Disk) {
		t.Helper()
		disk.Restore()
		for range 100 { // the store retries the failed commits with a backoff
			if ts.tracker.Tick(context.Background()) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the store did not recover")
	}

	disk := fulldisk.Fill(t, ts.store.Path())
	resp, data := ts.do(t, "POST", "/v1/maintenance", window, withToken(adminToken))
	var created WindowCreated
	if err := json.Unmarshal(data, &created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/maintenance on a full disk: %d %s, want 201", resp.StatusCode, data)
	}
	if w := strings.Join(created.Warnings, "\n"); !strings.Contains(w, "in force, but the store has not confirmed it on disk yet") ||
		!strings.Contains(w, "no space left") {
		t.Fatalf("warnings %q, want one saying the window is not on disk yet, and why", created.Warnings)
	}
	if ids := listed(); !slices.Equal(ids, []string{created.ID}) {
		t.Fatalf("windows in force %v, want the one created", ids)
	}
	recovered(disk)
	if stored, err := ts.store.Windows(); err != nil || len(stored) != 1 || stored[0].ID != created.ID {
		t.Fatalf("stored windows once the disk recovered %+v (%v), want the one created", stored, err)
	}

	disk = fulldisk.Fill(t, ts.store.Path())
	resp, data = ts.do(t, "DELETE", "/v1/maintenance/"+created.ID, nil, withToken(adminToken))
	var ended WindowEnded
	if err := json.Unmarshal(data, &ended); err != nil || resp.StatusCode != http.StatusOK || ended.ID != created.ID ||
		!strings.Contains(strings.Join(ended.Warnings, "\n"), "not confirmed it on disk yet") {
		t.Fatalf("DELETE on a full disk: %d %s, want 200 with a warning", resp.StatusCode, data)
	}
	if got := listed(); len(got) != 0 {
		t.Fatalf("windows after the delete: %v, want none in force", got)
	}
	recovered(disk)
	if stored, err := ts.store.Windows(); err != nil || len(stored) != 0 {
		t.Fatalf("stored windows once the disk recovered %+v (%v), want none", stored, err)
	}
	if resp, data := ts.do(t, "DELETE", "/v1/maintenance/"+created.ID, nil, withToken(adminToken)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second DELETE: %d %s, want 404", resp.StatusCode, data)
	}
}
