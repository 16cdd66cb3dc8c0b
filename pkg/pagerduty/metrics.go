package pagerduty

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an outbox send attempt, the `result` label of
// healthrouter_pagerduty_events_total.
const (
	ResultSent        = "sent"         // PagerDuty answered 2xx
	ResultRetried     = "retried"      // 5xx, another non-2xx but 400/413/429, or a network error: sent again later
	ResultRateLimited = "rate_limited" // 429: sent again later
	ResultRejected    = "rejected"     // 400 or otherwise unsendable: dropped
	ResultMerged      = "merged"       // made moot by a later event before it was sent
	ResultWithdrawn   = "withdrawn"    // taken back, unsent or its last attempt failed: Grafana pages again, incidents are left to humans
)

type outboxMetrics struct {
	depth      prometheus.Gauge
	events     *prometheus.CounterVec
	rejections *prometheus.CounterVec
	duration   prometheus.Histogram
}

func newOutboxMetrics(reg prometheus.Registerer) (*outboxMetrics, error) {
	m := &outboxMetrics{
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthrouter_pagerduty_outbox_depth",
			Help: "Events queued for PagerDuty and not yet confirmed.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_pagerduty_events_total",
			Help: "PagerDuty Events API outcomes by event action and result (sent, retried, rate_limited, rejected, merged, withdrawn).",
		}, []string{"action", "result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthrouter_pagerduty_rejections_total",
			Help: "Events PagerDuty refused (400/413) and that were dropped, by routing key name and cause (routing_key, too_large, invalid, unknown).",
		}, []string{"key", "cause"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthrouter_pagerduty_send_duration_seconds",
			Help:    "Time taken by one Events API request, whatever its outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.depth, m.events, m.rejections, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register pagerduty outbox metrics: %w", err)
			}
		}
	}
	return m, nil
}

func newFallbackActive(reg prometheus.Registerer) (prometheus.Gauge, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "healthrouter_pagerduty_fallback_active",
		Help: "1 while healthrouter pages PagerDuty directly because Grafana cannot alert (always 1 in direct mode).",
	})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			return nil, fmt.Errorf("register pagerduty fallback metrics: %w", err)
		}
	}
	return g, nil
}
