package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveDirLock (issue 23, item 6): a held save dir is refused with the
// holder named; a lock file a killed run left (no flock on it: the kernel
// dropped it) is taken over; Release leaves no file and frees the folder.
func TestSaveDirLock(t *testing.T) {
	dir := t.TempDir()
	a, err := LockSaveDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to an open file: a second open, even in this
	// process, is a second run.
	_, err = LockSaveDir(dir)
	var le *SaveDirLockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrSaveDirLocked) {
		t.Fatalf("second lock: %v, want a *SaveDirLockedError", err)
	}
	host, _ := os.Hostname()
	if le.Holder.PID != os.Getpid() || le.Holder.Host != host || le.Holder.Started.IsZero() {
		t.Errorf("holder %+v, want pid %d on %s with a start time", le.Holder, os.Getpid(), host)
	}
	if msg := err.Error(); !strings.Contains(msg, dir+" is in use by a live run (pid ") || strings.Contains(msg, "\n") {
		t.Errorf("message %q", msg)
	}
	a.Release()
	if _, err := os.Stat(filepath.Join(dir, SaveDirLockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file after Release: %v", err)
	}
	// A killed run's lock file: its line names a process, nothing holds it.
	stale := "pid=999999 host=gone started=2020-01-02T03:04:05Z\n"
	if err := os.WriteFile(filepath.Join(dir, SaveDirLockFile), []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LockSaveDir(dir)
	if err != nil {
		t.Fatalf("a stale lock file should be taken over: %v", err)
	}
	defer b.Release()
	got, _ := os.ReadFile(filepath.Join(dir, SaveDirLockFile))
	if h := readLockHolderString(string(got)); h.PID != os.Getpid() {
		t.Errorf("lock file after take-over: %q, want this process's line", got)
	}
}

func readLockHolderString(s string) LockHolder {
	f, err := os.CreateTemp("", "lockline")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.WriteString(s)
	return readLockHolder(f)
}
