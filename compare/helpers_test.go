package compare

import (
	"bytes"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
)

// Helpers of the compare tests (names prefixed "ev", as they were in package
// trainer).

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
