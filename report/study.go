package report

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// StudyProgress shows how far a study of several runs trained side by side
// (compare --jobs) has got: runs finished of planned, sequence-passes
// trained over all runs of their total, elapsed time and ETA. On a terminal
// it is one bar (mpb, as Progress draws); off a terminal, a log line every
// LogEvery. It is told of the runs by its methods, from any goroutine.
type StudyProgress struct {
	opt ProgressOptions
	tty bool

	mu        sync.Mutex
	runs      int
	total     int64   // sequence-passes of the whole study
	trained   []int64 // per run (index from 0)
	finished  int
	running   int
	start     time.Time
	atStart   int64 // passes already trained at start (reused runs)
	startSet  bool
	lastLog   time.Time
	container *mpb.Progress
	bar       *mpb.Bar
}

// NewStudyProgress starts the display of a study of runs runs of budget
// sequence-passes each.
func NewStudyProgress(opt ProgressOptions, runs int, budget int64) *StudyProgress {
	p := NewProgress(opt) // its defaults and terminal detection
	s := &StudyProgress{opt: p.opt, tty: p.tty, runs: runs, total: int64(runs) * budget, trained: make([]int64, runs)}
	s.start = s.opt.Now()
	s.lastLog = s.start
	if s.tty {
		s.container = mpb.New(mpb.WithOutput(s.opt.Out), mpb.WithRefreshRate(200*time.Millisecond),
			mpb.ContainerOptional(mpb.WithWidth(s.opt.width), s.opt.width > 0), mpb.ForceTTY(),
			mpb.ContainerOptional(mpb.WithManualRefresh(s.opt.refresh), s.opt.refresh != nil))
		s.bar = s.container.AddBar(max(1, s.total), mpb.BarWidth(24),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return s.label() })),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return s.info() })))
	}
	return s
}

// ConsoleWriter returns w, or, while the bar is drawn, a writer that prints
// above it.
func (s *StudyProgress) ConsoleWriter(w io.Writer) io.Writer {
	if !s.tty {
		return w
	}
	return studyAbove{s, w}
}

type studyAbove struct {
	s *StudyProgress
	w io.Writer
}

func (a studyAbove) Write(b []byte) (int, error) {
	a.s.mu.Lock()
	c := a.s.container
	a.s.mu.Unlock()
	if c != nil {
		if n, err := c.Write(b); err == nil {
			return n, nil
		}
	}
	return a.w.Write(b)
}

// Reused counts run (from 0) as finished before the study started, with
// trained passes.
func (s *StudyProgress) Reused(run int, trained int64) {
	s.mu.Lock()
	s.trained[run] = trained
	s.finished++
	s.atStart += trained
	s.mu.Unlock()
	s.update()
}

// Started counts run (from 0) as in progress.
func (s *StudyProgress) Started(run int) {
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	s.update()
}

// Trained sets how many passes run (from 0) has trained so far.
func (s *StudyProgress) Trained(run int, trained int64) {
	s.mu.Lock()
	s.trained[run] = trained
	s.mu.Unlock()
	s.update()
}

// Ended counts run (from 0) as no longer in progress: finished with trained
// passes when ok, else failed.
func (s *StudyProgress) Ended(run int, ok bool, trained int64) {
	s.mu.Lock()
	s.running--
	if ok {
		s.finished++
		s.trained[run] = trained
	}
	s.mu.Unlock()
	s.update()
}

func (s *StudyProgress) update() {
	now := s.opt.Now()
	s.mu.Lock()
	done := s.done()
	bar := s.bar
	// The bar completes at Close only: mpb stops drawing a completed bar, and
	// lines written above it after that would be lost.
	cur := min(done, s.total-1)
	due := !s.tty && now.Sub(s.lastLog) >= s.opt.LogEvery
	var line []any
	if due {
		s.lastLog = now
		line = []any{"runs_finished", fmt.Sprintf("%d/%d", s.finished, s.runs), "running", s.running,
			"passes", loader.FormatCount(done) + "/" + loader.FormatCount(s.total), "elapsed", fmtDur(now.Sub(s.start)), "eta", fmtETA(s.eta(now))}
	}
	s.mu.Unlock()
	if bar != nil {
		bar.SetCurrent(cur)
	}
	if due {
		s.opt.Logger.Info("study progress", line...)
	}
}

// done is the passes trained over all runs (mu held).
func (s *StudyProgress) done() int64 {
	var n int64
	for _, t := range s.trained {
		n += t
	}
	return n
}

// eta is the time left at the rate of the passes trained since the start
// (negative: unknown; mu held).
func (s *StudyProgress) eta(now time.Time) time.Duration {
	el := now.Sub(s.start)
	rate := float64(s.done()-s.atStart) / el.Seconds()
	if rate <= 0 || el <= 0 {
		return -1
	}
	return time.Duration(float64(max(0, s.total-s.done())) / rate * float64(time.Second))
}

func (s *StudyProgress) label() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("study runs %d/%d (%d running)", s.finished, s.runs, s.running)
}

func (s *StudyProgress) info() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Now()
	return fmt.Sprintf(" %s/%s passes  %s<%s", loader.FormatCount(s.done()), loader.FormatCount(s.total), fmtDur(now.Sub(s.start)), fmtETA(s.eta(now)))
}

// Close ends the display.
func (s *StudyProgress) Close() {
	s.mu.Lock()
	c, bar := s.container, s.bar
	s.container, s.bar = nil, nil
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.mu.Lock()
	all := s.finished == s.runs
	s.mu.Unlock()
	if all {
		bar.SetCurrent(max(1, s.total)) // completes: drawn a last time, full
	} else {
		bar.Abort(false)
	}
	c.Wait()
}
