package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Outcome is what one call changed. The caller resets it (Reset keeps the
// capacity) and reuses it across calls.
type Outcome struct {
	// Accepted counts results applied, including ones equal to the state.
	Accepted int `json:"accepted"`
	// Duplicates counts results ignored: a repeated event_id, or older than
	// the state (the check's, or its host's removal).
	Duplicates int `json:"duplicates"`
	// Rejected lists results the engine refused.
	Rejected []Rejection `json:"rejected,omitempty"`
	// Transitions holds every check and alert change, in order, with Seq
	// assigned.
	Transitions []health.Transition `json:"transitions,omitempty"`
	// Changed holds copies of the states that must be on disk before the
	// call is acknowledged (status, hard, attempts, flapping, staleness, a
	// new check, severity, team or output of a failing check); at most one
	// per key, the latest. Their Output and Labels are shared and must not
	// be modified.
	Changed []health.CheckState `json:"changed,omitempty"`
	// NewRegions lists regions seen for the first time.
	NewRegions []string `json:"new_regions,omitempty"`
	// Forgotten lists the keys of the checks that left the engine with
	// their host (ForgetHost, or Tick past forget_after), for the store to
	// delete. They are never in Changed of the same call.
	Forgotten []health.Key `json:"forgotten,omitempty"`
	// ForgottenHosts lists the hosts forgotten, with when, for the store
	// to remember: results about them from before then are ignored.
	ForgottenHosts []health.ForgottenHost `json:"forgotten_hosts,omitempty"`
	// EndedWindows lists the IDs of the maintenance windows that expired
	// in this call (Apply or Tick, whichever first ran past their Until),
	// for the store to delete: a window left there would be restored by
	// a restart and suppress again what its end released.
	EndedWindows []string `json:"ended_windows,omitempty"`
}

// Reset empties the outcome and keeps its capacity.
func (o *Outcome) Reset() {
	o.Accepted, o.Duplicates = 0, 0
	clear(o.Rejected)
	o.Rejected = o.Rejected[:0]
	clear(o.Transitions)
	o.Transitions = o.Transitions[:0]
	clear(o.Changed)
	o.Changed = o.Changed[:0]
	clear(o.NewRegions)
	o.NewRegions = o.NewRegions[:0]
	clear(o.Forgotten)
	o.Forgotten = o.Forgotten[:0]
	clear(o.ForgottenHosts)
	o.ForgottenHosts = o.ForgottenHosts[:0]
	clear(o.EndedWindows)
	o.EndedWindows = o.EndedWindows[:0]
}

// Rejection is a result the engine refused: Index is its position in the
// batch, Reason a stable metric label (RejectTooManyChecks, ...), Err the
// detail for a human.
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
	Err    string `json:"error"`
}

// Apply applies one batch at b.Received, or at the engine's clock when
// that is later (the clock never goes back). Windows ended by then expire
// first.
func (e *Engine) Apply(b *health.Batch, out *Outcome) {
	e.mustStart("Apply")
	now := e.advance(b.Received.UnixNano())
	e.expireWindows(now, out)
	for i := range b.Results {
		e.apply(i, &b.Results[i], now, out)
	}
	e.settle(now, out)
	e.flushChanged(out)
}

// maxAhead is how far ahead of the receive time a result's own timestamp
// is believed. A sender's clock a little fast still orders its results, so
// a retried batch stamped ahead of the receiver is known for older than
// the results after it. The cost is the other way round: once such a
// clock is corrected, its results stay behind the state's time, and are
// dropped as late, for as long as it was ahead; past this bound it is a
// broken clock, and the receive time stands in.
const maxAhead = int64(10 * time.Second)

func (e *Engine) apply(i int, r *health.Result, now int64, out *Outcome) {
	t := r.Time
	switch {
	case t == 0:
		t = now
	case t > now+maxAhead:
		t = now + maxAhead
	}
	reg := e.findRegion(r.Region)
	if reg != nil {
		if hi, ok := e.findHost(reg, r.Host); ok {
			if idx, ok := e.findCheck(&e.hosts[hi], r.Check); ok {
				h := &e.hosts[hi]
				s := &h.checks[idx]
				if r.Time == 0 {
					// Without a time of its own a result is the newest
					// received, also after one stamped ahead of its receipt.
					t = max(t, s.updated)
				}
				if t < s.updated {
					out.Duplicates++
					return
				}
				id := HashEventID(r.EventID)
				if retried(s, r, t, id) {
					out.Duplicates++
					return
				}
				out.Accepted++
				e.update(reg, hi, idx, r, t, now, id, false, out)
				return
			}
		}
	}
	e.create(i, reg, r, t, now, out)
}

// retried reports whether r, not older than the check's state, repeats a
// result already applied: the state's event_id; the one before it when
// timestamps cannot order the two (r has no timestamp of its own, or one
// too far ahead to believe, or the state's), as when Vector retries a batch that timed out after the
// check's next result got in; or, without an event_id, the same status at
// the same own timestamp. A result of a sender that sets timestamps and
// ids is ordered by its timestamp before it gets here.
func retried(s *slot, r *health.Result, t int64, id uint64) bool {
	if id == 0 {
		return t == r.Time && t == s.updated && r.Status == s.status
	}
	if id == s.eventID {
		return true
	}
	// r.Time != t: its own time was too far ahead to be believed, so it
	// cannot order the two either.
	return s.prevEventID != 0 && uint32(id) == s.prevEventID && (r.Time == 0 || r.Time != t || t == s.updated)
}

// findCheck finds a host's check by name without allocating. It first
// tries the check after the last one found, which is the next one whenever
// an agent reports its checks in a stable order.
func (e *Engine) findCheck(h *host, name []byte) (int, bool) {
	if c := int(h.cursor); c < len(h.names) && e.names[h.names[c]].name == string(name) {
		h.cursor = uint16(c + 1)
		return c, true
	}
	id, ok := e.nameIDs[string(name)]
	if !ok {
		return 0, false
	}
	idx, ok := h.find(id)
	if ok {
		h.cursor = uint16(idx + 1)
	}
	return idx, ok
}

// create adds a check for a result with a key not tracked yet.
func (e *Engine) create(i int, reg *region, r *health.Result, t, now int64, out *Outcome) {
	switch {
	case len(r.Region) == 0 || len(r.Host) == 0 || len(r.Check) == 0:
		out.Rejected = append(out.Rejected, Rejection{Index: i, Reason: RejectInvalidKey,
			Err: "region, host and check must not be empty"})
		return
	case string(r.Check) == health.NotReporting:
		out.Rejected = append(out.Rejected, Rejection{Index: i, Reason: RejectReservedCheck,
			Err: fmt.Sprintf("check name %q is reserved for alerts about silent hosts", health.NotReporting)})
		return
	case e.checks >= e.set.maxChecks:
		out.Rejected = append(out.Rejected, Rejection{Index: i, Reason: RejectTooManyChecks,
			Err: fmt.Sprintf("new check %s/%s/%s: already tracking %d checks, the engine.max_checks limit",
				r.Region, r.Host, r.Check, e.checks)})
		return
	}
	var hi uint32
	found := false
	if reg != nil {
		hi, found = e.findHost(reg, r.Host)
	}
	if !found && e.forgottenSince(r.Region, r.Host, t) {
		out.Duplicates++ // older than what is known of the host: its removal
		return
	}
	if reg == nil {
		if len(e.regions) >= e.regionsMax {
			out.Rejected = append(out.Rejected, Rejection{Index: i, Reason: RejectTooManyRegions,
				Err: fmt.Sprintf("new region %q: already tracking %d regions, the engine's limit", r.Region, len(e.regions))})
			return
		}
		reg = e.addRegion(string(r.Region))
		out.NewRegions = append(out.NewRegions, reg.name)
	}
	if !found {
		hi = e.addHost(reg, string(r.Host))
	}
	name := e.internName(r.Check)
	h := &e.hosts[hi]
	idx := h.insert(name)
	e.checks++
	if len(reg.windows) > 0 {
		s := &h.checks[idx]
		m, mh := e.coverage(reg, h.name, name)
		s.flags = setFlag(setFlag(s.flags, fMaint, m), fMaintHost, mh)
	}
	out.Accepted++
	e.update(reg, hi, idx, r, t, now, HashEventID(r.EventID), true, out)
	// The host was not reporting if all its other checks were stale.
	e.updateHostNR(reg, hi)
}

// before is what a check was before a result, to journal and count the
// difference.
type before struct {
	phase                string
	status, hard         health.Status
	attempts             uint8
	flapping, nonPassing bool
	stale                bool
	sev                  health.Severity
	team                 uint32
	interval             int32
}

func (e *Engine) snapshot(s *slot, isNew bool) before {
	b := before{
		phase: health.PhasePassing, status: s.status, hard: s.hard, attempts: s.attempts,
		flapping: s.flappingNow(), nonPassing: s.nonPassing(), stale: s.stale(),
		sev: e.severity(s), team: s.team, interval: s.interval,
	}
	if !isNew {
		b.phase = s.phase()
	}
	return b
}

// update applies one accepted result to the check at h.checks[idx] and
// follows the consequences: journal, counters, what to re-evaluate, what
// to persist.
func (e *Engine) update(reg *region, hi uint32, idx int, r *health.Result, t, now int64, eventID uint64, isNew bool, out *Outcome) {
	h := &e.hosts[hi]
	s := &h.checks[idx]
	nm := &e.names[s.name]
	was := e.snapshot(s, isNew)
	// t orders results; what happened is never after now.
	at := min(t, now)

	if was.stale {
		// What the check was before it went silent is no evidence about
		// it now, and its alert ended with the silence: it starts over
		// as a new check would, so a passing result recovers it at once
		// and a failing one must be confirmed again before it pages.
		if s.hard != health.Passing {
			s.hard, s.hardSince = health.Passing, at
		}
		s.attempts = 0
	}
	e.step(s, nm, r.Status, at)
	s.prevEventID = uint32(s.eventID)
	s.updated, s.lastSeen, s.eventID = t, now, eventID
	if r.Interval > 0 {
		s.interval = r.Interval
	}
	s.severity = r.Severity
	s.team = e.internTeam(r.Team)
	nonPassing := s.nonPassing()
	outputChanged := false
	if nonPassing {
		outputChanged = e.keepOutput(s, r)
	} else {
		e.dropExtra(s)
	}

	if was.stale {
		e.setStale(reg, hi, s, false)
	}
	if nonPassing != was.nonPassing {
		e.countNonPassing(reg, hi, nonPassing)
	}
	h.lastSeen = max(h.lastSeen, now)
	reg.lastEvent = max(reg.lastEvent, now)
	// The host's forget deadline is never before its checks' deadlines.
	e.lowerDue(hi, now, e.deadline(s))

	phase, sev := s.phase(), e.severity(s)
	flappingChanged := s.flappingNow() != was.flapping
	if phase != was.phase || (phase == health.PhaseHard && s.hard != was.hard) {
		e.emit(out, health.Transition{
			Time: unixTime(now), Kind: health.CheckChanged,
			Key:  health.Key{Region: reg.name, Host: h.name, Check: nm.name},
			From: was.phase, To: phase, Status: s.shownStatus(), Severity: sev,
		})
	}
	if isNew || s.hard != was.hard || flappingChanged {
		e.updateMembership(reg, hi, s)
	}
	alerting := s.hard != health.Passing || s.flappingNow()
	if isNew || was.stale || phase != was.phase || s.hard != was.hard || (alerting && sev != was.sev) {
		e.markHostDirty(hi)
		if s.flags&fFailing != 0 && sev != was.sev {
			e.markRollupDirty(e.rollupOf(reg, s.name))
		}
	}

	// Persisted with the transition, not at the next checkpoint, is all a
	// crash must not lose: state, what an alert entry (failing or
	// flapping) shows, and the interval that sets the staleness deadline.
	if isNew || was.stale || s.status != was.status || s.hard != was.hard || s.attempts != was.attempts ||
		flappingChanged || nonPassing != was.nonPassing || s.interval != was.interval ||
		((nonPassing || alerting) && (sev != was.sev || s.team != was.team || outputChanged)) {
		e.markPending(hi, s)
	} else {
		e.markCheckpoint(hi, s)
	}
}

// step runs a check's state machines on a new status at time t: the flap
// history, soft/hard confirmation and recovery, flap detection.
func (e *Engine) step(s *slot, nm *checkName, st health.Status, t int64) {
	s.flapHist <<= 1
	if s.flapCount > 0 && st != s.status {
		s.flapHist |= 1
	}
	s.flapHist &= flapHistMask
	if s.flapCount < flapSlots {
		s.flapCount++
	}
	s.status = st

	switch {
	case s.hard == health.Passing && st.Failing():
		if s.attempts < math.MaxUint8 {
			s.attempts++
		}
		if s.attempts >= nm.confirmAfter {
			s.hard, s.hardSince, s.attempts = st, t, 0
		}
	case s.hard == health.Passing:
		s.attempts = 0
	case st.Failing():
		s.attempts = 0
		if st != s.hard {
			s.hard, s.hardSince = st, t
		}
	default:
		s.attempts++
		if s.attempts >= nm.recoverAfter {
			s.hard, s.hardSince, s.attempts = health.Passing, t, 0
		}
	}

	// Without a change lately (the common case) flapping cannot start or
	// end.
	if flapping := s.flappingNow(); s.flapHist != 0 || flapping {
		f := float64(flapSum(s.flapHist))
		switch {
		case !flapping && f > e.set.flapHighUnits:
			s.flags |= fFlapping
			e.flapping++
		case flapping && f < e.set.flapLowUnits:
			s.flags &^= fFlapping
			e.flapping--
		}
	}
	s.noteWorst(st)
}

// noteWorst follows the worst failing status after a result with status
// st, once flapping is decided: a pass that leaves the check not flapping
// ends what it recalls.
func (s *slot) noteWorst(st health.Status) {
	switch {
	case st.Failing():
		if w := uint16(st) << worstShift; w > s.flags&fWorst {
			s.flags = s.flags&^fWorst | w
		}
	case !s.flappingNow():
		s.flags &^= fWorst
	}
}

// worstFailing is the worst failing status recalled by noteWorst, and
// whether one is: a flapping check recalls none only after a restart lost
// it, before its next failing result.
func (s *slot) worstFailing() (health.Status, bool) {
	w := health.Status(s.flags & fWorst >> worstShift)
	return w, w != health.Passing
}

// keepOutput stores the result's output and labels on a non-passing check,
// allocating only when they differ from what is kept.
func (e *Engine) keepOutput(s *slot, r *health.Result) bool {
	x := e.extraOf(s)
	if x != nil && x.output == string(r.Output) && labelsEqual(x.labels, r.Labels) {
		return false
	}
	if x == nil && len(r.Output) == 0 && len(r.Labels) == 0 {
		return false
	}
	if len(r.Output) == 0 && len(r.Labels) == 0 {
		e.dropExtra(s)
		return true
	}
	nx := checkExtra{output: string(r.Output)}
	if len(r.Labels) > 0 {
		nx.labels = make([]health.Label, len(r.Labels))
		for i, l := range r.Labels {
			nx.labels[i] = health.Label{Key: l.Key, Value: string(l.Value)}
		}
	}
	e.setExtra(s, nx)
	return true
}

func labelsEqual(kept []health.Label, in []health.ResultLabel) bool {
	if len(kept) != len(in) {
		return false
	}
	for i := range kept {
		if kept[i].Key != in[i].Key || kept[i].Value != string(in[i].Value) {
			return false
		}
	}
	return true
}

// countNonPassing follows a check entering or leaving the failing list.
func (e *Engine) countNonPassing(reg *region, hi uint32, nonPassing bool) {
	h := &e.hosts[hi]
	if nonPassing {
		h.failing++
		reg.failingChecks++
		if h.failing == 1 {
			e.failingHosts[hi] = struct{}{}
		}
		return
	}
	h.failing--
	reg.failingChecks--
	if h.failing == 0 {
		delete(e.failingHosts, hi)
	}
}

// emit appends a transition with the next sequence number; a nil outcome
// (Start) records nothing.
func (e *Engine) emit(out *Outcome, t health.Transition) {
	if out == nil {
		return
	}
	e.seq++
	t.Seq = e.seq
	out.Transitions = append(out.Transitions, t)
}

// flushChanged copies this call's must-persist states into out.Changed.
func (e *Engine) flushChanged(out *Outcome) {
	for _, ref := range e.pending {
		h := &e.hosts[ref.host]
		idx, ok := h.find(ref.name)
		if !ok {
			continue
		}
		s := &h.checks[idx]
		s.flags &^= fPending | fCheckpoint
		out.Changed = append(out.Changed, e.export(e.regions[h.region], h, s))
	}
	e.pending = e.pending[:0]
}

// export renders a slot as the persisted state. Output and labels are
// shared with the engine, which never modifies them in place.
func (e *Engine) export(reg *region, h *host, s *slot) health.CheckState {
	cs := health.CheckState{
		Key:         health.Key{Region: reg.name, Host: h.name, Check: e.names[s.name].name},
		Status:      s.status,
		Hard:        s.hard,
		Attempts:    s.attempts,
		Flapping:    s.flappingNow(),
		Stale:       s.stale(),
		FlapHistory: s.flapHist,
		FlapCount:   s.flapCount,
		Updated:     s.updated,
		HardSince:   s.hardSince,
		LastSeen:    s.lastSeen,
		Severity:    s.severity,
		Team:        e.teams[s.team],
		Interval:    s.interval,
		EventID:     s.eventID,
	}
	if x := e.extraOf(s); x != nil {
		cs.Output, cs.Labels = x.output, x.labels
	}
	return cs
}
