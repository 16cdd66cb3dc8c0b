package tracker

import (
	"context"
	"strings"
	"testing"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
)

// TestSubmitKeepsNothingOfTheRequest: once Submit returns, the caller
// releases the decoded request (its buffers are reused by the next decode)
// before waiting for the disk, so neither the state, the result nor the
// dead letters may point into it.
func TestSubmitKeepsNothingOfTheRequest(t *testing.T) {
	f := newFixture(t, func(e *config.Engine) { e.MaxChecks = 1 })
	buf := []byte("eu web-1 disk web-2 {\"host\":7}")
	d := &ingest.Decoded{
		Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{
			{Region: buf[0:2], Host: buf[3:8], Check: buf[9:13], Status: health.Critical},
			{Region: buf[0:2], Host: buf[14:19], Check: buf[9:13], Status: health.Critical}, // past max_checks
		}},
		Rejected: []ingest.Rejection{{Index: 2, Reason: "invalid", Err: "host: not a string", Raw: buf[20:]}},
	}
	p := f.tr.Submit(d, "test")
	for i := range buf {
		buf[i] = 'X' // the decoder's next request
	}
	res, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.Rejected != 2 || len(res.Errors) != 2 {
		t.Errorf("result = %+v, want 1 accepted and 2 rejected with their errors", res)
	}
	if hosts := f.tracked(); len(hosts) != 1 || hosts[0] != "eu/web-1" {
		t.Errorf("tracked hosts = %v, want [eu/web-1]", hosts)
	}
	dead, err := f.tr.Rejected(10)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, r := range dead {
		events = append(events, r.Event)
	}
	got := strings.Join(events, " ")
	if len(dead) != 2 || strings.Contains(got, "X") || !strings.Contains(got, `"host":"web-2"`) || !strings.Contains(got, `{"host":7}`) {
		t.Errorf("dead letters = %v, want web-2's event and the raw invalid one, unchanged", events)
	}
}
