package engine

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Tick advances the clock without results: maintenance windows expire,
// checks past their deadline become stale, hosts and regions stop
// reporting, hosts silent for forget_after are forgotten. Its cost is
// proportional to the hosts that are due.
func (e *Engine) Tick(now time.Time, out *Outcome) {
	e.mustStart("Tick")
	n := e.advance(now.UnixNano())
	e.expireWindows(n, out)
	e.markStale(n, out)
	e.settle(n, out)
	e.dropForgotten()
	e.flushChanged(out)
}

// maxTickHosts bounds the due hosts one Tick visits. Hosts come due in
// bursts (every host at once when the grace period after a restart ends);
// the bound spreads a burst over a few ticks instead of holding the
// caller's lock, at the cost of noticing some staleness a tick later.
const maxTickHosts = 4096

// markStale visits the hosts whose earliest deadline has passed, re-arms
// them with their next deadline, marks their overdue checks stale and
// forgets the hosts silent for forget_after.
func (e *Engine) markStale(now int64, out *Outcome) {
	overdue, silent := e.dueScratch[:0], e.silentScratch[:0]
	for n := 0; n < maxTickHosts && len(e.due) > 0 && e.due[0].at <= now; n++ {
		hi := e.due[0].host
		h := &e.hosts[hi]
		forgetAt := int64(math.MaxInt64)
		if e.set.forgetAfter > 0 {
			if forgetAt = e.forgetDeadline(h); forgetAt <= now {
				e.dueRemove(hi)
				silent = append(silent, hi)
				continue
			}
		}
		next, late := forgetAt, false
		for i := range h.checks {
			s := &h.checks[i]
			if s.stale() {
				continue
			}
			if d := e.deadline(s); d <= now {
				late = true
			} else {
				next = min(next, d)
			}
		}
		if late {
			overdue = append(overdue, hi)
		}
		e.rearmTop(now, next)
	}
	// Heap order among equal deadlines depends on history; names do not.
	slices.SortFunc(overdue, e.hostKeyLess)
	for _, hi := range overdue {
		reg := e.regions[e.hosts[hi].region]
		h := &e.hosts[hi]
		late := e.lateScratch[:0]
		for i := range h.checks {
			if s := &h.checks[i]; !s.stale() && e.deadline(s) <= now {
				late = append(late, int32(i))
			}
		}
		// By name, not by interned id, for the same journal on every
		// instance.
		if len(late) > 1 {
			slices.SortFunc(late, func(a, b int32) int {
				return strings.Compare(e.names[h.checks[a].name].name, e.names[h.checks[b].name].name)
			})
		}
		for _, i := range late {
			s := &h.checks[i]
			from := s.phase()
			e.setStale(reg, hi, s, true)
			e.markPending(hi, s)
			e.emit(out, health.Transition{
				Time: unixTime(now), Kind: health.CheckChanged,
				Key:  health.Key{Region: reg.name, Host: h.name, Check: e.names[s.name].name},
				From: from, To: health.PhaseStale, Status: s.status, Severity: e.severity(s),
			})
		}
		e.lateScratch = late[:0]
	}
	clear(overdue)
	e.dueScratch = overdue[:0]

	slices.SortFunc(silent, e.hostKeyLess)
	for _, hi := range silent {
		e.forget(e.regions[e.hosts[hi].region], hi, now, out)
	}
	clear(silent)
	e.silentScratch = silent[:0]
}
