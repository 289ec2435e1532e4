package selection

import (
	"container/heap"
	"math"
	"sort"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/loader"
)

// Scored is one candidate: its position in the sample and its score.
type Scored struct {
	Index int
	Score float64
}

// better orders candidates: higher score first; ties go to the lower index,
// so selection is deterministic. NaN scores rank below every number.
func better(a, b Scored) bool {
	an, bn := math.IsNaN(a.Score), math.IsNaN(b.Score)
	switch {
	case an && !bn:
		return false
	case bn && !an:
		return true
	case !an && a.Score != b.Score:
		return a.Score > b.Score
	}
	return a.Index < b.Index
}

// minHeap keeps the current top k with the worst of them at the root.
type minHeap struct {
	s      []Scored
	better func(a, b Scored) bool
}

func (h minHeap) Len() int           { return len(h.s) }
func (h minHeap) Less(i, j int) bool { return h.better(h.s[j], h.s[i]) }
func (h minHeap) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *minHeap) Push(x any)        { h.s = append(h.s, x.(Scored)) }
func (h *minHeap) Pop() any          { old := h.s; x := old[len(old)-1]; h.s = old[:len(old)-1]; return x }

// SelectTopK returns the indices of the k highest scores, best first, using a
// size-k heap (O(n log k) time, O(k) memory). Ties break to the lower index.
func SelectTopK(scores []float64, k int) []int {
	return selectK(scores, k, false, better)
}

// SelectBottomK returns the indices of the k lowest scores, worst first.
func SelectBottomK(scores []float64, k int) []int {
	return selectK(scores, k, true, better)
}

// SelectTopKTies returns the indices of the k highest scores, best first,
// where scores equal to within the relative tolerance rtol are ties
// (backtest.MergeTies; rtol is typically Scores.TieRTol). Ties break by
// a fixed key: the lower ticker, then the earlier end day, then the lower
// index. So the picks do not depend on float noise in the last bits of the
// scores, such as the inference batch a sequence was scored in. ids[i] is
// the sequence of scores[i].
func SelectTopKTies(scores []float64, ids []loader.SeqID, k int, rtol float64) []int {
	return selectK(backtest.MergeTies(scores, rtol), k, false, byKey(ids))
}

// SelectBottomKTies is SelectTopKTies for the k lowest scores, worst first.
func SelectBottomKTies(scores []float64, ids []loader.SeqID, k int, rtol float64) []int {
	return selectK(backtest.MergeTies(scores, rtol), k, true, byKey(ids))
}

// byKey orders candidates by score (higher first, NaN last), then ticker,
// end day and index.
func byKey(ids []loader.SeqID) func(a, b Scored) bool {
	return func(a, b Scored) bool {
		an, bn := math.IsNaN(a.Score), math.IsNaN(b.Score)
		switch {
		case an != bn:
			return bn
		case !an && a.Score != b.Score:
			return a.Score > b.Score
		}
		if x, y := ids[a.Index], ids[b.Index]; x.Ticker != y.Ticker {
			return x.Ticker < y.Ticker
		} else if x.Day != y.Day {
			return x.Day < y.Day
		}
		return a.Index < b.Index
	}
}

func selectK(scores []float64, k int, lowest bool, better func(a, b Scored) bool) []int {
	if k <= 0 {
		return nil
	}
	if k > len(scores) {
		k = len(scores)
	}
	h := &minHeap{s: make([]Scored, 0, k), better: better}
	for i, v := range scores {
		if lowest {
			v = -v
		}
		c := Scored{Index: i, Score: v}
		if h.Len() < k {
			heap.Push(h, c)
		} else if better(c, h.s[0]) {
			h.s[0] = c
			heap.Fix(h, 0)
		}
	}
	out := append([]Scored(nil), h.s...)
	sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
	idx := make([]int, len(out))
	for i, c := range out {
		idx[i] = c.Index
	}
	return idx
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
