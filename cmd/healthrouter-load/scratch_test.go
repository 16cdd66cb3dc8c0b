package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFSName(t *testing.T) {
	cases := []struct {
		magic  int64
		name   string
		memory bool
	}{
		{0xEF53, "ext4", false},
		{0x58465342, "xfs", false},
		{0x01021994, "tmpfs", true},
		{0x858458F6, "ramfs", true},
		{0x794C7630, "overlayfs", false},
		{0x1234, "0x1234", false},
	}
	for _, tc := range cases {
		if got := fsName(tc.magic); got != tc.name || memoryBacked(got) != tc.memory {
			t.Errorf("fsName(%#x) = %q (memory %v), want %q (memory %v)", tc.magic, got, memoryBacked(got), tc.name, tc.memory)
		}
	}
}

func TestScratchDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "deeper", "scratch")
	sc, cleanup, err := scratchDir(root, "bench-", false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(sc.dir) || !strings.HasPrefix(filepath.Base(sc.dir), "bench-") || filepath.Dir(sc.dir) != root {
		t.Fatalf("scratch dir %q under %q", sc.dir, root)
	}
	want, err := fsType(root)
	if err != nil || sc.fsType != want || sc.fsType == "" {
		t.Fatalf("scratch fs %q, statfs says %q (%v)", sc.fsType, want, err)
	}
	settings := map[string]any{}
	sc.settings(settings)
	if settings["scratch_dir"] != sc.dir || settings["scratch_fs"] != sc.fsType {
		t.Fatalf("settings %v", settings)
	}
	cleanup()
	if _, err := os.Stat(sc.dir); !os.IsNotExist(err) {
		t.Fatalf("cleanup left %s: %v", sc.dir, err)
	}
	if _, err := fsType(filepath.Join(root, "missing")); err == nil {
		t.Fatal("statfs of a missing path succeeded")
	}
	// A root that cannot be made is an error, not a fallback elsewhere.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := scratchDir(filepath.Join(file, "scratch"), "bench-", false, io.Discard); err == nil {
		t.Fatal("scratch under a file accepted")
	}
}

// TestScratchWarnsOnMemory: a tmpfs scratch directory is used but named
// for what it is.
func TestScratchWarnsOnMemory(t *testing.T) {
	const shm = "/dev/shm"
	if typ, err := fsType(shm); err != nil || !memoryBacked(typ) {
		t.Skipf("%s is not memory-backed here (%q, %v)", shm, typ, err)
	}
	var warn strings.Builder
	_, cleanup, err := scratchDir(filepath.Join(shm, "healthrouter-load-test"), "bench-", false, &warn)
	if err != nil {
		t.Skipf("cannot write %s: %v", shm, err)
	}
	cleanup()
	os.Remove(filepath.Join(shm, "healthrouter-load-test"))
	if !strings.Contains(warn.String(), "fsync costs nothing") {
		t.Fatalf("no warning: %q", warn.String())
	}
}
