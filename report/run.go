package report

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/satrain/satrain/event"
)

// runTracker follows a run's events for the figures that the Prometheus and
// metrics.jsonl reporters both write: the run's identity, its learning rate
// and target iteration count, the best validation loss so far, and the
// sequences each phase handled in the current iteration (for sequences per
// second).
type runTracker struct {
	started event.RunStarted
	target  int     // iterations (epochs) the run is set to do
	best    float64 // best finite validation loss so far; NaN before the first
	seqs    map[string]int64
}

func newRunTracker() *runTracker {
	return &runTracker{best: math.NaN(), seqs: map[string]int64{}}
}

// observe updates the tracker from one event.
func (t *runTracker) observe(e event.Event) {
	switch e := e.(type) {
	case event.RunStarted:
		t.started, t.best, t.seqs = e, math.NaN(), map[string]int64{}
		t.target = e.NumIterations
		if e.Kind == event.KindStandard {
			t.target = e.Epochs
		}
		if b := e.Start.BestValLoss; e.Start.Mode == event.StartResume && !math.IsNaN(b) && !math.IsInf(b, 0) {
			t.best = b
		}
	case event.IterationStarted:
		t.seqs = map[string]int64{}
		if e.Total > 0 {
			t.target = e.Total
		}
	case event.SampleScored:
		t.seqs[event.PhaseInference] += int64(e.Sampled)
	case event.Trained:
		t.seqs[event.PhaseTraining] += e.Sequences
	case event.ValidationStarted:
		t.seqs[event.PhaseValidation] += int64(e.Sequences)
	case event.Validated:
		if b := e.BestLoss; !math.IsNaN(b) && !math.IsInf(b, 0) {
			t.best = b
		}
	}
}

// rates are the sequences per second of each phase of the iteration that
// phaseSeconds times: the sequences the phase handled over its wall time.
// Phases without sequences or time are left out.
func (t *runTracker) rates(phaseSeconds map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for ph, n := range t.seqs {
		if sec := phaseSeconds[ph]; n > 0 && sec > 0 {
			out[ph] = float64(n) / sec
		}
	}
	return out
}

// RateMetricPhases are the phases with a sequences-per-second series.
var RateMetricPhases = []string{event.PhaseInference, event.PhaseTraining, event.PhaseValidation}

// RunSeries are the series that tell runs apart and chart their settings and
// speed, on the same registry as Metrics, plus the Go runtime and process
// collectors (process_resident_memory_bytes is the memory figure of a CPU
// run).
type RunSeries struct {
	Info           *prometheus.GaugeVec
	LearningRate   prometheus.Gauge
	IterationsGoal prometheus.Gauge
	BestValLoss    prometheus.Gauge
	PhaseRate      *prometheus.GaugeVec

	tr *runTracker
}

// RunInfoLabels are the labels of satrain_run_info, in order.
var RunInfoLabels = []string{"run_id", "kind", "strategy", "data", "save_dir", "seed"}

func newRunSeries(f promauto.Factory, reg prometheus.Registerer) *RunSeries {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := &RunSeries{tr: newRunTracker()}
	r.Info = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_run_info",
		Help: "The current run's identity; always 1. A new run (also a resumed one, and each run of compare) gets a new run_id."}, RunInfoLabels)
	r.LearningRate = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_learning_rate", Help: "AdamW learning rate of the current run."})
	r.IterationsGoal = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_iterations_target",
		Help: "Iterations (epochs for standard training) the current run is set to do."})
	r.BestValLoss = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_best_validation_loss",
		Help: "Lowest validation loss of the run so far (NaN until the first finite one)."})
	r.PhaseRate = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_phase_sequences_per_second",
		Help: "Sequences per second of each phase in the last iteration: scored (inference), sequence-passes trained (training), validated (validation)."},
		[]string{"phase"})
	for _, g := range []prometheus.Gauge{r.LearningRate, r.IterationsGoal, r.BestValLoss} {
		g.Set(math.NaN())
	}
	return r
}

// report sets the series from one event.
func (r *RunSeries) report(e event.Event) {
	r.tr.observe(e)
	switch e := e.(type) {
	case event.RunStarted:
		r.Info.Reset()
		r.Info.WithLabelValues(e.RunID, e.Kind, e.Strategy, e.Data, e.SaveDir, strconv.FormatInt(e.Seed, 10)).Set(1)
		r.LearningRate.Set(e.LR)
		r.IterationsGoal.Set(float64(r.tr.target))
		r.BestValLoss.Set(r.tr.best)
		r.PhaseRate.Reset()
	case event.IterationStarted:
		r.IterationsGoal.Set(float64(r.tr.target))
	case event.Validated:
		r.BestValLoss.Set(r.tr.best)
	case event.IterationEnded:
		for ph, v := range r.tr.rates(e.PhaseSeconds) {
			r.PhaseRate.WithLabelValues(ph).Set(v)
		}
	}
}

// CompareSeries count the runs of `satrain compare`; registered only by
// compare (Metrics.CompareSeries).
type CompareSeries struct {
	Planned   prometheus.Gauge
	Completed prometheus.Counter
}

// CompareSeries registers (once) and returns the compare run counters.
func (m *Metrics) CompareSeries() *CompareSeries {
	if m.compare == nil {
		f := promauto.With(m.Registry)
		m.compare = &CompareSeries{
			Planned: f.NewGauge(prometheus.GaugeOpts{Name: "satrain_compare_runs",
				Help: "Runs (arms x seeds) the comparison is set to train and evaluate."}),
			Completed: f.NewCounter(prometheus.CounterOpts{Name: "satrain_compare_runs_completed_total",
				Help: "Runs of the comparison trained and evaluated so far."}),
		}
	}
	return m.compare
}
