package trainer

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
)

// Helpers of the loop, selection and metrics tests (names prefixed "lt" so
// they do not clash with other test files of the package).

// ltConfig is a tiny, deterministic CPU selection-aware run.
func ltConfig(data, saveDir string, console *bytes.Buffer) RunConfig {
	return RunConfig{
		NewReporters: ltReporters,
		Data:         data,
		DataOpt:      loader.Options{ValSize: 48, Seed: 5},
		Model:        model.Config{HiddenDim: 16, NumLayers: 1, NumHeads: 2, Dropout: 0.1, SeqLen: 16},
		Step:         model.StepConfig{LR: 1e-3, WeightDecay: 0.01, MaxGradNorm: 1.0, UseAMP: false},

		SampleSize:         96,
		TopK:               12,
		HorizonIdx:         1,
		EpochsPerIteration: 2,
		NumIterations:      3,

		BatchSize:       8,
		InferenceBatch:  32,
		SaveDir:         saveDir,
		ValEvery:        2,
		CheckpointEvery: 2,
		Device:          torch.CPU,
		Seed:            7,
		Threads:         1,
		MetricsAddr:     "",
		Version:         "test",
		Console:         console,
	}
}

// ltStrictCI reports whether a missing optional tool must fail the test.
func ltStrictCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

// ltNeed skips (or fails under CI) when a test dependency is missing.
func ltNeed(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if ltStrictCI() {
		t.Fatalf("%s (required when CI is set)", why)
	}
	t.Skip(why)
}

// ltFreeAddr returns a loopback address whose port was free just now.
func ltFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// ltLines returns the non-empty lines of a file.
func ltLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func ltExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Helpers of the strategy and ties tests are prefixed "ev".

// evRunConfig is a tiny deterministic CPU run (seq_len 16).
func evRunConfig(data, saveDir string) RunConfig {
	return RunConfig{
		NewReporters: ltReporters,
		Data:         data,
		DataOpt:      loader.Options{ValSize: 64, Seed: 5},
		Model:        model.Config{HiddenDim: 16, NumLayers: 1, NumHeads: 2, Dropout: 0.1, SeqLen: 16},
		Step:         model.StepConfig{LR: 1e-3, WeightDecay: 0.01, MaxGradNorm: 1.0},

		SampleSize: 120, TopK: 12, HorizonIdx: 1, EpochsPerIteration: 2, NumIterations: 3,
		BatchSize: 8, InferenceBatch: 32, SaveDir: saveDir, ValEvery: 3, CheckpointEvery: 3,
		Device: torch.CPU, Seed: 7, Threads: 1, Console: &bytes.Buffer{},
	}
}

// evCheckpoint trains a tiny selection-aware model and returns its data file
// and best checkpoint.
func evCheckpoint(t *testing.T) (data, ckpt string) {
	t.Helper()
	data = runtest.Panel(t, 3)
	res, err := RunSelectionAware(context.Background(), evRunConfig(data, t.TempDir()))
	if err != nil {
		t.Fatalf("training: %v", err)
	}
	if res.BestPath == "" {
		t.Fatal("training wrote no best checkpoint")
	}
	return data, res.BestPath
}

// ltReporters is what the command line gives a run (bin/satrain's
// runReporters): report.ForRun over the run's output settings.
func ltReporters(ctx context.Context, cfg RunConfig) ([]event.Reporter, error) {
	return report.ForRun(ctx, report.RunOutputs{Version: cfg.Version, TorchVersion: torch.Version(), CUDA: torch.BuiltWithCUDA(),
		Console: cfg.Console, Progress: cfg.Progress, MetricsAddr: cfg.MetricsAddr, MetricsAnyPort: cfg.MetricsAnyPort,
		LogSelected: cfg.LogSelected, TensorBoard: cfg.TensorBoard, WandbHint: cfg.WandbHint})
}
