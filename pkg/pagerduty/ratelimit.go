package pagerduty

import (
	"sync"
	"time"
)

// rateWindow is PagerDuty's Events API rate-limit window: about 120 events
// per minute per integration key, counted looking back from now.
const rateWindow = time.Minute

// busyPoll is how long a sender waits when the whole budget is in flight and
// no completed send tells when a slot frees up.
const busyPoll = 100 * time.Millisecond

// sendBudget keeps healthrouter under PagerDuty's per-integration-key rate
// limit: at most limit requests per key in any sliding window. Every request
// counts, including those answered 429, and a request is stamped when its
// response arrives: a request leaves the window only after the window has
// also passed at PagerDuty, whatever the network delay, so the budget is
// never exceeded as PagerDuty counts it.
type sendBudget struct {
	limit  int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*keyUsage // by routing key value: names sharing a key share its budget
}

type keyUsage struct {
	done     []time.Time // completion times, oldest first
	inFlight int
}

func newSendBudget(limit int, window time.Duration) *sendBudget {
	return &sendBudget{limit: limit, window: window, keys: map[string]*keyUsage{}}
}

// reserve takes a slot for one request on key at now, or says how long to
// wait before asking again.
func (b *sendBudget) reserve(key string, now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.keys[key]
	if u == nil {
		u = &keyUsage{}
		b.keys[key] = u
	}
	cut := 0
	for cut < len(u.done) && now.Sub(u.done[cut]) >= b.window {
		cut++
	}
	u.done = u.done[cut:]
	if len(u.done)+u.inFlight < b.limit {
		u.inFlight++
		return true, 0
	}
	if len(u.done) == 0 {
		return false, busyPoll
	}
	return false, u.done[0].Add(b.window).Sub(now)
}

// finish stamps a reserved request with the time its response arrived.
func (b *sendBudget) finish(key string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.keys[key]
	u.inFlight--
	// Keep done sorted even if clocks hand out a slightly older time to a
	// concurrent finisher.
	i := len(u.done)
	for i > 0 && u.done[i-1].After(at) {
		i--
	}
	u.done = append(u.done, time.Time{})
	copy(u.done[i+1:], u.done[i:])
	u.done[i] = at
}

// release gives back a reservation that was not used.
func (b *sendBudget) release(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys[key].inFlight--
}
