package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/replay"
	"github.com/healthrouter/healthrouter/pkg/report"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

const scenarioDir = "../../testdata/scenarios"

// replayScenario replays a scenario file with its windows and restarts.
func replayScenario(t testing.TB, s *scenario.Scenario, opts replay.Options) *replay.Summary {
	t.Helper()
	opts.Windows, opts.Restarts = s.Windows, s.Restarts
	r, err := replay.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(scenarioDir, s.FileBase()+".ndjson.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := r.Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func loadScenarios(t *testing.T) []*scenario.Scenario {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.expected.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in %s: %v", scenarioDir, err)
	}
	var out []*scenario.Scenario
	for _, f := range files {
		s, err := scenario.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestScenarios replays every scenario of testdata/scenarios and compares
// the outcome with the page set written down beside it.
func TestScenarios(t *testing.T) {
	for _, s := range loadScenarios(t) {
		t.Run(s.FileBase(), func(t *testing.T) {
			var timeline []string
			brief := 0
			noise := report.NewBuilder(report.Options{})
			sum := replayScenario(t, s, replay.Options{OnTransition: noise.Add, OnChange: func(c replay.Change) {
				timeline = append(timeline, c.String())
				if c.Brief {
					brief++
					if !strings.Contains(c.String(), "pending period: not notified") {
						t.Errorf("brief change not marked: %s", c)
					}
				}
			}})
			show := func() string { return "\ntimeline:\n  " + strings.Join(timeline, "\n  ") }
			if sum.Events != s.Events || sum.Rejected != 0 || sum.Late != 0 {
				t.Errorf("%d events, %d rejected (%v), %d late; want %d and none", sum.Events, sum.Rejected, sum.Errors, sum.Late, s.Events)
			}
			if len(s.Restarts) != sum.Restarts || len(s.Windows) != sum.Windows {
				t.Errorf("%d restarts and %d windows applied, want %d and %d", sum.Restarts, sum.Windows, len(s.Restarts), len(s.Windows))
			}
			if sum.DirectPages != s.Expect.DirectPages {
				t.Errorf("direct-routing pages %d, want %d", sum.DirectPages, s.Expect.DirectPages)
			}
			if sum.Pages != s.Expect.Pages {
				t.Errorf("healthrouter pages %d, want %d%s", sum.Pages, s.Expect.Pages, show())
			}
			var got, want []string
			for _, a := range sum.SortedAlerts() {
				got = append(got, scenario.ExpectedAlert{Level: a.Level, Region: a.Region, Host: a.Host,
					Check: a.Check, Severity: a.Severity}.String())
			}
			for _, a := range s.Expect.Alerts {
				want = append(want, a.String())
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("alerts that fired:\n  got  %q\n  want %q%s", got, want, show())
			}
			if !reflect.DeepEqual(sum.Suppressed, s.Expect.Suppressed) {
				t.Errorf("suppressions %v, want %v%s", sum.Suppressed, s.Expect.Suppressed, show())
			}
			if sum.Brief != brief {
				t.Errorf("%d brief alerts counted, %d marked in the timeline", sum.Brief, brief)
			}
			// The noise report built from the same journal counts the
			// same pages: one pending rule for both.
			noise.Advance(sum.Last)
			pages := 0
			for _, c := range noise.Report().Checks {
				pages += c.Pages
			}
			if pages != sum.Pages {
				t.Errorf("noise report counts %d pages, replay %d", pages, sum.Pages)
			}
		})
	}
}

// TestRestartLosesNothing replays the restart scenario with and without its
// restart: the same alerts, from and to the same times, and the same
// journal, entry for entry.
func TestRestartLosesNothing(t *testing.T) {
	s, err := scenario.Load(filepath.Join(scenarioDir, "11-restart-mid-incident.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	record := func(restarts bool) (*replay.Summary, []string) {
		var journal []string
		c := *s
		if !restarts {
			c.Restarts = nil
		}
		sum := replayScenario(t, &c, replay.Options{OnTransition: func(tr *health.Transition) {
			journal = append(journal, fmt.Sprintf("%d %s %s %s %s>%s %s %s", tr.Seq, tr.Time.Format("15:04:05.000"),
				tr.Kind, tr.Key, tr.From, tr.To, tr.Severity, tr.Reason))
		}})
		return sum, journal
	}
	with, withJournal := record(true)
	without, withoutJournal := record(false)
	if with.Restarts != 1 {
		t.Fatalf("%d restarts, want 1", with.Restarts)
	}
	if !reflect.DeepEqual(with.Alerts, without.Alerts) {
		t.Errorf("alerts differ across a restart:\n with    %+v\n without %+v", with.Alerts, without.Alerts)
	}
	if !slices.Equal(withJournal, withoutJournal) {
		t.Errorf("journal differs across a restart:\n with:\n  %s\n without:\n  %s",
			strings.Join(withJournal, "\n  "), strings.Join(withoutJournal, "\n  "))
	}
	if with.Pages != 1 || len(with.Alerts) != 1 || with.Alerts[0].To == nil {
		t.Errorf("want one page, one alert that resolves; got %d pages, alerts %+v", with.Pages, with.Alerts)
	}
}

// TestFlappingIsVisibleInTheNoiseReport builds the noise report from a
// replay: the flapping check shows, with no page.
func TestFlappingIsVisibleInTheNoiseReport(t *testing.T) {
	s, err := scenario.Load(filepath.Join(scenarioDir, "07-flapping.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := report.NewBuilder(report.Options{})
	replayScenario(t, s, replay.Options{OnTransition: b.Add})
	rep := b.Report()
	if len(rep.Checks) != 1 {
		t.Fatalf("noise report rows %+v, want ntp only", rep.Checks)
	}
	if c := rep.Checks[0]; c.Check != "ntp" || c.Flaps != 1 || c.Pages != 0 || c.HardFailures != 0 {
		t.Errorf("ntp row %+v: want 1 flap, no page, no hard failure", c)
	}
}

// TestPendingRuleMatters replays the region-wide incidents without a
// pending period: their hosts report one by one over the interval, so host
// alerts fire before the region's rolls up and, at recovery, the region's
// resolves before the last hosts recover. Grafana's pending period is what
// keeps those brief alerts from paging (TestScenarios holds the pages with
// it to the expected set, and the brief alerts to their timeline marks).
func TestPendingRuleMatters(t *testing.T) {
	for _, name := range []string{"03-routing-loop", "04-registry-errors", "10-region-silent"} {
		s, err := scenario.Load(filepath.Join(scenarioDir, name+".expected.json"))
		if err != nil {
			t.Fatal(err)
		}
		without := replayScenario(t, s, replay.Options{Config: noPending()})
		if without.Pages <= s.Expect.Pages {
			t.Errorf("%s without a pending period: %d pages, want more than the %d with it", name, without.Pages, s.Expect.Pages)
		}
	}
}

// TestFlappingStopsPagingOnceDetected replays scenario 7's stream with
// confirm_after 1 for ntp, so that each critical result makes the check
// hard at once: it pages until the engine finds it flapping, then never
// again, and the suppression and the flap are counted. Scenario 7 itself
// (confirm_after 2) never goes hard, so it cannot tell whether flap
// suppression works. The rules' pending period would hide this flapper's
// 30-second alerts on its own; without one, what is left is the engine.
func TestFlappingStopsPagingOnceDetected(t *testing.T) {
	s, err := scenario.Load(filepath.Join(scenarioDir, "07-flapping.expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := noPending()
	cfg.Checks = append([]config.CheckRule{{Match: "ntp", ConfirmAfter: 1}}, cfg.Checks...)
	noPending := report.Pending{}
	b := report.NewBuilder(report.Options{Pending: &noPending})
	var flapping time.Time
	var pages, timeline []string
	var pageTimes []time.Time
	sum := replayScenario(t, s, replay.Options{
		Config: cfg,
		OnTransition: func(tr *health.Transition) {
			b.Add(tr)
			if tr.Kind == health.CheckChanged && tr.To == health.PhaseFlapping && flapping.IsZero() {
				flapping = tr.Time
			}
		},
		OnChange: func(c replay.Change) {
			timeline = append(timeline, c.String())
			if c.Page {
				pages = append(pages, c.String())
				pageTimes = append(pageTimes, c.Time)
			}
		},
	})
	show := "\ntimeline:\n  " + strings.Join(timeline, "\n  ")
	if flapping.IsZero() {
		t.Fatalf("ntp never found flapping%s", show)
	}
	if len(pages) == 0 || sum.Pages != len(pages) {
		t.Fatalf("%d pages (%d in the timeline): want ntp to page before it is found flapping%s", sum.Pages, len(pages), show)
	}
	for i, at := range pageTimes {
		if at.After(flapping) {
			t.Errorf("page after ntp was found flapping at %s: %s%s", flapping.Format(time.RFC3339), pages[i], show)
		}
	}
	if sum.Suppressed[health.SuppressedByFlapping] != 1 {
		t.Errorf("suppressions %v: want one by flapping", sum.Suppressed)
	}
	b.Advance(sum.Last)
	rep := b.Report()
	if len(rep.Checks) != 1 || rep.Checks[0].Check != "ntp" || rep.Checks[0].Flaps != 1 || rep.Checks[0].Pages != sum.Pages {
		t.Errorf("noise report %+v: want ntp with 1 flap and the replay's %d pages", rep.Checks, sum.Pages)
	}
	// With the default pending period the 30-second alerts never page.
	if def := replayScenario(t, s, replay.Options{Config: withChecks(cfg.Checks)}); def.Pages != 0 || def.Brief == 0 {
		t.Errorf("default pending: %d pages, %d brief alerts; want none and some", def.Pages, def.Brief)
	}
	t.Logf("%d pages before ntp was found flapping at %s", len(pages), flapping.Format(time.RFC3339))
}

// withChecks is the default configuration (no grafana section: the default
// pending periods) with the given check rules.
func withChecks(rules []config.CheckRule) *config.Config {
	cfg := config.Default()
	cfg.Checks = rules
	return cfg
}
