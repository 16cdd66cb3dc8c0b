package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Forgotten hosts are kept as region NUL host -> when (unix ns, big-endian).

// putForgotten records the forgotten hosts of a group in tx and returns
// the bucket's new size, trimmed to its bound.
func (s *Store) putForgotten(tx *bolt.Tx, batch []pendingCommit, n int) (int, error) {
	if !slices.ContainsFunc(batch, func(pc pendingCommit) bool { return len(pc.ForgottenHosts) > 0 }) {
		return n, nil // the usual group: nothing forgotten, no bucket to open
	}
	b := tx.Bucket(bucketForgotten)
	for _, pc := range batch {
		for i := range pc.ForgottenHosts {
			f := &pc.ForgottenHosts[i]
			k := appendHostKey(make([]byte, 0, len(f.Region)+1+len(f.Host)), f.Region, f.Host)
			if b.Get(k) == nil {
				n++
			}
			if err := b.Put(k, u64(uint64(f.At.UnixNano()))); err != nil {
				return n, fmt.Errorf("put forgotten host %s/%s: %w", f.Region, f.Host, err)
			}
		}
	}
	keep := s.opts.ForgottenMax
	if n <= keep+keep/20 {
		return n, nil
	}
	// Keyed by name, so the oldest are found by sorting on the value.
	type entry struct {
		key []byte
		at  uint64
	}
	all := make([]entry, 0, n)
	if err := b.ForEach(func(k, v []byte) error {
		at := uint64(0) // an unreadable record goes first
		if len(v) == 8 {
			at = binary.BigEndian.Uint64(v)
		}
		all = append(all, entry{append([]byte(nil), k...), at})
		return nil
	}); err != nil {
		return n, err
	}
	slices.SortFunc(all, func(a, b entry) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return bytes.Compare(a.key, b.key)
	})
	for _, e := range all[:len(all)-keep] {
		if err := b.Delete(e.key); err != nil {
			return n, fmt.Errorf("trim forgotten hosts: %w", err)
		}
	}
	return keep, nil
}

// ForgottenHosts returns every forgotten host remembered. A record that
// cannot be read is skipped and logged: it can only let a late result
// bring its host back.
func (s *Store) ForgottenHosts() ([]health.ForgottenHost, error) {
	var out []health.ForgottenHost
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketForgotten).ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i <= 0 || i == len(k)-1 || len(v) != 8 {
				s.log.Warn("skipping unreadable forgotten-host record", zap.ByteString("key", k))
				return nil
			}
			out = append(out, health.ForgottenHost{
				Region: string(k[:i]),
				Host:   string(k[i+1:]),
				At:     time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load forgotten hosts: %w", err)
	}
	return out, nil
}
