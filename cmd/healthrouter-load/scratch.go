package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// defaultScratch keeps the receivers' data directories beside the binaries,
// on the checkout's disk: /tmp is often tmpfs, where fsync costs nothing
// and the durability figures would flatter the server.
const defaultScratch = "bin/scratch"

func registerScratch(fs *flag.FlagSet, root *string) {
	fs.StringVar(root, "scratch", defaultScratch, "`directory` under which each run makes its data directories and logs (use a real disk: fsync cost is part of the figures)")
}

// scratch is a run's temporary directory and what backs it.
type scratch struct {
	dir    string
	fsType string
}

// settings records the directory and its filesystem in a report.
func (s scratch) settings(m map[string]any) {
	m["scratch_dir"], m["scratch_fs"] = s.dir, s.fsType
}

// scratchDir makes the temporary directory for a run's data and logs under
// root; the cleanup removes it unless keep asks to leave it for
// inspection. A memory-backed root is used, with a warning.
func scratchDir(root, prefix string, keep bool, stderr io.Writer) (scratch, func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return scratch{}, nil, fmt.Errorf("scratch directory: %w", err)
	}
	dir, err := os.MkdirTemp(root, prefix)
	if err != nil {
		return scratch{}, nil, fmt.Errorf("scratch directory: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	s := scratch{dir: dir}
	if s.fsType, err = fsType(dir); err != nil {
		s.fsType = "unknown"
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	if memoryBacked(s.fsType) {
		fmt.Fprintf(stderr, "warning: %s is on %s: fsync costs nothing there, so durability figures flatter the server; use --scratch on a disk\n", dir, s.fsType)
	}
	if keep {
		fmt.Fprintln(stderr, "keeping data and logs in", dir)
		return s, func() {}, nil
	}
	return s, func() { os.RemoveAll(dir) }, nil
}

// fsType names the filesystem holding path, from statfs's magic number.
func fsType(path string) (string, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", path, err)
	}
	return fsName(int64(st.Type)), nil
}

// fsMagic are the statfs f_type values of the filesystems a benchmark is
// likely to land on (linux/magic.h).
var fsMagic = map[int64]string{
	0xEF53:     "ext4", // also ext2 and ext3
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x2FC12FC1: "zfs",
	0xF2F52010: "f2fs",
	0x01021994: "tmpfs",
	0x858458F6: "ramfs",
	0x794C7630: "overlayfs",
	0x6969:     "nfs",
	0x65735546: "fuse",
	0x01021997: "9p",
}

func fsName(magic int64) string {
	if name, ok := fsMagic[magic]; ok {
		return name
	}
	return fmt.Sprintf("0x%x", magic)
}

// memoryBacked reports whether a filesystem keeps its data in memory.
func memoryBacked(fsType string) bool {
	return fsType == "tmpfs" || fsType == "ramfs"
}
