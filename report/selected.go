package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/option"
)

// SelectedRecord is one line of the --log-selected file: one sequence of an
// iteration's selected set.
type SelectedRecord struct {
	RunID     string `json:"run_id"`
	Iteration int    `json:"iteration"`
	Rank      int    `json:"rank"`     // 1 = ranked first
	Ticker    string `json:"ticker"`   // symbol
	EndDate   string `json:"end_date"` // the window's last day (the decision day), YYYY-MM-DD
	// ExpectedReturn is the model's expected gross return on the ranked
	// horizon when the sequence was selected (null if not finite).
	ExpectedReturn *float64 `json:"expected_return"`
	Horizon        string   `json:"horizon"`
}

// SelectedLog writes every iteration's selected sequences to a file as JSON
// lines (SelectedRecord), in rank order, so that a user can audit what the
// method trained on. A fresh run truncates the file, and so does a resume
// into another save dir (event.Start.Branch: a new run); a run resumed in its
// own save dir keeps the lines up to the iteration it continues after.
type SelectedLog struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	started event.RunStarted
}

// NewSelectedLog returns the reporter; the file is opened at RunStarted.
func NewSelectedLog(path string) *SelectedLog { return &SelectedLog{path: path} }

// Report implements event.Reporter.
func (l *SelectedLog) Report(e event.Event) {
	switch e := e.(type) {
	case event.RunStarted:
		l.started = e
		if err := l.open(e); err != nil {
			slog.Error("selected-set log", "err", err)
		}
	case event.SubsetSelected:
		if l.w == nil {
			return
		}
		if err := l.write(e); err != nil {
			slog.Error("selected-set log write failed", "path", l.path, "err", err)
		}
	}
}

func (l *SelectedLog) open(e event.RunStarted) error {
	l.Close()
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if e.Start.Mode == event.StartResume && !e.Start.Branch {
		if err := truncateRecords("selected-set log", l.path, e.Start.Iteration); err != nil {
			return err
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(l.path, flags, 0o644)
	if err != nil {
		return option.Errorf("{log-selected} %s: %w", l.path, err)
	}
	l.f, l.w = f, bufio.NewWriter(f)
	return nil
}

func (l *SelectedLog) write(e event.SubsetSelected) error {
	st := l.started
	enc := json.NewEncoder(l.w)
	for i, id := range e.Selected {
		r := SelectedRecord{RunID: st.RunID, Iteration: e.Iteration, Rank: i + 1, Horizon: st.Horizon}
		if t := int(id.Ticker); t >= 0 && t < len(st.Tickers) {
			r.Ticker = st.Tickers[t]
		}
		if d := int(id.Day); d >= 0 && d < len(st.Dates) {
			v := st.Dates[d]
			r.EndDate = fmt.Sprintf("%04d-%02d-%02d", v/10000, v/100%100, v%100)
		}
		if i < len(e.Scores) && !math.IsNaN(e.Scores[i]) && !math.IsInf(e.Scores[i], 0) {
			v := e.Scores[i]
			r.ExpectedReturn = &v
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	// One flush per iteration: the file is complete for every finished
	// selection, also when the run stops later.
	return l.w.Flush()
}

// Close flushes and closes the file.
func (l *SelectedLog) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f, l.w = nil, nil
	return err
}
