// Package report builds the noise report from the transition journal: for
// each check name, how often it failed hard, how often it paged, how often
// it flapped, how long its failures lasted and how many of them cleared by
// themselves within minutes. It reads the journal through a scan function,
// so the same report comes from a running server's store, a stopped
// server's data directory, or the transitions of a replay.
//
// # Definitions
//
// A hard failure is a check entering the hard phase while no failure of
// that check is open; it stays open through flapping and staleness and ends
// when the check is back to passing (or soft, which means its hard state
// recovered while it was flapping or silent). Its failing time is from the
// hard transition to that recovery. A failure whose start is older than
// the journal's retention is not counted.
//
// A page is an alert series at a paging severity that Grafana fires: one
// that stays firing unsuppressed for its rule's pending period (see
// Pager); it is counted against the check the journal names for it: the
// check that made a host alert fire, or a region alert's check.
//
// A flap is a check entering the flapping phase.
//
// # Ranking
//
// Checks are ranked worst first by noise, the flaps plus the hard failures
// resolved within Options.QuickWithin (five minutes by default): failures
// that cleared by themselves before anyone could act are what a threshold,
// a confirm_after or a check fix removes. Ties go to more pages, then more
// hard failures, then the check name.
package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// PagingSeverity reports whether an alert of severity s pages a human:
// critical and error reach PagerDuty at high urgency. Warnings go out at low
// urgency or nowhere, and info never leaves the dashboards.
func PagingSeverity(s health.Severity) bool {
	return s == health.SeverityCritical || s == health.SeverityError
}

// Scan calls fn for each journal entry, oldest first, until fn returns
// false. store.Store.ScanTransitions with after = 0 is one.
type Scan func(fn func(*health.Transition) bool) error

// Options tune a report. The zero value gives the defaults.
type Options struct {
	// QuickWithin is how soon a failure must clear to count as likely
	// noise; zero means five minutes.
	QuickWithin time.Duration
	// Limit keeps the worst Limit checks; zero keeps every check.
	Limit int
	// Pending is the rules' pending periods; nil means DefaultPending.
	Pending *Pending
	// Now is when the journal is read: a series still firing counts as a
	// page once it has been firing for its pending period by then. Zero
	// means the newest entry's time.
	Now time.Time
}

// DefaultQuickWithin is how soon a hard failure must recover to be counted
// as likely noise.
const DefaultQuickWithin = 5 * time.Minute

// Report is the noise report: which check names make on-call's life worse,
// ranked worst first. It decides nothing about alerts; it measures what the
// engine decided. It encodes to and decodes from JSON unchanged, which is
// what GET /v1/report answers.
type Report struct {
	// From and To span the journal entries read; zero when there were none.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Transitions is the number of journal entries read.
	Transitions int `json:"transitions"`
	// QuickWithinSeconds is the threshold of Check.ResolvedQuickly.
	QuickWithinSeconds float64 `json:"quick_within_seconds"`
	// Checks holds one row per check name that failed hard, paged or
	// flapped, worst first.
	Checks []Check `json:"checks"`
}

// Check is one check name's row of the report.
type Check struct {
	Check        string `json:"check"`
	HardFailures int    `json:"hard_failures"`
	Pages        int    `json:"pages"`
	Flaps        int    `json:"flaps"`
	// Resolved counts the hard failures that recovered within the journal;
	// FailingNow those still open at its end.
	Resolved   int `json:"resolved"`
	FailingNow int `json:"failing_now"`
	// MedianFailingSeconds is the median failing time of the resolved
	// failures, 0 when none resolved.
	MedianFailingSeconds float64 `json:"median_failing_seconds"`
	// ResolvedQuickly counts resolved failures that lasted at most the
	// quick threshold; QuickShare is their share of Resolved.
	ResolvedQuickly int     `json:"resolved_quickly"`
	QuickShare      float64 `json:"quick_share"`
	// Noise is the ranking key: Flaps + ResolvedQuickly.
	Noise int `json:"noise"`
}

// MedianFailing is MedianFailingSeconds as a duration.
func (c *Check) MedianFailing() time.Duration {
	return time.Duration(c.MedianFailingSeconds * float64(time.Second))
}

// Build reads the whole journal through scan and returns the report.
func Build(scan Scan, opts Options) (*Report, error) {
	b := NewBuilder(opts)
	if err := scan(func(t *health.Transition) bool { b.Add(t); return true }); err != nil {
		return nil, fmt.Errorf("noise report: reading transitions: %w", err)
	}
	return b.Report(), nil
}

// Builder accumulates journal entries one at a time, for callers that
// produce transitions as they go (a replay) instead of scanning a store.
// Its memory grows with the check names, the failures open at a time and
// the resolved failures' durations, not with the number of entries.
type Builder struct {
	quick time.Duration
	limit int
	now   time.Time
	pager *Pager

	checks   map[string]*tally
	open     map[health.Key]time.Time // hard failures not recovered yet
	from, to time.Time
	n        int
}

type tally struct {
	hard, pages, flaps int
	durations          []time.Duration
}

// NewBuilder returns an empty Builder.
func NewBuilder(opts Options) *Builder {
	quick := opts.QuickWithin
	if quick <= 0 {
		quick = DefaultQuickWithin
	}
	pending := DefaultPending()
	if opts.Pending != nil {
		pending = *opts.Pending
	}
	b := &Builder{
		quick:  quick,
		limit:  max(opts.Limit, 0),
		now:    opts.Now,
		checks: make(map[string]*tally),
		open:   make(map[health.Key]time.Time),
	}
	b.pager = NewPager(pending, func(s *Series, _ time.Time) {
		if s.Pages() {
			b.tally(s.Check).pages++
		}
	})
	return b
}

func (b *Builder) tally(check string) *tally {
	t := b.checks[check]
	if t == nil {
		t = &tally{}
		b.checks[check] = t
	}
	return t
}

// Add accounts for one journal entry; entries must come oldest first. t is
// not retained.
func (b *Builder) Add(t *health.Transition) {
	if b.n == 0 || t.Time.Before(b.from) {
		b.from = t.Time
	}
	if t.Time.After(b.to) {
		b.to = t.Time
	}
	b.n++

	if t.Kind == health.AlertChanged {
		b.pager.Observe(t)
		return
	}
	switch t.To {
	case health.PhaseHard:
		if _, ok := b.open[t.Key]; !ok {
			b.open[t.Key] = t.Time
			b.tally(t.Key.Check).hard++
		}
	case health.PhaseForgotten:
		// A decommissioned host's failure is no longer failing, but it
		// did not recover either: it is not counted as resolved.
		delete(b.open, t.Key)
	case health.PhasePassing, health.PhaseSoft:
		// Soft after flapping or staleness means the hard state recovered
		// meanwhile; the journal shows it only now.
		if since, ok := b.open[t.Key]; ok {
			delete(b.open, t.Key)
			tl := b.tally(t.Key.Check)
			tl.durations = append(tl.durations, max(t.Time.Sub(since), 0))
		}
	case health.PhaseFlapping:
		if t.From != health.PhaseFlapping {
			b.tally(t.Key.Check).flaps++
		}
	}
}

// Advance counts the series that have stayed firing for their pending
// period by now, for a caller whose clock runs past the newest entry (a
// replay's ends at its last event). Entries added later must not be older.
func (b *Builder) Advance(now time.Time) { b.pager.Advance(now) }

// Report returns the report of the entries added so far, counting as
// pages the series that have stayed firing for their pending period by
// Options.Now (or the newest entry). The Builder can go on accumulating
// entries newer than that afterwards.
func (b *Builder) Report() *Report {
	if b.now.After(b.to) {
		b.pager.Advance(b.now)
	} else if b.n > 0 {
		b.pager.Advance(b.to)
	}
	r := &Report{Transitions: b.n, QuickWithinSeconds: b.quick.Seconds(), Checks: []Check{}}
	if b.n > 0 {
		r.From, r.To = b.from, b.to
	}
	failingNow := make(map[string]int)
	for k := range b.open {
		failingNow[k.Check]++
	}
	for name, t := range b.checks {
		if t.hard == 0 && t.pages == 0 && t.flaps == 0 {
			continue
		}
		c := Check{
			Check:        name,
			HardFailures: t.hard,
			Pages:        t.pages,
			Flaps:        t.flaps,
			Resolved:     len(t.durations),
			FailingNow:   failingNow[name],
		}
		if c.Resolved > 0 {
			c.MedianFailingSeconds = median(t.durations).Seconds()
			for _, d := range t.durations {
				if d <= b.quick {
					c.ResolvedQuickly++
				}
			}
			c.QuickShare = float64(c.ResolvedQuickly) / float64(c.Resolved)
		}
		c.Noise = c.Flaps + c.ResolvedQuickly
		r.Checks = append(r.Checks, c)
	}
	slices.SortFunc(r.Checks, worstFirst)
	if b.limit > 0 && len(r.Checks) > b.limit {
		r.Checks = r.Checks[:b.limit]
	}
	return r
}

// worstFirst is the ranking documented in the package comment.
func worstFirst(a, b Check) int {
	return cmp.Or(
		cmp.Compare(b.Noise, a.Noise),
		cmp.Compare(b.Pages, a.Pages),
		cmp.Compare(b.HardFailures, a.HardFailures),
		cmp.Compare(a.Check, b.Check),
	)
}

// median of durations, averaging the two middle values of an even count.
// It sorts ds.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return ds[n/2-1] + (ds[n/2]-ds[n/2-1])/2
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("noise report: %w", err)
	}
	return nil
}

// WriteText writes the report as a table for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	quick := time.Duration(r.QuickWithinSeconds * float64(time.Second))
	if r.Transitions == 0 {
		_, err := fmt.Fprintln(w, "no transitions in the journal: nothing failed, paged or flapped yet")
		return err
	}
	if _, err := fmt.Fprintf(w, "noise report: %d transitions from %s to %s\n\n", r.Transitions,
		r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	if len(r.Checks) == 0 {
		_, err := fmt.Fprintln(w, "no check failed hard, paged or flapped")
		return err
	}
	// Numbers align right; the names are padded so they still read left
	// to right.
	width := len("CHECK")
	for _, c := range r.Checks {
		width = max(width, len(c.Check))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tHARD FAILURES\tPAGES\tFLAPS\tMEDIAN FAILING\tRESOLVED <= %s\tFAILING NOW\t\n",
		width, "CHECK", ShortDuration(quick))
	for _, c := range r.Checks {
		medianText, quickText := "-", "-"
		if c.Resolved > 0 {
			medianText = ShortDuration(c.MedianFailing())
			quickText = fmt.Sprintf("%.0f%% (%d/%d)", 100*c.QuickShare, c.ResolvedQuickly, c.Resolved)
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%s\t%s\t%d\t\n",
			width, c.Check, c.HardFailures, c.Pages, c.Flaps, medianText, quickText, c.FailingNow)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nranked by noise: flaps plus hard failures resolved within %s, then pages, then hard failures\n",
		ShortDuration(quick))
	return err
}

// ShortDuration renders whole seconds without a trailing "0s": 5m, 1h2m3s.
func ShortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	s := d.String()
	if d >= time.Minute && len(s) > 3 && s[len(s)-3:] == "m0s" {
		s = s[:len(s)-2]
	}
	if d >= time.Hour && len(s) > 3 && s[len(s)-3:] == "h0m" {
		s = s[:len(s)-2]
	}
	return s
}
