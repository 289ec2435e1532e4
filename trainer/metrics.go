package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/report"
)

// DefaultMetricsAddr is where /metrics listens unless --metrics-addr says
// otherwise: loopback only. The container sets 0.0.0.0:9108.
const DefaultMetricsAddr = "127.0.0.1:9108"

// metricsPortTries is how many ports after a busy default one ServeMetrics
// tries: enough for every run a machine holds at once.
const metricsPortTries = 100

// ServeMetrics serves m on addr (a run's and compare's /metrics). With anyPort (addr is the default, not
// given), a busy port moves on to the next free one above it, with a warning
// naming the URL; any other failure, or a busy address the user chose, is
// returned.
func ServeMetrics(ctx context.Context, m *Metrics, addr string, anyPort bool) (string, error) {
	bound, err := m.Serve(ctx, addr)
	if err == nil || !anyPort {
		return bound, err
	}
	host, portText, perr := net.SplitHostPort(addr)
	port, aerr := strconv.Atoi(portText)
	if perr != nil || aerr != nil || port == 0 || !portBusy(addr) {
		return "", err
	}
	for p := port + 1; p <= min(port+metricsPortTries, 65535); p++ {
		cand := net.JoinHostPort(host, strconv.Itoa(p))
		if portBusy(cand) {
			continue
		}
		// Free a moment ago; another process may take it first, so a
		// failure here moves on to the next one too.
		if b, serr := m.Serve(ctx, cand); serr == nil {
			slog.Warn(fmt.Sprintf("metrics: %s is in use (another satrain run?); serving http://%s/metrics instead (--metrics-addr chooses)", addr, b))
			return b, nil
		}
	}
	return "", err
}

// portBusy reports whether listening on addr fails because another socket
// holds it (the one failure a default address recovers from).
func portBusy(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return false
	}
	return errors.Is(err, syscall.EADDRINUSE)
}

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
