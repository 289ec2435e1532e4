package trainer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMetricsAddr is where /metrics listens unless --metrics-addr says
// otherwise: loopback only. The container sets 0.0.0.0:9108.
const DefaultMetricsAddr = "127.0.0.1:9108"

// Phases of an iteration, as label values of the phase metrics.
const (
	PhaseSampling   = "sampling"
	PhaseInference  = "inference"
	PhaseSelection  = "selection"
	PhaseTraining   = "training"
	PhaseValidation = "validation"
	PhaseCheckpoint = "checkpoint"
)

// AllPhases in iteration order.
var AllPhases = []string{PhaseSampling, PhaseInference, PhaseSelection, PhaseTraining, PhaseValidation, PhaseCheckpoint}

// Metrics are a run's Prometheus series, on their own registry.
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
}

// NewMetrics registers every series on a fresh registry.
func NewMetrics(version, torchVersion string, cuda bool) *Metrics {
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	m := &Metrics{Registry: reg}
	m.Iteration = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_iteration", Help: "Current training iteration (selection-aware) or epoch (standard)."})
	m.TrainLoss = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_train_loss", Help: "Mean training loss of the last iteration."})
	m.ValidationLoss = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_validation_loss", Help: "Loss on the validation set at the last validation."})
	m.ExpectedMean = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_expected_return_mean", Help: "Mean expected gross return over the scored sample."})
	m.ExpectedMedian = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_expected_return_median", Help: "Median expected gross return over the scored sample."})
	m.TopKMean = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_topk_expected_return_mean", Help: "Mean expected gross return of the selected top-k."})
	m.TopKMin = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_topk_expected_return_min", Help: "Lowest expected gross return in the selected top-k."})
	m.SequencesScored = f.NewCounter(prometheus.CounterOpts{Name: "satrain_sequences_scored_total", Help: "Sequences scored by inference for selection."})
	m.SequencesTrained = f.NewCounter(prometheus.CounterOpts{Name: "satrain_sequences_trained_total", Help: "Sequence-passes trained (sequences x epochs)."})
	m.StepsSkipped = f.NewCounter(prometheus.CounterOpts{Name: "satrain_steps_skipped_total", Help: "Training steps skipped for a non-finite loss or gradient."})
	m.IterationDuration = f.NewHistogram(prometheus.HistogramOpts{Name: "satrain_iteration_duration_seconds", Help: "Wall time of one iteration.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)})
	m.PhaseDuration = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_phase_duration_seconds", Help: "Wall time of each phase in the last iteration."}, []string{"phase"})
	m.PhaseSecondsTotal = f.NewCounterVec(prometheus.CounterOpts{Name: "satrain_phase_seconds_total", Help: "Wall time spent in each phase since start."}, []string{"phase"})
	m.DeviceMemory = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_device_memory_allocated_bytes", Help: "CUDA memory allocated by tensors (0 on CPU)."})
	m.DeviceMemoryPeak = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_device_memory_peak_bytes", Help: "Peak CUDA memory allocated by tensors (0 on CPU)."})
	m.InferenceBatchSize = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_inference_batch_size", Help: "Current inference batch size (halved on out-of-memory)."})
	m.BuildInfo = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_build_info", Help: "Build information; always 1."}, []string{"version", "goversion", "torch_version", "cuda"})
	m.OverlapPrevious = f.NewGauge(prometheus.GaugeOpts{Name: "satrain_selected_overlap_ratio", Help: "Share of this iteration's selected sequences also selected in the previous iteration."})
	m.StratumShare = f.NewGaugeVec(prometheus.GaugeOpts{Name: "satrain_selected_stratum_share", Help: "Share of this iteration's selected sequences in each stratum (--stratify only)."}, []string{"stratum"})
	cudaLabel := "false"
	if cuda {
		cudaLabel = "true"
	}
	m.BuildInfo.WithLabelValues(version, runtime.Version(), torchVersion, cudaLabel).Set(1)
	for _, p := range AllPhases {
		m.PhaseDuration.WithLabelValues(p)
		m.PhaseSecondsTotal.WithLabelValues(p)
	}
	return m
}

// Serve starts the metrics server on addr (empty: none). It serves /metrics
// and /healthz only, with read and write timeouts; it stops when ctx ends.
// The listener is bound before Serve returns, so a bad address fails at once.
func (m *Metrics) Serve(ctx context.Context, addr string) (boundAddr string, err error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
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
