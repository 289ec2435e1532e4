package selection

import (
	"math"

	"github.com/satrain/satrain/loader"
)

// Extensions that train on more than the top k: negative mining (NegativeK,
// the lowest expected returns) and a random mix (MixRandom).

// bottom is negative mining's candidates: the NegativeK lowest expected
// returns, worst first (per date in the per-date scope).
func (st *Strategy) bottom(ids []loader.SeqID, sc Scores) []int {
	if st.perDate() {
		return perDatePick(ids, sc.Expected, st.NegativeK, 0, true, sc.TieRTol)
	}
	return SelectBottomKTies(sc.Expected, ids, st.NegativeK, sc.TieRTol)
}

// mixCount is the random mix's size for k selected: round(MixRandom·k).
func (st *Strategy) mixCount(k int) int {
	return int(math.Round(st.MixRandom * float64(k)))
}

// addExtras appends the candidates not yet in s.Train (in, which it
// updates) to s.Train in order, at most limit of them (limit < 0: all), and
// returns how many it added.
func (s *Selection) addExtras(candidates []int, limit int, in map[int]bool) int {
	added := 0
	for _, i := range candidates {
		if limit >= 0 && added >= limit {
			break
		}
		if !in[i] {
			in[i] = true
			s.Train = append(s.Train, i)
			added++
		}
	}
	return added
}
