package engine

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// verify recounts everything the engine keeps incrementally from the check
// states and windows alone, and decides every alert again from scratch; it
// returns the first difference.
func (e *Engine) verify() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	type counts struct{ hosts, failing int32 }
	var checks, flapping, stale, firing, suppressed int
	alertHosts := map[uint32]struct{}{}
	failingHosts := map[uint32]struct{}{}
	activeRollups := map[*rollup]struct{}{}

	for _, reg := range e.regions {
		rollups := map[uint32]*counts{}
		failingSets := map[uint32]map[uint32]struct{}{}
		var nr counts
		nrSet := map[uint32]struct{}{}
		var reporting, failingChecks, regFiring int32

		covers := func(hostName, check string) (maint, maintHost bool) {
			for _, w := range e.windows {
				if w.Region != reg.name {
					continue
				}
				if w.Host != "" && w.Host != hostName {
					continue
				}
				if w.Check != "" {
					if ok, _ := path.Match(w.Check, check); !ok {
						continue
					}
				}
				maint = true
				if w.Host != "" {
					maintHost = true
				}
			}
			return
		}

		if !slices.IsSortedFunc(reg.hostList, func(a, b uint32) int { return strings.Compare(e.hosts[a].name, e.hosts[b].name) }) {
			fail("%s: host list not sorted by name", reg.name)
		}
		if len(reg.hosts) != len(reg.hostList) {
			fail("%s: %d hosts by name, %d listed", reg.name, len(reg.hosts), len(reg.hostList))
		}
		for _, hi := range reg.hostList {
			h := &e.hosts[hi]
			var hStale, hFailing int32
			if reg.hosts[h.name] != hi || h.region != reg.id {
				fail("%s/%s: listed host %d is not the one by that name", reg.name, h.name, hi)
			}
			if len(h.checks) == 0 || h.flags&hForgotten != 0 {
				fail("%s/%s: listed host has no checks or is forgotten", reg.name, h.name)
			}
			if e.set.forgetAfter > 0 && e.forgetDeadline(h) < h.due {
				fail("%s/%s: forget deadline %d before host due %d", reg.name, h.name, e.forgetDeadline(h), h.due)
			}
			for i := range h.checks {
				s := &h.checks[i]
				name := e.names[s.name].name
				checks++
				if i > 0 && h.checks[i-1].name >= s.name {
					fail("%s/%s: checks not sorted by name id", reg.name, h.name)
				}
				m, mh := covers(h.name, name)
				if (s.flags&fMaint != 0) != m || (s.flags&fMaintHost != 0) != mh {
					fail("%s/%s/%s: maintenance flags %v/%v, want %v/%v", reg.name, h.name, name, s.flags&fMaint != 0, s.flags&fMaintHost != 0, m, mh)
				}
				if s.flappingNow() {
					flapping++
				}
				if s.stale() {
					stale++
					hStale++
				} else if d := e.deadline(s); d < h.due {
					fail("%s/%s/%s: deadline %d before host due %d", reg.name, h.name, name, d, h.due)
				}
				if s.nonPassing() {
					hFailing++
				}
				if (s.extra != 0) && !s.nonPassing() {
					fail("%s/%s/%s: passing check keeps output", reg.name, h.name, name)
				}
				member := !s.stale() && !mh
				failing := member && s.hard != health.Passing && !s.flappingNow()
				c := rollups[s.name]
				if c == nil {
					c = &counts{}
					rollups[s.name] = c
				}
				if member {
					c.hosts++
				}
				if failing {
					c.failing++
					if failingSets[s.name] == nil {
						failingSets[s.name] = map[uint32]struct{}{}
					}
					failingSets[s.name][hi] = struct{}{}
				}
			}
			if hStale != h.stale {
				fail("%s/%s: stale %d, recount %d", reg.name, h.name, h.stale, hStale)
			}
			if hFailing != h.failing {
				fail("%s/%s: failing %d, recount %d", reg.name, h.name, h.failing, hFailing)
			}
			failingChecks += hFailing
			if hFailing > 0 {
				failingHosts[hi] = struct{}{}
			}
			isNR := len(h.checks) > 0 && int(hStale) == len(h.checks)
			if isNR != (h.flags&hNotReporting != 0) {
				fail("%s/%s: not reporting %v, recount %v", reg.name, h.name, h.flags&hNotReporting != 0, isNR)
			}
			if !isNR {
				reporting++
			}
			nrm, nrmh := covers(h.name, health.NotReporting)
			if (h.flags&hMaintNR != 0) != nrm || (h.flags&hMaintHostNR != 0) != nrmh {
				fail("%s/%s: not_reporting maintenance flags wrong", reg.name, h.name)
			}
			if !nrmh {
				nr.hosts++
				if isNR {
					nr.failing++
					nrSet[hi] = struct{}{}
				}
			}
		}

		// Rollups and region alerts.
		for name, c := range rollups {
			ru := reg.rollups[name]
			if ru == nil {
				if c.hosts != 0 || c.failing != 0 {
					fail("%s/%s: rollup missing", reg.name, e.names[name].name)
				}
				continue
			}
			if ru.hosts != c.hosts || ru.failing != c.failing {
				fail("%s/%s: rollup %d/%d, recount %d/%d", reg.name, e.names[name].name, ru.failing, ru.hosts, c.failing, c.hosts)
			}
			if !maps.Equal(ru.failingHosts, failingSets[name]) && (len(ru.failingHosts) > 0 || len(failingSets[name]) > 0) {
				fail("%s/%s: failing host set differs", reg.name, e.names[name].name)
			}
		}
		for name, ru := range reg.rollups {
			if rollups[name] == nil && (ru.hosts != 0 || ru.failing != 0) {
				fail("%s/%s: rollup counts hosts without checks", reg.name, e.names[name].name)
			}
		}
		if reg.nr.hosts != nr.hosts || reg.nr.failing != nr.failing {
			fail("%s: not reporting rollup %d/%d, recount %d/%d", reg.name, reg.nr.failing, reg.nr.hosts, nr.failing, nr.hosts)
		}
		if !maps.Equal(reg.nr.failingHosts, nrSet) && (len(reg.nr.failingHosts) > 0 || len(nrSet) > 0) {
			fail("%s: not reporting host set differs", reg.name)
		}
		if reg.reporting != reporting {
			fail("%s: reporting %d, recount %d", reg.name, reg.reporting, reporting)
		}
		if reg.failingChecks != failingChecks {
			fail("%s: failing checks %d, recount %d", reg.name, reg.failingChecks, failingChecks)
		}
		allRollups := append(mapsValues(reg.rollups), &reg.nr)
		for _, ru := range allRollups {
			want := stateInactive
			if e.outage(ru.failing, ru.hosts) {
				want = stateFiring
				if e.regionWindow(reg, ru.check) != nil {
					want = stateSuppressed
				}
			}
			if ru.state != want {
				fail("%s/%s: region alert %s, want %s", reg.name, e.names[ru.check].name, ru.state, want)
			}
			switch ru.state {
			case stateFiring:
				firing++
				regFiring++
				activeRollups[ru] = struct{}{}
			case stateSuppressed:
				suppressed++
				activeRollups[ru] = struct{}{}
			}
			if ru.state != stateInactive && ru.sev != e.rollupSeverity(reg, ru) {
				fail("%s/%s: region severity %s, want %s", reg.name, e.names[ru.check].name, ru.sev, e.rollupSeverity(reg, ru))
			}
		}

		// Host alerts and entries, decided again.
		for _, hi := range reg.hostList {
			h := &e.hosts[hi]
			var paging, supCount int32
			var sev health.Severity
			for i := range h.checks {
				s := &h.checks[i]
				sup, pg := e.entry(reg, s)
				if sup != s.sup || pg != (s.flags&fPaging != 0) {
					fail("%s/%s/%s: entry %q/%v, want %q/%v", reg.name, h.name, e.names[s.name].name, supNames[s.sup], s.flags&fPaging != 0, supNames[sup], pg)
				}
				if sup != supNone {
					supCount++
					suppressed++
				}
				if pg {
					paging++
					sev = max(sev, e.severity(s))
				}
			}
			if paging != h.paging || supCount != h.supCount {
				fail("%s/%s: paging %d suppressed %d, recount %d %d", reg.name, h.name, h.paging, h.supCount, paging, supCount)
			}
			if (paging > 0) != (h.alert == stateFiring) {
				fail("%s/%s: host alert %s with %d paging checks", reg.name, h.name, h.alert, paging)
			}
			if paging > 0 {
				firing++
				regFiring++
				if sev != h.alertSev {
					fail("%s/%s: host severity %s, want %s", reg.name, h.name, h.alertSev, sev)
				}
			}
			nrWant := stateInactive
			if h.flags&hNotReporting != 0 {
				nrWant = stateFiring
				if h.flags&hMaintNR != 0 || (h.flags&hNRFailing != 0 && reg.nr.state != stateInactive) {
					nrWant = stateSuppressed
				}
			}
			if h.nr != nrWant {
				fail("%s/%s: not_reporting alert %s, want %s", reg.name, h.name, h.nr, nrWant)
			}
			switch h.nr {
			case stateFiring:
				firing++
				regFiring++
			case stateSuppressed:
				suppressed++
			}
			if paging > 0 || supCount > 0 || h.nr != stateInactive {
				alertHosts[hi] = struct{}{}
			}
		}
		if reg.firing != regFiring {
			fail("%s: firing %d, recount %d", reg.name, reg.firing, regFiring)
		}
	}

	if checks != e.checks || flapping != e.flapping || stale != e.staleCount {
		fail("engine checks/flapping/stale %d/%d/%d, recount %d/%d/%d", e.checks, e.flapping, e.staleCount, checks, flapping, stale)
	}
	if firing != e.firing || suppressed != e.suppressed {
		fail("engine firing/suppressed %d/%d, recount %d/%d", e.firing, e.suppressed, firing, suppressed)
	}
	if !maps.Equal(alertHosts, e.alertHosts) {
		fail("alerting host set differs: %d hosts, recount %d", len(e.alertHosts), len(alertHosts))
	}
	if !maps.Equal(failingHosts, e.failingHosts) {
		fail("failing host set differs: %d hosts, recount %d", len(e.failingHosts), len(failingHosts))
	}
	if !maps.Equal(activeRollups, e.activeRollups) {
		fail("active region alert set differs")
	}
	listed := 0
	for _, reg := range e.regions {
		listed += len(reg.hostList)
	}
	if listed+len(e.freeHosts) != len(e.hosts) {
		fail("%d hosts listed and %d free, of %d", listed, len(e.freeHosts), len(e.hosts))
	}
	for _, hi := range e.freeHosts {
		h := &e.hosts[hi]
		if h.name != "" || len(h.checks) != 0 || h.heapPos != -1 || h.flags != 0 {
			fail("free host %d still holds %q with %d checks, heap position %d, flags %b", hi, h.name, len(h.checks), h.heapPos, h.flags)
		}
		_, alerting := e.alertHosts[hi]
		_, failing := e.failingHosts[hi]
		if alerting || failing {
			fail("free host %d is in the alerting or failing host set", hi)
		}
	}
	if len(e.due) != listed {
		fail("heap holds %d of %d hosts", len(e.due), listed)
	}
	for i, d := range e.due {
		if int(e.hosts[d.host].heapPos) != i || e.hosts[d.host].due != d.at {
			fail("heap entry %d: host %d at position %d with key %d, entry key %d", i, d.host, e.hosts[d.host].heapPos, e.hosts[d.host].due, d.at)
		}
		if i > 0 && e.due[(i-1)/dueArity].at > d.at {
			fail("heap order broken at %d", i)
		}
	}
	if len(e.dirtyHosts) != 0 || len(e.dirtyRollups) != 0 || len(e.pending) != 0 || len(e.forgotten) != 0 {
		fail("work left after a call: %d hosts, %d rollups, %d pending, %d forgotten",
			len(e.dirtyHosts), len(e.dirtyRollups), len(e.pending), len(e.forgotten))
	}
	return errors.Join(errs...)
}

func mapsValues(m map[uint32]*rollup) []*rollup {
	out := make([]*rollup, 0, len(m)+1)
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
