package checkpoint

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/testenv"
	"github.com/satrain/satrain/model"

	"github.com/satrain/satrain/torch"
)

// legacyCheckpoint was written by Save at commit 3239a93, when
// checkpoints were pickled by torch::pickle_save (with libtorch's type tags
// and pickled floats): a 1-layer d=8 model, with optimizer state, meta
// {selection_aware, iteration 4, best 1.25 at 3, seed 9, synthetic.h5}.
const legacyCheckpoint = "testdata/checkpoint_tagged_v1.pt"

// TestCheckpointOldFormatStillLoads: a checkpoint in the old (tagged) format
// loads, checksum verified; saved again it is in the safe format, which
// PyTorch's torch.load(weights_only=True) opens, with the same weights,
// optimizer state and meta.
func TestCheckpointOldFormatStillLoads(t *testing.T) {
	defer torch.LockThread()()
	raw, err := os.ReadFile(legacyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("restore_type_tag")) {
		t.Fatalf("%s is not in the old tagged format", legacyCheckpoint)
	}
	old, err := Load(legacyCheckpoint)
	if err != nil {
		t.Fatalf("old-format checkpoint: %v", err)
	}
	defer old.Free()
	want := Meta{Kind: event.KindSelectionAware, Iteration: 4, BestValLoss: 1.25, BestIteration: 3, Seed: 9, DataPath: "synthetic.h5",
		DataIdentity: "test", SequencesScored: 400, SequencesTrained: 40, InferenceBatch: 4, Run: map[string]string{"top-k": "10"}}
	if !reflect.DeepEqual(old.Meta, want) || old.Config.Dropout != 0.1 || old.Config.HiddenDim != 8 || !old.HasOptim {
		t.Fatalf("old format: meta %+v, config %+v, optimizer %v; want %+v", old.Meta, old.Config, old.HasOptim, want)
	}
	eng := restoredEngine(t, old)
	m := eng.Model
	path := filepath.Join(t.TempDir(), "resaved.pt")
	if err := Save(path, eng, old.Meta, true); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(path)
	if bytes.Contains(raw, []byte("restore_type_tag")) {
		t.Fatal("a checkpoint written now still holds libtorch's type tags")
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	if !reflect.DeepEqual(back.Meta, old.Meta) || back.Config != old.Config || !back.HasOptim {
		t.Fatalf("re-saved: meta %+v config %+v, old %+v %+v", back.Meta, back.Config, old.Meta, old.Config)
	}
	m2, err := back.NewModel(torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Free()
	for i, p := range m.Parameters() {
		a, _ := p.Float32s()
		b, _ := m2.Parameters()[i].Float32s()
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs after re-saving", m.ParamNames()[i])
		}
	}

	// PyTorch's safe loader: refuses the old file, opens the new one.
	py := testenv.Python(t, "torch")
	script := `
import sys, torch
try:
    torch.load(sys.argv[1], weights_only=True)
    print("old file opened")
except Exception as e:
    assert "restore_type_tag" in str(e), e
d = torch.load(sys.argv[2], weights_only=True)
assert d["format"] == "satrain-checkpoint" and d["iteration"] == 4 and float(d["best_val_loss"]) == 1.25, d
assert float(d["config"]["dropout"]) == 0.1 and d["config"]["hidden_dim"] == 8
print("ok")
`
	out, err := exec.Command(py, "-c", script, legacyCheckpoint, path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// restoredEngine builds l's model on the CPU with an engine holding l's
// optimizer state; both are freed when the test ends.
func restoredEngine(t *testing.T, l *Loaded) *model.Engine {
	t.Helper()
	m, err := l.NewModel(torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Free)
	eng, err := model.NewEngine(m, model.StepConfig{LR: 2e-3, WeightDecay: 0.01}, l.Centers, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Free)
	if err := l.RestoreOptimizer(eng); err != nil {
		t.Fatal(err)
	}
	return eng
}
