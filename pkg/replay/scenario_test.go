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
			sum := replayScenario(t, s, replay.Options{OnChange: func(c replay.Change) {
				timeline = append(timeline, c.String())
			}})
			show := func() string { return "\ntimeline:\n  " + strings.Join(timeline, "\n  ") }
			if sum.Events != s.Events || sum.Rejected != 0 {
				t.Errorf("%d events, %d rejected (%v); want %d and none", sum.Events, sum.Rejected, sum.Errors, s.Events)
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
