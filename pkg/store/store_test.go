package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/healthrouter/healthrouter/pkg/health"
)

func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// checkCount is the number of checks stored.
func checkCount(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketChecks).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCheckRecordRoundTrip(t *testing.T) {
	cases := []health.CheckState{
		{Key: health.Key{Region: "eu-west", Host: "web-1", Check: "disk"}},
		{
			Key:    health.Key{Region: "us-east", Host: "db-7.us-east.example.com", Check: "lvm_thinpool"},
			Status: health.Critical, Hard: health.Critical, Attempts: 3, Flapping: true, Stale: true,
			FlapHistory: 0x1fffff, FlapCount: 21, Updated: 1764100000123456789, HardSince: -5,
			LastSeen: 1764100000999999999, Severity: health.SeverityError, Team: "storage",
			Interval: 30, EventID: 0xdeadbeefcafef00d, Output: "CRITICAL - thin pool 98% full\nsecond line",
			Labels: []health.Label{{Key: "rack", Value: "r12"}, {Key: "service", Value: ""}},
		},
		{Key: health.Key{Region: "r", Host: "h", Check: "ünïcode ✓"}, Status: health.Unknown, Hard: health.Warning},
	}
	for _, want := range cases {
		t.Run(want.Key.String(), func(t *testing.T) {
			k := appendCheckKey(nil, want.Key)
			v := appendCheck(nil, &want)
			var got health.CheckState
			if err := newDecoder().decode(k, v, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCheckRecordCorrupt(t *testing.T) {
	st := health.CheckState{Key: health.Key{Region: "r", Host: "h", Check: "c"}, Output: "some output", Team: "t"}
	good := appendCheck(nil, &st)
	for name, tc := range map[string]struct{ key, val []byte }{
		"key without separators": {[]byte("rhc"), good},
		"empty value":            {appendCheckKey(nil, st.Key), nil},
		"wrong version":          {appendCheckKey(nil, st.Key), append([]byte{99}, good[1:]...)},
		"truncated strings":      {appendCheckKey(nil, st.Key), good[:len(good)-3]},
	} {
		t.Run(name, func(t *testing.T) {
			var got health.CheckState
			if err := newDecoder().decode(tc.key, tc.val, &got); !errors.Is(err, errCorrupt) {
				t.Fatalf("want errCorrupt, got %v", err)
			}
		})
	}
}

func state(region, host, check string, st health.Status) health.CheckState {
	return health.CheckState{Key: health.Key{Region: region, Host: host, Check: check}, Status: st, Hard: st}
}

func TestCommitsSurviveReopenInOrder(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	ctx := context.Background()

	// Many writers; each waits for its own ticket. Submission order is
	// serialised the way the engine lock serialises it.
	var submitMu sync.Mutex
	var wg sync.WaitGroup
	var seq uint64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				submitMu.Lock()
				seq++
				c := &Commit{
					States:      []health.CheckState{state("r", fmt.Sprintf("h%d", w), "c", health.Status(i%4))},
					Transitions: []health.Transition{{Seq: seq, Key: health.Key{Region: "r", Host: "h", Check: "c"}, To: "hard"}},
				}
				tk := s.Submit(c)
				submitMu.Unlock()
				if err := tk.Wait(ctx); err != nil {
					t.Errorf("wait: %v", err)
				}
			}
		}(w)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Options{})
	defer s.Close()
	got := map[string]health.Status{}
	n, skipped, err := s.LoadChecks(func(st *health.CheckState) error {
		got[st.Host] = st.Status
		return nil
	})
	if err != nil || n != 8 || skipped != 0 {
		t.Fatalf("load: n=%d skipped=%d err=%v", n, skipped, err)
	}
	for h, st := range got {
		if st != health.Status(49%4) { // the last write of each writer wins
			t.Errorf("%s: status %v, want the last written %v", h, st, health.Status(49%4))
		}
	}
	last, err := s.LastSeq()
	if err != nil || last != 400 {
		t.Fatalf("LastSeq = %d, %v; want 400", last, err)
	}
	tr, err := s.Transitions(390, 100)
	if err != nil || len(tr) != 10 || tr[0].Seq != 391 {
		t.Fatalf("Transitions(390) = %d entries (first %+v), %v", len(tr), tr, err)
	}
}

func TestEmptyTicketWaitsForEarlierCommits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	ctx := context.Background()

	// Nothing pending: an empty commit is acknowledged at once.
	if err := s.Submit(&Commit{}).Wait(ctx); err != nil {
		t.Fatalf("empty commit with nothing pending: %v", err)
	}

	diskFull := errors.New("no space left on device")
	s.failWrite.Store(&diskFull)
	first := s.Submit(&Commit{States: []health.CheckState{state("r", "h", "c", health.Critical)}})
	// A later request that only repeated the undurable state.
	repeat := s.Submit(&Commit{})
	if err := first.Wait(ctx); !errors.Is(err, diskFull) {
		t.Fatalf("first: want the write error, got %v", err)
	}
	if err := repeat.Wait(ctx); !errors.Is(err, diskFull) {
		t.Fatalf("empty commit after a failed one must fail too, got %v", err)
	}

	// The disk recovers; the sender's retry (an empty commit now, its
	// events are duplicates) succeeds only once the state is on disk.
	s.failWrite.Store(nil)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Submit(&Commit{}).Wait(wctx); err != nil {
		t.Fatalf("retry after recovery: %v", err)
	}
	n := 0
	if _, _, err := s.LoadChecks(func(*health.CheckState) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("state not on disk after recovery: n=%d err=%v", n, err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	broken := errors.New("broken")
	s.failWrite.Store(&broken)
	defer s.failWrite.Store(nil)
	tk := s.Submit(&Commit{States: []health.CheckState{state("r", "h", "c", health.Critical)}})
	_ = tk.Wait(context.Background()) // first failure
	// Holding bolt's writer lock stalls the retry: it can neither succeed
	// nor fail while the ticket waits, so only the context can end the
	// wait, however late its timer fires on a busy machine.
	stall, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Rollback() // before Close, which waits for the retry
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Submit(&Commit{}).Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded while the disk is broken, got %v", err)
	}
}

func TestJournalAndDeadLettersAreBounded(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{JournalMax: 100, RejectedMax: 20})
	ctx := context.Background()
	for i := 1; i <= 1000; i++ {
		c := &Commit{
			Transitions: []health.Transition{{Seq: uint64(i)}},
			Rejected:    []health.Rejected{{Reason: "missing_field", Index: i}},
		}
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	tr, _ := s.Transitions(0, 10000)
	if len(tr) < 100 || len(tr) > 105 || tr[len(tr)-1].Seq != 1000 {
		t.Fatalf("journal holds %d entries ending %d; want about 100 ending 1000", len(tr), tr[len(tr)-1].Seq)
	}
	rej, _ := s.Rejected(1000)
	if len(rej) < 20 || len(rej) > 21 || rej[0].Index != 1000 || rej[0].Seq != 1000 {
		t.Fatalf("dead letters: %d, newest %+v; want about 20, newest first", len(rej), rej[0])
	}
	s.Close()
	s = openTest(t, dir, Options{JournalMax: 100, RejectedMax: 20})
	defer s.Close()
	if err := s.Commit(ctx, &Commit{Rejected: []health.Rejected{{Reason: "x"}}}); err != nil {
		t.Fatal(err)
	}
	rej, _ = s.Rejected(1)
	if rej[0].Seq != 1001 {
		t.Fatalf("dead-letter sequence restarted: %d", rej[0].Seq)
	}
}

// A single commit holding more entries than a bucket keeps stores its
// newest ones, after the entries already there, and the sequence goes on.
func TestCommitLargerThanTheBound(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{JournalMax: 100, RejectedMax: 20})
	defer s.Close()
	ctx := context.Background()
	if err := s.Commit(ctx, &Commit{Transitions: []health.Transition{{Seq: 1}}, Rejected: []health.Rejected{{Reason: "first"}}}); err != nil {
		t.Fatal(err)
	}
	big := &Commit{}
	for i := 2; i <= 1001; i++ {
		big.Transitions = append(big.Transitions, health.Transition{Seq: uint64(i)})
		big.Rejected = append(big.Rejected, health.Rejected{Reason: "bulk", Index: i})
	}
	if err := s.Commit(ctx, big); err != nil {
		t.Fatal(err)
	}
	// The bound allows 5% over before trimming: the one older entry stays.
	tr, _ := s.Transitions(0, 10000)
	if len(tr) != 101 || tr[0].Seq != 1 || tr[1].Seq != 902 || tr[len(tr)-1].Seq != 1001 {
		t.Fatalf("journal holds %d entries, seq %d, %d..%d; want 1 then the newest 100, 902..1001", len(tr), tr[0].Seq, tr[1].Seq, tr[len(tr)-1].Seq)
	}
	rej, _ := s.Rejected(1000)
	if len(rej) != 21 || rej[0].Index != 1001 || rej[0].Seq != 1001 || rej[19].Seq != 982 || rej[20].Reason != "first" {
		t.Fatalf("dead letters: %d, seq %d..%d; want the newest 20, 1001 down to 982, then the first", len(rej), rej[0].Seq, rej[len(rej)-1].Seq)
	}
	if err := s.Commit(ctx, &Commit{Rejected: []health.Rejected{{Reason: "next"}}}); err != nil {
		t.Fatal(err)
	}
	if rej, _ = s.Rejected(1); rej[0].Seq != 1002 {
		t.Fatalf("dead-letter sequence after a large commit: %d, want 1002", rej[0].Seq)
	}
}

// BenchmarkCommitRefusedBatch commits one request of 100k refused events
// into a full dead-letter store: the bound is kept without deleting from
// the leaf the same transaction fills.
func BenchmarkCommitRefusedBatch(b *testing.B) {
	s := openTest(b, b.TempDir(), Options{RejectedMax: 10000})
	defer s.Close()
	ctx := context.Background()
	c := &Commit{Rejected: make([]health.Rejected, 100000)}
	for i := range c.Rejected {
		c.Rejected[i] = health.Rejected{Reason: "bad_status", Error: "status: unknown value", Event: `{"status":"sideways"}`}
	}
	for b.Loop() {
		if err := s.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeletedOrdering writes commits that put and delete the same checks
// as one group, the way a forgotten host's deletion can share a transaction
// with its earlier checkpoint or its next report, and expects the later
// write to win.
func TestDeletedOrdering(t *testing.T) {
	web1 := health.Key{Region: "eu", Host: "web-1", Check: "disk"}
	other := health.Key{Region: "eu", Host: "web-2", Check: "disk"}
	put := func(k health.Key, st health.Status) health.CheckState {
		return state(k.Region, k.Host, k.Check, st)
	}
	tests := []struct {
		name    string
		commits []*Commit
		want    map[health.Key]health.Status // what is on disk after
	}{
		{
			name: "checkpoint then forget",
			commits: []*Commit{
				{States: []health.CheckState{put(web1, health.Critical), put(other, health.Passing)}},
				{Deleted: []health.Key{web1}},
			},
			want: map[health.Key]health.Status{other: health.Passing},
		},
		{
			name: "forget then report again",
			commits: []*Commit{
				{States: []health.CheckState{put(web1, health.Critical)}},
				{Deleted: []health.Key{web1}},
				{States: []health.CheckState{put(web1, health.Warning)}},
			},
			want: map[health.Key]health.Status{web1: health.Warning},
		},
		{
			name: "deletes apply after the states of their commit",
			commits: []*Commit{
				{States: []health.CheckState{put(web1, health.Critical)}, Deleted: []health.Key{web1}},
			},
			want: map[health.Key]health.Status{},
		},
		{
			name: "forgetting what was never stored",
			commits: []*Commit{
				{Deleted: []health.Key{web1}},
				{States: []health.CheckState{put(other, health.Unknown)}},
			},
			want: map[health.Key]health.Status{other: health.Unknown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The disk refuses writes until every commit is queued, so that
			// they are written together, in one transaction.
			stalled := errors.New("stalled")
			s.failWrite.Store(&stalled)
			for _, c := range tt.commits {
				s.Submit(c)
			}
			s.failWrite.Store(nil)
			for {
				// An attempt begun before the disk recovered may still fail.
				err := s.Submit(&Commit{}).Wait(ctx)
				if err == nil {
					break
				}
				if !errors.Is(err, stalled) {
					t.Fatalf("commit: %v", err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openTest(t, dir, Options{})
			defer s.Close()
			got := map[health.Key]health.Status{}
			if _, _, err := s.LoadChecks(func(st *health.CheckState) error {
				got[st.Key] = st.Status
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("on disk %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWindowCommits: windows are stored and deleted through commits, in
// commit order: the later change to a window wins, within one group
// (commits submitted together) as across groups, and within a commit the
// delete applies after the put. What is stored survives a reopen.
func TestWindowCommits(t *testing.T) {
	until := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	drain := health.Window{ID: "a", Region: "eu", Host: "h1", Until: until, Reason: "drain"}
	upgrade := health.Window{ID: "b", Region: "us", Check: "lvm*", Until: until, Reason: "upgrade"}
	extended := drain
	extended.Until = until.Add(time.Hour)
	tests := []struct {
		name    string
		commits []*Commit
		want    []health.Window
	}{
		{"put", []*Commit{{Windows: []health.Window{drain, upgrade}}}, []health.Window{drain, upgrade}},
		{"put then delete", []*Commit{{Windows: []health.Window{drain, upgrade}}, {DeletedWindows: []string{"a"}}},
			[]health.Window{upgrade}},
		{"deleting a missing window", []*Commit{{DeletedWindows: []string{"missing"}}}, nil},
		{"delete then put again", []*Commit{{Windows: []health.Window{drain}}, {DeletedWindows: []string{"a"}},
			{Windows: []health.Window{extended}}}, []health.Window{extended}},
		{"replace", []*Commit{{Windows: []health.Window{drain}}, {Windows: []health.Window{extended}}},
			[]health.Window{extended}},
		{"put and delete in one commit", []*Commit{{Windows: []health.Window{drain}, DeletedWindows: []string{"a"}}}, nil},
	}
	for _, tt := range tests {
		for _, grouped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/grouped=%v", tt.name, grouped), func(t *testing.T) {
				dir := t.TempDir()
				s := openTest(t, dir, Options{})
				if grouped {
					// Submitted at once, they are likely written in one
					// transaction; the last ticket covers them all.
					var last *Ticket
					for _, c := range tt.commits {
						last = s.Submit(c)
					}
					if err := last.Wait(context.Background()); err != nil {
						t.Fatal(err)
					}
				} else {
					for _, c := range tt.commits {
						if err := s.Commit(context.Background(), c); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openTest(t, dir, Options{})
				defer s.Close()
				got, err := s.Windows()
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("windows %+v, want %+v", got, tt.want)
				}
				for i := range got {
					if got[i].ID != tt.want[i].ID || !got[i].Until.Equal(tt.want[i].Until) || got[i].Check != tt.want[i].Check {
						t.Errorf("window %d = %+v, want %+v", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

func TestQueueAndKVSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	q, err := s.Queue("pagerduty")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := q.Append([]byte("one"), []byte("two"), []byte("three"))
	if err != nil || len(ids) != 3 || !(ids[0] < ids[1] && ids[1] < ids[2]) {
		t.Fatalf("append ids %v, %v", ids, err)
	}
	if err := q.Update(ids[1], []byte("TWO")); err != nil {
		t.Fatal(err)
	}
	if err := q.Update(999, []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing item: %v", err)
	}
	if err := q.Delete(ids[0], 12345); err != nil {
		t.Fatal(err)
	}
	kv, _ := s.KV("fallback")
	if err := kv.Put("alert/1", []byte("open")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTest(t, dir, Options{})
	defer s.Close()
	q, _ = s.Queue("pagerduty")
	if q.Len() != 2 {
		t.Fatalf("Len after reopen = %d, want 2", q.Len())
	}
	var got []string
	_ = q.Scan(func(id uint64, data []byte) bool { got = append(got, string(data)); return true })
	if fmt.Sprint(got) != "[TWO three]" {
		t.Fatalf("queue after reopen = %v", got)
	}
	next, _ := q.Append([]byte("four"))
	if next[0] <= ids[2] {
		t.Fatalf("ids must keep increasing across restarts: %d after %d", next[0], ids[2])
	}
	kv, _ = s.KV("fallback")
	v, ok, err := kv.Get("alert/1")
	if err != nil || !ok || string(v) != "open" {
		t.Fatalf("kv get = %q %v %v", v, ok, err)
	}
	if _, ok, _ := kv.Get("missing"); ok {
		t.Fatal("missing key found")
	}
	if err := kv.Delete("alert/1"); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = kv.Scan(func(string, []byte) bool { n++; return true })
	if n != 0 {
		t.Fatalf("kv not empty after delete: %d", n)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	defer s.Close()
	if _, err := Open(dir, Options{OpenTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: want ErrLocked, got %v", err)
	}
}

func TestLargeCommitAndDelete(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	var states []health.CheckState
	for i := 0; i < 1000; i++ {
		st := state("r", fmt.Sprintf("h%03d", 999-i), "c", health.Passing)
		st.LastSeen = int64(i)
		states = append(states, st)
	}
	// A newer state for the same key later in the commit wins.
	newer := states[500]
	newer.Status = health.Critical
	states = append(states, newer)
	if err := s.Commit(context.Background(), &Commit{States: states}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), &Commit{Deleted: []health.Key{states[0].Key, states[1].Key}}); err != nil {
		t.Fatal(err)
	}
	if n := checkCount(t, s); n != 998 {
		t.Fatalf("%d checks stored, want 998", n)
	}
	prev := ""
	_, _, err := s.LoadChecks(func(st *health.CheckState) error {
		if st.Host <= prev {
			return fmt.Errorf("not in key order: %s after %s", st.Host, prev)
		}
		prev = st.Host
		if st.Host == newer.Host && st.Status != health.Critical {
			return fmt.Errorf("%s: the older state won", st.Host)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkLoadChecks1M(b *testing.B) {
	dir := b.TempDir()
	s := openTest(b, dir, Options{})
	const n = 1000000
	batch := make([]health.CheckState, 0, 100000)
	for i := 0; i < n; i++ {
		st := state(fmt.Sprintf("region-%02d", i%10), fmt.Sprintf("host-%06d", i/10), fmt.Sprintf("check_%02d", i%10), health.Passing)
		st.LastSeen, st.Updated, st.FlapCount, st.Interval = int64(i), int64(i), 21, 30
		batch = append(batch, st)
		if len(batch) == cap(batch) {
			if err := s.Commit(context.Background(), &Commit{States: batch}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loaded, _, err := s.LoadChecks(func(*health.CheckState) error { return nil })
		if err != nil || loaded != n {
			b.Fatalf("loaded %d, %v", loaded, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/1M-checks")
	s.Close()
}

// BenchmarkCommit measures one small commit end to end, fsync included:
// the floor of ingest latency for a request that changes state.
func BenchmarkCommit(b *testing.B) {
	s := openTest(b, b.TempDir(), Options{})
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c := &Commit{States: []health.CheckState{state("r", "h", fmt.Sprint(i%100), health.Status(i%4))}}
		if err := s.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitParallel shows group commit: concurrent requests share
// fsyncs.
func BenchmarkCommitParallel(b *testing.B) {
	s := openTest(b, b.TempDir(), Options{})
	defer s.Close()
	ctx := context.Background()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			c := &Commit{States: []health.CheckState{state("r", "h", fmt.Sprint(i%100), health.Status(i%4))}}
			if err := s.Commit(ctx, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A shutdown does not sit out a retry's backoff: Close cuts it short, makes
// one last attempt, and gives up when that fails too.
func TestCloseCutsTheRetryBackoffShort(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	diskFull := errors.New("no space left on device")
	s.failWrite.Store(&diskFull)
	s.Submit(&Commit{States: []health.CheckState{state("r", "h", "c", health.Critical)}})
	deadline := time.Now().Add(30 * time.Second)
	for s.failedWrites.Load() < 6 { // the next backoff is 3.2 s
		if time.Now().After(deadline) {
			t.Fatal("the commit was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	err := s.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %s: it waited out the 3.2 s backoff", took)
	}
	if !errors.Is(err, diskFull) {
		t.Fatalf("Close = %v, want the disk's error", err)
	}
	if n := s.failedWrites.Load(); n != 7 {
		t.Errorf("%d failed attempts, want 7: one more after Close, then give up", n)
	}
}

// Closing while the disk refuses every write gives up after a few tries,
// as a shutdown must, and says what it left unwritten.
func TestCloseReportsUnwrittenCommits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	diskFull := errors.New("no space left on device")
	s.failWrite.Store(&diskFull)
	s.Submit(&Commit{States: []health.CheckState{state("r", "h", "c", health.Critical)}})
	err := s.Close()
	if !errors.Is(err, diskFull) || !strings.Contains(err.Error(), "1 commits not written") {
		t.Fatalf("Close = %v, want the unwritten commit and the disk's error", err)
	}
}
