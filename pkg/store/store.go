// Package store is healthrouter's durable state: one bbolt file in the data
// directory holding every check's state, the transition journal, the
// dead-letter store, maintenance windows and the outbox queues.
//
// Store decides what is on disk and when: writes from the ingest path go
// through Submit, which orders them, groups concurrent ones into a single
// fsynced transaction and tells each caller when its data is durable, so an
// acknowledged request is never lost and the disk is synced once per group,
// not once per request.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// FileName is the store's file inside the data directory.
const FileName = "healthrouter.db"

// formatVersion is bumped when the on-disk layout changes incompatibly.
const formatVersion = 1

var (
	bucketChecks   = []byte("checks")
	bucketJournal  = []byte("journal")
	bucketRejected = []byte("rejected")
	bucketWindows  = []byte("windows")
	bucketMeta     = []byte("meta")
	bucketQueues   = []byte("queues")
	bucketKV       = []byte("kv")
	// bucketForgotten came after format 1; opening an older file adds it.
	bucketForgotten = []byte("forgotten")

	metaVersion = []byte("format_version")
)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *zap.Logger
	// JournalMax and RejectedMax bound those buckets; the oldest entries
	// go first. Zero means the defaults (100,000 and 10,000).
	JournalMax  int
	RejectedMax int
	// ForgottenMax bounds the forgotten hosts remembered; zero means
	// health.ForgottenHostsKept, the engine's own bound.
	ForgottenMax int
	// OpenTimeout bounds waiting for the file lock another process holds.
	OpenTimeout time.Duration
	// ReadOnly opens an existing file under a shared lock and changes
	// nothing in it, for tools that read a stopped server's state or a
	// copy of it; writes fail.
	ReadOnly bool
}

// Store is an open bbolt file. Its methods are safe for concurrent use.
type Store struct {
	db     *bolt.DB
	log    *zap.Logger
	opts   Options
	commit *committer

	// failWrite, when set by tests, makes group commits fail, standing in
	// for a full or broken disk.
	failWrite atomic.Pointer[error]

	// transitionsWritten and failedWrites count, for metrics, where it
	// happens: each journal entry once it is on disk, each group write
	// that failed (and is retried), whoever waited on them.
	transitionsWritten, failedWrites atomic.Uint64

	mu          sync.Mutex // guards the counters and queues below
	queues      map[string]*Queue
	journalN    int
	rejectedN   int
	rejectedSeq uint64
	forgottenN  int
}

// ErrLocked means another process holds the data directory.
var ErrLocked = errors.New("store is locked by another process")

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.JournalMax <= 0 {
		opts.JournalMax = 100000
	}
	if opts.RejectedMax <= 0 {
		opts.RejectedMax = 10000
	}
	if opts.ForgottenMax <= 0 {
		opts.ForgottenMax = health.ForgottenHostsKept
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 2 * time.Second
	}
	path := filepath.Join(dir, FileName)
	if err := checkFile(path); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open store: %w", err) // names the path
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	const initialMmapSize = 1 << 30 // a million checks and their journal take about 300 MiB
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.OpenTimeout,
		NoFreelistSync: true, // rebuilt on open; saves a write per commit
		FreelistType:   bolt.FreelistMapType,
		// Address space, not memory: while the file fits, growing it does
		// not remap, and a remap would copy every node of the write in
		// progress and wait for open read transactions.
		InitialMmapSize: initialMmapSize,
		ReadOnly:        opts.ReadOnly,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return nil, fmt.Errorf("open store: %w", err) // names the path
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, log: opts.Logger, opts: opts}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.commit = newCommitter(s)
	return s, nil
}

func (s *Store) init() error {
	if s.opts.ReadOnly {
		return s.db.View(s.check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketChecks, bucketJournal, bucketRejected, bucketWindows, bucketMeta, bucketQueues, bucketKV, bucketForgotten} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		if meta := tx.Bucket(bucketMeta); meta.Get(metaVersion) == nil {
			if err := meta.Put(metaVersion, u64(formatVersion)); err != nil {
				return err
			}
		}
		return s.check(tx)
	})
}

// check verifies the file's format and counts what the bounds keep.
func (s *Store) check(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketChecks, bucketJournal, bucketRejected, bucketWindows, bucketMeta, bucketQueues, bucketKV, bucketForgotten} {
		if tx.Bucket(b) == nil {
			return fmt.Errorf("no %s bucket: not a store of this version (serve upgrades it on open)", b)
		}
	}
	v := tx.Bucket(bucketMeta).Get(metaVersion)
	if v == nil {
		return errors.New("not a healthrouter store: no format version")
	}
	if len(v) != 8 {
		// Written as 8 bytes since format 1: anything else is damage, and
		// reading it as a number would panic or invent a version.
		return fmt.Errorf("format version is %d bytes (%x), want 8: %w", len(v), v, ErrDamaged)
	}
	if got := binary.BigEndian.Uint64(v); got != formatVersion {
		return fmt.Errorf("store format %d, this build reads %d", got, formatVersion)
	}
	s.journalN = tx.Bucket(bucketJournal).Stats().KeyN
	s.forgottenN = tx.Bucket(bucketForgotten).Stats().KeyN
	rej := tx.Bucket(bucketRejected)
	s.rejectedN = rej.Stats().KeyN
	if k, _ := rej.Cursor().Last(); k != nil {
		s.rejectedSeq = binary.BigEndian.Uint64(k)
	}
	return nil
}

// Close waits for pending commits and closes the file. Commits that could
// not be written (a full or failing disk) make it return an error.
func (s *Store) Close() error {
	return errors.Join(s.commit.close(), s.db.Close())
}

// Path is the file's location.
func (s *Store) Path() string { return s.db.Path() }

// Size is the file's size in bytes, for metrics.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}
