package backtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/plotter"
)

// MetricsRecord is one line of metrics.jsonl, as report's JSONL writer
// writes it and the training curves read it: one iteration (an epoch of
// standard training; iteration 0 is the validation of the starting weights
// of a run that starts from another run's). A value that was not measured
// is null; a measured value that is not finite (NaN, ±Inf) is null too and
// its key is listed in NonFinite. Iteration and the two totals are always
// written; they are pointers so that a reader can tell a line without them
// (not a satrain record) from a zero.
type MetricsRecord struct {
	Time                  string             `json:"time"`
	Strategy              string             `json:"strategy"` // "standard" (points are epochs) or a selection strategy (iterations)
	Iteration             *int64             `json:"iteration"`
	TrainLoss             *float64           `json:"train_loss"`
	ValLoss               *float64           `json:"val_loss"`
	ERMean                *float64           `json:"er_mean"`
	ERMedian              *float64           `json:"er_median"`
	TopKERMean            *float64           `json:"topk_er_mean"`
	TopKERMin             *float64           `json:"topk_er_min"`
	ERNonFinite           *int               `json:"er_non_finite"` // scores left out of the er_ fields for not being finite; null when not scored
	SequencesScoredTotal  *int64             `json:"sequences_scored_total"`
	SequencesTrainedTotal *int64             `json:"sequences_trained_total"`
	StepsSkippedTotal     int64              `json:"steps_skipped_total"`
	PhaseSeconds          map[string]float64 `json:"phase_seconds"`
	IterationSeconds      float64            `json:"iteration_seconds"`
	SelectedOverlap       *float64           `json:"selected_overlap"`         // null when not measured (first iteration, standard training)
	DeviceMemoryPeakBytes *int64             `json:"device_memory_peak_bytes"` // null on the CPU, which does not measure it
	NonFinite             []string           `json:"non_finite"`

	// Set by the JSONL writer from the run's earlier events.
	RunID              string             `json:"run_id"`
	LR                 float64            `json:"lr"`
	IterationsTarget   int                `json:"iterations_target"`
	BestValLoss        *float64           `json:"best_val_loss"`        // best finite validation loss so far; null before the first
	SequencesPerSecond map[string]float64 `json:"sequences_per_second"` // per phase: inference, training, validation
}

// MetricsLog is one run's metrics.jsonl.
type MetricsLog struct {
	Path    string
	Label   string // legend name when several runs are overlaid
	Records []MetricsRecord
}

// Epochs reports whether the log's points are epochs of standard training.
func (l *MetricsLog) Epochs() bool {
	return len(l.Records) > 0 && l.Records[0].Strategy == "standard"
}

// measuredER reports whether any record carries an expected-return figure
// from a scored sample. Standard training scores nothing and logs zeros.
func (l *MetricsLog) measuredER() bool {
	for _, r := range l.Records {
		if r.SequencesScoredTotal != nil && *r.SequencesScoredTotal == 0 {
			continue
		}
		if (r.ERMean != nil && *r.ERMean != 0) || (r.TopKERMean != nil && *r.TopKERMean != 0) {
			return true
		}
	}
	return false
}

// ReadMetricsLog reads a trainer's metrics log (one JSON object per line,
// blank lines ignored). Every record needs "iteration". A last line without
// its newline that is not JSON is a record cut short by a killed run (the
// kernel may stop a write at a page boundary when the process is killed; the
// run drops it when it resumes): it is skipped with a warning.
func ReadMetricsLog(path string) (*MetricsLog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backtest: training curves: %w", err)
	}
	cut := len(raw) > 0 && raw[len(raw)-1] != '\n'
	l := &MetricsLog{Path: path, Label: path}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	lineNo, lines := 0, bytes.Count(raw, []byte{'\n'})
	for sc.Scan() {
		lineNo++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var m MetricsRecord
		if err := json.Unmarshal(b, &m); err != nil {
			if cut && lineNo == lines+1 {
				slog.Warn("metrics log: skipped its last line, a record cut short (killed run?)", "path", path, "line", lineNo)
				continue
			}
			return nil, fmt.Errorf("backtest: training curves: %s line %d: %w", path, lineNo, err)
		}
		if m.Iteration == nil {
			return nil, fmt.Errorf("backtest: training curves: %s line %d: missing \"iteration\"", path, lineNo)
		}
		l.Records = append(l.Records, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("backtest: training curves: read %s: %w", path, err)
	}
	if len(l.Records) == 0 {
		return nil, fmt.Errorf("backtest: training curves: %s has no records", path)
	}
	return l, nil
}

// RunLabels names runs by the parts of their paths that differ: the folders
// of a/b/standard/seed42/metrics.jsonl and a/b/two_stage/seed42/metrics.jsonl
// become "standard/seed42" and "two_stage/seed42". Identical folders keep
// their whole paths.
func RunLabels(paths []string) []string {
	parts := make([][]string, len(paths))
	for i, p := range paths {
		parts[i] = strings.Split(filepath.ToSlash(filepath.Clean(filepath.Dir(p))), "/")
	}
	out := make([]string, len(paths))
	if len(paths) == 1 {
		out[0] = parts[0][len(parts[0])-1]
		return out
	}
	prefix := 0
	for ok := true; ok; {
		for _, p := range parts {
			if prefix >= len(p)-1 || p[prefix] != parts[0][prefix] {
				ok = false
				break
			}
		}
		if ok {
			prefix++
		}
	}
	seen := map[string]bool{}
	for i, p := range parts {
		out[i] = strings.Join(p[prefix:], "/")
		if seen[out[i]] || out[i] == "." {
			return append([]string(nil), paths...)
		}
		seen[out[i]] = true
	}
	return out
}

// TrainingCurvesFigure builds the `satrain plot` figure of one or more runs:
// train and validation loss, and, when any run scored a sample (selection
// runs), the top-k and overall mean expected return of the scored sample in
// bps. The x axis is "epoch" when every run is standard training,
// "iteration" when every run is selection-style, and sequence-passes
// trained when they are mixed. With several runs each run has one colour,
// its validation line is dashed and the legend names the run. A run that
// starts from another run's weights (stage 2 of two-stage) draws their
// validation loss, its iteration-0 record, as a dotted baseline.
func TrainingCurvesFigure(logs []*MetricsLog) (*Figure, error) {
	if len(logs) == 0 {
		return nil, fmt.Errorf("no metrics logs")
	}
	epochs, iters := 0, 0
	for _, l := range logs {
		if l.Epochs() {
			epochs++
		} else {
			iters++
		}
	}
	xLabel, xOf := "iteration", func(r MetricsRecord) (float64, bool) { return float64(*r.Iteration), true }
	switch {
	case iters == 0:
		xLabel = "epoch"
	case epochs > 0:
		xLabel = "sequence-passes trained"
		xOf = func(r MetricsRecord) (float64, bool) {
			if r.SequencesTrainedTotal == nil {
				return 0, false
			}
			return float64(*r.SequencesTrainedTotal), true
		}
	}
	withER := false
	for _, l := range logs {
		withER = withER || l.measuredER()
	}
	lossP := newPanel("Loss", xLabel, "cross-entropy (nats)")
	erP := newPanel("Expected return of the scored sample", xLabel, "expected return over the horizon (bps)")
	if xLabel != "sequence-passes trained" {
		lossP.Plot.X.Tick.Marker = integerTicks{}
		erP.Plot.X.Tick.Marker = integerTicks{}
	}
	multi := len(logs) > 1
	for i, l := range logs {
		var train, val, topk, er plotter.XYs
		for _, r := range l.Records {
			x, ok := xOf(r)
			if !ok {
				return nil, fmt.Errorf("%s: iteration %d has no sequences_trained_total, needed to overlay epochs and iterations", l.Path, *r.Iteration)
			}
			if r.TrainLoss != nil {
				train = append(train, plotter.XY{X: x, Y: *r.TrainLoss})
			}
			if r.ValLoss != nil {
				val = append(val, plotter.XY{X: x, Y: *r.ValLoss})
			}
			if r.SequencesScoredTotal != nil && *r.SequencesScoredTotal == 0 {
				continue
			}
			if r.TopKERMean != nil {
				topk = append(topk, plotter.XY{X: x, Y: bps(*r.TopKERMean - 1)})
			}
			if r.ERMean != nil {
				er = append(er, plotter.XY{X: x, Y: bps(*r.ERMean - 1)})
			}
		}
		name := func(s string) string {
			if multi {
				return l.Label + ": " + s
			}
			return s
		}
		// One run: a colour per series; several: a colour per run.
		c := func(k int) int {
			if multi {
				return i
			}
			return k
		}
		for _, s := range []struct {
			pn     *Panel
			name   string
			color  int
			dashed bool
			pts    plotter.XYs
		}{{lossP, "train loss", c(0), false, train}, {lossP, "validation loss", c(1), multi, val},
			{erP, "top-k mean", c(0), false, topk}, {erP, "all mean", c(1), multi, er}} {
			if len(s.pts) == 0 || (s.pn == erP && !withER) {
				continue
			}
			st := lineStyle{color: s.color, points: len(s.pts) < 50, dashed: s.dashed}
			if err := s.pn.line(name(s.name), s.pts, st); err != nil {
				return nil, err
			}
		}
	}
	// A run that starts from another run's weights (two-stage fine-tuning)
	// logs their validation loss as iteration 0: its baseline, drawn dotted
	// over the whole run.
	xmax := 0.0
	for _, l := range logs {
		for _, r := range l.Records {
			if x, ok := xOf(r); ok {
				xmax = math.Max(xmax, x)
			}
		}
	}
	for i, l := range logs {
		r := l.Records[0]
		if *r.Iteration != 0 || r.ValLoss == nil {
			continue
		}
		x0, _ := xOf(r)
		name := "validation loss of the starting weights (iteration 0)"
		if multi {
			name = l.Label + ": starting weights (iteration 0)"
		}
		color := 1
		if multi {
			color = i
		}
		if err := lossP.hline(name, *r.ValLoss, x0, xmax, color); err != nil {
			return nil, err
		}
	}
	fig := &Figure{Panels: []*Panel{lossP}}
	if withER && len(erP.Series) > 0 {
		// One x range for both panels, so that a point reads at the same place.
		lo, hi := math.Min(lossP.Plot.X.Min, erP.Plot.X.Min), math.Max(lossP.Plot.X.Max, erP.Plot.X.Max)
		lossP.Plot.X.Min, lossP.Plot.X.Max, erP.Plot.X.Min, erP.Plot.X.Max = lo, hi, lo, hi
		fig.Panels = append(fig.Panels, erP)
	}
	return fig, nil
}

// PlotTrainingCurves reads one or more metrics logs (see ReadMetricsLog) and
// writes TrainingCurvesFigure as a PNG: 768 x 480 pixels per panel.
func PlotTrainingCurves(metricsLogPaths []string, outPNG string) error {
	var logs []*MetricsLog
	labels := RunLabels(metricsLogPaths)
	for i, p := range metricsLogPaths {
		l, err := ReadMetricsLog(p)
		if err != nil {
			return err
		}
		l.Label = labels[i]
		logs = append(logs, l)
	}
	f, err := TrainingCurvesFigure(logs)
	if err != nil {
		return fmt.Errorf("backtest: training curves %s: %w", outPNG, err)
	}
	return f.Save(outPNG)
}
