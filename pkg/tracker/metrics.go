package tracker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Metric names are a contract: Grafana rules query them (DESIGN §3).
var (
	alertDesc = prometheus.NewDesc("healthrouter_alert",
		"Active alert set. level=host: value is the host's unsuppressed failing checks; level=region: the failing-host ratio. check is set for region alerts and not_reporting hosts.",
		[]string{"level", "region", "host", "check", "severity"}, nil)
	alertTeamDesc = prometheus.NewDesc("healthrouter_alert_team",
		"The team of each active alert that has one (value 1), for routing by team: join it on (region, host, check). Kept apart so healthrouter_alert's labels stay fixed.",
		[]string{"level", "region", "host", "check", "team"}, nil)
	suppressedDesc = prometheus.NewDesc("healthrouter_alert_suppressed",
		"Alerts (per check) held back, with the reason: region, maintenance or flapping.",
		[]string{"level", "region", "host", "check", "reason"}, nil)
	failingDesc = prometheus.NewDesc("healthrouter_check_failing",
		"Non-passing checks (soft or hard) that still report; passing and stale checks are not exported one by one. Value 1 when hard (confirmed), 0 while soft.",
		[]string{"region", "host", "check", "status"}, nil)
	regionHostsDesc = prometheus.NewDesc("healthrouter_region_hosts",
		"Hosts known in the region.", []string{"region"}, nil)
	regionReportingDesc = prometheus.NewDesc("healthrouter_region_reporting_hosts",
		"Hosts in the region with at least one fresh check.", []string{"region"}, nil)
	regionFailingDesc = prometheus.NewDesc("healthrouter_region_failing_checks",
		"Non-passing checks in the region that still report (stale ones are in healthrouter_checks_stale).", []string{"region"}, nil)
	lastEventDesc = prometheus.NewDesc("healthrouter_last_event_timestamp_seconds",
		"When the region last delivered a result (receiver clock).", []string{"region"}, nil)
	trackedDesc = prometheus.NewDesc("healthrouter_tracked_checks",
		"Checks (region, host, check) tracked.", nil, nil)
	hostsDesc = prometheus.NewDesc("healthrouter_tracked_hosts",
		"Hosts tracked.", nil, nil)
	flappingDesc = prometheus.NewDesc("healthrouter_checks_flapping",
		"Checks currently flapping.", nil, nil)
	staleDesc = prometheus.NewDesc("healthrouter_checks_stale",
		"Checks with no result for their stale_after.", nil, nil)
	windowsDesc = prometheus.NewDesc("healthrouter_maintenance_windows",
		"Active maintenance windows.", nil, nil)
	storePendingDesc = prometheus.NewDesc("healthrouter_store_pending_commits",
		"Commits waiting to be written to disk.", nil, nil)
	storeBytesDesc = prometheus.NewDesc("healthrouter_store_size_bytes",
		"Size of the state file.", nil, nil)
	deadLettersDesc = prometheus.NewDesc("healthrouter_dead_letters",
		"Rejected events kept in the dead-letter store.", nil, nil)
	teamsDroppedDesc = prometheus.NewDesc("healthrouter_event_teams_dropped_total",
		"Results whose team was dropped (the check falls back to its rule's team) because the engine already holds its limit of distinct team names.", nil, nil)
	skippedDesc = prometheus.NewDesc("healthrouter_state_records_skipped",
		"Persisted check records left out at start-up, by reason: unreadable (corrupt) or invalid (refused by the engine). Each is logged with its key.",
		[]string{"reason"}, nil)
)

// Reasons a persisted check record is skipped at start-up.
const (
	skipUnreadable = "unreadable"
	skipInvalid    = "invalid"
)

// Metrics exposes the page set and ingest counters. The page set is read
// from the engine at scrape time, so it can never drift from the state.
type Metrics struct {
	t           *Tracker
	events      *prometheus.CounterVec
	rejects     *prometheus.CounterVec
	checkpoints *prometheus.CounterVec
	ckptSeconds prometheus.Histogram
	ckptStates  prometheus.Counter
	// transitions and commitFailures are the store's counts (see
	// store.WriteStats), taken where the writes happen rather than from
	// whoever waited on them.
	transitions, commitFailures prometheus.CounterFunc
}

// eventResults are the results of healthrouter_ingest_events_total, each
// exported from the start at 0: a rate over a series that does not exist
// yet reads as no data rather than none.
var eventResults = []string{"accepted", "duplicate", "not_durable", "abandoned", "rejected"}

func newMetrics(t *Tracker) *Metrics {
	m := &Metrics{
		t: t,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_ingest_events_total",
			Help: "Events received, by result: accepted or duplicate (repeated event_id or older than the state) once on disk, not_durable when the commit failed and the sender was told to retry, abandoned when the sender went away before its commit was confirmed (the commit goes on; a retry is deduplicated), or rejected.",
		}, []string{"result"}),
		transitions: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthrouter_ingest_transitions_total",
			Help: "State changes decided by the engine (checks and alerts), counted once on disk.",
		}, func() float64 { return float64(t.store.WriteStats().Transitions) }),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_ingest_rejected_total",
			Help: "Events rejected and dead-lettered, by reason.",
		}, []string{"reason"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_checkpoints_total",
			Help: "Periodic checkpoints of last-seen times, by result: written, failed, or skipped because the previous one was still being written.",
		}, []string{"result"}),
		ckptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthrouter_checkpoint_duration_seconds",
			Help:    "Time to write a periodic checkpoint, pauses between its parts included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12), // 10 ms to 20 s
		}),
		ckptStates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "healthrouter_checkpoint_states_total",
			Help: "Check states written by checkpoints.",
		}),
		commitFailures: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthrouter_store_commit_failures_total",
			Help: "Group writes (of ingest requests, ticks, checkpoints, admin changes) the store failed, as on a full or failing disk; the store retries each, and no request waiting on one is acknowledged.",
		}, func() float64 { return float64(t.store.WriteStats().FailedWrites) }),
	}
	for _, r := range eventResults {
		m.events.WithLabelValues(r)
	}
	return m
}

// checkpointed records a periodic checkpoint's outcome.
func (m *Metrics) checkpointed(result string, states int, d time.Duration) {
	m.checkpoints.WithLabelValues(result).Inc()
	if result == "written" {
		m.ckptSeconds.Observe(d.Seconds())
	}
	m.ckptStates.Add(float64(states))
}

func (m *Metrics) applied(accepted, duplicates int) {
	if accepted > 0 {
		m.events.WithLabelValues("accepted").Add(float64(accepted))
	}
	if duplicates > 0 {
		m.events.WithLabelValues("duplicate").Add(float64(duplicates))
	}
}

// notDurable counts the events of a request that was not acknowledged
// because its commit failed: the sender retries them.
func (m *Metrics) notDurable(events int) {
	if events > 0 {
		m.events.WithLabelValues("not_durable").Add(float64(events))
	}
}

// abandoned counts the events of a request whose sender went away (or
// whose context ended) before its commit was confirmed: the commit goes
// on, and a retry is deduplicated.
func (m *Metrics) abandoned(events int) {
	if events > 0 {
		m.events.WithLabelValues("abandoned").Add(float64(events))
	}
}

func (m *Metrics) rejected(reason string) {
	m.events.WithLabelValues("rejected").Inc()
	m.rejects.WithLabelValues(reason).Inc()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.events.Describe(ch)
	m.transitions.Describe(ch)
	m.rejects.Describe(ch)
	m.checkpoints.Describe(ch)
	m.ckptSeconds.Describe(ch)
	m.ckptStates.Describe(ch)
	m.commitFailures.Describe(ch)
	for _, d := range []*prometheus.Desc{alertDesc, alertTeamDesc, suppressedDesc, failingDesc, regionHostsDesc,
		regionReportingDesc, regionFailingDesc, lastEventDesc, trackedDesc, hostsDesc, flappingDesc,
		staleDesc, windowsDesc, storePendingDesc, storeBytesDesc, deadLettersDesc, skippedDesc, teamsDroppedDesc} {
		ch <- d
	}
}

type failing struct {
	k    health.Key
	st   health.Status
	hard bool
}

// Collect implements prometheus.Collector. It copies what it needs under
// the lock and builds metrics outside it.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.events.Collect(ch)
	m.transitions.Collect(ch)
	m.rejects.Collect(ch)
	m.checkpoints.Collect(ch)
	m.ckptSeconds.Collect(ch)
	m.ckptStates.Collect(ch)
	m.commitFailures.Collect(ch)

	t := m.t
	var fails []failing
	t.mu.Lock()
	alerts := t.eng.Alerts()
	regions := t.eng.Regions()
	stats := t.eng.Stats()
	windows := len(t.eng.Windows())
	t.eng.FailingChecks(func(k health.Key, st health.Status, hard bool) {
		fails = append(fails, failing{k, st, hard})
	})
	t.mu.Unlock()

	for i := range alerts {
		a := &alerts[i]
		if a.Suppressed != "" {
			ch <- prometheus.MustNewConstMetric(suppressedDesc, prometheus.GaugeValue, 1,
				a.Level.String(), a.Region, a.Host, a.Check, a.Suppressed)
			continue
		}
		ch <- prometheus.MustNewConstMetric(alertDesc, prometheus.GaugeValue, a.Value,
			a.Level.String(), a.Region, a.Host, a.Check, a.Severity.String())
		if a.Team != "" {
			ch <- prometheus.MustNewConstMetric(alertTeamDesc, prometheus.GaugeValue, 1,
				a.Level.String(), a.Region, a.Host, a.Check, a.Team)
		}
	}
	for _, f := range fails {
		v := 0.0
		if f.hard {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, v,
			f.k.Region, f.k.Host, f.k.Check, f.st.String())
	}
	for _, r := range regions {
		ch <- prometheus.MustNewConstMetric(regionHostsDesc, prometheus.GaugeValue, float64(r.Hosts), r.Name)
		ch <- prometheus.MustNewConstMetric(regionReportingDesc, prometheus.GaugeValue, float64(r.ReportingHosts), r.Name)
		ch <- prometheus.MustNewConstMetric(regionFailingDesc, prometheus.GaugeValue, float64(r.FailingChecks), r.Name)
		if !r.LastEvent.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastEventDesc, prometheus.GaugeValue,
				float64(r.LastEvent.UnixNano())/1e9, r.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(stats.TrackedChecks))
	ch <- prometheus.MustNewConstMetric(hostsDesc, prometheus.GaugeValue, float64(stats.Hosts))
	ch <- prometheus.MustNewConstMetric(flappingDesc, prometheus.GaugeValue, float64(stats.Flapping))
	ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, float64(stats.Stale))
	ch <- prometheus.MustNewConstMetric(windowsDesc, prometheus.GaugeValue, float64(windows))
	ch <- prometheus.MustNewConstMetric(teamsDroppedDesc, prometheus.CounterValue, float64(stats.TeamsDropped))
	ch <- prometheus.MustNewConstMetric(storePendingDesc, prometheus.GaugeValue, float64(t.store.QueuedCommits()))
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(t.store.Size()))
	ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(t.store.RejectedCount()))
	for _, reason := range []string{skipUnreadable, skipInvalid} {
		ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.GaugeValue, float64(t.skipped[reason]), reason)
	}
}
