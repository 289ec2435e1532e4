package selection

import (
	"fmt"
	"math/rand"

	"github.com/satrain/satrain/loader"
)

// TopK is the method's selection: the indices (into the sample) of the k
// sequences with the highest expected return sc.Expected, best first. A
// size-k heap finds them in O(n log k) time (SelectTopKTies). Scores equal
// to within sc.TieRTol tie and go to the lower ticker, then the earlier end
// day, so the picks do not depend on how the sample was batched for
// scoring. When the scoring cascade set sc.Candidates, only those compete.
// k larger than the sample selects all of it.
func TopK(ids []loader.SeqID, sc Scores, k int) []int {
	return SelectTopKTies(cascadeRank(sc.Expected, sc.Candidates), ids, k, sc.TieRTol)
}

// Selection is what an iteration selected.
type Selection struct {
	Top   []int // the ranked selection (indices into the sample), best first (per-date: by day, best first within a day)
	Train []int // everything trained on (Top plus extras), indices into the sample
	// StratumShare is the share of Top in each stratum (Stratify only;
	// every stratum is listed, zeros included).
	StratumShare map[string]float64
	extra        []string
	bonus        map[int]float64 // consistency weight per index of Top
}

// Describe says what is trained on.
func (s Selection) Describe() string {
	d := fmt.Sprintf("top %d", len(s.Top))
	for _, e := range s.extra {
		d += " + " + e
	}
	return d
}

// Select picks the iteration's training set from the scored sample ids (sc
// aligned with it). Top is the method's top k (TopK), unless an extension
// ranks in its place: the per-date scope (perdate.go), or SelectBy loss or
// random (selectby.go). Train is Top plus the extras of negative mining and
// the random mix (extras.go). Select also records the stratum shares of Top
// (stratify.go) and the consistency streaks the bonus weights come from
// (weights.go). rng is drawn from only by the random extensions.
func (st *Strategy) Select(ids []loader.SeqID, sc Scores, k int, rng *rand.Rand) Selection {
	sc = st.rankingScores(sc)
	var sel Selection
	switch {
	case st.perDate():
		sel.Top = st.perDateTop(ids, sc, k, rng)
	case st.SelectBy == "random":
		sel.Top = randomTop(len(ids), k, rng)
	case st.SelectBy == "loss":
		sel.Top = lossTop(ids, sc, k)
	default:
		sel.Top = TopK(ids, sc, k)
	}
	sel.Train = append([]int(nil), sel.Top...)
	in := map[int]bool{}
	for _, i := range sel.Train {
		in[i] = true
	}
	if st.NegativeK > 0 {
		added := sel.addExtras(st.bottom(ids, sc), -1, in)
		sel.extra = append(sel.extra, fmt.Sprintf("bottom %d", added))
	}
	if st.MixRandom > 0 {
		added := sel.addExtras(rng.Perm(len(ids)), st.mixCount(k), in)
		sel.extra = append(sel.extra, fmt.Sprintf("%d random", added))
	}
	if st.Stratify != "" && st.mem != nil && st.mem.stratumOf != nil {
		sel.StratumShare = st.mem.stratumShare(ids, sel.Top)
	}
	if st.ConsistencyBonus > 0 {
		sel.bonus = st.consistency(ids, sel.Top)
	}
	return sel
}
