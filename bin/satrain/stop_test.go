package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/satrain/satrain/trainer"
)

// TestStopBeforeAnyStep (issue 23, item 8): a stop request before the first
// training step ends the process at once with nothing written, whether the
// run waits for a peer that never comes (rank 0 of WORLD_SIZE=2, with a
// rendezvous timeout far beyond the test's wait) or is scoring its first
// sample.
func TestStopBeforeAnyStep(t *testing.T) {
	dtNeedGloo(t)
	t.Run("rendezvous", func(t *testing.T) {
		dir := t.TempDir()
		port := dtPort(t)
		p := rlStart(t, dtEnv(0, port), rlArgs(dir, 3, "--dist-timeout", "30m")...)
		defer p.cmd.Process.Kill()
		// Rank 0 hosts the store: once it listens, the rank is waiting for
		// its peer (and past installing its signal handling).
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rank 0 never listened on %s\n%s", addr, p.errOut())
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 2*time.Minute); code != 130 {
			t.Fatalf("exit %d, want 130\n%s", code, p.errOut())
		}
		if !strings.Contains(p.errOut(), "terminated received before any training step: nothing to save; stopping now") {
			t.Errorf("stderr:\n%s", p.errOut())
		}
	})
	t.Run("first scoring pass", func(t *testing.T) {
		dir := t.TempDir()
		p := rlStart(t, []string{"SATRAIN_TEST_PAUSE_PHASE=inference@1"}, rlArgs(dir, 3)...)
		dtWaitLine(t, p, "SATRAIN_TEST_PAUSE phase=inference iteration=1")
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 2*time.Minute); code != 130 {
			t.Fatalf("exit %d, want 130\n%s", code, p.errOut())
		}
		if !strings.Contains(p.errOut(), "interrupt received before any training step: nothing to save; stopping now") {
			t.Errorf("stderr:\n%s", p.errOut())
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*.pt")); len(m) != 0 {
			t.Errorf("checkpoints written with nothing trained: %v", m)
		}
	})
}

// TestStopWithNothingNew (issue 23, item 8): interrupted while scoring right
// after a checkpoint, a run writes no checkpoint (nothing new to save) and
// names the one it can continue from, which is left as it was.
func TestStopWithNothingNew(t *testing.T) {
	dir := t.TempDir()
	p := rlStart(t, []string{"SATRAIN_TEST_PAUSE_PHASE=" + trainer.PhaseInference + "@2"}, rlArgs(dir, 3)...)
	dtWaitLine(t, p, "SATRAIN_TEST_PAUSE phase=inference iteration=2")
	ckpt := filepath.Join(dir, "checkpoint_iter_1.pt")
	var before os.FileInfo
	for deadline := time.Now().Add(time.Minute); before == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		before, _ = os.Stat(ckpt) // written in the background
	}
	if before == nil {
		t.Fatalf("no %s", ckpt)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 2*time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, p.errOut())
	}
	stderr := p.errOut()
	m := resumeHint.FindStringSubmatch(stderr)
	if m == nil || m[3] != ckpt || !strings.Contains(stderr, "interrupted during inference of iteration 2; iteration 1 is the last completed; nothing new since "+ckpt) {
		t.Fatalf("stderr should say nothing is new since %s and continue from it:\n%s", ckpt, stderr)
	}
	after, err := os.Stat(ckpt)
	if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Errorf("%s rewritten: %v -> %v (%v)", ckpt, before.ModTime(), after, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "checkpoint_*")); len(left) != 1 {
		t.Errorf("checkpoints %v, want only %s", left, ckpt)
	}
}

// TestSlowModelWarnedAtStart (issue 23, item 8): a model whose scoring pass
// is estimated at hours on the chosen device (56.6M parameters, seq_len 200,
// 10,000 sequences on one CPU thread: about 1.3 h) is warned at start,
// naming a preset that fits; a stop request in its first pass exits at once.
func TestSlowModelWarnedAtStart(t *testing.T) {
	dir := t.TempDir()
	args := rlArgs(dir, 3, "--hidden-dim", "768", "--num-layers", "8", "--num-heads", "8", "--seq-len", "200",
		"--sample-size", "10000", "--inference-batch-size", "8")
	p := rlStart(t, nil, args...)
	defer p.cmd.Process.Kill()
	dtWaitLine(t, p, "is estimated at")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 2*time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, p.errOut())
	}
	stderr := p.errOut()
	for _, want := range []string{"level=WARN", "on cpu is estimated at 1.3 h for a scoring pass of 10,000 sequences",
		"--preset medium (", "nothing to save; stopping now"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
