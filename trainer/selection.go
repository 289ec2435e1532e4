package trainer

import (
	"container/heap"
	"math"
	"sort"
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
type minHeap []Scored

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(Scored)) }
func (h *minHeap) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// SelectTopK returns the indices of the k highest scores, best first, using a
// size-k heap (O(n log k) time, O(k) memory). Ties break to the lower index.
func SelectTopK(scores []float64, k int) []int {
	return selectK(scores, k, false)
}

// SelectBottomK returns the indices of the k lowest scores, worst first.
func SelectBottomK(scores []float64, k int) []int {
	return selectK(scores, k, true)
}

func selectK(scores []float64, k int, lowest bool) []int {
	if k <= 0 {
		return nil
	}
	if k > len(scores) {
		k = len(scores)
	}
	h := make(minHeap, 0, k)
	for i, v := range scores {
		if lowest {
			v = -v
		}
		c := Scored{Index: i, Score: v}
		if h.Len() < k {
			heap.Push(&h, c)
		} else if better(c, h[0]) {
			h[0] = c
			heap.Fix(&h, 0)
		}
	}
	out := make([]Scored, len(h))
	copy(out, h)
	sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
	idx := make([]int, len(out))
	for i, c := range out {
		idx[i] = c.Index
	}
	return idx
}

// ScoreStats summarises a sample's scores and its selected subset.
type ScoreStats struct {
	Mean, Median, TopKMean, TopKMin float64
}

// Summarize computes mean and median of scores and mean/min of the selected ones.
func Summarize(scores []float64, selected []int) ScoreStats {
	var st ScoreStats
	if len(scores) == 0 {
		return st
	}
	sorted := append([]float64(nil), scores...)
	sort.Float64s(sorted)
	var sum float64
	for _, v := range scores {
		sum += v
	}
	st.Mean = sum / float64(len(scores))
	n := len(sorted)
	if n%2 == 1 {
		st.Median = sorted[n/2]
	} else {
		st.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	if len(selected) > 0 {
		st.TopKMin = math.Inf(1)
		var ts float64
		for _, i := range selected {
			ts += scores[i]
			st.TopKMin = math.Min(st.TopKMin, scores[i])
		}
		st.TopKMean = ts / float64(len(selected))
	}
	return st
}
