package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Queue is a durable FIFO in its own bucket: what is appended survives a
// restart until it is deleted. The PagerDuty outbox is one.
type Queue struct {
	s    *Store
	name []byte
	n    atomic.Int64
}

// Queue opens (creating) the named queue. Every call for a name returns
// the same handle, so its Len stays true for all holders.
func (s *Store) Queue(name string) (*Queue, error) {
	if name == "" {
		return nil, errors.New("queue name must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[name]; ok {
		return q, nil
	}
	q := &Queue{s: s, name: []byte(name)}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketQueues).CreateBucketIfNotExists(q.name)
		if err != nil {
			return err
		}
		q.n.Store(int64(b.Stats().KeyN))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	if s.queues == nil {
		s.queues = map[string]*Queue{}
	}
	s.queues[name] = q
	return q, nil
}

func (q *Queue) bucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketQueues).Bucket(q.name) }

// Append adds items at the tail, durably, and returns their ids (increasing).
func (q *Queue) Append(items ...[]byte) ([]uint64, error) {
	ids := make([]uint64, 0, len(items))
	err := q.s.db.Update(func(tx *bolt.Tx) error {
		ids = ids[:0]
		b := q.bucket(tx)
		for _, it := range items {
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(u64(id), it); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("append to queue %s: %w", q.name, err)
	}
	q.n.Add(int64(len(items)))
	return ids, nil
}

// Scan calls fn for each item, oldest first, until fn returns false. data
// is only valid during the call.
func (q *Queue) Scan(fn func(id uint64, data []byte) bool) error {
	return q.s.db.View(func(tx *bolt.Tx) error {
		c := q.bucket(tx).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !fn(binary.BigEndian.Uint64(k), v) {
				return nil
			}
		}
		return nil
	})
}

// ErrNotFound is returned when updating an item that is gone.
var ErrNotFound = errors.New("not found")

// Update replaces an item's data in place (its position is kept).
func (q *Queue) Update(id uint64, data []byte) error {
	return q.s.db.Update(func(tx *bolt.Tx) error {
		b := q.bucket(tx)
		if b.Get(u64(id)) == nil {
			return fmt.Errorf("queue %s item %d: %w", q.name, id, ErrNotFound)
		}
		return b.Put(u64(id), data)
	})
}

// Delete removes items; ids already gone are ignored.
func (q *Queue) Delete(ids ...uint64) error {
	var removed int64
	err := q.s.db.Update(func(tx *bolt.Tx) error {
		removed = 0
		b := q.bucket(tx)
		for _, id := range ids {
			k := u64(id)
			if b.Get(k) == nil {
				continue
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete from queue %s: %w", q.name, err)
	}
	q.n.Add(-removed)
	return nil
}

// Len is the number of items queued.
func (q *Queue) Len() int { return int(q.n.Load()) }

// KV is a durable key-value bucket for small state other packages keep
// (open fallback incidents, the last reconcile).
type KV struct {
	s    *Store
	name []byte
}

// KV opens (creating) the named bucket.
func (s *Store) KV(name string) (*KV, error) {
	if name == "" {
		return nil, errors.New("kv name must not be empty")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.Bucket(bucketKV).CreateBucketIfNotExists([]byte(name))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", name, err)
	}
	return &KV{s: s, name: []byte(name)}, nil
}

func (kv *KV) bucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bucketKV).Bucket(kv.name) }

// Put stores val under key, durably.
func (kv *KV) Put(key string, val []byte) error {
	return kv.s.db.Update(func(tx *bolt.Tx) error { return kv.bucket(tx).Put([]byte(key), val) })
}

// Get returns a copy of the value under key.
func (kv *KV) Get(key string) (val []byte, ok bool, err error) {
	err = kv.s.db.View(func(tx *bolt.Tx) error {
		if v := kv.bucket(tx).Get([]byte(key)); v != nil {
			val, ok = append([]byte(nil), v...), true
		}
		return nil
	})
	return val, ok, err
}

// Delete removes key; a missing key is not an error.
func (kv *KV) Delete(key string) error {
	return kv.s.db.Update(func(tx *bolt.Tx) error { return kv.bucket(tx).Delete([]byte(key)) })
}

// Scan calls fn for each entry in key order until fn returns false; val is
// only valid during the call.
func (kv *KV) Scan(fn func(key string, val []byte) bool) error {
	return kv.s.db.View(func(tx *bolt.Tx) error {
		c := kv.bucket(tx).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !fn(string(k), v) {
				return nil
			}
		}
		return nil
	})
}
