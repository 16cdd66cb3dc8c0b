package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/grafana"
	"github.com/healthrouter/healthrouter/pkg/pagerduty"
	"github.com/healthrouter/healthrouter/pkg/store"
	"github.com/healthrouter/healthrouter/pkg/tracker"
)

// Store buckets of the PagerDuty outbox and fallback state.
const (
	outboxQueue    = "pagerduty_outbox"
	outboxOpen     = "pagerduty_open"
	fallbackBucket = "pagerduty_fallback"
)

// components are the optional parts a config turns on around the core:
// Grafana provisioning and PagerDuty paging. Each is nil when off.
type components struct {
	started    atomic.Bool // set once the fields below are
	reconciler *grafana.Reconciler
	outbox     *pagerduty.Outbox
	fallback   *pagerduty.Fallback
}

// regionSource adapts the tracker to what the reconciler reads.
type regionSource struct{ t *tracker.Tracker }

func (s regionSource) Regions() []grafana.Region {
	rs := s.t.Regions()
	out := make([]grafana.Region, len(rs))
	for i, r := range rs {
		out[i] = grafana.Region{Name: r.Name, LastSeen: r.LastSeen}
	}
	return out
}

// start builds and runs the components in the background until ctx ends.
func (c *components) start(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, st *store.Store,
	tr *tracker.Tracker, reg prometheus.Registerer, log *zap.Logger) error {
	if err := c.build(ctx, wg, cfg, st, tr, reg, log); err != nil {
		return err
	}
	c.started.Store(true)
	return nil
}

func (c *components) build(ctx context.Context, wg *sync.WaitGroup, cfg *config.Config, st *store.Store,
	tr *tracker.Tracker, reg prometheus.Registerer, log *zap.Logger) error {
	if cfg.Grafana != nil {
		r, err := grafana.New(cfg, log, reg)
		if err != nil {
			return fmt.Errorf("grafana: %w", err)
		}
		c.reconciler = r
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx, regionSource{tr}, tr.NewRegions()) }()
	}
	if cfg.PagerDuty == nil || len(cfg.PagerDuty.RoutingKeys) == 0 {
		return nil
	}
	queue, err := st.Queue(outboxQueue)
	if err != nil {
		return err
	}
	open, err := st.KV(outboxOpen)
	if err != nil {
		return err
	}
	// The fallback is built after the outbox it queues to; it exists before
	// the outbox runs, the only time OnRejected is called.
	var fallback *pagerduty.Fallback
	c.outbox, err = pagerduty.NewOutbox(cfg.PagerDuty, queue, open, pagerduty.OutboxOptions{
		Logger: log, Registerer: reg,
		OnRejected: func(m pagerduty.Message) { fallback.Refused(m) },
	})
	if err != nil {
		return fmt.Errorf("pagerduty outbox: %w", err)
	}
	fbState, err := st.KV(fallbackBucket)
	if err != nil {
		return err
	}
	fbOpts := fallbackOptions(cfg)
	fbOpts.Logger, fbOpts.Registerer = log, reg
	fallback, err = pagerduty.NewFallback(cfg.PagerDuty, c.outbox, fbState, fbOpts)
	if err != nil {
		return fmt.Errorf("pagerduty fallback: %w", err)
	}
	c.fallback = fallback
	if cfg.Grafana == nil {
		log.Info("no grafana configured: paging PagerDuty directly (direct mode)",
			zap.Duration("pending_host", fbOpts.Pending.Host.D()), zap.Duration("pending_region", fbOpts.Pending.Region.D()))
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := c.outbox.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("pagerduty outbox stopped", zap.Error(err))
		}
	}()
	go func() { defer wg.Done(); c.runFallback(ctx, cfg.Engine.TickEvery.D(), tr, log) }()
	return nil
}

// fallbackOptions says how the fallback pager pages for cfg: always
// without Grafana (direct mode), else while Grafana is unreachable; in both,
// only what Grafana's rules would have paged by now, so a region outage
// forming host by host still pages once.
func fallbackOptions(cfg *config.Config) pagerduty.FallbackOptions {
	opts := pagerduty.FallbackOptions{
		ExternalURL: cfg.ExternalURL,
		Direct:      cfg.Grafana == nil,
		Pending:     config.DefaultPending(), // as Grafana's rules would have
	}
	if cfg.Grafana != nil {
		opts.Pending = cfg.Grafana.Pending
	}
	return opts
}

// runFallback feeds the alert set and Grafana's reachability to the
// fallback pager as the engine ticks.
func (c *components) runFallback(ctx context.Context, every time.Duration, tr *tracker.Tracker, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var g pagerduty.GrafanaStatus
			if c.reconciler != nil {
				g = fallbackView(c.reconciler.Status())
			}
			if err := c.fallback.Update(now, g, tr.Alerts()); err != nil {
				log.Error("fallback paging update failed; will retry", zap.Error(err))
			}
		}
	}
}

// fallbackView is what the fallback pager needs of the reconciler's status:
// whether Grafana can page healthrouter's alerts.
//
// Grafana counts as having answered once it answered anything in this
// process, even a refusal: before that, UnreachableSince is zero only
// because the first call has not finished (or timed out) yet, which says
// nothing of Grafana. But an answer is not a rule: until this process has
// seen Grafana hold healthrouter's rules (a reconcile read region rules in
// its folder, or wrote them all), nothing says it can page (a wrong token or
// a missing permission on a first deployment leaves it with none). So from
// the first answer on, a Grafana without known rules cannot page, as if
// unreachable since the first attempt, and counts as reachable only from
// when its rules were known to stand, when they began to pend. Once they
// stood, later refusals leave them standing: only unreachability stops
// them paging.
func fallbackView(st grafana.Status) pagerduty.GrafanaStatus {
	g := pagerduty.GrafanaStatus{Answered: !st.LastAnswer.IsZero(), UnreachableSince: st.UnreachableSince,
		ReachableSince: st.ReachableSince}
	switch {
	case st.RulesSince.IsZero() && (g.Answered || !g.UnreachableSince.IsZero()):
		g.ReachableSince = time.Time{}
		g.UnreachableSince = st.FirstAttempt
		g.HoldsNoRules = g.Answered
	case !g.ReachableSince.IsZero() && g.ReachableSince.Before(st.RulesSince):
		g.ReachableSince = st.RulesSince
	}
	return g
}

// status is the components' part of /readyz.
func (c *components) status() map[string]any {
	out := map[string]any{}
	if !c.started.Load() {
		return out
	}
	if c.reconciler != nil {
		out["grafana"] = c.reconciler.Status()
	}
	if c.outbox != nil {
		pd := map[string]any{
			"outbox_depth":    c.outbox.Depth(),
			"fallback_active": c.fallback.Active(),
		}
		if refused := c.outbox.KeyErrors(); len(refused) > 0 {
			// By key name, with PagerDuty's reason: every page through
			// these keys is being dropped.
			pd["key_errors"] = refused
		}
		if retrying := c.outbox.Retrying(); len(retrying) > 0 {
			// By key name: the lane's head is retried and holds back
			// everything queued behind it.
			pd["retrying"] = retrying
		}
		out["pagerduty"] = pd
	}
	return out
}
