package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Commit is the durable part of one ingest request or engine tick: the check
// states that changed, the checks forgotten, the transitions decided and the
// events dead-lettered.
type Commit struct {
	States []health.CheckState
	// Deleted lists checks to remove (their host was forgotten). Within a
	// commit they apply after States; across commits, even when written in
	// one group, the later commit wins: a host forgotten and then reporting
	// again is present, one reporting and then forgotten is gone.
	Deleted     []health.Key
	Transitions []health.Transition
	Rejected    []health.Rejected
	// ForgottenHosts are remembered so that late results about them stay
	// ignored after a restart.
	ForgottenHosts []health.ForgottenHost
	// Windows are maintenance windows to store (create or replace), and
	// DeletedWindows the IDs of windows to remove (expired or ended early). They
	// travel with the alert changes they cause, so a restart never finds
	// a window without the journal of what it did, or the reverse. Within
	// a commit deletes apply after puts; across commits the later wins.
	Windows        []health.Window
	DeletedWindows []string
	// Background marks a commit that no acknowledgement depends on: a
	// checkpoint of last-seen times and flap histories. It is written in
	// order like any other, but an empty commit's ticket does not wait
	// for it, so requests that changed nothing are not held up while a
	// checkpoint of the whole fleet is written.
	Background bool
}

func (c *Commit) empty() bool {
	return len(c.States) == 0 && len(c.Deleted) == 0 && len(c.Transitions) == 0 && len(c.Rejected) == 0 &&
		len(c.ForgottenHosts) == 0 && len(c.Windows) == 0 && len(c.DeletedWindows) == 0
}

// Ticket is a claim on durability: Wait returns once everything submitted up
// to and including its commit is on disk.
type Ticket struct {
	c   *committer
	seq uint64 // commit sequence to wait for
	// attempts completed when the ticket was issued: a failure reported by a
	// later attempt that covered seq is this ticket's failure.
	attempts uint64
}

// ErrClosed is returned for commits submitted after Close.
var ErrClosed = errors.New("store closed")

// Submit queues c for the next group commit and returns at once. Callers
// that need ordering (the engine's states must reach disk in the order the
// engine decided them) call Submit under the same lock as the engine.
//
// An empty commit still yields a ticket that waits for every earlier
// commit but Background ones: a request whose events only repeated a state
// that is not yet on disk must not be acknowledged before that state is.
func (s *Store) Submit(c *Commit) *Ticket {
	return s.commit.submit(c)
}

// Commit submits c and waits for it: the simple path for callers outside
// the ingest hot path.
func (s *Store) Commit(ctx context.Context, c *Commit) error {
	return s.Submit(c).Wait(ctx)
}

// Wait blocks until the ticket's commit is durable, the attempt that wrote
// it failed, or ctx ends. A failed commit stays queued and is retried, so a
// later ticket (the sender's retry) can still succeed.
func (t *Ticket) Wait(ctx context.Context) error {
	c := t.c
	for {
		c.mu.Lock()
		if c.durable >= t.seq {
			c.mu.Unlock()
			return nil
		}
		if c.failedAttempt > t.attempts && c.failedUpTo >= t.seq {
			err := c.lastErr
			c.mu.Unlock()
			return err
		}
		if c.closed && c.stopped {
			c.mu.Unlock()
			return ErrClosed
		}
		done := c.done
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for commit: %w", ctx.Err())
		}
	}
}

type pendingCommit struct {
	seq uint64
	*Commit
}

// committer owns the single goroutine that writes commits in order, as
// many as are waiting in one transaction.
type committer struct {
	s    *Store
	wake chan struct{}

	mu            sync.Mutex
	pending       []pendingCommit // failed ones stay at the front
	submitted     uint64
	required      uint64 // the latest submitted commit that is not Background
	durable       uint64
	attempts      uint64
	failedAttempt uint64
	failedUpTo    uint64
	lastErr       error
	done          chan struct{} // closed after every attempt
	closed        bool
	closing       chan struct{} // closed with closed: cuts a retry's backoff short
	stopped       bool
	exited        chan struct{}
}

func newCommitter(s *Store) *committer {
	c := &committer{
		s:       s,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	go c.loop()
	return c
}

func (c *committer) submit(cm *Commit) *Ticket {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		// A ticket nothing will ever satisfy; Wait sees stopped.
		return &Ticket{c: c, seq: c.submitted + 1, attempts: c.attempts}
	}
	if cm.empty() {
		// Nothing to write: durable once everything it may depend on is.
		return &Ticket{c: c, seq: c.required, attempts: c.attempts}
	}
	c.submitted++
	if !cm.Background {
		c.required = c.submitted
	}
	c.pending = append(c.pending, pendingCommit{seq: c.submitted, Commit: cm})
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return &Ticket{c: c, seq: c.submitted, attempts: c.attempts}
}

// QueuedCommits reports how many commits wait to be written, for metrics.
func (s *Store) QueuedCommits() int {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return len(s.commit.pending)
}

func (c *committer) loop() {
	defer close(c.exited)
	failures := 0
	for {
		c.mu.Lock()
		batch := c.pending
		closed := c.closed
		c.mu.Unlock()

		if len(batch) == 0 {
			if closed {
				break
			}
			<-c.wake
			continue
		}

		start := time.Now()
		err := c.s.write(batch)
		c.mu.Lock()
		c.attempts++
		last := batch[len(batch)-1].seq
		if err == nil {
			c.pending = c.pending[len(batch):]
			if len(c.pending) == 0 {
				c.pending = nil // let the backing array go
			}
			c.durable = last
			failures = 0
		} else {
			c.failedAttempt, c.failedUpTo, c.lastErr = c.attempts, last, err
			failures++
			c.s.failedWrites.Add(1)
		}
		close(c.done)
		c.done = make(chan struct{})
		c.mu.Unlock()

		if err != nil {
			if closed {
				// An attempt made after Close failed: give up rather than
				// hold the shutdown past its deadline.
				c.s.log.Error("commit failed at shutdown; giving up", zap.Error(err), zap.Int("commits", len(batch)))
				break
			}
			c.s.log.Error("commit failed; will retry", zap.Error(err),
				zap.Int("commits", len(batch)), zap.Int("consecutive_failures", failures))
			retry := time.NewTimer(backoff(failures))
			select {
			case <-retry.C:
			case <-c.closing: // one last attempt, at once
			}
			retry.Stop()
		} else if d := time.Since(start); d > time.Second {
			c.s.log.Warn("slow commit", zap.Duration("took", d), zap.Int("commits", len(batch)))
		}
	}
	c.mu.Lock()
	c.stopped = true
	close(c.done)
	c.done = make(chan struct{})
	c.mu.Unlock()
}

func backoff(failures int) time.Duration {
	d := 50 * time.Millisecond << min(failures, 7)
	return min(d, 5*time.Second)
}

// close flushes what is pending and stops the goroutine. It returns an
// error when commits were still failing and are left unwritten: nothing
// acknowledged is among them (a 2xx waits for its commit), but the
// shutdown was not clean.
func (c *committer) close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.closing)
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	} else {
		c.mu.Unlock()
	}
	<-c.exited
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.pending); n > 0 {
		return fmt.Errorf("%d commits not written, none of them acknowledged: %w", n, c.lastErr)
	}
	return nil
}

// write puts a group of commits in one transaction.
func (s *Store) write(batch []pendingCommit) error {
	records := checkRecords(batch)
	journalN, rejectedN, rejectedSeq, forgottenN := s.counts()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := s.failWrite.Load(); err != nil {
			return *err
		}
		checks := tx.Bucket(bucketChecks)
		journal := tx.Bucket(bucketJournal)
		rejected := tx.Bucket(bucketRejected)
		for _, r := range records {
			if r.val == nil {
				if err := checks.Delete(r.key); err != nil {
					return fmt.Errorf("delete check %q: %w", r.key, err)
				}
				continue
			}
			if err := checks.Put(r.key, r.val); err != nil {
				return fmt.Errorf("put check %q: %w", r.key, err)
			}
		}
		// A commit holding more entries than a bucket keeps writes only its
		// newest, and the oldest already stored are deleted before the
		// puts: deleting from the front of a leaf just filled by the same
		// transaction moves the whole leaf per delete, and a batch of 100k
		// refused events held every acknowledgement for a minute.
		var newJournal, newRejected int
		for _, pc := range batch {
			newJournal += len(pc.Transitions)
			newRejected += len(pc.Rejected)
		}
		skipJournal := max(0, newJournal-s.opts.JournalMax)
		skipRejected := max(0, newRejected-s.opts.RejectedMax)
		var err error
		if journalN, err = trim(journal, journalN, newJournal-skipJournal, s.opts.JournalMax); err != nil {
			return fmt.Errorf("trim journal: %w", err)
		}
		if rejectedN, err = trim(rejected, rejectedN, newRejected-skipRejected, s.opts.RejectedMax); err != nil {
			return fmt.Errorf("trim dead letters: %w", err)
		}
		for _, pc := range batch {
			for i := range pc.Transitions {
				if skipJournal > 0 {
					skipJournal--
					continue
				}
				t := &pc.Transitions[i]
				v, err := json.Marshal(t)
				if err != nil {
					return fmt.Errorf("encode transition: %w", err)
				}
				if err := journal.Put(u64(t.Seq), v); err != nil {
					return fmt.Errorf("put transition: %w", err)
				}
				journalN++
			}
			for i := range pc.Rejected {
				r := &pc.Rejected[i]
				rejectedSeq++
				r.Seq = rejectedSeq
				if skipRejected > 0 {
					skipRejected--
					continue
				}
				v, err := json.Marshal(r)
				if err != nil {
					return fmt.Errorf("encode rejected event: %w", err)
				}
				if err := rejected.Put(u64(r.Seq), v); err != nil {
					return fmt.Errorf("put rejected event: %w", err)
				}
				rejectedN++
			}
		}
		if forgottenN, err = s.putForgotten(tx, batch, forgottenN); err != nil {
			return err
		}
		return putWindows(tx, batch)
	})
	if err != nil {
		return err
	}
	var transitions int
	for _, pc := range batch {
		transitions += len(pc.Transitions)
	}
	s.transitionsWritten.Add(uint64(transitions))
	s.mu.Lock()
	s.journalN, s.rejectedN, s.rejectedSeq, s.forgottenN = journalN, rejectedN, rejectedSeq, forgottenN
	s.mu.Unlock()
	return nil
}

// WriteStats is what the group committer wrote and failed to write since
// Open.
type WriteStats struct {
	Transitions  uint64 // journal entries written
	FailedWrites uint64 // group writes that failed; each is retried
}

// WriteStats reports the committer's counts, for metrics.
func (s *Store) WriteStats() WriteStats {
	return WriteStats{Transitions: s.transitionsWritten.Load(), FailedWrites: s.failedWrites.Load()}
}

// record is one check write: a put, or a delete when val is nil (an
// encoded state is never empty). order is its place in the group, for the
// newest write of a key to win.
type record struct {
	key, val []byte
	order    int
}

// checkRecords encodes the group's states and deletes sorted by key, as
// bbolt writes sorted keys far faster than random ones (a checkpoint can
// hold many). Records are gathered in commit order, each commit's deletes
// after its states, and only the last record per key is kept, so the
// newest write, put or delete, wins. Keys and values share one buffer: a
// checkpoint of a million checks is then a few allocations, not millions.
func checkRecords(batch []pendingCommit) []record {
	n, size := 0, 0
	for _, pc := range batch {
		n += len(pc.States) + len(pc.Deleted)
		for i := range pc.States {
			k := &pc.States[i].Key
			size += 2*(len(k.Region)+len(k.Host)+len(k.Check)) + 64
		}
	}
	// Offsets while the buffer may still grow; slices once it is final.
	type span struct{ start, mid, end int } // key buf[start:mid], value buf[mid:end]
	spans := make([]span, 0, n)
	buf := make([]byte, 0, size)
	for _, pc := range batch {
		for i := range pc.States {
			st := &pc.States[i]
			start := len(buf)
			buf = appendCheckKey(buf, st.Key)
			mid := len(buf)
			buf = appendCheck(buf, st)
			spans = append(spans, span{start, mid, len(buf)})
		}
		for _, k := range pc.Deleted {
			start := len(buf)
			buf = appendCheckKey(buf, k)
			spans = append(spans, span{start, len(buf), len(buf)})
		}
	}
	records := make([]record, len(spans))
	for i, sp := range spans {
		records[i] = record{key: buf[sp.start:sp.mid:sp.mid], order: i}
		if sp.end > sp.mid {
			records[i].val = buf[sp.mid:sp.end:sp.end]
		}
	}
	slices.SortFunc(records, func(a, b record) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.order - b.order
	})
	out := records[:0]
	for i, r := range records {
		if i+1 < len(records) && bytes.Equal(r.key, records[i+1].key) {
			continue // a newer record for the same key follows
		}
		out = append(out, r)
	}
	return out
}

func (s *Store) counts() (journalN, rejectedN int, rejectedSeq uint64, forgottenN int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.journalN, s.rejectedN, s.rejectedSeq, s.forgottenN
}

// trim makes room for incoming entries in a bucket of n that keeps at
// most max: it deletes the oldest once the total would be 5% past the
// bound, so the deletes are batched instead of one per append.
func trim(b *bolt.Bucket, n, incoming, max int) (int, error) {
	if n+incoming <= max+max/20 {
		return n, nil
	}
	drop := min(n, n+incoming-max)
	// Collect first: deleting under a moving cursor skips entries.
	old := make([][]byte, 0, drop)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(old) < drop; k, _ = c.Next() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return n, err
		}
	}
	return n - len(old), nil
}
