package trainer

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// progress shows how far a phase has got: a bar redrawn in place on a
// terminal, or a log line every 10% (at most every few seconds) otherwise.
type progress struct {
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

func newProgress(enabled bool, label string, total int) *progress {
	if !enabled || total <= 0 {
		return nil
	}
	return &progress{w: os.Stderr, tty: isTerminal(os.Stderr), label: label, total: total, start: time.Now(), lastLog: time.Now()}
}

func (p *progress) add(n int) {
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
