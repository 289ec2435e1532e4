package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/satrain/satrain/internal/atomicfile/atomictest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// TestPredictWriteIsAtomic: `predict --out` over an earlier predictions CSV
// on a disk that fills up (RLIMIT_FSIZE) fails with EFBIG and leaves the
// earlier file byte-identical, with no temporary file.
func TestPredictWriteIsAtomic(t *testing.T) {
	defer torch.LockThread()()
	dir := t.TempDir()
	data := filepath.Join(dir, "synth.h5")
	if err := loader.Synth(data, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	save := filepath.Join(dir, "run")
	args := append([]string{"selection-aware", "--data", data, "--save-dir", save, "--num-iterations", "2", "--val-every", "2",
		"--checkpoint-every", "2", "--metrics-addr", "", "--use-wandb=false"}, evTiny...)
	if err := evRun(t, args...); err != nil {
		t.Fatalf("training: %v", err)
	}
	ckpt := filepath.Join(save, "best_model_selection_aware.pt")
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(out, "preds.csv")
	predict := func(split string) error {
		return evRun(t, "predict", "--checkpoint", ckpt, "--device", "cpu", "--split", split, "--out", csvPath, "--progress=false")
	}
	if err := predict("val"); err != nil {
		t.Fatalf("predict: %v", err)
	}
	old, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 10
	if len(old) <= limit {
		t.Fatalf("predictions CSV is %d bytes, within the %d-byte limit: the test would prove nothing", len(old), limit)
	}
	restore := atomictest.LimitFileSize(t, limit)
	err = predict("test")
	restore()
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("predict under a %d-byte file size limit: %v, want EFBIG", limit, err)
	}
	atomictest.CheckIntact(t, csvPath, old)
}
