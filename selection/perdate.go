package selection

import (
	"math"
	"math/rand"
	"sort"

	"github.com/satrain/satrain/loader"
)

// The per-date scope (Scope "per-date"): the sample is whole cross-sections
// of random end days, and each day's names are ranked against each other.

// perDateTop is the per-date scope's Top: each sampled day's best names by
// expected return (by loss with SelectBy "loss"; a uniform random ranking,
// one rng.Float64 per sequence, with SelectBy "random"), k shared equally
// among the days or TopFrac of each day.
func (st *Strategy) perDateTop(ids []loader.SeqID, sc Scores, k int, rng *rand.Rand) []int {
	rank, rtol := sc.Expected, sc.TieRTol
	switch st.SelectBy {
	case "loss":
		rank = lossRank(sc.Loss)
	case "random":
		rank, rtol = make([]float64, len(ids)), 0
		for i := range rank {
			rank[i] = rng.Float64()
		}
	}
	return perDatePick(ids, rank, k, st.TopFrac, false, rtol)
}

// perDatePick ranks each end day's names of the sample against each other
// and keeps the top (or bottom) of every day: k shared equally among the
// days (a day with fewer names gives its shortfall to the others), or
// round(frac x names) per day when frac > 0. Days come in order of first
// appearance in the sample; within a day the best come first. Scores equal
// to within rtol tie and go to the lower ticker (SelectTopKTies).
func perDatePick(ids []loader.SeqID, scores []float64, k int, frac float64, lowest bool, rtol float64) []int {
	var order []int32
	byDay := map[int32][]int{}
	for i, id := range ids {
		if _, ok := byDay[id.Day]; !ok {
			order = append(order, id.Day)
		}
		byDay[id.Day] = append(byDay[id.Day], i)
	}
	quota := make([]int, len(order))
	if frac > 0 {
		for j, d := range order {
			quota[j] = min(len(byDay[d]), max(1, int(math.Round(frac*float64(len(byDay[d]))))))
		}
	} else {
		caps := make([]int, len(order))
		for j, d := range order {
			caps[j] = len(byDay[d])
		}
		quota = allocateEqual(k, caps)
	}
	var out []int
	sub := make([]float64, 0)
	var subIDs []loader.SeqID
	for j, d := range order {
		members := byDay[d]
		sub, subIDs = sub[:0], subIDs[:0]
		for _, i := range members {
			sub = append(sub, scores[i])
			subIDs = append(subIDs, ids[i])
		}
		var pick []int
		if lowest {
			pick = SelectBottomKTies(sub, subIDs, quota[j], rtol)
		} else {
			pick = SelectTopKTies(sub, subIDs, quota[j], rtol)
		}
		for _, p := range pick {
			out = append(out, members[p])
		}
	}
	return out
}

// endDays lists the end days with at least one sequence in the pool,
// ascending.
func endDays(p segPool) []int32 {
	var count []int32 // sequences per end day (difference array)
	for _, r := range p.segs {
		for int(r.day+r.n) >= len(count) {
			count = append(count, 0)
		}
		count[r.day]++
		count[r.day+r.n]--
	}
	var days []int32
	var c int32
	for d := range count {
		if c += count[d]; c > 0 {
			days = append(days, int32(d))
		}
	}
	return days
}

// crossSection is every train sequence ending on day, by ticker.
func (m *strategyState) crossSection(day int32) []loader.SeqID {
	var out []loader.SeqID
	for _, r := range m.runs.segs {
		if day >= r.day && day < r.day+r.n {
			out = append(out, loader.SeqID{Ticker: r.ticker, Day: day})
		}
	}
	return out
}

// sampleDates draws end days uniformly without replacement and takes their
// whole cross-sections until n sequences; the day that would overshoot is
// subsampled uniformly to make exactly n.
func (m *strategyState) sampleDates(n int, rng *rand.Rand) []loader.SeqID {
	var out []loader.SeqID
	for _, j := range rng.Perm(len(m.days)) {
		if len(out) >= n {
			break
		}
		cs := m.crossSection(m.days[j])
		if need := n - len(out); len(cs) > need {
			rng.Shuffle(len(cs), func(a, b int) { cs[a], cs[b] = cs[b], cs[a] })
			cs = cs[:need]
			sort.Slice(cs, func(a, b int) bool { return cs[a].Ticker < cs[b].Ticker })
		}
		out = append(out, cs...)
	}
	return out
}
