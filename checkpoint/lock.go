package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SaveDirLockFile is the file in a save dir whose flock marks the live run
// writing there. The kernel drops the flock when its holder dies however it
// dies (kill -9 included), so a lock a killed run left behind is simply
// taken over; the file's one line names the holder for the refusal message.
const SaveDirLockFile = ".satrain.lock"

// LockHolder is the run that holds a save dir, as its lock file names it.
type LockHolder struct {
	PID     int
	Host    string
	Started time.Time
}

func (h LockHolder) String() string {
	if h.PID == 0 {
		return "a process that has not yet recorded itself"
	}
	return fmt.Sprintf("pid %d on %s, started %s", h.PID, h.Host, h.Started.Format(time.RFC3339))
}

// SaveDirLockedError is returned when another live process holds the save
// dir's lock: two runs in one folder would resume from each other's
// checkpoints and rewrite each other's metrics.jsonl.
type SaveDirLockedError struct {
	Dir    string
	Holder LockHolder
}

func (e *SaveDirLockedError) Error() string {
	return fmt.Sprintf("%s is in use by a live run (%s); wait for it, stop it, or choose another folder", e.Dir, e.Holder)
}

// ErrSaveDirLocked matches a *SaveDirLockedError with errors.Is.
var ErrSaveDirLocked = errors.New("save dir locked by a live run")

func (e *SaveDirLockedError) Is(target error) bool { return target == ErrSaveDirLocked }

// SaveDirLock is a held save-dir lock; Release gives it up.
type SaveDirLock struct {
	f    *os.File
	path string
}

// LockSaveDir takes dir's lock for this process, or returns a
// *SaveDirLockedError naming the live holder. dir must exist.
func LockSaveDir(dir string) (*SaveDirLock, error) {
	path := filepath.Join(dir, SaveDirLockFile)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			holder := readLockHolder(f)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &SaveDirLockedError{Dir: dir, Holder: holder}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder unlinks the file on release; a file locked after its
		// unlink is no longer the lock, and another process may have made a
		// new one meanwhile: lock whatever the path names now.
		var fst, pst unix.Stat_t
		if unix.Fstat(int(f.Fd()), &fst) != nil || unix.Stat(path, &pst) != nil || fst.Ino != pst.Ino || fst.Dev != pst.Dev {
			f.Close()
			continue
		}
		host, _ := os.Hostname()
		line := fmt.Sprintf("pid=%d host=%s started=%s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
		if err := f.Truncate(0); err == nil {
			_, err = f.WriteAt([]byte(line), 0)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &SaveDirLock{f: f, path: path}, nil
	}
}

// Release removes the lock file and drops the lock (nil-safe, once). The
// file goes while still locked, so no process can lock it in between.
func (l *SaveDirLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
	l.f = nil
}

// readLockHolder parses the holder's line "pid=N host=H started=T"; fields
// it cannot read stay zero.
func readLockHolder(f *os.File) LockHolder {
	var h LockHolder
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, 0)
	for _, kv := range strings.Fields(string(buf[:n])) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "host":
			h.Host = v
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, v)
		}
	}
	return h
}
