package backtest

import (
	"math"
	"testing"
)

// exposurePanel is two dates of a small universe with sectors and trailing
// volatilities; with top 1 the model holds ticker 1 on date A and ticker 2
// on date B.
//
//	date A  ticker score realized vol    group     date B  ticker score realized vol  group
//	        1      1.05  1.04     0.020  G1                1      1.00  1.00     0.03 G1
//	        2      1.01  1.02     0.021  G1                2      1.03  1.06     0.06 G2
//	        3      1.00  1.00     0.019  G2                3      1.01  0.98     0.05 G1
//	        4      0.99  0.97     0.010  G2                4      0.99  1.03     0.07 G2
//	        5      0.98  0.99     0.040  G1
//	        6      0.97  1.01     0.005  G2
func exposurePanel() []Prediction {
	const a, b = 20240102, 20240103
	return []Prediction{
		{Ticker: 1, Date: a, Score: 1.05, Realized: 1.04, Vol: 0.020, Group: "G1"},
		{Ticker: 2, Date: a, Score: 1.01, Realized: 1.02, Vol: 0.021, Group: "G1"},
		{Ticker: 3, Date: a, Score: 1.00, Realized: 1.00, Vol: 0.019, Group: "G2"},
		{Ticker: 4, Date: a, Score: 0.99, Realized: 0.97, Vol: 0.010, Group: "G2"},
		{Ticker: 5, Date: a, Score: 0.98, Realized: 0.99, Vol: 0.040, Group: "G1"},
		{Ticker: 6, Date: a, Score: 0.97, Realized: 1.01, Vol: 0.005, Group: "G2"},
		{Ticker: 1, Date: b, Score: 1.00, Realized: 1.00, Vol: 0.03, Group: "G1"},
		{Ticker: 2, Date: b, Score: 1.03, Realized: 1.06, Vol: 0.06, Group: "G2"},
		{Ticker: 3, Date: b, Score: 1.01, Realized: 0.98, Vol: 0.05, Group: "G1"},
		{Ticker: 4, Date: b, Score: 0.99, Realized: 1.03, Vol: 0.07, Group: "G2"},
	}
}

func nearTol(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.8g, want %.8g (±%g)", name, got, want, tol)
	}
}

// TestExposureHandComputed checks every exposure figure against a hand
// computation on exposurePanel (VolControls 2, 1-day horizon).
func TestExposureHandComputed(t *testing.T) {
	r, err := Evaluate(exposurePanel(), Config{TopK: 1, VolControls: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Vol-matched excess. Date A: pick 1 (vol 0.020); the unselected names'
	// |ln vol - ln 0.020| are 0.0488 (2), 0.0513 (3), 0.693 (4, 5), 1.386
	// (6): controls 2 and 3, mean 1.01, excess 1.04 - 1.01 = 0.03.
	// Date B: pick 2 (0.06): 0.154 (4), 0.182 (3), 0.693 (1): controls 4 and
	// 3, mean 1.005, excess 1.06 - 1.005 = 0.055. Mean 0.0425.
	nearTol(t, "vol-matched excess", r.Precision.VolMatchedExcess, 0.0425, 1e-12)
	if r.Precision.VolMatchedPicks != 2 {
		t.Errorf("vol-matched picks %d, want 2", r.Precision.VolMatchedPicks)
	}
	// Lag 0 (1-day horizon): SE = sqrt(γ0/T), γ0 = (0.0125² + 0.0125²)/2.
	nearTol(t, "vol-matched SE", r.Precision.VolMatchedExcessCI95.SE, math.Sqrt(0.0125*0.0125/2), 1e-12)
	if r.Dates[0].VolMatchedExcess == nil || r.Dates[1].VolMatchedExcess == nil {
		t.Fatal("per-date vol-matched excess missing")
	}
	nearTol(t, "date A vol-matched", *r.Dates[0].VolMatchedExcess, 0.03, 1e-12)
	nearTol(t, "date B vol-matched", *r.Dates[1].VolMatchedExcess, 0.055, 1e-12)
	// Group-neutral, date A: pick 1 against G1 {1.04, 1.02, 0.99}: 1.04 - 1.016667.
	nearTol(t, "date A group-neutral", *r.Dates[0].GroupNeutralExcess, 1.04-3.05/3, 1e-12)

	// Beta: picks 1.04, 1.06 against universe means 6.03/6 = 1.005 and
	// 4.07/4 = 1.0175: slope 0.02/0.0125 = 1.6.
	nearTol(t, "beta", r.Exposure.Beta, 1.6, 1e-9)
	// Relative volatility: 0.020/(0.115/6) and 0.06/0.0525, averaged.
	nearTol(t, "rel vol", r.Exposure.RelVol, (0.020/(0.115/6)+0.06/0.0525)/2, 1e-12)
	// Spearman(score, vol): date A rank differences (-2,0,-1,-1,4,0), Σd² = 22,
	// 1 - 6·22/(6·35) = 0.371429; date B (1,1,1,-3), Σd² = 12, 1 - 72/60 = -0.2.
	nearTol(t, "score-vol rank corr", r.Exposure.ScoreVolRankCorr, (1-132.0/210-0.2)/2, 1e-12)
	if r.Exposure.VolNames != 10 {
		t.Errorf("vol names %d, want 10", r.Exposure.VolNames)
	}

	// Residual returns, date B: demeaned within sector, r = (+0.01, +0.015,
	// -0.01, -0.015) and ln vol = (-ln(5/3)/2, -ln(7/6)/2, +ln(5/3)/2,
	// +ln(7/6)/2); slope b = Σrv/Σv² = -0.0521277; residuals
	// (-0.0033141, +0.0109822, +0.0033141, -0.0109822). Their ranks equal the
	// scores' (2, 4, 3, 1): rank IC 1, against a raw rank IC of 0.2; Pearson
	// 0.0004724/sqrt(0.000875 · 0.00026319) = 0.98447 (checked with a
	// least-squares fit on sector dummies and ln vol).
	if r.Dates[1].ResidualRankIC == nil || r.Dates[1].ResidualIC == nil {
		t.Fatal("date B residual IC missing")
	}
	nearTol(t, "date B residual rank IC", *r.Dates[1].ResidualRankIC, 1, 1e-12)
	nearTol(t, "date B raw rank IC", r.Dates[1].RankIC, 0.2, 1e-12)
	nearTol(t, "date B residual IC", *r.Dates[1].ResidualIC, 0.9844709, 1e-6)
	if r.ResidualRankIC.Dates != 2 {
		t.Errorf("residual rank IC dates %d, want 2", r.ResidualRankIC.Dates)
	}
	nearTol(t, "residual rank IC mean", r.ResidualRankIC.Mean, (*r.Dates[0].ResidualRankIC+1)/2, 1e-12)
}

// TestExposureNeedsVolatility: predictions without Vol leave every
// exposure figure at zero and out of Scalars.
func TestExposureNeedsVolatility(t *testing.T) {
	preds := exposurePanel()
	for i := range preds {
		preds[i].Vol = 0
	}
	r, err := Evaluate(preds, Config{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Exposure != (Exposure{}) || r.Precision.VolMatchedPicks != 0 || r.ResidualRankIC.Dates != 0 || r.Dates[0].VolMatchedExcess != nil {
		t.Errorf("no volatility, yet exposure %+v, vol-matched picks %d, residual dates %d", r.Exposure, r.Precision.VolMatchedPicks, r.ResidualRankIC.Dates)
	}
	for _, s := range r.Scalars() {
		if s.Name == "precision.vol_matched_excess" || s.Name == "exposure.beta" {
			t.Errorf("scalar %s listed without volatilities", s.Name)
		}
	}
	if _, err := Evaluate(preds, Config{TopK: 1, VolControls: -1}); err == nil {
		t.Error("vol_controls -1 accepted")
	}
}

// TestVolMatchedControlsExcludePicks: a pick's controls are never the
// date's other picks, even when they are nearest in volatility.
func TestVolMatchedControlsExcludePicks(t *testing.T) {
	const a = 20240102
	preds := []Prediction{
		{Ticker: 1, Date: a, Score: 1.05, Realized: 1.10, Vol: 0.020},
		{Ticker: 2, Date: a, Score: 1.04, Realized: 1.08, Vol: 0.0201},
		{Ticker: 3, Date: a, Score: 1.00, Realized: 1.00, Vol: 0.030},
		{Ticker: 4, Date: a, Score: 0.99, Realized: 0.96, Vol: 0.050},
	}
	r, err := Evaluate(preds, Config{TopK: 2, VolControls: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Both picks' nearest unselected name is 3 (1.00): (0.10 + 0.08)/2.
	nearTol(t, "vol-matched excess", r.Precision.VolMatchedExcess, 0.09, 1e-12)
}

// TestSigmaMatched: the predicted-dispersion figures are the volatility
// figures' arithmetic on Prediction.Sigma: with Sigma = the trailing
// volatilities of exposurePanel and no Vol, they are the hand-computed
// 0.0425 and (0.371429 - 0.2)/2, and the volatility figures are absent.
func TestSigmaMatched(t *testing.T) {
	preds := exposurePanel()
	for i := range preds {
		preds[i].Sigma, preds[i].Vol = preds[i].Vol, 0
	}
	r, err := Evaluate(preds, Config{TopK: 1, VolControls: 2})
	if err != nil {
		t.Fatal(err)
	}
	nearTol(t, "sigma-matched excess", r.Exposure.SigmaMatchedExcess, 0.0425, 1e-12)
	nearTol(t, "score-sigma rank corr", r.Exposure.ScoreSigmaRankCorr, (1-132.0/210-0.2)/2, 1e-12)
	if r.Exposure.SigmaNames != 10 || r.Exposure.VolNames != 0 || r.Precision.VolMatchedPicks != 0 {
		t.Errorf("exposure %+v", r.Exposure)
	}
}
