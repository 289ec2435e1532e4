package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/option"
)

// Metrics are a run's Prometheus series, on their own registry. Gauges of
// values a run measures (losses, expected returns, overlap, phase durations,
// device memory) read NaN until the first measurement: a chart shows a gap,
// never a perfect 0. The device memory gauges stay NaN on the CPU, which
// does not measure them.
type Metrics struct {
	Registry *prometheus.Registry

	Iteration          prometheus.Gauge
	TrainLoss          prometheus.Gauge
	ValidationLoss     prometheus.Gauge
	ExpectedMean       prometheus.Gauge
	ExpectedMedian     prometheus.Gauge
	TopKMean           prometheus.Gauge
	TopKMin            prometheus.Gauge
	SequencesScored    prometheus.Counter
	SequencesTrained   prometheus.Counter
	StepsSkipped       prometheus.Counter
	IterationDuration  prometheus.Histogram
	PhaseDuration      *prometheus.GaugeVec
	PhaseSecondsTotal  *prometheus.CounterVec
	DeviceMemory       prometheus.Gauge
	DeviceMemoryPeak   prometheus.Gauge
	InferenceBatchSize prometheus.Gauge
	BuildInfo          *prometheus.GaugeVec
	OverlapPrevious    prometheus.Gauge
	StratumShare       *prometheus.GaugeVec
	Run                *RunSeries // run identity, settings, speed; Go and process collectors

	compare *CompareSeries
}

// NewMetrics registers every series on a fresh registry.
func NewMetrics(version, torchVersion string, cuda bool) *Metrics {
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	m := &Metrics{Registry: reg}
	m.Iteration = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_iteration", Help: "Current training iteration (selection-aware) or epoch (standard)."})
	m.TrainLoss = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_train_loss", Help: "Mean training loss of the last iteration (NaN until the first)."})
	m.ValidationLoss = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_validation_loss", Help: "Loss on the validation set at the last validation (NaN until the first)."})
	m.ExpectedMean = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_expected_return_mean", Help: "Mean expected gross return over the scored sample."})
	m.ExpectedMedian = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_expected_return_median", Help: "Median expected gross return over the scored sample."})
	m.TopKMean = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_topk_expected_return_mean", Help: "Mean expected gross return of the selected top-k."})
	m.TopKMin = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_topk_expected_return_min", Help: "Lowest expected gross return in the selected top-k."})
	m.SequencesScored = f.NewCounter(prometheus.CounterOpts{Name: "satrain_sequences_scored_total", Help: "Sequences scored by inference for selection."})
	m.SequencesTrained = f.NewCounter(prometheus.CounterOpts{Name: "satrain_sequences_trained_total", Help: "Sequence-passes trained (sequences x epochs)."})
	m.StepsSkipped = f.NewCounter(prometheus.CounterOpts{Name: "satrain_steps_skipped_total", Help: "Training steps skipped for a non-finite loss or gradient."})
	m.IterationDuration = f.NewHistogram(prometheus.HistogramOpts{Name: "satrain_iteration_duration_seconds", Help: "Wall time of one iteration.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)})
	m.PhaseDuration = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_phase_duration_seconds", Help: "Wall time of each phase in the last iteration (NaN until the first iteration ends; 0 for a phase it did not run)."}, []string{"phase"})
	m.PhaseSecondsTotal = f.NewCounterVec(prometheus.CounterOpts{Name: "satrain_phase_seconds_total", Help: "Wall time spent in each phase since start."}, []string{"phase"})
	m.DeviceMemory = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_device_memory_allocated_bytes", Help: "CUDA memory allocated by tensors at the end of the last iteration (NaN until measured, and on the CPU)."})
	m.DeviceMemoryPeak = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_device_memory_peak_bytes", Help: "Peak CUDA memory allocated by tensors (NaN until measured, and on the CPU)."})
	m.InferenceBatchSize = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_inference_batch_size", Help: "Current inference batch size (halved on out-of-memory)."})
	m.BuildInfo = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_build_info", Help: "Build information; always 1."}, []string{"version", "goversion", "torch_version", "cuda"})
	m.OverlapPrevious = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_selected_overlap_ratio", Help: "Share of this iteration's selected sequences also selected in the previous iteration."})
	m.StratumShare = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_selected_stratum_share", Help: "Share of this iteration's selected sequences in each stratum (--stratify only)."}, []string{"stratum"})
	for _, g := range []prometheus.Gauge{m.Iteration, m.TrainLoss, m.ValidationLoss, m.ExpectedMean, m.ExpectedMedian, m.TopKMean, m.TopKMin, m.OverlapPrevious, m.DeviceMemory, m.DeviceMemoryPeak} {
		g.Set(math.NaN())
	}
	m.Run = newRunSeries(f, reg)
	cudaLabel := "false"
	if cuda {
		cudaLabel = "true"
	}
	m.BuildInfo.WithLabelValues(version, runtime.Version(), torchVersion, cudaLabel).Set(1)
	for _, p := range event.AllPhases {
		m.PhaseDuration.WithLabelValues(p).Set(math.NaN())
		m.PhaseSecondsTotal.WithLabelValues(p)
	}
	return m
}

// Serve starts the metrics server on addr (empty: none) and returns the
// address it listens on (with the port chosen when addr's port is 0). It
// serves /metrics and /healthz only, with read and write timeouts; it stops
// when ctx ends. The listener is bound before Serve returns, so a bad or busy
// address fails at once, with a message that suggests a way out.
func (m *Metrics) Serve(ctx context.Context, addr string) (boundAddr string, err error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return "", option.Errorf("%s is in use (another satrain run?): pass {metrics-addr} with another port (e.g. %s), 127.0.0.1:0 for any free port, or an empty value for no metrics server",
				addr, nextPort(addr))
		}
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, Timeout: 10 * time.Second}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 1 << 16}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}

// nextPort suggests addr with the port one higher ("127.0.0.1:9109" for
// "127.0.0.1:9108").
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:9109"
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil || p <= 0 || p >= 65535 {
		return net.JoinHostPort(host, "9109")
	}
	return net.JoinHostPort(host, fmt.Sprint(p+1))
}

// Prometheus sets a run's series from its events.
type Prometheus struct {
	M *Metrics
}

// NewPrometheus reports into m.
func NewPrometheus(m *Metrics) *Prometheus { return &Prometheus{M: m} }

// Report implements event.Reporter.
func (p *Prometheus) Report(e event.Event) {
	m := p.M
	m.Run.report(e)
	switch e := e.(type) {
	case event.RunStarted:
		m.Iteration.Set(float64(e.FirstIteration - 1))
		m.InferenceBatchSize.Set(float64(e.InferenceBatch))
	case event.InferenceBatchChanged:
		m.InferenceBatchSize.Set(float64(e.Size))
	case event.IterationStarted:
		m.Iteration.Set(float64(e.Iteration))
	case event.SampleScored:
		m.ExpectedMean.Set(e.Mean)
		m.ExpectedMedian.Set(e.Median)
		m.SequencesScored.Add(float64(e.Sampled))
	case event.SubsetSelected:
		m.TopKMean.Set(e.TopKMean)
		m.TopKMin.Set(e.TopKMin)
		if !math.IsNaN(e.Overlap) {
			m.OverlapPrevious.Set(e.Overlap)
		}
		for stratum, share := range e.StratumShare {
			m.StratumShare.WithLabelValues(stratum).Set(share)
		}
	case event.StepSkipped:
		m.StepsSkipped.Inc()
	case event.Trained:
		m.TrainLoss.Set(e.Loss)
		m.SequencesTrained.Add(float64(e.Sequences))
	case event.Validated:
		m.ValidationLoss.Set(e.Loss)
	case event.IterationEnded:
		for _, ph := range event.AllPhases {
			m.PhaseDuration.WithLabelValues(ph).Set(e.PhaseSeconds[ph])
			m.PhaseSecondsTotal.WithLabelValues(ph).Add(e.PhaseSeconds[ph])
		}
		if e.Iteration > 0 {
			m.IterationDuration.Observe(e.IterationSeconds)
		}
		if e.OnDevice {
			m.DeviceMemory.Set(float64(e.DeviceMemoryAllocated))
			m.DeviceMemoryPeak.Set(float64(e.DeviceMemoryPeak))
		}
	}
}
