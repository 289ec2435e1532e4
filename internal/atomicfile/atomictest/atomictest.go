// Package atomictest helps tests check that an output is replaced
// atomically: it makes writes fail part-way (RLIMIT_FSIZE, the unprivileged
// stand-in for a full disk) and checks that the previous file survived
// byte-identical with no temporary file left beside it.
package atomictest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// LimitFileSize caps the size of any file this process writes at n bytes
// until the returned function is called (also registered with t.Cleanup).
// A write past the cap fails with EFBIG (Go ignores SIGXFSZ). The limit is
// process-wide: tests using it must not run in parallel with writers.
func LimitFileSize(t testing.TB, n uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if old.Max < n { // RLIM_INFINITY is the largest value
		t.Skipf("RLIMIT_FSIZE hard limit %d below %d", old.Max, n)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: old.Max}); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Errorf("restore RLIMIT_FSIZE: %v", err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// CheckIntact fails the test unless path still holds exactly old and the
// folder holds no temporary file (any name containing ".tmp").
func CheckIntact(t testing.TB, path string, old []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("previous %s lost: %v", path, err)
	} else if !bytes.Equal(got, old) {
		t.Errorf("previous %s changed: %d bytes, was %d", path, len(got), len(old))
	}
	CheckNoTemp(t, filepath.Dir(path))
}

// CheckNoTemp fails the test if dir holds a temporary file (".tmp" in the
// name).
func CheckNoTemp(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("list %s: %v", dir, err)
		return
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left in %s: %s", dir, e.Name())
		}
	}
}
