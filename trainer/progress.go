package trainer

import "github.com/satrain/satrain/report"

// progress is the progress display of evaluation's scoring pass; the training
// loops report progress as events instead (report.Progress draws both with
// the same bars and log lines).
type progress struct{ bar *report.Bar }

func newProgress(enabled bool, label string, total int) progress {
	return progress{report.NewBar(enabled, label, total)}
}

func (p progress) add(n int) { p.bar.Add(n) }

func (p progress) close() { p.bar.Close() }
