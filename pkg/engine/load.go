package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Load adds one persisted check at start-up, in any order. s is not
// retained. Counters, staleness and alerts are rebuilt by Start.
func (e *Engine) Load(s *health.CheckState) error {
	if e.started {
		return errors.New("engine: Load after Start")
	}
	if err := validateState(s); err != nil {
		return fmt.Errorf("engine: load %s: %w", s.Key, err)
	}
	reg := e.lastRegion
	if reg == nil || reg.name != s.Region {
		if ri, ok := e.regionIDs[s.Region]; ok {
			reg = e.regions[ri]
		} else {
			reg = e.addRegion(strings.Clone(s.Region))
		}
		e.lastRegion = reg
	}
	hi, ok := reg.hosts[s.Host]
	if !ok {
		hi = e.addHost(reg, strings.Clone(s.Host))
	}
	name := e.internNameString(s.Check)
	h := &e.hosts[hi]
	if _, dup := h.find(name); dup {
		return fmt.Errorf("engine: load %s: loaded twice", s.Key)
	}
	idx := h.insert(name)
	sl := &h.checks[idx]
	*sl = slot{
		updated:   s.Updated,
		hardSince: s.HardSince,
		lastSeen:  s.LastSeen,
		eventID:   s.EventID,
		flapHist:  s.FlapHistory & flapHistMask,
		name:      name,
		team:      e.internEventTeam(s.Team),
		interval:  s.Interval,
		status:    s.Status,
		hard:      s.Hard,
		attempts:  s.Attempts,
		severity:  s.Severity,
		flapCount: min(s.FlapCount, flapSlots),
	}
	if s.Flapping {
		sl.flags |= fFlapping
	}
	if s.Stale {
		sl.flags |= fStale // counted by Start
	}
	if sl.nonPassing() && (s.Output != "" || len(s.Labels) > 0) {
		e.setExtra(sl, checkExtra{output: s.Output, labels: slices.Clone(s.Labels)})
	}
	if s.LastSeen > h.lastSeen {
		h.lastSeen = s.LastSeen
	}
	if s.LastSeen > reg.lastEvent {
		reg.lastEvent = s.LastSeen
	}
	if s.LastSeen > e.loadedMax {
		e.loadedMax = s.LastSeen
	}
	e.checks++
	return nil
}

func validateState(s *health.CheckState) error {
	switch {
	case s.Region == "" || s.Host == "" || s.Check == "":
		return errors.New("region, host and check must not be empty")
	case s.Check == health.NotReporting:
		return fmt.Errorf("check name %q is reserved", health.NotReporting)
	case s.Status > health.Unknown:
		return fmt.Errorf("invalid status %d", s.Status)
	case s.Hard > health.Unknown:
		return fmt.Errorf("invalid hard status %d", s.Hard)
	case s.Severity > health.SeverityCritical:
		return fmt.Errorf("invalid severity %d", s.Severity)
	}
	return nil
}

// Start finishes loading: it rebuilds every counter and alert from the
// states (emitting no transition: the alerts are those that were active
// before the restart), sets the journal sequence to seq, and gives every
// check not saved stale until now + its stale_after before it can become
// stale. It must be called once, before Apply and Tick; a fresh engine
// calls Start(0, now).
func (e *Engine) Start(seq uint64, now time.Time) {
	if e.started {
		panic("engine: Start called twice")
	}
	n := now.UnixNano()
	e.started, e.seq, e.startedAt = true, seq, n
	e.advance(n)
	e.advance(e.loadedMax)

	// A window that ended while the engine was down still covers its
	// alerts here: Start journals nothing, so the alert set must be the one
	// acknowledged before the stop. The first Apply or Tick expires it like
	// a live expiry, journaling the alerts it releases.
	slices.SortFunc(e.windows, windowCompare)
	for _, reg := range e.regions {
		reg.windows = reg.windows[:0]
	}
	for _, w := range e.windows {
		if ri, ok := e.regionIDs[w.Region]; ok {
			reg := e.regions[ri]
			reg.windows = append(reg.windows, w)
		}
	}

	for _, reg := range e.regions {
		for _, hi := range reg.hostList {
			e.restoreHost(reg, hi)
		}
	}
	e.dueInit()
	e.settle(n, nil)
	e.pending = e.pending[:0]
}

// restoreHost derives a loaded host's flags and counts.
func (e *Engine) restoreHost(reg *region, hi uint32) {
	e.refreshHostMaint(reg, hi, true)
	h := &e.hosts[hi]
	h.due = math.MaxInt64
	reg.reporting++
	for i := range h.checks {
		s := &h.checks[i]
		if s.flags&fFlapping != 0 {
			e.flapping++
		}
		if s.nonPassing() {
			e.countNonPassing(reg, hi, true)
		}
		if s.stale() {
			// Stale before the restart: it stays so, and its alerts too.
			// Staleness is never inferred from the persisted last-seen
			// times: they lag the engine's by up to a checkpoint, and a
			// check still in a previous start's grace period has an old
			// one. A stale mark is persisted in the commit that journals
			// it, so a mark missing here was never acknowledged.
			s.flags |= fStale
			h.stale++
			e.staleCount++
		} else {
			h.due = min(h.due, e.deadline(s))
		}
		e.updateMembership(reg, hi, s)
	}
	if e.set.forgetAfter > 0 && len(h.checks) > 0 {
		h.due = min(h.due, e.forgetDeadline(h))
	}
	h.due = spreadKey(h, e.startedAt, h.due)
	e.updateHostNR(reg, hi)
	e.markHostDirty(hi)
}

// Checkpoint calls fn for every state modified since the previous
// Checkpoint and not returned in an Outcome.Changed since (last-seen
// refreshes, flap-history shifts), then forgets them. The state passed to
// fn is valid only during the call.
func (e *Engine) Checkpoint(fn func(*health.CheckState)) {
	for {
		r := e.StartCheckpoint() // a round left unfinished first
		for e.CheckpointSome(r, math.MaxInt, fn) {
		}
		if len(e.ckptHosts) == 0 {
			return
		}
	}
}

// CheckpointRound is Checkpoint in parts, so that the caller can let other
// calls in between: the hosts holding states when the round started, each
// visited once. A state modified during the round is visited by it when
// its host was not visited yet, else by the next round.
type CheckpointRound struct {
	hosts []roundHost
	next  int
}

type roundHost struct {
	region, name string
	index        uint32
}

// StartCheckpoint starts a round with every host holding states, or
// returns the round in progress.
func (e *Engine) StartCheckpoint() *CheckpointRound {
	if e.round != nil {
		return e.round
	}
	r := &CheckpointRound{hosts: make([]roundHost, len(e.ckptHosts))}
	for i, hi := range e.ckptHosts {
		h := &e.hosts[hi]
		r.hosts[i] = roundHost{region: e.regions[h.region].name, name: h.name, index: hi}
	}
	e.ckptHosts = e.ckptHosts[:0]
	e.round = r
	return r
}

// Sort puts the hosts left in the round in key order (region, then host),
// so that each part is a contiguous range of the store's keys and a round
// written in many transactions rewrites about as many pages as one. It
// reads only the round: the caller may run it without the engine's lock,
// between StartCheckpoint and CheckpointSome.
func (r *CheckpointRound) Sort() {
	slices.SortFunc(r.hosts[r.next:], func(a, b roundHost) int {
		if c := strings.Compare(a.region, b.region); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
}

// CheckpointSome visits the round's next hosts, whole hosts at a time until
// at least max states went to fn, and reports whether any are left.
func (e *Engine) CheckpointSome(r *CheckpointRound, max int, fn func(*health.CheckState)) (more bool) {
	n := 0
	for r.next < len(r.hosts) && n < max {
		hi := r.hosts[r.next].index
		r.next++
		h := &e.hosts[hi]
		if h.flags&hCheckpoint == 0 {
			continue // forgotten since; its index may hold a new host
		}
		h.flags &^= hCheckpoint
		reg := e.regions[h.region]
		for i := range h.checks {
			s := &h.checks[i]
			if s.flags&fCheckpoint == 0 {
				continue
			}
			s.flags &^= fCheckpoint
			e.state = e.export(reg, h, s)
			fn(&e.state)
			n++
		}
	}
	e.state = health.CheckState{}
	if r.next < len(r.hosts) {
		return true
	}
	if e.round == r {
		e.round = nil
	}
	return false
}
