// Package fulldisk makes an open file's writes fail as on a full disk, for
// tests of what a process does when its disk fills up: the file's
// descriptor is pointed at /dev/full, where every write fails with ENOSPC,
// while memory maps of the file keep serving reads (or at another device,
// such as /dev/null, whose fsync fails). Linux only.
package fulldisk

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Disk is a file whose writes fail until Restore.
type Disk struct {
	t        testing.TB
	fd, file int // the process's descriptor on the file, and a copy of it
	restored bool
}

// Fill makes every write through this process's descriptor on path fail
// with ENOSPC until Restore (or the test's end). It skips the test where
// /dev/full or /proc/self/fd is missing.
func Fill(t testing.TB, path string) *Disk {
	t.Helper()
	return Redirect(t, path, "/dev/full")
}

// Redirect points this process's descriptor on path at the device target
// until Restore (or the test's end): /dev/full fails writes, /dev/null
// takes them but fails fsync. It skips the test where target or
// /proc/self/fd is missing.
func Redirect(t testing.TB, path, target string) *Disk {
	t.Helper()
	fd := descriptor(t, path)
	saved, err := syscall.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		syscall.Close(saved)
		t.Skipf("no %s: %v", target, err)
	}
	defer dev.Close()
	if err := syscall.Dup3(int(dev.Fd()), fd, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	d := &Disk{t: t, fd: fd, file: saved}
	t.Cleanup(d.Restore)
	return d
}

// Restore points the descriptor back at the file.
func (d *Disk) Restore() {
	if d.restored {
		return
	}
	d.restored = true
	if err := syscall.Dup3(d.file, d.fd, syscall.O_CLOEXEC); err != nil {
		d.t.Fatal(err)
	}
	syscall.Close(d.file)
}

// descriptor finds the process's descriptor open on path.
func descriptor(t testing.TB, path string) int {
	t.Helper()
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != want {
			continue
		}
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil {
			return fd
		}
	}
	t.Fatalf("no descriptor open on %s", want)
	return -1
}
