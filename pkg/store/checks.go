package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// LoadChecks calls fn for every persisted check, in key order. The state
// passed to fn is reused between calls; fn copies what it keeps (strings in
// it are immutable and may be kept). A corrupt record is logged and skipped
// rather than keeping the service down; the count is returned.
func (s *Store) LoadChecks(fn func(*health.CheckState) error) (loaded, skipped int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		d := newDecoder()
		var st health.CheckState
		c := tx.Bucket(bucketChecks).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if derr := d.decode(k, v, &st); derr != nil {
				skipped++
				s.log.Error("skipping unreadable check record", zap.Error(decodeCheckError(k, derr)))
				continue
			}
			if ferr := fn(&st); ferr != nil {
				return ferr
			}
			loaded++
		}
		return nil
	})
	return loaded, skipped, err
}

// LastSeq is the sequence of the newest journal entry (0 when empty), from
// which the engine continues numbering after a restart.
func (s *Store) LastSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketJournal).Cursor().Last(); k != nil {
			seq = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return seq, err
}

// Transitions returns up to limit journal entries with Seq > after, oldest
// first.
func (s *Store) Transitions(after uint64, limit int) ([]health.Transition, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []health.Transition
	err := s.ScanTransitions(after, func(t *health.Transition) bool {
		out = append(out, *t)
		return len(out) < limit
	})
	return out, err
}

// ScanTransitions calls fn for each journal entry with Seq > after, oldest
// first, until fn returns false.
func (s *Store) ScanTransitions(after uint64, fn func(*health.Transition) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJournal).Cursor()
		var t health.Transition
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			t = health.Transition{}
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("journal entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !fn(&t) {
				return nil
			}
		}
		return nil
	})
}

// Rejected returns up to limit dead-lettered events, newest first.
func (s *Store) Rejected(limit int) ([]health.Rejected, error) {
	var out []health.Rejected
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRejected).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r health.Rejected
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("dead letter %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// RejectedCount is how many dead-lettered events are kept.
func (s *Store) RejectedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejectedN
}

// putWindows stores and deletes the group's maintenance windows in
// commit order, so the later change to a window wins.
func putWindows(tx *bolt.Tx, batch []pendingCommit) error {
	var b *bolt.Bucket // opened only for a group that changes windows
	for _, pc := range batch {
		if len(pc.Windows) == 0 && len(pc.DeletedWindows) == 0 {
			continue
		}
		if b == nil {
			b = tx.Bucket(bucketWindows)
		}
		for i := range pc.Windows {
			w := &pc.Windows[i]
			v, err := json.Marshal(w)
			if err != nil {
				return fmt.Errorf("encode maintenance window %s: %w", w.ID, err)
			}
			if err := b.Put([]byte(w.ID), v); err != nil {
				return fmt.Errorf("put maintenance window %s: %w", w.ID, err)
			}
		}
		for _, id := range pc.DeletedWindows {
			if err := b.Delete([]byte(id)); err != nil {
				return fmt.Errorf("delete maintenance window %s: %w", id, err)
			}
		}
	}
	return nil
}

// Windows returns every stored window, expired ones included (the engine
// drops those on load).
func (s *Store) Windows() ([]health.Window, error) {
	var out []health.Window
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWindows).ForEach(func(k, v []byte) error {
			var w health.Window
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("window %q: %w", k, err)
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}
