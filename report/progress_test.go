package report

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/satrain/satrain/event"
	"golang.org/x/sys/unix"
)

// clock is a fake time source the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func attr(line []any, key string) any {
	for i := 0; i+1 < len(line); i += 2 {
		if line[i] == key {
			return line[i+1]
		}
	}
	return nil
}

func TestProgressRatesAndETAs(t *testing.T) {
	c := newClock()
	f := false
	p := NewProgress(ProgressOptions{TTY: &f, Now: c.now, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	p.Report(event.RunStarted{Kind: event.KindStandard, Epochs: 4, FirstIteration: 1})
	p.Report(event.IterationStarted{Kind: event.KindStandard, Iteration: 1, Total: 4})
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseTraining, Total: 1000})
	c.add(10 * time.Second)
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseTraining, Done: 500, Total: 1000})
	line := p.st.logLine(c.now())
	// 500 sequences in 10 s: 50 seq/s, 10 s left in the pass. The first
	// epoch is one training pass: 20 s an epoch, 4 epochs, 10 s spent.
	for k, want := range map[string]any{"iteration": "epoch 1/4", "phase": "train", "done": 500, "total": 1000,
		"rate": "50.0 seq/s", "phase_elapsed": "0:10", "phase_eta": "0:10", "run_elapsed": "0:10", "run_eta": "1:10"} {
		if got := attr(line, k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseTraining, Done: 1000, Total: 1000})
	p.Report(event.Trained{Iteration: 1, Loss: 2.5})
	c.add(5 * time.Second)
	p.Report(event.Validated{Iteration: 1, Loss: 2.4, BestLoss: 2.4})
	c.add(10 * time.Second)
	p.Report(event.IterationEnded{Kind: event.KindStandard, Iteration: 1}) // the epoch took 25 s
	p.Report(event.IterationStarted{Kind: event.KindStandard, Iteration: 2, Total: 4})
	c.add(5 * time.Second)
	// 3 epochs left at 25 s, 5 s of the second spent.
	if got := fmtETA(p.st.runETA(c.now())); got != "1:10" {
		t.Errorf("run ETA after one epoch %s, want 1:10", got)
	}
	if got := p.st.lossText(); got != "loss 2.5000  val 2.4000 (best 2.4000)" {
		t.Errorf("losses %q", got)
	}
	// Selection-aware: no run ETA before the first iteration ends.
	p.Report(event.RunStarted{Kind: event.KindSelectionAware, NumIterations: 100, FirstIteration: 1})
	p.Report(event.IterationStarted{Kind: event.KindSelectionAware, Iteration: 1, Total: 100})
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseInference, Total: 3000})
	c.add(2 * time.Second)
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseInference, Done: 1000, Total: 3000})
	line = p.st.logLine(c.now())
	if attr(line, "iteration") != "iteration 1/100" || attr(line, "phase") != "score" || attr(line, "run_eta") != "?" || attr(line, "phase_eta") != "0:04" {
		t.Errorf("selection line %v", line)
	}
}

// syncBuffer is a bytes.Buffer safe for mpb's render goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressOffTerminalLogLines(t *testing.T) {
	c := newClock()
	var logs bytes.Buffer
	f := false
	p := NewProgress(ProgressOptions{Title: "two_stage seed 43 (run 5/12)", TTY: &f, Now: c.now, LogEvery: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p.Report(event.RunStarted{Kind: event.KindSelectionAware, NumIterations: 10, FirstIteration: 1})
	p.Report(event.IterationStarted{Kind: event.KindSelectionAware, Iteration: 3, Total: 10})
	p.Report(event.Progress{Iteration: 3, Phase: event.PhaseInference, Total: 10000})
	for done := 1000; done <= 10000; done += 1000 {
		c.add(2 * time.Second)
		p.Report(event.Progress{Iteration: 3, Phase: event.PhaseInference, Done: done, Total: 10000})
	}
	out := logs.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 20 s for the pass, a line at most every 5 s: at 6, 12 and 18 s.
	if len(lines) != 3 {
		t.Fatalf("%d progress lines, want 3:\n%s", len(lines), out)
	}
	for _, want := range []string{`msg=progress`, `run="two_stage seed 43 (run 5/12)"`, `iteration="iteration 3/10"`, "phase=score", "done=3000",
		"total=10000", `rate="500.0 seq/s"`, "phase_eta=0:14", "run_eta="} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first line lacks %s:\n%s", want, lines[0])
		}
	}
	if p.ConsoleWriter(&logs) != &logs {
		t.Error("off a terminal the console writer should be the console itself")
	}
}

func TestProgressTerminalBars(t *testing.T) {
	var out syncBuffer
	refresh := make(chan any)
	tty := true
	p := NewProgress(ProgressOptions{Out: &out, TTY: &tty, Title: "standard seed 7", refresh: refresh, width: 200})
	p.Report(event.RunStarted{Kind: event.KindStandard, Epochs: 2, FirstIteration: 1})
	console := p.ConsoleWriter(&bytes.Buffer{})
	for ep := 1; ep <= 2; ep++ {
		p.Report(event.IterationStarted{Kind: event.KindStandard, Iteration: ep, Total: 2})
		p.Report(event.Progress{Iteration: ep, Phase: event.PhaseTraining, Total: 5000})
		p.Report(event.Progress{Iteration: ep, Phase: event.PhaseTraining, Done: 2048, Total: 5000})
		// The third send is taken up only after the first redraw has been
		// written (mpb renders on one goroutine).
		refresh <- nil
		refresh <- nil
		refresh <- nil
		p.Report(event.Progress{Iteration: ep, Phase: event.PhaseTraining, Done: 5000, Total: 5000})
		p.Report(event.Trained{Iteration: ep, Loss: 2.5 - 0.1*float64(ep)})
		p.Report(event.Validated{Iteration: ep, Loss: 2.45 - 0.1*float64(ep), BestLoss: 2.45 - 0.1*float64(ep)})
		if _, err := console.Write([]byte("Epoch line from the console\n")); err != nil {
			t.Fatal(err)
		}
		p.Report(event.IterationEnded{Kind: event.KindStandard, Iteration: ep})
	}
	p.Report(event.RunEnded{Kind: event.KindStandard, Iterations: 2, Finished: true})
	got := out.String()
	for _, want := range []string{"standard seed 7 epoch 1/2", "train", "2048/5000", "seq/s", "run ", "epoch 2/2",
		"loss 2.3000", "val 2.2500 (best 2.2500)", "Epoch line from the console"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, got)
		}
	}
	// The display is closed: the console writes directly again.
	var direct bytes.Buffer
	if _, err := p.ConsoleWriter(&direct).Write([]byte("after\n")); err != nil || direct.String() != "after\n" {
		t.Errorf("after the run: %q, %v", direct.String(), err)
	}
}

func TestFormatDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0:00", 61 * time.Second: "1:01", 3723 * time.Second: "1:02:03", -time.Second: "0:00"} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if fmtETA(-1) != "?" {
		t.Error("unknown ETA")
	}
}

func TestStandalonePassLogLine(t *testing.T) {
	c := newClock()
	var logs bytes.Buffer
	f := false
	p := NewProgress(ProgressOptions{TTY: &f, Now: c.now, LogEvery: time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p.Report(event.Progress{Phase: "score", Total: 400})
	c.add(2 * time.Second)
	p.Report(event.Progress{Phase: "score", Done: 100, Total: 400})
	out := logs.String()
	if !strings.Contains(out, `phase=score done=100 total=400 rate="50.0 seq/s"`) || !strings.Contains(out, "phase_eta=0:06") ||
		strings.Contains(out, "iteration=") || strings.Contains(out, "run_eta") {
		t.Errorf("evaluation's line: %s", out)
	}
}

// TestProgressOnePassBar: from the first pass to the end of the run every
// frame shows exactly one pass bar, and its fill agrees with its counts. (A
// pass bar per pass left the last pass's bar, full, drawn with the new pass's
// counts until mpb dropped it, then a frame without a pass bar.)
func TestProgressOnePassBar(t *testing.T) {
	var out syncBuffer
	refresh := make(chan any)
	tty := true
	p := NewProgress(ProgressOptions{Out: &out, TTY: &tty, refresh: refresh, width: 200})
	p.Report(event.RunStarted{Kind: event.KindSelectionAware, NumIterations: 2, FirstIteration: 1})
	p.Report(event.IterationStarted{Kind: event.KindSelectionAware, Iteration: 1, Total: 2})
	passes := []struct {
		phase string
		total int
	}{{event.PhaseInference, 640}, {event.PhaseTraining, 128}, {event.PhaseValidation, 96}}
	for _, ps := range passes {
		p.Report(event.Progress{Iteration: 1, Phase: ps.phase, Total: ps.total})
		refresh <- nil
		refresh <- nil
		p.Report(event.Progress{Iteration: 1, Phase: ps.phase, Done: ps.total / 2, Total: ps.total})
		refresh <- nil
		refresh <- nil
		// The next pass starts at once, before a redraw, as in a run.
		p.Report(event.Progress{Iteration: 1, Phase: ps.phase, Done: ps.total, Total: ps.total})
	}
	refresh <- nil
	refresh <- nil
	// mpb renders one request at a time: when this send returns, the frame
	// of the send before the last is written. The frames drawn while the run
	// ends (the pass bar dropped, then the run bar; one or two frames,
	// depending on scheduling) are not the subject here.
	refresh <- nil
	drawn := out.String()
	p.Report(event.RunEnded{Kind: event.KindSelectionAware, Iterations: 1})
	// A frame starts with the run bar (priority 0, drawn first); the last
	// frame of the snapshot may be partly written.
	var frames [][]string
	for _, l := range strings.Split(drawn, "\n") {
		if strings.Contains(l, "iteration 1/2") {
			frames = append(frames, nil)
			continue
		}
		if len(frames) > 0 && strings.TrimSpace(l) != "" {
			frames[len(frames)-1] = append(frames[len(frames)-1], l)
		}
	}
	bar := regexp.MustCompile(`\[([=>-]+)\]\s+(\d+)/(\d+)`)
	for i, f := range frames[:len(frames)-1] {
		if len(f) != 1 {
			t.Errorf("frame %d shows %d pass bars, want 1: %q", i, len(f), f)
			continue
		}
		m := bar.FindStringSubmatch(f[0])
		if m == nil {
			t.Fatalf("frame %d: no bar in %q", i, f[0])
		}
		full, empty := !strings.Contains(m[1], "-"), !strings.ContainsAny(m[1], "=>")
		if done, total := m[2], m[3]; full != (done == total) || empty != (done == "0") {
			t.Errorf("frame %d: bar %s with %s/%s", i, m[1], done, total)
		}
	}
	if len(frames) < 2*len(passes) {
		t.Fatalf("%d frames drawn, want at least %d:\n%q", len(frames), 2*len(passes), drawn)
	}
}

// shortPassRun reports a selection-aware run of iterations of 3.5 s each, in
// steps of 0.5 s: scoring 300 sequences in three batches, training 64 in two,
// validating 50 in one, 0.5 s of checkpoint; no pass reaches LogEvery.
func shortPassRun(p *Progress, c *clock, iterations int) {
	p.Report(event.RunStarted{Kind: event.KindSelectionAware, NumIterations: iterations, FirstIteration: 1})
	for it := 1; it <= iterations; it++ {
		p.Report(event.IterationStarted{Kind: event.KindSelectionAware, Iteration: it, Total: iterations})
		for _, ps := range []struct {
			phase        string
			total, batch int
		}{{event.PhaseInference, 300, 100}, {event.PhaseTraining, 64, 32}, {event.PhaseValidation, 50, 50}} {
			p.Report(event.Progress{Iteration: it, Phase: ps.phase, Total: ps.total})
			for done := ps.batch; done <= ps.total; done += ps.batch {
				c.add(500 * time.Millisecond)
				p.Report(event.Progress{Iteration: it, Phase: ps.phase, Done: done, Total: ps.total})
			}
			switch ps.phase {
			case event.PhaseTraining:
				p.Report(event.Trained{Iteration: it, Loss: 2.5 - 0.01*float64(it)})
			case event.PhaseValidation:
				p.Report(event.Validated{Iteration: it, Loss: 2.4 - 0.01*float64(it), BestLoss: 2.4 - 0.01*float64(it)})
			}
		}
		c.add(500 * time.Millisecond)
		p.Report(event.IterationEnded{Kind: event.KindSelectionAware, Iteration: it})
	}
	p.Report(event.RunEnded{Kind: event.KindSelectionAware, Iterations: iterations, Finished: true})
}

// TestProgressLogsShortPasses: off a terminal, a run of passes shorter than
// LogEvery logs every LogEvery (10 s by default) all the same: 35 s of
// 3.5-s iterations give lines at 10, 20 and 30 s, in iterations 3, 6 and 9.
// (Lines were written only inside a pass that itself lasted LogEvery: none.)
func TestProgressLogsShortPasses(t *testing.T) {
	c := newClock()
	var logs bytes.Buffer
	f := false
	p := NewProgress(ProgressOptions{TTY: &f, Now: c.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	shortPassRun(p, c, 10)
	out := strings.TrimSpace(logs.String())
	lines := strings.FieldsFunc(out, func(r rune) bool { return r == '\n' })
	if len(lines) != 3 {
		t.Fatalf("%d progress lines, want 3:\n%s", len(lines), out)
	}
	// 10 s is 0.5 s into iteration 3's validation (done at once), 20 s the
	// end of iteration 6's training (its loss not yet reported), 30 s halfway through iteration 9's:
	// 32 sequences in 0.5 s, 8 iterations of 3.5 s done, 2 left less the 2 s
	// spent in this one.
	for i, want := range [][]string{
		{`iteration="iteration 3/10"`, "phase=validate done=50 total=50", `rate="100.0 seq/s"`, "phase_eta=0:00", "run_elapsed=0:10",
			"run_eta=0:25", "train_loss=2.4700", "val_loss=2.3800"},
		{`iteration="iteration 6/10"`, "phase=train done=64 total=64", `rate="64.0 seq/s"`, "run_elapsed=0:20", "run_eta=0:15",
			"train_loss=2.4500", "val_loss=2.3500"},
		{`iteration="iteration 9/10"`, "phase=train done=32 total=64", `rate="64.0 seq/s"`, "phase_eta=0:01", "run_elapsed=0:30",
			"run_eta=0:05", "train_loss=2.4200", "val_loss=2.3200"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %s:\n%s", i+1, w, lines[i])
			}
		}
	}
}

// TestProgressNoLogShortRun: a run shorter than LogEvery writes no line, and
// a second run on the same reporter (compare) counts from its own start.
func TestProgressNoLogShortRun(t *testing.T) {
	c := newClock()
	var logs bytes.Buffer
	f := false
	p := NewProgress(ProgressOptions{TTY: &f, Now: c.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.add(time.Minute)    // the reporter made long before the run
	shortPassRun(p, c, 2) // 7 s
	c.add(9 * time.Second)
	shortPassRun(p, c, 2)
	if logs.Len() != 0 {
		t.Errorf("runs of 7 s logged:\n%s", logs.String())
	}
}

// TestProgressLogsAtIterationEnd: a line is due at an iteration's end too,
// and the pass it shows keeps its own rate and elapsed time after it ended
// (not diluted by the checkpoint written after it).
func TestProgressLogsAtIterationEnd(t *testing.T) {
	c := newClock()
	var logs bytes.Buffer
	f := false
	p := NewProgress(ProgressOptions{TTY: &f, Now: c.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p.Report(event.RunStarted{Kind: event.KindStandard, Epochs: 3, FirstIteration: 1})
	p.Report(event.IterationStarted{Kind: event.KindStandard, Iteration: 1, Total: 3})
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseTraining, Total: 400})
	c.add(4 * time.Second)
	p.Report(event.Progress{Iteration: 1, Phase: event.PhaseTraining, Done: 400, Total: 400})
	c.add(8 * time.Second) // a checkpoint
	if logs.Len() != 0 {
		t.Fatalf("logged before LogEvery:\n%s", logs.String())
	}
	p.Report(event.IterationEnded{Kind: event.KindStandard, Iteration: 1})
	out := logs.String()
	for _, want := range []string{`iteration="epoch 1/3"`, "phase=train done=400 total=400", `rate="100.0 seq/s"`, "phase_elapsed=0:04",
		"phase_eta=0:00", "run_elapsed=0:12", "run_eta=0:24"} {
		if !strings.Contains(out, want) {
			t.Errorf("line at the epoch's end lacks %s:\n%s", want, out)
		}
	}
}

// openPty opens a new pseudo-terminal's two ends (Linux), skipping the test
// where none can be had.
func openPty(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminals are opened the Linux way here")
	}
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// TestProgressTerminalDetection: bars only on a terminal with a size; files,
// /dev/null (a character device, which counted as a terminal) and a
// pseudo-terminal that reports 0 columns (script(1) off a terminal, which
// showed neither bars nor lines) get the log lines.
func TestProgressTerminalDetection(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for name, f := range map[string]*os.File{"file": file, "/dev/null": null} {
		if NewProgress(ProgressOptions{Out: f}).tty {
			t.Errorf("%s: bars, want log lines", name)
		}
	}
	_, pts := openPty(t)
	if NewProgress(ProgressOptions{Out: pts}).tty {
		t.Error("pseudo-terminal of 0 columns: bars, want log lines")
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100}); err != nil {
		t.Fatal(err)
	}
	if !NewProgress(ProgressOptions{Out: pts}).tty {
		t.Error("pseudo-terminal of 100x30: log lines, want bars")
	}
}
