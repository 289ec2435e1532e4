package model

import "math"

// float32 unit roundoff u = 2⁻²⁴ (half the machine epsilon).
const f32UnitRoundoff = 1.0 / (1 << 24)

// ForwardRoundingTerms is the number of float32 roundings on the longest path
// of the model's forward pass, counted as the length of each reduction on
// it: input_proj (F); per layer two LayerNorms (2d each: mean and variance),
// qkv (d), scores (head dim), softmax and attention·v (s each), out (d), fc1
// (d), fc2 (4d); final LayerNorm (2d) and head (d).
func (cfg Config) ForwardRoundingTerms() int {
	d, s := cfg.HiddenDim, cfg.SeqLen
	perLayer := 2*d + d + d/max(cfg.NumHeads, 1) + 2*s + d + 2*d + d + 4*d
	return cfg.NumFeatures + cfg.NumLayers*perLayer + 2*d + d
}

// ScoreTieRTol is the relative tolerance within which two scores (expected
// returns or losses) of a model with this configuration are treated as equal
// when ranking: 2·√n·u, with n = Config.ForwardRoundingTerms (the reductions of one
// forward pass) and u = 2⁻²⁴. Rounding errors of n operations whose order a
// kernel picks by shape accumulate like a random walk, about √n·u relative
// (Higham, Accuracy and Stability of Numerical Algorithms, §2.8), and the
// expected return Σ softmax(z)·c contracts logit errors (its gradient's ℓ1
// norm is the spread of the bin centers, below 1 for gross returns). So two
// evaluations of one input in different batches agree to well within it.
// Examples: the tiny preset (seq_len 32) gives about 4e-6; the default
// (1024×16, seq_len 2000) about 6e-5.
func ScoreTieRTol(cfg Config) float64 {
	return 2 * math.Sqrt(float64(cfg.ForwardRoundingTerms())) * f32UnitRoundoff
}
