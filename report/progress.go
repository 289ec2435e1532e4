package report

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// ProgressOptions configure the progress display. The zero value draws on
// stderr when it is a terminal with a size and logs through slog otherwise.
type ProgressOptions struct {
	// Title prefixes every line, e.g. "two_stage seed 43 (run 5/12)" in
	// compare.
	Title string
	// Out is where bars are drawn (default os.Stderr). TTY says whether bars
	// are drawn there; for an *os.File it is detected (drawnOn) and must be
	// set otherwise.
	Out io.Writer
	TTY *bool
	// Logger gets the progress lines off a terminal (default slog.Default()).
	Logger *slog.Logger
	// LogEvery is the time between two progress lines off a terminal
	// (default 10 s): a line is written on a pass's progress or at an
	// iteration's end once LogEvery has passed since the last line, or since
	// the run (a standalone pass) started, so a run shorter than LogEvery
	// writes none, and a run of many short passes one every LogEvery or so.
	LogEvery time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	// refresh, when set (tests), redraws the bars on each receive instead
	// of on a timer; width is the line width off a real terminal (tests).
	refresh <-chan any
	width   int
}

// Progress shows how far a run has got, the way PyTorch Lightning's
// progress bar does: on a terminal, a bar for the run (iteration or epoch
// i/N, elapsed time and ETA of the whole run, the last train and validation
// losses) and one for the current pass (score, train or validate: sequences
// done/total, sequences per second, elapsed time and ETA of the pass), drawn
// with github.com/vbauerster/mpb; off a terminal, log lines with the same
// figures. It implements event.Reporter; standard training shows one
// training pass per epoch.
type Progress struct {
	opt ProgressOptions
	tty bool

	mu sync.Mutex // guards st: the bars' decorators read it from mpb's goroutine
	st progressState

	container *mpb.Progress
	runBar    *mpb.Bar
	passBar   *mpb.Bar
	lastLog   time.Time // the last progress line off a terminal, or the run's start; guarded by mu
}

// progressState is what the display shows, derived from events only.
type progressState struct {
	kind         string
	iter, target int
	runStart     time.Time
	iterStart    time.Time
	itersDone    int           // iterations (epochs > 0) completed in this process
	itersTime    time.Duration // their total wall time
	lastEnded    int           // last completed iteration
	phase        string        // label of the current pass ("" between passes)
	done, total  int
	passStart    time.Time
	passEnd      time.Time // when the current pass reached its total (zero while it runs)
	trainLoss    float64
	valLoss      float64
	bestLoss     float64
}

// NewProgress returns the progress reporter.
func NewProgress(opt ProgressOptions) *Progress {
	if opt.Out == nil {
		opt.Out = os.Stderr
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.LogEvery <= 0 {
		opt.LogEvery = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	p := &Progress{opt: opt}
	if opt.TTY != nil {
		p.tty = *opt.TTY
	} else if f, ok := opt.Out.(*os.File); ok {
		p.tty = drawnOn(f)
	}
	p.st = progressState{trainLoss: math.NaN(), valLoss: math.NaN(), bestLoss: math.NaN()}
	return p
}

// drawnOn says whether bars are drawn on f: a terminal that reports a size.
// It asks the terminal's size the way mpb does when it draws (TIOCGWINSZ),
// which fails for files, pipes and /dev/null (a character device, but no
// terminal: mpb would draw nothing there and keep the console lines written
// above its bars). A pseudo-terminal nobody gave a size (script(1) run off
// a terminal, some CI runners) reports 0 columns and 0 rows, on which mpb
// draws nothing either: it gets the log lines.
func drawnOn(f *os.File) bool {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0 && ws.Row > 0
}

// progressLabel names a phase on the bar.
var progressLabel = map[string]string{
	event.PhaseInference:  "score",
	event.PhaseTraining:   "train",
	event.PhaseValidation: "validate",
}

// ConsoleWriter returns w, or, while bars are drawn on a terminal, a writer
// that prints above the bars so that console lines and bars do not overwrite
// each other.
func (p *Progress) ConsoleWriter(w io.Writer) io.Writer {
	if !p.tty {
		return w
	}
	return &aboveBars{p: p, w: w}
}

type aboveBars struct {
	p *Progress
	w io.Writer
}

func (a *aboveBars) Write(b []byte) (int, error) {
	if c := a.p.active(); c != nil {
		if n, err := c.Write(b); err == nil {
			return n, nil
		}
		// The display ended meanwhile: write directly.
	}
	return a.w.Write(b)
}

func (p *Progress) active() *mpb.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.container
}

// Report implements event.Reporter.
func (p *Progress) Report(e event.Event) {
	now := p.opt.Now()
	switch e := e.(type) {
	case event.RunStarted:
		p.mu.Lock()
		// A fresh state: compare's two-stage runs reuse the reporter.
		p.st = progressState{trainLoss: math.NaN(), valLoss: math.NaN(), bestLoss: math.NaN()}
		p.st.kind, p.st.runStart, p.st.iter = e.Kind, now, e.FirstIteration-1
		p.st.target = e.NumIterations
		if e.Kind == event.KindStandard {
			p.st.target = e.Epochs
		}
		p.st.lastEnded = e.FirstIteration - 1
		p.lastLog = now // the first line LogEvery after the start
		p.mu.Unlock()
		if p.tty {
			p.startRunBar()
		}
	case event.IterationStarted:
		p.mu.Lock()
		p.st.iter, p.st.iterStart = e.Iteration, now
		if e.Total > 0 {
			p.st.target = e.Total
		}
		p.mu.Unlock()
	case event.Progress:
		p.progress(e, now)
	case event.Trained:
		p.mu.Lock()
		p.st.trainLoss = e.Loss
		p.mu.Unlock()
	case event.Validated:
		p.mu.Lock()
		p.st.valLoss = e.Loss
		if !math.IsInf(e.BestLoss, 0) {
			p.st.bestLoss = e.BestLoss
		}
		p.mu.Unlock()
	case event.IterationEnded:
		p.mu.Lock()
		if e.Iteration > 0 {
			p.st.itersDone++
			p.st.itersTime += now.Sub(p.st.iterStart)
		}
		p.st.lastEnded = e.Iteration
		bar := p.runBar
		p.mu.Unlock()
		if bar != nil && e.Iteration > 0 {
			bar.SetCurrent(int64(e.Iteration))
		}
		p.logIfDue(now)
	case event.RunEnded:
		p.Close()
	}
}

// progress handles one event.Progress: a new pass at Done == 0.
func (p *Progress) progress(e event.Progress, now time.Time) {
	label := progressLabel[e.Phase]
	if label == "" {
		label = e.Phase
	}
	p.mu.Lock()
	newPass := e.Done == 0 || label != p.st.phase
	if newPass {
		p.st.phase, p.st.total, p.st.passStart, p.st.passEnd, p.st.done = label, e.Total, now, time.Time{}, 0
	}
	p.st.done = e.Done
	if e.Done >= e.Total && p.st.passEnd.IsZero() {
		p.st.passEnd = now
	}
	if p.lastLog.IsZero() {
		p.lastLog = now // a standalone pass: no run started
	}
	container, bar := p.container, p.passBar
	p.mu.Unlock()
	if p.tty {
		// One pass bar serves every pass: its decorators read the current
		// pass's state, so a second bar (the last pass's, until mpb drops
		// it) would show the new pass's counts too.
		if bar == nil {
			bar = p.startPassBar(container)
		}
		if newPass {
			bar.SetCurrent(0)
			bar.SetTotal(int64(max(1, e.Total)), false)
		}
		bar.SetCurrent(int64(e.Done))
		return
	}
	if e.Done > 0 { // a pass's start has no rate yet
		p.logIfDue(now)
	}
}

// logIfDue writes the progress line off a terminal when LogEvery has passed
// since the last one (or the start): the run's figures and the current or
// last pass's, whichever event comes first after that, so that short passes
// are logged too, one line per LogEvery at most.
func (p *Progress) logIfDue(now time.Time) {
	if p.tty {
		return
	}
	p.mu.Lock()
	due := !p.lastLog.IsZero() && now.Sub(p.lastLog) >= p.opt.LogEvery
	var line []any
	if due {
		p.lastLog, line = now, p.st.logLine(now)
	}
	p.mu.Unlock()
	if due {
		p.opt.Logger.Info("progress", append(p.titleAttr(), line...)...)
	}
}

func (p *Progress) titleAttr() []any {
	if p.opt.Title == "" {
		return nil
	}
	return []any{"run", p.opt.Title}
}

func (p *Progress) ensureContainer() *mpb.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.container == nil {
		p.container = mpb.New(mpb.WithOutput(p.opt.Out), mpb.WithRefreshRate(200*time.Millisecond),
			mpb.ContainerOptional(mpb.WithWidth(p.opt.width), p.opt.width > 0),
			mpb.ContainerOptional(mpb.ForceTTY(), p.tty), mpb.ContainerOptional(mpb.WithManualRefresh(p.opt.refresh), p.opt.refresh != nil))
	}
	return p.container
}

func (p *Progress) startRunBar() {
	c := p.ensureContainer()
	p.mu.Lock()
	total := max(1, p.st.target)
	p.mu.Unlock()
	bar := c.AddBar(int64(total), mpb.BarPriority(0), mpb.BarWidth(24),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return p.runLabel() })),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return p.runInfo() })))
	p.mu.Lock()
	p.runBar = bar
	done := p.st.lastEnded
	p.mu.Unlock()
	if done > 0 {
		bar.SetCurrent(int64(done))
	}
}

// startPassBar adds the pass bar. It is made with total 0, so mpb never
// completes (and removes) it when a pass is done: each pass sets its total
// (SetTotal without completion) and the bar is dropped at Close.
func (p *Progress) startPassBar(c *mpb.Progress) *mpb.Bar {
	if c == nil {
		c = p.ensureContainer()
	}
	bar := c.AddBar(0, mpb.BarPriority(1), mpb.BarWidth(24),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return p.passLabel() })),
		mpb.AppendDecorators(decor.Any(p.passInfo)))
	p.mu.Lock()
	p.passBar = bar
	p.mu.Unlock()
	return bar
}

func (p *Progress) runLabel() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.st.iterLabel()
	if p.opt.Title != "" {
		s = p.opt.Title + " " + s
	}
	return s
}

func (p *Progress) runInfo() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opt.Now()
	return fmt.Sprintf(" run %s<%s  %s", fmtDur(now.Sub(p.st.runStart)), fmtETA(p.st.runETA(now)), p.st.lossText())
}

func (p *Progress) passLabel() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("  %-8s", p.st.phase)
}

// passInfo writes the pass's counts from the bar's own statistics, the ones
// its fill is drawn from in the same frame (the pass state may already hold a
// later count that the bar has not taken yet), then rate, elapsed and ETA.
func (p *Progress) passInfo(b decor.Statistics) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opt.Now()
	total := b.Total
	if p.st.total == 0 {
		total = 0 // the bar's total is at least 1
	}
	return fmt.Sprintf(" %d/%d  %s  %s<%s", b.Current, total, fmtRate(p.st.rate(now)), fmtDur(p.st.passElapsed(now)), fmtETA(p.st.passETA(now)))
}

// Close ends the display (RunEnded does; a standalone Bar on Close).
func (p *Progress) Close() error {
	p.mu.Lock()
	c, run, pass := p.container, p.runBar, p.passBar
	p.container, p.runBar, p.passBar = nil, nil, nil
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	if pass != nil {
		pass.Abort(true)
	}
	if run != nil && !run.Completed() {
		run.Abort(false)
	}
	c.Wait()
	return nil
}

// iterLabel is "iteration 3/100", "epoch 2/10", or "start" for the
// validation of a fine-tuning run's starting weights.
func (s *progressState) iterLabel() string {
	unit := "iteration"
	if s.kind == event.KindStandard {
		unit = "epoch"
	}
	if s.iter <= 0 {
		return "start"
	}
	return fmt.Sprintf("%s %d/%d", unit, s.iter, s.target)
}

// passElapsed is the time the current pass has taken: up to now, or to its
// end when it has ended (sampling or a checkpoint may follow before the next
// pass, which must not lower the pass's rate).
func (s *progressState) passElapsed(now time.Time) time.Duration {
	if !s.passEnd.IsZero() {
		now = s.passEnd
	}
	return now.Sub(s.passStart)
}

// rate is the current pass's sequences per second (NaN before any).
func (s *progressState) rate(now time.Time) float64 {
	el := s.passElapsed(now).Seconds()
	if s.done <= 0 || el <= 0 {
		return math.NaN()
	}
	return float64(s.done) / el
}

// passETA is the current pass's remaining time at its average rate
// (negative: unknown).
func (s *progressState) passETA(now time.Time) time.Duration {
	r := s.rate(now)
	if math.IsNaN(r) || r <= 0 {
		return -1
	}
	return time.Duration(float64(s.total-s.done) / r * float64(time.Second))
}

// runETA is the remaining time of the whole run: the mean duration of the
// iterations completed so far times those left, less the time already spent
// in the current one. Before the first iteration ends it is known only for
// standard training, whose epoch is one training pass: the epoch so far plus
// the pass's ETA, times the epochs left (negative: unknown).
func (s *progressState) runETA(now time.Time) time.Duration {
	if s.target <= 0 {
		return -1
	}
	inIter := s.iter > s.lastEnded && s.iter > 0
	var avg time.Duration
	switch {
	case s.itersDone > 0:
		avg = s.itersTime / time.Duration(s.itersDone)
	case s.kind == event.KindStandard && inIter && s.phase == progressLabel[event.PhaseTraining]:
		pe := s.passETA(now)
		if pe < 0 {
			return -1
		}
		avg = now.Sub(s.iterStart) + pe
	default:
		return -1
	}
	left := time.Duration(s.target-s.lastEnded) * avg
	if inIter {
		left -= min(now.Sub(s.iterStart), avg)
	}
	return max(0, left)
}

// lossText is the last losses: "loss 2.3100  val 2.2900 (best 2.2800)".
func (s *progressState) lossText() string {
	var parts []string
	if !math.IsNaN(s.trainLoss) {
		parts = append(parts, fmt.Sprintf("loss %.4f", s.trainLoss))
	}
	if !math.IsNaN(s.valLoss) {
		v := fmt.Sprintf("val %.4f", s.valLoss)
		if !math.IsNaN(s.bestLoss) {
			v += fmt.Sprintf(" (best %.4f)", s.bestLoss)
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, "  ")
}

// logLine is the progress line off a terminal, as slog attributes.
func (s *progressState) logLine(now time.Time) []any {
	line := []any{"phase", s.phase, "done", s.done, "total", s.total,
		"rate", fmtRate(s.rate(now)), "phase_elapsed", fmtDur(s.passElapsed(now)), "phase_eta", fmtETA(s.passETA(now))}
	if s.runStart.IsZero() {
		return line // a standalone pass (evaluation): no run around it
	}
	line = append([]any{"iteration", s.iterLabel()}, line...)
	line = append(line, "run_elapsed", fmtDur(now.Sub(s.runStart)), "run_eta", fmtETA(s.runETA(now)))
	if !math.IsNaN(s.trainLoss) {
		line = append(line, "train_loss", fmt.Sprintf("%.4f", s.trainLoss))
	}
	if !math.IsNaN(s.valLoss) {
		line = append(line, "val_loss", fmt.Sprintf("%.4f", s.valLoss))
	}
	return line
}

// fmtDur prints a duration as m:ss or h:mm:ss.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d.Round(time.Second) / time.Second)
	if sec >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}

func fmtETA(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return fmtDur(d)
}

func fmtRate(r float64) string {
	if math.IsNaN(r) {
		return "? seq/s"
	}
	return fmt.Sprintf("%.1f seq/s", r)
}

// Bar is a standalone progress display of one pass (evaluation's scoring),
// with the same bar and log lines as a run's. A nil *Bar shows nothing.
type Bar struct {
	p     *Progress
	phase string
	done  int
	total int
}

// NewBar starts a display of a pass of total sequences labelled with phase
// (an event.Phase* constant or a word); nil when !enabled or total <= 0.
func NewBar(enabled bool, phase string, total int) *Bar {
	if !enabled || total <= 0 {
		return nil
	}
	b := &Bar{p: NewProgress(ProgressOptions{}), phase: phase, total: total}
	b.p.Report(event.Progress{Phase: phase, Total: total})
	return b
}

// Add records n more sequences done.
func (b *Bar) Add(n int) {
	if b == nil {
		return
	}
	b.done += n
	b.p.Report(event.Progress{Phase: b.phase, Done: b.done, Total: b.total})
}

// Close ends the display.
func (b *Bar) Close() {
	if b != nil {
		b.p.Close()
	}
}

// PassBars draws each pass it is told of (event.Progress) with a Bar of its
// own, from the pass's first event (Done == 0) until it reaches its total or
// Close is called: the display of a standalone job's passes (evaluation's
// scoring), which has no run around them. Enabled false draws nothing.
type PassBars struct {
	Enabled bool
	bar     *Bar
}

// Report implements event.Reporter; events other than event.Progress are
// ignored.
func (p *PassBars) Report(e event.Event) {
	pr, ok := e.(event.Progress)
	if !ok {
		return
	}
	if pr.Done == 0 {
		p.Close()
		p.bar = NewBar(p.Enabled, pr.Phase, pr.Total)
		return
	}
	if p.bar != nil {
		p.bar.Add(pr.Done - p.bar.done)
	}
	if pr.Done >= pr.Total {
		p.Close()
	}
}

// Close ends the current pass's bar, if any.
func (p *PassBars) Close() {
	p.bar.Close()
	p.bar = nil
}
