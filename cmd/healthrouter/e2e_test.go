package main

// End-to-end tests: every scenario of testdata/scenarios replayed through
// the real binary over HTTP, as Vector sends it, scraped by a real
// Prometheus; the alert rules `healthrouter export` writes for Grafana are
// then evaluated through Prometheus' API over the scenario's wall-clock
// window, with their pending periods, and the alert instances they would
// have fired must be the scenario's notified set: its expected alerts at
// the severities the default export routes to PagerDuty (critical and
// error at high urgency, warning at low).

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
	"github.com/healthrouter/healthrouter/pkg/scenario"
)

// TestEndToEndScenariosThroughPrometheus replays every scenario, one after
// another, through one instance on a fixed port that one Prometheus scrapes,
// and checks the page set the exported rules fire and that the pipeline
// watchdog stays quiet while events flow.
func TestEndToEndScenariosThroughPrometheus(t *testing.T) {
	bin := requirePrometheus(t)
	setE2EEnv(t)
	checkPace(t)
	files, err := filepath.Glob("../../testdata/scenarios/*.expected.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata/scenarios (%v)", err)
	}
	addr := loopbackAddr(t)
	prom := startPrometheus(t, bin, []string{addr})
	exported := map[string]exportedRules{} // by regions: the scenarios share their fleet
	for _, file := range files {
		feed := loadFeed(t, file)
		t.Run(feed.s.FileBase(), func(t *testing.T) {
			regions := strings.Join(feed.s.Fleet.Regions, ",")
			rules, ok := exported[regions]
			if !ok {
				rules = exportRules(t, feed.s.Fleet.Regions)
				exported[regions] = rules
			}
			set := startInstances(t, []string{addr})
			run := feedScenario(t, prom, feed, set, feedHooks{restartOnly: -1})
			set.stop(t)
			t.Logf("%s; %s", run.summary(), scrapeHealth(t, prom, run))
			fired, series := firedInstances(t, prom, rules, run)
			t.Logf("the rules' queries gave %d alert series; %d fired", len(series), len(fired))
			assertPageSet(t, feed.s, fired, run)
			assertWatchdogQuiet(t, prom, rules.watchdog, run)
			if len(feed.s.Restarts) > 0 {
				assertAlertContinues(t, prom, feed.s, series, run, rules.interval, restartGap(run.maxDowntime()))
			}
		})
	}
}

// TestEndToEndHAPair feeds the same events to two instances, both scraped,
// for the scenarios that stress a pair: a region alert, a silent host, a
// maintenance window created on each member, a silent region, and one
// member killed and restarted mid-incident. The rules collapse the pair
// into one series per alert, the page set is the one a single instance
// gives, both instances answer the same /v1/alerts after every round, and
// through the restart of one member the alert never misses a scrape. Once
// events stop, the watchdog fires although both instances are up.
func TestEndToEndHAPair(t *testing.T) {
	bin := requirePrometheus(t)
	setE2EEnv(t)
	checkPace(t)
	addrs := []string{loopbackAddr(t), loopbackAddr(t)}
	for addrs[1] == addrs[0] {
		addrs[1] = loopbackAddr(t)
	}
	prom := startPrometheus(t, bin, addrs)
	names := []string{"03-routing-loop", "08-drained-host", "09-host-silent", "10-region-silent", "11-restart-mid-incident"}
	var rules exportedRules
	for i, name := range names {
		feed := loadFeed(t, "../../testdata/scenarios/"+name+".expected.json")
		t.Run(name, func(t *testing.T) {
			if i == 0 {
				rules = exportRules(t, feed.s.Fleet.Regions) // the scenarios share their fleet
			}
			set := startInstances(t, addrs)
			run := feedScenario(t, prom, feed, set, feedHooks{
				afterRound:  func(k int) { set.alertsAgree(t, fmt.Sprintf("after round %d", k)) },
				restartOnly: 0,
			})
			t.Logf("%s; %s", run.summary(), scrapeHealth(t, prom, run))
			fired, series := firedInstances(t, prom, rules, run)
			assertPageSet(t, feed.s, fired, run)
			assertWatchdogQuiet(t, prom, rules.watchdog, run)
			assertOneSeriesPerAlert(t, series)
			assertScrapedFromEach(t, prom, addrs, run, fired)
			if len(feed.s.Restarts) > 0 {
				// The other member kept serving: not one scrape without
				// the alert.
				assertAlertContinues(t, prom, feed.s, series, run, rules.interval, scrapeInterval)
			}
			if i == len(names)-1 {
				assertWatchdogFiresWhenSilent(t, prom, rules.watchdog, run)
			}
			set.stop(t)
		})
	}
}

// checkPace fails when testdata/e2e/healthrouter.yaml is not scaled to
// roundEvery as the feed assumes.
func checkPace(t *testing.T) {
	t.Helper()
	cfg, err := config.Load(e2eConfig, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Checks) == 0 || cfg.Checks[0].Match != "*" || cfg.Grafana == nil || cfg.PagerDuty == nil {
		t.Fatalf("%s: want a first checks rule matching '*', and grafana and pagerduty sections", e2eConfig)
	}
	for _, d := range []struct {
		key       string
		got, want time.Duration
	}{
		{"engine.stale_after (10.5 rounds)", cfg.Engine.StaleAfter.D(), roundEvery * 21 / 2},
		{"checks[0].stale_after (10.5 rounds)", cfg.Checks[0].StaleAfter.D(), roundEvery * 21 / 2},
		{"engine.checkpoint (1 round, 30s)", cfg.Engine.Checkpoint.D(), roundEvery},
		{"grafana.watchdog_no_events (10 rounds, 5m)", cfg.Grafana.WatchdogNoEvents.D(), 10 * roundEvery},
		{"grafana.pending.host (4 rounds, 2m)", cfg.Grafana.Pending.Host.D(), 4 * roundEvery},
		{"grafana.pending.region (2 rounds, 1m)", cfg.Grafana.Pending.Region.D(), 2 * roundEvery},
	} {
		if d.got != d.want {
			t.Errorf("%s: %s is %s, want %s for rounds of %s", e2eConfig, d.key, d.got, d.want, roundEvery)
		}
	}
	if cfg.Engine.TickEvery.D() > roundEvery/4 {
		t.Errorf("%s: engine.tick_every %s: want at most a quarter round (%s)", e2eConfig, cfg.Engine.TickEvery, roundEvery/4)
	}
	if cfg.PagerDuty.Warning != "low" {
		t.Errorf("%s: pagerduty.warning is %q: want the default (low), so that the warning rules are tested as shipped",
			e2eConfig, cfg.PagerDuty.Warning)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// replayRun is what a replay leaves for the assertions, on the wall clock.
type replayRun struct {
	// from and to bound the queries: from is the first scrape of the fresh
	// instances (series of an earlier scenario end before it), to the first
	// scrape after the last round.
	from, to time.Time
	// flows are the stretches during which events flowed: one, or one more
	// per restart.
	flows []flow
	// rounds[k] is where round k's boundary fell on the wall clock: the
	// round numbers of messages.
	rounds []time.Time
	// posts[i] is how long batch i took to be acknowledged by every
	// instance; maxLag the most a batch was posted after it was due.
	posts  []time.Duration
	maxLag time.Duration
	// restarts are the downtimes: from the kill until the instance was
	// ready again.
	restarts []flow
}

// maxDowntime is the longest restart.
func (r *replayRun) maxDowntime() time.Duration {
	var d time.Duration
	for _, f := range r.restarts {
		d = max(d, f.last.Sub(f.first))
	}
	return d
}

// flow is a stretch of uninterrupted rounds: from the first post to the
// answer of the last.
type flow struct{ first, last time.Time }

// feedHooks adjust a feed to the instance set.
type feedHooks struct {
	// afterRound, when set, is called once round k's last batch is
	// acknowledged.
	afterRound func(k int)
	// restartOnly is the instance a scenario's restart kills; -1 kills
	// every one.
	restartOnly int
}

// feedScenario posts every batch of the feed to the instances at its due
// time, creating windows and restarting the instances where the scenario
// says.
func feedScenario(t *testing.T, prom *promServer, feed *scenarioFeed, set *instanceSet, hooks feedHooks) replayRun {
	t.Helper()
	run := replayRun{from: prom.scrapedAfter(t, time.Now())}
	clock := &compressedClock{
		start:    feed.s.Start,
		interval: time.Duration(feed.s.Fleet.IntervalSeconds) * time.Second,
		// A batch's body is rendered before it is due.
		base: time.Now().Add(roundEvery),
	}
	for i := range feed.batches {
		b := &feed.batches[i]
		restart := feed.restartsBefore(t, i)
		if restart {
			began := time.Now()
			set.restart(t, hooks.restartOnly)
			run.restarts = append(run.restarts, flow{first: began, last: time.Now()})
			clock.resume(b.open, time.Now())
		}
		if i == 0 || restart {
			run.flows = append(run.flows, flow{})
		}
		for _, w := range feed.windowsBefore(t, i) {
			set.addWindow(t, w, clock.wall(w.Until))
		}
		if i == 0 || feed.batches[i-1].round != b.round {
			run.rounds = append(run.rounds, clock.wall(feed.s.RoundTime(b.round)))
		}
		due := clock.wall(b.close) // as Vector, once the batch is complete
		body := feed.body(t, i, clock)
		time.Sleep(time.Until(due)) // the pace: nothing to wait for
		posted := time.Now()
		run.maxLag = max(run.maxLag, posted.Sub(due))
		if lag := posted.Sub(due); lag > maxLag {
			t.Fatalf("batch %d (round %d) posted %s late (more than %s): the machine is too busy for the replay's pace", i, b.round, lag, maxLag)
		}
		set.post(t, body, len(b.events))
		f := &run.flows[len(run.flows)-1]
		if f.first.IsZero() {
			f.first = posted
		}
		f.last = time.Now()
		run.posts = append(run.posts, f.last.Sub(posted))
		if hooks.afterRound != nil && feed.lastOfRound[b.round] == i {
			hooks.afterRound(b.round)
		}
	}
	run.to = prom.scrapedAfter(t, run.flows[len(run.flows)-1].last)
	return run
}

// summary says how the replay went: its pace and the slowest posts.
func (r *replayRun) summary() string {
	posts := slices.Sorted(slices.Values(r.posts))
	return fmt.Sprintf("%d rounds in %d posts in %s, %d restart(s); posts took %s (median) to %s, at most %s behind the pace",
		len(r.rounds), len(r.posts), r.to.Sub(r.from).Round(time.Millisecond), len(r.flows)-1,
		posts[len(posts)/2].Round(time.Millisecond), posts[len(posts)-1].Round(time.Millisecond), r.maxLag.Round(time.Millisecond))
}

// roundAt says which round of the replay a wall-clock time fell in, for
// messages: "round 15.4".
func (r *replayRun) roundAt(at time.Time) string {
	k := sort.Search(len(r.rounds), func(i int) bool { return r.rounds[i].After(at) }) - 1
	if k < 0 {
		return "before round 0"
	}
	return fmt.Sprintf("round %.1f", float64(k)+float64(at.Sub(r.rounds[k]))/float64(roundEvery))
}

// exportedRule is one alert rule of `healthrouter export`, reduced to what
// Grafana evaluates: its labels, the Prometheus query behind its condition,
// the condition's threshold (gt) and how long it must hold (for).
type exportedRule struct {
	group, title string
	labels       map[string]string
	expr         string
	threshold    float64
	pending      time.Duration
}

// exportedRules are the rules for a set of regions: a host and a region
// rule per region, and the pipeline watchdog; interval is how often Grafana
// evaluates the regions' groups.
type exportedRules struct {
	alerts   []exportedRule
	watchdog exportedRule
	interval time.Duration
}

// provisioningDoc is the part of Grafana's alerting file-provisioning YAML
// the test reads.
type provisioningDoc struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Title     string            `yaml:"title"`
			Condition string            `yaml:"condition"`
			For       string            `yaml:"for"`
			Labels    map[string]string `yaml:"labels"`
			Data      []struct {
				RefID string         `yaml:"refId"`
				Model map[string]any `yaml:"model"`
			} `yaml:"data"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exportRules runs `healthrouter export` for the e2e config and regions
// and reads back the rules.
func exportRules(t *testing.T, regions []string) exportedRules {
	t.Helper()
	out, err := exec.Command(binary, "export", "--config", e2eConfig, "--regions", strings.Join(regions, ",")).Output()
	if err != nil {
		t.Fatalf("healthrouter export: %v\n%s", err, stderrOf(err))
	}
	var doc provisioningDoc
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("healthrouter export: %v\n%s", err, out)
	}
	var rules exportedRules
	perRegion := map[string][]string{}
	for _, g := range doc.Groups {
		interval, err := time.ParseDuration(g.Interval)
		if err != nil || interval <= 0 {
			t.Fatalf("export: group %q: interval %q: %v", g.Name, g.Interval, err)
		}
		if g.Name != "healthrouter-pipeline" {
			if rules.interval != 0 && rules.interval != interval {
				t.Fatalf("export: group %q evaluates every %s, another every %s", g.Name, interval, rules.interval)
			}
			rules.interval = interval
		}
		for _, r := range g.Rules {
			rule := exportedRule{group: g.Name, title: r.Title, labels: r.Labels}
			if rule.pending, err = time.ParseDuration(r.For); err != nil {
				t.Fatalf("export: rule %q: for: %v", r.Title, err)
			}
			models := map[string]map[string]any{}
			for _, q := range r.Data {
				models[q.RefID] = q.Model
			}
			if err := rule.readCondition(r.Condition, models); err != nil {
				t.Fatalf("export: rule %q: %v", r.Title, err)
			}
			switch level := r.Labels["level"]; {
			case g.Name == "healthrouter-pipeline" && level == "pipeline":
				rules.watchdog = rule
			case level == health.LevelHost.String() || level == health.LevelRegion.String():
				rules.alerts = append(rules.alerts, rule)
				perRegion[r.Labels["region"]] = append(perRegion[r.Labels["region"]], level)
			default:
				t.Fatalf("export: rule %q in group %q has level %q", r.Title, g.Name, level)
			}
		}
	}
	if rules.watchdog.expr == "" {
		t.Fatalf("export: no watchdog rule in group healthrouter-pipeline:\n%s", out)
	}
	for _, region := range regions {
		if got := perRegion[region]; !slices.Equal(got, []string{"host", "region"}) {
			t.Fatalf("export: region %s has rules for levels %v, want [host region]", region, got)
		}
	}
	if len(perRegion) != len(regions) {
		t.Fatalf("export: rules for regions %v, want %v", perRegion, regions)
	}
	return rules
}

// readCondition follows the rule's condition: a threshold (gt) over a
// reduce (last) over a Prometheus query.
func (r *exportedRule) readCondition(condition string, models map[string]map[string]any) error {
	cond := models[condition]
	if cond["type"] != "threshold" {
		return fmt.Errorf("condition %s is %v, want a threshold", condition, cond["type"])
	}
	conds, _ := cond["conditions"].([]any)
	if len(conds) != 1 {
		return fmt.Errorf("condition %s: %d evaluators, want 1", condition, len(conds))
	}
	c, _ := conds[0].(map[string]any)
	eval, _ := c["evaluator"].(map[string]any)
	params, _ := eval["params"].([]any)
	if eval["type"] != "gt" || len(params) != 1 {
		return fmt.Errorf("condition %s: evaluator %v, want gt with one parameter", condition, eval)
	}
	switch v := params[0].(type) {
	case int:
		r.threshold = float64(v)
	case float64:
		r.threshold = v
	default:
		return fmt.Errorf("condition %s: threshold %v is not a number", condition, params[0])
	}
	reduce := models[fmt.Sprint(cond["expression"])]
	if reduce["type"] != "reduce" || reduce["reducer"] != "last" {
		return fmt.Errorf("condition %s reads %v, want a reduce (last)", condition, cond["expression"])
	}
	query := models[fmt.Sprint(reduce["expression"])]
	expr, _ := query["expr"].(string)
	if expr == "" || query["instant"] != true {
		return fmt.Errorf("reduce reads %v, want an instant Prometheus query", reduce["expression"])
	}
	r.expr = expr
	return nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// alertInstance is one alert instance a rule fires, by the labels that
// tell instances apart (Grafana's alert identity, the PagerDuty incident).
// A host alert carries its check only when the host is not reporting, as
// healthrouter_alert does.
type alertInstance struct {
	level, region, host, check, severity string
}

func (a alertInstance) String() string {
	s := a.level + " " + a.region
	for _, v := range []string{a.host, a.check, a.severity} {
		if v != "" {
			s += " " + v
		}
	}
	return s
}

// notifiedSeverities are the severities the default export's rules select
// (pagerduty.warning: low): critical and error page at high urgency,
// warning reaches PagerDuty at low urgency.
var notifiedSeverities = []health.Severity{health.SeverityCritical, health.SeverityError, health.SeverityWarning}

// expectedPages is the scenario's notified set: its expected alerts at a
// severity the rules select.
func expectedPages(s *scenario.Scenario) []alertInstance {
	var out []alertInstance
	for _, a := range s.Expect.Alerts {
		if !slices.Contains(notifiedSeverities, a.Severity) {
			continue
		}
		inst := alertInstance{level: a.Level.String(), region: a.Region, host: a.Host, check: a.Check, severity: a.Severity.String()}
		if a.Level == health.LevelHost && a.Check != health.NotReporting {
			inst.check = ""
		}
		if !slices.Contains(out, inst) {
			out = append(out, inst)
		}
	}
	sortInstances(out)
	return out
}

func sortInstances(s []alertInstance) {
	slices.SortFunc(s, func(a, b alertInstance) int { return strings.Compare(a.String(), b.String()) })
}

// ruleSeries is one series a rule's query returned over the window.
type ruleSeries struct {
	rule   *exportedRule
	series promSeries
}

// firedInstances evaluates every host and region rule over the replay's
// window as Grafana does, at every step: an alert instance fires once its
// series has stayed above the threshold, in an unbroken run of samples, for
// the rule's pending period. It maps each instance that fired to when it
// first did, and returns every series the rules' queries gave.
func firedInstances(t *testing.T, prom *promServer, rules exportedRules, run replayRun) (map[alertInstance]time.Time, []ruleSeries) {
	t.Helper()
	fired := map[alertInstance]time.Time{}
	var all []ruleSeries
	for i := range rules.alerts {
		rule := &rules.alerts[i]
		for _, s := range prom.queryRange(t, rule.expr, run.from, run.to, scrapeInterval) {
			all = append(all, ruleSeries{rule, s})
			inst := instanceOf(rule, s)
			if inst.region != rule.labels["region"] {
				t.Errorf("rule %q returned a series of region %q: %v", rule.title, inst.region, s.Labels)
			}
			if at, ok := firesAt(s.Samples, rule.threshold, scrapeInterval, rule.pending); ok {
				if first, seen := fired[inst]; !seen || at.Before(first) {
					fired[inst] = at
				}
			}
		}
	}
	return fired, all
}

func instanceOf(rule *exportedRule, s promSeries) alertInstance {
	return alertInstance{
		level:    rule.labels["level"],
		region:   s.Labels["region"],
		host:     s.Labels["host"],
		check:    s.Labels["check"],
		severity: s.Labels["severity"],
	}
}

// firesAt returns when a rule evaluated at every step over samples first
// fires: the first sample that ends an unbroken run (one sample a step)
// above threshold lasting pending. A missing sample breaks the run, as a
// query without data (noDataState OK) makes Grafana forget the pending
// alert.
func firesAt(samples []promSample, threshold float64, step, pending time.Duration) (time.Time, bool) {
	var since, prev time.Time
	for _, s := range samples {
		if s.Value <= threshold || (!prev.IsZero() && s.At.Sub(prev) > step) {
			since = time.Time{}
		}
		if s.Value > threshold {
			if since.IsZero() {
				since = s.At
			}
			if s.At.Sub(since) >= pending {
				return s.At, true
			}
		}
		prev = s.At
	}
	return time.Time{}, false
}

// restartGap is the longest an alert's series may go without a sample
// when its only instance is killed and restarted, down for downtime from
// the kill until it is ready again. The scrapes that fail are the one in
// flight at the kill, started up to a scrape timeout before it, and those
// started while the instance was down: all start within downtime plus a
// timeout, so at most that span over the interval, rounded down, plus one.
// Each failed scrape adds an interval to the gap between two samples.
func restartGap(downtime time.Duration) time.Duration {
	failed := (downtime+scrapeTimeout)/scrapeInterval + 1
	return (failed + 1) * scrapeInterval
}

// assertAlertContinues checks, for a scenario with restarts, that each
// expected alert's series has a sample in every step from its first to its
// last but for gaps no longer than maxGap, each explained by failed scrapes
// (a live instance never dropped the alert), and that no gap is as long as
// the rules' evaluation interval: Grafana evaluating in a gap finds no data
// and, with noDataState OK, resolves the alert. (At the test's pace, the
// default interval of a minute would be two rounds; a restart of the
// race-enabled binary on a busy machine takes longer than that, a real one
// takes seconds, so the test holds it to the group's own interval.)
func assertAlertContinues(t *testing.T, prom *promServer, s *scenario.Scenario, series []ruleSeries, run replayRun,
	evaluation, maxGap time.Duration) {
	t.Helper()
	down := map[int64]bool{} // steps at which some instance was not scraped
	for _, up := range prom.queryRange(t, "up", run.from, run.to, scrapeInterval) {
		seen := map[int64]bool{}
		for _, sample := range up.Samples {
			seen[sample.At.UnixMilli()] = true
			if sample.Value == 0 {
				down[sample.At.UnixMilli()] = true
			}
		}
		for step := time.UnixMilli(run.from.UnixMilli()); !step.After(run.to); step = step.Add(scrapeInterval) {
			if !seen[step.UnixMilli()] {
				down[step.UnixMilli()] = true
			}
		}
	}
	for _, want := range expectedPages(s) {
		var samples []promSample
		for _, rs := range series {
			if instanceOf(rs.rule, rs.series) == want {
				samples = append(samples, rs.series.Samples...)
			}
		}
		if len(samples) == 0 {
			t.Errorf("%s: no series at all for %s", s.FileBase(), want)
			continue
		}
		slices.SortFunc(samples, func(a, b promSample) int { return a.At.Compare(b.At) })
		var longest time.Duration
		var longestAt time.Time
		for i := 1; i < len(samples); i++ {
			prev, cur := samples[i-1], samples[i]
			if cur.Value <= 0 {
				t.Errorf("%s: %s is %g at %s", s.FileBase(), want, cur.Value, run.roundAt(cur.At))
			}
			gap := cur.At.Sub(prev.At)
			if gap > longest {
				longest, longestAt = gap, prev.At
			}
			for step := prev.At.Add(scrapeInterval); step.Before(cur.At); step = step.Add(scrapeInterval) {
				if !down[step.UnixMilli()] {
					t.Errorf("%s: %s missing at %s although every instance was scraped: the alert was dropped",
						s.FileBase(), want, run.roundAt(step))
				}
			}
		}
		t.Logf("%s: longest gap across %d restart(s) (down for %s at most): %s after %s", want, len(run.restarts),
			run.maxDowntime().Round(time.Millisecond), longest, run.roundAt(longestAt))
		if longest > maxGap || longest >= evaluation {
			t.Errorf("%s: %s went %s without a sample after %s: want at most %s and less than the %s evaluation interval",
				s.FileBase(), want, longest, run.roundAt(longestAt), maxGap, evaluation)
		}
	}
}

// assertPageSet compares what the rules fired with the scenario's page set.
func assertPageSet(t *testing.T, s *scenario.Scenario, fired map[alertInstance]time.Time, run replayRun) {
	t.Helper()
	got := make([]alertInstance, 0, len(fired))
	for inst := range fired {
		got = append(got, inst)
	}
	sortInstances(got)
	want := expectedPages(s)
	if slices.Equal(got, want) {
		return
	}
	var b strings.Builder
	for _, inst := range got {
		fmt.Fprintf(&b, "\n  fired %s (from %s)", inst, run.roundAt(fired[inst]))
	}
	if len(got) == 0 {
		b.WriteString("\n  fired nothing")
	}
	for _, inst := range want {
		fmt.Fprintf(&b, "\n  want  %s", inst)
	}
	if len(want) == 0 {
		b.WriteString("\n  want  no page")
	}
	t.Errorf("%s: %s\nthe exported rules over Prometheus disagree with the expected page set:%s", s.FileBase(), s.Story, b.String())
}

// assertWatchdogQuiet checks that the pipeline watchdog would not have
// fired while events flowed: at no step of a flow did its query have no
// value (noDataState Alerting) or a value above its threshold for as long
// as the rule's pending period. A flow starts with its first post: until
// Prometheus scrapes once more, it may still see the silence before it.
func assertWatchdogQuiet(t *testing.T, prom *promServer, watchdog exportedRule, run replayRun) {
	t.Helper()
	series := prom.queryRange(t, watchdog.expr, run.from, run.to, scrapeInterval)
	if len(series) > 1 {
		t.Fatalf("watchdog %s: %d series, want one", watchdog.expr, len(series))
	}
	values := map[int64]float64{}
	if len(series) == 1 {
		for _, s := range series[0].Samples {
			values[s.At.UnixMilli()] = s.Value
		}
	}
	from := time.UnixMilli(run.from.UnixMilli())
	for i, f := range run.flows {
		var failingSince time.Time // zero while the condition is false
		for step := from; !step.After(run.to); step = step.Add(scrapeInterval) {
			if step.Before(f.first) || step.After(f.last) {
				continue
			}
			v, ok := values[step.UnixMilli()]
			if ok && v <= watchdog.threshold {
				failingSince = time.Time{}
				continue
			}
			if failingSince.IsZero() {
				failingSince = step
			}
			if step.Sub(failingSince) < watchdog.pending {
				continue
			}
			why := "no data"
			if ok {
				why = fmt.Sprintf("%s = %g > %g", watchdog.expr, v, watchdog.threshold)
			}
			t.Errorf("watchdog would fire at %s during flow %d (%s to %s): %s since %s, its pending period is %s (%s)",
				run.roundAt(step), i, run.roundAt(f.first), run.roundAt(f.last), why, run.roundAt(failingSince),
				watchdog.pending, scrapeHealth(t, prom, run))
			break
		}
	}
}

// assertWatchdogFiresWhenSilent waits, after the last round, until the
// watchdog's query has stayed above its threshold for its pending period:
// silence is detected even though the instances are up.
func assertWatchdogFiresWhenSilent(t *testing.T, prom *promServer, watchdog exportedRule, run replayRun) {
	t.Helper()
	last := run.flows[len(run.flows)-1].last
	limit := time.Duration(watchdog.threshold*float64(time.Second)) + watchdog.pending
	deadline := last.Add(limit + 15*time.Second)
	var above time.Time
	for {
		now := time.Now()
		series := prom.query(t, watchdog.expr, now)
		switch {
		case len(series) != 1 || series[0].Samples[0].Value <= watchdog.threshold:
			above = time.Time{}
		case above.IsZero():
			above = now
		case now.Sub(above) >= watchdog.pending:
			if silent := now.Sub(last); silent < limit {
				t.Fatalf("watchdog fired %s after the last event, before its %s", silent, limit)
			}
			return
		}
		if now.After(deadline) {
			t.Fatalf("watchdog %s did not fire within %s after the last event", watchdog.expr, limit+15*time.Second)
		}
		time.Sleep(scrapeInterval / 2)
	}
}

// assertOneSeriesPerAlert checks that the rules' queries returned one
// series per alert instance, with no label telling the pair apart.
func assertOneSeriesPerAlert(t *testing.T, series []ruleSeries) {
	t.Helper()
	seen := map[string]bool{}
	for _, rs := range series {
		if inst, ok := rs.series.Labels["instance"]; ok {
			t.Errorf("rule %q: series carries instance %q: the pair would page twice", rs.rule.title, inst)
		}
		key := rs.rule.title + fmt.Sprint(rs.series.Labels)
		if seen[key] {
			t.Errorf("rule %q: two series %v", rs.rule.title, rs.series.Labels)
		}
		seen[key] = true
	}
}

// assertScrapedFromEach checks that each alert instance that fired was
// scraped from every instance of the pair, so that the rules did collapse
// two series. (An alert that lived for a round may have been scraped from
// one only: it never fired.)
func assertScrapedFromEach(t *testing.T, prom *promServer, addrs []string, run replayRun, fired map[alertInstance]time.Time) {
	t.Helper()
	from := map[alertInstance][]string{}
	for _, s := range prom.queryRange(t, `healthrouter_alert`, run.from, run.to, scrapeInterval) {
		inst := alertInstance{level: s.Labels["level"], region: s.Labels["region"], host: s.Labels["host"],
			check: s.Labels["check"], severity: s.Labels["severity"]}
		if inst.level == health.LevelHost.String() && inst.check != health.NotReporting {
			inst.check = ""
		}
		if _, ok := fired[inst]; ok {
			from[inst] = append(from[inst], s.Labels["instance"])
		}
	}
	want := slices.Sorted(slices.Values(addrs))
	for inst := range fired {
		instances := from[inst]
		slices.Sort(instances)
		if !slices.Equal(instances, want) {
			t.Errorf("alert %s scraped from %v, want from each of %v", inst, instances, want)
		}
	}
}

// scrapeHealth summarises how Prometheus' scrapes went over the replay,
// for messages: failed scrapes and the slowest one, per instance.
func scrapeHealth(t *testing.T, prom *promServer, run replayRun) string {
	t.Helper()
	var parts []string
	for _, s := range prom.queryRange(t, "up", run.from, run.to, scrapeInterval) {
		down := 0
		for _, sample := range s.Samples {
			if sample.Value == 0 {
				down++
			}
		}
		parts = append(parts, fmt.Sprintf("%s: %d of %d scrapes failed", s.Labels["instance"], down, len(s.Samples)))
	}
	for _, s := range prom.queryRange(t, "scrape_duration_seconds", run.from, run.to, scrapeInterval) {
		slowest := 0.0
		for _, sample := range s.Samples {
			slowest = max(slowest, sample.Value)
		}
		parts = append(parts, fmt.Sprintf("%s: slowest scrape %.3fs", s.Labels["instance"], slowest))
	}
	return strings.Join(parts, "; ")
}

func TestExportedRuleReadsCondition(t *testing.T) {
	query := map[string]any{"expr": "up", "instant": true}
	reduce := map[string]any{"type": "reduce", "reducer": "last", "expression": "A"}
	threshold := func(typ string, params ...any) map[string]any {
		return map[string]any{"type": "threshold", "expression": "B",
			"conditions": []any{map[string]any{"evaluator": map[string]any{"type": typ, "params": params}}}}
	}
	for _, tc := range []struct {
		name   string
		models map[string]map[string]any
		want   float64
		err    string
	}{
		{"integer threshold", map[string]map[string]any{"A": query, "B": reduce, "C": threshold("gt", 0)}, 0, ""},
		{"fractional threshold", map[string]map[string]any{"A": query, "B": reduce, "C": threshold("gt", 2.5)}, 2.5, ""},
		{"no condition", map[string]map[string]any{"A": query, "B": reduce}, 0, "want a threshold"},
		{"lt evaluator", map[string]map[string]any{"A": query, "B": reduce, "C": threshold("lt", 0)}, 0, "want gt"},
		{"two parameters", map[string]map[string]any{"A": query, "B": reduce, "C": threshold("gt", 0, 1)}, 0, "want gt with one parameter"},
		{"non-numeric threshold", map[string]map[string]any{"A": query, "B": reduce, "C": threshold("gt", "0")}, 0, "not a number"},
		{"mean reducer", map[string]map[string]any{"A": query, "B": {"type": "reduce", "reducer": "mean", "expression": "A"},
			"C": threshold("gt", 0)}, 0, "want a reduce (last)"},
		{"range query", map[string]map[string]any{"A": {"expr": "up", "instant": false}, "B": reduce, "C": threshold("gt", 0)},
			0, "want an instant Prometheus query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r exportedRule
			err := r.readCondition("C", tc.models)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			case tc.err == "" && (r.expr != "up" || r.threshold != tc.want):
				t.Fatalf("read %q > %g, want up > %g", r.expr, r.threshold, tc.want)
			}
		})
	}
}

func TestExpectedPagesAreTheNotifiedAlertInstances(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		// A host alert is one instance whatever check made it fire.
		{"02-storage-stuck", []string{"host eu-west web-081.eu-west.example.com critical"}},
		{"03-routing-loop", []string{"region eu-central connectivity critical"}},
		// Warnings reach PagerDuty at low urgency by default.
		{"05-dns-warning", []string{"host us-east web-012.us-east.example.com warning",
			"host us-east web-016.us-east.example.com warning", "region eu-west dns warning"}},
		{"06-memory-short", []string{"region ap-south memory warning"}},
		{"07-flapping", nil},
		{"08-drained-host", nil},
		{"09-host-silent", []string{"host ap-south web-030.ap-south.example.com not_reporting critical"}},
		{"10-region-silent", []string{"region eu-west not_reporting critical"}},
	} {
		s, err := scenario.Load("../../testdata/scenarios/" + tc.file + ".expected.json")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, inst := range expectedPages(s) {
			got = append(got, inst.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.file, got, tc.want)
		}
	}
}

func TestFiresAt(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	step := scrapeInterval
	samples := func(values ...float64) []promSample {
		var out []promSample
		for i, v := range values {
			if v >= 0 { // -1: no sample at that step
				out = append(out, promSample{At: t0.Add(time.Duration(i) * step), Value: v})
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		samples []promSample
		pending time.Duration
		want    int // step index it fires at, -1 for never
	}{
		{"a run as long as pending", samples(0, 1, 1, 1, 1, 1, 0), 4 * step, 5},
		{"one step short", samples(1, 1, 1, 1, 0, 1), 4 * step, -1},
		{"a value at the threshold breaks the run", samples(1, 1, 0, 1, 1, 1), 2 * step, 5},
		{"a missing sample breaks the run", samples(1, 1, -1, 1, 1, 1, 1), 3 * step, 6},
		{"no pending period: the first sample above", samples(0, 0, 2), 0, 2},
		{"never above", samples(0, 0, 0), 0, -1},
	} {
		at, ok := firesAt(tc.samples, 0, step, tc.pending)
		switch {
		case tc.want < 0 && ok:
			t.Errorf("%s: fires at %s, want never", tc.name, at.Sub(t0))
		case tc.want >= 0 && (!ok || !at.Equal(t0.Add(time.Duration(tc.want)*step))):
			t.Errorf("%s: fires at %s (%v), want step %d", tc.name, at.Sub(t0), ok, tc.want)
		}
	}
}
