package pagerduty

import (
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// A Grafana that answers now and then during an outage is not back: direct
// paging carries on until Grafana has answered for fallback_recover_after,
// so an alert firing throughout is paged once and resolved once, not once
// per answer.
func TestFallbackStopsOnlyOnceGrafanaHasAnsweredForRecoverAfter(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.cfg.FallbackRecoverAfter = config.Duration(5 * time.Minute)

	// Down 3m10s, answers once, down again, three times over.
	at := t0
	for range 3 {
		down := at
		env.updateWith(down.Add(3*time.Minute+10*time.Second), GrafanaStatus{Answered: true, UnreachableSince: down}, web1)
		back := down.Add(3*time.Minute + 20*time.Second)
		env.updateWith(back, GrafanaStatus{Answered: true, ReachableSince: back}, web1)
		if !env.fb.Active() {
			t.Fatalf("direct paging stopped on one answer at %v", back)
		}
		at = back.Add(15 * time.Second)
	}
	assertOpen(t, env, "default:host/eu/web-1/critical")

	// Answering without a break: still paging just short of the hold, then
	// stopped, the incident resolved.
	back := at
	env.updateWith(back.Add(5*time.Minute-time.Second), GrafanaStatus{Answered: true, ReachableSince: back}, web1)
	if !env.fb.Active() {
		t.Fatal("direct paging stopped before fallback_recover_after")
	}
	env.updateWith(back.Add(5*time.Minute), GrafanaStatus{Answered: true, ReachableSince: back}, web1)
	if env.fb.Active() {
		t.Fatal("direct paging still active after fallback_recover_after")
	}
	assertOpen(t, env)
	inc, _ := env.pd.Incident(keyDefault, DedupKey(&web1))
	if inc.Opened != 1 || inc.Triggers != 1 || inc.Resolves != 1 {
		t.Errorf("web-1 incident %+v: want one trigger and one resolve", inc)
	}
}

// While Grafana's answers are not yet a recovery, the fallback keeps the
// page set: what clears is resolved, what starts is paged.
func TestFallbackKeepsPagingWhileGrafanaRecovers(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.cfg.FallbackRecoverAfter = config.Duration(5 * time.Minute)
	env.update(t0.Add(time.Hour), t0, web1)
	back := t0.Add(time.Hour + time.Minute)
	env.updateWith(back, GrafanaStatus{Answered: true, ReachableSince: back}, nas1)
	assertOpen(t, env, "storage:host/eu/nas-1/error")
}

// Incidents opened in direct mode (no grafana section) are Grafana's to
// page once it is configured: they are resolved once it has answered for
// fallback_recover_after, not left open for ever.
func TestFallbackResolvesDirectModeIncidentsOnceGrafanaPages(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{Direct: true})
	env.update(t0, time.Time{}, web1)
	assertOpen(t, env, "default:host/eu/web-1/critical")

	// Restarted with Grafana configured.
	env.opts.Direct = false
	env.cfg.FallbackRecoverAfter = config.Duration(5 * time.Minute)
	env.restart()
	up := t0.Add(time.Minute)
	env.updateWith(up.Add(time.Minute), GrafanaStatus{Answered: true, ReachableSince: up}, web1)
	assertOpen(t, env, "default:host/eu/web-1/critical")
	env.updateWith(up.Add(5*time.Minute), GrafanaStatus{Answered: true, ReachableSince: up}, web1)
	assertOpen(t, env)
	if env.fb.Active() || len(env.fb.Open()) != 0 {
		t.Errorf("after handing over to Grafana: active %v, open %v", env.fb.Active(), env.fb.Open())
	}
}

// A trigger PagerDuty refuses (a routing key it does not know) opened no
// incident: the fallback neither counts it as paged nor resolves it, does
// not hammer PagerDuty with it, and pages it once a restart brings the
// fixed key.
func TestFallbackRepagesARefusedTriggerAfterRestart(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	env.cfg.Keys["storage"] = "R0ut1ngKeyUnknown000000000000009"
	env.restart() // the outbox reads its keys at start
	env.update(t0.Add(time.Hour), t0, web1, nas1)
	waitFor(t, "the refused page forgotten", func() bool { return len(env.fb.Open()) == 1 })
	if got := env.fb.Open(); got[0] != "host/eu/web-1" {
		t.Fatalf("open = %v, want only web-1's", got)
	}
	refusedSends := len(env.pd.Requests("R0ut1ngKeyUnknown000000000000009"))
	if refusedSends != 1 {
		t.Fatalf("%d requests with the refused key, want 1", refusedSends)
	}
	// Still firing: not sent again by this process.
	env.update(t0.Add(time.Hour+time.Minute), t0, web1, nas1)
	env.update(t0.Add(time.Hour+2*time.Minute), t0, web1, nas1)
	if n := len(env.pd.Requests("R0ut1ngKeyUnknown000000000000009")); n != refusedSends {
		t.Errorf("refused trigger sent %d more times", n-refusedSends)
	}

	// The key is fixed and healthrouter restarted: nas-1 is paged.
	env.cfg.Keys["storage"] = keyStorage
	env.restart()
	env.update(t0.Add(2*time.Hour), t0, web1, nas1)
	assertOpen(t, env, "default:host/eu/web-1/critical", "storage:host/eu/nas-1/error")
	assertLogsClean(t, env.logs)
}

// A refused trigger whose alert clears sends no resolve, and the alert
// failing again later is paged again.
func TestFallbackRefusedTriggerClears(t *testing.T) {
	env := newFallbackEnv(t, FallbackOptions{})
	const unknown = "R0ut1ngKeyUnknown000000000000009"
	env.cfg.Keys["storage"] = unknown
	env.restart()
	env.update(t0.Add(time.Hour), t0, nas1)
	waitFor(t, "the refused page forgotten", func() bool { return len(env.fb.Open()) == 0 })
	env.update(t0.Add(time.Hour+time.Minute), t0)
	if n := len(env.pd.Requests(unknown)); n != 1 {
		t.Errorf("%d requests with the refused key after the alert cleared, want 1 (no resolve)", n)
	}
	env.update(t0.Add(time.Hour+2*time.Minute), t0, nas1)
	waitFor(t, "the new failure paged", func() bool { return len(env.pd.Requests(unknown)) == 2 })
}
