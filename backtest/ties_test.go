package backtest

import (
	"math"
	"testing"
)

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
