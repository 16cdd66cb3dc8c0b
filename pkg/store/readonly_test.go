package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// A read-only open reads what a server left, changes not a byte of the
// file, refuses writes, and waits its turn while a server holds the file.
func TestReadOnlyOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	c := &Commit{Transitions: []health.Transition{{Seq: 1, Key: health.Key{Region: "r", Host: "h", Check: "c"}, To: "hard"}}}
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{ReadOnly: true, OpenTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-only open while a server holds the file: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stat, _ := os.Stat(path)

	ro := openTest(t, dir, Options{ReadOnly: true})
	tr, err := ro.Transitions(0, 10)
	if err != nil || len(tr) != 1 || tr[0].Seq != 1 {
		t.Errorf("transitions %v, %v: want the one committed", tr, err)
	}
	if tr, err := ro.Transitions(0, 0); err != nil || len(tr) != 0 {
		t.Errorf("Transitions with limit 0 = %v, %v: want none", tr, err)
	}
	if err := ro.Commit(context.Background(), c); err == nil {
		t.Error("a commit through a read-only store succeeded")
	}
	// The refused commit is left unwritten, and Close says so.
	if err := ro.Close(); err == nil || !strings.Contains(err.Error(), "1 commits not written") {
		t.Errorf("Close after a refused commit: %v", err)
	}
	after, _ := os.ReadFile(path)
	stat2, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !stat.ModTime().Equal(stat2.ModTime()) {
		t.Error("a read-only open changed the file")
	}

	if _, err := Open(t.TempDir(), Options{ReadOnly: true}); err == nil {
		t.Error("read-only open of a directory without a store succeeded")
	}
}
