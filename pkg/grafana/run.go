package grafana

import (
	"context"
	"math/rand/v2"
	"time"
)

// Run reconciles at start, every grafana.reconcile_every, and shortly after
// each signal on newRegion, until ctx ends. A failed reconcile is retried
// with exponential backoff and jitter; between reconciles Grafana's health
// endpoint is probed so Status().UnreachableSince stays current, and a
// Grafana that answers again is reconciled at once. Run does not return
// errors and does not crash: outcomes are in Status and the metrics.
func (r *Reconciler) Run(ctx context.Context, src RegionSource, newRegion <-chan struct{}) {
	every := r.b.g.ReconcileEvery.D()
	if every <= 0 {
		every = 5 * time.Minute // config validation forbids this; do not spin
	}
	now := r.clock.Now()
	nextReconcile := now
	nextProbe := now.Add(r.opts.probeEvery)
	probeFailed := false
	for {
		if ctx.Err() != nil {
			return
		}
		now = r.clock.Now()
		if !now.Before(nextReconcile) {
			_, err := r.Apply(ctx, src.Regions())
			if ctx.Err() != nil {
				return
			}
			now = r.clock.Now()
			nextReconcile = now.Add(every)
			if err != nil {
				nextReconcile = now.Add(r.backoff(r.Status().ConsecutiveFailures))
			}
			nextProbe = now.Add(r.opts.probeEvery)
			continue
		}
		if !now.Before(nextProbe) {
			version, err := r.api.health(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				r.noteVersion(version)
			}
			r.noteContact(err)
			switch {
			case err != nil:
				probeFailed = true
			case probeFailed:
				// Grafana is back from an outage the probe saw: reconcile
				// now rather than wait out the backoff. (A provisioning API
				// failing while health answers keeps its backoff.)
				probeFailed = false
				nextReconcile = now
			}
			nextProbe = r.clock.Now().Add(r.opts.probeEvery)
			continue
		}
		wake := nextReconcile
		if nextProbe.Before(wake) {
			wake = nextProbe
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(wake.Sub(now)):
		case _, ok := <-newRegion:
			if !ok {
				newRegion = nil // closed: no more signals, keep the timer
				continue
			}
			// A new region should get its rules soon, even while a failure
			// backs off: Grafana may be rejecting one region's group, and
			// groups are written independently. Only a Grafana that does
			// not answer keeps the backoff: it is not ready for anything.
			if r.Status().UnreachableSince.IsZero() {
				if t := r.clock.Now().Add(r.opts.debounce); t.Before(nextReconcile) {
					nextReconcile = t
				}
			}
		}
	}
}

// backoff is the wait before retry number failures (1 after the first
// failure): base doubled per failure, capped, with jitter so that an HA pair
// does not retry in lockstep.
func (r *Reconciler) backoff(failures int) time.Duration {
	d := r.opts.backoffBase
	for i := 1; i < failures && d < r.opts.backoffMax; i++ {
		d *= 2
	}
	d = min(d, r.opts.backoffMax)
	return r.opts.jitter(d)
}

// equalJitter waits between half and all of d.
func equalJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
