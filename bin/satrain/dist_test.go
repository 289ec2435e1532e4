package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/satrain/satrain/internal/testenv"

	"github.com/satrain/satrain/torch"
)

// Data-parallel runs of the binary (issue 16): two ranks on loopback over
// Gloo, launched by the launcher's variables or by Debian's torchrun.
// Helpers are prefixed "dt".

func dtNeedGloo(t *testing.T) {
	t.Helper()
	if !torch.HasBackend(torch.Gloo) {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: libsatorch built without Gloo (make deps installs libgloo-dev)")
		}
		t.Skip("libsatorch built without Gloo")
	}
}

func dtPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dtEnv is rank r of a world of 2 as torchrun describes it (without its agent store).
func dtEnv(r, port int, extra ...string) []string {
	return append([]string{"RANK=" + strconv.Itoa(r), "WORLD_SIZE=2", "LOCAL_RANK=" + strconv.Itoa(r),
		"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(port)}, extra...)
}

// dtStart starts both ranks with the same arguments.
func dtStart(t *testing.T, args []string, extra ...string) [2]*rlProc {
	t.Helper()
	port := dtPort(t)
	var ps [2]*rlProc
	for r := range ps {
		ps[r] = rlStart(t, dtEnv(r, port, extra...), args...)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			_ = p.cmd.Process.Kill()
		}
	})
	return ps
}

// dtWaitLine waits for a stderr line containing s.
func dtWaitLine(t *testing.T, p *rlProc, s string) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("exited before %q\nstderr:\n%s", s, p.errOut())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within 2m\nstderr:\n%s", s, p.errOut())
		}
	}
}

// dtAllLoad checks that every .pt file in dir loads (checksums included).
func dtAllLoad(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pt"))
	for _, f := range files {
		if _, err := rlLoad(f); err != nil {
			t.Errorf("%s does not load: %v", f, err)
		}
	}
	return files
}

// dtLimit bounds the wait for a rank that must exit on its own: far above
// the pause (10 s) plus --dist-timeout used here, it only turns a hang into
// a failure.
const dtLimit = 3 * time.Minute

// TestDistKilledRankThenResumeAuto: rank 1 is SIGKILLed at the start of
// iteration 2's training; rank 0 exits non-zero with one line naming the
// peer; every checkpoint left loads; the job restarted with --resume-from
// auto finishes the run from iteration 1's checkpoint.
func TestDistKilledRankThenResumeAuto(t *testing.T) {
	dtNeedGloo(t)
	dir := t.TempDir()
	args := rlArgs(dir, 3, "--dist-timeout", "20s", "--resume-from", "auto")
	ps := dtStart(t, args, "SATRAIN_TEST_PAUSE_PHASE=training@2")
	dtWaitLine(t, ps[1], "SATRAIN_TEST_PAUSE phase=training iteration=2")
	if err := ps[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code := ps[0].wait(t, dtLimit)
	ps[1].wait(t, dtLimit)
	msg := strings.TrimSpace(ps[0].errOut())
	msg = strings.TrimSpace(msg[strings.Index(msg, "\n")+1:]) // after the pause marker
	if code != 1 || !strings.Contains(msg, "all-reduce failed on rank 0 of 2: peer rank 1 died or did not answer") || strings.Contains(msg, "\n") {
		t.Fatalf("rank 0 exited %d with %q; want 1 and one line naming peer rank 1", code, msg)
	}
	if files := dtAllLoad(t, dir); len(files) == 0 {
		t.Fatal("no checkpoint left from iteration 1")
	}
	// torchrun --max-restarts starts the same command again.
	ps = dtStart(t, args)
	for r, p := range ps {
		if code := p.wait(t, dtLimit); code != 0 {
			t.Fatalf("restarted rank %d exited %d\n%s", r, code, p.errOut())
		}
	}
	if !strings.Contains(ps[0].out(), "checkpoint_iter_1.pt") {
		t.Errorf("the restarted run did not resume from checkpoint_iter_1.pt:\n%s", ps[0].out())
	}
	m, err := rlLoad(filepath.Join(dir, "checkpoint_iter_3.pt"))
	if err != nil || m.Iteration != 3 {
		t.Fatalf("final checkpoint: %+v, %v", m, err)
	}
	dtAllLoad(t, dir)
}

// TestDistStoppedRank: a rank stopped with SIGSTOP is detected by the
// timeout of the next collective; the other exits non-zero with one line.
func TestDistStoppedRank(t *testing.T) {
	dtNeedGloo(t)
	dir := t.TempDir()
	ps := dtStart(t, rlArgs(dir, 2, "--dist-timeout", "3s"), "SATRAIN_TEST_PAUSE_PHASE=training@2")
	dtWaitLine(t, ps[1], "SATRAIN_TEST_PAUSE phase=training iteration=2")
	if err := ps[1].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	code := ps[0].wait(t, dtLimit)
	_ = ps[1].cmd.Process.Kill()
	ps[1].wait(t, dtLimit)
	msg := strings.TrimSpace(ps[0].errOut())
	msg = strings.TrimSpace(msg[strings.Index(msg, "\n")+1:])
	if code != 1 || !strings.Contains(msg, "peer rank 1 died or did not answer within 3s") || strings.Contains(msg, "\n") {
		t.Fatalf("rank 0 exited %d with %q; want 1 and one line about the 3s timeout", code, msg)
	}
}

// TestDistSignalStopsEveryRank: SIGINT to one rank only stops both at the
// same step boundary: one interrupted checkpoint (rank 0 writes), both exit
// 130, and the run continues from it. Only rank 0 reports the interruption
// and the --resume-from line; rank 1 logs nothing below ERROR. Rank 0's data
// block names the world size.
func TestDistSignalStopsEveryRank(t *testing.T) {
	dtNeedGloo(t)
	dir := t.TempDir()
	ps := dtStart(t, rlArgs(dir, 2), "SATRAIN_TEST_PAUSE_PHASE=training@2")
	dtWaitLine(t, ps[1], "SATRAIN_TEST_PAUSE phase=training iteration=2")
	if err := ps[1].cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for r, p := range ps {
		if code := p.wait(t, dtLimit); code != 130 {
			t.Fatalf("rank %d exited %d, want 130\n%s", r, code, p.errOut())
		}
	}
	if n := strings.Count(ps[0].errOut(), "--resume-from"); n != 1 {
		t.Errorf("rank 0's stderr names --resume-from %d times, want once:\n%s", n, ps[0].errOut())
	}
	for _, not := range []string{"satrain: interrupted", "--resume-from", "level=WARN", "level=INFO"} {
		if strings.Contains(ps[1].errOut(), not) {
			t.Errorf("rank 1's stderr has %q; only rank 0 reports the run:\n%s", not, ps[1].errOut())
		}
	}
	if want := "  Ranks: 2 (gloo), global batch 4 = 2 per rank\n"; !strings.Contains(ps[0].out(), want) {
		t.Errorf("rank 0's data block has no %q:\n%s", want, ps[0].out())
	}
	path := filepath.Join(dir, "checkpoint_interrupted_iter_2.pt")
	m, err := rlLoad(path)
	if err != nil || m.Iteration != 1 {
		t.Fatalf("%s: %+v, %v", path, m, err)
	}
	ps = dtStart(t, rlArgs(dir, 2, "--resume-from", path))
	for r, p := range ps {
		if code := p.wait(t, dtLimit); code != 0 {
			t.Fatalf("resumed rank %d exited %d\n%s", r, code, p.errOut())
		}
	}
}

// TestDistBadSetups: each mistake gives one line and a non-zero exit.
func TestDistBadSetups(t *testing.T) {
	dtNeedGloo(t)
	oneLine := func(t *testing.T, p *rlProc, want string) {
		t.Helper()
		code := p.wait(t, dtLimit)
		msg := strings.TrimSpace(p.errOut())
		if code == 0 || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("exit %d, stderr %q; want non-zero and one line containing %q", code, msg, want)
		}
	}
	t.Run("world size without rank", func(t *testing.T) {
		p := rlStart(t, []string{"WORLD_SIZE=2", "RANK="}, rlArgs(t.TempDir(), 1)...)
		oneLine(t, p, "satrain: launch: WORLD_SIZE=2 is set but RANK is not")
	})
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		p := rlStart(t, dtEnv(0, port), rlArgs(t.TempDir(), 1)...)
		oneLine(t, p, fmt.Sprintf("127.0.0.1:%d: port in use", port))
	})
	t.Run("predict under a launcher", func(t *testing.T) {
		p := rlStart(t, dtEnv(0, dtPort(t)), "predict", "--checkpoint", "x.pt", "--out", filepath.Join(t.TempDir(), "p.csv"))
		oneLine(t, p, "satrain: predict runs in one process; start it without the launcher (WORLD_SIZE=2 is set)")
	})
	t.Run("different flags", func(t *testing.T) {
		dir, port := t.TempDir(), dtPort(t)
		p0 := rlStart(t, dtEnv(0, port), rlArgs(dir, 1, "--dist-timeout", "20s")...)
		p1 := rlStart(t, dtEnv(1, port), rlArgs(dir, 1, "--dist-timeout", "20s", "--lr", "2e-3")...)
		for _, p := range []*rlProc{p0, p1} {
			oneLine(t, p, "rank 1 was started with a different configuration than rank 0")
		}
		// The hashes are 16 hex digits each, and the message names the flag.
		if !regexp.MustCompile(`config hash [0-9a-f]{16} vs [0-9a-f]{16}: --lr 0.002 on rank 1, 0.001 on rank 0\)`).MatchString(p0.errOut()) {
			t.Errorf("rank 0's message does not give both hashes as 16 hex digits and name --lr: %s", p0.errOut())
		}
	})
}

// TestDistTorchrun launches two ranks of the binary with the venv's torchrun
// (-r 1 -t 1: each output line names its rank), whose agent
// hosts the store: the run finishes, only rank 0 prints and writes files.
func TestDistTorchrun(t *testing.T) {
	dtNeedGloo(t)
	torchrun := testenv.Torchrun(t)
	dir := t.TempDir()
	args := append([]string{"--no_python", "--nproc_per_node", "2", "-r", "1", "-t", "1", "--master_addr", "127.0.0.1",
		"--master_port", strconv.Itoa(dtPort(t)), cliBin}, rlArgs(dir, 2)...)
	cmd := exec.Command(torchrun, args...)
	cmd.Env = cliEnv("RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "[default0]:Done: 2 iterations") {
		t.Errorf("rank 0's console lacks the end of the run:\n%s", out)
	}
	if strings.Contains(string(out), "[default1]:") {
		t.Errorf("rank 1 printed to the console:\n%s", out)
	}
	ckpt := filepath.Join(dir, "checkpoint_iter_2.pt")
	if m, err := rlLoad(ckpt); err != nil || m.Iteration != 2 {
		t.Fatalf("checkpoint_iter_2.pt: %+v, %v", m, err)
	}

	// eval shards its scoring; rank 0 prints the same report as one process.
	evalArgs := []string{"eval", "--checkpoint", ckpt, "--data", cliData, "--device", "cpu", "--top-k", "4", "--progress=false"}
	one := rlStart(t, nil, evalArgs...)
	if code := one.wait(t, dtLimit); code != 0 {
		t.Fatalf("eval in one process exited %d\n%s", code, one.errOut())
	}
	ps := dtStart(t, evalArgs)
	for r, p := range ps {
		if code := p.wait(t, dtLimit); code != 0 {
			t.Fatalf("eval rank %d exited %d\n%s", r, code, p.errOut())
		}
	}
	if ps[1].out() != "" {
		t.Errorf("eval rank 1 printed:\n%s", ps[1].out())
	}
	// The table's figures are printed to 4 decimals or fewer; the scores of
	// two ranks differ from one process's by float32 last bits at most.
	report := func(s string) string { return s[strings.Index(s, "\n\n"):] }
	if got, want := report(ps[0].out()), report(one.out()); got != want {
		t.Errorf("eval report on 2 ranks:\n%s\none process:\n%s", got, want)
	}
}
