package model

import (
	"testing"

	"github.com/satrain/satrain/torch"
)

// The method's default model: d=1024, 16 layers, 16 heads, 16 features,
// 4 horizons x 10 bins has 201,600,040 parameters ("about 201M"), the same
// count python/satrain_model.py reports for the same configuration.
func TestDefaultModelSize(t *testing.T) {
	defer torch.LockThread()()
	p := Presets["default"]
	cfg := Config{NumFeatures: 16, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: 4, NumBins: 10, Dropout: 0.15, SeqLen: p.SeqLen}
	if got := cfg.NumParams(); got != 201_600_040 {
		t.Fatalf("formula: %d parameters, want 201,600,040", got)
	}
	m, err := New(cfg, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	if got := m.NumParams(); got != 201_600_040 {
		t.Fatalf("built model has %d parameters, want 201,600,040", got)
	}
	if len(m.Parameters()) != len(cfg.ParamSpecs()) || len(m.Parameters()) != 2+16*12+4 {
		t.Fatalf("%d parameter tensors", len(m.Parameters()))
	}
	if FormatParams(m.NumParams()) != "201.6M" {
		t.Fatalf("banner count %q", FormatParams(m.NumParams()))
	}
	// PyTorch's nn.Linear init bound 1/sqrt(fan_in): fc2 (fan_in 4096) within ±1/64.
	w, err := m.Param("layers.3.ffn.fc2.weight").Float32s()
	if err != nil {
		t.Fatal(err)
	}
	var maxAbs float32
	for _, v := range w {
		if v > maxAbs {
			maxAbs = v
		} else if -v > maxAbs {
			maxAbs = -v
		}
	}
	if maxAbs > 1.0/64 || maxAbs < 0.9/64 {
		t.Fatalf("fc2 init max |w| %v, want just under 1/64", maxAbs)
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{NumFeatures: 4, HiddenDim: 32, NumLayers: 1, NumHeads: 4, NumHorizons: 4, NumBins: 10, SeqLen: 8}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"heads":   func(c *Config) { c.NumHeads = 5 },
		"odd":     func(c *Config) { c.HiddenDim, c.NumHeads = 33, 3 },
		"layers":  func(c *Config) { c.NumLayers = 0 },
		"dropout": func(c *Config) { c.Dropout = 1 },
		"bins":    func(c *Config) { c.NumBins = 1 },
		"seq":     func(c *Config) { c.SeqLen = 0 },
	} {
		c := good
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: invalid config accepted: %+v", name, c)
		}
	}
}
