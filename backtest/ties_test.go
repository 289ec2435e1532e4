package backtest

import (
	"math"
	"testing"
)

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

// TestEvaluateTiesWithinTolerance: scores one ulp apart are one score, so
// the pick goes to the lower ticker and IC is undefined (a constant score).
func TestEvaluateTiesWithinTolerance(t *testing.T) {
	scores := []float64{1, 1, 1, math.Nextafter(1, 2)}
	var preds []Prediction
	for tk, s := range scores {
		preds = append(preds, Prediction{Ticker: int32(tk), Date: 20200102, Score: s, Realized: 1 + 0.01*float64(tk), Loss: math.NaN()})
	}
	exact, err := Evaluate(preds, Config{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	tied, err := Evaluate(preds, Config{TopK: 1, TieRTol: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	if exact.Precision.TopKMeanRealized != 1.03 || !exact.Dates[0].ICValid {
		t.Errorf("exact scores: pick realized %v (want ticker 3's 1.03), IC valid %v", exact.Precision.TopKMeanRealized, exact.Dates[0].ICValid)
	}
	if tied.Precision.TopKMeanRealized != 1 || tied.Dates[0].ICValid || tied.IC.Dates != 0 || tied.RankIC.Dates != 0 {
		t.Errorf("tied scores: pick realized %v (want ticker 0's 1), IC valid %v over %d dates, rank IC %d dates",
			tied.Precision.TopKMeanRealized, tied.Dates[0].ICValid, tied.IC.Dates, tied.RankIC.Dates)
	}
	if _, err := Evaluate(preds, Config{TopK: 1, TieRTol: -1}); err == nil {
		t.Error("negative tie_rtol accepted")
	}
}
