package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// RegionInfo is one region's summary for the API and /metrics.
type RegionInfo struct {
	Name           string    `json:"name"`
	Hosts          int       `json:"hosts"`
	ReportingHosts int       `json:"reporting_hosts"`
	FailingChecks  int       `json:"failing_checks"` // non-passing checks, stale ones left out
	LastEvent      time.Time `json:"last_event"`
	Alerts         int       `json:"alerts"` // firing host and region alerts
}

// HostInfo is one host's summary. Alert is its host alert when firing,
// else its not_reporting alert when active; Maintenance the first window
// (by end time) covering the host or its whole region.
type HostInfo struct {
	Region       string         `json:"region"`
	Host         string         `json:"host"`
	Checks       int            `json:"checks"`
	Failing      int            `json:"failing"` // non-passing checks, stale ones left out
	NotReporting bool           `json:"not_reporting"`
	LastSeen     time.Time      `json:"last_seen"`
	Alert        *health.Alert  `json:"alert,omitempty"`
	Maintenance  *health.Window `json:"maintenance,omitempty"`
}

// CheckInfo is one check's state with what the engine derives from it.
// Severity is the resolved severity (CheckState.Severity is the event's).
type CheckInfo struct {
	health.CheckState
	Phase       string          `json:"phase"`
	Stale       bool            `json:"stale"`
	Severity    health.Severity `json:"severity"`
	FlapPercent float64         `json:"flap_percent"`
}

// MarshalJSON renders the check in snake_case with RFC 3339 times: the
// embedded CheckState is a storage record without JSON names.
func (c CheckInfo) MarshalJSON() ([]byte, error) {
	type view struct {
		Region      string          `json:"region"`
		Host        string          `json:"host"`
		Check       string          `json:"check"`
		Status      health.Status   `json:"status"`
		Hard        health.Status   `json:"hard"`
		Phase       string          `json:"phase"`
		Attempts    uint8           `json:"attempts"`
		Flapping    bool            `json:"flapping"`
		FlapPercent float64         `json:"flap_percent"`
		Stale       bool            `json:"stale"`
		Severity    health.Severity `json:"severity"`
		Team        string          `json:"team,omitempty"`
		Interval    int32           `json:"interval,omitempty"`
		Updated     time.Time       `json:"updated"`
		HardSince   time.Time       `json:"hard_since"`
		LastSeen    time.Time       `json:"last_seen"`
		Output      string          `json:"output,omitempty"`
		Labels      []health.Label  `json:"labels,omitempty"`
	}
	return json.Marshal(view{
		Region: c.Region, Host: c.Host, Check: c.Key.Check,
		Status: c.Status, Hard: c.Hard, Phase: c.Phase, Attempts: c.Attempts,
		Flapping: c.Flapping, FlapPercent: c.FlapPercent, Stale: c.Stale,
		Severity: c.Severity, Team: c.Team, Interval: c.Interval,
		Updated: unixTime(c.Updated), HardSince: unixTime(c.HardSince), LastSeen: unixTime(c.LastSeen),
		Output: c.Output, Labels: c.Labels,
	})
}

// Stats counts what the engine tracks, for /metrics.
type Stats struct {
	TrackedChecks int `json:"tracked_checks"`
	Hosts         int `json:"hosts"`
	Regions       int `json:"regions"`
	Firing        int `json:"firing"`
	Suppressed    int `json:"suppressed"`
	Flapping      int `json:"flapping"`
	Stale         int `json:"stale"`
	// TeamsDropped counts results whose team was dropped because
	// the engine already holds the most distinct team names it keeps.
	TeamsDropped uint64 `json:"teams_dropped"`
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		TrackedChecks: e.checks,
		Hosts:         len(e.hosts) - len(e.freeHosts),
		Regions:       len(e.regions),
		Firing:        e.firing,
		Suppressed:    e.suppressed,
		Flapping:      e.flapping,
		Stale:         e.staleCount,
		TeamsDropped:  e.teamsDropped,
	}
}

// Alerts returns the alert set, firing and suppressed, sorted by level,
// region, host and check. It walks only alerting hosts and active region
// alerts, and sorts their indexes rather than the alerts.
func (e *Engine) Alerts() []health.Alert {
	his := make([]uint32, 0, len(e.alertHosts))
	for hi := range e.alertHosts {
		his = append(his, hi)
	}
	slices.SortFunc(his, e.hostKeyLess)
	alerts := make([]health.Alert, 0, len(his)+len(e.activeRollups))
	for _, hi := range his {
		h := &e.hosts[hi]
		reg := e.regions[h.region]
		if h.alert == stateFiring {
			alerts = append(alerts, e.hostAlert(reg, h)) // Check "" sorts first
		}
		first := len(alerts)
		if h.nr != stateInactive {
			alerts = append(alerts, e.nrHostAlert(reg, h))
		}
		if h.supCount > 0 {
			for i := range h.checks {
				if s := &h.checks[i]; s.sup != supNone {
					alerts = append(alerts, e.entryAlert(reg, h, s))
				}
			}
		}
		if len(alerts)-first > 1 {
			slices.SortFunc(alerts[first:], func(a, b health.Alert) int { return strings.Compare(a.Check, b.Check) })
		}
	}
	rus := make([]*rollup, 0, len(e.activeRollups))
	for ru := range e.activeRollups {
		rus = append(rus, ru)
	}
	slices.SortFunc(rus, e.rollupKeyCompare)
	for _, ru := range rus {
		alerts = append(alerts, e.regionAlert(ru))
	}
	return alerts
}

// hostAlert renders a firing host alert.
func (e *Engine) hostAlert(reg *region, h *host) health.Alert {
	var first *slot
	names := make([]string, 0, h.paging)
	for i := range h.checks {
		s := &h.checks[i]
		if s.flags&fPaging != 0 {
			names = append(names, e.names[s.name].name)
			first = e.earlier(first, s)
		}
	}
	slices.Sort(names)
	a := health.Alert{
		Level:    health.LevelHost,
		Region:   reg.name,
		Host:     h.name,
		Severity: h.alertSev,
		Value:    float64(h.paging),
		Checks:   names,
	}
	a.Summary = fmt.Sprintf("%s failing on %s (%s): %s", countChecks(len(names)), h.name, reg.name, joinNames(names, 10))
	if first != nil {
		a.Since = unixTime(first.hardSince)
		a.Team = e.team(first)
	}
	return a
}

// silentSince is when a not reporting host went silent: its last result
// plus stale_after, for its most recently heard check.
func (e *Engine) silentSince(h *host) int64 {
	var since int64
	for i := range h.checks {
		s := &h.checks[i]
		since = max(since, s.lastSeen+e.staleAfter(s))
	}
	return since
}

func (e *Engine) nrHostAlert(reg *region, h *host) health.Alert {
	a := health.Alert{
		Level:    health.LevelHost,
		Region:   reg.name,
		Host:     h.name,
		Check:    health.NotReporting,
		Severity: e.nrSeverity(),
		Value:    1,
		Since:    unixTime(e.silentSince(h)),
		Team:     e.teams[e.names[e.nrName].team],
		Summary: fmt.Sprintf("%s (%s) not reporting: %s stale, last result %s",
			h.name, reg.name, allChecks(len(h.checks)), unixTime(h.lastSeen).Format(time.RFC3339)),
	}
	if h.nr == stateSuppressed {
		a.Suppressed = supNames[h.nrSup]
	}
	return a
}

// countChecks is "1 check" or "n checks".
func countChecks(n int) string {
	if n == 1 {
		return "1 check"
	}
	return fmt.Sprintf("%d checks", n)
}

// allChecks is "its only check" or "all n checks".
func allChecks(n int) string {
	if n == 1 {
		return "its only check"
	}
	return fmt.Sprintf("all %d checks", n)
}

// entryAlert renders a check's suppressed entry.
func (e *Engine) entryAlert(reg *region, h *host, s *slot) health.Alert {
	name := e.names[s.name].name
	a := health.Alert{
		Level:      health.LevelHost,
		Region:     reg.name,
		Host:       h.name,
		Check:      name,
		Severity:   e.severity(s),
		Value:      1,
		Since:      unixTime(s.hardSince),
		Team:       e.team(s),
		Suppressed: supNames[s.sup],
	}
	what := name + " " + s.hard.String()
	if s.hard == health.Passing {
		what = fmt.Sprintf("%s %s", name, s.status)
	}
	switch s.sup {
	case supMaintenance:
		a.Summary = fmt.Sprintf("%s on %s (%s), suppressed by maintenance", what, h.name, reg.name)
	case supRegion:
		a.Summary = fmt.Sprintf("%s on %s (%s), suppressed by the %s region alert", what, h.name, reg.name, name)
	case supFlapping:
		a.Summary = fmt.Sprintf("%s flapping on %s (%s): %.0f%% state changes, suppressed until it settles",
			name, h.name, reg.name, 100*flapFraction(s.flapHist))
	}
	return a
}

// regionAlert renders an active region alert.
func (e *Engine) regionAlert(ru *rollup) health.Alert {
	reg := e.regions[ru.region]
	name := e.names[ru.check].name
	a := health.Alert{
		Level:    health.LevelRegion,
		Region:   reg.name,
		Check:    name,
		Severity: ru.sev,
		Value:    float64(ru.failing) / float64(ru.hosts),
		Since:    unixTime(e.rollupSince(reg, ru)),
	}
	if ru.state == stateSuppressed {
		a.Suppressed = health.SuppressedByMaintenance
	}
	if ru == &reg.nr {
		a.Team = e.teams[e.names[e.nrName].team]
		a.Summary = fmt.Sprintf("%d/%d hosts not reporting in %s", ru.failing, ru.hosts, reg.name)
	} else {
		a.Team = e.rollupTeam(ru)
		a.Summary = fmt.Sprintf("%s failing on %d/%d hosts in %s", name, ru.failing, ru.hosts, reg.name)
	}
	return a
}

// rollupSince is when the current failing hosts reached the threshold: the
// needed-th earliest time they started failing (went silent).
func (e *Engine) rollupSince(reg *region, ru *rollup) int64 {
	times := make([]int64, 0, len(ru.failingHosts))
	for hi := range ru.failingHosts {
		h := &e.hosts[hi]
		if ru == &reg.nr {
			times = append(times, e.silentSince(h))
		} else if i, ok := h.find(ru.check); ok {
			times = append(times, h.checks[i].hardSince)
		}
	}
	if len(times) == 0 {
		return 0
	}
	slices.Sort(times)
	k := min(int(e.needed(ru.hosts)), len(times))
	return times[k-1]
}

// rollupTeam is the team of the check that failed first (ties by host).
func (e *Engine) rollupTeam(ru *rollup) string {
	var first *slot
	var firstHost string
	for hi := range ru.failingHosts {
		h := &e.hosts[hi]
		i, ok := h.find(ru.check)
		if !ok {
			continue
		}
		s := &h.checks[i]
		if first == nil || s.hardSince < first.hardSince || (s.hardSince == first.hardSince && h.name < firstHost) {
			first, firstHost = s, h.name
		}
	}
	if first == nil {
		return ""
	}
	return e.team(first)
}

// FailingChecks calls fn for every non-passing check (latest result or
// confirmed state) that still reports, in no particular order: it feeds
// /metrics, whose exposition is sorted anyway. hard says whether the failure
// is confirmed. A stale check's last failure is no news of the check: it
// counts as stale (and its host, when all its checks are, as not reporting),
// not as failing.
func (e *Engine) FailingChecks(fn func(k health.Key, st health.Status, hard bool)) {
	for hi := range e.failingHosts {
		h := &e.hosts[hi]
		reg := e.regions[h.region]
		for i := range h.checks {
			s := &h.checks[i]
			if s.nonPassing() && !s.stale() {
				fn(health.Key{Region: reg.name, Host: h.name, Check: e.names[s.name].name},
					s.shownStatus(), s.hard != health.Passing)
			}
		}
	}
}

// staleFailing counts the host's stale checks whose last result failed:
// counted in its failing checks, but a stale check's last failure is no
// news of it.
func (h *host) staleFailing() int {
	if h.stale == 0 || h.failing == 0 {
		return 0
	}
	n := 0
	for i := range h.checks {
		if s := &h.checks[i]; s.nonPassing() && s.stale() {
			n++
		}
	}
	return n
}

// Regions returns every region's summary, sorted by name.
func (e *Engine) Regions() []RegionInfo {
	// Stale checks whose last result failed are counted apart, as
	// FailingChecks leaves them out: a scan of the failing hosts, which
	// every scrape makes anyway.
	staleFailing := make(map[uint32]int)
	for hi := range e.failingHosts {
		h := &e.hosts[hi]
		staleFailing[h.region] += h.staleFailing()
	}
	out := make([]RegionInfo, 0, len(e.regions))
	for ri, reg := range e.regions {
		out = append(out, RegionInfo{
			Name:           reg.name,
			Hosts:          len(reg.hostList),
			ReportingHosts: int(reg.reporting),
			FailingChecks:  int(reg.failingChecks) - staleFailing[uint32(ri)],
			LastEvent:      unixTime(reg.lastEvent),
			Alerts:         int(reg.firing),
		})
	}
	slices.SortFunc(out, func(a, b RegionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Hosts returns the hosts of a region ("" for every region), sorted by
// region and name.
func (e *Engine) Hosts(regionName string) []HostInfo {
	out, _ := e.HostsPage(regionName, 0, math.MaxInt)
	return out
}

// HostsPage returns up to limit hosts of a region ("" for every region)
// from offset in (region, name) order, and how many there are in all. It
// costs the regions and the page, not the fleet: each region keeps its
// hosts sorted.
func (e *Engine) HostsPage(regionName string, offset, limit int) (page []HostInfo, total int) {
	var regs []*region
	if regionName == "" {
		regs = slices.Clone(e.regions)
		slices.SortFunc(regs, func(a, b *region) int { return strings.Compare(a.name, b.name) })
	} else if ri, ok := e.regionIDs[regionName]; ok {
		regs = []*region{e.regions[ri]}
	}
	for _, reg := range regs {
		total += len(reg.hostList)
	}
	offset, limit = max(offset, 0), max(limit, 0)
	page = make([]HostInfo, 0, min(limit, max(total-offset, 0)))
	skip := offset
	for _, reg := range regs {
		if len(page) == limit {
			break
		}
		if skip >= len(reg.hostList) {
			skip -= len(reg.hostList)
			continue
		}
		for _, hi := range reg.hostList[skip:] {
			if len(page) == limit {
				break
			}
			page = append(page, e.hostInfo(hi))
		}
		skip = 0
	}
	return page, total
}

func (e *Engine) hostInfo(hi uint32) HostInfo {
	h := &e.hosts[hi]
	reg := e.regions[h.region]
	info := HostInfo{
		Region:       reg.name,
		Host:         h.name,
		Checks:       len(h.checks),
		Failing:      int(h.failing) - h.staleFailing(), // as in the region's count
		NotReporting: h.flags&hNotReporting != 0,
		LastSeen:     unixTime(h.lastSeen),
	}
	switch {
	case h.alert == stateFiring:
		a := e.hostAlert(reg, h)
		info.Alert = &a
	case h.nr != stateInactive:
		a := e.nrHostAlert(reg, h)
		info.Alert = &a
	}
	if w := e.hostWindow(reg, h.name); w != nil {
		ww := w.Window
		info.Maintenance = &ww
	}
	return info
}

// hostWindow returns the first active window covering the host.
func (e *Engine) hostWindow(reg *region, hostName string) *window {
	var first *window
	for _, w := range reg.windows {
		if w.coversHost(hostName) && (first == nil || windowCompare(w, first) < 0) {
			first = w
		}
	}
	return first
}

// HostChecks returns every check of hosts with that name, in any region,
// sorted by region and check.
func (e *Engine) HostChecks(hostName string) []CheckInfo {
	var out []CheckInfo
	for _, reg := range e.regions {
		hi, ok := reg.hosts[hostName]
		if !ok {
			continue
		}
		h := &e.hosts[hi]
		for i := range h.checks {
			out = append(out, e.checkInfo(reg, h, &h.checks[i]))
		}
	}
	slices.SortFunc(out, func(a, b CheckInfo) int {
		return cmp.Or(strings.Compare(a.Region, b.Region), strings.Compare(a.Key.Check, b.Key.Check))
	})
	return out
}

func (e *Engine) checkInfo(reg *region, h *host, s *slot) CheckInfo {
	st := e.export(reg, h, s)
	// The stored state keeps the event's team; the reader wants the team
	// that routes the check, its rule's when the event names none.
	st.Team = e.team(s)
	return CheckInfo{
		CheckState:  st,
		Phase:       s.phase(),
		Stale:       s.stale(),
		Severity:    e.severity(s),
		FlapPercent: 100 * flapFraction(s.flapHist),
	}
}
