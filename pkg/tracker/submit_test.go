package tracker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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
	if res.Accepted != 1 || res.Rejected != 2 || len(res.Errors) != 2 ||
		!strings.HasPrefix(res.Errors[0], "event 1: ") || !strings.HasPrefix(res.Errors[1], "event 2: host: not a string") {
		t.Errorf("result = %+v, want 1 accepted and 2 rejected with their errors in event order", res)
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

// TestResultErrorsInEventOrder: the answer's errors are the first ten
// rejections by position in the request, whether the decoder or the engine
// refused them; the rest are only dead-lettered.
func TestResultErrorsInEventOrder(t *testing.T) {
	tests := []struct {
		name      string
		decoder   []int // request positions the decoder rejects
		valid     int   // results passed on, of which all past the first are over max_checks
		wantFirst []int // the positions the errors name, in order
	}{
		{"engine rejections before the decoder's", []int{5, 6}, 5, []int{1, 2, 3, 4, 5, 6}},
		{"interleaved", []int{0, 2, 4}, 3, []int{0, 2, 3, 4, 5}},
		{"capped at ten, earliest kept", []int{11, 12, 13, 14}, 12, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"decoder only", []int{3, 1}, 0, []int{1, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(e *config.Engine) { e.MaxChecks = 1 })
			d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now()}}
			for i := range tt.valid {
				d.Batch.Results = append(d.Batch.Results, health.Result{Region: []byte("eu"),
					Host: []byte("web-" + strconv.Itoa(i)), Check: []byte("disk"), Status: health.Critical})
			}
			for _, i := range tt.decoder {
				d.Rejected = append(d.Rejected, ingest.Rejection{Index: i, Reason: "invalid", Err: "bad", Raw: []byte("{}")})
			}
			// The decoder reports its rejections in request order.
			slices.SortFunc(d.Rejected, func(a, b ingest.Rejection) int { return a.Index - b.Index })
			res, err := f.tr.Apply(context.Background(), d, "test")
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, e := range res.Errors {
				var i int
				if _, err := fmt.Sscanf(e, "event %d:", &i); err != nil {
					t.Fatalf("error %q names no event", e)
				}
				got = append(got, i)
			}
			if !slices.Equal(got, tt.wantFirst) {
				t.Errorf("errors name events %v, want %v (%q)", got, tt.wantFirst, res.Errors)
			}
			if res.Rejected != len(tt.decoder)+max(tt.valid-1, 0) {
				t.Errorf("rejected %d, want %d", res.Rejected, len(tt.decoder)+max(tt.valid-1, 0))
			}
		})
	}
}
