package engine

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Explanation says why a check or a host does or does not page, for the
// human on call.
type Explanation struct {
	Found bool       `json:"found"`
	Key   health.Key `json:"key"`
	Phase string     `json:"phase,omitempty"` // health.Phase*
	// Pages reports whether this check (or host) pages right now.
	Pages bool `json:"pages"`
	// Decision is one sentence; Steps each rule applied, in order, with
	// its numbers.
	Decision string         `json:"decision"`
	Steps    []string       `json:"steps,omitempty"`
	Check    *CheckInfo     `json:"check,omitempty"`
	Alert    *health.Alert  `json:"alert,omitempty"`
	Window   *health.Window `json:"window,omitempty"`
	Region   *RegionRollup  `json:"region,omitempty"`
	// AlsoIn names the other regions that track a host of this name, when
	// the question did not name a region: each is a different host.
	AlsoIn []string `json:"also_in,omitempty"`
}

// RegionRollup is one (region, check) aggregate as the region rule sees it;
// Check is "not_reporting" for the region's silent hosts.
type RegionRollup struct {
	Region    string  `json:"region"`
	Check     string  `json:"check"`
	Hosts     int     `json:"hosts"`
	Failing   int     `json:"failing"`
	Ratio     float64 `json:"ratio"`
	Threshold float64 `json:"threshold"`
	MinHosts  int     `json:"min_hosts"`
	Alerting  bool    `json:"alerting"`
}

// Explain says why a check pages or not; with check "" it explains the
// host, with check "not_reporting" the host's not_reporting alert. A host
// name present in several regions is explained in the first region by
// name, and the answer lists the others (AlsoIn); ExplainIn names the
// region.
func (e *Engine) Explain(hostName, check string) Explanation {
	return e.ExplainIn("", hostName, check)
}

// ExplainIn is Explain for the host of that name in regionName ("" for the
// first region by name that has one).
func (e *Engine) ExplainIn(regionName, hostName, check string) Explanation {
	ex := Explanation{Key: health.Key{Region: regionName, Host: hostName, Check: check}}
	reg, hi, ok := e.hostByName(regionName, hostName)
	if !ok {
		if region, at, gone := e.forgottenHost(regionName, hostName); gone {
			ex.Key.Region = region
			ex.Decision = fmt.Sprintf("%s was forgotten in %s at %s: results timestamped before then are ignored as late; a newer one tracks it again",
				hostName, region, unixTime(at).Format(time.RFC3339))
			return ex
		}
		if regionName != "" {
			ex.Decision = fmt.Sprintf("%s is not a tracked host in %s: no result has been received for it there", hostName, regionName)
			return ex
		}
		ex.Decision = fmt.Sprintf("%s is not a tracked host: no result has been received for it", hostName)
		return ex
	}
	h := &e.hosts[hi]
	ex.Key.Region = reg.name
	if regionName == "" {
		ex.AlsoIn = e.otherRegionsOf(reg, hostName)
		if len(ex.AlsoIn) > 0 {
			// Said first: everything after it is about this region's host.
			ex.Steps = append(ex.Steps, fmt.Sprintf("a host named %s is also tracked in %s: this explains the one in %s; give region to explain another",
				hostName, strings.Join(ex.AlsoIn, ", "), reg.name))
		}
	}
	switch check {
	case "":
		e.explainHost(reg, h, &ex)
		return ex
	case health.NotReporting:
		e.explainNotReporting(reg, h, &ex)
		return ex
	}
	name, ok := e.nameIDs[check]
	idx := 0
	if ok {
		idx, ok = h.find(name)
	}
	if !ok {
		ex.Decision = fmt.Sprintf("no check %s is tracked on %s (%s): no result has been received for it", check, h.name, reg.name)
		return ex
	}
	e.explainCheck(reg, h, &h.checks[idx], &ex)
	return ex
}

// forgottenHost finds when the host of that name was forgotten in
// regionName, or in the first region by name that forgot one when
// regionName is "".
func (e *Engine) forgottenHost(regionName, name string) (region string, at int64, ok bool) {
	if regionName != "" {
		at, ok = e.tombstones[regionHost{regionName, name}]
		return regionName, at, ok
	}
	for k, t := range e.tombstones {
		if k.host == name && (!ok || k.region < region) {
			region, at, ok = k.region, t, true
		}
	}
	return region, at, ok
}

// hostByName finds the host in regionName, or in the first region by name
// that has it when regionName is "".
func (e *Engine) hostByName(regionName, name string) (*region, uint32, bool) {
	if regionName != "" {
		ri, ok := e.regionIDs[regionName]
		if !ok {
			return nil, 0, false
		}
		reg := e.regions[ri]
		hi, ok := reg.hosts[name]
		return reg, hi, ok
	}
	var best *region
	var bestHost uint32
	for _, reg := range e.regions {
		if hi, ok := reg.hosts[name]; ok && (best == nil || reg.name < best.name) {
			best, bestHost = reg, hi
		}
	}
	return best, bestHost, best != nil
}

// otherRegionsOf names, sorted, the regions other than reg that track a
// host called name.
func (e *Engine) otherRegionsOf(reg *region, name string) []string {
	var out []string
	for _, r := range e.regions {
		if _, ok := r.hosts[name]; ok && r != reg {
			out = append(out, r.name)
		}
	}
	slices.Sort(out)
	return out
}

// explainNotReporting says why a host's not_reporting alert fires or not:
// how many of its checks are stale, the region's silent hosts against the
// region thresholds, and a window covering it.
func (e *Engine) explainNotReporting(reg *region, h *host, ex *Explanation) {
	ex.Found = true
	ex.Pages = h.nr == stateFiring
	ex.Phase = health.PhasePassing
	ex.Steps = append(ex.Steps, fmt.Sprintf("%d/%d checks stale, last result received %s", h.stale, len(h.checks), fmtTime(h.lastSeen)))
	rr := e.rollupView(reg, &reg.nr)
	ex.Region = &rr
	ex.Steps = append(ex.Steps, e.rollupStep(reg, &reg.nr))
	if w := e.checkWindow(reg, h.name, e.nrName); w != nil {
		ww := w.Window
		ex.Window = &ww
		ex.Steps = append(ex.Steps, fmt.Sprintf("maintenance window %s until %s covers its not_reporting alert (%s)",
			w.ID, w.Until.UTC().Format(time.RFC3339), w.Reason))
	}
	if h.flags&hNotReporting == 0 {
		var next int64 // when the last fresh check goes stale
		for i := range h.checks {
			if s := &h.checks[i]; !s.stale() {
				next = max(next, e.deadline(s))
			}
		}
		ex.Decision = fmt.Sprintf("%s has no not_reporting alert: %d of its %d checks are fresh; it stops reporting if none reports by %s",
			h.name, len(h.checks)-int(h.stale), len(h.checks), fmtTime(next))
		return
	}
	ex.Phase = health.PhaseStale
	e.notReportingDecision(reg, h, ex)
}

// notReportingDecision states the not_reporting alert of a silent host.
func (e *Engine) notReportingDecision(reg *region, h *host, ex *Explanation) {
	a := e.nrHostAlert(reg, h)
	ex.Alert = &a
	switch h.nrSup {
	case supNone:
		ex.Decision = fmt.Sprintf("%s pages: not reporting, no result from any of its %d checks since %s", h.name, len(h.checks), fmtTime(h.lastSeen))
	case supRegion:
		ex.Decision = fmt.Sprintf("%s does not page on its own: it is not reporting, like %d/%d hosts in %s, so the region not_reporting alert stands for it",
			h.name, reg.nr.failing, reg.nr.hosts, reg.name)
	default:
		ex.Decision = fmt.Sprintf("%s does not page: it is not reporting, suppressed by maintenance", h.name)
	}
}

func (e *Engine) explainCheck(reg *region, h *host, s *slot, ex *Explanation) {
	nm := &e.names[s.name]
	info := e.checkInfo(reg, h, s)
	ex.Found, ex.Check, ex.Phase = true, &info, s.phase()
	ex.Pages = s.flags&fPaging != 0 && h.alert == stateFiring
	now := e.now
	what := fmt.Sprintf("%s on %s", nm.name, h.name)
	// A count is credited to the check's rule only when the rule sets it;
	// otherwise it is the engine's.
	confirmNote, recoverNote := "", ""
	if nm.rule >= 0 {
		r := &e.rules[nm.rule]
		if r.confirmAfter > 0 {
			confirmNote = fmt.Sprintf(", rule %q", r.match)
		}
		if r.recoverAfter > 0 {
			recoverNote = fmt.Sprintf(", rule %q", r.match)
		}
	}

	ex.Steps = append(ex.Steps, fmt.Sprintf("last result %s at %s, received %s",
		s.status, fmtTime(s.updated), fmtTime(s.lastSeen)))
	switch {
	case s.hard == health.Passing && s.status == health.Passing:
		ex.Steps = append(ex.Steps, "passing")
	case s.hard == health.Passing:
		ex.Steps = append(ex.Steps, fmt.Sprintf("soft %s: %d/%d consecutive non-passing results, hard at %d (confirm_after%s)",
			s.status, s.attempts, nm.confirmAfter, nm.confirmAfter, confirmNote))
	case s.status == health.Passing:
		ex.Steps = append(ex.Steps, fmt.Sprintf("hard %s since %s, recovering: %d/%d consecutive passing results (recover_after%s)",
			s.hard, fmtTime(s.hardSince), s.attempts, nm.recoverAfter, recoverNote))
	default:
		ex.Steps = append(ex.Steps, fmt.Sprintf("hard %s since %s: confirmed after %d consecutive non-passing results (confirm_after%s)",
			s.hard, fmtTime(s.hardSince), nm.confirmAfter, confirmNote))
	}
	flapState := "not flapping"
	if s.flappingNow() {
		flapState = "flapping"
	}
	ex.Steps = append(ex.Steps, fmt.Sprintf("flap detection: %.0f%% weighted state changes over the last %d results (flapping above %.0f%%, settled below %.0f%%): %s",
		info.FlapPercent, s.flapCount, 100*e.set.flapHigh, 100*e.set.flapLow, flapState))
	staleAfter := time.Duration(e.staleAfter(s))
	silent := time.Duration(now - s.lastSeen)
	if s.stale() {
		ex.Steps = append(ex.Steps, fmt.Sprintf("stale: nothing received for %s, more than its stale_after %s (%s)",
			silent.Round(time.Second), staleAfter, e.staleSource(s)))
	} else {
		ex.Steps = append(ex.Steps, fmt.Sprintf("fresh: last received %s ago, stale after %s (%s)",
			silent.Round(time.Second), staleAfter, e.staleSource(s)))
	}
	sev := e.severity(s)
	if s.hard != health.Passing || s.status != health.Passing {
		ex.Steps = append(ex.Steps, fmt.Sprintf("severity %s %s", sev, e.severitySource(s)))
	}
	if s.flags&fMaint != 0 {
		if w := e.checkWindow(reg, h.name, s.name); w != nil {
			ww := w.Window
			ex.Window = &ww
			ex.Steps = append(ex.Steps, fmt.Sprintf("maintenance window %s until %s covers it (%s)",
				w.ID, w.Until.UTC().Format(time.RFC3339), w.Reason))
		}
	}
	if ru := reg.rollups[s.name]; ru != nil {
		rr := e.rollupView(reg, ru)
		ex.Region = &rr
		ex.Steps = append(ex.Steps, e.rollupStep(reg, ru))
	}
	if h.alert == stateFiring {
		a := e.hostAlert(reg, h)
		ex.Steps = append(ex.Steps, fmt.Sprintf("host alert on %s firing since %s: %s", h.name, a.Since.Format(time.RFC3339), a.Summary))
	} else {
		ex.Steps = append(ex.Steps, fmt.Sprintf("no host alert on %s", h.name))
	}

	switch {
	case s.stale():
		ex.Decision = fmt.Sprintf("%s does not page: stale, no result for %s (stale_after %s); a stale check does not page by itself",
			what, silent.Round(time.Second), staleAfter)
		if h.nr != stateInactive {
			a := e.nrHostAlert(reg, h)
			ex.Alert = &a
			ex.Decision += ", the host's not_reporting alert stands for it"
		}
	case s.sup == supMaintenance:
		a := e.entryAlert(reg, h, s)
		ex.Alert = &a
		ex.Decision = fmt.Sprintf("%s does not page: it is %s, suppressed by maintenance", what, s.shownStatus())
		if ex.Window != nil {
			ex.Decision = fmt.Sprintf("%s does not page: it is %s, suppressed by maintenance window %s until %s (%s)",
				what, s.shownStatus(), ex.Window.ID, ex.Window.Until.UTC().Format(time.RFC3339), ex.Window.Reason)
		}
	case s.sup == supRegion:
		a := e.entryAlert(reg, h, s)
		ex.Alert = &a
		ru := reg.rollups[s.name]
		ex.Decision = fmt.Sprintf("%s does not page on its own: %s fails on %d/%d hosts in %s, so the region alert stands for it",
			what, nm.name, ru.failing, ru.hosts, reg.name)
	case s.sup == supFlapping:
		a := e.entryAlert(reg, h, s)
		ex.Alert = &a
		// Flapping starts above flap.high but ends only below flap.low: in
		// between, the check is still flapping though under the start mark.
		// Compared as shown (whole percents) so the sentence reads true.
		mark := fmt.Sprintf("above flap.high %.0f%%", 100*e.set.flapHigh)
		if math.Round(info.FlapPercent) <= math.Round(100*e.set.flapHigh) {
			mark = fmt.Sprintf("not yet below flap.low %.0f%%", 100*e.set.flapLow)
		}
		ex.Decision = fmt.Sprintf("%s does not page: it is flapping (%.0f%% state changes, %s); it pages once it settles failing",
			what, info.FlapPercent, mark)
	case ex.Pages:
		a := e.hostAlert(reg, h)
		ex.Alert = &a
		ex.Decision = fmt.Sprintf("%s pages: hard %s since %s, in the %s host alert on %s",
			what, s.hard, fmtTime(s.hardSince), a.Severity, h.name)
	case s.status != health.Passing:
		ex.Decision = fmt.Sprintf("%s does not page yet: soft %s, %d of %d consecutive non-passing results",
			what, s.status, s.attempts, nm.confirmAfter)
	default:
		ex.Decision = fmt.Sprintf("%s does not page: it is passing", what)
	}
}

func (e *Engine) explainHost(reg *region, h *host, ex *Explanation) {
	ex.Found = true
	ex.Pages = h.alert == stateFiring || h.nr == stateFiring
	phase := health.PhasePassing
	rank := map[string]int{health.PhasePassing: 0, health.PhaseSoft: 1, health.PhaseFlapping: 2, health.PhaseHard: 3}
	var failing, suppressed []string
	for i := range h.checks {
		s := &h.checks[i]
		p := s.phase()
		name := e.names[s.name].name
		if p != health.PhaseStale && rank[p] > rank[phase] {
			phase = p
		}
		switch {
		case s.stale() || (!s.nonPassing() && !s.flappingNow()):
			continue
		case s.flags&fPaging != 0:
			failing = append(failing, name)
			ex.Steps = append(ex.Steps, fmt.Sprintf("%s: hard %s since %s, severity %s: pages", name, s.hard, fmtTime(s.hardSince), e.severity(s)))
		case s.sup != supNone:
			suppressed = append(suppressed, name)
			ex.Steps = append(ex.Steps, fmt.Sprintf("%s: %s, suppressed by %s", name, s.phase(), supNames[s.sup]))
		default:
			ex.Steps = append(ex.Steps, fmt.Sprintf("%s: soft %s, %d/%d non-passing results", name, s.status, s.attempts, e.names[s.name].confirmAfter))
		}
	}
	if h.stale > 0 {
		ex.Steps = append(ex.Steps, fmt.Sprintf("%d/%d checks stale, last result received %s", h.stale, len(h.checks), fmtTime(h.lastSeen)))
	}
	if w := e.hostWindow(reg, h.name); w != nil {
		ww := w.Window
		ex.Window = &ww
		glob := "every check"
		if w.Check != "" {
			glob = fmt.Sprintf("checks matching %q", w.Check)
		}
		ex.Steps = append(ex.Steps, fmt.Sprintf("maintenance window %s until %s covers %s (%s)", w.ID, w.Until.UTC().Format(time.RFC3339), glob, w.Reason))
	}
	if h.flags&hNotReporting != 0 {
		phase = health.PhaseStale
		rr := e.rollupView(reg, &reg.nr)
		ex.Region = &rr
		ex.Steps = append(ex.Steps, e.rollupStep(reg, &reg.nr))
	}
	ex.Phase = phase
	slices.Sort(failing)
	slices.Sort(suppressed)

	switch {
	case h.alert == stateFiring:
		a := e.hostAlert(reg, h)
		ex.Alert = &a
		ex.Decision = fmt.Sprintf("%s pages: %s, severity %s, firing since %s", h.name, a.Summary, a.Severity, a.Since.Format(time.RFC3339))
	case h.nr != stateInactive:
		e.notReportingDecision(reg, h, ex)
	case len(suppressed) > 0:
		ex.Decision = fmt.Sprintf("%s does not page: its failing checks are suppressed (%s)", h.name, strings.Join(suppressed, ", "))
	case h.failing > 0:
		ex.Decision = fmt.Sprintf("%s does not page: no check is hard failing (%d soft or stale)", h.name, h.failing)
	default:
		verb := " are"
		if len(h.checks) == 1 {
			verb = " is"
		}
		ex.Decision = fmt.Sprintf("%s does not page: %s%s passing", h.name, allChecks(len(h.checks)), verb)
	}
}

func (e *Engine) rollupView(reg *region, ru *rollup) RegionRollup {
	rr := RegionRollup{
		Region:    reg.name,
		Check:     e.names[ru.check].name,
		Hosts:     int(ru.hosts),
		Failing:   int(ru.failing),
		Threshold: e.set.outageRatio,
		MinHosts:  int(e.set.minHosts),
		Alerting:  ru.state != stateInactive,
	}
	if ru.hosts > 0 {
		rr.Ratio = float64(ru.failing) / float64(ru.hosts)
	}
	return rr
}

func (e *Engine) rollupStep(reg *region, ru *rollup) string {
	rr := e.rollupView(reg, ru)
	verb := "failing"
	if ru == &reg.nr {
		verb = "not reporting"
	}
	state := "no region alert"
	switch ru.state {
	case stateFiring:
		state = "region alert firing"
	case stateSuppressed:
		state = "region alert suppressed by maintenance"
	}
	return fmt.Sprintf("region rollup %s in %s: %d/%d hosts %s (%.0f%%); a region alert needs at least %.0f%% and %d hosts: %s",
		rr.Check, reg.name, rr.Failing, rr.Hosts, verb, 100*rr.Ratio, 100*rr.Threshold, rr.MinHosts, state)
}

func (e *Engine) staleSource(s *slot) string {
	nm := &e.names[s.name]
	if nm.staleAfter > 0 {
		return fmt.Sprintf("rule %q", e.rules[nm.rule].match)
	}
	if iv := 3 * int64(s.interval) * int64(time.Second); iv > e.set.staleAfter {
		return fmt.Sprintf("3 x its interval %ds", s.interval)
	}
	return "engine stale_after"
}

func (e *Engine) severitySource(s *slot) string {
	nm := &e.names[s.name]
	switch {
	case s.severity != health.SeverityNone:
		return "from the event"
	case nm.severity != health.SeverityNone:
		return fmt.Sprintf("from rule %q", e.rules[nm.rule].match)
	}
	st := s.hard
	if st == health.Passing {
		st = s.status
	}
	if s.flappingNow() {
		w, ok := s.worstFailing()
		switch {
		case ok && w > st:
			return fmt.Sprintf("from the worst status it flapped to, %s", w)
		case !ok:
			return "as for a failing status not known to be milder: it flapped before a restart, which does not keep to which status"
		}
	}
	return fmt.Sprintf("from its %s status", st)
}

// checkWindow returns the first window covering the check. It matches the
// glob afresh rather than through the window's cache: read methods modify
// nothing.
func (e *Engine) checkWindow(reg *region, hostName string, name uint32) *window {
	for _, w := range e.windows {
		if w.Region != reg.name || !w.coversHost(hostName) {
			continue
		}
		if ok, _ := path.Match(w.Check, e.names[name].name); ok || w.Check == "" {
			return w
		}
	}
	return nil
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return "never"
	}
	return unixTime(ns).Format(time.RFC3339)
}

// ExplainRegion says why a region alert for check (health.NotReporting for
// the region's silence) pages or not: the rollup's numbers against the
// thresholds, and the maintenance window holding it back if any.
func (e *Engine) ExplainRegion(regionName, check string) Explanation {
	ex := Explanation{Key: health.Key{Region: regionName, Check: check}}
	id, ok := e.regionIDs[regionName]
	if !ok {
		ex.Decision = fmt.Sprintf("%s is not a tracked region: no result has been received from it", regionName)
		return ex
	}
	reg := e.regions[id]
	var ru *rollup
	if check == health.NotReporting {
		ru = &reg.nr
	} else if name, ok := e.nameIDs[check]; ok {
		ru = reg.rollups[name]
	}
	if ru == nil {
		ex.Decision = fmt.Sprintf("no host in %s runs a check named %q", regionName, check)
		return ex
	}
	ex.Found = true
	rr := e.rollupView(reg, ru)
	ex.Region = &rr
	ex.Steps = append(ex.Steps, e.rollupStep(reg, ru))
	if ru.state == stateInactive {
		ex.Decision = fmt.Sprintf("no region alert for %s in %s: %d/%d hosts, below %.0f%% or %d hosts; failing hosts alert on their own",
			rr.Check, regionName, rr.Failing, rr.Hosts, 100*rr.Threshold, rr.MinHosts)
		return ex
	}
	a := e.regionAlert(ru)
	ex.Alert = &a
	if ru.state == stateSuppressed {
		for _, w := range reg.windows {
			if ok, _ := path.Match(w.Check, rr.Check); w.Host == "" && (w.Check == "" || ok) {
				hw := w.Window
				ex.Window = &hw
				break
			}
		}
		ex.Decision = fmt.Sprintf("the region alert for %s in %s does not page: suppressed by maintenance", rr.Check, regionName)
		return ex
	}
	ex.Pages = true
	ex.Phase = health.AlertFiring
	ex.Decision = fmt.Sprintf("pages once for the region: %s; the matching host alerts are suppressed while it fires", a.Summary)
	return ex
}
