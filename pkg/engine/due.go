package engine

import "math"

// The due heap orders hosts by the earliest deadline of their fresh checks,
// so that Tick visits only hosts that are due. Keys are kept lazily: a
// result only ever lowers a host's key (a check's deadline can come
// earlier when its interval shrinks or it comes back from stale); Tick
// re-arms a popped host with its true next deadline. Entries carry their
// key so that sifting reads one contiguous array, and the heap is 4-ary to
// halve its depth.
//
// A host is re-armed somewhat before its true deadline, by a fraction fixed
// per host: visiting it early is harmless (it is re-armed again), and it
// keeps hosts that reported together, or were restored together, from all
// coming due in the same tick.

type dueEntry struct {
	at   int64
	host uint32
}

const dueArity = 4

func (e *Engine) dueSet(i int, d dueEntry) {
	e.due[i] = d
	e.hosts[d.host].heapPos = int32(i)
}

func (e *Engine) dueUp(i int) {
	d := e.due[i]
	for i > 0 {
		p := (i - 1) / dueArity
		if e.due[p].at <= d.at {
			break
		}
		e.dueSet(i, e.due[p])
		i = p
	}
	e.dueSet(i, d)
}

func (e *Engine) dueDown(i int) {
	d, n := e.due[i], len(e.due)
	for {
		first := dueArity*i + 1
		if first >= n {
			break
		}
		m := first
		for c := first + 1; c < first+dueArity && c < n; c++ {
			if e.due[c].at < e.due[m].at {
				m = c
			}
		}
		if e.due[m].at >= d.at {
			break
		}
		e.dueSet(i, e.due[m])
		i = m
	}
	e.dueSet(i, d)
}

// duePush adds a host (created after Start) with its current key.
func (e *Engine) duePush(hi uint32) {
	e.due = append(e.due, dueEntry{at: e.hosts[hi].due, host: hi})
	e.dueUp(len(e.due) - 1)
}

// dueRemove takes a host out of the heap (it is being forgotten).
func (e *Engine) dueRemove(hi uint32) {
	i := int(e.hosts[hi].heapPos)
	if i < 0 {
		return
	}
	e.hosts[hi].heapPos = -1
	last := len(e.due) - 1
	moved := e.due[last]
	e.due = e.due[:last]
	if i == last {
		return
	}
	e.dueSet(i, moved)
	e.dueDown(i)
	e.dueUp(int(e.hosts[moved.host].heapPos))
}

// dueInit orders every host at once (Start).
func (e *Engine) dueInit() {
	e.due = e.due[:0]
	for hi := range e.hosts {
		e.hosts[hi].heapPos = int32(len(e.due))
		e.due = append(e.due, dueEntry{at: e.hosts[hi].due, host: uint32(hi)})
	}
	if len(e.due) < 2 {
		return
	}
	for i := (len(e.due) - 2) / dueArity; i >= 0; i-- {
		e.dueDown(i)
	}
}

// lowerDue moves a host's key earlier when one of its deadlines is.
func (e *Engine) lowerDue(hi uint32, now, deadline int64) {
	h := &e.hosts[hi]
	if deadline >= h.due {
		return
	}
	h.due = spreadKey(h, now, deadline)
	if h.heapPos >= 0 {
		e.due[h.heapPos].at = h.due
		e.dueUp(int(h.heapPos))
	}
}

// rearmTop gives the host at the top of the heap its next key.
func (e *Engine) rearmTop(now, next int64) {
	h := &e.hosts[e.due[0].host]
	h.due = spreadKey(h, now, next)
	e.due[0].at = h.due
	e.dueDown(0)
}

// spreadKey brings a deadline forward by up to half its distance from now,
// by the host's own fraction.
func spreadKey(h *host, now, deadline int64) int64 {
	if deadline == math.MaxInt64 || deadline <= now {
		return deadline
	}
	return deadline - int64(float64(deadline-now)*float64(h.spread)/(2*65536))
}
