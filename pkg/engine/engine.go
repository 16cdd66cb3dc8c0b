// Package engine decides healthrouter's alert set: it turns the stream of
// health-check results into check states, host alerts, region alerts and
// suppressions, and journals every change. It is pure: no I/O, no
// goroutines, no clock of its own (every call passes the time), no logging.
// It is not safe for concurrent use; the caller holds one lock around every
// call. The read methods (Alerts, FailingChecks, Regions, Hosts, HostsPage,
// HostChecks, HostRegions, Explain, ExplainIn, ExplainRegion, Windows,
// Stats, Seq) modify nothing, so they may share a read lock.
//
// # Results
//
// State is kept per key (region, host, check). A result's time is its own
// timestamp, or the batch's receive time when it has none (and then no
// earlier than the state's); one ahead of the receive time counts at most
// 10 s ahead: a sender's clock running a little fast still orders its
// results (a retried batch among them), and one far off cannot freeze a
// check. The engine's clock never goes
// back: a call given a time before a previous call's (the wall clock
// stepped back) runs at the previous time. Results older than the state's
// timestamp, results repeating the state's last event_id (or the one
// before it, when no timestamps of their own order the two: Vector
// retrying a batch that timed out after the check's next result got in),
// and results without an event_id repeating the state's own timestamp and
// status are duplicates and change nothing. A result equal to the state
// only refreshes last-seen and shifts the flap history. Results adding a
// key past engine.max_checks, or a region past the 10,000th, are rejected
// (Outcome.Rejected), never silently dropped.
//
// # Soft and hard states
//
// As Nagios' max_check_attempts: a non-passing result while the check is
// hard passing is a soft failure; after confirm_after consecutive
// non-passing results the check is hard failing with the latest status.
// A hard failing check recovers after recover_after consecutive passing
// results (1, immediate, by default). A hard failing check reporting a
// different failing status (warning to critical) changes at once. Check
// rules (first glob match on the check name wins, zero fields inherit)
// override confirm_after, recover_after, stale_after, severity and team.
//
// # Flapping
//
// As Nagios: one state-change bit per result over the last 21 results; the
// 20 changes between them are weighted linearly from 0.8 (oldest) to 1.2
// (newest; Nagios weighs from 0.75 to 1.25) and divided by 20. A check
// starts flapping above flap.high and stops below flap.low. Every result counts, soft ones included, so a check
// that alternates every other result flaps even though it never confirms.
// A flapping check pages nothing: it is listed as suppressed (flapping) for
// as long as it flaps, and pages once when it settles hard failing.
//
// # Staleness
//
// A check is stale after stale_after without a result: the rule's
// stale_after when set, else max(3 x interval, engine stale_after) when the
// sender gave an interval, else engine stale_after. A stale check pages
// nothing and leaves its region rollup. Its next result starts it over as a
// new check: what it was before the silence is no evidence about it now
// and its alert ended with the silence, so a passing result recovers it at
// once whatever recover_after, and a failing one is a soft failure to
// confirm again. A host whose checks are all stale is
// not reporting: a host alert with check "not_reporting". Staleness is
// decided by Tick through a per-host due-time heap, so a tick costs work
// proportional to what is due, never a fleet scan; one tick visits at most
// 4096 due hosts and leaves a larger burst to the next ticks.
//
// # Alerts
//
// A host alerts while it has at least one hard failing check that is not
// stale, flapping or suppressed: one alert whatever the number of such
// checks (Value is that number), with the highest of their severities. A
// check's severity is the event's, else its rule's, else derived from the
// status (critical for critical and unknown, warning for warning). A
// check's team is the event's, else its rule's; the engine keeps at most
// 4096 distinct team names from events, and past that an event's new team
// is dropped (the rule's applies) and counted in Stats.TeamsDropped.
//
// Per (region, check) the engine keeps incremental counts of the hosts that
// run the check (not stale, not in a host maintenance window) and of those
// where it is hard failing (and not flapping). When failing >= outage_ratio
// x hosts and failing >= min_hosts, one region alert stands for the check
// and those hosts' checks are suppressed (region); a host failing another
// check still alerts for it. The same rule over not reporting hosts gives a
// region "not_reporting" alert. Hosts in a host maintenance window are left
// out of the rollups, so draining hosts cannot add up to a region alert.
// Region alerts follow the counts without hysteresis: when a recovering
// region drops below its thresholds, the hosts still failing alert on
// their own (the Grafana rules' pending periods smooth the boundary).
//
// A maintenance window (region, optional host, optional check glob, until)
// suppresses the alerts it covers, region alerts included for a region-wide
// window; the check glob matches "not_reporting" for the silence alerts.
// The first Apply or Tick past a window's until expires it, journals the
// alerts it releases and lists its ID in Outcome.EndedWindows for the
// store to delete.
// Maintenance wins over the other suppression reasons; a flapping check is
// never counted as failing in a rollup, so region and flapping exclude each
// other.
//
// Alerts are evaluated once per call, after every result of the batch (or
// every expiry of the tick) has been applied, so a batch that takes a whole
// region down yields the region alert, not a burst of host alerts that are
// suppressed a moment later. The alert set is a pure function of the check
// states, the windows and the configuration: restoring the same states
// reproduces the same alerts, Since included, because Since is derived from
// the states (the earliest HardSince of a host alert's checks; for a region
// alert the HardSince at which its current failing hosts reached the
// threshold; for a silent host its last result plus stale_after).
//
// # Journal
//
// Every change is a Transition with a sequence number: CheckChanged when a
// check's phase (passing, soft, hard, flapping, stale) or hard status
// changes, AlertChanged when an alert fires, resolves, is suppressed or
// changes severity while firing (From and To both "firing", Reason
// "severity"). A host alert's transition carries in Key.Check the check that
// made it fire or resolve, which the noise report counts pages by. Two
// engines fed the same calls produce the same transitions.
//
// # Forgetting
//
// ForgetHost removes a decommissioned host and every check of it, as if it
// had never reported; Tick does the same for hosts whose every check has
// gone forget_after without a result and is stale (0, the default, never
// forgets), so a check with a long interval keeps its host. Like
// staleness, forget_after counts from Start at the latest, so a restart
// after a long outage does not forget the fleet, and Tick finds silent
// hosts through the due-time heap. Each check journals a CheckChanged to
// health.PhaseForgotten; the alerts that end are settled as for any other change:
// the host alert and not_reporting alert resolve (Reason ReasonForgotten),
// suppressed entries end, and the region rollups lose the host, so a
// region alert may drop below its thresholds and hand its remaining hosts
// back to their own host alerts. Outcome.Forgotten lists the removed keys
// for the store to delete. A forgotten host that reports again starts
// fresh: soft before hard, no flap history, no event_id to deduplicate.
//
// # Restart
//
// Load and Start rebuild everything from persisted states and windows
// without emitting transitions. A check going stale or coming back is in
// Outcome.Changed like any transition, and CheckState.Stale restores it.
// Every other check gets a grace period of its stale_after from Start:
// staleness is never inferred from persisted last-seen times, which lag by
// up to a checkpoint (and, for a check still in a previous start's grace,
// by the whole outage), so a restart neither resolves an alert nor fires a
// not_reporting one that the journal does not hold. Windows that ended
// while the engine was down still cover their alerts at Start; the first
// Apply or Tick expires them and journals what they release. Load accepts every
// persisted check, beyond max_checks too: the cap refuses new keys, it
// never forgets known ones.
package engine

import (
	"fmt"
	"math"
	"path"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Config is what the engine takes from the configuration file.
type Config struct {
	// Engine holds confirm_after, recover_after, stale_after, flap, region
	// and max_checks. Zero fields take config.Default()'s values; flap goes
	// as a pair (a zero flap.high takes the default high and low, since 0 is
	// a valid low).
	Engine config.Engine `json:"engine"`
	// Checks are per-check overrides; the first rule whose glob matches the
	// check name wins.
	Checks []config.CheckRule `json:"checks"`
}

// Rejection reasons.
const (
	RejectTooManyChecks  = "too_many_checks"
	RejectReservedCheck  = "reserved_check_name"
	RejectInvalidKey     = "invalid_key"
	RejectTooManyRegions = "too_many_regions"
)

// maxRegions bounds the distinct regions results may add. A region costs
// a rule group in Grafana and a few series per scrape; a fleet has tens of
// them, and a sender putting a host or request name in region must not
// make thousands. Loaded regions count but are always kept.
const maxRegions = 10000

// Engine decides, from every result it is given, each check's state and
// the alert set: which hosts and regions alert, which alerts are suppressed
// and why, and the journal of every change. It holds the whole fleet in
// compact per-host arrays of check slots with interned names.
type Engine struct {
	set   settings
	rules []rule

	// Interned names. Check names carry their resolved rule.
	names   []checkName
	nameIDs map[string]uint32
	nrName  uint32 // the id of health.NotReporting
	teams   []string
	teamIDs map[string]uint32
	// teamsDropped counts event teams dropped past maxTeams.
	teamsDropped uint64

	regions   []*region
	regionIDs map[string]uint32
	hosts     []host
	freeHosts []uint32 // indexes of forgotten hosts, reused by new ones
	forgotten []uint32 // hosts forgotten in this call, dropped after settle
	// tombstones hold when each forgotten host was forgotten (unix ns),
	// at most tombstonesMax of them past a trim; see create.
	tombstones    map[regionHost]int64
	tombstonesMax int
	regionsMax    int // maxRegions; lowered by tests

	// extras holds output and labels of non-passing checks; slots refer to
	// them by index so that the slot arrays hold no pointers.
	extras     []checkExtra
	freeExtras []uint32

	due     []dueEntry // 4-ary min-heap of hosts by deadline
	windows []*window  // sorted by until, then ID

	started   bool
	startedAt int64 // Start's clock: the staleness grace
	now       int64 // the latest clock passed in
	seq       uint64
	loadedMax int64 // newest LastSeen among loaded states

	checks                                   int
	firing, suppressed, flapping, staleCount int

	alertHosts    map[uint32]struct{} // hosts with an active alert or suppressed entry
	failingHosts  map[uint32]struct{} // hosts with a non-passing check
	activeRollups map[*rollup]struct{}

	dirtyHosts   []uint32
	dirtyRollups []*rollup
	pending      []slotRef        // states for Outcome.Changed
	ckptHosts    []uint32         // hosts holding states for Checkpoint
	round        *CheckpointRound // in progress, holding hosts taken from ckptHosts

	lastRegion *region
	lastHost   uint32
	hasLast    bool

	dueScratch    []uint32
	silentScratch []uint32
	entryScratch  []entryChange
	lateScratch   []int32
	state         health.CheckState
}

type settings struct {
	confirmAfter, recoverAfter  uint8
	staleAfter                  int64
	flapHigh, flapLow           float64 // fractions, as configured
	flapHighUnits, flapLowUnits float64 // the same in flap units (see flapSum)
	outageRatio                 float64
	minHosts                    int32
	maxChecks                   int
	forgetAfter                 int64 // 0: never
}

// rule is a validated config.CheckRule.
type rule struct {
	match                      string
	severity                   health.Severity
	team                       string
	confirmAfter, recoverAfter uint8
	staleAfter                 int64
}

// checkName is an interned check name with its first matching rule
// resolved once.
type checkName struct {
	name                       string
	rule                       int32 // index into rules, -1 when none matches
	confirmAfter, recoverAfter uint8
	severity                   health.Severity
	team                       uint32
	staleAfter                 int64 // the rule's override, 0 when none
}

// New validates cfg and returns an engine that must be loaded (Load,
// LoadWindow) and started (Start) before use.
func New(cfg Config) (*Engine, error) {
	set, err := resolveSettings(cfg.Engine)
	if err != nil {
		return nil, err
	}
	rules := make([]rule, 0, len(cfg.Checks))
	for i, cr := range cfg.Checks {
		r, err := resolveRule(cr)
		if err != nil {
			return nil, fmt.Errorf("engine: checks[%d]: %w", i, err)
		}
		rules = append(rules, r)
	}
	e := &Engine{
		set:           set,
		rules:         rules,
		nameIDs:       make(map[string]uint32),
		teams:         []string{""},
		teamIDs:       map[string]uint32{"": 0},
		regionIDs:     make(map[string]uint32),
		alertHosts:    make(map[uint32]struct{}),
		failingHosts:  make(map[uint32]struct{}),
		activeRollups: make(map[*rollup]struct{}),
		tombstones:    make(map[regionHost]int64),
		tombstonesMax: health.ForgottenHostsKept,
		regionsMax:    maxRegions,
	}
	for _, r := range rules {
		e.internTeamString(r.team) // always kept, whatever events send
	}
	e.nrName = e.internNameString(health.NotReporting)
	return e, nil
}

func resolveSettings(c config.Engine) (settings, error) {
	d := config.Default().Engine
	if c.ConfirmAfter == 0 {
		c.ConfirmAfter = d.ConfirmAfter
	}
	if c.RecoverAfter == 0 {
		c.RecoverAfter = d.RecoverAfter
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = d.StaleAfter
	}
	if c.Flap.High == 0 {
		c.Flap = d.Flap
	}
	if c.Region.OutageRatio == 0 {
		c.Region.OutageRatio = d.Region.OutageRatio
	}
	if c.Region.MinHosts == 0 {
		c.Region.MinHosts = d.Region.MinHosts
	}
	if c.MaxChecks == 0 {
		c.MaxChecks = d.MaxChecks
	}
	switch {
	case c.ConfirmAfter < 1 || c.ConfirmAfter > 20:
		return settings{}, fmt.Errorf("engine: confirm_after %d: must be between 1 and 20", c.ConfirmAfter)
	case c.RecoverAfter < 1 || c.RecoverAfter > 20:
		return settings{}, fmt.Errorf("engine: recover_after %d: must be between 1 and 20", c.RecoverAfter)
	case c.StaleAfter < 0:
		return settings{}, fmt.Errorf("engine: stale_after %s: must be positive", c.StaleAfter)
	case !(c.Flap.High > 0 && c.Flap.High <= 1):
		return settings{}, fmt.Errorf("engine: flap.high %g: must be in (0, 1]", c.Flap.High)
	case !(c.Flap.Low > 0 && c.Flap.Low < c.Flap.High):
		// Flapping ends below low: with low 0 it would never end.
		return settings{}, fmt.Errorf("engine: flap.low %g: must be above 0 and below flap.high", c.Flap.Low)
	case !(c.Region.OutageRatio > 0 && c.Region.OutageRatio <= 1):
		return settings{}, fmt.Errorf("engine: region.outage_ratio %g: must be in (0, 1]", c.Region.OutageRatio)
	case c.Region.MinHosts < 1 || c.Region.MinHosts > math.MaxInt32:
		return settings{}, fmt.Errorf("engine: region.min_hosts %d: must be between 1 and %d", c.Region.MinHosts, math.MaxInt32)
	case c.MaxChecks < 1:
		return settings{}, fmt.Errorf("engine: max_checks %d: must be positive", c.MaxChecks)
	case c.ForgetAfter < 0:
		return settings{}, fmt.Errorf("engine: forget_after %s: must not be negative", c.ForgetAfter)
	}
	return settings{
		confirmAfter:  uint8(c.ConfirmAfter),
		recoverAfter:  uint8(c.RecoverAfter),
		staleAfter:    int64(c.StaleAfter),
		flapHigh:      c.Flap.High,
		flapLow:       c.Flap.Low,
		flapHighUnits: flapThreshold(c.Flap.High),
		flapLowUnits:  flapThreshold(c.Flap.Low),
		outageRatio:   c.Region.OutageRatio,
		minHosts:      int32(c.Region.MinHosts),
		maxChecks:     c.MaxChecks,
		forgetAfter:   int64(c.ForgetAfter),
	}, nil
}

func resolveRule(cr config.CheckRule) (rule, error) {
	if cr.Match == "" {
		return rule{}, fmt.Errorf("match: must not be empty")
	}
	if _, err := path.Match(cr.Match, ""); err != nil {
		return rule{}, fmt.Errorf("match %q: %w", cr.Match, err)
	}
	r := rule{match: cr.Match, team: cr.Team, staleAfter: int64(cr.StaleAfter)}
	if cr.Severity != "" {
		sev, ok := health.ParseSeverity([]byte(cr.Severity))
		if !ok {
			return rule{}, fmt.Errorf("severity %q: want critical, error, warning or info", cr.Severity)
		}
		r.severity = sev
	}
	if cr.ConfirmAfter < 0 || cr.ConfirmAfter > 20 {
		return rule{}, fmt.Errorf("confirm_after %d: must be between 1 and 20", cr.ConfirmAfter)
	}
	if cr.RecoverAfter < 0 || cr.RecoverAfter > 20 {
		return rule{}, fmt.Errorf("recover_after %d: must be between 1 and 20", cr.RecoverAfter)
	}
	if cr.StaleAfter < 0 {
		return rule{}, fmt.Errorf("stale_after %s: must not be negative", cr.StaleAfter)
	}
	r.confirmAfter, r.recoverAfter = uint8(cr.ConfirmAfter), uint8(cr.RecoverAfter)
	return r, nil
}

// internName returns the id of a check name, adding it on first sight.
func (e *Engine) internName(b []byte) uint32 {
	if id, ok := e.nameIDs[string(b)]; ok {
		return id
	}
	return e.internNameString(string(b))
}

func (e *Engine) internNameString(name string) uint32 {
	if id, ok := e.nameIDs[name]; ok {
		return id
	}
	cn := checkName{name: name, rule: -1, confirmAfter: e.set.confirmAfter, recoverAfter: e.set.recoverAfter}
	for i := range e.rules {
		r := &e.rules[i]
		if ok, _ := path.Match(r.match, name); !ok {
			continue
		}
		cn.rule = int32(i)
		if r.confirmAfter > 0 {
			cn.confirmAfter = r.confirmAfter
		}
		if r.recoverAfter > 0 {
			cn.recoverAfter = r.recoverAfter
		}
		cn.severity = r.severity
		cn.team = e.internTeamString(r.team)
		cn.staleAfter = r.staleAfter
		break
	}
	id := uint32(len(e.names))
	e.names = append(e.names, cn)
	e.nameIDs[name] = id
	return id
}

// maxTeams bounds the distinct team names interned from events (rules'
// teams always are): names are kept for the engine's lifetime, so a sender
// putting a request id in team must not grow them without bound. A fleet
// has tens of teams.
const maxTeams = 4096

// internTeam returns the id of an event's team name; 0 is "no team", also
// for a new name past maxTeams (counted in Stats.TeamsDropped).
func (e *Engine) internTeam(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	if id, ok := e.teamIDs[string(b)]; ok {
		return id
	}
	return e.internEventTeam(string(b))
}

// internEventTeam is the capped slow path of internTeam, also used by Load
// for persisted team names.
func (e *Engine) internEventTeam(team string) uint32 {
	if id, ok := e.teamIDs[team]; ok || team == "" {
		return id
	}
	if len(e.teams) > maxTeams { // teams[0] is ""
		e.teamsDropped++
		return 0
	}
	return e.internTeamString(team)
}

func (e *Engine) internTeamString(team string) uint32 {
	if id, ok := e.teamIDs[team]; ok {
		return id
	}
	id := uint32(len(e.teams))
	e.teams = append(e.teams, team)
	e.teamIDs[team] = id
	return id
}

// Seq returns the sequence number of the last transition.
func (e *Engine) Seq() uint64 { return e.seq }

func (e *Engine) mustStart(op string) {
	if !e.started {
		panic("engine: " + op + " before Start")
	}
}

// advance moves the engine's clock forward and returns it: it never goes
// back, so a wall clock stepped back (an NTP correction) neither makes every
// result older than its check's state nor stops staleness for the size of
// the step. The call runs at the returned time.
func (e *Engine) advance(now int64) int64 {
	if now > e.now {
		e.now = now
	}
	return e.now
}

// staleAfter is how long a check may go without a result.
func (e *Engine) staleAfter(s *slot) int64 {
	if d := e.names[s.name].staleAfter; d > 0 {
		return d
	}
	d := e.set.staleAfter
	if iv := 3 * int64(s.interval) * int64(time.Second); iv > d {
		d = iv
	}
	return d
}

// deadline is when a check that hears nothing more becomes stale; the
// grace period after Start counts as a result.
func (e *Engine) deadline(s *slot) int64 {
	seen := s.lastSeen
	if e.startedAt > seen {
		seen = e.startedAt
	}
	return seen + e.staleAfter(s)
}

// severity resolves a check's severity: the event's, else its rule's, else
// from its worst current status. A flapping check's counts the worst
// status it failed with lately too: its alert pages at that severity,
// whichever status came last.
func (e *Engine) severity(s *slot) health.Severity {
	if s.severity != health.SeverityNone {
		return s.severity
	}
	if sev := e.names[s.name].severity; sev != health.SeverityNone {
		return sev
	}
	st := s.hard
	if st == health.Passing {
		st = s.status
	}
	if s.flappingNow() {
		// Not known after a restart: critical, as for any failing status
		// not known to be milder.
		if w, ok := s.worstFailing(); ok {
			st = max(st, w)
		} else {
			st = health.Unknown
		}
	}
	return health.SeverityFor(st)
}

// nrSeverity is the severity of not_reporting alerts: a rule matching
// "not_reporting" may set it, else critical.
func (e *Engine) nrSeverity() health.Severity {
	if sev := e.names[e.nrName].severity; sev != health.SeverityNone {
		return sev
	}
	return health.SeverityCritical
}

// team resolves a check's team: the event's, else its rule's.
func (e *Engine) team(s *slot) string {
	if s.team != 0 {
		return e.teams[s.team]
	}
	return e.teams[e.names[s.name].team]
}

// outage reports whether failing out of hosts reaches the region
// thresholds. The epsilon keeps 0.3 x 10 hosts at 3, not 3.0000000000000004.
func (e *Engine) outage(failing, hosts int32) bool {
	return hosts > 0 && failing >= e.set.minHosts &&
		float64(failing) >= e.set.outageRatio*float64(hosts)-1e-9
}

// needed is how many failing hosts reach the region thresholds.
func (e *Engine) needed(hosts int32) int32 {
	n := int32(math.Ceil(e.set.outageRatio*float64(hosts) - 1e-9))
	if n < e.set.minHosts {
		n = e.set.minHosts
	}
	return n
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// HashEventID is how the engine keeps an event_id to recognise a retry:
// xxHash64, stable across processes, so a persisted hash still recognises
// a retry after a restart, and eight bytes a step, so a UUID costs a few
// nanoseconds under the engine lock. 0 means "no event_id". Replay uses it
// to judge retries as the engine does.
func HashEventID(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	if h := xxhash.Sum64(b); h != 0 {
		return h
	}
	return 1
}

// joinNames lists names for a summary, shortening long lists.
func joinNames(names []string, limit int) string {
	if len(names) <= limit {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:limit], ", ") + fmt.Sprintf(" and %d more", len(names)-limit)
}
