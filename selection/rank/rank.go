// Package rank orders scores for a selection: the k best of n scores with a
// size-k heap, and the merging of scores equal to within a relative
// tolerance into ties. It is the one ranker of satrain: the selection method
// (package selection) and the backtest's per-date picks (package backtest)
// both use it. It imports only the standard library, so backtest stays free
// of loader and cgo.
package rank

import (
	"container/heap"
	"math"
	"sort"
)

// scored is one candidate: its position in the scores and its score.
type scored struct {
	index int
	score float64
}

// ordering returns the order of candidates: higher score first, NaN below
// every number, equal scores by tieBreak on their indices (nil: the lower
// index first).
func ordering(tieBreak func(i, j int) bool) func(a, b scored) bool {
	return func(a, b scored) bool {
		an, bn := math.IsNaN(a.score), math.IsNaN(b.score)
		switch {
		case an != bn:
			return bn
		case !an && a.score != b.score:
			return a.score > b.score
		}
		if tieBreak != nil {
			return tieBreak(a.index, b.index)
		}
		return a.index < b.index
	}
}

// minHeap keeps the current top k with the worst of them at the root.
type minHeap struct {
	s      []scored
	better func(a, b scored) bool
}

func (h minHeap) Len() int           { return len(h.s) }
func (h minHeap) Less(i, j int) bool { return h.better(h.s[j], h.s[i]) }
func (h minHeap) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *minHeap) Push(x any)        { h.s = append(h.s, x.(scored)) }
func (h *minHeap) Pop() any          { old := h.s; x := old[len(old)-1]; h.s = old[:len(old)-1]; return x }

// TopK returns the indices of the k highest scores, best first, using a
// size-k heap (O(n log k) time, O(k) memory). NaN scores rank below every
// number. Equal scores go by tieBreak(i, j), which reports whether index i
// comes before index j and must be a strict total order on the indices (nil:
// the lower index first). k <= 0 returns nil; k > len(scores) returns every
// index.
func TopK(scores []float64, k int, tieBreak func(i, j int) bool) []int {
	return selectK(scores, k, false, ordering(tieBreak))
}

// BottomK is TopK for the k lowest scores, worst first (NaN still last).
func BottomK(scores []float64, k int, tieBreak func(i, j int) bool) []int {
	return selectK(scores, k, true, ordering(tieBreak))
}

func selectK(scores []float64, k int, lowest bool, better func(a, b scored) bool) []int {
	if k <= 0 {
		return nil
	}
	if k > len(scores) {
		k = len(scores)
	}
	h := &minHeap{s: make([]scored, 0, k), better: better}
	for i, v := range scores {
		if lowest {
			v = -v
		}
		c := scored{index: i, score: v}
		if h.Len() < k {
			heap.Push(h, c)
		} else if better(c, h.s[0]) {
			h.s[0] = c
			heap.Fix(h, 0)
		}
	}
	out := append([]scored(nil), h.s...)
	sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
	idx := make([]int, len(out))
	for i, c := range out {
		idx[i] = c.index
	}
	return idx
}
