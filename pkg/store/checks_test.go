package store

import (
	"context"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestLoadChecksSkipsUnreadableRecords: a check record damaged on disk is
// logged and skipped, and every other check still loads, so one bad record
// never keeps the service down. The skipped count is what the tracker
// exports as healthrouter_state_records_skipped{reason="unreadable"}.
func TestLoadChecksSkipsUnreadableRecords(t *testing.T) {
	stored := []health.CheckState{
		state("eu", "web-1", "disk", health.Critical),
		state("eu", "web-2", "disk", health.Passing),
		state("eu", "web-3", "disk", health.Warning),
	}
	stored[1].Output, stored[1].Team = "sda 40%", "storage"
	damaged := appendCheckKey(nil, stored[1].Key)

	tests := []struct {
		name    string
		corrupt func(b *bolt.Bucket) error
		want    []string // hosts loaded
	}{
		{"value of an unknown version", func(b *bolt.Bucket) error {
			v := slices.Clone(b.Get(damaged))
			v[0] = 99
			return b.Put(damaged, v)
		}, []string{"web-1", "web-3"}},
		{"value cut short", func(b *bolt.Bucket) error {
			v := b.Get(damaged)
			return b.Put(damaged, slices.Clone(v[:len(v)-3]))
		}, []string{"web-1", "web-3"}},
		{"empty value", func(b *bolt.Bucket) error {
			return b.Put(damaged, []byte{})
		}, []string{"web-1", "web-3"}},
		{"a key without separators", func(b *bolt.Bucket) error {
			return b.Put([]byte("eu-web-4-disk"), slices.Clone(b.Get(damaged)))
		}, []string{"web-1", "web-2", "web-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{})
			if err := s.Commit(context.Background(), &Commit{States: stored}); err != nil {
				t.Fatalf("commit: %v", err)
			}
			path := s.Path()
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			corruptChecks(t, path, tt.corrupt)

			core, logs := observer.New(zapcore.ErrorLevel)
			s = openTest(t, dir, Options{Logger: zap.New(core)})
			defer s.Close()
			var hosts []string
			loaded, skipped, err := s.LoadChecks(func(st *health.CheckState) error {
				hosts = append(hosts, st.Host)
				return nil
			})
			if err != nil {
				t.Fatalf("LoadChecks: %v, want the damaged record skipped", err)
			}
			if loaded != len(tt.want) || skipped != 1 || !slices.Equal(hosts, tt.want) {
				t.Errorf("loaded %d %v, skipped %d; want %d %v and 1 skipped", loaded, hosts, skipped, len(tt.want), tt.want)
			}
			if n := logs.FilterMessage("skipping unreadable check record").Len(); n != 1 {
				t.Errorf("%d unreadable records logged, want 1", n)
			}
		})
	}
}

// corruptChecks changes the checks bucket of the closed store at path
// directly, as a damaged disk or a bug of an older version would.
func corruptChecks(t *testing.T, path string, corrupt func(b *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("open %s with bbolt: %v", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return corrupt(tx.Bucket(bucketChecks)) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("corrupt %s: %v", path, err)
	}
}
