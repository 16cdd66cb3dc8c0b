package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPostEvents measures one ingest request of 100 events end to end
// in process: read, decode, apply and the group commit's fsync. Each op
// flips every check's status, so every op writes.
func BenchmarkPostEvents(b *testing.B) {
	ts := newTestServer(b, true)
	var bodies [2][]byte
	for i, status := range []string{"passing", "critical"} {
		var evs []string
		for h := range 100 {
			evs = append(evs, event(fmt.Sprintf("web-%d.eu-west.example.com", h), "eu-west", "disk", status))
		}
		bodies[i] = jsonArray(evs...)
	}
	h := ts.srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(bodies[i%2]))
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
