package engine

import (
	"math"
	"path"
	"slices"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// slot is one check of one host: 64 bytes without pointers, so a million of
// them cost 64 MB that the garbage collector never scans.
type slot struct {
	updated   int64 // the newest result's own time
	hardSince int64
	lastSeen  int64 // receive time of the newest result
	eventID   uint64
	flapHist  uint32 // one state-change bit per result, newest in bit 0
	name      uint32 // index into Engine.names
	team      uint32 // the event's team; 0 when it gave none
	interval  int32
	extra     uint32 // 1 + index into Engine.extras; 0 when none
	// prevEventID is the low half of the event_id before eventID: a retry
	// of a result that timed out can arrive after the check's next one.
	// Half a hash fits the slot's spare bytes; it is only compared where
	// timestamps cannot order the two (see Apply), and is not persisted.
	prevEventID uint32
	status      health.Status
	hard        health.Status
	attempts    uint8
	severity    health.Severity // the event's; SeverityNone when it gave none
	flapCount   uint8
	sup         uint8 // suppression reason of its alert entry (sup*)
	flags       uint16
}

// Slot flags. The first four are facts about the check; member, failing
// and paging record what the check currently contributes to its rollup and
// host alert, so that every change adjusts the counters by a difference.
const (
	fFlapping   uint16 = 1 << iota
	fStale             // no result for stale_after
	fMaint             // covered by an active maintenance window
	fMaintHost         // covered by a window naming its host: out of the rollup
	fMember            // counted in its rollup's hosts
	fFailing           // counted in its rollup's failing hosts
	fPaging            // counted in its host alert
	fCheckpoint        // modified since the last Checkpoint and not in Changed
	fPending           // in the current call's Changed list
)

// The worst failing status a check reported since it last passed while not
// flapping, in the two top bits of the flags (0 is none): what a flapping
// check pages at, whichever status came last (see slot.noteWorst). It is
// not persisted.
const (
	worstShift        = 14
	fWorst     uint16 = 3 << worstShift
)

// Suppression reasons of a check's alert entry, in precedence order.
const (
	supNone uint8 = iota
	supMaintenance
	supRegion
	supFlapping
)

var supNames = [...]string{"", health.SuppressedByMaintenance, health.SuppressedByRegion, health.SuppressedByFlapping}

type alertState uint8

const (
	stateInactive alertState = iota
	stateFiring
	stateSuppressed
)

var stateNames = [...]string{health.AlertInactive, health.AlertFiring, health.AlertSuppressed}

func (s alertState) String() string { return stateNames[s] }

// Flap detection over the last 21 results: bit i of the history (0 newest)
// is the change into the i-th newest result; bits 0..19 are the 20 changes
// between the 21 results.
const (
	flapSlots    = 21
	flapHistMask = 1<<flapSlots - 1
	flapChanges  = flapSlots - 1
)

// The change into the i-th newest result weighs 1.2 - 0.4·i/19 (linear
// from 0.8 to 1.2, a little flatter than Nagios' 0.75 to 1.25), that is
// (114 - 2i)/95: in units of 1/95 the weights
// are whole, and a history's weighted sum is a whole number of units out of
// flapUnits, every change. Comparing whole numbers with the thresholds is
// exact, so a history worth exactly flap.high does not flap ("above") and
// one worth exactly flap.low goes on flapping ("below"), where sums of
// binary fractions would fall either side by rounding.
const flapUnits = 1900

// flapSum is the weighted sum of a change history, in units.
func flapSum(hist uint32) uint32 {
	hist &= 1<<flapChanges - 1
	var sum uint32
	for i := uint32(0); hist != 0; i, hist = i+1, hist>>1 {
		if hist&1 != 0 {
			sum += 114 - 2*i
		}
	}
	return sum
}

// flapFraction is Nagios' weighted percentage of state changes, as a
// fraction in [0, 1].
func flapFraction(hist uint32) float64 { return float64(flapSum(hist)) / flapUnits }

// flapThreshold converts a flap threshold (a fraction) to units, snapped to
// the whole unit it means when float rounding left it a hair off (0.3 is
// 570 units, not 569.9999999999999).
func flapThreshold(f float64) float64 {
	u := f * flapUnits
	if r := math.Round(u); math.Abs(u-r) < 1e-6 {
		return r
	}
	return u
}

func (s *slot) flappingNow() bool { return s.flags&fFlapping != 0 }
func (s *slot) stale() bool       { return s.flags&fStale != 0 }

// nonPassing reports whether the check shows as failing: its latest result
// or its confirmed state is not passing.
func (s *slot) nonPassing() bool { return s.status != health.Passing || s.hard != health.Passing }

// shownStatus is the status reported for a non-passing check.
func (s *slot) shownStatus() health.Status {
	if s.status == health.Passing {
		return s.hard
	}
	return s.status
}

func (s *slot) phase() string {
	switch {
	case s.flags&fStale != 0:
		return health.PhaseStale
	case s.flags&fFlapping != 0:
		return health.PhaseFlapping
	case s.hard != health.Passing:
		return health.PhaseHard
	case s.status != health.Passing:
		return health.PhaseSoft
	}
	return health.PhasePassing
}

// checkExtra is what only non-passing checks pay for.
type checkExtra struct {
	output string
	labels []health.Label
}

// Host flags.
const (
	hDirty        uint8 = 1 << iota // in Engine.dirtyHosts
	hNotReporting                   // every check is stale
	hCheckpoint                     // in ckptHosts, or in the round and not visited yet
	hMaintNR                        // a window covers its not_reporting alert
	hMaintHostNR                    // a window naming the host covers it: out of the rollup
	hNRMember                       // counted in the region's not-reporting hosts
	hNRFailing                      // counted as not reporting there
	hForgotten                      // being forgotten: its alerts end in this call's settle
)

// host holds one host's checks sorted by name id, and what they add up to.
// names mirrors the checks' name ids so that finding a check reads one
// cache line, not one per probed slot.
type host struct {
	name     string
	checks   []slot
	names    []uint32
	lastSeen int64
	due      int64 // earliest deadline of its fresh checks (heap key)
	region   uint32
	heapPos  int32
	paging   int32 // checks counted in the host alert
	stale    int32
	failing  int32  // non-passing checks
	supCount int32  // checks with a suppressed entry
	cursor   uint16 // the check after the last one found: agents report in a stable order
	spread   uint16 // how early its due key is armed, from its name (see spreadKey)
	alert    alertState
	alertSev health.Severity
	nr       alertState
	nrSup    uint8
	flags    uint8
}

// find returns the index of the check with name id n.
func (h *host) find(n uint32) (int, bool) {
	names := h.names
	lo, hi := 0, len(names)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if names[m] < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(names) && names[lo] == n
}

// insert adds a zero slot for name id n and returns its index. Growth is
// gentle: hosts gain checks rarely and memory matters more than copies.
func (h *host) insert(n uint32) int {
	i, _ := h.find(n)
	if len(h.checks) == cap(h.checks) {
		c := len(h.checks) + len(h.checks)/4 + 2
		checks := make([]slot, len(h.checks), c)
		copy(checks, h.checks)
		names := make([]uint32, len(h.names), c)
		copy(names, h.names)
		h.checks, h.names = checks, names
	}
	h.checks = slices.Insert(h.checks, i, slot{name: n})
	h.names = slices.Insert(h.names, i, n)
	return i
}

type slotRef struct{ host, name uint32 }

// rollup is one (region, check) aggregate, or a region's not-reporting
// aggregate (check = the not_reporting name id).
type rollup struct {
	region       uint32
	check        uint32
	hosts        int32
	failing      int32
	failingHosts map[uint32]struct{}
	state        alertState
	sev          health.Severity
	dirty        bool
}

func (ru *rollup) add(member, failing int32, hi uint32) {
	ru.hosts += member
	ru.failing += failing
	switch failing {
	case 1:
		if ru.failingHosts == nil {
			ru.failingHosts = make(map[uint32]struct{})
		}
		ru.failingHosts[hi] = struct{}{}
	case -1:
		delete(ru.failingHosts, hi)
		if len(ru.failingHosts) == 0 {
			ru.failingHosts = nil
		}
	}
}

type region struct {
	name          string
	id            uint32
	hosts         map[string]uint32
	hostList      []uint32 // sorted by host name
	rollups       map[uint32]*rollup
	nr            rollup
	reporting     int32
	failingChecks int32
	firing        int32
	lastEvent     int64
	windows       []*window // active windows on this region
}

func (e *Engine) rollupOf(reg *region, name uint32) *rollup {
	if ru := reg.rollups[name]; ru != nil {
		return ru
	}
	ru := &rollup{region: reg.id, check: name}
	reg.rollups[name] = ru
	return ru
}

// window is an active maintenance window with its check glob's verdict
// cached per check name.
type window struct {
	health.Window
	until int64
	match []int8 // per name id: 0 not yet matched, 1 matches, 2 does not
}

func (w *window) matchesCheck(e *Engine, name uint32) bool {
	if w.Check == "" {
		return true
	}
	if int(name) >= len(w.match) {
		w.match = append(w.match, make([]int8, len(e.names)-len(w.match))...)
	}
	if w.match[name] == 0 {
		w.match[name] = 2
		if ok, _ := path.Match(w.Check, e.names[name].name); ok {
			w.match[name] = 1
		}
	}
	return w.match[name] == 1
}

func (w *window) coversHost(hostName string) bool { return w.Host == "" || w.Host == hostName }

// findRegion looks a region up without allocating.
func (e *Engine) findRegion(name []byte) *region {
	if r := e.lastRegion; r != nil && r.name == string(name) {
		return r
	}
	ri, ok := e.regionIDs[string(name)]
	if !ok {
		return nil
	}
	e.lastRegion = e.regions[ri]
	return e.lastRegion
}

func (e *Engine) findHost(reg *region, name []byte) (uint32, bool) {
	if e.hasLast {
		if h := &e.hosts[e.lastHost]; h.region == reg.id && h.name == string(name) {
			return e.lastHost, true
		}
	}
	hi, ok := reg.hosts[string(name)]
	if ok {
		e.lastHost, e.hasLast = hi, true
	}
	return hi, ok
}

func (e *Engine) addRegion(name string) *region {
	reg := &region{
		name:    name,
		id:      uint32(len(e.regions)),
		hosts:   make(map[string]uint32),
		rollups: make(map[uint32]*rollup),
	}
	reg.nr = rollup{region: reg.id, check: e.nrName}
	e.regions = append(e.regions, reg)
	e.regionIDs[name] = reg.id
	for _, w := range e.windows {
		if w.Region == name {
			reg.windows = append(reg.windows, w)
		}
	}
	return reg
}

// addHost creates a host without checks, in the slot of a forgotten host
// when there is one. Before Start the due heap and the counters are built
// by Start.
func (e *Engine) addHost(reg *region, name string) uint32 {
	h := host{name: name, region: reg.id, due: math.MaxInt64, heapPos: -1,
		spread: uint16(HashEventID([]byte(name)))}
	var hi uint32
	if n := len(e.freeHosts); n > 0 {
		hi = e.freeHosts[n-1]
		e.freeHosts = e.freeHosts[:n-1]
		e.hosts[hi] = h
	} else {
		hi = uint32(len(e.hosts))
		e.hosts = append(e.hosts, h)
	}
	reg.hosts[name] = hi
	// Kept sorted by name so that a page of hosts costs the page, not a sort
	// of the fleet. Load sees hosts in key order: appends, mostly.
	i, _ := slices.BinarySearchFunc(reg.hostList, name, func(x uint32, name string) int {
		return strings.Compare(e.hosts[x].name, name)
	})
	reg.hostList = slices.Insert(reg.hostList, i, hi)
	if e.started {
		reg.reporting++
		e.refreshHostMaint(reg, hi, false)
		e.updateHostNR(reg, hi)
		e.duePush(hi)
	}
	return hi
}

// setExtra stores a check's output and labels, overwriting its entry if
// it has one, else reusing a freed entry.
func (e *Engine) setExtra(s *slot, x checkExtra) {
	if s.extra != 0 {
		e.extras[s.extra-1] = x
		return
	}
	if n := len(e.freeExtras); n > 0 {
		i := e.freeExtras[n-1]
		e.freeExtras = e.freeExtras[:n-1]
		e.extras[i] = x
		s.extra = i + 1
		return
	}
	e.extras = append(e.extras, x)
	s.extra = uint32(len(e.extras))
}

func (e *Engine) dropExtra(s *slot) {
	if s.extra == 0 {
		return
	}
	e.extras[s.extra-1] = checkExtra{}
	e.freeExtras = append(e.freeExtras, s.extra-1)
	s.extra = 0
}

func (e *Engine) extraOf(s *slot) *checkExtra {
	if s.extra == 0 {
		return nil
	}
	return &e.extras[s.extra-1]
}

func (e *Engine) markHostDirty(hi uint32) {
	h := &e.hosts[hi]
	if h.flags&hDirty == 0 {
		h.flags |= hDirty
		e.dirtyHosts = append(e.dirtyHosts, hi)
	}
}

func (e *Engine) markRollupDirty(ru *rollup) {
	if !ru.dirty {
		ru.dirty = true
		e.dirtyRollups = append(e.dirtyRollups, ru)
	}
}

// markPending puts the check in this call's Changed list: it must be on
// disk before the call's effects are acknowledged.
func (e *Engine) markPending(hi uint32, s *slot) {
	s.flags &^= fCheckpoint
	if s.flags&fPending == 0 {
		s.flags |= fPending
		e.pending = append(e.pending, slotRef{host: hi, name: s.name})
	}
}

// markCheckpoint leaves the check for the next Checkpoint.
func (e *Engine) markCheckpoint(hi uint32, s *slot) {
	if s.flags&(fPending|fCheckpoint) != 0 {
		return
	}
	s.flags |= fCheckpoint
	h := &e.hosts[hi]
	if h.flags&hCheckpoint == 0 {
		h.flags |= hCheckpoint
		e.ckptHosts = append(e.ckptHosts, hi)
	}
}

// updateMembership adjusts the check's rollup after a change of the facts
// it depends on (stale, maintenance, hard status, flapping).
func (e *Engine) updateMembership(reg *region, hi uint32, s *slot) {
	member := s.flags&(fStale|fMaintHost) == 0
	failing := member && s.hard != health.Passing && s.flags&fFlapping == 0
	wasMember, wasFailing := s.flags&fMember != 0, s.flags&fFailing != 0
	if member == wasMember && failing == wasFailing {
		return
	}
	ru := e.rollupOf(reg, s.name)
	ru.add(delta(member, wasMember), delta(failing, wasFailing), hi)
	s.flags = setFlag(s.flags, fMember, member)
	s.flags = setFlag(s.flags, fFailing, failing)
	e.markRollupDirty(ru)
}

// updateHostNR recomputes whether the host is reporting and its part in the
// region's not-reporting rollup.
func (e *Engine) updateHostNR(reg *region, hi uint32) {
	h := &e.hosts[hi]
	nr := len(h.checks) > 0 && int(h.stale) == len(h.checks)
	if was := h.flags&hNotReporting != 0; nr != was {
		h.flags = setFlag8(h.flags, hNotReporting, nr)
		if nr {
			reg.reporting--
		} else {
			reg.reporting++
		}
		e.markHostDirty(hi)
	}
	member := h.flags&hMaintHostNR == 0
	failing := member && nr
	wasMember, wasFailing := h.flags&hNRMember != 0, h.flags&hNRFailing != 0
	if member == wasMember && failing == wasFailing {
		return
	}
	reg.nr.add(delta(member, wasMember), delta(failing, wasFailing), hi)
	h.flags = setFlag8(h.flags, hNRMember, member)
	h.flags = setFlag8(h.flags, hNRFailing, failing)
	e.markRollupDirty(&reg.nr)
	e.markHostDirty(hi)
}

// setStale marks a check stale or fresh and follows the consequences.
func (e *Engine) setStale(reg *region, hi uint32, s *slot, stale bool) {
	s.flags = setFlag(s.flags, fStale, stale)
	h := &e.hosts[hi]
	if stale {
		h.stale++
		e.staleCount++
	} else {
		h.stale--
		e.staleCount--
	}
	e.updateMembership(reg, hi, s)
	e.markHostDirty(hi)
	e.updateHostNR(reg, hi)
}

// coverage reports whether an active window covers the check, and whether
// one that names the host does.
func (e *Engine) coverage(reg *region, hostName string, name uint32) (maint, maintHost bool) {
	for _, w := range reg.windows {
		if w.coversHost(hostName) && w.matchesCheck(e, name) {
			maint = true
			if w.Host != "" {
				return true, true
			}
		}
	}
	return maint, false
}

// regionWindow returns the first region-wide window covering the check.
func (e *Engine) regionWindow(reg *region, name uint32) *window {
	for _, w := range reg.windows {
		if w.Host == "" && w.matchesCheck(e, name) {
			return w
		}
	}
	return nil
}

// refreshHostMaint recomputes the maintenance flags of a host's checks and
// of its not_reporting alert. With load set it only sets flags (Start
// counts afterwards).
func (e *Engine) refreshHostMaint(reg *region, hi uint32, load bool) {
	h := &e.hosts[hi]
	for i := range h.checks {
		s := &h.checks[i]
		m, mh := false, false
		if len(reg.windows) > 0 {
			m, mh = e.coverage(reg, h.name, s.name)
		}
		flags := setFlag(setFlag(s.flags, fMaint, m), fMaintHost, mh)
		if flags == s.flags {
			continue
		}
		s.flags = flags
		if !load {
			e.updateMembership(reg, hi, s)
			e.markHostDirty(hi)
		}
	}
	m, mh := false, false
	if len(reg.windows) > 0 {
		m, mh = e.coverage(reg, h.name, e.nrName)
	}
	flags := setFlag8(setFlag8(h.flags, hMaintNR, m), hMaintHostNR, mh)
	if flags != h.flags {
		h.flags = flags
		if !load {
			e.updateHostNR(reg, hi)
			e.markHostDirty(hi)
		}
	}
}

func delta(now, was bool) int32 {
	switch {
	case now && !was:
		return 1
	case was && !now:
		return -1
	}
	return 0
}

func setFlag(f, bit uint16, on bool) uint16 {
	if on {
		return f | bit
	}
	return f &^ bit
}

func setFlag8(f, bit uint8, on bool) uint8 {
	if on {
		return f | bit
	}
	return f &^ bit
}

// hostKeyLess orders hosts by region name, then host name.
func (e *Engine) hostKeyLess(a, b uint32) int {
	ha, hb := &e.hosts[a], &e.hosts[b]
	if ha.region != hb.region {
		return strings.Compare(e.regions[ha.region].name, e.regions[hb.region].name)
	}
	return strings.Compare(ha.name, hb.name)
}
