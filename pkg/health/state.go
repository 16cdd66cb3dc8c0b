package health

import (
	"strings"
	"time"
)

// CheckState is everything the engine knows about one check, in the form the
// store persists and the engine restores from. Restoring the same states
// reproduces the same alerts, which is how a restart neither resolves nor
// re-fires anything. Times are Unix nanoseconds to keep the record small.
type CheckState struct {
	Key
	// Status is the latest result; Hard is the confirmed state that pages.
	// A non-passing Status with a passing Hard is a soft failure.
	Status Status `json:"status"`
	Hard   Status `json:"hard"`
	// Attempts counts consecutive non-passing results (towards confirm_after)
	// while Hard is passing, and consecutive passing results (towards
	// recover_after) while Hard is failing.
	Attempts uint8 `json:"attempts"`
	Flapping bool  `json:"flapping"`
	// Stale is set once the check has gone stale_after without a result,
	// and persisted so a restart keeps silent checks silent instead of
	// granting them a fresh grace period.
	Stale bool `json:"stale"`
	// FlapHistory holds one bit per recorded result, newest in bit 0: set
	// when that result's status differed from the one before. FlapCount is
	// how many of the 21 slots are filled.
	FlapHistory uint32 `json:"flap_history"`
	FlapCount   uint8  `json:"flap_count"`
	// Updated is the newest result's own timestamp (the event clock);
	// results older than it never move state. HardSince is when Hard last
	// changed. LastSeen is the receiver's clock at the newest result, what
	// staleness is measured from.
	Updated   int64    `json:"updated"`
	HardSince int64    `json:"hard_since"`
	LastSeen  int64    `json:"last_seen"`
	Severity  Severity `json:"severity,omitempty"` // from the event; SeverityNone when it gave none
	Team      string   `json:"team,omitempty"`
	Interval  int32    `json:"interval,omitempty"` // seconds between results the sender promised, 0 unknown
	EventID   uint64   `json:"-"`                  // hash of the newest result's event_id, 0 when none
	// Output and Labels are kept only while the check is not passing: the
	// passing fleet does not pay for them.
	Output string  `json:"output,omitempty"`
	Labels []Label `json:"labels,omitempty"`
}

// MaxLabels bounds the labels a check keeps (ingest.labels): the store
// refuses more as a corrupt record, so configuration may not ask for more.
const MaxLabels = 64

// Level says what an alert is about: one host, or one check across a region.
type Level uint8

const (
	LevelHost Level = iota
	LevelRegion
)

func (l Level) String() string {
	if l == LevelRegion {
		return "region"
	}
	return "host"
}

// MarshalText renders "host" or "region".
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText accepts "host" or "region".
func (l *Level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "host":
		*l = LevelHost
	case "region":
		*l = LevelRegion
	default:
		return &ParseError{Field: "level", Value: string(b)}
	}
	return nil
}

// NotReporting is the check name carried by alerts about silence: a host
// whose checks are all stale, or a region where enough hosts are.
const NotReporting = "not_reporting"

// Suppression reasons, used as the `reason` label of
// healthrouter_alert_suppressed and in the API.
const (
	SuppressedByRegion      = "region"
	SuppressedByMaintenance = "maintenance"
	SuppressedByFlapping    = "flapping"
)

// Alert is one member of the alert set. A host alert stands for all the
// host's failing checks (Check is empty, or NotReporting); a region alert for
// one check failing across a region (Host is empty). Suppressed entries are
// per check and say why in Suppressed.
type Alert struct {
	Level    Level    `json:"level"`
	Region   string   `json:"region"`
	Host     string   `json:"host,omitempty"`
	Check    string   `json:"check,omitempty"`
	Severity Severity `json:"severity"`
	// Value is the number of unsuppressed failing checks for a host alert
	// and the failing-host ratio for a region alert: the metric's value.
	Value float64 `json:"value"`
	// Since is when the alert's condition began: the earliest hard
	// failure behind it, or when the host or region fell silent. Zero, and
	// left out of JSON, for a suppressed check that never failed hard (a
	// flapping one, say).
	Since time.Time `json:"since,omitzero"`
	Team  string    `json:"team,omitempty"`
	// Checks lists the failing checks behind a host alert.
	Checks     []string `json:"checks,omitempty"`
	Suppressed string   `json:"suppressed_by,omitempty"`
	// Summary is one line for a human: what failed and where.
	Summary string `json:"summary"`
}

// ID is the alert's stable identity: the same on every instance of an HA
// pair and across restarts, so it can seed PagerDuty dedup keys.
func (a *Alert) ID() string {
	var b strings.Builder
	b.Grow(len(a.Region) + len(a.Host) + len(a.Check) + 10)
	b.WriteString(a.Level.String())
	b.WriteByte('/')
	b.WriteString(a.Region)
	b.WriteByte('/')
	if a.Level == LevelHost {
		b.WriteString(a.Host)
		if a.Suppressed != "" || a.Check == NotReporting {
			b.WriteByte('/')
			b.WriteString(a.Check)
		}
	} else {
		b.WriteString(a.Check)
	}
	return b.String()
}

// Window is a maintenance window: while it lasts, alerts on its region, or
// on one host, optionally only for checks matching a glob, are suppressed.
type Window struct {
	ID      string    `json:"id"`
	Region  string    `json:"region"`
	Host    string    `json:"host,omitempty"`
	Check   string    `json:"check,omitempty"` // glob; empty means every check
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
}

// Active reports whether the window still suppresses at now.
func (w *Window) Active(now time.Time) bool { return now.Before(w.Until) }

// ForgottenHost records that a host was forgotten: a result about it
// timestamped before At is late news of a host removed for good (a
// batch that waited in a buffer) and is ignored, so that it does not bring
// the host back only for it to go silent and page.
type ForgottenHost struct {
	Region string
	Host   string
	At     time.Time
}

// ForgottenHostsKept bounds how many forgotten hosts are remembered; past
// it, the ones forgotten longest ago are dropped first.
const ForgottenHostsKept = 1 << 16

// TransitionKind says what changed.
type TransitionKind uint8

const (
	// CheckChanged: a check's state moved (From/To are Phase* values).
	CheckChanged TransitionKind = iota
	// AlertChanged: an alert started, ended or changed suppression (From/To
	// are "inactive", "firing" or "suppressed").
	AlertChanged
)

func (k TransitionKind) String() string {
	if k == AlertChanged {
		return "alert"
	}
	return "check"
}

// MarshalText renders "check" or "alert".
func (k TransitionKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText accepts "check" or "alert".
func (k *TransitionKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "check":
		*k = CheckChanged
	case "alert":
		*k = AlertChanged
	default:
		return &ParseError{Field: "transition kind", Value: string(b)}
	}
	return nil
}

// Check phases, the From/To of CheckChanged transitions.
const (
	PhasePassing  = "passing"
	PhaseSoft     = "soft"     // failing, not yet confirmed
	PhaseHard     = "hard"     // failing and confirmed: may page
	PhaseFlapping = "flapping" // changing too often to page
	PhaseStale    = "stale"    // no result for stale_after
	// PhaseForgotten: the check's host was forgotten (decommissioned); the
	// check left the engine and the store.
	PhaseForgotten = "forgotten"
)

// Alert states, the From/To of AlertChanged transitions.
const (
	AlertInactive   = "inactive"
	AlertFiring     = "firing"
	AlertSuppressed = "suppressed"
)

// Transition is one entry of the journal: every state change the engine
// decides, in order. The noise report and /v1/transitions read it.
type Transition struct {
	Seq  uint64         `json:"seq"`
	Time time.Time      `json:"time"`
	Kind TransitionKind `json:"kind"`
	// Level is set for AlertChanged; Key says which check or alert (Host is
	// empty for region alerts; for host alerts, Check is the check that
	// made it fire, resolve or change severity).
	Level    Level    `json:"level"`
	Key      Key      `json:"key"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Status   Status   `json:"status"`
	Severity Severity `json:"severity,omitempty"`
	Reason   string   `json:"reason,omitempty"` // suppression reason or detail
}
