package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSaveDirLockCLI (issue 23, item 6): the same --resume-from auto command
// started beside a live run is refused in one line naming the holder and
// touches nothing of it; once the holder is killed (-9: it cleans nothing
// up), the command takes the folder over and continues the run.
func TestSaveDirLockCLI(t *testing.T) {
	dir := t.TempDir()
	args := rlArgs(dir, 3, "--resume-from", "auto")
	first := rlStart(t, []string{"SATRAIN_TEST_PAUSE_PHASE=training"}, args...)
	marker := "SATRAIN_TEST_PAUSE phase=training iteration=2"
	seen := false
	for l := range first.lines {
		if l == marker {
			seen = true
			break
		}
	}
	if !seen {
		t.Fatalf("no marker %q\nstdout:\n%s\nstderr:\n%s", marker, first.out(), first.errOut())
	}
	// Iteration 1's checkpoint is written in the background: wait for it
	// (the run pauses 10 s at each training phase meanwhile).
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "checkpoint_iter_1.pt")); err == nil {
			break
		}
	}
	// Stopped, it holds the folder for as long as the test needs, as a
	// live run would.
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() {
		first.cmd.Process.Kill()
		<-first.done
	}()
	log := filepath.Join(dir, "metrics.jsonl")
	before, err := os.ReadFile(log)
	if err != nil || len(before) == 0 {
		t.Fatalf("the first run's metrics log after iteration 1: %q, %v", before, err)
	}

	r := runCLI(t, nil, args...)
	host, _ := os.Hostname()
	checkOneLineError(t, r, fmt.Sprintf("--save-dir %s is in use by a live run (pid %d on %s, started ", dir, first.cmd.Process.Pid, host))
	if after, _ := os.ReadFile(log); string(after) != string(before) {
		t.Errorf("the refused run changed the live run's metrics log:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint_iter_1.pt")); err != nil {
		t.Errorf("the live run's checkpoint: %v", err)
	}

	// Killed, the run leaves its lock file; nothing holds it any more.
	first.cmd.Process.Kill()
	<-first.done
	if _, err := os.Stat(filepath.Join(dir, ".satrain.lock")); err != nil {
		t.Fatalf("a killed run's lock file: %v", err)
	}
	second := rlStart(t, nil, args...)
	if code := second.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("after the holder was killed: exit %d\nstdout:\n%s\nstderr:\n%s", code, second.out(), second.errOut())
	}
	if !strings.Contains(second.out(), "checkpoint_iter_1.pt") {
		t.Errorf("the run after the kill should continue from checkpoint_iter_1.pt:\n%s", second.out())
	}
	if _, err := os.Stat(filepath.Join(dir, ".satrain.lock")); !os.IsNotExist(err) {
		t.Errorf("lock file after a clean finish: %v", err)
	}
}
