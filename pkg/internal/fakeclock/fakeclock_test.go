package fakeclock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAdvanceFiresOnlyDueTimers(t *testing.T) {
	c := New(t0)
	if !fired(c.After(0)) {
		t.Error("After(0) must fire at once")
	}
	short, long := c.After(time.Second), c.After(time.Minute)
	c.Advance(999 * time.Millisecond)
	if fired(short) || fired(long) {
		t.Fatal("fired before its time")
	}
	c.Advance(time.Millisecond)
	if !fired(short) || fired(long) {
		t.Fatal("want only the one-second timer fired")
	}
	c.AdvanceToNext()
	if !fired(long) || !c.Now().Equal(t0.Add(time.Minute)) {
		t.Fatalf("AdvanceToNext: now %s, want the minute timer fired at %s", c.Now(), t0.Add(time.Minute))
	}
}

func TestAwaitSleepSeesTheNewestWait(t *testing.T) {
	c := New(t0)
	go func() {
		c.After(time.Second)
		c.After(3 * time.Second)
	}()
	seq, d := c.AwaitSleep(t, 1)
	if seq != 2 || d != 3*time.Second {
		t.Errorf("AwaitSleep = %d, %s; want the second wait, 3s", seq, d)
	}
}

func TestRunUntilPassesOnlyTheTimeWaitedFor(t *testing.T) {
	c := New(t0)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3; i++ {
			<-c.After(time.Hour)
		}
		close(done)
	}()
	passed := c.RunUntil(t, 24*time.Hour, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	if passed != 3*time.Hour {
		t.Errorf("passed %s, want 3h", passed)
	}
}
