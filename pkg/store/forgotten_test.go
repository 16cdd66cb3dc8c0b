package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// TestForgottenHostsSurviveReopenBounded: forgotten hosts are kept with
// the latest time each was forgotten, across a reopen, and past the bound
// the ones forgotten longest ago go first.
func TestForgottenHostsSurviveReopenBounded(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ForgottenMax: 20}
	s := openTest(t, dir, opts)
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	forgot := func(region, host string, minute int) health.ForgottenHost {
		return health.ForgottenHost{Region: region, Host: host, At: base.Add(time.Duration(minute) * time.Minute)}
	}
	// web-0 is forgotten twice (it came back in between): the later time
	// stands. The same name in another region is another host.
	first := []health.ForgottenHost{forgot("eu", "web-0", 0), forgot("us", "web-0", 1)}
	if err := s.Commit(ctx, &Commit{ForgottenHosts: first}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, &Commit{ForgottenHosts: []health.ForgottenHost{forgot("eu", "web-0", 30)}}); err != nil {
		t.Fatal(err)
	}
	var many []health.ForgottenHost
	for i := 1; i <= 20; i++ {
		many = append(many, forgot("eu", "web-"+string(rune('a'+i)), 1+i))
	}
	if err := s.Commit(ctx, &Commit{ForgottenHosts: many}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, opts)
	defer s.Close()
	got, err := s.ForgottenHosts()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b health.ForgottenHost) int { return a.At.Compare(b.At) })
	// 22 hosts against a bound of 20 (+5%): the two oldest went, us/web-0
	// (minute 1) and eu/web-b (minute 2); eu/web-0 stays at minute 30.
	if len(got) != 20 || got[0] != forgot("eu", "web-c", 3) || got[len(got)-1] != forgot("eu", "web-0", 30) {
		t.Fatalf("%d forgotten hosts, oldest %+v, newest %+v", len(got), got[0], got[len(got)-1])
	}
	for _, f := range got {
		if f.Region == "us" || f.Host == "web-b" {
			t.Fatalf("%s/%s kept past the bound", f.Region, f.Host)
		}
	}
}

// TestForgottenHostsFromOlderOrDamagedFiles: a store written before
// forgotten hosts were kept opens with none and keeps them from then on;
// an unreadable record is skipped, not fatal.
func TestForgottenHostsFromOlderOrDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite := func(f func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(f)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rewrite(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketForgotten) })

	s = openTest(t, dir, Options{})
	if got, err := s.ForgottenHosts(); err != nil || len(got) != 0 {
		t.Fatalf("older file: %+v, %v", got, err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	kept := health.ForgottenHost{Region: "eu", Host: "web-1", At: at}
	if err := s.Commit(context.Background(), &Commit{ForgottenHosts: []health.ForgottenHost{kept}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rewrite(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketForgotten)
		if err := b.Put([]byte("no-separator"), u64(1)); err != nil {
			return err
		}
		return b.Put([]byte("eu\x00web-2"), []byte("short"))
	})

	s = openTest(t, dir, Options{})
	defer s.Close()
	got, err := s.ForgottenHosts()
	if err != nil || !slices.Equal(got, []health.ForgottenHost{kept}) {
		t.Fatalf("damaged file: %+v, %v; want only %+v", got, err, kept)
	}
}
