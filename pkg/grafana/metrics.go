package grafana

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reconcile results, the values of healthrouter_grafana_reconcile_total's
// result label.
const (
	resultNoop    = "noop"    // Grafana already matched
	resultApplied = "applied" // changes were written
	resultError   = "error"
)

type metrics struct {
	reconciles  *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	up          prometheus.Gauge
	writes      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_grafana_reconcile_total",
			Help: "Grafana reconciles by result: noop (nothing to change), applied, error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthrouter_grafana_reconcile_duration_seconds",
			Help:    "Time one Grafana reconcile took, reads and writes.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthrouter_grafana_last_success_timestamp_seconds",
			Help: "Unix time of the last successful Grafana reconcile.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthrouter_grafana_up",
			Help: "1 while Grafana's API answers (a 4xx counts: Grafana is up), 0 while it does not or answers 5xx.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_grafana_writes_total",
			Help: "Successful writes to Grafana by kind (folder, contact_point, rule_group, policy) and action.",
		}, []string{"kind", "action"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reconciles, m.duration, m.lastSuccess, m.up, m.writes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register grafana metrics: %w", err)
		}
	}
	return m, nil
}
