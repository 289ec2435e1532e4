package selection

import (
	"math"
	"math/rand"
	"reflect"
	"sort"
	"testing"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection/rank"
)

// refTopKTies is the reference for SelectTopKTies: scores merged within rtol
// (rank.MergeTies), all indices fully sorted by merged score descending
// (NaN last, NaNs among themselves by key), then ticker, day and index.
func refTopKTies(scores []float64, ids []loader.SeqID, k int, rtol float64) []int {
	m := rank.MergeTies(scores, rtol)
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := m[idx[a]], m[idx[b]]
		if xn, yn := math.IsNaN(x), math.IsNaN(y); xn != yn {
			return yn
		} else if !xn && x != y {
			return x > y
		}
		p, q := ids[idx[a]], ids[idx[b]]
		if p.Ticker != q.Ticker {
			return p.Ticker < q.Ticker
		}
		return p.Day < q.Day
	})
	return idx[:min(max(k, 0), len(idx))]
}

func TestSummarize(t *testing.T) {
	scores := []float64{3, 1, 4, 1, 5, 9, 2, 6}
	top := rank.TopK(scores, 2, nil)
	if !reflect.DeepEqual(top, []int{5, 7}) {
		t.Fatalf("top-2 = %v, want [5 7]", top)
	}
	st := Summarize(scores, top)
	want := ScoreStats{Mean: 31.0 / 8, Median: 3.5, TopKMean: 7.5, TopKMin: 6}
	if st != want {
		t.Errorf("Summarize(even n) = %+v, want %+v", st, want)
	}

	st = Summarize([]float64{2, -1, 7}, []int{2, 0})
	want = ScoreStats{Mean: 8.0 / 3, Median: 2, TopKMean: 4.5, TopKMin: 2}
	if math.Abs(st.Mean-want.Mean) > 1e-15 || st.Median != want.Median || st.TopKMean != want.TopKMean || st.TopKMin != want.TopKMin {
		t.Errorf("Summarize(odd n) = %+v, want %+v", st, want)
	}

	// Unsorted input is not modified.
	in := []float64{1.5, 0.5, 1.0}
	_ = Summarize(in, []int{0})
	if !reflect.DeepEqual(in, []float64{1.5, 0.5, 1.0}) {
		t.Errorf("Summarize modified its input: %v", in)
	}

	if st := Summarize([]float64{1.02, 0.98}, nil); st.TopKMean != 0 || st.TopKMin != 0 || math.Abs(st.Mean-1) > 1e-15 || math.Abs(st.Median-1) > 1e-15 {
		t.Errorf("Summarize without selection = %+v, want mean=median=1 and zero top-k stats", st)
	}
	if st := Summarize(nil, nil); st != (ScoreStats{}) {
		t.Errorf("Summarize(empty) = %+v, want zero", st)
	}
	// Non-finite scores are left out of every statistic and counted.
	nf := Summarize([]float64{math.NaN(), 2, math.Inf(1), 1, 3, math.Inf(-1)}, []int{2, 4, 0})
	if nf != (ScoreStats{Mean: 2, Median: 2, TopKMean: 3, TopKMin: 3, NonFinite: 3}) {
		t.Errorf("Summarize(with NaN and ±Inf) = %+v, want mean=median=2, top-k 3, 3 non-finite", nf)
	}
	all := Summarize([]float64{math.NaN(), math.Inf(1)}, []int{0})
	if !math.IsNaN(all.Mean) || !math.IsNaN(all.Median) || !math.IsNaN(all.TopKMean) || !math.IsNaN(all.TopKMin) || all.NonFinite != 2 {
		t.Errorf("Summarize(no finite score) = %+v, want NaN statistics and 2 non-finite", all)
	}
	one := Summarize([]float64{1.1}, []int{0})
	if one != (ScoreStats{Mean: 1.1, Median: 1.1, TopKMean: 1.1, TopKMin: 1.1}) {
		t.Errorf("Summarize(single) = %+v", one)
	}
}

// TestSelectTopKTies: scores within the tolerance tie and go to the lower
// ticker, then the earlier day; the heap agrees with a full sort on random
// scores with planted near-ties.
func TestSelectTopKTies(t *testing.T) {
	up, down := math.Nextafter(1, 2), math.Nextafter(1, 0)
	scores := []float64{1, up, down, 0.5, 2}
	ids := []loader.SeqID{{Ticker: 3, Day: 5}, {Ticker: 1, Day: 9}, {Ticker: 1, Day: 2}, {Ticker: 0, Day: 0}, {Ticker: 7, Day: 1}}
	if got := SelectTopKTies(scores, ids, 4, 1e-9); !reflect.DeepEqual(got, []int{4, 2, 1, 0}) {
		t.Errorf("SelectTopKTies = %v, want [4 2 1 0]: 2, then the tie by ticker and day", got)
	}
	if got := SelectTopKTies(scores, ids, 2, 0); !reflect.DeepEqual(got, []int{4, 1}) {
		t.Errorf("rtol 0: %v, want [4 1] (exact order)", got)
	}
	if got := SelectBottomKTies(scores, ids, 3, 1e-9); !reflect.DeepEqual(got, []int{3, 2, 1}) {
		t.Errorf("SelectBottomKTies = %v, want [3 2 1]", got)
	}
	rng := rand.New(rand.NewSource(9))
	for c := 0; c < 300; c++ {
		n := 1 + rng.Intn(60)
		sc := make([]float64, n)
		id := make([]loader.SeqID, n)
		for i := range sc {
			sc[i] = 1 + 0.001*float64(rng.Intn(8))
			if rng.Intn(3) == 0 {
				sc[i] *= 1 + float64(rng.Intn(5)-2)*1e-8 // noise within the tolerance
			}
			if rng.Intn(20) == 0 {
				sc[i] = math.NaN()
			}
			id[i] = loader.SeqID{Ticker: int32(rng.Intn(10)), Day: int32(rng.Intn(10))}
		}
		k := rng.Intn(n + 2)
		got, want := SelectTopKTies(sc, id, k, 1e-6), refTopKTies(sc, id, k, 1e-6)
		if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("case %d: n=%d k=%d\nSelectTopKTies = %v\nfull sort      = %v", c, n, k, got, want)
		}
	}
}
