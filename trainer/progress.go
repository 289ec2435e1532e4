package trainer

import "github.com/satrain/satrain/trainer/report"

// progress is the progress bar of evaluation; the training loops report
// progress as events instead (see report.Progress, which draws the same bar).
type progress struct{ bar *report.Bar }

func newProgress(enabled bool, label string, total int) progress {
	return progress{report.NewBar(enabled, label, total)}
}

func (p progress) add(n int) { p.bar.Add(n) }
