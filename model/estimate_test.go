package model

import (
	"strings"
	"testing"

	"github.com/satrain/satrain/torch"
)

// TestSlowModelWarning (issue 23, item 8): the default 201M model scoring
// the default 10,000-sequence sample on 16 CPU threads is estimated at hours
// and warned, naming the largest preset that fits; the medium preset on the
// CPU and the default model on a GPU are not.
func TestSlowModelWarning(t *testing.T) {
	p := Presets["default"]
	mc := Config{NumFeatures: 16, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: 4, NumBins: 10, SeqLen: p.SeqLen}
	// 1.07e12 FLOPs a sequence x 10,000 / (16 x 50 GFLOP/s) = 3.7 h.
	if e := EstimatePass(mc, 10000, torch.CPU, 16); e.Hours() < 3 || e.Hours() > 4.5 {
		t.Errorf("default model, 10,000 sequences, 16 CPU threads: %v, want about 3.7 h", e)
	}
	w := SlowModelWarning(mc, 10000, "a scoring pass", 64, torch.CPU, 16)
	for _, want := range []string{"201.6M parameters", "on cpu is estimated at 4 h for a scoring pass of 10,000 sequences",
		"inference batch of 64 (about 85 s)", "--preset medium (3.2M parameters, seq_len 256) is estimated at"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
	m := Presets["medium"]
	med := mc
	med.HiddenDim, med.NumLayers, med.NumHeads, med.SeqLen = m.HiddenDim, m.NumLayers, m.NumHeads, m.SeqLen
	if w := SlowModelWarning(med, 10000, "a scoring pass", 64, torch.CPU, 2); w != "" {
		t.Errorf("medium preset on 2 CPU threads warned: %s", w)
	}
	if w := SlowModelWarning(mc, 10000, "a scoring pass", 64, torch.CUDA(0), 0); w != "" {
		t.Errorf("default model on a GPU warned: %s", w)
	}
}
