package pagerduty

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PagerDuty/go-pagerduty"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/internal/fakeclock"
	"github.com/healthrouter/healthrouter/pkg/pagerduty/pagerdutytest"
)

// outboxEnv is an outbox on a real store, talking to the fake PagerDuty.
type outboxEnv struct {
	t     *testing.T
	cfg   *config.PagerDuty
	pd    *pagerdutytest.Server
	store *testStore
	clock Clock
	reg   *prometheus.Registry
	log   *zap.Logger
	logs  *observer.ObservedLogs
	ob    *Outbox
	stop  func()
	// onRejected is the outbox's OutboxOptions.OnRejected.
	onRejected func(Message)
}

func newOutboxEnv(t *testing.T, pd *pagerdutytest.Server, clock Clock) *outboxEnv {
	t.Helper()
	log, logs := observedLogger()
	env := &outboxEnv{t: t, cfg: testConfig(pd.URL()), pd: pd, store: newTestStore(t), clock: clock, log: log, logs: logs}
	return env
}

// drainedLen waits briefly for the outbox to delete what it delivered (the
// delete follows PagerDuty's answer) and returns the queue's length.
func (e *outboxEnv) drainedLen() int {
	q := e.store.queue("pagerduty")
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return q.Len()
}

// build makes a fresh Outbox over the current store, as a (re)start does.
func (e *outboxEnv) build() *Outbox {
	e.t.Helper()
	e.reg = prometheus.NewRegistry()
	ob, err := NewOutbox(e.cfg, e.store.queue("pagerduty"), e.store.kv("pagerduty_open"),
		OutboxOptions{Logger: e.log, Clock: e.clock, Registerer: e.reg, OnRejected: e.onRejected})
	if err != nil {
		e.t.Fatalf("NewOutbox: %v", err)
	}
	e.ob = ob
	return ob
}

// run starts delivery; the returned stop waits for Run to return.
func (e *outboxEnv) run() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ob := e.ob
	go func() { done <- ob.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Errorf("Run did not return after cancel")
		}
	}
	e.t.Cleanup(e.stop)
}

func (e *outboxEnv) enqueue(msgs ...Message) {
	e.t.Helper()
	if err := e.ob.Enqueue(msgs...); err != nil {
		e.t.Fatalf("Enqueue: %v", err)
	}
}

func trigger(key string, a health.Alert) Message {
	return Message{Key: key, Event: Event(&a, "https://hr.example.com")}
}

func resolve(key string, a health.Alert) Message {
	return Message{Key: key, Event: ResolveEvent(DedupKey(&a))}
}

func TestOutboxDeliversInOrderPerKey(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	env.run()

	a1 := hostAlert("eu", "web-1", health.SeverityCritical)
	a2 := hostAlert("eu", "nas-1", health.SeverityError)
	env.enqueue(trigger("default", a1), trigger("storage", a2))
	waitFor(t, "both triggers", func() bool { return env.ob.Depth() == 0 && len(pd.Events()) == 2 })
	env.enqueue(resolve("default", a1))
	waitFor(t, "the resolve", func() bool { return env.ob.Depth() == 0 && len(pd.Events()) == 3 })

	inc1, _ := pd.Incident(keyDefault, DedupKey(&a1))
	if inc1.Open || inc1.Opened != 1 || inc1.Resolves != 1 {
		t.Errorf("web-1 incident = %+v, want opened once and resolved", inc1)
	}
	inc2, _ := pd.Incident(keyStorage, DedupKey(&a2))
	if !inc2.Open || inc2.Triggers != 1 {
		t.Errorf("nas-1 incident = %+v, want open", inc2)
	}
	if p := inc2.Last; p == nil || p.Severity != "error" || p.Component != "nas-1" || p.Group != "eu" || p.Class != "host" {
		t.Errorf("nas-1 payload = %+v", p)
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultSent); got != 2 {
		t.Errorf("sent triggers = %v, want 2", got)
	}
	if got := metricValue(t, env.reg, "healthrouter_pagerduty_send_duration_seconds", nil); got != 3 {
		t.Errorf("send duration samples = %v, want 3", got)
	}
	if n := env.drainedLen(); n != 0 {
		t.Errorf("queue holds %d events after delivery", n)
	}
	open := map[string]string{}
	_ = env.store.kv("pagerduty_open").Scan(func(k string, v []byte) bool { open[k] = string(v); return true })
	if len(open) != 1 || open[DedupKey(&a2)] != "storage" {
		t.Errorf("open incidents recorded = %v, want only nas-1 on storage", open)
	}
}

func TestOutbox429StormLosesNothingAndKeepsTheBudget(t *testing.T) {
	clock := newFakeClock()
	// PagerDuty's own limit is below ours, and a storm of 429s comes first:
	// both must be waited out without losing or duplicating anything.
	pd := newFakePD(t, pagerdutytest.WithClock(clock.Now), pagerdutytest.WithRateLimit(90, time.Minute))
	pd.FailNext(40, http.StatusTooManyRequests)
	env := newOutboxEnv(t, pd, clock)
	env.build()

	const perKey = 150
	var msgs []Message
	var alerts []health.Alert
	for i := range perKey {
		for _, key := range []string{"default", "storage"} {
			a := hostAlert("eu", fmt.Sprintf("%s-%03d", key, i), health.SeverityCritical)
			alerts = append(alerts, a)
			msgs = append(msgs, trigger(key, a))
		}
	}
	env.enqueue(msgs...)
	env.run()
	passed := clock.RunUntil(t, 6*time.Hour, func() bool { return env.ob.Depth() == 0 })
	t.Logf("delivered %d events in %v of clock time; statuses %v", len(msgs), passed, pd.Statuses())

	for _, a := range alerts {
		key := keyDefault
		if strings.HasPrefix(a.Host, "storage") {
			key = keyStorage
		}
		inc, ok := pd.Incident(key, DedupKey(&a))
		if !ok || inc.Opened != 1 || inc.Triggers != 1 {
			t.Fatalf("%s: incident %+v (found %v), want triggered exactly once", a.Host, inc, ok)
		}
	}
	for _, key := range []string{keyDefault, keyStorage} {
		if got := pd.MaxRequestsInWindow(key, time.Minute); got > env.cfg.RatePerMinute {
			t.Errorf("%d requests within one minute on a key, budget %d", got, env.cfg.RatePerMinute)
		}
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultSent); got != 2*perKey {
		t.Errorf("sent = %v, want %d", got, 2*perKey)
	}
	assertLogsClean(t, env.logs)
	assertMetricsClean(t, env.reg)
	limited := eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited)
	if want := float64(pd.Statuses()[http.StatusTooManyRequests]); limited != want || limited <= 40 {
		t.Errorf("rate_limited = %v, PagerDuty answered 429 %v times", limited, want)
	}
}

// TestOutboxKeepsItsOwnBudget: with a PagerDuty that would take more,
// the outbox itself holds each key to rate_per_minute, never drawing a 429.
func TestOutboxKeepsItsOwnBudget(t *testing.T) {
	clock := newFakeClock()
	pd := newFakePD(t, pagerdutytest.WithClock(clock.Now), pagerdutytest.WithRateLimit(100000, time.Minute))
	env := newOutboxEnv(t, pd, clock)
	env.build()
	const perKey = 150
	var msgs []Message
	for i := range perKey {
		for _, key := range []string{"default", "storage"} {
			msgs = append(msgs, trigger(key, hostAlert("eu", fmt.Sprintf("%s-%03d", key, i), health.SeverityCritical)))
		}
	}
	env.enqueue(msgs...)
	env.run()
	passed := clock.RunUntil(t, time.Hour, func() bool { return env.ob.Depth() == 0 })
	for _, key := range []string{keyDefault, keyStorage} {
		if got := pd.MaxRequestsInWindow(key, time.Minute); got > env.cfg.RatePerMinute || got < env.cfg.RatePerMinute/2 {
			t.Errorf("%d requests within one minute on a key, want at most the budget %d and near it", got, env.cfg.RatePerMinute)
		}
	}
	if passed < time.Minute {
		t.Errorf("%d events per key delivered in %v: faster than %d a minute", perKey, passed, env.cfg.RatePerMinute)
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultSent); got != 2*perKey {
		t.Errorf("sent = %v, want %d", got, 2*perKey)
	}
	if n := pd.Statuses()[http.StatusTooManyRequests]; n != 0 {
		t.Errorf("PagerDuty answered 429 %d times", n)
	}
}

func TestOutboxRetries5xxAndTimeouts(t *testing.T) {
	clock := newFakeClock()
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, clock)
	env.cfg.Timeout = config.Duration(150 * time.Millisecond)
	env.build()
	env.run()

	pd.FailNext(2, http.StatusServiceUnavailable)
	pd.FailNext(1, http.StatusBadGateway)
	a := hostAlert("eu", "web-1", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	clock.RunUntil(t, time.Hour, func() bool { return env.ob.Depth() == 0 })

	// A PagerDuty that does not answer in time: the client gives up and the
	// event is retried once it answers again.
	pd.SetDelay(2 * time.Second)
	b := hostAlert("eu", "web-2", health.SeverityCritical)
	env.enqueue(trigger("default", b))
	waitFor(t, "a timed-out attempt", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRetried) >= 4 })
	pd.SetDelay(0)
	clock.RunUntil(t, time.Hour, func() bool { return env.ob.Depth() == 0 })

	for _, al := range []health.Alert{a, b} {
		if inc, _ := pd.Incident(keyDefault, DedupKey(&al)); inc.Triggers != 1 || !inc.Open {
			t.Errorf("%s: %+v, want one trigger", al.Host, inc)
		}
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultRetried); got < 4 {
		t.Errorf("retried = %v, want at least 4", got)
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultRejected); got != 0 {
		t.Errorf("rejected = %v: retriable errors must not drop", got)
	}
	if len(env.logs.FilterMessage("PagerDuty event not accepted; will retry").All()) < 4 {
		t.Errorf("retries not logged")
	}
	assertLogsClean(t, env.logs)
}

func TestOutboxRestartDeliversEverythingOnce(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	env.run()

	var alerts []health.Alert
	for i := range 20 {
		alerts = append(alerts, hostAlert("eu", fmt.Sprintf("h%02d", i), health.SeverityCritical))
	}
	// Before the outage: five incidents opened.
	for _, a := range alerts[:5] {
		env.enqueue(trigger("default", a))
	}
	waitFor(t, "first five", func() bool { return env.ob.Depth() == 0 })

	// PagerDuty fails; more events queue up: triggers, and the resolve of
	// an incident opened before.
	pd.FailNext(100000, http.StatusInternalServerError)
	for _, a := range alerts[5:] {
		env.enqueue(trigger("default", a))
	}
	env.enqueue(resolve("default", alerts[0]))
	waitFor(t, "failed attempts", func() bool { return pd.Statuses()[http.StatusInternalServerError] >= 1 })
	env.stop()
	depthGauge := func() float64 { return metricValue(t, env.reg, "healthrouter_pagerduty_outbox_depth", nil) }
	if got := env.ob.Depth(); got != 16 || depthGauge() != 16 {
		t.Fatalf("depth at shutdown = %d, gauge %v, want 16", got, depthGauge())
	}

	// Restart: the store is closed and reopened, a new outbox loads it.
	env.store.reopen()
	pd.ClearFaults()
	before := len(pd.Events())
	env.build()
	if got := env.ob.Depth(); got != 16 || depthGauge() != 16 {
		t.Fatalf("depth after restart = %d, gauge %v, want 16", got, depthGauge())
	}
	env.run()
	waitFor(t, "delivery after restart", func() bool { return env.ob.Depth() == 0 })
	if got := depthGauge(); got != 0 {
		t.Errorf("depth gauge %v after delivery, want 0", got)
	}

	if got := len(pd.Events()) - before; got != 16 {
		t.Errorf("%d events accepted after restart, want 16", got)
	}
	for i, a := range alerts {
		inc, _ := pd.Incident(keyDefault, DedupKey(&a))
		if inc.Opened != 1 || inc.Triggers != 1 {
			t.Errorf("%s: %+v, want triggered once", a.Host, inc)
		}
		if wantOpen := i != 0; inc.Open != wantOpen {
			t.Errorf("%s: open = %v, want %v", a.Host, inc.Open, wantOpen)
		}
	}
	if n := env.drainedLen(); n != 0 {
		t.Errorf("queue holds %d after delivery", n)
	}
}

func TestOutboxMergesMootPairs(t *testing.T) {
	a := hostAlert("eu", "flappy", health.SeverityCritical)
	dk := DedupKey(&a)
	tests := []struct {
		name string
		// opened: a trigger for a was delivered before the steps.
		opened bool
		steps  [][]Message // one Enqueue call each, before delivery starts
		// want at PagerDuty, and merged counts by action
		wantEvents       []string
		wantOpen         bool
		mergedT, mergedR float64
		wantSentResolves float64
	}{
		{
			name:    "trigger then resolve: neither is sent",
			steps:   [][]Message{{trigger("default", a)}, {resolve("default", a)}},
			mergedT: 1, mergedR: 1,
		},
		{
			name:    "in one batch",
			steps:   [][]Message{{trigger("default", a), resolve("default", a)}},
			mergedT: 1, mergedR: 1,
		},
		{
			name:    "repeated triggers then resolve",
			steps:   [][]Message{{trigger("default", a)}, {trigger("default", a)}, {resolve("default", a)}},
			mergedT: 2, mergedR: 1,
		},
		{
			name:       "incident open: the re-trigger is moot, the resolve is sent",
			opened:     true,
			steps:      [][]Message{{trigger("default", a)}, {resolve("default", a)}},
			wantEvents: []string{"trigger", "resolve"}, // the first trigger was before the steps
			mergedT:    1, wantSentResolves: 1,
		},
		{
			name:       "resolve then trigger is not moot",
			opened:     true,
			steps:      [][]Message{{resolve("default", a)}, {trigger("default", a)}},
			wantEvents: []string{"trigger", "resolve", "trigger"},
			wantOpen:   true, wantSentResolves: 1,
		},
		{
			name:             "a resolve queued before the trigger keeps the pair",
			opened:           true,
			steps:            [][]Message{{resolve("default", a)}, {trigger("default", a)}, {resolve("default", a)}},
			wantEvents:       []string{"trigger", "resolve", "trigger", "resolve"},
			wantSentResolves: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pd := newFakePD(t)
			env := newOutboxEnv(t, pd, SystemClock{})
			env.build()
			if tt.opened {
				env.run()
				env.enqueue(trigger("default", a))
				waitFor(t, "first trigger", func() bool { return env.ob.Depth() == 0 })
				env.stop()
				env.build() // same store: knows the incident is open
			}
			for _, step := range tt.steps {
				env.enqueue(step...)
			}
			env.run()
			waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

			var got []string
			for _, ev := range pd.Events() {
				got = append(got, ev.Action)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantEvents, ",") {
				t.Errorf("PagerDuty got %v, want %v", got, tt.wantEvents)
			}
			inc, _ := pd.Incident(keyDefault, dk)
			if inc.Open != tt.wantOpen {
				t.Errorf("incident open = %v, want %v", inc.Open, tt.wantOpen)
			}
			if got := eventsTotal(t, env.reg, ActionTrigger, ResultMerged); got != tt.mergedT {
				t.Errorf("merged triggers = %v, want %v", got, tt.mergedT)
			}
			if got := eventsTotal(t, env.reg, ActionResolve, ResultMerged); got != tt.mergedR {
				t.Errorf("merged resolves = %v, want %v", got, tt.mergedR)
			}
			if got := eventsTotal(t, env.reg, ActionResolve, ResultSent); got != tt.wantSentResolves {
				t.Errorf("sent resolves = %v, want %v", got, tt.wantSentResolves)
			}
			if n := env.drainedLen(); n != 0 {
				t.Errorf("queue holds %d", n)
			}
		})
	}
}

func TestOutboxDoesNotMergeATriggerInFlight(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	env.run()
	pd.SetDelay(300 * time.Millisecond)
	a := hostAlert("eu", "slow", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "the trigger in flight", func() bool { return len(pd.Requests(keyDefault)) == 1 })
	env.enqueue(resolve("default", a))
	pd.SetDelay(0)
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })
	inc, _ := pd.Incident(keyDefault, DedupKey(&a))
	if inc.Opened != 1 || inc.Resolves != 1 || inc.Open {
		t.Errorf("incident %+v: want opened and resolved", inc)
	}
	if got := eventsTotal(t, env.reg, ActionResolve, ResultMerged); got != 0 {
		t.Errorf("merged a resolve whose trigger was in flight")
	}
}

func TestOutboxDropsRejectedEvents(t *testing.T) {
	const ghostKey = "GhostKeyUnknownToPagerDuty000003"
	secrets := append(secrets, ghostKey)
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	log, logs := observedLogger()
	env.log = log
	env.cfg.RoutingKeys["ghost"] = "HEALTHROUTER_PD_GHOST"
	env.cfg.Keys["ghost"] = ghostKey
	var mu sync.Mutex
	var told []string
	env.onRejected = func(m Message) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, m.Key+" "+m.Event.Action+" "+m.Event.DedupKey)
	}
	env.build()
	env.run()

	bad := hostAlert("eu", "bad", health.SeverityCritical)
	badMsg := trigger("default", bad)
	badMsg.Event.Payload.Severity = "fatal" // PagerDuty answers 400
	good := hostAlert("eu", "good", health.SeverityCritical)
	env.enqueue(badMsg, trigger("default", good), trigger("ghost", hostAlert("eu", "ghost", health.SeverityError)))
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

	if got := eventsTotal(t, env.reg, ActionTrigger, ResultRejected); got != 2 {
		t.Errorf("rejected = %v, want 2", got)
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultRetried); got != 0 {
		t.Errorf("a 400 was retried")
	}
	if pd.Statuses()[http.StatusBadRequest] != 2 {
		t.Errorf("statuses %v: want two 400s, each sent once", pd.Statuses())
	}
	if inc, _ := pd.Incident(keyDefault, DedupKey(&good)); !inc.Open {
		t.Errorf("the event after a rejected one was not delivered")
	}
	// Whoever queued them hears of the two drops, by key name, never key.
	ghost := hostAlert("eu", "ghost", health.SeverityError)
	waitFor(t, "OnRejected", func() bool { mu.Lock(); defer mu.Unlock(); return len(told) == 2 })
	sort.Strings(told)
	if want := []string{"default trigger " + DedupKey(&bad), "ghost trigger " + DedupKey(&ghost)}; !reflect.DeepEqual(told, want) {
		t.Errorf("OnRejected got %q, want %q", told, want)
	}
	rejected := logs.FilterMessage("PagerDuty rejected event; dropped").All()
	if len(rejected) != 2 {
		t.Fatalf("want 2 rejection logs, got %d", len(rejected))
	}
	if rejected[0].ContextMap()["dedup_key"] == nil || rejected[0].ContextMap()["key"] == nil {
		t.Errorf("rejection log lacks dedup_key or key name: %v", rejected[0].ContextMap())
	}
	for _, e := range logs.All() {
		for _, s := range secrets {
			if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), s) {
				t.Errorf("log leaks a key: %s %v", e.Message, e.ContextMap())
			}
		}
	}
	assertMetricsClean(t, env.reg)
}

func TestOutboxEnqueueValidation(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.cfg.RoutingKeys["unset"] = "HEALTHROUTER_PD_UNSET" // named, env var empty
	env.build()
	a := hostAlert("eu", "h", health.SeverityCritical)
	withKey := trigger("default", a)
	withKey.Event.RoutingKey = keyDefault
	noPayload := trigger("default", a)
	noPayload.Event.Payload = nil
	noDedup := resolve("default", a)
	noDedup.Event.DedupKey = ""
	longDedup := resolve("default", a)
	longDedup.Event.DedupKey = strings.Repeat("k", 256)
	badAction := trigger("default", a)
	badAction.Event.Action = "escalate"

	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"unknown key name", trigger("nope", a), `routing key "nope" is not configured`},
		{"key without value", trigger("unset", a), "HEALTHROUTER_PD_UNSET is not set"},
		{"routing key in the event", withKey, "carries a routing key"},
		{"trigger without payload", noPayload, "without payload"},
		{"no dedup key", noDedup, "dedup_key"},
		{"dedup key too long", longDedup, "dedup_key"},
		{"unknown action", badAction, "escalate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := env.ob.Enqueue(trigger("default", a), tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			assertNoSecrets(t, "error", err.Error())
			if env.ob.Depth() != 0 || env.store.queue("pagerduty").Len() != 0 {
				t.Errorf("a failed Enqueue queued something")
			}
		})
	}
}

func TestOutboxStoresNoSecrets(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	env.enqueue(trigger("default", hostAlert("eu", "a", health.SeverityCritical)),
		trigger("storage", hostAlert("eu", "b", health.SeverityCritical)))
	n := 0
	err := env.store.queue("pagerduty").Scan(func(_ uint64, data []byte) bool {
		n++
		assertNoSecrets(t, "queued record", string(data))
		if !strings.Contains(string(data), `"key":"`) {
			t.Errorf("record does not name its key: %s", data)
		}
		return true
	})
	if err != nil || n != 2 {
		t.Fatalf("scan: %v, %d records", err, n)
	}
	env.run()
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })
	_ = env.store.kv("pagerduty_open").Scan(func(k string, v []byte) bool {
		assertNoSecrets(t, "open incident record", k+string(v))
		return true
	})
}

func TestOutboxDropsUnloadableRecords(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	q := env.store.queue("pagerduty")
	if _, err := q.Append([]byte("{not json"), []byte(`{"key":"retired","event":{"event_action":"resolve","dedup_key":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	env.build()
	env.enqueue(trigger("default", hostAlert("eu", "a", health.SeverityCritical)))
	if got := env.ob.Depth(); got != 1 {
		t.Errorf("depth = %d, want only the new event", got)
	}
	if got := env.store.queue("pagerduty").Len(); got != 1 {
		t.Errorf("queue length = %d: unloadable records should be deleted", got)
	}
	if got := eventsTotal(t, env.reg, "unknown", ResultRejected) + eventsTotal(t, env.reg, ActionResolve, ResultRejected); got != 2 {
		t.Errorf("rejected at load = %v, want 2", got)
	}
}

func TestOutboxRunTwice(t *testing.T) {
	env := newOutboxEnv(t, newFakePD(t), SystemClock{})
	env.build()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := env.ob.Run(ctx); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := env.ob.Run(ctx); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ResultSent},
		{pagerduty.APIError{StatusCode: 429}, ResultRateLimited},
		{pagerduty.APIError{StatusCode: 400}, ResultRejected},
		{pagerduty.APIError{StatusCode: 413}, ResultRejected},
		{pagerduty.APIError{StatusCode: 500}, ResultRetried},
		{pagerduty.APIError{StatusCode: 503}, ResultRetried},
		{pagerduty.APIError{StatusCode: 404}, ResultRetried}, // a proxy or URL problem: fixable, keep the event
		{pagerduty.APIError{StatusCode: 401}, ResultRetried},
		{fmt.Errorf("wrapped: %w", pagerduty.APIError{StatusCode: 400}), ResultRejected},
		{&EventError{StatusCode: 400, Errors: []string{"Invalid routing key"}, err: pagerduty.APIError{StatusCode: 400}}, ResultRejected},
		{&EventError{StatusCode: 429, Status: "throttle event", err: pagerduty.APIError{StatusCode: 429}}, ResultRateLimited},
		{errors.New("error calling the API endpoint: connection refused"), ResultRetried},
		{context.DeadlineExceeded, ResultRetried},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestRejectionCause(t *testing.T) {
	refused := func(status int, errs ...string) error {
		return &EventError{StatusCode: status, Message: "Event object is invalid", Errors: errs, err: pagerduty.APIError{StatusCode: status}}
	}
	tests := []struct {
		err  error
		want string
	}{
		{refused(400, "Invalid routing key"), CauseRoutingKey},
		{refused(400, "Length of 'routing_key' is incorrect (should be 32 characters)"), CauseRoutingKey},
		{refused(400, "'payload.source' is missing or blank"), CauseInvalid},
		{refused(400, "Request body is larger than 512 KB"), CauseTooLarge},
		{refused(413), CauseTooLarge},
		{pagerduty.APIError{StatusCode: 413}, CauseTooLarge},
		{pagerduty.APIError{StatusCode: 400}, CauseUnknown},
	}
	for _, tt := range tests {
		if got := rejectionCause(tt.err); got != tt.want {
			t.Errorf("rejectionCause(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestEventsClientErrors(t *testing.T) {
	pd := newFakePD(t)
	cfg := testConfig(pd.URL())
	c := newEventsClient(cfg)
	send := func(ev pagerduty.V2Event) error {
		_, err := c.ManageEventWithContext(context.Background(), &ev)
		return err
	}
	ev := Event(&web1, "")
	ev.RoutingKey = keyDefault
	if err := send(ev); err != nil {
		t.Fatalf("good event: %v", err)
	}

	// PagerDuty's own answer: its reason, and the status code underneath.
	bad := ev
	bad.Payload = &pagerduty.V2Payload{Summary: "s", Severity: "critical"}
	err := send(bad)
	var refusal *EventError
	var apiErr pagerduty.APIError
	if !errors.As(err, &refusal) || !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Fatalf("err = %#v, want an EventError over a 400 APIError", err)
	}
	if want := "PagerDuty answered 400: Event object is invalid: 'payload.source' is missing or blank"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}

	// A bare error page (a load balancer's 503): nothing to read, still a
	// go-pagerduty error that classify retries.
	pd.FailNext(1, http.StatusServiceUnavailable)
	err = send(ev)
	if errors.As(err, &refusal) || classify(err) != ResultRetried {
		t.Errorf("503 page: err = %v, classify %q", err, classify(err))
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt <= 30; attempt++ {
		full := backoffMax
		if attempt < 7 {
			full = backoffBase << (attempt - 1)
		}
		for range 50 {
			d := backoff(attempt)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func BenchmarkOutboxEnqueue(b *testing.B) {
	pd := pagerdutytest.New(pagerdutytest.WithRoutingKeys(keyDefault, keyStorage))
	defer pd.Close()
	ts := newTestStore(b)
	ob, err := NewOutbox(testConfig(pd.URL()), ts.queue("pagerduty"), ts.kv("open"), OutboxOptions{})
	if err != nil {
		b.Fatal(err)
	}
	a := hostAlert("eu", "bench", health.SeverityCritical)
	msg := trigger("default", a)
	b.ReportAllocs()
	for b.Loop() {
		if err := ob.Enqueue(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A trigger whose send timed out may have opened an incident: a resolve
// enqueued while it waits to be retried must be sent, not merged away.
func TestOutboxNeverMergesAnAttemptedTrigger(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.cfg.Timeout = config.Duration(200 * time.Millisecond)
	env.build()
	env.run()
	pd.SetDelay(time.Second)
	a := hostAlert("eu", "slow", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "the timed-out trigger to wait for its retry", func() bool {
		return eventsTotal(t, env.reg, ActionTrigger, ResultRetried) == 1
	})
	pd.SetDelay(0)
	env.enqueue(resolve("default", a))
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

	var got []string
	for _, ev := range pd.Events() {
		got = append(got, ev.Action)
	}
	if strings.Join(got, ",") != "trigger,resolve" {
		t.Errorf("PagerDuty got %v, want the retried trigger and its resolve", got)
	}
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultMerged) + eventsTotal(t, env.reg, ActionResolve, ResultMerged); n != 0 {
		t.Errorf("%v events merged away", n)
	}
}

// A trigger whose every attempt failed to connect never reached PagerDuty:
// the resolve that clears it makes both moot, and PagerDuty, once back,
// is not paged for an alert that has already cleared.
func TestOutboxMergesATriggerThatNeverConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.cfg.EventsURL = closed
	env.build()
	env.run()
	a := hostAlert("eu", "gone", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "a refused connection", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRetried) >= 1 })
	env.enqueue(resolve("default", a))
	if d := env.ob.Depth(); d != 0 {
		t.Errorf("depth %d after the resolve, want the pair merged", d)
	}
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultMerged) + eventsTotal(t, env.reg, ActionResolve, ResultMerged); n != 2 {
		t.Errorf("%v events merged, want 2", n)
	}
}

// PagerDuty does not ingest an event it answers 429: a trigger refused so
// is as unsent as one that never connected, and the resolve that clears
// its alert makes both moot. On-call is not paged, once PagerDuty takes
// events again, for an alert that has already cleared.
func TestOutboxMergesARateLimitedTrigger(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	pd.FailNext(1000, http.StatusTooManyRequests)
	a := hostAlert("eu", "throttled", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited) >= 1 })
	env.enqueue(resolve("default", a))
	if d := env.ob.Depth(); d != 0 {
		t.Errorf("depth %d after the resolve, want the pair merged", d)
	}
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultMerged) + eventsTotal(t, env.reg, ActionResolve, ResultMerged); n != 2 {
		t.Errorf("%v events merged, want 2", n)
	}
	pd.ClearFaults()
	clock.Advance(time.Hour)
	assertDeliversOnly(t, env, pd, clock)
	if evs := pd.Events(); len(evs) != 1 {
		t.Errorf("PagerDuty got %d events, want only the probe: none for an alert that cleared while it answered 429", len(evs))
	}
}

// Withdraw takes back a trigger PagerDuty never ingested and leaves alone
// one it has: that incident stays open, and no resolve is sent for it.
func TestOutboxWithdrawTakesBackOnlyUnsentTriggers(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	sent := hostAlert("eu", "paged", health.SeverityCritical)
	env.enqueue(trigger("default", sent))
	waitFor(t, "the first trigger", func() bool { return env.ob.Depth() == 0 })
	pd.FailNext(1000, http.StatusTooManyRequests)
	unsent := hostAlert("eu", "throttled", health.SeverityCritical)
	env.enqueue(trigger("default", unsent))
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited) >= 1 })

	if err := env.ob.Withdraw(trigger("default", unsent)); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Withdraw(trigger) = %v, want ErrInvalidMessage", err)
	}
	gone := Message{Key: "gone", Event: ResolveEvent("healthrouter/host/eu/gone/critical")}
	if err := env.ob.Withdraw(resolve("default", sent), resolve("default", unsent), gone); err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	if d := env.ob.Depth(); d != 0 {
		t.Errorf("depth %d after withdrawing, want 0", d)
	}
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultWithdrawn); n != 1 {
		t.Errorf("%v triggers withdrawn, want 1", n)
	}
	pd.ClearFaults()
	clock.Advance(time.Hour)
	assertDeliversOnly(t, env, pd, clock)
	if inc, ok := pd.Incident(keyDefault, DedupKey(&sent)); !ok || !inc.Open || inc.Resolves != 0 {
		t.Errorf("the incident PagerDuty had = %+v (found %v), want left open", inc, ok)
	}
	if inc, ok := pd.Incident(keyDefault, DedupKey(&unsent)); ok {
		t.Errorf("the withdrawn trigger reached PagerDuty: %+v", inc)
	}
}

// A trigger withdrawn while its request is in flight is dropped when
// PagerDuty answers 429, not sent again after Grafana has taken over.
func TestOutboxWithdrawDuringAFailingSend(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	pd.SetDelay(300 * time.Millisecond)
	pd.FailNext(1, http.StatusTooManyRequests)
	a := hostAlert("eu", "in-flight", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "the request in flight", func() bool { return len(pd.Requests(keyDefault)) == 1 })
	if err := env.ob.Withdraw(resolve("default", a)); err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	waitFor(t, "the withdrawn trigger dropped", func() bool { return env.ob.Depth() == 0 })
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultWithdrawn); n != 1 {
		t.Errorf("%v triggers withdrawn, want 1", n)
	}
	pd.SetDelay(0)
	clock.Advance(time.Hour)
	assertDeliversOnly(t, env, pd, clock)
	if inc, ok := pd.Incident(keyDefault, DedupKey(&a)); ok {
		t.Errorf("the withdrawn trigger reached PagerDuty: %+v", inc)
	}
	// Nor after a restart: its record went with it.
	env.stop()
	env.build()
	if d := env.ob.Depth(); d != 0 {
		t.Errorf("depth %d after restart, want the withdrawn trigger gone from disk", d)
	}
}

// A head that backs off after a 429 and is then merged away takes its
// backoff with it: the page queued behind it goes out at once, not after
// the old wait.
func TestOutboxMergedHeadTakesItsBackoff(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	pd.FailNext(1000, http.StatusTooManyRequests)
	a := hostAlert("eu", "throttled", health.SeverityCritical)
	next := hostAlert("eu", "next", health.SeverityCritical)
	env.enqueue(trigger("default", a), trigger("default", next))
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRateLimited) >= 1 })
	if _, d := clock.AwaitSleep(t, 0); d <= 0 {
		t.Fatalf("the lane waits %v, want its backoff", d)
	}
	pd.ClearFaults()
	env.enqueue(resolve("default", a))
	// The clock stands still: only a drain that dropped the backoff sends.
	waitFor(t, "the next page without the old backoff", func() bool { return env.ob.Depth() == 0 })
	if _, ok := pd.Incident(keyDefault, DedupKey(&next)); !ok {
		t.Error("the next page did not reach PagerDuty")
	}
	if _, ok := pd.Incident(keyDefault, DedupKey(&a)); ok {
		t.Error("the merged trigger reached PagerDuty")
	}
}

// Withdrawing the same incident twice in one call takes its trigger back
// once and leaves the rest of the lane alone.
func TestOutboxWithdrawCountsEachTriggerOnce(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	pd.FailNext(1000, http.StatusServiceUnavailable)
	head := hostAlert("eu", "head", health.SeverityCritical)
	a := hostAlert("eu", "twice", health.SeverityCritical)
	env.enqueue(trigger("default", head), trigger("default", a))
	if err := env.ob.Withdraw(resolve("default", a), resolve("default", a)); err != nil {
		t.Fatal(err)
	}
	if d := env.ob.Depth(); d != 1 {
		t.Errorf("depth %d, want the head still queued", d)
	}
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultWithdrawn); n != 1 {
		t.Errorf("%v withdrawn, want 1", n)
	}
	env.build()
	if d := env.ob.Depth(); d != 1 {
		t.Errorf("depth %d after restart, want the head alone on disk", d)
	}
}

// assertDeliversOnly sends a probe trigger through the default lane and
// waits for it: anything queued before it would have reached PagerDuty
// first, so checks made after it can fail.
func assertDeliversOnly(t *testing.T, env *outboxEnv, pd *pagerdutytest.Server, clock *fakeclock.Clock) {
	t.Helper()
	probe := hostAlert("eu", "probe", health.SeverityCritical)
	env.enqueue(trigger("default", probe))
	clock.RunUntil(t, time.Hour, func() bool {
		_, ok := pd.Incident(keyDefault, DedupKey(&probe))
		return ok && env.ob.Depth() == 0
	})
}

// After a restart the head of a lane may have reached PagerDuty just before
// the process stopped: it counts as attempted. Later entries were never sent
// and still merge.
func TestOutboxRestartedHeadIsNotMerged(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	head := hostAlert("eu", "head", health.SeverityCritical)
	second := hostAlert("eu", "second", health.SeverityCritical)
	env.enqueue(trigger("default", head), trigger("default", second))
	env.build() // restart: the queue is reloaded
	env.enqueue(resolve("default", head), resolve("default", second))
	env.run()
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

	var got []string
	for _, ev := range pd.Events() {
		got = append(got, ev.Action+" "+strings.TrimPrefix(ev.DedupKey, "healthrouter/host/eu/"))
	}
	if want := "trigger head/critical,resolve head/critical"; strings.Join(got, ",") != want {
		t.Errorf("PagerDuty got %v, want %s", got, want)
	}
	if got := eventsTotal(t, env.reg, ActionTrigger, ResultMerged); got != 1 {
		t.Errorf("merged triggers = %v, want second's", got)
	}
}

func TestOutboxReportsWhyPagerDutyRefused(t *testing.T) {
	const ghostKey = "GhostKeyUnknownToPagerDuty000003"
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.cfg.RoutingKeys["ghost"] = "HEALTHROUTER_PD_GHOST"
	env.cfg.Keys["ghost"] = ghostKey
	env.build()
	env.run()

	bad := trigger("default", hostAlert("eu", "bad", health.SeverityCritical))
	bad.Event.Payload.Severity = "fatal"
	env.enqueue(bad, trigger("ghost", hostAlert("eu", "ghost", health.SeverityError)))
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

	reasons := map[string]string{}
	for _, e := range env.logs.FilterMessage("PagerDuty rejected event; dropped").All() {
		m := e.ContextMap()
		reasons[fmt.Sprint(m["key"])] = fmt.Sprint(m["reason"]) + " | " + fmt.Sprint(m["cause"])
	}
	want := map[string]string{
		"default": "Event object is invalid: 'payload.severity' is invalid (must be one of: critical, error, warning, info) | invalid",
		"ghost":   "Event object is invalid: Invalid routing key | routing_key",
	}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("logged reasons = %v\nwant %v", reasons, want)
	}
	if got := metricValue(t, env.reg, "healthrouter_pagerduty_rejections_total", map[string]string{"key": "ghost", "cause": CauseRoutingKey}); got != 1 {
		t.Errorf("routing_key rejections of ghost = %v, want 1", got)
	}
	if got := metricValue(t, env.reg, "healthrouter_pagerduty_rejections_total", map[string]string{"key": "default", "cause": CauseInvalid}); got != 1 {
		t.Errorf("invalid rejections of default = %v, want 1", got)
	}
	if got := env.ob.KeyErrors(); !reflect.DeepEqual(got, map[string]string{"ghost": "Event object is invalid: Invalid routing key"}) {
		t.Errorf("KeyErrors = %v, want only ghost's", got)
	}

	// The integration is created in PagerDuty: the next event goes through
	// and the key error clears.
	pd.AddRoutingKeys(ghostKey)
	env.enqueue(trigger("ghost", hostAlert("eu", "ghost-2", health.SeverityError)))
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })
	if got := env.ob.KeyErrors(); len(got) != 0 {
		t.Errorf("KeyErrors after an accepted event = %v", got)
	}
	for _, e := range env.logs.All() {
		if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), ghostKey) {
			t.Errorf("log leaks a key: %s %v", e.Message, e.ContextMap())
		}
	}
	assertLogsClean(t, env.logs)
	assertMetricsClean(t, env.reg)
}

func TestOutboxRefusesOversizedEvents(t *testing.T) {
	env := newOutboxEnv(t, newFakePD(t), SystemClock{})
	env.build()
	msg := trigger("default", hostAlert("eu", "big", health.SeverityCritical))
	msg.Event.Payload.Details = map[string]any{"blob": strings.Repeat("x", MaxEventBytes)}
	err := env.ob.Enqueue(msg)
	if !errors.Is(err, ErrInvalidMessage) || !strings.Contains(err.Error(), "over PagerDuty's limit") {
		t.Fatalf("Enqueue = %v, want an invalid-message error about the size", err)
	}
	if env.ob.Depth() != 0 {
		t.Errorf("oversized event queued")
	}
}

// An alert failing thousands of checks with long names still pages: Event
// keeps the body within PagerDuty's limit and the fake accepts it.
func TestOutboxDeliversAHostFailingEverything(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	env.build()
	env.run()
	a := hostAlert("eu", "everything", health.SeverityCritical)
	a.Checks = nil
	for i := range 5000 {
		a.Checks = append(a.Checks, fmt.Sprintf("check-%04d-%s", i, strings.Repeat("n", 20000)))
	}
	env.enqueue(trigger("default", a))
	waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })
	inc, ok := pd.Incident(keyDefault, DedupKey(&a))
	if !ok || !inc.Open {
		t.Fatalf("not paged: %+v (statuses %v)", inc, pd.Statuses())
	}
	if inc.Last.Details["checks_omitted"] != "5000 checks: names too long for one PagerDuty event" {
		t.Errorf("details %v", inc.Last.Details["checks_omitted"])
	}
}

// A lane whose head keeps failing with an answer that is neither a refusal
// nor a rate limit (a proxy's 403, say) is retried, and says why in
// Retrying until its head is delivered.
func TestOutboxReportsRetryingLanes(t *testing.T) {
	clock := newFakeClock()
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()

	pd.FailNext(3, http.StatusForbidden)
	a := hostAlert("eu", "web-1", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "a failed attempt", func() bool { return len(env.ob.Retrying()) == 1 })
	got := env.ob.Retrying()["default"]
	if !strings.HasPrefix(got, "attempt 1: ") || !strings.Contains(got, "403") {
		t.Errorf("Retrying()[default] = %q, want attempt 1 with the 403", got)
	}
	assertNoSecrets(t, "Retrying", got)
	clock.RunUntil(t, time.Hour, func() bool { return env.ob.Depth() == 0 })
	if got := env.ob.Retrying(); len(got) != 0 {
		t.Errorf("Retrying after delivery = %v", got)
	}
	if inc, _ := pd.Incident(keyDefault, DedupKey(&a)); inc.Triggers != 1 {
		t.Errorf("incident %+v, want one trigger after the 403s", inc)
	}
}

// TestOutboxMasksAnEchoedRoutingKey: when PagerDuty's error answer quotes
// the routing key, what the outbox reports of it (logs, KeyErrors,
// Retrying, metrics) shows the key masked.
func TestOutboxMasksAnEchoedRoutingKey(t *testing.T) {
	const ghostKey = "GhostKeyUnknownToPagerDuty000004"
	keys := append([]string{ghostKey}, secrets...)
	noKey := func(t *testing.T, where, text string) {
		t.Helper()
		for _, k := range keys {
			if strings.Contains(text, k) {
				t.Errorf("%s shows a routing key: %q", where, text)
			}
		}
	}
	logsHaveNoKey := func(t *testing.T, logs *observer.ObservedLogs) {
		t.Helper()
		for _, e := range logs.All() {
			noKey(t, "log message", e.Message)
			for k, v := range e.ContextMap() {
				noKey(t, "log field "+k, fmt.Sprint(v))
			}
		}
	}
	metricsHaveNoKey := func(t *testing.T, reg *prometheus.Registry) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					noKey(t, "metric "+mf.GetName()+" label", lp.GetName()+"="+lp.GetValue())
				}
			}
		}
	}

	t.Run("refusals", func(t *testing.T) {
		pd := newFakePD(t, pagerdutytest.WithRoutingKeyEcho())
		env := newOutboxEnv(t, pd, SystemClock{})
		env.cfg.RoutingKeys["ghost"] = "HEALTHROUTER_PD_GHOST"
		env.cfg.Keys["ghost"] = ghostKey
		env.build()
		env.run()

		bad := trigger("default", hostAlert("eu", "bad", health.SeverityCritical))
		bad.Event.Payload.Severity = "fatal"
		env.enqueue(bad, trigger("ghost", hostAlert("eu", "ghost", health.SeverityError)))
		waitFor(t, "delivery", func() bool { return env.ob.Depth() == 0 })

		want := map[string]string{"ghost": "Event object is invalid (routing_key [REDACTED]): Invalid routing key: [REDACTED]"}
		if got := env.ob.KeyErrors(); !reflect.DeepEqual(got, want) {
			t.Errorf("KeyErrors = %q\nwant %q", got, want)
		}
		// The answers did quote the keys, so the logs show them masked.
		reasons := map[string]string{}
		for _, e := range env.logs.FilterMessage("PagerDuty rejected event; dropped").All() {
			m := e.ContextMap()
			reasons[fmt.Sprint(m["key"])] = fmt.Sprint(m["error"]) + " | " + fmt.Sprint(m["reason"])
		}
		if len(reasons) != 2 {
			t.Fatalf("rejections logged for %v, want default and ghost", reasons)
		}
		for name, r := range reasons {
			if strings.Count(r, "[REDACTED]") < 2 {
				t.Errorf("%s: logged error and reason %q do not both show the masked key", name, r)
			}
		}
		logsHaveNoKey(t, env.logs)
		metricsHaveNoKey(t, env.reg)
	})

	t.Run("retries", func(t *testing.T) {
		clock := newFakeClock()
		pd := newFakePD(t, pagerdutytest.WithRoutingKeyEcho())
		env := newOutboxEnv(t, pd, clock)
		env.build()
		env.run()

		pd.FailNext(1, http.StatusTooManyRequests)
		a := hostAlert("eu", "web-1", health.SeverityCritical)
		env.enqueue(trigger("default", a))
		waitFor(t, "a throttled attempt", func() bool { return len(env.ob.Retrying()) == 1 })
		got := env.ob.Retrying()["default"]
		if !strings.HasPrefix(got, "attempt 1: ") || !strings.Contains(got, "(routing_key [REDACTED])") {
			t.Errorf("Retrying()[default] = %q, want attempt 1 with the throttle quoting the masked key", got)
		}
		noKey(t, "Retrying", got)
		clock.RunUntil(t, time.Hour, func() bool { return env.ob.Depth() == 0 })
		if inc, _ := pd.Incident(keyDefault, DedupKey(&a)); inc.Triggers != 1 {
			t.Errorf("incident %+v, want one trigger after the 429", inc)
		}
		logsHaveNoKey(t, env.logs)
		metricsHaveNoKey(t, env.reg)
	})
}

// A trigger PagerDuty answered 503 may have opened an incident: Withdraw
// leaves it queued, so it is sent and later resolved.
func TestWithdrawKeepsAttemptedTrigger(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	pd.FailNext(1000, http.StatusServiceUnavailable)
	a := hostAlert("eu", "x", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "a 503", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultRetried) >= 1 })
	if err := env.ob.Withdraw(resolve("default", a)); err != nil {
		t.Fatal(err)
	}
	if d := env.ob.Depth(); d != 1 {
		t.Errorf("depth %d, want the attempted trigger kept", d)
	}
}

// A dedup key whose resolve is queued behind a 429 has an incident open:
// Withdraw takes back neither the resolve nor the re-trigger after it.
func TestWithdrawKeepsQueuedResolveAndRetrigger(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	a := hostAlert("eu", "x", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "sent", func() bool { return env.ob.Depth() == 0 })
	pd.FailNext(1000, http.StatusTooManyRequests)
	env.enqueue(resolve("default", a))
	waitFor(t, "a 429", func() bool { return eventsTotal(t, env.reg, ActionResolve, ResultRateLimited) >= 1 })
	env.enqueue(trigger("default", a))
	if err := env.ob.Withdraw(resolve("default", a)); err != nil {
		t.Fatal(err)
	}
	if d := env.ob.Depth(); d != 2 {
		t.Errorf("depth %d, want the resolve and re-trigger kept", d)
	}
}

// A trigger withdrawn while in flight that PagerDuty then accepts counts
// as sent, not withdrawn.
func TestWithdrawDuringAcceptedSendCountsSent(t *testing.T) {
	pd := newFakePD(t)
	clock := newFakeClock()
	env := newOutboxEnv(t, pd, clock)
	env.build()
	env.run()
	pd.SetDelay(300 * time.Millisecond)
	a := hostAlert("eu", "x", health.SeverityCritical)
	env.enqueue(trigger("default", a))
	waitFor(t, "in flight", func() bool { return len(pd.Requests(keyDefault)) == 1 })
	if err := env.ob.Withdraw(resolve("default", a)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "settled", func() bool { return eventsTotal(t, env.reg, ActionTrigger, ResultSent) == 1 })
	if n := eventsTotal(t, env.reg, ActionTrigger, ResultWithdrawn); n != 0 {
		t.Errorf("%v withdrawn, want 0: PagerDuty took it", n)
	}
}

// A record queued by a release that stored no key fingerprint is
// delivered after an upgrade, not dropped as sent with another key.
func TestRecordWithoutFingerprintKeptOnUpgrade(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	q := env.store.queue("pagerduty")
	if _, err := q.Append([]byte(`{"key":"default","event":{"event_action":"resolve","dedup_key":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	env.build()
	if d := env.ob.Depth(); d != 1 {
		t.Errorf("depth %d, want the old record kept", d)
	}
}

// A record queued for a key since replaced is dropped from disk too, and
// counted rejected: it is not logged again at every restart, nor sent if
// the old key comes back.
func TestDroppedRecordOfReplacedKeyLeavesDisk(t *testing.T) {
	pd := newFakePD(t)
	env := newOutboxEnv(t, pd, SystemClock{})
	q := env.store.queue("pagerduty")
	if _, err := q.Append([]byte(`{"key":"default","key_fingerprint":"0000000000000000","event":{"event_action":"resolve","dedup_key":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	env.build()
	if got := env.store.queue("pagerduty").Len(); got != 0 {
		t.Errorf("queue length %d, want the dropped record deleted", got)
	}
	if got := eventsTotal(t, env.reg, ActionResolve, ResultRejected); got != 1 {
		t.Errorf("rejected %v, want 1", got)
	}
}
