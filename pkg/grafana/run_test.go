package grafana

import (
	"context"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	const probe = 30 * time.Second
	f := newFixture(t, fixtureOpts{opts: []Option{
		WithBackoff(time.Second, time.Minute),
		WithProbeInterval(probe),
		WithDebounce(2 * time.Second),
		withJitter(func(d time.Duration) time.Duration { return d }),
	}})
	src := &staticRegions{rs: regions("eu-west-1")}
	newRegion := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.r.Run(ctx, src, newRegion)
	}()
	reconciles := func() float64 {
		var n float64
		for _, r := range []string{resultNoop, resultApplied, resultError} {
			n += f.metricValue(t, "healthrouter_grafana_reconcile_total", map[string]string{"result": r})
		}
		return n
	}

	// At start: one reconcile, then sleep until the first probe.
	seq, d := f.clk.AwaitSleep(t, 0)
	if _, _, ok := f.srv.Group(folder, "eu-west-1"); !ok || reconciles() != 1 {
		t.Fatalf("no reconcile at start (%v reconciles)", reconciles())
	}
	if d != probe {
		t.Fatalf("first sleep %s, want the probe interval %s", d, probe)
	}

	// Grafana goes down: the probe notices, the reconcile fails and is
	// retried at 1s, 2s, 4s... while probes keep running.
	f.srv.FailAll(503)
	f.clk.Advance(d)
	seq, d = f.clk.AwaitSleep(t, seq)
	if f.r.Status().UnreachableSince.IsZero() {
		t.Fatal("probe did not notice Grafana down")
	}
	// Run the clock to the scheduled reconcile (every 5m from the start).
	for f.metricValue(t, "healthrouter_grafana_reconcile_total", map[string]string{"result": resultError}) == 0 {
		f.clk.Advance(d)
		seq, d = f.clk.AwaitSleep(t, seq)
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if d != want {
			t.Fatalf("backoff after failure %d: %s, want %s", i+1, d, want)
		}
		f.clk.Advance(d)
		seq, d = f.clk.AwaitSleep(t, seq)
	}
	st := f.r.Status()
	if st.ConsecutiveFailures != 5 || st.Healthy {
		t.Fatalf("status while down %+v", st)
	}

	// A new region while failing does not cut the backoff short.
	src.add(Region{Name: "ap-south-1", LastSeen: t0})
	newRegion <- struct{}{}
	seqAfterSignal, dAfterSignal := f.clk.AwaitSleep(t, seq)
	if dAfterSignal != d {
		t.Fatalf("sleep after a signal while failing: %s, want the backoff's remaining %s", dAfterSignal, d)
	}
	seq = seqAfterSignal

	// Grafana comes back: the next probe sees it and reconciles at once,
	// which creates the new region's group.
	f.srv.FailAll(0)
	before := reconciles()
	f.clk.Advance(d) // the backoff retry
	seq, d = f.clk.AwaitSleep(t, seq)
	if reconciles() != before+1 || !f.r.Status().Healthy {
		t.Fatalf("no successful retry: %+v", f.r.Status())
	}
	if _, _, ok := f.srv.Group(folder, "ap-south-1"); !ok {
		t.Fatal("new region's group not created on recovery")
	}
	if d != probe {
		t.Fatalf("sleep after recovery %s, want the probe interval", d)
	}

	// Healthy: a new region is reconciled after the debounce.
	src.add(Region{Name: "sa-east-1", LastSeen: t0})
	newRegion <- struct{}{}
	seq, d = f.clk.AwaitSleep(t, seq)
	if d != 2*time.Second {
		t.Fatalf("sleep after a new region %s, want the 2s debounce", d)
	}
	f.clk.Advance(d)
	seq, _ = f.clk.AwaitSleep(t, seq)
	if _, _, ok := f.srv.Group(folder, "sa-east-1"); !ok {
		t.Fatal("new region's group not created after the debounce")
	}

	// Down between reconciles, found by a probe, back at the next probe:
	// a reconcile runs right away instead of at the 5m mark.
	f.srv.FailAll(502)
	f.clk.Advance(probe)
	seq, _ = f.clk.AwaitSleep(t, seq)
	if f.r.Status().UnreachableSince.IsZero() {
		t.Fatal("probe did not notice the outage")
	}
	f.srv.FailAll(0)
	before = reconciles()
	f.clk.Advance(probe)
	seq, _ = f.clk.AwaitSleep(t, seq)
	if reconciles() != before+1 || !f.r.Status().UnreachableSince.IsZero() {
		t.Fatalf("no reconcile when Grafana came back (%v -> %v)", before, reconciles())
	}

	// A closed signal channel is not a busy loop, and cancel ends Run.
	close(newRegion)
	_, _ = f.clk.AwaitSleep(t, seq)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestBackoff(t *testing.T) {
	r := &Reconciler{opts: options{backoffBase: time.Second, backoffMax: 10 * time.Second, jitter: equalJitter}}
	tests := []struct {
		failures int
		max      time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {50, 10 * time.Second},
	}
	for _, tt := range tests {
		for i := 0; i < 50; i++ {
			d := r.backoff(tt.failures)
			if d < tt.max/2 || d > tt.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.failures, d, tt.max/2, tt.max)
			}
		}
	}
}

// A Grafana that answers but rejects a write backs off like any failure, yet
// a new region is reconciled after the debounce, not after the backoff: its
// group is written on its own and may well be accepted.
func TestRunNewRegionDuringRejectionBackoff(t *testing.T) {
	const probe = 10 * time.Minute
	f := newFixture(t, fixtureOpts{opts: []Option{
		WithBackoff(time.Minute, time.Hour),
		WithProbeInterval(probe),
		WithDebounce(2 * time.Second),
		withJitter(func(d time.Duration) time.Duration { return d }),
	}})
	f.srv.FailWrite(1, 400) // the folder create is rejected
	src := &staticRegions{rs: regions("eu-west-1")}
	newRegion := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.r.Run(ctx, src, newRegion)
	}()
	defer func() { cancel(); <-done }()

	seq, d := f.clk.AwaitSleep(t, 0)
	if st := f.r.Status(); st.ConsecutiveFailures != 1 || !st.UnreachableSince.IsZero() || st.LastAnswer.IsZero() || !st.LastSuccess.IsZero() ||
		!st.FirstAttempt.Equal(t0) || !st.RulesSince.IsZero() {
		t.Fatalf("status after a rejected write %+v, want an answer, the first attempt and no success", st)
	}
	if d != time.Minute {
		t.Fatalf("sleep after the failure %s, want the 1m backoff", d)
	}
	src.add(Region{Name: "ap-south-1", LastSeen: t0})
	newRegion <- struct{}{}
	seq, d = f.clk.AwaitSleep(t, seq)
	if d != 2*time.Second {
		t.Fatalf("sleep after a new region while Grafana rejects: %s, want the 2s debounce", d)
	}
	f.clk.Advance(d)
	_, _ = f.clk.AwaitSleep(t, seq)
	if _, _, ok := f.srv.Group(folder, "ap-south-1"); !ok || f.r.Status().ConsecutiveFailures != 0 {
		t.Fatalf("new region not provisioned after the debounce: %+v", f.r.Status())
	}
	// The first success is when the rules first stood; the first attempt
	// stays the process's first.
	if st := f.r.Status(); !st.RulesSince.Equal(st.LastSuccess) || !st.RulesSince.After(t0) || !st.FirstAttempt.Equal(t0) {
		t.Fatalf("status after the first success %+v", st)
	}
}
