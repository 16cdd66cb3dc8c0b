package engine

import (
	"slices"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// settle re-evaluates the alerts touched by this call: region rollups first
// (they decide region suppression), then hosts. Order is by name so that two
// engines given the same calls journal the same transitions whatever their
// internal indexes. A nil outcome (Start) evaluates silently.
func (e *Engine) settle(now int64, out *Outcome) {
	if out != nil && len(e.dirtyRollups) > 1 {
		slices.SortFunc(e.dirtyRollups, e.rollupKeyCompare)
	}
	for _, ru := range e.dirtyRollups {
		ru.dirty = false
		e.settleRollup(ru, now, out)
	}
	clear(e.dirtyRollups)
	e.dirtyRollups = e.dirtyRollups[:0]

	if out != nil && len(e.dirtyHosts) > 1 {
		slices.SortFunc(e.dirtyHosts, e.hostKeyLess)
	}
	for _, hi := range e.dirtyHosts {
		e.hosts[hi].flags &^= hDirty
		e.settleHost(hi, now, out)
	}
	e.dirtyHosts = e.dirtyHosts[:0]
}

func (e *Engine) rollupKeyCompare(a, b *rollup) int {
	if a.region != b.region {
		return strings.Compare(e.regions[a.region].name, e.regions[b.region].name)
	}
	return strings.Compare(e.names[a.check].name, e.names[b.check].name)
}

// settleRollup decides a region alert from its rollup's counts.
func (e *Engine) settleRollup(ru *rollup, now int64, out *Outcome) {
	reg := e.regions[ru.region]
	active := e.outage(ru.failing, ru.hosts)
	state, sev := stateInactive, health.SeverityNone
	if active {
		state = stateFiring
		if e.regionWindow(reg, ru.check) != nil {
			state = stateSuppressed
		}
		sev = e.rollupSeverity(reg, ru)
	}
	prev, prevSev := ru.state, ru.sev
	ru.sev = sev
	if (prev != stateInactive) != active {
		// The failing hosts' checks gain or lose region suppression.
		for hi := range ru.failingHosts {
			e.markHostDirty(hi)
		}
	}
	if state == prev {
		if state == stateFiring && sev != prevSev {
			e.emit(out, health.Transition{
				Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelRegion,
				Key:  health.Key{Region: reg.name, Check: e.names[ru.check].name},
				From: health.AlertFiring, To: health.AlertFiring, Status: e.rollupStatus(reg, ru),
				Severity: sev, Reason: ReasonSeverity,
			})
		}
		return
	}
	e.countAlert(reg, prev, -1)
	e.countAlert(reg, state, 1)
	ru.state = state
	if state == stateInactive {
		delete(e.activeRollups, ru)
	} else {
		e.activeRollups[ru] = struct{}{}
	}
	t := health.Transition{
		Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelRegion,
		Key:  health.Key{Region: reg.name, Check: e.names[ru.check].name},
		From: prev.String(), To: state.String(), Severity: sev,
	}
	if state == stateSuppressed || prev == stateSuppressed {
		t.Reason = health.SuppressedByMaintenance
	}
	if state == stateInactive {
		t.Severity = prevSev
	} else {
		t.Status = e.rollupStatus(reg, ru)
	}
	e.emit(out, t)
}

// rollupSeverity is the highest severity among the failing hosts.
func (e *Engine) rollupSeverity(reg *region, ru *rollup) health.Severity {
	if ru == &reg.nr {
		return e.nrSeverity()
	}
	var sev health.Severity
	for hi := range ru.failingHosts {
		h := &e.hosts[hi]
		if i, ok := h.find(ru.check); ok {
			sev = max(sev, e.severity(&h.checks[i]))
		}
	}
	return sev
}

// rollupStatus is the worst hard status among the failing hosts (critical
// for a silent region), for the journal.
func (e *Engine) rollupStatus(reg *region, ru *rollup) health.Status {
	if ru == &reg.nr {
		return health.Critical
	}
	var st health.Status
	for hi := range ru.failingHosts {
		h := &e.hosts[hi]
		if i, ok := h.find(ru.check); ok {
			if hs := h.checks[i].hard; statusRank(hs) > statusRank(st) {
				st = hs
			}
		}
	}
	return st
}

// statusRank orders statuses by badness for humans: unknown is bad, but
// critical is worse.
func statusRank(s health.Status) int {
	switch s {
	case health.Critical:
		return 3
	case health.Unknown:
		return 2
	case health.Warning:
		return 1
	}
	return 0
}

func (e *Engine) countAlert(reg *region, s alertState, d int) {
	switch s {
	case stateFiring:
		e.firing += d
		reg.firing += int32(d)
	case stateSuppressed:
		e.suppressed += d
	}
}

// entry decides a check's alert entry: whether it pages through its host
// alert, or why it is suppressed.
func (e *Engine) entry(reg *region, s *slot) (sup uint8, paging bool) {
	if s.flags&fStale != 0 {
		return supNone, false
	}
	hard := s.hard != health.Passing
	flapping := s.flags&fFlapping != 0
	switch {
	case !hard && !flapping:
		return supNone, false
	case s.flags&fMaint != 0:
		return supMaintenance, false
	case flapping:
		return supFlapping, false
	}
	if s.flags&fFailing != 0 {
		if ru := reg.rollups[s.name]; ru != nil && ru.state != stateInactive {
			return supRegion, false
		}
	}
	return supNone, true
}

// settleHost re-derives a host's check entries, host alert and
// not_reporting alert.
func (e *Engine) settleHost(hi uint32, now int64, out *Outcome) {
	h := &e.hosts[hi]
	reg := e.regions[h.region]
	// A host being forgotten keeps its checks until this settle so that
	// its alerts end like any others: every entry is inactive.
	forgotten := h.flags&hForgotten != 0
	var paging, supCount int32
	var sev health.Severity
	var on, off *slot // the checks that made the host alert fire or resolve
	changes := e.entryScratch[:0]
	for i := range h.checks {
		s := &h.checks[i]
		sup, pg := supNone, false
		if !forgotten {
			sup, pg = e.entry(reg, s)
		}
		if sup != s.sup {
			changes = append(changes, entryChange{idx: int32(i), sup: sup})
		}
		if sup != supNone {
			supCount++
		}
		if was := s.flags&fPaging != 0; pg != was {
			s.flags = setFlag(s.flags, fPaging, pg)
			if pg {
				on = e.earlier(on, s)
			} else {
				off = e.earlier(off, s)
			}
		}
		if pg {
			paging++
			sev = max(sev, e.severity(s))
		}
	}
	h.paging, h.supCount = paging, supCount
	// Slots are in name-id order, which differs between instances (ids
	// are interned in arrival order, and in key order at a restart):
	// journal by name.
	if len(changes) > 1 {
		slices.SortFunc(changes, func(a, b entryChange) int {
			return strings.Compare(e.names[h.checks[a.idx].name].name, e.names[h.checks[b.idx].name].name)
		})
	}
	for _, c := range changes {
		e.entryTransition(reg, h, &h.checks[c.idx], c.sup, now, out)
	}
	e.entryScratch = changes[:0]

	key := health.Key{Region: reg.name, Host: h.name}
	switch {
	case paging > 0 && h.alert == stateInactive:
		if on == nil {
			on = e.worstPaging(h)
		}
		key.Check = e.names[on.name].name
		e.emit(out, health.Transition{
			Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelHost, Key: key,
			From: health.AlertInactive, To: health.AlertFiring, Status: on.hard, Severity: sev,
		})
		h.alert = stateFiring
		e.countAlert(reg, stateFiring, 1)
	case paging == 0 && h.alert == stateFiring:
		name := ""
		status := health.Passing
		if off != nil {
			name, status = e.names[off.name].name, off.shownStatus()
		}
		key.Check = name
		t := health.Transition{
			Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelHost, Key: key,
			From: health.AlertFiring, To: health.AlertInactive, Status: status, Severity: h.alertSev,
		}
		if forgotten {
			t.Reason = ReasonForgotten
		}
		e.emit(out, t)
		h.alert = stateInactive
		e.countAlert(reg, stateFiring, -1)
	case paging > 0 && sev != h.alertSev:
		if on == nil {
			on = e.worstPaging(h)
		}
		key.Check = e.names[on.name].name
		e.emit(out, health.Transition{
			Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelHost, Key: key,
			From: health.AlertFiring, To: health.AlertFiring, Status: on.hard, Severity: sev,
			Reason: ReasonSeverity,
		})
	}
	h.alertSev = sev
	e.settleNR(reg, hi, now, out)

	h = &e.hosts[hi]
	if h.alert != stateInactive || h.nr != stateInactive || h.supCount > 0 {
		e.alertHosts[hi] = struct{}{}
	} else {
		delete(e.alertHosts, hi)
	}
}

// entryChange is a check entry of a host whose suppression changes.
type entryChange struct {
	idx int32 // index in host.checks
	sup uint8
}

// entryTransition journals a check entry becoming suppressed, changing
// reason, or ending its suppression.
func (e *Engine) entryTransition(reg *region, h *host, s *slot, sup uint8, now int64, out *Outcome) {
	from, to := stateInactive, stateInactive
	if s.sup != supNone {
		from = stateSuppressed
		e.suppressed--
	}
	if sup != supNone {
		to = stateSuppressed
		e.suppressed++
	}
	reason := supNames[sup]
	if sup == supNone {
		reason = supNames[s.sup]
	}
	e.emit(out, health.Transition{
		Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelHost,
		Key:  health.Key{Region: reg.name, Host: h.name, Check: e.names[s.name].name},
		From: from.String(), To: to.String(), Status: s.shownStatus(), Severity: e.severity(s),
		Reason: reason,
	})
	s.sup = sup
}

// earlier returns whichever of a and b failed first (HardSince, then name):
// the check a host alert is attributed to.
func (e *Engine) earlier(a, b *slot) *slot {
	if a == nil {
		return b
	}
	if b.hardSince < a.hardSince || (b.hardSince == a.hardSince && e.names[b.name].name < e.names[a.name].name) {
		return b
	}
	return a
}

// worstPaging returns the paging check with the highest severity.
func (e *Engine) worstPaging(h *host) *slot {
	var w *slot
	for i := range h.checks {
		s := &h.checks[i]
		if s.flags&fPaging != 0 && (w == nil || e.severity(s) > e.severity(w)) {
			w = s
		}
	}
	return w
}

// settleNR decides a host's not_reporting alert.
func (e *Engine) settleNR(reg *region, hi uint32, now int64, out *Outcome) {
	h := &e.hosts[hi]
	state, sup := stateInactive, supNone
	if h.flags&hNotReporting != 0 {
		switch {
		case h.flags&hMaintNR != 0:
			state, sup = stateSuppressed, supMaintenance
		case h.flags&hNRFailing != 0 && reg.nr.state != stateInactive:
			state, sup = stateSuppressed, supRegion
		default:
			state = stateFiring
		}
	}
	if state == h.nr && sup == h.nrSup {
		return
	}
	reason := supNames[sup]
	if sup == supNone {
		reason = supNames[h.nrSup]
	}
	if reason == "" && h.flags&hForgotten != 0 {
		reason = ReasonForgotten
	}
	e.emit(out, health.Transition{
		Time: unixTime(now), Kind: health.AlertChanged, Level: health.LevelHost,
		Key:  health.Key{Region: reg.name, Host: h.name, Check: health.NotReporting},
		From: h.nr.String(), To: state.String(), Status: health.Critical, Severity: e.nrSeverity(),
		Reason: reason,
	})
	e.countAlert(reg, h.nr, -1)
	e.countAlert(reg, state, 1)
	h.nr, h.nrSup = state, sup
}
