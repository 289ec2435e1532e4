package rank

import (
	"math"
	"math/rand"
	"reflect"
	"sort"
	"testing"
)

// refRank is an independent reference: all indices fully sorted by score
// (descending, or ascending when lowest), NaN after every number, ties to the
// lower index.
func refRank(scores []float64, lowest bool) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := scores[idx[a]], scores[idx[b]]
		xn, yn := math.IsNaN(x), math.IsNaN(y)
		if xn || yn {
			return !xn && yn
		}
		if lowest {
			return x < y
		}
		return x > y
	})
	return idx
}

func refTopK(scores []float64, k int, lowest bool) []int {
	if k <= 0 {
		return nil
	}
	r := refRank(scores, lowest)
	if k > len(r) {
		k = len(r)
	}
	return r[:k]
}

// randomScores mixes continuous values, heavy ties, NaN and infinities.
func randomScores(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	mode := rng.Intn(4)
	for i := range s {
		switch mode {
		case 0: // continuous
			s[i] = rng.NormFloat64()
		case 1: // few distinct values: many ties
			s[i] = float64(rng.Intn(4)) * 0.25
		case 2: // ties and NaN
			if rng.Intn(5) == 0 {
				s[i] = math.NaN()
			} else {
				s[i] = float64(rng.Intn(3))
			}
		default: // everything
			switch rng.Intn(8) {
			case 0:
				s[i] = math.NaN()
			case 1:
				s[i] = math.Inf(1)
			case 2:
				s[i] = math.Inf(-1)
			case 3:
				s[i] = 0
			default:
				s[i] = rng.NormFloat64()
			}
		}
	}
	return s
}

func TestTopKMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for c := 0; c < 3000; c++ {
		n := rng.Intn(120)
		if c%100 == 0 {
			n = 1000 + rng.Intn(2000)
		}
		k := rng.Intn(n+4) - 1 // -1 .. n+2
		scores := randomScores(rng, n)
		got := TopK(scores, k, nil)
		want := refTopK(scores, k, false)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: n=%d k=%d scores=%v\nSelectTopK = %v\nfull sort = %v", c, n, k, scores, got, want)
		}
	}
}

func TestTopKTiesAndNaN(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		scores []float64
		k      int
		want   []int
	}{
		{[]float64{1, 1, 1, 1}, 2, []int{0, 1}},
		{[]float64{0, 2, 2, 1, 2}, 2, []int{1, 2}},
		{[]float64{0, 2, 2, 1, 2}, 4, []int{1, 2, 4, 3}},
		{[]float64{nan, 0, nan, -1}, 3, []int{1, 3, 0}},
		{[]float64{nan, nan}, 1, []int{0}},
		{[]float64{math.Inf(-1), nan, -5}, 3, []int{2, 0, 1}},
		{[]float64{3, 1, 2}, 10, []int{0, 2, 1}},
	}
	for _, c := range cases {
		if got := TopK(c.scores, c.k, nil); !reflect.DeepEqual(got, c.want) {
			t.Errorf("TopK(%v, %d) = %v, want %v", c.scores, c.k, got, c.want)
		}
	}
	if got := TopK([]float64{1, 2}, 0, nil); len(got) != 0 {
		t.Errorf("k=0: got %v, want empty", got)
	}
	if got := TopK(nil, 3, nil); len(got) != 0 {
		t.Errorf("no scores: got %v, want empty", got)
	}
}

func TestBottomK(t *testing.T) {
	nan := math.NaN()
	if got, want := BottomK([]float64{5, -1, 3, -1, nan, 0}, 3, nil), []int{1, 3, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("SelectBottomK = %v, want %v", got, want)
	}
	if got, want := BottomK([]float64{nan, 2, 1}, 3, nil), []int{2, 1, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("SelectBottomK with NaN = %v, want %v (NaN last)", got, want)
	}
	rng := rand.New(rand.NewSource(2))
	for c := 0; c < 1500; c++ {
		n := rng.Intn(100)
		k := rng.Intn(n+3) - 1
		scores := randomScores(rng, n)
		got := BottomK(scores, k, nil)
		want := refTopK(scores, k, true)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: n=%d k=%d scores=%v\nSelectBottomK = %v\nfull sort   = %v", c, n, k, scores, got, want)
		}
	}
}

func TestMergeTies(t *testing.T) {
	up, down := math.Nextafter(1, 2), math.Nextafter(1, 0)
	in := []float64{1, up, 2, down, math.NaN(), 0.5}
	got := MergeTies(in, 1e-9)
	if got[0] != got[1] || got[1] != got[3] || math.Abs(got[0]-1) > 1e-15 {
		t.Errorf("1, 1+ulp, 1-ulp: merged to %v %v %v, want one value near 1", got[0], got[1], got[3])
	}
	if got[2] != 2 || got[5] != 0.5 || !math.IsNaN(got[4]) {
		t.Errorf("scores apart from the tie changed: %v", got)
	}
	if in[1] != up {
		t.Error("MergeTies changed its input")
	}
	if e := MergeTies(in, 0); e[1] != up || e[3] != down {
		t.Errorf("rtol 0 changed scores: %v", e)
	}
	// A chain of scores each within the tolerance of the next is cut when it
	// spans 4 tolerances from its highest score: 0..3.6e-6 below 1 tie,
	// 4.5e-6 below starts a new group.
	chain := make([]float64, 10)
	for i := range chain {
		chain[i] = 1 - 0.9e-6*float64(i)
	}
	m := MergeTies(chain, 1e-6)
	for i := 1; i < 5; i++ {
		if m[i] != m[0] {
			t.Fatalf("chain %v merged to %v: first five should tie", chain, m)
		}
	}
	if m[5] == m[4] || m[5] != m[9] {
		t.Fatalf("chain %v merged to %v: want a second group from the sixth on", chain, m)
	}
}

// Equal scores go by the caller's tie-break; NaN stays last whatever it says.
func TestTopKTieBreak(t *testing.T) {
	later := func(i, j int) bool { return i > j }
	nan := math.NaN()
	if got := TopK([]float64{1, 2, 2, 1, nan}, 4, later); !reflect.DeepEqual(got, []int{2, 1, 3, 0}) {
		t.Errorf("TopK with the higher index first = %v, want [2 1 3 0]", got)
	}
	if got := BottomK([]float64{nan, 1, 2, 2, 1}, 5, later); !reflect.DeepEqual(got, []int{4, 1, 3, 2, 0}) {
		t.Errorf("BottomK with the higher index first = %v, want [4 1 3 2 0]", got)
	}
}
