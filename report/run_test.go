package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
)

// oneEpoch is a standard run's first epoch: 500 sequence-passes trained in
// 2 s, 100 validation sequences in 0.5 s.
func oneEpoch(saveDir string) []event.Event {
	return []event.Event{
		event.RunStarted{RunID: "20260102T030405Z-0a0b0c0d", Kind: event.KindStandard, Strategy: "standard", Epochs: 3, LR: 1e-3, Seed: 7,
			Data: "panel.h5", SaveDir: saveDir, FirstIteration: 1},
		event.IterationStarted{Kind: event.KindStandard, Iteration: 1, Total: 3},
		event.Trained{Iteration: 1, Loss: 2.5, Sequences: 500, TrainedTotal: 500},
		event.ValidationStarted{Iteration: 1, Sequences: 100},
		event.Validated{Iteration: 1, Loss: 2.4, Best: true, BestLoss: 2.4},
		event.IterationEnded{Kind: event.KindStandard, Strategy: "standard", Iteration: 1, TrainLoss: 2.5, ValLoss: 2.4, Validated: true,
			ERMean: math.NaN(), ERMedian: math.NaN(), TopKERMean: math.NaN(), TopKERMin: math.NaN(), Overlap: math.NaN(),
			TrainedTotal: 500, PhaseSeconds: map[string]float64{event.PhaseTraining: 2, event.PhaseValidation: 0.5}, IterationSeconds: 2.6},
	}
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range mfs {
		out[f.GetName()] = f
	}
	return out
}

func gaugeValue(t *testing.T, fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("%s is not registered", name)
	}
	for _, m := range f.GetMetric() {
		ok := label == ""
		for _, lp := range m.GetLabel() {
			ok = ok || (lp.GetName() == label && lp.GetValue() == value)
		}
		if ok {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s{%s=%q} not found", name, label, value)
	return 0
}

func TestRunSeries(t *testing.T) {
	m := NewMetrics("v", "1.13.0", false)
	fams := gather(t, m)
	for _, name := range []string{"satrain_learning_rate", "satrain_iterations_target", "satrain_best_validation_loss"} {
		if v := gaugeValue(t, fams, name, "", ""); !math.IsNaN(v) {
			t.Errorf("%s = %v before the run, want NaN", name, v)
		}
	}
	if runtime.GOOS == "linux" && fams["process_resident_memory_bytes"] == nil {
		t.Error("no process_resident_memory_bytes (process collector)")
	}
	if fams["go_goroutines"] == nil {
		t.Error("no go_goroutines (Go collector)")
	}
	p := NewPrometheus(m)
	for _, e := range oneEpoch("runs/a") {
		p.Report(e)
	}
	fams = gather(t, m)
	for name, want := range map[string]float64{"satrain_learning_rate": 1e-3, "satrain_iterations_target": 3, "satrain_best_validation_loss": 2.4} {
		if v := gaugeValue(t, fams, name, "", ""); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// 500 / 2 s and 100 / 0.5 s.
	if v := gaugeValue(t, fams, "satrain_phase_sequences_per_second", "phase", event.PhaseTraining); v != 250 {
		t.Errorf("training rate %v, want 250", v)
	}
	if v := gaugeValue(t, fams, "satrain_phase_sequences_per_second", "phase", event.PhaseValidation); v != 200 {
		t.Errorf("validation rate %v, want 200", v)
	}
	info := fams["satrain_run_info"].GetMetric()
	if len(info) != 1 || info[0].GetGauge().GetValue() != 1 {
		t.Fatalf("satrain_run_info: %v", info)
	}
	labels := map[string]string{}
	for _, lp := range info[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	want := map[string]string{"run_id": "20260102T030405Z-0a0b0c0d", "kind": "standard", "strategy": "standard", "data": "panel.h5", "save_dir": "runs/a", "seed": "7"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("run_info %s = %q, want %q", k, labels[k], v)
		}
	}
	// The next run (compare) replaces the identity instead of adding one.
	p2 := NewPrometheus(m)
	p2.Report(event.RunStarted{RunID: "r2", Kind: event.KindSelectionAware, Strategy: "selection_aware", NumIterations: 20, LR: 4e-5, SaveDir: "runs/b"})
	fams = gather(t, m)
	if info := fams["satrain_run_info"].GetMetric(); len(info) != 1 {
		t.Errorf("%d run_info series after a second run, want 1", len(info))
	}
	if v := gaugeValue(t, fams, "satrain_iterations_target", "", ""); v != 20 {
		t.Errorf("iterations target %v after the second run, want 20", v)
	}
	if v := gaugeValue(t, fams, "satrain_best_validation_loss", "", ""); !math.IsNaN(v) {
		t.Errorf("best validation loss %v at the start of the second run, want NaN", v)
	}
	cs := m.CompareSeries()
	cs.Planned.Set(4)
	cs.Completed.Inc()
	if m.CompareSeries() != cs {
		t.Error("CompareSeries registers twice")
	}
	fams = gather(t, m)
	if fams["satrain_compare_runs"] == nil || fams["satrain_compare_runs_completed_total"] == nil {
		t.Error("compare series missing")
	}
}

func TestJSONLRunFields(t *testing.T) {
	dir := t.TempDir()
	j := NewJSONL()
	for _, e := range oneEpoch(dir) {
		j.Report(e)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, MetricsLog))
	if err != nil {
		t.Fatal(err)
	}
	var r backtest.MetricsRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if r.RunID != "20260102T030405Z-0a0b0c0d" || r.LR != 1e-3 || r.IterationsTarget != 3 || r.BestValLoss == nil || *r.BestValLoss != 2.4 {
		t.Errorf("record %s", b)
	}
	if r.SequencesPerSecond[event.PhaseTraining] != 250 || r.SequencesPerSecond[event.PhaseValidation] != 200 || len(r.SequencesPerSecond) != 2 {
		t.Errorf("sequences_per_second %v, want training 250 and validation 200", r.SequencesPerSecond)
	}
}

func TestSelectedLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "selected.jsonl")
	l := NewSelectedLog(path)
	start := event.RunStarted{RunID: "r1", Kind: event.KindSelectionAware, Horizon: "5d", Tickers: []string{"AAPL", "MSFT", "XOM"},
		Dates: []int32{20180130, 20180131, 20180201}, FirstIteration: 1}
	l.Report(start)
	sel := func(it int, ids []loader.SeqID, scores []float64) {
		l.Report(event.SubsetSelected{Iteration: it, K: len(ids), Selected: ids, Scores: scores})
	}
	sel(1, []loader.SeqID{{Ticker: 2, Day: 1}, {Ticker: 0, Day: 2}}, []float64{1.031, 1.012})
	sel(2, []loader.SeqID{{Ticker: 1, Day: 0}}, []float64{math.NaN()})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	read := func() []SelectedRecord {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []SelectedRecord
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r SelectedRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", sc.Bytes(), err)
			}
			out = append(out, r)
		}
		return out
	}
	recs := read()
	if len(recs) != 3 {
		t.Fatalf("%d lines, want 3", len(recs))
	}
	r := recs[0]
	if r.RunID != "r1" || r.Iteration != 1 || r.Rank != 1 || r.Ticker != "XOM" || r.EndDate != "2018-01-31" || r.Horizon != "5d" ||
		r.ExpectedReturn == nil || *r.ExpectedReturn != 1.031 {
		t.Errorf("first line %+v", r)
	}
	if r := recs[1]; r.Rank != 2 || r.Ticker != "AAPL" || r.EndDate != "2018-02-01" {
		t.Errorf("second line %+v", r)
	}
	if r := recs[2]; r.Iteration != 2 || r.Rank != 1 || r.Ticker != "MSFT" || r.ExpectedReturn != nil {
		t.Errorf("third line %+v (a NaN score is null)", r)
	}
	// Resuming after iteration 1 keeps iteration 1's lines only, then
	// appends; the warning names the file's kind.
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	resume := start
	resume.Start = event.Start{Mode: event.StartResume, Iteration: 1}
	resume.FirstIteration = 2
	l = NewSelectedLog(path)
	l.Report(resume)
	sel(2, []loader.SeqID{{Ticker: 0, Day: 0}}, []float64{1.0})
	l.Close()
	recs = read()
	if len(recs) != 3 || recs[2].Iteration != 2 || recs[2].Ticker != "AAPL" {
		t.Errorf("after resume: %+v", recs)
	}
	if w := `msg="selected-set log: dropped the records after the iteration the run resumes from" path=` + path + " dropped=1 kept_through=1"; !strings.Contains(logs.String(), w) {
		t.Errorf("log:\n%s\nwant %s", logs.String(), w)
	}
	// A resume into another save dir is a new run: the file starts anew.
	resume.Start.Branch = true
	l = NewSelectedLog(path)
	l.Report(resume)
	sel(2, []loader.SeqID{{Ticker: 2, Day: 2}}, []float64{1.0})
	l.Close()
	if recs = read(); len(recs) != 1 || recs[0].Iteration != 2 || recs[0].Ticker != "XOM" {
		t.Errorf("after a resume into another save dir: %+v, want only its own line", recs)
	}
}
