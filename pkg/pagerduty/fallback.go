package pagerduty

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/config"
	"github.com/healthrouter/healthrouter/pkg/health"
)

// Enqueuer takes events for delivery, and takes back triggers not sent
// yet; *Outbox is one.
type Enqueuer interface {
	Enqueue(msgs ...Message) error
	Withdraw(resolves ...Message) error
}

// FallbackOptions configures a Fallback; every field is optional.
type FallbackOptions struct {
	// ExternalURL is how on-call reaches healthrouter, for the explain link
	// in custom_details.
	ExternalURL string
	// Direct is "direct mode", for deployments with PagerDuty and no Grafana:
	// Fallback pages the page set all the time instead of waiting for
	// Grafana to become unreachable.
	Direct bool
	// Pending is how long an alert must have been firing before Fallback
	// pages it, by level: Grafana's rules wait as long (grafana.pending), so
	// an alert Grafana would not page (a host failing for a moment while a
	// region outage forms, then suppressed by the region alert) is not paged
	// directly either.
	Pending    config.Pending
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// GrafanaStatus is what Fallback knows of Grafana, from its reconciler.
type GrafanaStatus struct {
	// Answered reports whether Grafana has answered since this process
	// started. Until it has, Fallback keeps the state persisted before a
	// restart: a process that has not heard from Grafana yet does not know
	// that it is back.
	Answered bool
	// UnreachableSince is when Grafana stopped being able to page, zero
	// while it can or before the first attempt to reach it has failed:
	// when it stopped answering, or, for a Grafana that answers but was
	// never seen to hold healthrouter's rules (HoldsNoRules), the first
	// attempt.
	UnreachableSince time.Time
	// HoldsNoRules: Grafana answers, but this process has not seen it hold
	// healthrouter's rules (it refuses every reconcile, say). Only the log
	// tells it apart from unreachability.
	HoldsNoRules bool
	// ReachableSince is when Grafana began being able to page without a
	// break, zero while it cannot. Direct paging stops once this is
	// fallback_recover_after old.
	ReachableSince time.Time
}

// KV keys of the fallback state: the incidents it opened, by alert ID,
// whether it is paging (so a restart during a Grafana outage carries on),
// and when each alert series started firing (so a restart does not restart
// or skip pending periods).
const (
	fallbackIncidentPrefix = "incident/"
	fallbackActiveKey      = "state/active"
	fallbackSeriesKey      = "state/series"
)

// seriesRecord is the persisted firing map: Saved is when it was written,
// and a series absent from it started firing after then.
type seriesRecord struct {
	Saved  time.Time       `json:"saved"`
	Series []seriesStarted `json:"series"`
}

type seriesStarted struct {
	Alert    string          `json:"alert"`
	Severity health.Severity `json:"severity"`
	From     time.Time       `json:"from"`
}

// Fallback decides when healthrouter pages PagerDuty itself: when Grafana,
// which normally fires the alerts, has been unreachable for fallback_after
// (or always, in direct mode). While active it keeps PagerDuty's incidents
// equal to the page set, as Grafana's rules would: a trigger for each alert
// that has paged for its pending period and has no incident at its
// severity, a resolve for each incident whose alert cleared or changed
// severity. Once Grafana answers again it stops, and resolves its own
// incidents (the default) or leaves them to humans (resolve_on_recovery:
// false).
//
// The incidents it opened and whether it is active are kept in a KV bucket,
// so a restart neither pages an alert twice nor forgets to resolve one. Both
// instances of an HA pair may page: their dedup keys are equal, so PagerDuty
// keeps one alert per healthrouter alert and severity.
type Fallback struct {
	cfg     *config.PagerDuty
	out     Enqueuer
	kv      KV
	url     string
	direct  bool
	pending config.Pending
	log     *zap.Logger
	active  prometheus.Gauge

	mu        sync.Mutex
	paging    bool
	incidents map[string]incident // by alert ID
	// refused holds, by alert ID, the dedup keys of triggers PagerDuty
	// refused (a 400: a wrong routing key, say). They are not sent again by
	// this process, which would only be refused again; a restart, the way a
	// fixed key takes effect, pages them anew.
	refused map[string]string
	// firing holds, for each unsuppressed alert at its severity (one
	// series of healthrouter_alert), when it was first seen firing since
	// it last was not: where Grafana's pending period for the series
	// starts. A host released by a region alert or a maintenance window, a
	// check that settles after flapping, a new severity: each starts its
	// pending period then, not when its checks first failed.
	firing map[seriesKey]time.Time
	// observed reports whether firing has been filled once. The first
	// alert set after a start holds series that began before it: those
	// the previous run recorded keep their start; the others started
	// after its record was saved (restoredAt) and no earlier than the
	// alert's Since, taken as the later of the two.
	observed   bool
	restored   map[seriesKey]time.Time
	restoredAt time.Time
}

// seriesKey names one series of healthrouter_alert: an alert at one
// severity.
type seriesKey struct {
	id       string
	severity health.Severity
}

// incident is one incident Fallback opened, as persisted.
type incident struct {
	DedupKey string `json:"dedup_key"`
	Key      string `json:"key"` // routing key name: the resolve must use the same key
	// KeyFingerprint identifies the key's value it was opened through
	// (config.PagerDuty.KeyFingerprint): a resolve through a key rotated
	// since then would be dropped by PagerDuty. Empty in older records.
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// Severity is the PagerDuty severity it was opened at; empty in records
	// written before severities were tracked, which stand for any severity.
	Severity string    `json:"severity,omitempty"`
	Opened   time.Time `json:"opened"`
}

// NewFallback restores the fallback state from kv. Incidents opened through
// a routing key no longer in the configuration, or through a value of it
// since replaced (a rotated key), cannot be resolved by healthrouter: they
// are logged (resolve them in PagerDuty) and forgotten. An alert of theirs
// that still pages is paged anew through the new key.
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
		pending:   opts.Pending,
		log:       opts.Logger.Named("pagerduty.fallback"),
		active:    gauge,
		incidents: map[string]incident{},
		refused:   map[string]string{},
		firing:    map[seriesKey]time.Time{},
	}
	var bad, orphans []string
	err = kv.Scan(func(key string, val []byte) bool {
		switch {
		case key == fallbackActiveKey:
			f.paging = string(val) == "1"
		case key == fallbackSeriesKey:
			var rec seriesRecord
			if err := json.Unmarshal(val, &rec); err != nil {
				bad = append(bad, key)
				return true
			}
			f.restored, f.restoredAt = make(map[seriesKey]time.Time, len(rec.Series)), rec.Saved
			for _, s := range rec.Series {
				f.restored[seriesKey{s.Alert, s.Severity}] = s.From
			}
		case strings.HasPrefix(key, fallbackIncidentPrefix):
			var inc incident
			if err := json.Unmarshal(val, &inc); err != nil || inc.DedupKey == "" {
				bad = append(bad, key)
				return true
			}
			id := strings.TrimPrefix(key, fallbackIncidentPrefix)
			if _, configured := cfg.RoutingKeys[inc.Key]; !configured {
				f.log.Error("forgetting a direct page whose routing key is no longer configured; resolve it in PagerDuty",
					zap.String("alert", id), zap.String("key", inc.Key), zap.String("dedup_key", inc.DedupKey))
				orphans = append(orphans, key)
				return true
			}
			// A key whose variable is unset is not known to be replaced:
			// the incident is kept, and its resolve refused as unsendable.
			if cur := cfg.KeyFingerprint(inc.Key); inc.KeyFingerprint != "" && cur != "" && inc.KeyFingerprint != cur {
				f.log.Error("forgetting a direct page opened through a routing key since replaced; resolve it in PagerDuty",
					zap.String("alert", id), zap.String("key", inc.Key), zap.String("dedup_key", inc.DedupKey))
				orphans = append(orphans, key)
				return true
			}
			f.incidents[id] = inc
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("pagerduty fallback: load state: %w", err)
	}
	for _, key := range bad {
		f.log.Error("dropping unreadable fallback incident record", zap.String("record", key))
	}
	for _, key := range append(bad, orphans...) {
		if err := kv.Delete(key); err != nil {
			return nil, fmt.Errorf("pagerduty fallback: delete record: %w", err)
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
// has not resolved, sorted. The service itself does not need it: it is
// there so tests can see what Fallback holds.
func (f *Fallback) Open() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.incidents))
}

// Refused is told of an event PagerDuty refused for good (the outbox's
// OnRejected). A refused trigger opened no incident: Fallback forgets it, so
// the alert's clearing sends no resolve for it, and does not page it again
// in this process. Other events are of no concern to it.
func (f *Fallback) Refused(msg Message) {
	if msg.Event.Action != ActionTrigger {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, inc := range f.incidents {
		if inc.DedupKey != msg.Event.DedupKey || inc.Key != msg.Key {
			continue
		}
		delete(f.incidents, id)
		f.refused[id] = inc.DedupKey
		if err := f.kv.Delete(fallbackIncidentPrefix + id); err != nil {
			f.log.Error("could not forget a refused direct page", zap.String("alert", id), zap.Error(err))
		}
		f.log.Error("PagerDuty refused a direct page: no incident is open for this alert; it is paged again after a restart (fix the routing key first)",
			zap.String("alert", id), zap.String("key", inc.Key), zap.String("dedup_key", inc.DedupKey))
	}
}

// Update is called every few seconds with the engine's alert set (firing and
// suppressed) and what is known of Grafana. Fallback becomes active after
// fallback_after of unreachability and stays active until Grafana has
// answered without a break for fallback_recover_after; until Grafana has
// answered once since start, the state persisted before a restart stands.
//
// On error some events could not be queued: the alerts concerned keep their
// state and the next Update tries again.
func (f *Fallback) Update(now time.Time, grafana GrafanaStatus, alerts []health.Alert) error {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.observeLocked(now, alerts)
	if !f.direct {
		since := grafana.UnreachableSince
		switch {
		case !since.IsZero():
			if !f.paging && now.Sub(since) >= f.cfg.FallbackAfter.D() {
				msg := "Grafana unreachable: paging PagerDuty directly"
				if grafana.HoldsNoRules {
					msg = "Grafana answers but holds none of healthrouter's rules (it refuses every reconcile): paging PagerDuty directly"
				}
				f.log.Warn(msg, zap.Time("unreachable_since", since), zap.Duration("fallback_after", f.cfg.FallbackAfter.D()))
				if err := f.setPagingLocked(true); err != nil {
					return err
				}
			}
		case grafana.Answered:
			if hold := f.cfg.FallbackRecoverAfter.D(); hold > 0 &&
				(grafana.ReachableSince.IsZero() || now.Sub(grafana.ReachableSince) < hold) {
				// Not yet a recovery: keep paging (if paging) until
				// Grafana has answered long enough to have paged itself.
				break
			}
			if f.paging || len(f.incidents) > 0 {
				// Incidents held while not paging were opened in direct
				// mode, before Grafana was configured: Grafana pages now.
				return f.recoverLocked()
			}
			return nil
		}
		if !f.paging {
			return nil
		}
	}
	return f.reconcileLocked(now, alerts)
}

// observeLocked records when each unsuppressed alert series started
// firing, as Grafana sees healthrouter_alert, and forgets the series that
// stopped.
func (f *Fallback) observeLocked(now time.Time, alerts []health.Alert) {
	next := make(map[seriesKey]time.Time, len(f.firing))
	changed := !f.observed
	for i := range alerts {
		a := &alerts[i]
		if a.Suppressed != "" {
			continue
		}
		k := seriesKey{a.ID(), a.Severity}
		from, seen := f.firing[k]
		if !seen {
			changed = true
			from = now
			if !f.observed {
				from = f.startBeforeObserved(k, a, now)
			}
		}
		next[k] = from
	}
	changed = changed || len(next) != len(f.firing)
	f.firing, f.observed, f.restored = next, true, nil
	if changed {
		f.saveSeriesLocked(now)
	}
}

// startBeforeObserved is when a series already firing at this process's
// first look began: as the previous run recorded it, else no earlier than
// that record and the alert's Since; never later than now.
func (f *Fallback) startBeforeObserved(k seriesKey, a *health.Alert, now time.Time) time.Time {
	from, ok := f.restored[k]
	if !ok {
		from = a.Since
		if f.restoredAt.After(from) {
			from = f.restoredAt
		}
	}
	if from.IsZero() || from.After(now) {
		return now
	}
	return from
}

// saveSeriesLocked records the firing map. A failure costs only precision
// after a restart (a pending period counted from the alert's Since), so it
// is logged, not returned.
func (f *Fallback) saveSeriesLocked(now time.Time) {
	rec := seriesRecord{Saved: now, Series: make([]seriesStarted, 0, len(f.firing))}
	for k, from := range f.firing {
		rec.Series = append(rec.Series, seriesStarted{Alert: k.id, Severity: k.severity, From: from})
	}
	val, err := json.Marshal(rec)
	if err == nil {
		err = f.kv.Put(fallbackSeriesKey, val)
	}
	if err != nil {
		f.log.Warn("recording when alerts started firing failed; after a restart their pending periods count from their first failure",
			zap.Error(err))
	}
}

// pended reports whether a has been firing, at its severity, for its
// level's pending period.
func (f *Fallback) pended(now time.Time, a *health.Alert) bool {
	pending := f.pending.Host.D()
	if a.Level == health.LevelRegion {
		pending = f.pending.Region.D()
	}
	from, ok := f.firing[seriesKey{a.ID(), a.Severity}]
	return ok && now.Sub(from) >= pending
}

// change is one event reconcileLocked queues: a trigger opening incident
// inc for alert id, or a resolve closing it.
type change struct {
	id  string
	inc incident
	msg Message
}

// reconcileLocked triggers the paging alerts past their pending period
// without an incident at their severity, and resolves the incidents whose
// alert no longer pages or pages at another severity.
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

	var triggers, resolves []change
	for _, id := range slices.Sorted(maps.Keys(paging)) {
		a := paging[id]
		sev := Severity(a.Severity)
		old, has := f.incidents[id]
		dedup := DedupKey(a)
		switch {
		case has && (old.Severity == sev || old.Severity == ""):
			continue
		case !f.pended(now, a):
			// Grafana would not have notified it yet. An incident open at
			// the alert's former severity stays open meanwhile.
			continue
		case has:
			// A new severity is a new incident, at its own urgency.
			resolves = append(resolves, change{id: id, inc: old, msg: Message{Key: old.Key, Event: ResolveEvent(old.DedupKey)}})
		case f.refused[id] == dedup:
			continue
		}
		key := RouteKey(f.cfg, a)
		inc := incident{DedupKey: dedup, Key: key, KeyFingerprint: f.cfg.KeyFingerprint(key), Severity: sev, Opened: now}
		triggers = append(triggers, change{id: id, inc: inc, msg: Message{Key: inc.Key, Event: Event(a, f.url)}})
	}
	for id, dedup := range f.refused {
		if a, ok := paging[id]; !ok || DedupKey(a) != dedup {
			delete(f.refused, id) // cleared or changed: a new page is a new event
		}
	}
	for _, id := range slices.Sorted(maps.Keys(f.incidents)) {
		if _, ok := paging[id]; ok {
			continue
		}
		inc := f.incidents[id]
		resolves = append(resolves, change{id: id, inc: inc, msg: Message{Key: inc.Key, Event: ResolveEvent(inc.DedupKey)}})
	}
	if len(triggers)+len(resolves) == 0 {
		return nil
	}
	changes := append(triggers, resolves...)
	failed := f.enqueue(changes)

	var errs []error
	// Resolves first: an escalation's trigger replaces the incident its
	// resolve closes.
	for i := len(triggers); i < len(changes); i++ {
		c := changes[i]
		if failed[i] != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", c.id, failed[i]))
			continue
		}
		if cur, ok := f.incidents[c.id]; ok && cur.DedupKey == c.inc.DedupKey {
			delete(f.incidents, c.id)
			if err := f.kv.Delete(fallbackIncidentPrefix + c.id); err != nil {
				errs = append(errs, fmt.Errorf("forget incident %s: %w", c.id, err))
			}
		}
		f.log.Info("resolving PagerDuty incident: alert cleared or changed severity", zap.String("alert", c.id),
			zap.String("key", c.inc.Key), zap.String("dedup_key", c.inc.DedupKey))
	}
	for i, c := range changes[:len(triggers)] {
		if failed[i] != nil {
			errs = append(errs, fmt.Errorf("trigger %s: %w", c.id, failed[i]))
			continue
		}
		if cur, ok := f.incidents[c.id]; ok && cur.DedupKey != c.inc.DedupKey {
			f.log.Error("could not queue the resolve of an incident replaced at a new severity; resolve it in PagerDuty",
				zap.String("alert", c.id), zap.String("key", cur.Key), zap.String("dedup_key", cur.DedupKey))
		}
		f.incidents[c.id] = c.inc
		val, err := json.Marshal(c.inc)
		if err == nil {
			err = f.kv.Put(fallbackIncidentPrefix+c.id, val)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record incident %s: %w", c.id, err))
		}
		f.log.Info("paging PagerDuty directly", zap.String("alert", c.id), zap.String("key", c.inc.Key),
			zap.String("severity", c.inc.Severity), zap.String("dedup_key", c.inc.DedupKey))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pagerduty fallback: %w", err)
	}
	return nil
}

// enqueue queues the changes' events and returns, per change, why its event
// was not queued (nil: queued). An event the outbox refuses as invalid does
// not hold back the others; a failure to store fails them all.
func (f *Fallback) enqueue(changes []change) []error {
	failed := make([]error, len(changes))
	msgs := make([]Message, len(changes))
	for i, c := range changes {
		msgs[i] = c.msg
	}
	err := f.out.Enqueue(msgs...)
	if err == nil {
		return failed
	}
	if !errors.Is(err, ErrInvalidMessage) {
		for i := range failed {
			failed[i] = err
		}
		return failed
	}
	for i := range msgs {
		failed[i] = f.out.Enqueue(msgs[i])
	}
	return failed
}

// recoverLocked stops direct paging now that Grafana answers again. A
// resolve the outbox refuses as invalid can never be sent: its incident is
// logged and forgotten rather than keep Fallback active for ever. When
// incidents are left to humans, triggers not sent yet are withdrawn.
func (f *Fallback) recoverLocked() error {
	resolve := f.cfg.ResolveOwn()
	owned := len(f.incidents)
	var errs []error
	if resolve && len(f.incidents) > 0 {
		changes := make([]change, 0, len(f.incidents))
		for _, id := range slices.Sorted(maps.Keys(f.incidents)) {
			inc := f.incidents[id]
			changes = append(changes, change{id: id, inc: inc, msg: Message{Key: inc.Key, Event: ResolveEvent(inc.DedupKey)}})
		}
		failed := f.enqueue(changes)
		for i, c := range changes {
			switch {
			case failed[i] == nil:
			case errors.Is(failed[i], ErrInvalidMessage):
				f.log.Error("cannot resolve a direct page; resolve it in PagerDuty", zap.String("alert", c.id),
					zap.String("key", c.inc.Key), zap.String("dedup_key", c.inc.DedupKey), zap.Error(failed[i]))
			default:
				errs = append(errs, fmt.Errorf("resolve %s: %w", c.id, failed[i]))
				continue
			}
			delete(f.incidents, c.id)
			if err := f.kv.Delete(fallbackIncidentPrefix + c.id); err != nil {
				errs = append(errs, fmt.Errorf("forget incident %s: %w", c.id, err))
			}
		}
		if len(f.incidents) > 0 {
			// Stay active: the next Update queues the rest.
			return fmt.Errorf("pagerduty fallback: resolve on recovery: %w", errors.Join(errs...))
		}
	}
	if !resolve && len(f.incidents) > 0 {
		// Incidents are left to humans, but a trigger still queued (PagerDuty
		// throttling or down) has opened none yet: Grafana pages now, so it
		// is taken back rather than page after the handover, maybe for an
		// alert that has cleared by then, with nobody to resolve it.
		msgs := make([]Message, 0, len(f.incidents))
		for _, id := range slices.Sorted(maps.Keys(f.incidents)) {
			inc := f.incidents[id]
			msgs = append(msgs, Message{Key: inc.Key, Event: ResolveEvent(inc.DedupKey)})
		}
		if err := f.out.Withdraw(msgs...); err != nil {
			// Stay active: the next Update tries again.
			return fmt.Errorf("pagerduty fallback: withdraw unsent pages on recovery: %w", err)
		}
	}
	f.log.Info("Grafana reachable again: direct paging stopped",
		zap.Int("incidents", owned), zap.Bool("resolved", resolve))
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
