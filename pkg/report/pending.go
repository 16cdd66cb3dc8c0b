package report

import (
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Pending is how long an alert series must stay firing before Grafana
// notifies it: the pending period of its level's rule (grafana.pending).
// A host alert that lives for seconds, while the region's failing hosts
// are still arriving, never reaches anyone.
type Pending struct {
	Host, Region time.Duration
}

// DefaultPending is grafana.pending's default: 2m for the host rules, 1m
// for the region rules.
func DefaultPending() Pending {
	d := config.DefaultPending()
	return Pending{Host: d.Host.D(), Region: d.Region.D()}
}

// PendingOf returns the pending periods the configuration provisions, the
// defaults when it has no grafana section (cfg nil included): a team that
// pages through an export or by hand still gets Grafana's defaults.
func PendingOf(cfg *config.Config) Pending {
	if cfg == nil || cfg.Grafana == nil {
		return DefaultPending()
	}
	return Pending{Host: cfg.Grafana.Pending.Host.D(), Region: cfg.Grafana.Pending.Region.D()}
}

// For is the pending period of the rule for alerts of level l.
func (p Pending) For(l health.Level) time.Duration {
	if l == health.LevelRegion {
		return p.Region
	}
	return p.Host
}

// Series is one series of healthrouter_alert: an alert firing unsuppressed
// at one severity, from the journal entry that started it. Host is empty
// for a region alert; Check is the check the journal names for it (for a
// host alert, the check that made it fire).
type Series struct {
	Level    health.Level
	Region   string
	Host     string
	Check    string
	Severity health.Severity
	From     time.Time
}

// Pages reports whether the series pages once Grafana fires it.
func (s *Series) Pages() bool { return PagingSeverity(s.Severity) }

// Pager decides which alert series Grafana fires, as its rules evaluate
// healthrouter_alert: a series fires once it has stayed firing for its
// level's pending period, and one that ends sooner (it resolves, is
// suppressed, or changes severity, which is a new series) is never
// notified. A fired series at a paging severity is a page.
//
// It reads journal entries oldest first. A series that starts before the
// entries read (the journal's retention) is not seen.
type Pager struct {
	pending Pending
	onFire  func(s *Series, at time.Time)
	open    map[string]*pendingSeries
	// queue holds, per level, the series waiting for their pending period
	// in deadline order: entries come in time order and a level has one
	// pending period, so appending keeps the order. Ended series are
	// skipped when they reach the front.
	queue [2][]*pendingSeries
	head  [2]int
}

type pendingSeries struct {
	Series
	deadline time.Time
	waiting  bool // neither fired nor ended yet
	fired    bool
}

// NewPager returns a Pager that calls onFire (nil: nothing) for each series
// when Grafana would fire it, at the end of its pending period, in that
// time's order. s stays valid and unchanged after the call.
func NewPager(p Pending, onFire func(s *Series, at time.Time)) *Pager {
	if onFire == nil {
		onFire = func(*Series, time.Time) {}
	}
	return &Pager{pending: p, onFire: onFire, open: make(map[string]*pendingSeries)}
}

// Advance fires every series that has stayed firing for its pending period
// by now.
func (p *Pager) Advance(now time.Time) {
	for {
		next, lvl := (*pendingSeries)(nil), 0
		for l := range p.queue {
			q := p.queue[l]
			for p.head[l] < len(q) && !q[p.head[l]].waiting {
				q[p.head[l]] = nil
				p.head[l]++
			}
			if p.head[l] == len(q) {
				p.queue[l], p.head[l] = q[:0], 0
				continue
			}
			if s := q[p.head[l]]; !s.deadline.After(now) && (next == nil || s.deadline.Before(next.deadline)) {
				next, lvl = s, l
			}
		}
		if next == nil {
			return
		}
		p.queue[lvl][p.head[lvl]] = nil
		p.head[lvl]++
		next.waiting, next.fired = false, true
		p.onFire(&next.Series, next.deadline)
	}
}

// Ended says what became of a series that a journal entry ended.
type Ended struct {
	Series *Series
	// Fired: the series had stayed firing for its pending period.
	Fired bool
	// Pending is the period it had to stay firing.
	Pending time.Duration
}

// Observe accounts for one journal entry, after advancing to its time: a
// series starts when an alert starts firing unsuppressed or a firing alert
// changes severity, and ends when it stops firing or changes severity.
// It returns the series the entry ended, if any. Every entry advances the
// clock, whether or not it concerns a series: a caller that prints what
// the entry says after Observe returns (a replay's timeline) must see the
// series due before it fire first.
func (p *Pager) Observe(t *health.Transition) (Ended, bool) {
	p.Advance(t.Time)
	if t.Kind != health.AlertChanged || (t.From != health.AlertFiring && t.To != health.AlertFiring) {
		return Ended{}, false
	}
	id := seriesID(t)
	var ended Ended
	ok := false
	if s, open := p.open[id]; open && t.From == health.AlertFiring {
		if t.To == health.AlertFiring && s.Severity == t.Severity {
			return Ended{}, false // the same series goes on
		}
		delete(p.open, id)
		s.waiting = false
		ended, ok = Ended{Series: &s.Series, Fired: s.fired, Pending: p.pending.For(s.Level)}, true
	}
	if t.To == health.AlertFiring {
		s := &pendingSeries{
			Series: Series{Level: t.Level, Region: t.Key.Region, Host: t.Key.Host, Check: t.Key.Check,
				Severity: t.Severity, From: t.Time},
			deadline: t.Time.Add(p.pending.For(t.Level)),
			waiting:  true,
		}
		p.open[id] = s
		p.enqueue(levelIndex(t.Level), s)
		if p.pending.For(t.Level) <= 0 {
			p.Advance(t.Time)
		}
	}
	return ended, ok
}

// enqueue appends s to level l's queue, first dropping the fired and
// ended series at its front when they are most of it.
func (p *Pager) enqueue(l int, s *pendingSeries) {
	q, h := p.queue[l], p.head[l]
	if h >= 64 && 2*h >= len(q) {
		n := copy(q, q[h:])
		clear(q[n:])
		q, p.head[l] = q[:n], 0
	}
	p.queue[l] = append(q, s)
}

// Waiting counts the open series still inside their pending period.
func (p *Pager) Waiting() int {
	n := 0
	for _, s := range p.open {
		if s.waiting {
			n++
		}
	}
	return n
}

func levelIndex(l health.Level) int {
	if l == health.LevelRegion {
		return 1
	}
	return 0
}

// seriesID identifies an alert across its journal entries: a host alert by
// its host (its entries name different checks), a silent host by its host
// and not_reporting, a region alert by its check. These are the label sets
// of healthrouter_alert but for severity.
func seriesID(t *health.Transition) string {
	if t.Level == health.LevelRegion {
		return "region\x00" + t.Key.Region + "\x00" + t.Key.Check
	}
	if t.Key.Check == health.NotReporting {
		return "silent\x00" + t.Key.Region + "\x00" + t.Key.Host
	}
	return "host\x00" + t.Key.Region + "\x00" + t.Key.Host
}
