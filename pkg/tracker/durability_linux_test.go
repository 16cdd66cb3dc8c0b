package tracker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/internal/fulldisk"
)

// TestFullDiskIsReportedAndNotCounted: a commit the disk refuses is
// reported by StoreHealth, counted as a commit failure and its events as
// not_durable, never as accepted; once the disk has room again, a request
// submitted after the failure succeeds and clears it.
func TestFullDiskIsReportedAndNotCounted(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	m := f.tr.Metrics()
	request := func(hosts ...string) *ingest.Decoded {
		d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now()}}
		for _, h := range hosts {
			d.Batch.Results = append(d.Batch.Results, health.Result{
				Region: []byte("eu"), Host: []byte(h), Check: []byte("disk"), Status: health.Critical})
		}
		return d
	}
	counts := func() (accepted, notDurable, transitions, failures float64) {
		return counterValue(t, m.events.WithLabelValues("accepted")),
			counterValue(t, m.events.WithLabelValues("not_durable")),
			counterValue(t, m.transitions), counterValue(t, m.commitFailures)
	}

	if _, err := f.tr.Apply(ctx, request("web-1"), "test"); err != nil {
		t.Fatal(err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Fatalf("StoreHealth on a healthy disk = %+v", h)
	}
	accepted0, _, transitions0, _ := counts()
	if accepted0 != 1 || transitions0 == 0 {
		t.Fatalf("after a durable request: accepted %v, transitions %v", accepted0, transitions0)
	}

	disk := fulldisk.Fill(t, f.st.Path())
	failedAt := f.clock.now()
	if _, err := f.tr.Apply(ctx, request("web-2", "web-3"), "test"); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Apply on a full disk: %v, want the disk's error", err)
	}
	f.clock.add(time.Minute)
	// web-2 again: a duplicate now, its empty commit waits for the failed one.
	if _, err := f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
		t.Fatal("a request depending on a failed commit was acknowledged")
	}
	h := f.tr.StoreHealth()
	if !h.FailingSince.Equal(failedAt) || h.LastError == nil || !strings.Contains(h.LastError.Error(), "no space left") {
		t.Errorf("StoreHealth on a full disk = %+v, want failing since %v (the first failure) with the disk's error", h, failedAt)
	}
	accepted, notDurable, transitions, failures := counts()
	if accepted != accepted0 || transitions != transitions0 {
		t.Errorf("counted accepted %v (want %v), transitions %v (want %v) for commits that failed", accepted, accepted0, transitions, transitions0)
	}
	if notDurable != 3 || failures != 2 {
		t.Errorf("not_durable %v, commit failures %v; want 3 and 2", notDurable, failures)
	}

	disk.Restore()
	var err error
	for range 100 { // the store retries the failed commit with a backoff
		if _, err = f.tr.Apply(ctx, request("web-2"), "test"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Apply once the disk has room: %v", err)
	}
	if h := f.tr.StoreHealth(); !h.FailingSince.IsZero() || h.LastError != nil {
		t.Errorf("StoreHealth after recovery = %+v, want cleared", h)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
