package trainer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/torch"
)

// TestReadCheckpointInfo: the record a checkpoint was written with (kind,
// iteration, seed, data path, the run's flags, the model shape) reads back,
// and a damaged file is refused with its name.
func TestReadCheckpointInfo(t *testing.T) {
	defer torch.LockThread()()
	cfg := ModelConfig{NumFeatures: 3, HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: 2, NumBins: 4, Dropout: 0.25, SeqLen: 8}
	m, err := NewModel(cfg, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	centers := [][]float32{{0.9, 1, 1.05, 1.1}, {0.8, 1, 1.1, 1.2}}
	eng, err := NewEngine(m, StepConfig{LR: 1e-3}, centers, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	path := filepath.Join(t.TempDir(), "ck.pt")
	run := map[string]string{"sample-size": "3000", "top-k": "30", "lr": "0.001", "save-dir": "runs/a"}
	meta := Meta{Kind: KindSelectionAware, Iteration: 7, BestValLoss: 1.5, BestIteration: 5, Seed: 9, DataPath: "panel.h5", Run: run}
	if err := SaveCheckpoint(path, eng, meta, true); err != nil {
		t.Fatal(err)
	}
	info, err := ReadCheckpointInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != path || info.Meta.Kind != KindSelectionAware || info.Meta.Iteration != 7 || info.Meta.Seed != 9 ||
		info.Meta.DataPath != "panel.h5" || !info.HasOptim {
		t.Errorf("info %+v", info)
	}
	if info.Config != cfg {
		t.Errorf("config %+v, want %+v", info.Config, cfg)
	}
	for k, v := range run {
		if info.Meta.Run[k] != v {
			t.Errorf("Run[%q] = %q, want %q", k, info.Meta.Run[k], v)
		}
	}
	if len(info.Meta.Run) != len(run) {
		t.Errorf("Run %v, want %v", info.Meta.Run, run)
	}

	b, _ := os.ReadFile(path)
	bad := filepath.Join(t.TempDir(), "bad.pt")
	if err := os.WriteFile(bad, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpointInfo(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("truncated checkpoint: err %v, want an error naming %s", err, bad)
	}
}
