package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk meta page (format version 2), as far as checkFile reads
// it: a 16-byte page header, then magic, version, page size, flags, the
// root bucket (16 bytes), the freelist page, the high-water page id, the
// transaction id and an FNV-64a checksum of the fields before it. The
// format is fixed by bbolt's file compatibility; the fields are in the
// machine's byte order, little-endian on every platform this builds for.
const (
	boltPageHeader  = 16
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	boltMetaSum     = 56 // bytes the checksum covers
	boltMetaSize    = 64
	boltMinPageSize = 1024
	boltMaxPageSize = 1 << 16
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64 // pages the file holds: it must be at least pgid x pageSize bytes
	txid     uint64
}

// checkFile refuses a store file that bbolt would crash on or silently
// reset. bbolt maps the file and trusts its meta pages: a truncated file
// faults (SIGBUS) on the first read past its end, killing the process with
// a runtime dump, and an empty one is initialised as a new, empty store,
// resolving every alert. A file that does not exist is fine: Open creates it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store: %w", err) // names the path
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open store: %w", err) // names the path
	}
	size := st.Size()
	if size == 0 {
		return fmt.Errorf("%s is empty, not a healthrouter store: %w", path, ErrDamaged)
	}
	meta, ok := newestMeta(f, size)
	if !ok {
		return fmt.Errorf("%s: neither of its two meta pages is valid: %w", path, ErrDamaged)
	}
	if need := int64(meta.pgid) * int64(meta.pageSize); size < need {
		return fmt.Errorf("%s is truncated: %d bytes where its last transaction wrote %d: %w", path, size, need, ErrDamaged)
	}
	return nil
}

// ErrDamaged says the store file cannot be read as it is.
var ErrDamaged = errors.New("the store file is damaged: restore it from a backup, or move it aside to start with empty state")

// newestMeta reads both meta pages and returns the valid one with the
// higher transaction id, as bbolt does on open. The second page sits one
// page size in, and the page size is read from the first; when the first
// is unreadable, the common page sizes are tried.
func newestMeta(r io.ReaderAt, size int64) (boltMeta, bool) {
	first, ok0 := readMeta(r, 0)
	offsets := []int64{4096, 8192, 16384, 65536}
	if ok0 {
		offsets = []int64{int64(first.pageSize)}
	}
	best, found := first, ok0
	for _, off := range offsets {
		if off >= size {
			break
		}
		if m, ok := readMeta(r, off); ok {
			if !found || m.txid > best.txid {
				best, found = m, true
			}
			break
		}
	}
	return best, found
}

func readMeta(r io.ReaderAt, off int64) (boltMeta, bool) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	m := b[boltPageHeader:]
	le := binary.LittleEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:boltMetaSum])
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion || le.Uint64(m[boltMetaSum:]) != h.Sum64() {
		return boltMeta{}, false
	}
	meta := boltMeta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	if meta.pageSize < boltMinPageSize || meta.pageSize > boltMaxPageSize {
		return boltMeta{}, false
	}
	return meta, true
}
