package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/option"
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
// RunOutputs are a run's outputs besides its checkpoints: what ForRun
// builds a reporter for.
type RunOutputs struct {
	Version        string    // satrain's version, for satrain_build_info
	TorchVersion   string    // libtorch's, likewise
	CUDA           bool      // whether libtorch was built with CUDA
	Console        io.Writer // the console (nil: stdout)
	Progress       bool      // the progress display (bars on a terminal, log lines otherwise)
	MetricsAddr    string    // Prometheus /metrics listen address ("": none; port 0: a free port)
	MetricsAnyPort bool      // MetricsAddr is the default: a busy port moves on (ServeMetrics)
	LogSelected    string    // the selected-set log ("": none)
	TensorBoard    string    // the TensorBoard event folder ("": none)
	WandbHint      bool      // the console says how to sync TensorBoard to W&B
}

// ForRun builds the reporters of a run: the console on o.Console (stdout
// when nil), the progress display when o.Progress, Prometheus series
// (served on o.MetricsAddr when it is set; port 0 picks a free port, whose
// URL the console shows), metrics.jsonl in the run's save dir, the
// selected-set log and TensorBoard event files when asked for. The metrics
// server stops when ctx ends.
func ForRun(ctx context.Context, o RunOutputs) ([]event.Reporter, error) {
	cfg := o
	m := NewMetrics(cfg.Version, cfg.TorchVersion, cfg.CUDA)
	url := ""
	if cfg.MetricsAddr != "" {
		addr, err := ServeMetrics(ctx, m, cfg.MetricsAddr, cfg.MetricsAnyPort)
		if err != nil {
			return nil, option.Errorf("{metrics-addr} %s: %w", cfg.MetricsAddr, err)
		}
		url = "http://" + addr + "/metrics"
	}
	w := cfg.Console
	if w == nil {
		w = os.Stdout
	}
	var prog *Progress
	if cfg.Progress {
		prog = NewProgress(ProgressOptions{})
		w = prog.ConsoleWriter(w) // console lines print above the bars
	}
	rs := []event.Reporter{NewConsole(w, url)}
	if prog != nil {
		rs = append(rs, prog)
	}
	rs = append(rs, NewPrometheus(m), NewJSONL())
	if cfg.LogSelected != "" {
		rs = append(rs, NewSelectedLog(cfg.LogSelected))
	}
	if cfg.TensorBoard != "" {
		rs = append(rs, NewTensorBoard(cfg.TensorBoard, cfg.WandbHint, w))
	}
	return rs, nil
}
