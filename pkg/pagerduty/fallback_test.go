package pagerduty

import (
	"errors"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthrouter/healthrouter/pkg/config"
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

// start builds the outbox and the Fallback and runs the outbox, as a
// process start does: the outbox tells the Fallback what PagerDuty refused.
func (e *fallbackEnv) start() {
	e.t.Helper()
	e.onRejected = func(m Message) { e.fb.Refused(m) }
	e.build()
	e.fbReg = prometheus.NewRegistry()
	opts := e.opts
	opts.Registerer = e.fbReg
	opts.Logger = e.log
	fb, err := NewFallback(e.cfg, e.ob, e.store.kv("pagerduty_fallback"), opts)
	if err != nil {
		e.t.Fatalf("NewFallback: %v", err)
	}
	e.fb = fb
	e.run()
}

// restart stops everything, reopens the store and starts again.
func (e *fallbackEnv) restart() {
	e.t.Helper()
	e.stop()
	e.store.reopen()
	e.start()
}

// update runs Fallback.Update with Grafana unreachable since since, or
// answering when since is zero.
func (e *fallbackEnv) update(now, since time.Time, alerts ...health.Alert) {
	e.t.Helper()
	e.updateWith(now, grafanaSince(since), alerts...)
}

func (e *fallbackEnv) updateWith(now time.Time, grafana GrafanaStatus, alerts ...health.Alert) {
	e.t.Helper()
	if err := e.fb.Update(now, grafana, alerts); err != nil {
		e.t.Fatalf("Update: %v", err)
	}
	waitFor(e.t, "delivery", func() bool { return e.ob.Depth() == 0 })
}

// grafanaSince is a Grafana that has answered since start and is
// unreachable since since (zero: reachable).
func grafanaSince(since time.Time) GrafanaStatus {
	return GrafanaStatus{Answered: true, UnreachableSince: since}
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
			[]string{"default:host/eu/web-1/critical", "default:region/eu/dns/warning", "storage:host/eu/nas-1/error"}},
		{"nothing changed: nothing new", down.Add(4 * time.Minute), down, all, true,
			[]string{"default:host/eu/web-1/critical", "default:region/eu/dns/warning", "storage:host/eu/nas-1/error"}},
		{"web-1 cleared: resolved", down.Add(5 * time.Minute), down, []health.Alert{nas1, dnsWarn, ntpInfo, suppressed}, true,
			[]string{"default:region/eu/dns/warning", "storage:host/eu/nas-1/error"}},
		{"web-1 back: paged again", down.Add(6 * time.Minute), down, all, true,
			[]string{"default:host/eu/web-1/critical", "default:region/eu/dns/warning", "storage:host/eu/nas-1/error"}},
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
		if strings.HasSuffix(inc.DedupKey, "web-1/critical") {
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
		inc.Last.Details["explain"] != "https://hr.example.com/v1/explain?region=eu&host=nas-1" {
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
	assertOpen(t, env, "default:host/eu/web-1/critical")
}

func TestFallbackLeavesIncidentsWhenResolveOnRecoveryIsOff(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	off := false
	env.cfg.ResolveOnRecovery = &off
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	env.update(t0.Add(2*time.Hour), time.Time{}, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")
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

// Leaving incidents to humans on recovery does not send, after Grafana has
// taken over, a page still queued because PagerDuty was throttling: nobody
// would resolve it.
func TestFallbackWithdrawsUnsentPagesWhenLeavingIncidentsToHumans(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	off := false
	env.cfg.ResolveOnRecovery = &off
	env.pd.FailNext(1000, http.StatusTooManyRequests)
	if err := env.fb.Update(t0.Add(time.Hour), grafanaSince(t0), []health.Alert{web1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited) >= 1 })
	if d := env.ob.Depth(); d != 1 {
		t.Fatalf("depth %d, want the throttled trigger queued", d)
	}
	env.pd.ClearFaults()
	env.updateWith(t0.Add(2*time.Hour), grafanaSince(time.Time{}), web1)
	if env.fb.Active() || len(env.fb.Open()) != 0 {
		t.Errorf("after recovery: active %v, still tracking %v", env.fb.Active(), env.fb.Open())
	}
	if incs := env.pd.Incidents(); len(incs) != 0 {
		t.Errorf("PagerDuty got %+v after Grafana took over", incs)
	}
}

func TestFallbackRestartNeitherRetriggersNorForgets(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")
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
	assertOpen(t, env, "storage:host/eu/nas-1/error")
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
	assertOpen(t, env, "default:host/eu/web-1/critical")
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

func (f *flakyEnqueuer) Withdraw(msgs ...Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("disk full")
	}
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
	if err := fb.Update(t0.Add(time.Hour), grafanaSince(t0), alerts); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Update error = %v", err)
	}
	if len(fb.Open()) != 0 {
		t.Errorf("incident recorded though nothing was queued: %v", fb.Open())
	}
	out.failing = false
	if err := fb.Update(t0.Add(time.Hour+time.Second), grafanaSince(t0), alerts); err != nil {
		t.Fatal(err)
	}
	if len(out.got) != 1 || out.got[0].Event.Action != ActionTrigger || out.got[0].Key != "default" {
		t.Fatalf("queued %+v", out.got)
	}
	// Recovery fails to queue the resolves: Fallback stays active and
	// keeps the incident so the next Update resolves it.
	out.failing = true
	if err := fb.Update(t0.Add(2*time.Hour), grafanaSince(time.Time{}), alerts); err == nil {
		t.Fatal("recovery with a failing outbox succeeded")
	}
	if !fb.Active() || len(fb.Open()) != 1 {
		t.Errorf("state lost on a failed recovery: active %v, open %v", fb.Active(), fb.Open())
	}
	out.failing = false
	if err := fb.Update(t0.Add(2*time.Hour+time.Second), grafanaSince(time.Time{}), alerts); err != nil {
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

// A restart while Grafana is black-holed: the first reconcile has neither
// succeeded nor timed out yet, so Grafana is neither answering nor known to
// be unreachable. The persisted paging state must stand.
func TestFallbackRestartBeforeGrafanaAnswers(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")

	env.restart()
	restarted := t0.Add(2 * time.Hour)
	silent := GrafanaStatus{} // no answer yet, no failure yet
	env.updateWith(restarted, silent, web1, nas1)
	env.updateWith(restarted.Add(5*time.Second), silent, web1, nas1)
	if !env.fb.Active() {
		t.Fatalf("fallback stopped before Grafana answered")
	}
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")
	// Still paging: what changes meanwhile is paged and resolved.
	env.updateWith(restarted.Add(10*time.Second), silent, nas1, dnsWarn)
	assertOpen(t, env, "default:region/eu/dns/warning", "storage:host/eu/nas-1/error")

	// The first reconcile times out: still the same outage.
	env.updateWith(restarted.Add(15*time.Second), GrafanaStatus{UnreachableSince: restarted.Add(10 * time.Second)}, nas1, dnsWarn)
	assertOpen(t, env, "default:region/eu/dns/warning", "storage:host/eu/nas-1/error")
	// Grafana answers: fallback ends and resolves its incidents.
	env.updateWith(restarted.Add(time.Minute), GrafanaStatus{Answered: true}, nas1, dnsWarn)
	assertOpen(t, env)
	if env.fb.Active() {
		t.Errorf("still active after Grafana answered")
	}
}

// Not paging before the restart and no word from Grafana yet: nothing is
// paged until Grafana is known to be unreachable for fallback_after.
func TestFallbackSilentGrafanaDoesNotStartPaging(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.updateWith(t0.Add(time.Hour), GrafanaStatus{}, web1)
	if env.fb.Active() || len(env.pd.Events()) != 0 {
		t.Fatalf("paged with no news from Grafana: active %v, %d events", env.fb.Active(), len(env.pd.Events()))
	}
}

func TestFallbackForgetsIncidentsOfRemovedKeys(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")

	// The storage key leaves the configuration: its incident cannot be
	// resolved by healthrouter any more.
	delete(env.cfg.RoutingKeys, "storage")
	delete(env.cfg.Keys, "storage")
	env.cfg.Routes = nil
	env.restart()
	if got := env.fb.Open(); !reflect.DeepEqual(got, []string{"host/eu/web-1"}) {
		t.Errorf("restored incidents = %v, want only web-1's", got)
	}
	forgotten := env.logs.FilterMessage("forgetting a direct page whose routing key is no longer configured; resolve it in PagerDuty").All()
	if len(forgotten) != 1 || forgotten[0].ContextMap()["key"] != "storage" || forgotten[0].ContextMap()["alert"] != "host/eu/nas-1" {
		t.Errorf("forgotten incident not logged by key name and alert: %v", forgotten)
	}
	// Everything clears: web-1 is resolved, nothing is held back.
	env.update(t0.Add(2*time.Hour), t0)
	assertOpen(t, env, "storage:host/eu/nas-1/error")
	if len(env.fb.Open()) != 0 {
		t.Errorf("still tracking %v", env.fb.Open())
	}
	env.restart()
	if len(env.fb.Open()) != 0 {
		t.Errorf("forgotten incident came back after a restart: %v", env.fb.Open())
	}
	assertLogsClean(t, env.logs)
}

// A resolve reaches PagerDuty's incident only through the key that opened
// it: after the key is rotated (same name, new value), the incidents
// opened through the old one are reported and forgotten, the page still
// queued under it is dropped, and an alert that still pages is paged anew
// through the new key.
func TestFallbackForgetsIncidentsOfReplacedKeys(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")
	stored, _, err := env.store.kv("pagerduty_fallback").Get(fallbackIncidentPrefix + "host/eu/nas-1")
	if err != nil || !strings.Contains(string(stored), env.cfg.KeyFingerprint("storage")) || strings.Contains(string(stored), keyStorage) {
		t.Fatalf("incident record %s (%v): want the key's fingerprint, never the key", stored, err)
	}

	// PagerDuty throttles: a new storage page stays queued under the old key.
	nas2 := nas1
	nas2.Host = "nas-2"
	env.pd.FailNext(1000, http.StatusTooManyRequests)
	if err := env.fb.Update(t0.Add(time.Hour+time.Minute), grafanaSince(t0), []health.Alert{web1, nas1, nas2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited) >= 1 })

	const rotated = "R0ut1ngKeyStorage000000000000003"
	env.pd.AddRoutingKeys(rotated)
	env.cfg.Keys["storage"] = rotated
	env.restart()
	env.pd.ClearFaults()
	if got := env.fb.Open(); !reflect.DeepEqual(got, []string{"host/eu/web-1"}) {
		t.Errorf("restored incidents = %v, want only web-1's", got)
	}
	if n := len(env.logs.FilterMessage("forgetting a direct page opened through a routing key since replaced; resolve it in PagerDuty").All()); n != 2 {
		t.Errorf("%d forgotten incidents logged, want nas-1's and nas-2's", n)
	}
	if n := len(env.logs.FilterMessage("dropping queued event: it was queued under a value of its routing key since replaced").All()); n != 1 {
		t.Errorf("%d dropped events logged, want nas-2's trigger", n)
	}
	if d := env.ob.Depth(); d != 0 {
		t.Errorf("depth %d after restart, want the old key's page dropped", d)
	}

	// nas-1 still fails: paged anew through the new key, then resolved
	// there when everything clears. The old incident is left to humans.
	env.update(t0.Add(2*time.Hour), t0, web1, nas1)
	if inc, ok := env.pd.Incident(rotated, DedupKey(&nas1)); !ok || !inc.Open {
		t.Errorf("nas-1 through the rotated key: %+v (found %v), want paged anew", inc, ok)
	}
	env.update(t0.Add(3*time.Hour), t0)
	if inc, _ := env.pd.Incident(rotated, DedupKey(&nas1)); inc.Open || inc.Resolves != 1 {
		t.Errorf("nas-1 through the rotated key after clearing: %+v", inc)
	}
	if _, ok := env.pd.Incident(rotated, DedupKey(&nas2)); ok {
		t.Error("nas-2's page queued under the old key went out through the new one")
	}
	if inc, _ := env.pd.Incident(keyStorage, DedupKey(&nas1)); !inc.Open {
		t.Errorf("nas-1 through the old key: %+v, want left open for humans", inc)
	}
	if inc, _ := env.pd.Incident(keyDefault, DedupKey(&web1)); inc.Open {
		t.Errorf("web-1: %+v, want resolved", inc)
	}
	assertLogsClean(t, env.logs)
}

// A message the outbox refuses (here: a route to a key whose variable is
// unset) must not hold back the rest of the batch.
func TestFallbackOneBadMessageDoesNotBlockTheOthers(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1)
	env.stop()
	env.cfg.RoutingKeys["unset"] = "HEALTHROUTER_PD_UNSET"
	env.cfg.Routes = append([]config.Route{{Match: map[string]string{"host": "db-9"}, Key: "unset"}}, env.cfg.Routes...)
	env.restart()

	db9 := hostAlert("eu", "db-9", health.SeverityCritical)
	err := env.fb.Update(t0.Add(2*time.Hour), grafanaSince(t0), []health.Alert{db9, nas1})
	if err == nil || !strings.Contains(err.Error(), "HEALTHROUTER_PD_UNSET is not set") || !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("Update error = %v, want the unset key named", err)
	}
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })
	// web-1 cleared and nas-1 fired in the same batch as the refused page.
	assertOpen(t, env, "storage:host/eu/nas-1/error")
	if got := env.fb.Open(); !reflect.DeepEqual(got, []string{"host/eu/nas-1"}) {
		t.Errorf("tracked incidents = %v", got)
	}
}

func TestFallbackWaitsForThePendingPeriod(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{Pending: config.Pending{
		Host: config.Duration(2 * time.Minute), Region: config.Duration(time.Minute)}})
	down := grafanaSince(t0)
	now := t0.Add(time.Hour) // fallback active from the first update

	blip := hostAlert("eu", "web-2", health.SeverityCritical)
	blip.Since = now
	region := dnsWarn
	region.Since = now
	steps := []struct {
		name   string
		at     time.Duration
		alerts []health.Alert
		open   []string
	}{
		{"fresh host and region alerts wait", 0, []health.Alert{blip, region}, nil},
		{"the host fails a few seconds, then the region alert suppresses it", 20 * time.Second,
			[]health.Alert{func() health.Alert { a := blip; a.Suppressed = health.SuppressedByRegion; return a }(), region}, nil},
		{"region alert past its minute", time.Minute, []health.Alert{region}, []string{"default:region/eu/dns/warning"}},
		{"host alert back, firing since now+90s", 90 * time.Second,
			[]health.Alert{func() health.Alert { a := blip; a.Since = now.Add(90 * time.Second); return a }(), region},
			[]string{"default:region/eu/dns/warning"}},
		{"still short of two minutes", 3*time.Minute + 29*time.Second,
			[]health.Alert{func() health.Alert { a := blip; a.Since = now.Add(90 * time.Second); return a }(), region},
			[]string{"default:region/eu/dns/warning"}},
		{"two minutes: paged", 3*time.Minute + 30*time.Second,
			[]health.Alert{func() health.Alert { a := blip; a.Since = now.Add(90 * time.Second); return a }(), region},
			[]string{"default:host/eu/web-2/critical", "default:region/eu/dns/warning"}},
		{"both clear: resolved at once", 4 * time.Minute, nil, nil},
	}
	for _, s := range steps {
		env.update(now.Add(s.at), down.UnreachableSince, s.alerts...)
		if got := env.open(); !reflect.DeepEqual(got, s.open) {
			t.Errorf("%s: open = %v, want %v", s.name, got, s.open)
		}
	}
	if inc, _ := env.pd.Incident(keyDefault, DedupKey(&blip)); inc.Opened != 1 {
		t.Errorf("web-2 opened %d times, want once (after its pending period)", inc.Opened)
	}
}

// The pending period runs from when an alert series starts firing
// unsuppressed, as Grafana sees healthrouter_alert, not from its checks'
// first failure (Since): a host released by a region alert or a window,
// or an alert at a new severity, waits its pending period again.
func TestFallbackPendingStartsWhenTheSeriesFires(t *testing.T) {
	pending := config.Pending{Host: config.Duration(2 * time.Minute), Region: config.Duration(time.Minute)}
	now := t0.Add(time.Hour) // fallback active from the first update
	failed := now.Add(-30 * time.Minute)
	host := hostAlert("eu", "web-3", health.SeverityCritical)
	host.Since = failed
	held := func(reason string) health.Alert {
		a := host
		a.Check, a.Suppressed = "conn", reason
		return a
	}
	warn := host
	warn.Severity = health.SeverityWarning
	type step struct {
		at     time.Duration
		alerts []health.Alert
		open   []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"released by the region alert", []step{
			{0, []health.Alert{held(health.SuppressedByRegion)}, nil},
			{10 * time.Second, []health.Alert{host}, nil},
			{2*time.Minute + 9*time.Second, []health.Alert{host}, nil},
			{2*time.Minute + 10*time.Second, []health.Alert{host}, []string{"default:host/eu/web-3/critical"}},
		}},
		{"released by a maintenance window", []step{
			{0, []health.Alert{held(health.SuppressedByMaintenance)}, nil},
			{time.Minute, []health.Alert{host}, nil},
			{2 * time.Minute, []health.Alert{held(health.SuppressedByMaintenance)}, nil},
			{3 * time.Minute, []health.Alert{host}, nil},
			{5 * time.Minute, []health.Alert{host}, []string{"default:host/eu/web-3/critical"}},
		}},
		{"firing before the first update: its Since counts", []step{
			{0, []health.Alert{host}, []string{"default:host/eu/web-3/critical"}},
		}},
		{"a new severity waits, its former incident stays open", []step{
			{0, []health.Alert{warn}, []string{"default:host/eu/web-3/warning"}},
			{time.Minute, []health.Alert{host}, []string{"default:host/eu/web-3/warning"}},
			{3 * time.Minute, []health.Alert{host}, []string{"default:host/eu/web-3/critical"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newFallbackEnv(t, FallbackOptions{Pending: pending})
			for _, s := range tt.steps {
				env.update(now.Add(s.at), t0, s.alerts...)
				if got := env.open(); !reflect.DeepEqual(got, s.open) {
					t.Errorf("at +%s: open = %v, want %v", s.at, got, s.open)
				}
			}
		})
	}
}

// A restart keeps when each series started firing: a host released just
// before it still waits out its pending period, and one that started
// while the process was down counts from the last record at the earliest.
func TestFallbackPendingSurvivesRestart(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{Pending: config.Pending{Host: config.Duration(2 * time.Minute), Region: config.Duration(time.Minute)}})
	now := t0.Add(time.Hour)
	host := hostAlert("eu", "web-3", health.SeverityCritical)
	host.Since = now.Add(-30 * time.Minute)
	held := host
	held.Check, held.Suppressed = "conn", health.SuppressedByRegion
	other := hostAlert("eu", "web-4", health.SeverityCritical)
	other.Since = now.Add(-30 * time.Minute)

	env.update(now, t0, held)
	env.update(now.Add(10*time.Second), t0, host) // released
	env.restart()
	for _, s := range []struct {
		at   time.Duration
		open []string
	}{
		{20 * time.Second, nil},
		{2*time.Minute + 9*time.Second, nil},
		{2*time.Minute + 10*time.Second, []string{"default:host/eu/web-3/critical"}},
	} {
		env.update(now.Add(s.at), t0, host)
		if got := env.open(); !reflect.DeepEqual(got, s.open) {
			t.Errorf("at +%s: open = %v, want %v", s.at, got, s.open)
		}
	}
	// web-4 is absent from the last record (saved at +20s, when the set
	// last changed): it started firing after that, and waits from then.
	env.restart()
	env.update(now.Add(2*time.Minute+11*time.Second), t0, host, other)
	assertOpen(t, env, "default:host/eu/web-3/critical")
	env.update(now.Add(2*time.Minute+20*time.Second), t0, host, other)
	assertOpen(t, env, "default:host/eu/web-3/critical", "default:host/eu/web-4/critical")
}

func TestFallbackSeverityChangeIsANewIncident(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	warn := dnsWarn
	crit := dnsWarn
	crit.Severity = health.SeverityCritical
	now := t0.Add(time.Hour)

	env.update(now, t0, warn)
	assertOpen(t, env, "default:region/eu/dns/warning")
	// Escalation: a new incident at high urgency, the warning resolved.
	env.update(now.Add(time.Minute), t0, crit)
	assertOpen(t, env, "default:region/eu/dns/critical")
	if inc, _ := env.pd.Incident(keyDefault, DedupKey(&warn)); inc.Open || inc.Resolves != 1 {
		t.Errorf("warning incident %+v: want resolved", inc)
	}
	if inc, _ := env.pd.Incident(keyDefault, DedupKey(&crit)); inc.Last == nil || inc.Last.Severity != "critical" || inc.Opened != 1 {
		t.Errorf("critical incident %+v", inc)
	}
	// Steady: nothing more.
	sent := len(env.pd.Events())
	env.update(now.Add(2*time.Minute), t0, crit)
	if got := len(env.pd.Events()); got != sent {
		t.Errorf("%d events for an unchanged alert", got-sent)
	}
	// A route on severity sends the new incident through another key; the
	// old one is resolved through its own.
	env.cfg.Routes = append(env.cfg.Routes, config.Route{Match: map[string]string{"severity": "error"}, Key: "storage"})
	errAlert := dnsWarn
	errAlert.Severity = health.SeverityError
	env.update(now.Add(3*time.Minute), t0, errAlert)
	assertOpen(t, env, "storage:region/eu/dns/error")
	// The restart keeps the severity: no re-page.
	env.restart()
	sent = len(env.pd.Events())
	env.update(now.Add(4*time.Minute), t0, errAlert)
	if got := len(env.pd.Events()); got != sent {
		t.Errorf("%d events after a restart for an unchanged alert", got-sent)
	}
}

// Records written before severities were tracked stand for any severity:
// an upgrade does not page every open alert again.
func TestFallbackAdoptsRecordsWithoutSeverity(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1)
	env.stop()
	legacy := `{"dedup_key":"healthrouter/host/eu/web-1","key":"default","opened":"2025-06-01T13:00:00Z"}`
	if err := env.store.kv("pagerduty_fallback").Put("incident/host/eu/web-1", []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	env.restart()
	sent := len(env.pd.Events())
	env.update(t0.Add(2*time.Hour), t0, web1)
	if got := len(env.pd.Events()); got != sent {
		t.Fatalf("%d events for an alert with a legacy record", got-sent)
	}
	// It clears: the resolve uses the recorded dedup key.
	env.update(t0.Add(3*time.Hour), t0)
	if ev := env.pd.Events()[len(env.pd.Events())-1]; ev.Action != ActionResolve || ev.DedupKey != "healthrouter/host/eu/web-1" {
		t.Errorf("last event %+v, want the resolve of the legacy dedup key", ev)
	}
}

// A key whose variable is unset at a restart is not a replaced key: its
// incidents stay, to be resolved once it is set again.
func TestUnsetKeyKeepsIncidents(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	env.cfg.Keys["storage"] = ""
	env.restart()
	if got := env.fb.Open(); len(got) != 2 {
		t.Errorf("restored incidents = %v, want both", got)
	}
}

// With resolve_on_recovery off, recovery withdraws queued triggers; if
// that fails, direct paging stays active and the next update tries again.
func TestFailedWithdrawKeepsDirectPagingActive(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	off := false
	env.cfg.ResolveOnRecovery = &off
	fb, err := NewFallback(env.cfg, failingWithdraw{env.ob}, env.store.kv("fallback_failing_withdraw"),
		FallbackOptions{Registerer: prometheus.NewRegistry(), Logger: env.log})
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Update(t0.Add(time.Hour), grafanaSince(t0), []health.Alert{web1}); err != nil {
		t.Fatal(err)
	}
	if err := fb.Update(t0.Add(2*time.Hour), grafanaSince(time.Time{}), []health.Alert{web1}); err == nil || !fb.Active() {
		t.Errorf("failed withdraw: err %v, active %v; want an error and still active", err, fb.Active())
	}
}

// failingWithdraw is an Enqueuer whose Withdraw fails, as on a full disk.
type failingWithdraw struct{ Enqueuer }

func (failingWithdraw) Withdraw(...Message) error { return errors.New("disk full") }
