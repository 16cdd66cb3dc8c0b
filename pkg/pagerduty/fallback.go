package pagerduty

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Enqueuer takes events for delivery; *Outbox is one.
type Enqueuer interface {
	Enqueue(msgs ...Message) error
}

// FallbackOptions configures a Fallback; every field is optional.
type FallbackOptions struct {
	// ExternalURL is how on-call reaches healthrouter, for the explain link
	// in custom_details.
	ExternalURL string
	// Direct is "direct mode", for deployments with PagerDuty and no Grafana:
	// Fallback pages the page set all the time instead of waiting for
	// Grafana to become unreachable, and the caller passes a zero
	// grafanaUnreachableSince.
	Direct     bool
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// KV keys of the fallback state: the incidents it opened, by alert ID, and
// whether it is paging (so a restart during a Grafana outage carries on).
const (
	fallbackIncidentPrefix = "incident/"
	fallbackActiveKey      = "state/active"
)

// Fallback decides when healthrouter pages PagerDuty itself: when Grafana,
// which normally fires the alerts, has been unreachable for fallback_after
// (or always, in direct mode). While active it keeps PagerDuty's incidents
// equal to the page set: a trigger for each paging alert it has not opened,
// a resolve for each incident it opened whose alert cleared. Once Grafana is
// reachable again it stops, and resolves its own incidents (the default) or
// leaves them to humans (resolve_on_recovery: false).
//
// The incidents it opened and whether it is active are kept in a KV bucket,
// so a restart neither pages an alert twice nor forgets to resolve one. Both
// instances of an HA pair may page: their dedup keys are equal, so PagerDuty
// keeps one alert per healthrouter alert.
type Fallback struct {
	cfg    *config.PagerDuty
	out    Enqueuer
	kv     KV
	url    string
	direct bool
	log    *zap.Logger
	active prometheus.Gauge

	mu        sync.Mutex
	paging    bool
	incidents map[string]incident // by alert ID
}

// incident is one incident Fallback opened, as persisted.
type incident struct {
	DedupKey string    `json:"dedup_key"`
	Key      string    `json:"key"` // routing key name: the resolve must use the same key
	Opened   time.Time `json:"opened"`
}

// NewFallback restores the fallback state from kv.
func NewFallback(cfg *config.PagerDuty, out Enqueuer, kv KV, opts FallbackOptions) (*Fallback, error) {
	if cfg == nil {
		return nil, errors.New("pagerduty fallback: no pagerduty configuration")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	gauge, err := newFallbackActive(opts.Registerer)
	if err != nil {
		return nil, err
	}
	f := &Fallback{
		cfg:       cfg,
		out:       out,
		kv:        kv,
		url:       opts.ExternalURL,
		direct:    opts.Direct,
		log:       opts.Logger.Named("pagerduty.fallback"),
		active:    gauge,
		incidents: map[string]incident{},
	}
	var bad []string
	err = kv.Scan(func(key string, val []byte) bool {
		switch {
		case key == fallbackActiveKey:
			f.paging = string(val) == "1"
		case strings.HasPrefix(key, fallbackIncidentPrefix):
			var inc incident
			if err := json.Unmarshal(val, &inc); err != nil || inc.DedupKey == "" {
				bad = append(bad, key)
				return true
			}
			f.incidents[strings.TrimPrefix(key, fallbackIncidentPrefix)] = inc
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("pagerduty fallback: load state: %w", err)
	}
	for _, key := range bad {
		f.log.Error("dropping unreadable fallback incident record", zap.String("record", key))
		if err := kv.Delete(key); err != nil {
			return nil, fmt.Errorf("pagerduty fallback: delete unreadable record: %w", err)
		}
	}
	if f.paging || f.direct {
		f.active.Set(1)
	}
	if len(f.incidents) > 0 {
		f.log.Info("restored fallback incidents", zap.Int("incidents", len(f.incidents)), zap.Bool("active", f.paging))
	}
	return f, nil
}

// Active reports whether Fallback is paging PagerDuty directly.
func (f *Fallback) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paging || f.direct
}

// Open returns the IDs of the alerts whose incidents Fallback opened and
// has not resolved, sorted.
func (f *Fallback) Open() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sortedKeys(f.incidents)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Update is called every few seconds with the engine's alert set (firing and
// suppressed) and when Grafana became unreachable: zero while Grafana
// answers, so pass zero only once Grafana has answered (after a restart the
// state persisted from before stands until then). Fallback becomes active
// after fallback_after of unreachability and stays active until Grafana
// answers again.
//
// On error (the outbox could not queue the events) nothing changed for the
// alerts concerned; the next Update tries again.
func (f *Fallback) Update(now, grafanaUnreachableSince time.Time, alerts []health.Alert) error {
	f.mu.Lock()
	defer f.mu.Unlock()

	if !f.direct {
		switch {
		case grafanaUnreachableSince.IsZero():
			if f.paging {
				return f.recoverLocked()
			}
			return nil
		case !f.paging && now.Sub(grafanaUnreachableSince) >= f.cfg.FallbackAfter.D():
			f.log.Warn("Grafana unreachable: paging PagerDuty directly",
				zap.Time("unreachable_since", grafanaUnreachableSince),
				zap.Duration("fallback_after", f.cfg.FallbackAfter.D()))
			if err := f.setPagingLocked(true); err != nil {
				return err
			}
		}
		if !f.paging {
			return nil
		}
	}
	return f.reconcileLocked(now, alerts)
}

// reconcileLocked triggers the paging alerts without an incident and
// resolves the incidents whose alert no longer pages.
func (f *Fallback) reconcileLocked(now time.Time, alerts []health.Alert) error {
	paging := make(map[string]*health.Alert)
	for i := range alerts {
		a := &alerts[i]
		if Pages(f.cfg, a) {
			if _, dup := paging[a.ID()]; !dup {
				paging[a.ID()] = a
			}
		}
	}

	var msgs []Message
	opened := map[string]incident{}
	for _, id := range sortedKeys(paging) {
		if _, ok := f.incidents[id]; ok {
			continue
		}
		a := paging[id]
		inc := incident{DedupKey: DedupKey(a), Key: RouteKey(f.cfg, a), Opened: now}
		opened[id] = inc
		msgs = append(msgs, Message{Key: inc.Key, Event: Event(a, f.url)})
	}
	var cleared []string
	for _, id := range sortedKeys(f.incidents) {
		if _, ok := paging[id]; ok {
			continue
		}
		inc := f.incidents[id]
		cleared = append(cleared, id)
		msgs = append(msgs, Message{Key: inc.Key, Event: ResolveEvent(inc.DedupKey)})
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := f.out.Enqueue(msgs...); err != nil {
		return fmt.Errorf("pagerduty fallback: %w", err)
	}

	var errs []error
	for _, id := range sortedKeys(opened) {
		inc := opened[id]
		f.incidents[id] = inc
		val, err := json.Marshal(inc)
		if err == nil {
			err = f.kv.Put(fallbackIncidentPrefix+id, val)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record incident %s: %w", id, err))
		}
		f.log.Info("paging PagerDuty directly", zap.String("alert", id), zap.String("key", inc.Key),
			zap.String("dedup_key", inc.DedupKey))
	}
	for _, id := range cleared {
		inc := f.incidents[id]
		delete(f.incidents, id)
		if err := f.kv.Delete(fallbackIncidentPrefix + id); err != nil {
			errs = append(errs, fmt.Errorf("forget incident %s: %w", id, err))
		}
		f.log.Info("resolving PagerDuty incident: alert cleared", zap.String("alert", id),
			zap.String("key", inc.Key), zap.String("dedup_key", inc.DedupKey))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pagerduty fallback: %w", err)
	}
	return nil
}

// recoverLocked stops direct paging now that Grafana answers again.
func (f *Fallback) recoverLocked() error {
	resolve := f.cfg.ResolveOwn()
	if resolve && len(f.incidents) > 0 {
		msgs := make([]Message, 0, len(f.incidents))
		for _, id := range sortedKeys(f.incidents) {
			inc := f.incidents[id]
			msgs = append(msgs, Message{Key: inc.Key, Event: ResolveEvent(inc.DedupKey)})
		}
		if err := f.out.Enqueue(msgs...); err != nil {
			return fmt.Errorf("pagerduty fallback: resolve on recovery: %w", err)
		}
	}
	f.log.Info("Grafana reachable again: direct paging stopped",
		zap.Int("incidents", len(f.incidents)), zap.Bool("resolved", resolve))
	var errs []error
	for id := range f.incidents {
		delete(f.incidents, id)
		if err := f.kv.Delete(fallbackIncidentPrefix + id); err != nil {
			errs = append(errs, fmt.Errorf("forget incident %s: %w", id, err))
		}
	}
	if err := f.setPagingLocked(false); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pagerduty fallback: %w", err)
	}
	return nil
}

func (f *Fallback) setPagingLocked(on bool) error {
	val := []byte("0")
	if on {
		val = []byte("1")
	}
	if err := f.kv.Put(fallbackActiveKey, val); err != nil {
		return fmt.Errorf("pagerduty fallback: record state: %w", err)
	}
	f.paging = on
	if on {
		f.active.Set(1)
	} else {
		f.active.Set(0)
	}
	return nil
}
