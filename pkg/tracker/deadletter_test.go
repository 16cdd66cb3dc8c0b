package tracker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

func TestRequestIndex(t *testing.T) {
	rej := func(idx ...int) []ingest.Rejection {
		var out []ingest.Rejection
		for _, i := range idx {
			out = append(out, ingest.Rejection{Index: i})
		}
		return out
	}
	tests := []struct {
		name     string
		rejected []ingest.Rejection
		result   int
		want     int
	}{
		{"no decoder rejections", nil, 3, 3},
		{"rejection after it", rej(5), 3, 3},
		{"rejection before it", rej(0), 0, 1},
		{"rejections around it", rej(0, 2, 3, 7), 1, 4},
		{"rejection at its place", rej(1), 1, 2},
		{"after every rejection", rej(0, 1, 2), 0, 3},
	}
	for _, tt := range tests {
		if got := requestIndex(tt.rejected, tt.result); got != tt.want {
			t.Errorf("%s: requestIndex(%v, %d) = %d, want %d", tt.name, tt.rejected, tt.result, got, tt.want)
		}
	}
}

// TestEngineRejectionsDeadLettered: an event the engine refuses (past
// max_checks) is dead-lettered under its position in the request, with
// every field it was sent with, and the response's error names it.
func TestEngineRejectionsDeadLettered(t *testing.T) {
	f := newFixture(t, func(e *config.Engine) { e.MaxChecks = 2 })
	at := time.Date(2026, 11, 25, 9, 59, 0, 0, time.UTC)
	result := func(host string, st health.Status) health.Result {
		return health.Result{Region: []byte("eu"), Host: []byte(host), Check: []byte("disk"), Status: st}
	}
	over := result("web-3", health.Critical)
	over.Time, over.Output, over.EventID = at.UnixNano(), []byte("disk full"), []byte("ev-42")
	over.Severity, over.Team, over.Interval = health.SeverityWarning, []byte("storage"), 30
	over.Labels = []health.ResultLabel{{Key: "rack", Value: []byte("r7")}}
	// Request events: 0 bad, 1 web-1, 2 bad, 3 web-2, 4 web-3 (over the cap).
	d := &ingest.Decoded{
		Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{
			result("web-1", health.Passing), result("web-2", health.Passing), over}},
		Rejected: []ingest.Rejection{
			{Index: 0, Reason: "missing_field", Err: "host is missing", Raw: []byte(`{"check":"x"}`)},
			{Index: 2, Reason: "invalid_status", Err: "status \"meh\"", Raw: []byte(`{"status":"meh"}`)},
		},
		Total: 5,
	}
	res, err := f.tr.Apply(context.Background(), d, "10.0.0.9:1234")
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.Rejected != 3 {
		t.Fatalf("result %+v, want 2 accepted and 3 rejected", res)
	}
	if want := "event 4: "; len(res.Errors) != 3 || res.Errors[2][:len(want)] != want {
		t.Fatalf("errors %q, want the engine's rejection named event 4", res.Errors)
	}
	dead, err := f.st.Rejected(10)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, r := range dead {
		idx = append(idx, r.Index)
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []int{0, 2, 4}) {
		t.Fatalf("dead-letter indexes %v, want [0 2 4]", idx)
	}
	i := slices.IndexFunc(dead, func(r health.Rejected) bool { return r.Index == 4 })
	if dead[i].Reason != engine.RejectTooManyChecks || dead[i].Remote != "10.0.0.9:1234" {
		t.Fatalf("dead letter %+v", dead[i])
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(dead[i].Event), &ev); err != nil {
		t.Fatalf("dead-lettered event %q: %v", dead[i].Event, err)
	}
	want := map[string]any{
		"region": "eu", "host": "web-3", "check": "disk", "status": "critical",
		"timestamp": "2026-11-25T09:59:00Z", "output": "disk full", "severity": "warning",
		"team": "storage", "interval": float64(30), "event_id": "ev-42",
		"labels": map[string]any{"rack": "r7"},
	}
	for k, v := range want {
		got, _ := json.Marshal(ev[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("dead-lettered %s = %s, want %s (event %s)", k, got, exp, dead[i].Event)
		}
	}
}
