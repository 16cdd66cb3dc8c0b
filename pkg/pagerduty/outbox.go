package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/PagerDuty/go-pagerduty"
	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Queue is the durable FIFO the outbox keeps its events in; store.Queue
// satisfies it. Append must be on disk when it returns and hand out
// increasing ids.
type Queue interface {
	Append(items ...[]byte) ([]uint64, error)
	Scan(fn func(id uint64, data []byte) bool) error
	Delete(ids ...uint64) error
}

// KV is a durable key-value bucket; store.KV satisfies it.
type KV interface {
	Put(key string, val []byte) error
	Delete(key string) error
	Scan(fn func(key string, val []byte) bool) error
}

// eventSender is the part of *pagerduty.Client the outbox uses.
type eventSender interface {
	ManageEventWithContext(ctx context.Context, e *pagerduty.V2Event) (*pagerduty.V2EventResponse, error)
}

// Retry backoff: exponential from backoffBase, capped at backoffMax (the
// rate-limit window: waiting longer buys nothing), with jitter so the two
// instances of an HA pair do not retry in lockstep.
const (
	backoffBase = time.Second
	backoffMax  = time.Minute
)

// Message is one event bound for the routing key named Key in the
// configuration. Event.RoutingKey stays empty: the outbox fills it in at
// send time, so routing keys are never written to disk.
type Message struct {
	Key   string
	Event pagerduty.V2Event
}

// OutboxOptions carries the outbox's collaborators; every field is optional.
type OutboxOptions struct {
	Logger     *zap.Logger           // default: no logging
	Clock      Clock                 // default: SystemClock
	Registerer prometheus.Registerer // default: metrics are not registered
	// OnRejected is called, from the delivery goroutine, with each event
	// PagerDuty refused for good and the outbox dropped, so that whoever
	// queued it stops counting on it (Fallback.Refused). It must not block
	// or call back into the outbox.
	OnRejected func(Message)
}

// Outbox delivers events to the PagerDuty Events API v2 and decides what is
// sent, when, and what is dropped:
//
//   - Durable: an event is on disk before Enqueue returns and is deleted only
//     after PagerDuty answered 2xx, so what was queued and not confirmed is
//     delivered after a restart. A crash between a 2xx and the delete sends
//     that event again; PagerDuty de-duplicates it by dedup_key (a repeated
//     trigger only adds a log entry to the open alert, a repeated resolve is
//     dropped), so at-least-once is harmless here.
//   - Ordered: one FIFO lane per routing key name, so a resolve never
//     overtakes its trigger; a lane waiting out a rate limit does not hold
//     back the others.
//   - Rate-limited: at most rate_per_minute requests per routing key in any
//     60 s window, PagerDuty's own limit (about 120/min per integration key).
//     The budget is kept in memory: a restart starts a full one, and the
//     429s PagerDuty may then answer are retried like any other.
//     The two instances of an HA pair each keep this budget: set
//     rate_per_minute to half the integration's limit there.
//   - Retrying: 429, 5xx, other non-2xx answers that say nothing about the
//     event itself, and network errors are retried with exponential backoff
//     and jitter, never dropped. A 400 (or 413) says the event can never be
//     accepted: it is logged with PagerDuty's reason (never the key),
//     counted by cause and dropped. A key PagerDuty refuses outright is
//     reported by KeyErrors until an event through it is accepted.
//   - Merging: a resolve enqueued while its trigger is still queued, never
//     sent, and no incident is open for that dedup_key makes both moot:
//     neither is sent. A trigger that was sent once, whatever came back
//     (a timeout included), always gets its resolve; one whose attempts
//     never got a whole request out (connection refused) or were all
//     answered 429 (not ingested) was not sent. Withdraw is the exception,
//     for incidents left to humans: it takes triggers back unresolved.
//     The outbox knows which incidents are open because it records, in a KV
//     bucket, every dedup_key whose trigger PagerDuty accepted and whose
//     resolve it has not.
type Outbox struct {
	cfg    *config.PagerDuty
	client eventSender
	queue  Queue
	open   KV
	clock  Clock
	log    *zap.Logger
	m      *outboxMetrics
	budget *sendBudget
	lanes  map[string]*lane
	ran    atomic.Bool
	// onRejected is OutboxOptions.OnRejected, never nil.
	onRejected func(Message)

	mu       sync.Mutex
	openKeys map[string]bool // dedup keys with a delivered trigger and no delivered resolve
	depth    int
}

// lane is the FIFO of one routing key name. Only its drain goroutine sends
// or pops its head; Enqueue appends and merges under Outbox.mu.
type lane struct {
	name       string
	routingKey config.Secret
	// fingerprint identifies routingKey's value in queued records: an
	// event queued under a value since replaced is not sent through the
	// new one.
	fingerprint string
	wake        chan struct{}

	// Guarded by Outbox.mu.
	entries  []*entry
	attempts int // consecutive failed attempts of the head
	retryAt  time.Time
	// keyError is why PagerDuty last refused this lane's routing key
	// itself, until it accepts an event through it again.
	keyError string
	// retryError is why the head's last attempt failed, while it is
	// retried: a lane stuck on a proxy's 403, say, shows in /readyz.
	retryError string
}

type entry struct {
	id  uint64
	rec record
	// attempted: the event was sent at least once (or may have been, before
	// a restart). PagerDuty may have acted on it whatever the answer was
	// but 429, a timeout included, so it is never merged away.
	attempted bool
	// sending: a request carrying it is in flight; it is not merged away
	// meanwhile.
	sending bool
	// withdrawn: Withdraw took it back while it was in flight and deleted
	// its record; unless PagerDuty took it, it is dropped, not retried.
	withdrawn bool
}

// record is an event as the queue stores it: the key's name, never the key.
type record struct {
	Key string `json:"key"`
	// KeyFingerprint identifies the key's value when the event was queued
	// (config.PagerDuty.KeyFingerprint); empty in older records.
	KeyFingerprint string            `json:"key_fingerprint,omitempty"`
	Event          pagerduty.V2Event `json:"event"`
	Queued         time.Time         `json:"queued"`
}

// NewOutbox loads what q holds from an earlier run, ready to be delivered by
// Run, and the open incidents recorded in open. Queued events for routing
// keys that are no longer configured, or were queued under a value of the
// key since replaced, are logged and dropped: PagerDuty applies a resolve
// only through the key that opened the incident, and a trigger whose alert
// still fires is paged anew through the new key.
func NewOutbox(cfg *config.PagerDuty, q Queue, open KV, opts OutboxOptions) (*Outbox, error) {
	if cfg == nil {
		return nil, errors.New("pagerduty outbox: no pagerduty configuration")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	m, err := newOutboxMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	rate := cfg.RatePerMinute
	if rate <= 0 {
		rate = 120
	}
	o := &Outbox{
		cfg:        cfg,
		client:     newEventsClient(cfg),
		queue:      q,
		open:       open,
		clock:      opts.Clock,
		log:        opts.Logger.Named("pagerduty.outbox"),
		m:          m,
		budget:     newSendBudget(rate, rateWindow),
		lanes:      map[string]*lane{},
		openKeys:   map[string]bool{},
		onRejected: opts.OnRejected,
	}
	if o.onRejected == nil {
		o.onRejected = func(Message) {}
	}
	for name, key := range cfg.Keys {
		if key == "" {
			continue
		}
		o.lanes[name] = &lane{name: name, routingKey: key, fingerprint: cfg.KeyFingerprint(name), wake: make(chan struct{}, 1)}
	}
	if err := o.load(); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Outbox) load() error {
	err := o.open.Scan(func(dedupKey string, _ []byte) bool {
		o.openKeys[dedupKey] = true
		return true
	})
	if err != nil {
		return fmt.Errorf("pagerduty outbox: load open incidents: %w", err)
	}
	var drop []uint64
	err = o.queue.Scan(func(id uint64, data []byte) bool {
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			o.log.Error("dropping unreadable queued event", zap.Uint64("id", id), zap.Error(err))
			o.m.events.WithLabelValues("unknown", ResultRejected).Inc()
			drop = append(drop, id)
			return true
		}
		l := o.lanes[rec.Key]
		if l == nil {
			why := "dropping queued event: its routing key is no longer configured"
			if env, named := o.cfg.RoutingKeys[rec.Key]; named {
				why = "dropping queued event: its routing key's variable " + env + " is not set"
			}
			o.log.Error(why, zap.String("key", rec.Key), zap.String("action", rec.Event.Action),
				zap.String("dedup_key", rec.Event.DedupKey))
			o.m.events.WithLabelValues(rec.Event.Action, ResultRejected).Inc()
			drop = append(drop, id)
			return true
		}
		if rec.KeyFingerprint != "" && rec.KeyFingerprint != l.fingerprint {
			why := "dropping queued event: it was queued under a value of its routing key since replaced"
			if rec.Event.Action == ActionResolve {
				// Its incident, opened through the old value, is now
				// nobody's but PagerDuty's.
				why += "; resolve its incident in PagerDuty"
			}
			o.log.Error(why, zap.String("key", rec.Key), zap.String("action", rec.Event.Action),
				zap.String("dedup_key", rec.Event.DedupKey))
			o.m.events.WithLabelValues(rec.Event.Action, ResultRejected).Inc()
			drop = append(drop, id)
			return true
		}
		l.entries = append(l.entries, &entry{id: id, rec: rec})
		o.depth++
		return true
	})
	if err != nil {
		return fmt.Errorf("pagerduty outbox: load queue: %w", err)
	}
	if len(drop) > 0 {
		if err := o.queue.Delete(drop...); err != nil {
			return fmt.Errorf("pagerduty outbox: delete dropped events: %w", err)
		}
	}
	for _, l := range o.lanes {
		if len(l.entries) > 0 {
			// Only a lane's head is ever sent: it may have reached
			// PagerDuty before the restart.
			l.entries[0].attempted = true
		}
	}
	o.m.depth.Set(float64(o.depth))
	if o.depth > 0 {
		o.log.Info("queued PagerDuty events from the previous run will be delivered", zap.Int("events", o.depth))
	}
	return nil
}

// KeyErrors names the routing keys PagerDuty refused (an unknown key, a
// malformed one) with its reason, by key name; a key leaves the list once
// PagerDuty accepts an event through it. Empty when all is well.
func (o *Outbox) KeyErrors() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]string{}
	for name, l := range o.lanes {
		if l.keyError != "" {
			out[name] = l.keyError
		}
	}
	return out
}

// Retrying returns, by routing key name, why the event at the head of each
// lane that is being retried failed its last attempt (with the attempt
// count), the key masked. Nothing is lost while a lane retries, but nothing
// behind its head is delivered either.
func (o *Outbox) Retrying() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]string{}
	for name, l := range o.lanes {
		if l.attempts > 0 && l.retryError != "" {
			out[name] = fmt.Sprintf("attempt %d: %s", l.attempts, l.retryError)
		}
	}
	return out
}

// Depth is the number of events queued and not yet confirmed.
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.depth
}

// ErrInvalidMessage is what Enqueue's error wraps when a message can never be
// sent (its routing key is not configured, the event is malformed or too
// large), as opposed to a failure to store it.
var ErrInvalidMessage = errors.New("invalid event")

// Enqueue queues events for delivery. When it returns nil every message is
// on disk or was merged away with the trigger it made moot. On error none of
// msgs was queued, though queued triggers that a resolve in msgs made moot
// may be gone; enqueueing that resolve again is harmless. Every event needs
// a dedup_key (healthrouter always sets one: resolves and merges work on it).
// A message that can never be sent fails the call with ErrInvalidMessage.
func (o *Outbox) Enqueue(msgs ...Message) error {
	for i := range msgs {
		if err := o.validate(&msgs[i]); err != nil {
			return fmt.Errorf("pagerduty outbox: message %d: %w", i, err)
		}
	}
	now := o.clock.Now()

	o.mu.Lock()
	defer o.mu.Unlock()

	plan := o.planLocked(msgs)
	merged := len(plan.mergedIDs) > 0 || len(plan.mergedBatch) > 0
	if len(plan.mergedIDs) > 0 {
		if err := o.queue.Delete(plan.mergedIDs...); err != nil {
			// Without the delete the triggers would come back after a restart
			// with no resolve behind them: send the pair instead.
			o.log.Warn("could not merge moot trigger/resolve pairs; sending them", zap.Error(err))
			plan = mergePlan{appends: msgs}
			merged = false
		}
	}

	var ids []uint64
	if len(plan.appends) > 0 {
		data := make([][]byte, len(plan.appends))
		for i, msg := range plan.appends {
			b, err := json.Marshal(o.record(msg, now))
			if err != nil {
				return fmt.Errorf("pagerduty outbox: encode event: %w", err)
			}
			data[i] = b
		}
		var err error
		ids, err = o.queue.Append(data...)
		if err == nil && len(ids) != len(data) {
			err = fmt.Errorf("store returned %d ids for %d events", len(ids), len(data))
		}
		if err != nil {
			if merged {
				o.applyMergesLocked(plan)
			}
			return fmt.Errorf("pagerduty outbox: queue events: %w", err)
		}
	}
	if merged {
		o.applyMergesLocked(plan)
	}
	for i, msg := range plan.appends {
		l := o.lanes[msg.Key]
		l.entries = append(l.entries, &entry{id: ids[i], rec: o.record(msg, now)})
		o.depth++
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	o.m.depth.Set(float64(o.depth))
	return nil
}

func (o *Outbox) validate(msg *Message) error {
	if _, ok := o.lanes[msg.Key]; !ok {
		if _, named := o.cfg.RoutingKeys[msg.Key]; named {
			return fmt.Errorf("%w: routing key %q: %s is not set", ErrInvalidMessage, msg.Key, o.cfg.RoutingKeys[msg.Key])
		}
		return fmt.Errorf("%w: routing key %q is not configured", ErrInvalidMessage, msg.Key)
	}
	ev := &msg.Event
	if ev.RoutingKey != "" {
		return fmt.Errorf("%w: event carries a routing key: name it in Message.Key instead", ErrInvalidMessage)
	}
	switch ev.Action {
	case ActionTrigger:
		if ev.Payload == nil {
			return fmt.Errorf("%w: trigger without payload", ErrInvalidMessage)
		}
		if sizeBound(ev) > MaxEventBytes { // encode only what may be too large
			size, err := eventSize(ev)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
			}
			if size > MaxEventBytes {
				return fmt.Errorf("%w: %d bytes, over PagerDuty's limit of %d", ErrInvalidMessage, size, MaxEventBytes)
			}
		}
	case ActionResolve, ActionAcknowledge:
	default:
		return fmt.Errorf("%w: unknown event action %q", ErrInvalidMessage, ev.Action)
	}
	if ev.DedupKey == "" || len(ev.DedupKey) > MaxDedupKeyLen {
		return fmt.Errorf("%w: dedup_key must be 1 to %d characters", ErrInvalidMessage, MaxDedupKeyLen)
	}
	return nil
}

// Withdraw takes back the triggers, not yet taken by PagerDuty, of the
// incidents that msgs, their resolves, would close; the resolves are never
// sent. It is how direct paging stops without resolving
// (resolve_on_recovery: false): an incident PagerDuty already has is left
// to humans, one it does not have yet is not opened after Grafana has taken
// over. The triggers of a dedup_key are withdrawn only when all its queued
// events are triggers PagerDuty cannot have taken; one in flight is dropped
// once its request fails, or left to humans if PagerDuty takes it. A
// resolve whose routing key has no lane has nothing queued to withdraw. On
// error nothing was withdrawn.
func (o *Outbox) Withdraw(msgs ...Message) error {
	for i := range msgs {
		if msgs[i].Event.Action != ActionResolve {
			return fmt.Errorf("pagerduty outbox: withdraw message %d: %w: not a resolve", i, ErrInvalidMessage)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	type queued struct {
		l *lane
		e *entry
	}
	var taken []queued
	var ids []uint64
	for _, msg := range msgs {
		l := o.lanes[msg.Key]
		if l == nil {
			continue
		}
		var mine []*entry
		withdrawable := true
		for _, e := range l.entries {
			if e.rec.Event.DedupKey != msg.Event.DedupKey || e.withdrawn {
				continue
			}
			if e.attempted || e.rec.Event.Action != ActionTrigger {
				withdrawable = false
				break
			}
			mine = append(mine, e)
		}
		if !withdrawable {
			continue
		}
		for _, e := range mine {
			taken = append(taken, queued{l, e})
			ids = append(ids, e.id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := o.queue.Delete(ids...); err != nil {
		return fmt.Errorf("pagerduty outbox: withdraw triggers: %w", err)
	}
	for _, q := range taken {
		if q.e.sending {
			q.e.withdrawn = true // drain settles it when its request ends
			continue
		}
		if !q.l.remove(q.e) {
			continue // named twice in msgs
		}
		o.depth--
		o.m.events.WithLabelValues(ActionTrigger, ResultWithdrawn).Inc()
		o.log.Debug("trigger withdrawn before it was sent", zap.String("key", q.l.name),
			zap.String("dedup_key", q.e.rec.Event.DedupKey))
	}
	o.m.depth.Set(float64(o.depth))
	return nil
}

// remove takes e out of the lane's entries, reporting whether it was
// there; the retry state of a head goes with it. Callers hold Outbox.mu.
func (l *lane) remove(e *entry) bool {
	for i, x := range l.entries {
		if x == e {
			if i == 0 {
				l.resetRetry()
			}
			copy(l.entries[i:], l.entries[i+1:])
			l.entries[len(l.entries)-1] = nil
			l.entries = l.entries[:len(l.entries)-1]
			return true
		}
	}
	return false
}

// resetRetry forgets the failed attempts of the lane's head, for a new
// head, and wakes the lane's drain should it be waiting out their backoff.
// Callers hold Outbox.mu.
func (l *lane) resetRetry() {
	if !l.retryAt.IsZero() {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.attempts = 0
	l.retryAt = time.Time{}
	l.retryError = ""
}

// record is msg as queued at now.
func (o *Outbox) record(msg Message, now time.Time) record {
	return record{Key: msg.Key, KeyFingerprint: o.lanes[msg.Key].fingerprint, Event: msg.Event, Queued: now}
}

// mergePlan is what Enqueue will do: the messages to append, and the queued
// (mergedIDs) and same-batch (mergedBatch) events made moot.
type mergePlan struct {
	appends     []Message
	mergedIDs   []uint64
	mergedBatch []Message
	// mergedFromLanes maps lane name to the queued entries to remove.
	mergedFromLanes map[string][]uint64
}

// planLocked finds the moot trigger/resolve pairs. A resolve merges with
// queued triggers of the same dedup_key when they are the only events
// queued for it (so the state before them is the delivered state) and none
// of them was ever sent: a trigger that was sent, even one whose answer
// never came, may have opened an incident only its resolve closes. The
// triggers are then superseded; the resolve is moot too unless PagerDuty has
// an incident open for the key.
func (o *Outbox) planLocked(msgs []Message) mergePlan {
	var p mergePlan
	for _, msg := range msgs {
		if msg.Event.Action != ActionResolve {
			p.appends = append(p.appends, msg)
			continue
		}
		dk := msg.Event.DedupKey
		l := o.lanes[msg.Key]

		var queued []uint64
		mergeable := true
		for _, e := range l.entries {
			if e.rec.Event.DedupKey != dk || p.removed(l.name, e.id) {
				continue
			}
			if e.attempted || e.sending || e.withdrawn || e.rec.Event.Action != ActionTrigger {
				mergeable = false
				break
			}
			queued = append(queued, e.id)
		}
		var batch []int
		for i, m := range p.appends {
			if m.Key != msg.Key || m.Event.DedupKey != dk {
				continue
			}
			if m.Event.Action != ActionTrigger {
				mergeable = false
				break
			}
			batch = append(batch, i)
		}
		if !mergeable || len(queued)+len(batch) == 0 {
			p.appends = append(p.appends, msg)
			continue
		}
		if len(queued) > 0 {
			if p.mergedFromLanes == nil {
				p.mergedFromLanes = map[string][]uint64{}
			}
			p.mergedFromLanes[l.name] = append(p.mergedFromLanes[l.name], queued...)
			p.mergedIDs = append(p.mergedIDs, queued...)
		}
		for j := len(batch) - 1; j >= 0; j-- {
			i := batch[j]
			p.mergedBatch = append(p.mergedBatch, p.appends[i])
			p.appends = append(p.appends[:i], p.appends[i+1:]...)
		}
		if o.openKeys[dk] {
			p.appends = append(p.appends, msg) // the incident is open: resolve it
		} else {
			p.mergedBatch = append(p.mergedBatch, msg)
		}
	}
	return p
}

func (p *mergePlan) removed(laneName string, id uint64) bool {
	for _, r := range p.mergedFromLanes[laneName] {
		if r == id {
			return true
		}
	}
	return false
}

// applyMergesLocked removes the merged entries from memory and counts them.
func (o *Outbox) applyMergesLocked(p mergePlan) {
	for name, ids := range p.mergedFromLanes {
		l := o.lanes[name]
		gone := make(map[uint64]bool, len(ids))
		for _, id := range ids {
			gone[id] = true
		}
		if len(l.entries) > 0 && gone[l.entries[0].id] {
			l.resetRetry() // a 429'd head merged away: its backoff is not the next one's
		}
		kept := l.entries[:0]
		for _, e := range l.entries {
			if gone[e.id] {
				o.m.events.WithLabelValues(e.rec.Event.Action, ResultMerged).Inc()
				o.log.Debug("trigger made moot by a later resolve", zap.String("key", name),
					zap.String("dedup_key", e.rec.Event.DedupKey))
				o.depth--
				continue
			}
			kept = append(kept, e)
		}
		for i := len(kept); i < len(l.entries); i++ {
			l.entries[i] = nil
		}
		l.entries = kept
	}
	for _, m := range p.mergedBatch {
		o.m.events.WithLabelValues(m.Event.Action, ResultMerged).Inc()
	}
	o.m.depth.Set(float64(o.depth))
}

// Run delivers queued events until ctx is done. It runs once per Outbox. An
// event being sent when ctx ends stays queued and goes out after restart.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.ran.CompareAndSwap(false, true) {
		return errors.New("pagerduty outbox: Run called twice")
	}
	names := make([]string, 0, len(o.lanes))
	for name := range o.lanes {
		names = append(names, name)
	}
	sort.Strings(names)
	var wg sync.WaitGroup
	for _, name := range names {
		l := o.lanes[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.drain(ctx, l)
		}()
	}
	wg.Wait()
	return nil
}

// drain sends one lane's events in order, waiting out backoff and the rate
// budget, until ctx is done.
func (o *Outbox) drain(ctx context.Context, l *lane) {
	for {
		o.mu.Lock()
		empty := len(l.entries) == 0
		wait := l.retryAt.Sub(o.clock.Now())
		o.mu.Unlock()
		if empty {
			select {
			case <-l.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if wait > 0 {
			// Woken early when the head that backs off is merged away or
			// withdrawn: its backoff is not the next one's.
			select {
			case <-o.clock.After(wait):
			case <-l.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		ok, wait := o.budget.reserve(l.routingKey.Reveal(), o.clock.Now())
		if !ok {
			if !o.sleep(ctx, wait) {
				return
			}
			continue
		}

		o.mu.Lock()
		if len(l.entries) == 0 { // merged away while we waited
			o.mu.Unlock()
			o.budget.release(l.routingKey.Reveal())
			continue
		}
		e := l.entries[0]
		e.sending = true
		o.mu.Unlock()

		result, reached, err := o.send(ctx, l, e)
		o.budget.finish(l.routingKey.Reveal(), o.clock.Now())
		o.mu.Lock()
		e.sending = false
		// A request that never left cannot have opened an incident, nor
		// can one PagerDuty answered 429 (it does not ingest the event):
		// only another answer makes the event attempted, never merged away.
		// An answer that settles it (2xx, 400) came from PagerDuty in any
		// case.
		if (reached && result != ResultRateLimited) || result == ResultSent || result == ResultRejected {
			e.attempted = true
		}
		withdrawn := e.withdrawn
		o.mu.Unlock()
		if err != nil && ctx.Err() != nil {
			// Shutting down mid-request: the event stays queued for the
			// next run rather than counting as a failure.
			return
		}
		if withdrawn && (result == ResultRetried || result == ResultRateLimited) {
			o.dropWithdrawn(l, e, result)
			continue
		}
		o.settle(l, e, result, err)
	}
}

// dropWithdrawn ends a trigger Withdraw took back while its request was in
// flight, once that request failed: it is not sent again. PagerDuty may have
// taken a request that timed out; such an incident is left to humans, as
// Withdraw leaves every incident PagerDuty has.
func (o *Outbox) dropWithdrawn(l *lane, e *entry, result string) {
	o.mu.Lock()
	if l.remove(e) {
		o.depth--
		o.m.depth.Set(float64(o.depth))
	}
	o.mu.Unlock()
	o.m.events.WithLabelValues(e.rec.Event.Action, result).Inc()
	o.m.events.WithLabelValues(e.rec.Event.Action, ResultWithdrawn).Inc()
	o.log.Debug("withdrawn trigger dropped after its last attempt failed", zap.String("key", l.name),
		zap.String("dedup_key", e.rec.Event.DedupKey), zap.String("result", result))
}

func (o *Outbox) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-o.clock.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// send makes one Events API request and classifies its outcome. reached
// is false when the request was never written out whole (the connection
// was refused, say): PagerDuty cannot have acted on it. The client's errors
// do not keep their cause, so the transport's trace tells.
func (o *Outbox) send(ctx context.Context, l *lane, e *entry) (result string, reached bool, err error) {
	ev := e.rec.Event
	ev.RoutingKey = l.routingKey.Reveal()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	// Latency is measured on the wall clock: it describes real I/O, which
	// the injected clock (there for backoff and the rate budget) does not.
	start := time.Now()
	_, err = o.client.ManageEventWithContext(ctx, &ev)
	o.m.duration.Observe(time.Since(start).Seconds())
	return classify(err), wrote.Load(), err
}

// classify maps a send error to its result. go-pagerduty's client method
// returns pagerduty.APIError for any non-2xx answer (the Events API error
// body is not parsed).
func classify(err error) string {
	if err == nil {
		return ResultSent
	}
	var apiErr pagerduty.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests:
			return ResultRateLimited
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return ResultRejected
		}
		return ResultRetried
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntaxErr) || errors.As(err, &typeErr) {
		// PagerDuty answered 2xx with a body the client could not decode:
		// the event was accepted, sending it again would only duplicate it.
		return ResultSent
	}
	return ResultRetried
}

// settle records the outcome of sending the head e of lane l.
func (o *Outbox) settle(l *lane, e *entry, result string, sendErr error) {
	ev := &e.rec.Event
	fields := []zap.Field{
		zap.String("key", l.name),
		zap.String("action", ev.Action),
		zap.String("dedup_key", ev.DedupKey),
	}
	if sendErr != nil {
		fields = append(fields, zap.String("error", o.scrub(l, sendErr)))
	}
	o.m.events.WithLabelValues(ev.Action, result).Inc()
	var refusal *EventError
	keyRefused := false
	if result == ResultRejected {
		cause := rejectionCause(sendErr)
		o.m.rejections.WithLabelValues(l.name, cause).Inc()
		fields = append(fields, zap.String("cause", cause))
		if errors.As(sendErr, &refusal) {
			fields = append(fields, zap.String("reason", o.scrubText(l, refusal.Reason())))
			keyRefused = refusal.KeyRejected()
		}
	}

	o.mu.Lock()
	switch {
	case result == ResultSent:
		l.keyError = ""
	case keyRefused:
		l.keyError = o.scrubText(l, refusal.Reason())
	}
	if result == ResultRetried || result == ResultRateLimited {
		if len(l.entries) == 0 || l.entries[0] != e {
			// Merged away once its request ended: nothing to retry, and
			// its backoff is not the next head's.
			o.mu.Unlock()
			return
		}
		l.attempts++
		l.retryError = result
		if sendErr != nil {
			l.retryError = o.scrub(l, sendErr)
		}
		delay := backoff(l.attempts)
		l.retryAt = o.clock.Now().Add(delay)
		attempts := l.attempts
		o.mu.Unlock()
		o.log.Warn("PagerDuty event not accepted; will retry",
			append(fields, zap.String("result", result), zap.Int("attempt", attempts), zap.Duration("retry_in", delay))...)
		return
	}
	if l.remove(e) {
		o.depth--
		o.m.depth.Set(float64(o.depth))
	}
	wasOpen := o.openKeys[ev.DedupKey]
	if result == ResultSent {
		switch ev.Action {
		case ActionTrigger:
			o.openKeys[ev.DedupKey] = true
		case ActionResolve:
			delete(o.openKeys, ev.DedupKey)
		}
	}
	isOpen := o.openKeys[ev.DedupKey]
	o.mu.Unlock()

	if result == ResultRejected {
		o.log.Error("PagerDuty rejected event; dropped", fields...)
		o.onRejected(Message{Key: l.name, Event: e.rec.Event})
	} else {
		o.log.Debug("PagerDuty accepted event", fields...)
	}
	if err := o.queue.Delete(e.id); err != nil {
		// It will be sent again after a restart; PagerDuty de-duplicates it.
		o.log.Error("could not delete delivered event from the queue", append(fields, zap.Error(err))...)
	}
	if wasOpen != isOpen {
		var err error
		if isOpen {
			err = o.open.Put(ev.DedupKey, []byte(l.name))
		} else {
			err = o.open.Delete(ev.DedupKey)
		}
		if err != nil {
			o.log.Error("could not record open PagerDuty incident", append(fields, zap.Error(err))...)
		}
	}
}

// scrub renders an error for the log, with the routing key masked should an
// error ever quote it.
func (o *Outbox) scrub(l *lane, err error) string {
	return o.scrubText(l, err.Error())
}

func (o *Outbox) scrubText(l *lane, s string) string {
	if k := l.routingKey.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, l.routingKey.String())
	}
	return s
}

// Causes of a rejection, the `cause` label of
// healthrouter_pagerduty_rejections_total.
const (
	CauseRoutingKey = "routing_key" // PagerDuty refused the key itself
	CauseTooLarge   = "too_large"   // over 512 KB
	CauseInvalid    = "invalid"     // the event, as PagerDuty's errors[] says
	CauseUnknown    = "unknown"     // no Events API error body to tell
)

// rejectionCause classifies a 400/413 answer for the metrics.
func rejectionCause(err error) string {
	var refusal *EventError
	if errors.As(err, &refusal) {
		if refusal.KeyRejected() {
			return CauseRoutingKey
		}
		if refusal.StatusCode == http.StatusRequestEntityTooLarge {
			return CauseTooLarge
		}
		for _, e := range refusal.Errors {
			if strings.Contains(strings.ToLower(e), "larger than") {
				return CauseTooLarge
			}
		}
		return CauseInvalid
	}
	var apiErr pagerduty.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusRequestEntityTooLarge {
		return CauseTooLarge
	}
	return CauseUnknown
}

// backoff is the wait before retry number attempt (1-based): exponential,
// capped, with equal jitter.
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 20 {
		d = min(backoffBase<<(attempt-1), backoffMax)
	}
	half := d / 2
	return half + rand.N(half+1)
}
