package report

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/satrain/satrain/trainer/event"
)

// Bar shows how far a phase has got: a bar redrawn in place on a terminal,
// or a log line every 10% (at most every few seconds) otherwise. A nil *Bar
// shows nothing.
type Bar struct {
	w        io.Writer
	tty      bool
	label    string
	total    int
	done     int
	start    time.Time
	lastLog  time.Time
	lastFrac int
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// NewBar starts a bar of total items on stderr (nil when !enabled or total <= 0).
func NewBar(enabled bool, label string, total int) *Bar {
	if !enabled || total <= 0 {
		return nil
	}
	return &Bar{w: os.Stderr, tty: isTerminal(os.Stderr), label: label, total: total, start: time.Now(), lastLog: time.Now()}
}

// Add records n more items done.
func (p *Bar) Add(n int) {
	if p == nil {
		return
	}
	p.done += n
	if p.tty {
		const width = 30
		filled := width * p.done / p.total
		rate := float64(p.done) / time.Since(p.start).Seconds()
		fmt.Fprintf(p.w, "\r  %-10s [%s%s] %d/%d %.1f/s ", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.done, p.total, rate)
		if p.done >= p.total {
			fmt.Fprint(p.w, "\r\033[K")
		}
		return
	}
	frac := 10 * p.done / p.total
	if frac > p.lastFrac && time.Since(p.lastLog) > 5*time.Second && p.done < p.total {
		p.lastFrac, p.lastLog = frac, time.Now()
		slog.Info("progress", "phase", p.label, "done", p.done, "total", p.total)
	}
}

// Progress is the progress display of a run: one Bar per pass of scoring,
// training or validation, driven by event.Progress.
type Progress struct {
	bar  *Bar
	done int
}

// NewProgress returns the progress reporter.
func NewProgress() *Progress { return &Progress{} }

// progressLabel names a phase on the bar.
var progressLabel = map[string]string{
	event.PhaseInference:  "score",
	event.PhaseTraining:   "train",
	event.PhaseValidation: "validate",
}

// Report implements event.Reporter.
func (p *Progress) Report(e event.Event) {
	ev, ok := e.(event.Progress)
	if !ok {
		return
	}
	if ev.Done == 0 {
		label := progressLabel[ev.Phase]
		if label == "" {
			label = ev.Phase
		}
		p.bar, p.done = NewBar(true, label, ev.Total), 0
		return
	}
	p.bar.Add(ev.Done - p.done)
	p.done = ev.Done
}
