package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/atomicfile"
)

// MetricsLog is the name of the metrics log in a save dir (event.MetricsLog).
const MetricsLog = event.MetricsLog

// NewRecord builds the metrics.jsonl record of an iteration.
func NewRecord(e event.IterationEnded) backtest.MetricsRecord {
	it := int64(e.Iteration)
	scored, trained := e.ScoredTotal, e.TrainedTotal
	r := backtest.MetricsRecord{Time: e.Time, Strategy: e.Strategy, Iteration: &it, SequencesScoredTotal: &scored,
		SequencesTrainedTotal: &trained, StepsSkippedTotal: e.SkippedTotal, PhaseSeconds: e.PhaseSeconds,
		IterationSeconds: e.IterationSeconds, NonFinite: []string{}}
	if e.OnDevice {
		b := e.DeviceMemoryPeak
		r.DeviceMemoryPeakBytes = &b
	}
	set := func(key string, dst **float64, v float64, measured bool) {
		if !measured {
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			r.NonFinite = append(r.NonFinite, key)
			return
		}
		*dst = &v
	}
	if e.Scored {
		n := e.ERNonFinite
		r.ERNonFinite = &n
	}
	set("train_loss", &r.TrainLoss, e.TrainLoss, e.Iteration > 0)
	set("val_loss", &r.ValLoss, e.ValLoss, e.Validated)
	set("er_mean", &r.ERMean, e.ERMean, e.Scored)
	set("er_median", &r.ERMedian, e.ERMedian, e.Scored)
	set("topk_er_mean", &r.TopKERMean, e.TopKERMean, e.Scored)
	set("topk_er_min", &r.TopKERMin, e.TopKERMin, e.Scored)
	set("selected_overlap", &r.SelectedOverlap, e.Overlap, e.HasOverlap)
	return r
}

// JSONL writes metrics.jsonl in the run's save dir: one backtest.MetricsRecord per line,
// each line written whole and flushed as its iteration ends. A fresh run
// starts a new file, and so does a resume into another save dir
// (event.Start.Branch); a run resumed in its own save dir keeps the records up
// to the iteration it continues after and drops later ones (left by the run it
// resumes after a crash), so the file never holds two runs nor an iteration
// twice.
type JSONL struct {
	f    *os.File
	path string
	tr   *runTracker
}

// NewJSONL returns the metrics log reporter; the file is opened at RunStarted.
func NewJSONL() *JSONL { return &JSONL{tr: newRunTracker()} }

// Report implements event.Reporter.
func (j *JSONL) Report(e event.Event) {
	if j.tr == nil {
		j.tr = newRunTracker()
	}
	j.tr.observe(e)
	switch e := e.(type) {
	case event.RunStarted:
		if err := j.open(e); err != nil {
			slog.Error("metrics log", "err", err)
		}
	case event.IterationEnded:
		if j.f == nil {
			return
		}
		rec := NewRecord(e)
		rec.RunID, rec.LR, rec.IterationsTarget = j.tr.started.RunID, j.tr.started.LR, j.tr.target
		if b := j.tr.best; !math.IsNaN(b) {
			rec.BestValLoss = &b
		}
		rec.SequencesPerSecond = j.tr.rates(e.PhaseSeconds)
		b, err := json.Marshal(rec)
		if err != nil {
			slog.Error("metrics log", "path", j.path, "err", err)
			return
		}
		if _, err := j.f.Write(append(b, '\n')); err != nil {
			slog.Error("metrics log write failed", "path", j.path, "err", err)
		}
	}
}

func (j *JSONL) open(e event.RunStarted) error {
	j.Close()
	j.path = filepath.Join(e.SaveDir, MetricsLog)
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if e.Start.Mode == event.StartResume && !e.Start.Branch {
		if err := truncateRecords("metrics log", j.path, e.Start.Iteration); err != nil {
			return err
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(j.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	j.f = f
	return nil
}

// truncateRecords keeps the lines of path whose iteration is <= last; what
// names the file in the warning ("metrics log", "selected-set log").
func truncateRecords(what, path string, last int) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	dropped := 0
	for sc.Scan() {
		var r struct {
			Iteration *int `json:"iteration"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Iteration == nil || *r.Iteration > last {
			dropped++
			continue
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if dropped == 0 {
		return nil
	}
	slog.Warn(what+": dropped the records after the iteration the run resumes from", "path", path, "dropped", dropped, "kept_through", last)
	if err := atomicfile.WriteFile(path, keep.Bytes(), 0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Close closes the file.
func (j *JSONL) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
