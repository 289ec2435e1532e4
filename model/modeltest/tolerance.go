package modeltest

import (
	"math"

	"github.com/satrain/satrain/model"
)

// Tolerances for comparing two float32 evaluations of the same model output
// that reach it by different, equally correct roads: PyTorch against
// satrain, or one batch shape against another (a GEMM picks its kernel, and
// so its summation order, by shape). Each is derived from the rounding of the
// computation, never from what one machine printed.

// UnitRoundoff is u = 2⁻²⁴, the unit roundoff of float32 (half its machine
// epsilon). Higham (Accuracy and Stability of Numerical Algorithms, §3.1): a
// float32 dot product of length n is exact to γ_n = nu/(1−nu) ≈ n·u of the sum
// of absolute products, whatever the summation order a BLAS kernel picks;
// errors of a chain of such operations add to first order.
const UnitRoundoff = 1.0 / (1 << 24)

// LogitBound bounds |Δz| of one logit when the largest logit is maxAbs.
func LogitBound(cfg model.Config, maxAbs float64) float64 {
	return float64(cfg.ForwardRoundingTerms()) * UnitRoundoff * math.Max(maxAbs, 1)
}

// ScoreBound bounds |Δ| of an expected return Σ_b softmax(z)_b·c_b between two
// evaluations whose logits differ by at most dz: its gradient in z is
// p_b(c_b − E[c]), whose ℓ1 norm is at most max c − min c; plus the rounding
// of a B-term sum of values up to max |c|.
func ScoreBound(dz float64, centers [][]float32) float64 {
	lo, hi, big, nb := math.Inf(1), math.Inf(-1), 0.0, 0
	for _, row := range centers {
		nb = max(nb, len(row))
		for _, c := range row {
			lo, hi = math.Min(lo, float64(c)), math.Max(hi, float64(c))
			big = math.Max(big, math.Abs(float64(c)))
		}
	}
	return (hi-lo)*dz + float64(2*nb+4)*UnitRoundoff*big
}

// LossBound bounds |Δ| of a (label-smoothed) cross-entropy averaged over
// horizons between two evaluations whose logits differ by at most dz: its
// gradient in z has ℓ1 norm at most 2; plus the rounding of log-sum-exp over
// B bins of a value of size loss.
func LossBound(dz float64, numBins int, loss float64) float64 {
	return 2*dz + float64(4*numBins+8)*UnitRoundoff*math.Max(math.Abs(loss), 1)
}

// MaxAbs32 is max |v| over v.
func MaxAbs32(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}
