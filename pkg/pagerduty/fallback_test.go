package pagerduty

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// fallbackEnv is a Fallback over a real Outbox, store and fake PagerDuty.
type fallbackEnv struct {
	*outboxEnv
	fb    *Fallback
	fbReg *prometheus.Registry
	opts  FallbackOptions
}

func newFallbackEnv(t *testing.T, opts FallbackOptions) *fallbackEnv {
	t.Helper()
	pd := newFakePD(t)
	env := &fallbackEnv{outboxEnv: newOutboxEnv(t, pd, SystemClock{}), opts: opts}
	env.start()
	return env
}

// start builds and runs the outbox and builds the Fallback, as a process
// start does.
func (e *fallbackEnv) start() {
	e.t.Helper()
	e.build()
	e.run()
	e.fbReg = prometheus.NewRegistry()
	opts := e.opts
	opts.Registerer = e.fbReg
	opts.Logger = e.log
	fb, err := NewFallback(e.cfg, e.ob, e.store.kv("pagerduty_fallback"), opts)
	if err != nil {
		e.t.Fatalf("NewFallback: %v", err)
	}
	e.fb = fb
}

// restart stops everything, reopens the store and starts again.
func (e *fallbackEnv) restart() {
	e.t.Helper()
	e.stop()
	e.store.reopen()
	e.start()
}

func (e *fallbackEnv) update(now, since time.Time, alerts ...health.Alert) {
	e.t.Helper()
	if err := e.fb.Update(now, since, alerts); err != nil {
		e.t.Fatalf("Update: %v", err)
	}
	waitFor(e.t, "delivery", func() bool { return e.ob.Depth() == 0 })
}

func (e *fallbackEnv) activeGauge() float64 {
	return metricValue(e.t, e.fbReg, "healthrouter_pagerduty_fallback_active", nil)
}

// open lists the open incidents at PagerDuty as "keyname:dedup_key".
func (e *fallbackEnv) open() []string {
	var out []string
	for _, inc := range e.pd.Incidents() {
		if !inc.Open {
			continue
		}
		name := "default"
		if inc.RoutingKey == keyStorage {
			name = "storage"
		}
		out = append(out, name+":"+strings.TrimPrefix(inc.DedupKey, "healthrouter/"))
	}
	sort.Strings(out)
	return out
}

func assertOpen(t *testing.T, env *fallbackEnv, want ...string) {
	t.Helper()
	if got := env.open(); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
		t.Errorf("open incidents = %v, want %v", got, want)
	}
}

var (
	t0      = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	web1    = hostAlert("eu", "web-1", health.SeverityCritical)
	nas1    = func() health.Alert { a := hostAlert("eu", "nas-1", health.SeverityError); a.Team = "storage"; return a }()
	dnsWarn = health.Alert{Level: health.LevelRegion, Region: "eu", Check: "dns", Severity: health.SeverityWarning,
		Value: 0.4, Since: t0, Summary: "dns failing on 40% of eu"}
	ntpInfo    = hostAlert("eu", "ntp-1", health.SeverityInfo)
	suppressed = func() health.Alert {
		a := hostAlert("eu", "web-9", health.SeverityCritical)
		a.Check, a.Suppressed = "disk", health.SuppressedByRegion
		return a
	}()
)

func TestFallbackPagesThePageSetWhileGrafanaIsDown(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{ExternalURL: "https://hr.example.com"})
	all := []health.Alert{web1, nas1, dnsWarn, ntpInfo, suppressed}
	down := t0.Add(10 * time.Second)

	steps := []struct {
		name   string
		now    time.Time
		since  time.Time
		alerts []health.Alert
		active bool
		open   []string
	}{
		{"Grafana up", t0, time.Time{}, all, false, nil},
		{"Grafana just went down", down, down, all, false, nil},
		{"down for less than fallback_after", down.Add(3*time.Minute - time.Second), down, all, false, nil},
		{"down for fallback_after: the page set is paged", down.Add(3 * time.Minute), down, all, true,
			[]string{"default:host/eu/web-1", "default:region/eu/dns", "storage:host/eu/nas-1"}},
		{"nothing changed: nothing new", down.Add(4 * time.Minute), down, all, true,
			[]string{"default:host/eu/web-1", "default:region/eu/dns", "storage:host/eu/nas-1"}},
		{"web-1 cleared: resolved", down.Add(5 * time.Minute), down, []health.Alert{nas1, dnsWarn, ntpInfo, suppressed}, true,
			[]string{"default:region/eu/dns", "storage:host/eu/nas-1"}},
		{"web-1 back: paged again", down.Add(6 * time.Minute), down, all, true,
			[]string{"default:host/eu/web-1", "default:region/eu/dns", "storage:host/eu/nas-1"}},
		{"Grafana back: own incidents resolved", down.Add(7 * time.Minute), time.Time{}, all, false, nil},
		{"Grafana up: nothing paged", down.Add(8 * time.Minute), time.Time{}, all, false, nil},
	}
	for _, s := range steps {
		env.update(s.now, s.since, s.alerts...)
		if env.fb.Active() != s.active {
			t.Errorf("%s: Active = %v, want %v", s.name, env.fb.Active(), s.active)
		}
		if want := map[bool]float64{true: 1, false: 0}[s.active]; env.activeGauge() != want {
			t.Errorf("%s: fallback_active = %v, want %v", s.name, env.activeGauge(), want)
		}
		if got := env.open(); !reflect.DeepEqual(got, s.open) {
			t.Errorf("%s: open incidents = %v, want %v", s.name, got, s.open)
		}
	}

	// Each incident was triggered once per time it opened: no re-page of an
	// alert already paged.
	for _, inc := range env.pd.Incidents() {
		want := 1
		if strings.HasSuffix(inc.DedupKey, "web-1") {
			want = 2 // cleared and came back
		}
		if inc.Opened != want || inc.Triggers != want {
			t.Errorf("%s: opened %d, triggers %d, want %d", inc.DedupKey, inc.Opened, inc.Triggers, want)
		}
	}
	// The warning went as a warning (PagerDuty urgency rules make it low).
	dk := DedupKey(&dnsWarn)
	if inc, _ := env.pd.Incident(keyDefault, dk); inc.Last == nil || inc.Last.Severity != "warning" || inc.Last.Class != "dns" {
		t.Errorf("dns incident = %+v", inc)
	}
	if inc, _ := env.pd.Incident(keyStorage, DedupKey(&nas1)); inc.Last == nil ||
		inc.Last.Details["explain"] != "https://hr.example.com/v1/explain?host=nas-1" {
		t.Errorf("nas-1 incident = %+v", inc)
	}
	if len(env.fb.Open()) != 0 {
		t.Errorf("Open after recovery = %v", env.fb.Open())
	}
	assertLogsClean(t, env.logs)
	assertMetricsClean(t, env.reg)
	assertMetricsClean(t, env.fbReg)
}

func TestFallbackWarningNoneDoesNotPageWarnings(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.cfg.Warning = "none"
	env.update(t0.Add(time.Hour), t0, web1, dnsWarn)
	assertOpen(t, env, "default:host/eu/web-1")
}

func TestFallbackLeavesIncidentsWhenResolveOnRecoveryIsOff(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	off := false
	env.cfg.ResolveOnRecovery = &off
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	env.update(t0.Add(2*time.Hour), time.Time{}, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1", "storage:host/eu/nas-1")
	if env.fb.Active() || len(env.fb.Open()) != 0 {
		t.Errorf("after recovery: active %v, still tracking %v", env.fb.Active(), env.fb.Open())
	}
	// Grafana fails again later: the alerts are paged again (PagerDuty adds
	// the trigger to the alert humans left open).
	env.update(t0.Add(5*time.Hour), t0.Add(4*time.Hour), web1)
	if inc, _ := env.pd.Incident(keyDefault, DedupKey(&web1)); inc.Triggers != 2 || inc.Opened != 1 {
		t.Errorf("web-1: %+v", inc)
	}
}

func TestFallbackRestartNeitherRetriggersNorForgets(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1", "storage:host/eu/nas-1")
	sent := len(env.pd.Events())

	env.restart()
	if !env.fb.Active() || env.activeGauge() != 1 {
		t.Errorf("after restart: not active")
	}
	if got := env.fb.Open(); !reflect.DeepEqual(got, []string{"host/eu/nas-1", "host/eu/web-1"}) {
		t.Errorf("restored incidents = %v", got)
	}
	// The new process has only just seen Grafana fail: the persisted state
	// stands, nothing is triggered again.
	restarted := t0.Add(2 * time.Hour)
	env.update(restarted, restarted, web1, nas1)
	if got := len(env.pd.Events()); got != sent {
		t.Errorf("%d events sent after restart, want none", got-sent)
	}
	// web-1 clears: its incident, opened before the restart, is resolved.
	env.update(restarted.Add(time.Minute), restarted, nas1)
	assertOpen(t, env, "storage:host/eu/nas-1")
	// Grafana answers: the rest is resolved.
	env.update(restarted.Add(2*time.Minute), time.Time{}, nas1)
	assertOpen(t, env)

	env.restart()
	if env.fb.Active() || len(env.fb.Open()) != 0 {
		t.Errorf("recovery not persisted: active %v, open %v", env.fb.Active(), env.fb.Open())
	}
}

func TestFallbackDirectMode(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{Direct: true})
	if !env.fb.Active() || env.activeGauge() != 1 {
		t.Fatalf("direct mode not active")
	}
	env.update(t0, time.Time{}, web1, ntpInfo)
	assertOpen(t, env, "default:host/eu/web-1")
	env.update(t0.Add(time.Minute), time.Time{})
	assertOpen(t, env)
	if !env.fb.Active() {
		t.Errorf("direct mode stopped on a zero unreachableSince")
	}
}

// flakyEnqueuer fails while failing is set and records what it queued.
type flakyEnqueuer struct {
	mu      sync.Mutex
	failing bool
	got     []Message
}

func (f *flakyEnqueuer) Enqueue(msgs ...Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("disk full")
	}
	f.got = append(f.got, msgs...)
	return nil
}

func TestFallbackRetriesWhenTheOutboxFails(t *testing.T) {
	ts := newTestStore(t)
	out := &flakyEnqueuer{failing: true}
	fb, err := NewFallback(testConfig("http://127.0.0.1:1"), out, ts.kv("fb"), FallbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alerts := []health.Alert{web1}
	if err := fb.Update(t0.Add(time.Hour), t0, alerts); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Update error = %v", err)
	}
	if len(fb.Open()) != 0 {
		t.Errorf("incident recorded though nothing was queued: %v", fb.Open())
	}
	out.failing = false
	if err := fb.Update(t0.Add(time.Hour+time.Second), t0, alerts); err != nil {
		t.Fatal(err)
	}
	if len(out.got) != 1 || out.got[0].Event.Action != ActionTrigger || out.got[0].Key != "default" {
		t.Fatalf("queued %+v", out.got)
	}
	// Recovery fails to queue the resolves: Fallback stays active and
	// keeps the incident so the next Update resolves it.
	out.failing = true
	if err := fb.Update(t0.Add(2*time.Hour), time.Time{}, alerts); err == nil {
		t.Fatal("recovery with a failing outbox succeeded")
	}
	if !fb.Active() || len(fb.Open()) != 1 {
		t.Errorf("state lost on a failed recovery: active %v, open %v", fb.Active(), fb.Open())
	}
	out.failing = false
	if err := fb.Update(t0.Add(2*time.Hour+time.Second), time.Time{}, alerts); err != nil {
		t.Fatal(err)
	}
	if last := out.got[len(out.got)-1]; last.Event.Action != ActionResolve || last.Event.DedupKey != DedupKey(&web1) {
		t.Errorf("last queued %+v, want the resolve", last)
	}
}

func TestFallbackDropsUnreadableState(t *testing.T) {
	ts := newTestStore(t)
	kv := ts.kv("fb")
	if err := kv.Put("incident/host/eu/x", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	fb, err := NewFallback(testConfig("http://127.0.0.1:1"), &flakyEnqueuer{}, kv, FallbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fb.Open()) != 0 {
		t.Errorf("unreadable incident restored")
	}
	n := 0
	_ = kv.Scan(func(string, []byte) bool { n++; return true })
	if n != 0 {
		t.Errorf("unreadable record kept")
	}
}
