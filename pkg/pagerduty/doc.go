// Package pagerduty pages PagerDuty directly through the Events API v2 when
// Grafana cannot, and checks the PagerDuty side of the configuration.
//
// It owns four things:
//   - the mapping of a health.Alert to an Events API v2 event (severity,
//     group, component, class, custom_details, dedup_key) and the choice of
//     routing key, shared with the Grafana contact points;
//   - the Outbox, a durable, rate-limited, retrying FIFO of events;
//   - Fallback, which decides when healthrouter pages by itself and keeps
//     track of the incidents it opened;
//   - SendTest and Verify, behind `healthrouter pagerduty test|verify`.
//
// Routing keys are secrets: they stay in config.Secret until the moment an
// event is sent, are never written to the store, and never appear in logs,
// errors, metrics or command output, which name keys by their config name.
package pagerduty
