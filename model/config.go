package model

import (
	"fmt"
	"sort"

	"github.com/satrain/satrain/option"
)

// Config is the architecture of the return-bin transformer.
type Config struct {
	NumFeatures int     // F, per-step input features
	HiddenDim   int     // d
	NumLayers   int     // encoder layers
	NumHeads    int     // attention heads (d must be divisible by it)
	NumHorizons int     // H
	NumBins     int     // B
	Dropout     float64 // on embeddings, attention output and FFN output
	SeqLen      int     // window length the model is trained on (any length works at inference)
}

// Preset is a named model size.
type Preset struct {
	Name                           string
	HiddenDim, NumLayers, NumHeads int
	SeqLen                         int
	Description                    string
}

// Presets are the named sizes; "default" is the method's configuration.
var Presets = map[string]Preset{
	"tiny":    {"tiny", 32, 2, 4, 32, "CPU demos and tests"},
	"small":   {"small", 128, 4, 4, 128, "CPU experiments and benchmarks"},
	"medium":  {"medium", 256, 4, 8, 256, "CPU real-data runs"},
	"default": {"default", 1024, 16, 16, 2000, "the method's model (GPU)"},
}

// PresetNames lists the presets in size order.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return Presets[names[i]].HiddenDim < Presets[names[j]].HiddenDim })
	return names
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.NumFeatures < 1:
		return fmt.Errorf("model: num features must be >= 1, got %d", c.NumFeatures)
	case c.HiddenDim < 1:
		return option.Errorf("model: {hidden-dim} must be >= 1, got %d", c.HiddenDim)
	case c.NumHeads < 1:
		return option.Errorf("model: {num-heads} must be >= 1, got %d", c.NumHeads)
	case c.HiddenDim%c.NumHeads != 0:
		return option.Errorf("model: {hidden-dim} %d is not divisible by {num-heads} %d", c.HiddenDim, c.NumHeads)
	case c.HiddenDim%2 != 0:
		return option.Errorf("model: {hidden-dim} must be even for the sinusoidal position table, got %d", c.HiddenDim)
	case c.NumLayers < 1:
		return option.Errorf("model: {num-layers} must be >= 1, got %d", c.NumLayers)
	case c.NumHorizons < 1 || c.NumBins < 2:
		return fmt.Errorf("model: need >= 1 horizon and >= 2 bins, got %d and %d", c.NumHorizons, c.NumBins)
	case c.Dropout < 0 || c.Dropout >= 1:
		return option.Errorf("model: {dropout} must be in [0, 1), got %g", c.Dropout)
	case c.SeqLen < 1:
		return option.Errorf("model: {seq-len} must be >= 1, got %d", c.SeqLen)
	}
	return nil
}

// NumParams is the parameter count of the architecture.
func (c Config) NumParams() int64 {
	d, f := int64(c.HiddenDim), int64(c.NumFeatures)
	perLayer := 2*d + (3*d*d + 3*d) + (d*d + d) + 2*d + (4*d*d + 4*d) + (4*d*d + d)
	out := int64(c.NumHorizons * c.NumBins)
	return d*f + d + int64(c.NumLayers)*perLayer + 2*d + out*d + out
}

// ForwardFLOPs is the matrix-multiply FLOP count of one forward pass over one
// sequence of length s for the full model (the convention used for MFU):
// 2 x matmul weights x s + 4 s² d per layer (QKᵀ and PV).
func (c Config) ForwardFLOPs(s int) float64 {
	d, f, L := float64(c.HiddenDim), float64(c.NumFeatures), float64(c.NumLayers)
	S := float64(s)
	weights := d*f + L*(12*d*d) + d*float64(c.NumHorizons*c.NumBins)
	return 2*weights*S + 4*S*S*d*L
}

func (c Config) String() string {
	return fmt.Sprintf("d=%d layers=%d heads=%d dropout=%g seq_len=%d features=%d horizons=%d bins=%d",
		c.HiddenDim, c.NumLayers, c.NumHeads, c.Dropout, c.SeqLen, c.NumFeatures, c.NumHorizons, c.NumBins)
}

// FormatParams prints 201,404,456 as "201.4M".
func FormatParams(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// HorizonName is "5d" for 5.
func HorizonName(days int) string { return fmt.Sprintf("%dd", days) }
