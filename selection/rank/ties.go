package rank

import (
	"math"
	"sort"
)

// tieSpanCap bounds how far one group of merged ties may stretch, in units of
// the tolerance: chains of scores each within the tolerance of the next are
// cut once they span this many tolerances, so densely packed scores are not
// merged into one long tie.
const tieSpanCap = 4

// MergeTies returns a copy of scores in which scores that are equal to
// within the relative tolerance rtol carry one value, the mean of their
// group; all other scores are returned unchanged.
//
// Groups are built on the scores sorted high to low: a score joins the group
// of the score above it when they differ by at most rtol·max(|a|,|b|) and the
// group still spans at most 4·rtol relative to its highest score. NaN scores
// are never merged. rtol ≤ 0 returns an unchanged copy.
//
// Why: two float32 evaluations of one input in different places of a batch
// (or batches of other sizes) may differ in their last bits, because a GEMM
// picks its summation order by shape. Merging such scores makes rankings,
// rank IC and top-k picks independent of that noise; ties are then broken by
// a fixed key (ticker, then date) by the caller.
func MergeTies(scores []float64, rtol float64) []float64 {
	out := append([]float64(nil), scores...)
	if rtol <= 0 || len(scores) < 2 {
		return out
	}
	idx := make([]int, 0, len(scores))
	for i, v := range scores {
		if !math.IsNaN(v) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	close := func(a, b, tol float64) bool {
		return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
	}
	for g := 0; g < len(idx); {
		lead := scores[idx[g]]
		e := g + 1
		for e < len(idx) && close(scores[idx[e-1]], scores[idx[e]], rtol) && close(lead, scores[idx[e]], tieSpanCap*rtol) {
			e++
		}
		if e-g > 1 {
			var sum float64
			for _, i := range idx[g:e] {
				sum += scores[i]
			}
			m := sum / float64(e-g)
			for _, i := range idx[g:e] {
				out[i] = m
			}
		}
		g = e
	}
	return out
}
