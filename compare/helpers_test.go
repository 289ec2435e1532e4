package compare

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
)

// Helpers of the compare tests (names prefixed "ev", as they were in package
// trainer).

// evData writes a small synthetic panel (20 tickers x 400 days x 4
// features) into a fresh temporary folder.
func evData(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synth.h5")
	if err := loader.Synth(path, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 3}); err != nil {
		t.Fatalf("synthetic data: %v", err)
	}
	return path
}

// evRunConfig is a tiny deterministic CPU run (seq_len 16).
func evRunConfig(data, saveDir string) trainer.RunConfig {
	return trainer.RunConfig{
		Data:    data,
		DataOpt: loader.Options{ValSize: 64, Seed: 5},
		Model:   model.Config{HiddenDim: 16, NumLayers: 1, NumHeads: 2, Dropout: 0.1, SeqLen: 16},
		Step:    model.StepConfig{LR: 1e-3, WeightDecay: 0.01, MaxGradNorm: 1.0},

		SampleSize: 120, TopK: 12, HorizonIdx: 1, EpochsPerIteration: 2, NumIterations: 3,
		BatchSize: 8, InferenceBatch: 32, SaveDir: saveDir, ValEvery: 3, CheckpointEvery: 3,
		Device: torch.CPU, Seed: 7, Threads: 1, Console: &bytes.Buffer{},
	}
}

// evLock pins the test goroutine to its OS thread (libtorch's inference
// mode and autocast are per thread).
func evLock(t *testing.T) {
	t.Helper()
	unlock := torch.LockThread()
	t.Cleanup(unlock)
}

// httpGet returns the status and body of a GET of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
