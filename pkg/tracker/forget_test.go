package tracker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/engine"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/ingest"
	"github.com/healthrouter/healthrouter/pkg/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a tracker over a real store in dir that can be restarted.
type fixture struct {
	t     *testing.T
	dir   string
	cfg   *config.Config
	clock *clock
	logs  *observer.ObservedLogs
	st    *store.Store
	tr    *Tracker
}

func newFixture(t *testing.T, mod func(*config.Engine)) *fixture {
	cfg := config.Default()
	cfg.Engine.ConfirmAfter = 1
	if mod != nil {
		mod(&cfg.Engine)
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	f := &fixture{t: t, dir: t.TempDir(), cfg: cfg, clock: &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	f.open()
	t.Cleanup(func() { f.st.Close() })
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	st, err := store.Open(f.dir, store.Options{Logger: zap.New(core)})
	if err != nil {
		f.t.Fatal(err)
	}
	tr, err := Open(f.cfg, st, zap.New(core), f.clock.now)
	if err != nil {
		f.t.Fatal(err)
	}
	f.st, f.tr, f.logs = st, tr, logs
}

// storedChecks counts the checks in the store.
func (f *fixture) storedChecks() int {
	f.t.Helper()
	n, _, err := f.st.LoadChecks(func(*health.CheckState) error { return nil })
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// restart shuts down as serve does (final checkpoint, store closed) and
// opens the data directory again.
func (f *fixture) restart() {
	f.t.Helper()
	if err := f.tr.Checkpoint(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
}

// report applies one result per key (region/host/check) at the clock.
func (f *fixture) report(st health.Status, keys ...health.Key) {
	f.t.Helper()
	if _, err := f.tr.Apply(context.Background(), f.request(st, keys...), "test"); err != nil {
		f.t.Fatal(err)
	}
}

// request is a decoded request of one result per key at the clock.
func (f *fixture) request(st health.Status, keys ...health.Key) *ingest.Decoded {
	d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now()}}
	for _, k := range keys {
		d.Batch.Results = append(d.Batch.Results, health.Result{
			Region: []byte(k.Region), Host: []byte(k.Host), Check: []byte(k.Check), Status: st,
		})
	}
	return d
}

// tracked lists the region/host of every host the tracker knows.
func (f *fixture) tracked() []string {
	var out []string
	for _, h := range f.tr.Hosts("") {
		out = append(out, h.Region+"/"+h.Host)
	}
	return out
}

var (
	euDisk = health.Key{Region: "eu", Host: "web-1", Check: "disk"}
	euCPU  = health.Key{Region: "eu", Host: "web-1", Check: "cpu"}
	eu2CPU = health.Key{Region: "eu", Host: "web-2", Check: "cpu"}
	usCPU  = health.Key{Region: "us", Host: "web-1", Check: "cpu"}
)

func TestForgetHostSurvivesRestart(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.report(health.Passing, euCPU, eu2CPU, usCPU)
	f.report(health.Critical, euDisk)
	if as := f.tr.Alerts(); len(as) != 1 || as[0].Host != "web-1" {
		t.Fatalf("alerts before %+v", as)
	}

	errorCases := []struct {
		region, host string
		want         error
	}{
		{"", "web-1", ErrAmbiguousHost},
		{"", "nobody", ErrUnknownHost},
		{"eu", "nobody", ErrUnknownHost},
		{"mars", "web-1", ErrUnknownHost},
	}
	for _, c := range errorCases {
		if keys, err := f.tr.ForgetHost(ctx, c.region, c.host); !errors.Is(err, c.want) || keys != nil {
			t.Errorf("ForgetHost(%q, %q) = %v, %v; want %v", c.region, c.host, keys, err, c.want)
		}
	}

	keys, err := f.tr.ForgetHost(ctx, "eu", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []health.Key{euCPU, euDisk}) {
		t.Fatalf("forgotten %v", keys)
	}
	if as := f.tr.Alerts(); len(as) != 0 {
		t.Fatalf("alerts after forgetting %+v", as)
	}
	// The name is unique now: no region needed.
	f.report(health.Passing, usCPU)
	if _, err := f.tr.ForgetHost(ctx, "", "web-1"); err != nil {
		t.Fatalf("forget the remaining web-1 without a region: %v", err)
	}

	f.restart()
	if got := f.tracked(); !slices.Equal(got, []string{"eu/web-2"}) {
		t.Fatalf("after restart the tracker holds %v, want only eu/web-2", got)
	}
	if n := f.storedChecks(); n != 1 {
		t.Fatalf("store holds %d checks, want 1", n)
	}
	var journal []string
	if err := f.tr.ScanTransitions(0, func(tr *health.Transition) bool {
		if tr.To == health.PhaseForgotten || tr.Reason == engine.ReasonForgotten {
			journal = append(journal, tr.Key.String()+" "+tr.From+"->"+tr.To)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{
		"eu/web-1/cpu passing->forgotten",
		"eu/web-1/disk hard->forgotten",
		"eu/web-1/disk firing->inactive",
		"us/web-1/cpu passing->forgotten",
	}; !slices.Equal(journal, want) {
		t.Fatalf("journal %q, want %q", journal, want)
	}
}

func TestForgottenHostReportingAgainIsKept(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.report(health.Critical, euDisk)
	if _, err := f.tr.ForgetHost(ctx, "eu", "web-1"); err != nil {
		t.Fatal(err)
	}
	f.clock.add(time.Second)
	f.report(health.Warning, euDisk)
	f.restart()
	checks := f.tr.HostChecks("web-1")
	if len(checks) != 1 || checks[0].Status != health.Warning {
		t.Fatalf("after restart web-1 has %+v, want its new disk state", checks)
	}
}

// TestForgottenHostIgnoresLateResultsAfterRestart: a batch that waited in
// a buffer arrives after its host was forgotten and the server restarted:
// its results are older than the removal and leave the host forgotten;
// a result taken after the removal tracks it again.
func TestForgottenHostIgnoresLateResultsAfterRestart(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	taken := f.clock.now()
	f.report(health.Critical, euDisk, eu2CPU)
	f.clock.add(time.Minute)
	if _, err := f.tr.ForgetHost(ctx, "eu", "web-1"); err != nil {
		t.Fatal(err)
	}
	f.restart()
	f.clock.add(time.Minute)
	send := func(at time.Time) Result {
		t.Helper()
		d := &ingest.Decoded{Batch: health.Batch{Received: f.clock.now(), Results: []health.Result{{
			Region: []byte("eu"), Host: []byte("web-1"), Check: []byte("disk"), Status: health.Critical, Time: at.UnixNano(),
		}}}}
		res, err := f.tr.Apply(ctx, d, "test")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send(taken); res.Accepted != 0 || res.Duplicates != 1 {
		t.Fatalf("late result: %+v", res)
	}
	if got := f.tracked(); !slices.Equal(got, []string{"eu/web-2"}) {
		t.Fatalf("a late result brought web-1 back: tracked %v", got)
	}
	if res := send(f.clock.now()); res.Accepted != 1 {
		t.Fatalf("new result: %+v", res)
	}
	if got := f.tracked(); !slices.Equal(got, []string{"eu/web-1", "eu/web-2"}) {
		t.Fatalf("tracked %v after web-1 reported again", got)
	}
}

func TestTickForgetsSilentHosts(t *testing.T) {
	f := newFixture(t, func(e *config.Engine) { e.ForgetAfter = config.Duration(time.Hour) })
	ctx := context.Background()
	f.report(health.Passing, euCPU, eu2CPU)
	for i := 0; i < 60; i++ {
		f.clock.add(time.Minute)
		f.report(health.Passing, eu2CPU)
		if err := f.tr.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.tracked(); !slices.Equal(got, []string{"eu/web-2"}) {
		t.Fatalf("tracked %v, want web-1 forgotten", got)
	}
	if logs := f.logs.FilterMessage("forgot hosts silent for engine.forget_after").All(); len(logs) != 1 ||
		!slices.Equal(logs[0].ContextMap()["first"].([]any), []any{"eu/web-1"}) {
		t.Fatalf("forget log %+v", logs)
	}
	f.restart()
	if got := f.tracked(); !slices.Equal(got, []string{"eu/web-2"}) {
		t.Fatalf("after restart tracked %v", got)
	}
}
