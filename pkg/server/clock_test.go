package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// TestIngestUsesTheInjectedClock: a batch is stamped with Options.Now, the
// clock the tracker decides with, not the machine's: the region's last
// event and a dead letter's time are the injected time.
func TestIngestUsesTheInjectedClock(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC) // far from the machine's clock
	now := func() time.Time { return at }
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Auth.IngestTokens = []config.Secret{ingestToken}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	dec, err := ingest.NewDecoder(cfg.Ingest)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Config: cfg, Decoder: dec, Logger: zap.NewNop(), Registry: prometheus.NewRegistry(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, err := tracker.Open(cfg, st, zap.NewNop(), now)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTracker(tr)
	ts := &testServer{Server: httptest.NewServer(srv.Handler()), srv: srv, tracker: tr, store: st}
	defer ts.Close()

	body := jsonArray(event("web-1", "eu-west", "disk", "critical"), `{"host":"web-2"}`)
	if resp, res := ts.post(t, body); resp.StatusCode != http.StatusOK || res.Accepted != 1 || res.Rejected != 1 {
		t.Fatalf("post: %d %+v", resp.StatusCode, res)
	}
	var regions struct {
		Regions []struct {
			Name      string    `json:"name"`
			LastEvent time.Time `json:"last_event"`
		} `json:"regions"`
	}
	_, data := ts.do(t, "GET", "/v1/regions", nil, withToken(ingestToken))
	if err := json.Unmarshal(data, &regions); err != nil || len(regions.Regions) != 1 || !regions.Regions[0].LastEvent.Equal(at) {
		t.Errorf("regions %s, want eu-west's last event at %v", data, at)
	}
	var rejected struct {
		Rejected []struct {
			Time time.Time `json:"time"`
		} `json:"rejected"`
	}
	_, data = ts.do(t, "GET", "/v1/rejected", nil, withToken(ingestToken))
	if err := json.Unmarshal(data, &rejected); err != nil || len(rejected.Rejected) != 1 || !rejected.Rejected[0].Time.Equal(at) {
		t.Errorf("rejected %s, want the dead letter stamped %v", data, at)
	}
}
