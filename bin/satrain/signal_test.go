package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/trainer"
)

// Reliability tests of the binary (issue 8): signals in each phase, SIGKILL
// at random moments. Helpers are prefixed "rl".

// rlArgs is a fast selection-aware command line (tiny model, CPU, one
// thread) that validates and checkpoints every iteration.
func rlArgs(saveDir string, iterations int, extra ...string) []string {
	args := []string{"selection-aware", "--data", cliData, "--preset", "tiny", "--device", "cpu", "--threads", "1",
		"--save-dir", saveDir, "--metrics-addr", "", "--progress=false", "--use-amp=false",
		"--sample-size", "64", "--top-k", "8", "--train-epochs-per-iteration", "1", "--batch-size", "4",
		"--inference-batch-size", "16", "--val-size", "32", "--val-every", "1", "--checkpoint-every", "1",
		"--lr", "1e-3", "--num-iterations", fmt.Sprint(iterations)}
	return append(args, extra...)
}

// rlProc is a running satrain whose stdout and stderr are collected, with a
// channel of stderr lines.
type rlProc struct {
	cmd            *exec.Cmd
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	lines          chan string
	done           chan struct{}
	code           int
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func rlStart(t *testing.T, env []string, args ...string) *rlProc {
	t.Helper()
	return rlStartProgram(t, cliBin, env, args...)
}

// rlStartProgram is rlStart for another program (a launcher of satrain).
func rlStartProgram(t *testing.T, prog string, env []string, args ...string) *rlProc {
	t.Helper()
	p := &rlProc{lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(prog, args...)
	p.cmd.Env = cliEnv(env...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	pr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(pr, lockedWriter{&p.mu, &p.stderr}))
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, pr)
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = 128 + int(ws.Signal())
			}
		default:
			p.code = -1
		}
		close(p.lines)
		close(p.done)
	}()
	return p
}

// wait waits for the exit (killing the process after limit) and returns its code.
func (p *rlProc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("satrain did not exit within %v\nstdout:\n%s\nstderr:\n%s", limit, p.out(), p.errOut())
	}
	return p.code
}

func (p *rlProc) out() string    { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *rlProc) errOut() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// rlLoad loads a checkpoint and returns its meta.
func rlLoad(path string) (checkpoint.Meta, error) {
	l, err := checkpoint.Load(path)
	if err != nil {
		return checkpoint.Meta{}, err
	}
	defer l.Free()
	return l.Meta, nil
}

func rlTemps(dir string) []string {
	var out []string
	for _, pat := range checkpoint.TempPatterns {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		out = append(out, m...)
	}
	return out
}

// resumeHint is the command the interrupt message gives: the program as it
// was run, the subcommand and --resume-from, every other setting coming from
// the checkpoint.
var resumeHint = regexp.MustCompile(`continue with: ((\S+) selection-aware --resume-from (\S+))\n`)

// TestSignalEachPhase sends SIGINT and SIGTERM at the start of each phase of
// iteration 2 (inference, training, validation, checkpoint; the run pauses
// there through SATRAIN_TEST_PAUSE_PHASE until the signal lands). Every time:
// exit code 130, a checkpoint of the expected iteration that loads, no
// temporary file left, and the command the message gives, pasted as it is,
// runs to the end.
func TestSignalEachPhase(t *testing.T) {
	cases := []struct {
		phase string
		file  string
		iter  int
		say   string
	}{
		{trainer.PhaseInference, "checkpoint_iter_1.pt", 1, "interrupted during inference of iteration 2"},
		{trainer.PhaseTraining, "checkpoint_interrupted_iter_2.pt", 1, "interrupted during training of iteration 2"},
		{trainer.PhaseValidation, "checkpoint_iter_2.pt", 2, "interrupted during validation of iteration 2"},
		// The checkpoint being written completes; iteration 3 stops at once.
		{trainer.PhaseCheckpoint, "checkpoint_iter_2.pt", 2, "interrupted during inference of iteration 3; iteration 2 is the last completed"},
	}
	for _, c := range cases {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(c.phase+"/"+sig.String(), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				p := rlStart(t, []string{"SATRAIN_TEST_PAUSE_PHASE=" + c.phase + "@2"}, rlArgs(dir, 3)...)
				marker := fmt.Sprintf("SATRAIN_TEST_PAUSE phase=%s iteration=2", c.phase)
				seen := false
				timeout := time.After(60 * time.Second)
			wait:
				for !seen {
					select {
					case l, ok := <-p.lines:
						if !ok {
							break wait
						}
						if l == marker {
							seen = true
							if err := p.cmd.Process.Signal(sig); err != nil {
								t.Fatal(err)
							}
						}
					case <-timeout:
						break wait
					}
				}
				if !seen {
					p.cmd.Process.Kill()
					<-p.done
					t.Fatalf("no marker %q\nstdout:\n%s\nstderr:\n%s", marker, p.out(), p.errOut())
				}
				code := p.wait(t, 60*time.Second)
				stderr := p.errOut()
				if code != 130 {
					t.Fatalf("exit code %d, want 130\nstdout:\n%s\nstderr:\n%s", code, p.out(), stderr)
				}
				want := filepath.Join(dir, c.file)
				m := resumeHint.FindStringSubmatch(stderr)
				if m == nil || m[2] != cliBin || m[3] != want || !strings.Contains(stderr, c.say) || !strings.Contains(stderr, "received: finishing the current step") {
					t.Fatalf("stderr should say %q and give %s ... --resume-from %s:\n%s", c.say, cliBin, want, stderr)
				}
				// The resume message is said once (stdout used to repeat it).
				if n := strings.Count(p.out()+stderr, "continue with: "); n != 1 {
					t.Errorf("the resume message appears %d times on stdout and stderr, want once\nstdout:\n%s\nstderr:\n%s", n, p.out(), stderr)
				}
				meta, err := rlLoad(want)
				if err != nil {
					t.Fatalf("checkpoint after %s: %v", sig, err)
				}
				if meta.Iteration != c.iter {
					t.Errorf("checkpoint iteration %d, want %d", meta.Iteration, c.iter)
				}
				if tmp := rlTemps(dir); len(tmp) > 0 {
					t.Errorf("temporary files left: %v", tmp)
				}
				r := rlStart(t, nil, strings.Fields(m[1])[1:]...)
				if code := r.wait(t, 120*time.Second); code != 0 {
					t.Fatalf("resume exited %d\nstdout:\n%s\nstderr:\n%s", code, r.out(), r.errOut())
				}
				out := r.out()
				if !strings.Contains(out, fmt.Sprintf("Resuming selection_aware run from %s: continuing after iteration %d", want, c.iter)) ||
					!strings.Contains(out, "Done: 3 iterations") || strings.Contains(out, fmt.Sprintf("Iteration %d/3", c.iter)) {
					t.Errorf("resume output:\n%s", out)
				}
				if meta, err := rlLoad(filepath.Join(dir, "checkpoint_iter_3.pt")); err != nil || meta.Iteration != 3 {
					t.Errorf("final checkpoint: iteration %d, %v", meta.Iteration, err)
				}
			})
		}
	}
}

// TestDoubleSignalIsOne: GNU `timeout -s INT` signals satrain and then its
// process group, so one request arrives as two SIGINTs microseconds apart.
// Two SIGINTs 1 ms apart, in training, must still write the interrupted
// checkpoint and exit 130 (the second used to stop without a checkpoint).
func TestDoubleSignalIsOne(t *testing.T) {
	dir := t.TempDir()
	p := rlStart(t, []string{"SATRAIN_TEST_PAUSE_PHASE=" + trainer.PhaseTraining + "@2"}, rlArgs(dir, 3)...)
	marker := fmt.Sprintf("SATRAIN_TEST_PAUSE phase=%s iteration=2", trainer.PhaseTraining)
	seen := false
	timeout := time.After(60 * time.Second)
	for !seen {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("exited before %q\nstderr:\n%s", marker, p.errOut())
			}
			seen = l == marker
		case <-timeout:
			p.cmd.Process.Kill()
			<-p.done
			t.Fatalf("no marker %q\nstderr:\n%s", marker, p.errOut())
		}
	}
	for i := 0; i < 2; i++ {
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	code := p.wait(t, 60*time.Second)
	stderr := p.errOut()
	if code != 130 || strings.Contains(stderr, "stopping without a checkpoint") {
		t.Fatalf("exit code %d, want 130 with a checkpoint\nstdout:\n%s\nstderr:\n%s", code, p.out(), stderr)
	}
	meta, err := rlLoad(filepath.Join(dir, "checkpoint_interrupted_iter_2.pt"))
	if err != nil {
		t.Fatalf("no checkpoint after two SIGINTs 1 ms apart: %v\nstderr:\n%s", err, stderr)
	}
	if meta.Iteration != 1 {
		t.Errorf("checkpoint iteration %d, want 1 (the last completed)", meta.Iteration)
	}
}
