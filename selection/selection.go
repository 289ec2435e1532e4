package selection

import (
	"math"
	"sort"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection/rank"
)

// SelectTopKTies returns the indices of the k highest scores, best first,
// where scores equal to within the relative tolerance rtol are ties
// (rank.MergeTies; rtol is typically Scores.TieRTol). Ties break by a fixed
// key: the lower ticker, then the earlier end day, then the lower index. So
// the picks do not depend on float noise in the last bits of the scores,
// such as the inference batch a sequence was scored in. ids[i] is the
// sequence of scores[i]. NaN scores rank last. A size-k heap finds them
// (rank.TopK).
func SelectTopKTies(scores []float64, ids []loader.SeqID, k int, rtol float64) []int {
	return rank.TopK(rank.MergeTies(scores, rtol), k, byKey(ids))
}

// SelectBottomKTies is SelectTopKTies for the k lowest scores, worst first.
func SelectBottomKTies(scores []float64, ids []loader.SeqID, k int, rtol float64) []int {
	return rank.BottomK(rank.MergeTies(scores, rtol), k, byKey(ids))
}

// byKey orders the sequences of equal scores: ticker, end day, index.
func byKey(ids []loader.SeqID) func(i, j int) bool {
	return func(i, j int) bool {
		if x, y := ids[i], ids[j]; x.Ticker != y.Ticker {
			return x.Ticker < y.Ticker
		} else if x.Day != y.Day {
			return x.Day < y.Day
		}
		return i < j
	}
}

// ScoreStats summarises a sample's scores and its selected subset. The
// statistics are over the finite scores only; NonFinite counts the others
// (NaN, ±Inf), which no statistic includes. A statistic with no finite score
// to summarise is NaN.
type ScoreStats struct {
	Mean, Median, TopKMean, TopKMin float64
	NonFinite                       int // scores excluded for not being finite
}

// Summarize computes mean and median of the finite scores and mean/min of
// the finite selected ones (indexes into scores). Empty scores give the zero
// ScoreStats; no selection gives TopKMean = TopKMin = 0.
func Summarize(scores []float64, selected []int) ScoreStats {
	var st ScoreStats
	if len(scores) == 0 {
		return st
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	sorted := make([]float64, 0, len(scores))
	var sum float64
	for _, v := range scores {
		if !finite(v) {
			st.NonFinite++
			continue
		}
		sorted = append(sorted, v)
		sum += v
	}
	sort.Float64s(sorted)
	n := len(sorted)
	switch {
	case n == 0:
		st.Mean, st.Median = math.NaN(), math.NaN()
	case n%2 == 1:
		st.Mean, st.Median = sum/float64(n), sorted[n/2]
	default:
		st.Mean, st.Median = sum/float64(n), (sorted[n/2-1]+sorted[n/2])/2
	}
	if len(selected) > 0 {
		st.TopKMin = math.Inf(1)
		var ts float64
		var k int
		for _, i := range selected {
			if v := scores[i]; finite(v) {
				ts += v
				k++
				st.TopKMin = math.Min(st.TopKMin, v)
			}
		}
		st.TopKMean = ts / float64(k)
		if k == 0 {
			st.TopKMean, st.TopKMin = math.NaN(), math.NaN()
		}
	}
	return st
}
