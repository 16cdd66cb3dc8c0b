package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// A damaged file is refused with ErrDamaged and a message saying what is
// wrong, never a crash (bbolt faults on a truncated file) and never an
// empty store in its place (bbolt initialises an empty file).
func TestOpenRefusesDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	for i := 0; i < 2000; i++ {
		c := &Commit{States: []health.CheckState{state("eu", fmt.Sprintf("host-%d", i), "disk", health.Critical)}}
		if err := s.Commit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	meta, ok := newestMeta(bytes.NewReader(good), int64(len(good)))
	if !ok {
		t.Fatal("the intact file's meta pages do not read")
	}
	// bbolt grows the file ahead of use: only the pages below the
	// high-water mark hold data.
	used := int(meta.pgid) * int(meta.pageSize)
	if used > len(good) || used < 16<<10 {
		t.Fatalf("high-water mark %d bytes of a %d-byte file", used, len(good))
	}
	damage := func(b []byte) []byte {
		out := append([]byte(nil), b...)
		for _, off := range []int{16, 4096 + 16} { // both meta pages' magic
			out[off] ^= 0xff
		}
		return out
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "is empty"},
		{"truncated to 8 KiB", good[:8<<10], "truncated"},
		{"one used page short", good[:used-int(meta.pageSize)], "truncated"},
		{"both meta pages damaged", damage(good), "neither of its two meta pages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, FileName), tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				st, err := Open(d, Options{ReadOnly: ro})
				if err == nil {
					st.Close()
				}
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("read-only %v: Open = %v, want ErrDamaged saying %q", ro, err, tt.want)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(d, FileName)); len(got) != len(tt.data) {
				t.Errorf("the damaged file was changed: %d bytes, was %d", len(got), len(tt.data))
			}
		})
	}
	// The intact file still opens, with its state.
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, FileName), good, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, d, Options{})
	defer s.Close()
	if loaded, _, err := s.LoadChecks(func(*health.CheckState) error { return nil }); err != nil || loaded != 2000 {
		t.Errorf("intact copy: %d checks, %v; want 2000", loaded, err)
	}
}

// TestOpenRefusesBadFormatVersion: a format version that is not 8 bytes is
// damage, refused with ErrDamaged and its length, never a panic; one of
// another value is a different format, refused as such.
func TestOpenRefusesBadFormatVersion(t *testing.T) {
	tests := []struct {
		name    string
		value   []byte
		damaged bool
		want    string
	}{
		{"empty", []byte{}, true, "format version is 0 bytes"},
		{"short", []byte{0, 1}, true, "format version is 2 bytes (0001), want 8"},
		{"long", make([]byte, 9), true, "format version is 9 bytes"},
		{"another format", u64(formatVersion + 1), false, fmt.Sprintf("store format %d, this build reads %d", formatVersion+1, formatVersion)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := openTest(t, dir, Options{}).Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaVersion, tt.value) })
			if cerr := db.Close(); err != nil || cerr != nil {
				t.Fatal(err, cerr)
			}
			for _, ro := range []bool{false, true} {
				s, err := Open(dir, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
				}
				if err == nil || errors.Is(err, ErrDamaged) != tt.damaged || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("read-only %v: Open = %v, want an error saying %q (ErrDamaged: %v)", ro, err, tt.want, tt.damaged)
				}
			}
		})
	}
}
