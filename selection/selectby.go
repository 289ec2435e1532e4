package selection

import (
	"math/rand"

	"github.com/satrain/satrain/loader"
)

// Rankings in the method's place (SelectBy): "loss", hard-example mining,
// and "random", the control arm of `satrain compare`. Both keep the
// method's k.

// lossTop is SelectBy "loss": the k sequences with the highest loss
// (sc.Loss), ranked and tie-broken as TopK ranks expected returns.
func lossTop(ids []loader.SeqID, sc Scores, k int) []int {
	return SelectTopKTies(cascadeRank(lossRank(sc.Loss), sc.Candidates), ids, k, sc.TieRTol)
}

// lossRank is the losses as scores to rank.
func lossRank(loss []float32) []float64 {
	rank := make([]float64, len(loss))
	for i, l := range loss {
		rank[i] = float64(l)
	}
	return rank
}

// randomTop is SelectBy "random": a uniform random k of the n sampled
// (all n when k >= n), one rng.Perm(n).
func randomTop(n, k int, rng *rand.Rand) []int {
	perm := rng.Perm(n)
	return append([]int(nil), perm[:min(k, n)]...)
}
