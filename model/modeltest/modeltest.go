// Package modeltest holds the helpers the tests and benchmarks of model and
// trainer share: deterministic random batches and the relative error used to
// compare two numerical paths.
package modeltest

import (
	"math"
	"math/rand"

	"github.com/satrain/satrain/model"
)

// RandomBatch returns n sequences of standard-normal features
// ([n, SeqLen, NumFeatures], row-major) and uniform bin labels
// ([n, NumHorizons]) for cfg, from a fixed seed: the same batch every call.
func RandomBatch(n int, cfg model.Config) ([]float32, []int64) {
	rng := rand.New(rand.NewSource(1))
	x := make([]float32, n*cfg.SeqLen*cfg.NumFeatures)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int64, n*cfg.NumHorizons)
	for i := range y {
		y[i] = int64(rng.Intn(cfg.NumBins))
	}
	return x, y
}

// RelErr is ‖a−b‖₂ / ‖b‖₂ in float64 (the denominator floored at 1e-30).
func RelErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num) / math.Max(math.Sqrt(den), 1e-30)
}
