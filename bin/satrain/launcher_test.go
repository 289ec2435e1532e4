package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRankStopsWhenLauncherDies (issue 23, item 7): a rank in torchrun's
// environment (TORCHELASTIC_*) whose launcher is SIGKILLed stops at the next
// step boundary, says why, and leaves a checkpoint that loads, instead of
// training on as an orphan. The launcher here is a shell that starts the
// rank and waits for it, as torchrun's agent does.
func TestRankStopsWhenLauncherDies(t *testing.T) {
	dir := t.TempDir()
	args := append([]string{"-c", `"$@" & echo "rank_pid=$!" >&2; wait`, "sh", cliBin}, rlArgs(dir, 5000)...)
	p := rlStartProgram(t, "/bin/sh", []string{"TORCHELASTIC_RUN_ID=launcher-test", "TORCHELASTIC_RESTART_COUNT=0"}, args...)
	rank := 0
	for l := range p.lines {
		if v, ok := strings.CutPrefix(l, "rank_pid="); ok {
			rank, _ = strconv.Atoi(v)
			break
		}
	}
	if rank == 0 {
		t.Fatalf("no rank pid\n%s", p.errOut())
	}
	defer syscall.Kill(rank, syscall.SIGKILL)
	rlWaitFor(p, "Iteration 2/", 2*time.Minute)
	if err := p.cmd.Process.Kill(); err != nil { // the launcher, not the rank
		t.Fatal(err)
	}
	// The rank holds stdout and stderr: they close when it exits.
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the rank still runs 3 minutes after its launcher was killed\nstderr:\n%s", p.errOut())
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rank)); err == nil && !strings.Contains(string(b), ") Z ") {
		// Gone, or a zombie its new parent has yet to reap: exited either way.
		t.Fatalf("rank %d still running: %s\n%s", rank, b, p.errOut())
	}
	if strings.Contains(p.out(), "Done: ") {
		t.Fatalf("the orphaned rank trained to the end:\n%s", p.out()[max(0, len(p.out())-400):])
	}
	stderr := p.errOut()
	m := resumeHint.FindStringSubmatch(stderr)
	if !strings.Contains(stderr, fmt.Sprintf("the launcher (pid %d) is gone: stopping this rank", p.cmd.Process.Pid)) || m == nil {
		t.Fatalf("stderr should say the launcher is gone and give the resume command:\n%s", stderr)
	}
	if _, err := rlLoad(m[3]); err != nil {
		t.Errorf("the checkpoint it names: %v", err)
	}
	if !strings.HasPrefix(m[3], dir+string(filepath.Separator)) {
		t.Errorf("checkpoint %s outside the save dir %s", m[3], dir)
	}
	if _, err := os.Stat(filepath.Join(dir, ".satrain.lock")); !os.IsNotExist(err) {
		t.Errorf("the stopped rank left its save-dir lock: %v", err)
	}
}
