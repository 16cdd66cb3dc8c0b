package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// harness drives one engine on a test clock and keeps what a store would:
// the journal and the persisted states.
type harness struct {
	t       testing.TB
	e       *Engine
	now     time.Time
	out     Outcome
	journal []health.Transition
	store   map[health.Key]health.CheckState
	windows map[string]health.Window
	gone    []health.ForgottenHost // forgotten hosts, as the store keeps them
	cfg     Config                 // for restarts inside a scenario
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.Start(0, t0)
	return &harness{t: t, e: e, now: t0, store: map[health.Key]health.CheckState{}, windows: map[string]health.Window{}}
}

// cfg returns a configuration with the defaults and the given overrides.
func cfg(mod func(*config.Engine), rules ...config.CheckRule) Config {
	c := Config{Engine: config.Default().Engine, Checks: rules}
	if mod != nil {
		mod(&c.Engine)
	}
	return c
}

func res(region, host, check string, st health.Status) health.Result {
	return health.Result{Region: []byte(region), Host: []byte(host), Check: []byte(check), Status: st}
}

func (h *harness) record() *Outcome {
	h.journal = append(h.journal, h.out.Transitions...)
	for _, cs := range h.out.Changed {
		h.store[cs.Key] = cs
	}
	for _, k := range h.out.Forgotten {
		delete(h.store, k)
	}
	h.gone = append(h.gone, h.out.ForgottenHosts...)
	// As the tracker does: windows the engine expired leave the store.
	for _, id := range h.out.EndedWindows {
		delete(h.windows, id)
	}
	return &h.out
}

// forget forgets a host at the harness clock.
func (h *harness) forget(region, host string) (*Outcome, []health.Key, bool) {
	h.out.Reset()
	keys, ok := h.e.ForgetHost(region, host, h.now, &h.out)
	return h.record(), keys, ok
}

// apply applies one batch at the harness clock.
func (h *harness) apply(rs ...health.Result) *Outcome {
	h.t.Helper()
	h.out.Reset()
	h.e.Apply(&health.Batch{Received: h.now, Results: rs}, &h.out)
	return h.record()
}

func (h *harness) tick() *Outcome {
	h.out.Reset()
	h.e.Tick(h.now, &h.out)
	return h.record()
}

// step advances the clock by d and ticks.
func (h *harness) step(d time.Duration) *Outcome {
	h.now = h.now.Add(d)
	return h.tick()
}

func (h *harness) addWindow(w health.Window) *Outcome {
	h.t.Helper()
	h.out.Reset()
	if err := h.e.AddWindow(w, h.now, &h.out); err != nil {
		h.t.Fatalf("AddWindow: %v", err)
	}
	h.windows[w.ID] = w
	return h.record()
}

func (h *harness) checkpoint() {
	h.e.Checkpoint(func(cs *health.CheckState) { h.store[cs.Key] = *cs })
}

// restart checkpoints, builds a new engine from the store and starts it at
// the harness clock.
func (h *harness) restart(c Config) {
	h.t.Helper()
	h.checkpoint()
	h.crash(c)
}

// crash builds a new engine from the store as it is, without a final
// checkpoint: last-seen times as of the last checkpoint or transition,
// as after a SIGKILL.
func (h *harness) crash(c Config) {
	h.t.Helper()
	e, err := New(c)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	keys := make([]health.Key, 0, len(h.store))
	for k := range h.store {
		keys = append(keys, k)
	}
	// Any order must do: load in reverse key order.
	slices.SortFunc(keys, func(a, b health.Key) int { return strings.Compare(b.String(), a.String()) })
	for _, k := range keys {
		cs := h.store[k]
		if err := e.Load(&cs); err != nil {
			h.t.Fatalf("Load: %v", err)
		}
	}
	for _, w := range h.windows {
		e.LoadWindow(w)
	}
	for _, f := range h.gone {
		e.LoadForgottenHost(f)
	}
	e.Start(h.e.Seq(), h.now)
	h.e = e
	if err := e.verify(); err != nil {
		h.t.Fatalf("after restart: %v", err)
	}
}

// alertLines renders alerts compactly for comparison:
// "host eu web-1 critical 2 [disk lvm]", "host eu web-2/disk suppressed=region",
// "region eu disk critical 0.50".
func alertLines(as []health.Alert) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		switch {
		case a.Suppressed != "" && a.Level == health.LevelHost:
			out = append(out, fmt.Sprintf("host %s %s/%s suppressed=%s", a.Region, a.Host, a.Check, a.Suppressed))
		case a.Level == health.LevelHost && a.Check == health.NotReporting:
			out = append(out, fmt.Sprintf("host %s %s not_reporting %s", a.Region, a.Host, a.Severity))
		case a.Level == health.LevelHost:
			out = append(out, fmt.Sprintf("host %s %s %s %g %v", a.Region, a.Host, a.Severity, a.Value, a.Checks))
		case a.Suppressed != "":
			out = append(out, fmt.Sprintf("region %s %s suppressed=%s", a.Region, a.Check, a.Suppressed))
		default:
			out = append(out, fmt.Sprintf("region %s %s %s %.2f", a.Region, a.Check, a.Severity, a.Value))
		}
	}
	return out
}

// transitionLines renders transitions compactly:
// "check eu/web-1/disk passing->soft", "alert host eu/web-1/disk inactive->firing".
func transitionLines(ts []health.Transition) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		line := fmt.Sprintf("%s %s %s->%s", t.Kind, t.Key, t.From, t.To)
		if t.Kind == health.AlertChanged {
			line = fmt.Sprintf("alert %s %s %s->%s", t.Level, t.Key, t.From, t.To)
		}
		if t.Reason != "" {
			line += " " + t.Reason
		}
		out = append(out, line)
	}
	return out
}

func alertTransitions(ts []health.Transition) []string {
	var out []string
	for _, l := range transitionLines(ts) {
		if strings.HasPrefix(l, "alert ") {
			out = append(out, l)
		}
	}
	return out
}

// pages counts alerts that started firing.
func pages(ts []health.Transition) int {
	n := 0
	for _, t := range ts {
		if t.Kind == health.AlertChanged && t.To == health.AlertFiring && t.From != health.AlertFiring {
			n++
		}
	}
	return n
}

func equalLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func (h *harness) mustVerify() {
	h.t.Helper()
	if err := h.e.verify(); err != nil {
		h.t.Fatal(err)
	}
}
