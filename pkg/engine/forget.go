package engine

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Reasons the engine gives on alert transitions.
const (
	// ReasonForgotten: a host alert or not_reporting alert resolves
	// because its host was forgotten.
	ReasonForgotten = "forgotten"
	// ReasonSeverity: a firing alert changed severity (From and To are
	// both firing; Severity is the new one).
	ReasonSeverity = "severity"
)

// ForgetHost removes a host and every check of it from the engine, as if it
// had never reported (a decommissioned host). The alerts that end are
// journaled in out like any other change, and the removed keys are in
// out.Forgotten and returned, sorted by check, for the store to delete. ok
// is false, and nothing changes, when the region has no such host.
func (e *Engine) ForgetHost(region, host string, now time.Time, out *Outcome) (forgotten []health.Key, ok bool) {
	e.mustStart("ForgetHost")
	ri, ok := e.regionIDs[region]
	if !ok {
		return nil, false
	}
	reg := e.regions[ri]
	hi, ok := reg.hosts[host]
	if !ok {
		return nil, false
	}
	n := e.advance(now.UnixNano())
	first := len(out.Forgotten)
	e.forget(reg, hi, n, out)
	e.settle(n, out)
	e.dropForgotten()
	e.flushChanged(out)
	return slices.Clone(out.Forgotten[first:]), true
}

// HostRegions returns the regions, sorted, that track a host of that name:
// host names are unique within a region only.
func (e *Engine) HostRegions(host string) []string {
	var out []string
	for _, reg := range e.regions {
		if _, ok := reg.hosts[host]; ok {
			out = append(out, reg.name)
		}
	}
	slices.Sort(out)
	return out
}

// forgetDeadline is when a host that hears nothing more is forgotten:
// forget_after after its last result, and never before every check of it
// is stale, since a check reporting every few hours is not silent between
// two results. As for staleness, the grace period after Start counts as a
// result.
func (e *Engine) forgetDeadline(h *host) int64 {
	seen := max(h.lastSeen, e.startedAt)
	if seen > math.MaxInt64-e.set.forgetAfter {
		return math.MaxInt64
	}
	d := seen + e.set.forgetAfter
	for i := range h.checks {
		d = max(d, e.deadline(&h.checks[i]))
	}
	return d
}

// forget takes a host out of every count and rollup and journals its checks
// leaving. Its slots stay until the call's settle has ended its alerts;
// dropForgotten then frees it.
func (e *Engine) forget(reg *region, hi uint32, now int64, out *Outcome) {
	h := &e.hosts[hi]
	h.flags |= hForgotten
	// Journal by name, not by interned id, for the same journal on every
	// instance.
	order := make([]int, len(h.checks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(e.names[h.checks[a].name].name, e.names[h.checks[b].name].name)
	})
	for _, i := range order {
		s := &h.checks[i]
		key := health.Key{Region: reg.name, Host: h.name, Check: e.names[s.name].name}
		e.emit(out, health.Transition{
			Time: unixTime(now), Kind: health.CheckChanged, Key: key,
			From: s.phase(), To: health.PhaseForgotten, Status: s.status, Severity: e.severity(s),
		})
		out.Forgotten = append(out.Forgotten, key)
		e.withdraw(reg, hi, s)
	}

	if h.flags&hNotReporting == 0 {
		reg.reporting--
	}
	member, failing := h.flags&hNRMember != 0, h.flags&hNRFailing != 0
	if member || failing {
		reg.nr.add(delta(false, member), delta(false, failing), hi)
		e.markRollupDirty(&reg.nr)
	}
	h.flags &^= hNotReporting | hNRMember | hNRFailing
	e.markHostDirty(hi)
	e.forgotten = append(e.forgotten, hi)
	e.remember(reg.name, h.name, now)
	out.ForgottenHosts = append(out.ForgottenHosts, health.ForgottenHost{Region: reg.name, Host: h.name, At: unixTime(now)})
}

// regionHost names a host: host names are unique within a region only.
type regionHost struct{ region, host string }

// LoadForgottenHost restores, before Start, a host forgotten earlier.
func (e *Engine) LoadForgottenHost(f health.ForgottenHost) {
	if e.started {
		panic("engine: LoadForgottenHost after Start")
	}
	e.remember(f.Region, f.Host, f.At.UnixNano())
}

// remember records that a host was forgotten at, so that a result about it
// from before then, delivered late (a batch that waited in a Vector
// buffer), does not bring it back only for it to go silent and page. The
// result's own time is compared, so a host whose clock lags resumes only
// once its results are newer than its removal. Past the bound, the hosts
// forgotten longest ago are dropped, in batches.
func (e *Engine) remember(region, host string, at int64) {
	k := regionHost{region, host}
	if prev, ok := e.tombstones[k]; ok && prev >= at {
		return
	}
	e.tombstones[k] = at
	if len(e.tombstones) <= e.tombstonesMax+e.tombstonesMax/20 {
		return
	}
	ats := make([]int64, 0, len(e.tombstones))
	for _, t := range e.tombstones {
		ats = append(ats, t)
	}
	slices.Sort(ats)
	cut := ats[len(ats)-e.tombstonesMax] // keep the newest tombstonesMax, ties aside
	for k, t := range e.tombstones {
		if t < cut {
			delete(e.tombstones, k)
		}
	}
}

// forgottenSince reports whether a result at t is about a host forgotten
// after t. Only results for hosts not tracked ask; as for a check's state,
// a result as old as the removal is not older than it.
func (e *Engine) forgottenSince(region, host []byte, t int64) bool {
	if len(e.tombstones) == 0 {
		return false
	}
	at, ok := e.tombstones[regionHost{string(region), string(host)}]
	return ok && t < at
}

// withdraw removes one check of a host being forgotten from the counters
// and its rollup. Status, hard state, suppression and paging flags stay for
// settleHost to end its alert entries.
func (e *Engine) withdraw(reg *region, hi uint32, s *slot) {
	h := &e.hosts[hi]
	member, failing := s.flags&fMember != 0, s.flags&fFailing != 0
	if member || failing {
		ru := e.rollupOf(reg, s.name)
		ru.add(delta(false, member), delta(false, failing), hi)
		e.markRollupDirty(ru)
	}
	if s.stale() {
		h.stale--
		e.staleCount--
	}
	if s.flappingNow() {
		e.flapping--
	}
	if s.nonPassing() {
		e.countNonPassing(reg, hi, false)
	}
	s.flags &^= fMember | fFailing | fStale | fFlapping | fPending | fCheckpoint
	e.dropExtra(s)
	e.checks--
}

// dropForgotten frees the hosts forgotten in this call, once settle has
// ended their alerts. The freed host keeps its index for the next new host:
// indexes of live hosts never move, so nothing that holds one needs fixing.
func (e *Engine) dropForgotten() {
	if len(e.forgotten) == 0 {
		return
	}
	// One pass over each region's host list, however many of its hosts go.
	regions := make([]uint32, len(e.forgotten))
	for i, hi := range e.forgotten {
		regions[i] = e.hosts[hi].region
	}
	slices.Sort(regions)
	for _, ri := range slices.Compact(regions) {
		reg := e.regions[ri]
		reg.hostList = slices.DeleteFunc(reg.hostList, func(x uint32) bool { return e.hosts[x].flags&hForgotten != 0 })
	}
	for _, hi := range e.forgotten {
		h := &e.hosts[hi]
		e.dueRemove(hi)
		delete(e.regions[h.region].hosts, h.name)
		delete(e.alertHosts, hi)
		delete(e.failingHosts, hi)
		if e.lastHost == hi {
			e.hasLast = false
		}
		// A stale entry for hi in ckptHosts finds no checks, one in a
		// checkpoint round is skipped; one for a host reusing hi is visited
		// twice, the second time finding none.
		*h = host{due: math.MaxInt64, heapPos: -1}
		e.freeHosts = append(e.freeHosts, hi)
	}
	clear(e.forgotten)
	e.forgotten = e.forgotten[:0]
}
