package selection

import (
	"math/rand"
	"sort"

	"github.com/satrain/satrain/loader"
)

// Indexes of the training split that the sampling extensions draw from.

// seg is the sequences of one ticker with end days day..day+n-1.
type seg struct {
	ticker, day, n int32
}

// segPool is a list of segments addressed as one index range [0, n).
type segPool struct {
	segs []seg
	cum  []int64
	n    int64
}

func (p *segPool) add(s seg) {
	if s.n <= 0 {
		return
	}
	p.segs = append(p.segs, s)
	p.cum = append(p.cum, p.n)
	p.n += int64(s.n)
}

func (p *segPool) at(i int64) loader.SeqID {
	k := sort.Search(len(p.cum), func(k int) bool { return p.cum[k] > i }) - 1
	s := p.segs[k]
	return loader.SeqID{Ticker: s.ticker, Day: s.day + int32(i-p.cum[k])}
}

// sample draws n of the pool uniformly without replacement (O(n) memory);
// n >= the pool returns all of it.
func (p *segPool) sample(n int, rng *rand.Rand) []loader.SeqID {
	idx := loader.SampleIndices(p.n, n, rng)
	if idx == nil {
		return nil
	}
	out := make([]loader.SeqID, len(idx))
	for i, x := range idx {
		out[i] = p.at(x)
	}
	return out
}

// splitRuns recovers the split's runs of consecutive end days per ticker
// from its index order (ticker, then day) with a binary search per run.
func splitRuns(s *loader.Split) segPool {
	var p segPool
	n := s.Len()
	for i := int64(0); i < n; {
		first := s.At(i)
		// The run is the longest stretch where At(j) = (ticker, day + j - i).
		rest := sort.Search(int(n-i-1), func(x int) bool {
			j := i + 1 + int64(x)
			id := s.At(j)
			return id.Ticker != first.Ticker || int64(id.Day-first.Day) != j-i
		})
		length := int64(rest) + 1
		p.add(seg{ticker: first.Ticker, day: first.Day, n: int32(length)})
		i += length
	}
	return p
}

// allocateEqual shares total among len(caps) bins as equally as their
// capacities allow: a bin never gets more than its capacity, a full bin's
// shortfall goes to the others, and the bins below capacity differ by at
// most one (the extra ones go to the bins with the larger capacity). The
// total given is min(total, sum of caps).
func allocateEqual(total int, caps []int) []int {
	out := make([]int, len(caps))
	idx := make([]int, len(caps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return caps[idx[a]] < caps[idx[b]] })
	left := total
	for j, i := range idx {
		out[i] = min(caps[i], left/(len(idx)-j))
		left -= out[i]
	}
	return out
}
