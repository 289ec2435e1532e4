package trainer

import (
	"github.com/satrain/satrain/trainer/event"
	"github.com/satrain/satrain/trainer/report"
)

// DefaultMetricsAddr is where /metrics listens unless --metrics-addr says
// otherwise: loopback only. The container sets 0.0.0.0:9108.
const DefaultMetricsAddr = "127.0.0.1:9108"

// Phases of an iteration, as label values of the phase metrics.
const (
	PhaseSampling   = event.PhaseSampling
	PhaseInference  = event.PhaseInference
	PhaseSelection  = event.PhaseSelection
	PhaseTraining   = event.PhaseTraining
	PhaseValidation = event.PhaseValidation
	PhaseCheckpoint = event.PhaseCheckpoint
)

// AllPhases in iteration order.
var AllPhases = event.AllPhases

// Metrics are a run's Prometheus series (see report.Metrics).
type Metrics = report.Metrics

// NewMetrics registers every series on a fresh registry.
func NewMetrics(version, torchVersion string, cuda bool) *Metrics {
	return report.NewMetrics(version, torchVersion, cuda)
}
