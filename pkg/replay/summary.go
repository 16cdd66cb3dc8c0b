package replay

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/report"
)

// Summary is what a replay found. Its JSON form is the contract of
// `healthrouter replay --format json`: exactly events, raw_failing,
// direct_pages, pages, suppressed and alerts. The other fields are for the
// text output and for callers.
type Summary struct {
	// Events counts the events read, rejected ones included.
	Events int `json:"events"`
	// RawFailing counts the results the engine kept (not rejected, not
	// duplicates: a retry, or older than the check's newest) whose status
	// is not passing.
	RawFailing int `json:"raw_failing"`
	// DirectPages counts what check-to-pager routing would page: one page
	// per (region, host, check) transition into critical among the results
	// the engine kept, in arrival order, with no confirmation, grouping or
	// suppression.
	DirectPages int `json:"direct_pages"`
	// Pages counts what healthrouter pages (see report.Pager): alert
	// series at critical or error severity that stay firing unsuppressed
	// for their rule's pending period, as Grafana pages them.
	Pages int `json:"pages"`
	// Suppressed counts suppressions starting, by reason: an alert or a
	// check's alert entry becoming suppressed.
	Suppressed map[string]int `json:"suppressed"`
	// Alerts lists every alert series that Grafana fires (one that stays
	// firing unsuppressed for its pending period), in that order, whatever
	// its severity.
	Alerts []Alert `json:"alerts"`

	// Rejected counts events that could not be replayed; Errors holds the
	// first few reasons.
	Rejected   int      `json:"-"`
	Errors     []string `json:"-"`
	Duplicates int      `json:"-"`
	// Transitions counts the journal entries the engine made.
	Transitions int `json:"-"`
	// First and Last are the earliest and latest event times.
	First, Last time.Time `json:"-"`
	// Windows and Restarts count the maintenance windows applied and the
	// restarts performed.
	Windows, Restarts int `json:"-"`
	// WindowsOutside counts the maintenance windows given that cover none
	// of the events' time (they end before the first or start after the
	// last) and so were never applied.
	WindowsOutside int `json:"-"`

	// Pending is the pending periods applied. Brief counts the alert
	// series that ended within theirs (never notified: the timeline marks
	// them); StillPending those still inside it when the events end.
	Pending      report.Pending `json:"-"`
	Brief        int            `json:"-"`
	StillPending int            `json:"-"`

	// Late counts events older than one already read by more than the
	// batch window that the engine kept: replay applies them at its clock,
	// so input out of time order gives a wrong answer. A late duplicate (a
	// retry of a result already applied) is discarded and not counted.
	// LateBy is the largest such lag and FirstLate the first late event's
	// number.
	Late      int           `json:"-"`
	LateBy    time.Duration `json:"-"`
	FirstLate int           `json:"-"`
}

// maxErrors bounds Summary.Errors.
const maxErrors = 10

func (s *Summary) reject(format string, args ...any) {
	s.Rejected++
	if len(s.Errors) < maxErrors {
		s.Errors = append(s.Errors, fmt.Sprintf(format, args...))
	}
}

// Alert is one alert series that Grafana fires: from when it started firing
// unsuppressed (its pending period starts there) to when it resolved, was
// suppressed or changed severity; To is nil while it still fires at the end
// of the events. Host is empty for a
// region alert; Check is, for a host alert, the check that made it fire.
type Alert struct {
	Level    health.Level    `json:"level"`
	Region   string          `json:"region"`
	Host     string          `json:"host"`
	Check    string          `json:"check"`
	Severity health.Severity `json:"severity"`
	From     time.Time       `json:"from"`
	To       *time.Time      `json:"to"`
}

// Pages reports whether the alert paged.
func (a *Alert) Pages() bool { return report.PagingSeverity(a.Severity) }

// What a Change is.
const (
	ChangeFiring     = "firing"     // an alert starts firing unsuppressed: its pending period starts
	ChangeNotified   = "notified"   // it has been firing for its pending period: Grafana notifies
	ChangeResolved   = "resolved"   // a firing alert ends
	ChangeSeverity   = "severity"   // a firing alert changes severity: a new series
	ChangeSuppressed = "suppressed" // an alert or a check's entry is suppressed
	ChangeReleased   = "released"   // a suppression ends without the alert firing
)

// Change is one entry of the alert timeline.
type Change struct {
	Time     time.Time
	What     string // one of the Change constants
	Level    health.Level
	Region   string
	Host     string
	Check    string
	Severity health.Severity
	// Reason is the suppression reason of suppressed and released changes.
	Reason string
	// Page says this change pages someone: a notified change at a paging
	// severity.
	Page bool
	// Brief marks a change that ends a series within its pending period:
	// Grafana never notified it. Pending is that period.
	Brief   bool
	Pending time.Duration
}

// String renders the change as one timeline line.
func (c Change) String() string {
	host, check := c.Host, c.Check
	if host == "" {
		host = "-"
	}
	if check == "" {
		check = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-10s  %-6s  %-10s  %-34s  %-13s  %-8s", c.Time.UTC().Format(time.RFC3339),
		c.What, c.Level, c.Region, host, check, c.Severity)
	switch {
	case c.Page:
		b.WriteString("  PAGE")
	case c.Brief:
		b.WriteString("  (within the " + report.ShortDuration(c.Pending) + " pending period: not notified)")
	case c.Reason != "" && (c.What == ChangeSuppressed || c.What == ChangeReleased):
		b.WriteString("  (" + c.Reason + ")")
	}
	return strings.TrimRight(b.String(), " ")
}

// alertBook follows alert transitions: the series Grafana fires, pages
// and suppressions.
type alertBook struct {
	sum      *Summary
	pager    *report.Pager
	fired    map[*report.Series]int // open fired series -> index in sum.Alerts
	onChange func(Change)
}

func newAlertBook(sum *Summary, pending report.Pending, onChange func(Change)) *alertBook {
	b := &alertBook{sum: sum, fired: make(map[*report.Series]int), onChange: onChange}
	b.pager = report.NewPager(pending, b.fire)
	sum.Pending = pending
	return b
}

// fire records a series Grafana fires at the end of its pending period.
func (b *alertBook) fire(s *report.Series, at time.Time) {
	b.fired[s] = len(b.sum.Alerts)
	b.sum.Alerts = append(b.sum.Alerts, Alert{
		Level: s.Level, Region: s.Region, Host: s.Host, Check: s.Check, Severity: s.Severity, From: s.From,
	})
	if s.Pages() {
		b.sum.Pages++
	}
	if b.onChange != nil {
		b.onChange(Change{Time: at, What: ChangeNotified, Level: s.Level, Region: s.Region, Host: s.Host,
			Check: s.Check, Severity: s.Severity, Page: s.Pages()})
	}
}

func (b *alertBook) observe(t *health.Transition) {
	if t.Kind != health.AlertChanged {
		return
	}
	ended, ok := b.pager.Observe(t) // fires the series due before t first
	c := Change{
		Time: t.Time, Level: t.Level, Region: t.Key.Region, Host: t.Key.Host, Check: t.Key.Check,
		Severity: t.Severity,
	}
	switch {
	case t.From == health.AlertFiring && t.To == health.AlertFiring:
		c.What = ChangeSeverity
	case t.To == health.AlertFiring:
		c.What = ChangeFiring
	case t.To == health.AlertSuppressed:
		c.What, c.Reason = ChangeSuppressed, t.Reason
	case t.From == health.AlertFiring:
		c.What = ChangeResolved
	default:
		c.What, c.Reason = ChangeReleased, t.Reason
	}
	if ok {
		if i, fired := b.fired[ended.Series]; fired {
			end := t.Time
			b.sum.Alerts[i].To = &end
			delete(b.fired, ended.Series)
		} else {
			c.Brief, c.Pending = true, ended.Pending
			b.sum.Brief++
		}
	}
	if t.To == health.AlertSuppressed {
		b.sum.Suppressed[t.Reason]++
	}
	if b.onChange != nil {
		b.onChange(c)
	}
}

// finish fires the series whose pending period is over by the end of the
// events, at end.
func (b *alertBook) finish(end time.Time) {
	b.pager.Advance(end)
	b.sum.StillPending = b.pager.Waiting()
}

// WriteJSON writes the summary as the one JSON object of the replay
// contract.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("replay summary: %w", err)
	}
	return nil
}

// WriteText writes the summary for a terminal.
func (s *Summary) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	span := "no events"
	if !s.First.IsZero() {
		span = fmt.Sprintf("from %s to %s", s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339))
	}
	ew.printf("replayed %d events %s: %d rejected, %d duplicates, %d transitions", s.Events, span,
		s.Rejected, s.Duplicates, s.Transitions)
	if s.Windows > 0 {
		ew.printf(", %s", plural(s.Windows, "maintenance window"))
	}
	if s.Restarts > 0 {
		ew.printf(", %s", plural(s.Restarts, "restart"))
	}
	ew.printf("\n")
	if s.Late > 0 {
		ew.printf("warning: %s (the first is event %d) came more than the batch window after newer ones, up to %s late: "+
			"replay applies them at its clock, so the outcome is wrong; put the input in time order "+
			"of the events' own timestamps upstream (replay does not reorder)\n",
			plural(s.Late, "event"), s.FirstLate, report.ShortDuration(s.LateBy))
	}
	for _, e := range s.Errors {
		ew.printf("  rejected: %s\n", e)
	}
	if s.Rejected > len(s.Errors) {
		ew.printf("  ... and %d more rejected\n", s.Rejected-len(s.Errors))
	}

	suppressed := 0
	reasons := slices.Sorted(maps.Keys(s.Suppressed))
	parts := make([]string, 0, len(reasons))
	for _, r := range reasons {
		suppressed += s.Suppressed[r]
		parts = append(parts, fmt.Sprintf("%s %d", r, s.Suppressed[r]))
	}
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nraw failing results\t%d\tresults with a non-passing status\n", s.RawFailing)
	fmt.Fprintf(tw, "direct-routing pages\t%d\tonce per (host, check) transition into critical\n", s.DirectPages)
	fmt.Fprintf(tw, "healthrouter pages\t%d\talerts at critical or error severity firing unsuppressed for the pending period (host %s, region %s)\n",
		s.Pages, report.ShortDuration(s.Pending.Host), report.ShortDuration(s.Pending.Region))
	if s.Brief > 0 || s.StillPending > 0 {
		fmt.Fprintf(tw, "brief alerts\t%d\tended within their pending period: never notified", s.Brief)
		if s.StillPending > 0 {
			fmt.Fprintf(tw, " (%d more still pending at the end)", s.StillPending)
		}
		fmt.Fprintln(tw)
	}
	if len(parts) == 0 {
		fmt.Fprintf(tw, "suppressions\t%d\n", suppressed)
	} else {
		fmt.Fprintf(tw, "suppressions\t%d\t%s\n", suppressed, strings.Join(parts, ", "))
	}
	_ = tw.Flush()

	if len(s.Alerts) == 0 {
		ew.printf("\nno alert fired\n")
		return ew.err
	}
	ew.printf("\nalerts Grafana fires (%d):\n", len(s.Alerts))
	tw = tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FROM\tTO\tLEVEL\tREGION\tHOST\tCHECK\tSEVERITY\tPAGE")
	for _, a := range s.Alerts {
		to, host, page := "firing", a.Host, ""
		if a.To != nil {
			to = a.To.UTC().Format(time.RFC3339)
		}
		if host == "" {
			host = "-"
		}
		if a.Pages() {
			page = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.From.UTC().Format(time.RFC3339), to,
			a.Level, a.Region, host, a.Check, a.Severity, page)
	}
	_ = tw.Flush()
	return ew.err
}

// SortedAlerts returns the alerts ordered by level, region, host, check and
// start, for comparisons that do not care about firing order.
func (s *Summary) SortedAlerts() []Alert {
	out := slices.Clone(s.Alerts)
	slices.SortStableFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), strings.Compare(a.Region, b.Region),
			strings.Compare(a.Host, b.Host), strings.Compare(a.Check, b.Check), a.From.Compare(b.From))
	})
	return out
}

// errWriter keeps the first write error so that rendering code can write
// on and check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
