// Package fakeclock is a clock that tests move by hand, for code that
// waits through a Clock's After (backoff, rate limits, reconcile periods):
// hours of outage play out in milliseconds and in order.
package fakeclock

import (
	"sync"
	"testing"
	"time"
)

// Clock is a manual clock. Its zero value is not usable; call New.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	seq     int
	slept   chan struct{}
}

type waiter struct {
	at  time.Time
	seq int
	ch  chan time.Time
}

// New returns a clock standing at now.
func New(now time.Time) *Clock {
	return &Clock{now: now, slept: make(chan struct{}, 1)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it has been
// advanced by d; at once when d is not positive.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.seq++
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), seq: c.seq, ch: ch})
	select {
	case c.slept <- struct{}{}:
	default:
	}
	return ch
}

// Advance moves the clock and fires every timer that is due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// AdvanceToNext moves the clock to the earliest pending timer, firing it;
// it does nothing when nothing waits.
func (c *Clock) AdvanceToNext() {
	c.mu.Lock()
	if len(c.waiters) == 0 {
		c.mu.Unlock()
		return
	}
	next := c.waiters[0].at
	for _, w := range c.waiters[1:] {
		if w.at.Before(next) {
			next = w.at
		}
	}
	d := next.Sub(c.now)
	c.mu.Unlock()
	c.Advance(d)
}

// AwaitSleep waits, in real time, until a wait started after the one
// numbered after is pending, and returns the newest one's number and
// length. It fails the test after ten seconds.
func (c *Clock) AwaitSleep(t testing.TB, after int) (seq int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		var newest *waiter
		for i := range c.waiters {
			if w := &c.waiters[i]; w.seq > after && (newest == nil || w.seq > newest.seq) {
				newest = w
			}
		}
		if newest != nil {
			seq, d = newest.seq, newest.at.Sub(c.now)
			c.mu.Unlock()
			return seq, d
		}
		c.mu.Unlock()
		select {
		case <-c.slept:
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a sleep on the fake clock")
		}
	}
}

// RunUntil moves the clock on whenever something waits on it, straight to
// the earliest deadline, until done reports true, and returns the clock time
// that passed. Clock time passes only while the code under test waits. It
// fails the test past limit of clock time or a minute of real time.
func (c *Clock) RunUntil(t testing.TB, limit time.Duration, done func() bool) time.Duration {
	t.Helper()
	start := c.Now()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if c.Now().Sub(start) > limit || time.Now().After(deadline) {
			t.Fatalf("not done after %v of clock time", c.Now().Sub(start))
		}
		c.AdvanceToNext()
		time.Sleep(100 * time.Microsecond)
	}
	return c.Now().Sub(start)
}
