package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/satrain/satrain/compare"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/report"
	"github.com/urfave/cli/v2"
)

// `satrain compare --jobs N` trains up to N runs at once, each in a child
// process of this program (os.Executable) given the user's compare flags
// plus the hidden --child-run ARM:SEED: processes, not goroutines, because
// libtorch's RNG and thread pools are global to a process. The child builds
// the same compare.Config from the same flags and calls compare.RunOne; it
// writes JSON lines of compare.RunProgress on its stdout (the parent's
// pipe) and its stderr goes to <run>/child.log.

// childRunFlag names the run a child process trains.
const childRunFlag = "child-run"

// childGrace is how long a child may take, after the SIGINT that stops it,
// to stop at a step boundary before it is killed.
const childGrace = 30 * time.Second

// childRuns counts the child processes in flight: while any is, a signal
// stops the parent through its context, which stops the children
// (nothingToSave).
var childRuns atomic.Int32

// checkJobsThreads refuses --jobs x --threads above the CPUs this process
// may use (threads 0 is libtorch's default: every CPU): the runs' thread
// pools would wait on each other.
func checkJobsThreads(jobs, threads, cpus int) error {
	if jobs <= 1 {
		return nil
	}
	per, what := threads, fmt.Sprintf("--threads %d", threads)
	if threads == 0 {
		per, what = cpus, fmt.Sprintf("--threads 0 (all %d CPUs)", cpus)
	}
	if jobs*per <= cpus {
		return nil
	}
	fix := fmt.Sprintf("give --threads %d", max(1, cpus/jobs))
	if jobs > cpus {
		fix = fmt.Sprintf("give --threads 1 and at most --jobs %d", cpus)
	}
	return fmt.Errorf("--jobs %d x %s is %d threads, more than the %d CPUs this process may use (their runs would wait on each other): %s",
		jobs, what, jobs*per, cpus, fix)
}

// childArgs is the compare command line of a child process: every compare
// flag that is set (on the command line or by its SATRAIN_* variable), with
// its value, less --child-run, which the launcher adds.
func childArgs(c *cli.Context) ([]string, error) {
	args := []string{c.Command.Name}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if name == childRunFlag || !c.IsSet(name) {
			continue
		}
		v, err := flagValue(c, f)
		if err != nil {
			return nil, fmt.Errorf("compare --jobs: cannot pass --%s to a child process: %w", name, err)
		}
		args = append(args, "--"+name+"="+v)
	}
	return args, nil
}

// flagValue is the value of f in c as its command-line text.
func flagValue(c *cli.Context, f cli.Flag) (string, error) {
	name := f.Names()[0]
	switch f.(type) {
	case *cli.StringFlag:
		return c.String(name), nil
	case *cli.IntFlag:
		return strconv.Itoa(c.Int(name)), nil
	case *cli.Int64Flag:
		return strconv.FormatInt(c.Int64(name), 10), nil
	case *cli.Float64Flag:
		return strconv.FormatFloat(c.Float64(name), 'g', -1, 64), nil
	case *cli.BoolFlag:
		return strconv.FormatBool(c.Bool(name)), nil
	case *cli.DurationFlag:
		return c.Duration(name).String(), nil
	}
	return "", fmt.Errorf("flag type %T", f)
}

// studySteering are the compare flags that steer the study without
// deciding any run's numbers: a --resume may change them.
var studySteering = map[string]bool{"out": true, "arms": true, "seeds": true, "jobs": true, "resume": true,
	"progress": true, "metrics-addr": true, "loader-mode": true, "dist-timeout": true, childRunFlag: true}

// studySettings is compare.Config.Settings: every other compare flag's
// value, given or default, so that a --resume with other values is refused.
func studySettings(c *cli.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if studySteering[name] {
			continue
		}
		v, err := flagValue(c, f)
		if err != nil {
			return nil, fmt.Errorf("compare: --%s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// childLauncher is compare.Config.Launch: it runs one arm x seed in a child
// process of this program.
type childLauncher struct {
	exe  string   // this program
	args []string // childArgs
}

func (l childLauncher) launch(ctx context.Context, spec compare.RunSpec, progress func(compare.RunProgress)) error {
	logPath := filepath.Join(spec.Dir, "child.log")
	logF, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logF.Close()
	cmd := exec.CommandContext(ctx, l.exe, append(l.args, fmt.Sprintf("--%s=%s:%d", childRunFlag, spec.Arm, spec.Seed))...)
	cmd.Stderr = logF
	// Stopped as on Ctrl-C: the child finishes its step and exits; killed
	// if it is still there childGrace later. A parent that dies (even by
	// SIGKILL) stops its children with SIGTERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = childGrace
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	childRuns.Add(1)
	defer childRuns.Add(-1)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l.exe, err)
	}
	readChildProgress(out, logF, progress)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("child process %v (log %s); its last lines:\n%s", err, logPath, logTail(logPath, 5))
	}
	return nil
}

// readChildProgress reads a child's stdout until it closes: each JSON line
// of compare.RunProgress goes to progress, anything else to log.
func readChildProgress(r io.Reader, log io.Writer, progress func(compare.RunProgress)) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var p compare.RunProgress
			if json.Unmarshal(line, &p) == nil && p.Phase != "" {
				progress(p)
			} else {
				log.Write(line)
			}
		}
		if err != nil {
			return
		}
	}
}

// logTail is the last n non-empty lines of the file at path, indented.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, "  "+l)
		}
	}
	if len(lines) == 0 {
		return "  (empty)"
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// childProgress is a child's side of the pipe: it writes a
// compare.RunProgress JSON line on w as training goes (at most every
// childProgressEvery, and at each pass's end) and when evaluation starts.
type childProgress struct {
	w       io.Writer
	mu      sync.Mutex
	base    int64 // sequence-passes of the training passes before the current one
	cur     int64 // of the current training pass
	lastOut time.Time
}

const childProgressEvery = 250 * time.Millisecond

// Report implements event.Reporter: training passes count the
// sequence-passes trained (the budget's unit).
func (p *childProgress) Report(e event.Event) {
	pr, ok := e.(event.Progress)
	if !ok || pr.Phase != event.PhaseTraining {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Done == 0 {
		p.base, p.cur = p.base+p.cur, 0
		return
	}
	p.cur = int64(pr.Done)
	if now := time.Now(); pr.Done >= pr.Total || now.Sub(p.lastOut) >= childProgressEvery {
		p.lastOut = now
		p.send(compare.RunProgress{Phase: compare.PhaseTraining, Trained: p.base + p.cur})
	}
}

// evaluating says the run has trained and scores checkpoints.
func (p *childProgress) evaluating(checkpoints int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.send(compare.RunProgress{Phase: compare.PhaseEvaluating, Trained: p.base + p.cur, Checkpoints: checkpoints})
}

func (p *childProgress) send(rp compare.RunProgress) {
	b, _ := json.Marshal(rp)
	p.w.Write(append(b, '\n')) // a parent that is gone stops us by signal
}

// runCompareChild is `compare --child-run ARM:SEED`: the one run of cfg's
// study that a parent `compare --jobs N` launched. Its console goes to
// stderr (the run's child.log), its progress to stdout (the parent's pipe).
func runCompareChild(ctx context.Context, cfg compare.Config, run string) error {
	arm, s, ok := strings.Cut(run, ":")
	seed, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("--%s %q: want ARM:SEED (it is how compare --jobs starts its runs)", childRunFlag, run)
	}
	console := compareConsole{os.Stderr}
	prog := &childProgress{w: os.Stdout}
	cfg.OnEvent = func(e compare.Event) {
		console.event(e)
		if ev, ok := e.(compare.RunEvaluating); ok {
			prog.evaluating(ev.Checkpoints)
		}
	}
	cfg.TrainProgress = func(compare.RunTraining) event.Reporter { return prog }
	cfg.EvalProgress = nil
	cfg.Jobs, cfg.Launch, cfg.Resume = 0, nil, false
	_, err = compare.RunOne(ctx, cfg, arm, seed)
	return err
}

// compareStudyDisplay shows a compare --jobs study: the console line of
// each event and, under --progress, one study-wide display
// (report.StudyProgress) from StudyStarted on, above which the lines print.
type compareStudyDisplay struct {
	console  *compareConsole
	progress bool
	study    *report.StudyProgress
}

func (d *compareStudyDisplay) event(e compare.Event) {
	if s, ok := e.(compare.StudyStarted); ok && d.progress && d.study == nil {
		d.study = report.NewStudyProgress(report.ProgressOptions{}, len(s.Arms)*s.Seeds, s.Budget)
		d.console.w = d.study.ConsoleWriter(d.console.w)
	}
	d.console.event(e)
	if d.study == nil {
		return
	}
	switch e := e.(type) {
	case compare.RunReused:
		d.study.Reused(e.Run-1, e.Record.SequencesTrained)
	case compare.RunTraining:
		d.study.Started(e.Run - 1)
	case compare.RunProgressed:
		d.study.Trained(e.Run-1, e.Trained)
	case compare.RunFinished:
		d.study.Ended(e.Run-1, true, e.Record.SequencesTrained)
	case compare.RunFailed:
		d.study.Ended(e.Run-1, false, 0)
	}
}

// close ends the study display.
func (d *compareStudyDisplay) close() {
	if d.study != nil {
		d.study.Close()
		d.study = nil
	}
}
