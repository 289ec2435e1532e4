package backtest

import (
	"math"
	"math/rand"
	"testing"
)

// TestNeweyWestHandComputed: x = 1, 2, 3, 4, 5, 10 at lag 1. By hand:
// x̄ = 25/6, deviations (-19, -13, -7, -1, 5, 35)/6, γ0 = 1830/216,
// γ1 = (247 + 91 + 7 - 5 + 175)/216 = 515/216, weight 1 - 1/2, so
// Var(x̄) = (1830 + 515)/216/6 = 2345/1296 and SE = √2345/36 ≈ 1.34514.
// At lag 0 it is √(γ0/T) = √(1830/1296).
func TestNeweyWestHandComputed(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 10}
	if got, want := NeweyWestSE(x, 1), math.Sqrt(2345)/36; math.Abs(got-want) > 1e-12 {
		t.Errorf("lag 1: %.15g, want %.15g", got, want)
	}
	if got, want := NeweyWestSE(x, 0), math.Sqrt(1830.0/1296); math.Abs(got-want) > 1e-12 {
		t.Errorf("lag 0: %.15g, want %.15g", got, want)
	}
	iv := meanInterval(x, 1)
	m := 25.0 / 6
	if math.Abs(iv.Lo-(m-z975*math.Sqrt(2345)/36)) > 1e-12 || math.Abs(iv.Hi-(m+z975*math.Sqrt(2345)/36)) > 1e-12 || iv.Lag != 1 || iv.N != 6 {
		t.Errorf("interval %+v", iv)
	}
	if !math.IsNaN(NeweyWestSE([]float64{3}, 2)) {
		t.Error("one value has no standard error")
	}
	if iv := meanInterval([]float64{3}, 2); iv.Lo != 3 || iv.Hi != 3 || iv.SE != 0 {
		t.Errorf("one date: %+v", iv)
	}
}

// TestNeweyWestOverlapWidens: the mean of overlapping 5-day sums of
// independent daily noise (what a daily decision held 5 days earns) has an
// error about √5 times what independence (lag 0) claims. Lag 4 recovers
// most of it: the autocovariances are 5, 4, 3, 2, 1 (long-run variance 25),
// and Bartlett's weights count 5 + 2(4·0.8 + 3·0.6 + 2·0.4 + 1·0.2) = 17 of
// them, so the estimate is about √(17/25) ≈ 0.82 of the truth.
func TestNeweyWestOverlapWidens(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	const T, h = 20000, 5
	daily := make([]float64, T+h)
	for i := range daily {
		daily[i] = rng.NormFloat64()
	}
	x := make([]float64, T)
	for i := range x {
		for j := 0; j < h; j++ {
			x[i] += daily[i+j]
		}
	}
	// True SE of the mean of x: Var(Σ x)/T² ≈ h²·T/T² (each daily shock
	// enters h sums), so SE ≈ h/√T.
	truth := float64(h) / math.Sqrt(T)
	naive, nw := NeweyWestSE(x, 0), NeweyWestSE(x, h-1)
	if r := naive / truth; r > 0.55 || r < 0.35 {
		t.Errorf("lag 0 SE %.4g is %.2f of the truth %.4g, want about 1/√5 = 0.45", naive, r, truth)
	}
	if r := nw / truth; r < 0.72 || r > 0.92 {
		t.Errorf("lag %d SE %.4g is %.2f of the truth %.4g, want about √(17/25) = 0.82", h-1, nw, r, truth)
	}
	if nw < 1.5*naive {
		t.Errorf("lag %d SE %.4g is not wider than the lag-0 %.4g", h-1, nw, naive)
	}
}

// TestGroupNeutralExcessHandComputed: two dates, four names in two sectors,
// top 1 per date. Date 1: scores pick T1 (sector A, realized 1.06); sector A
// is T1 and T2 (1.06, 1.02: mean 1.04), so the pick earns +0.02 over its
// sector, while the raw excess over the four names (1.06, 1.02, 1.00, 0.96:
// mean 1.01) is +0.05. Date 2: the pick T3 (sector B: 1.03 and 1.01, mean
// 1.02) earns +0.01 over its sector and 1.03 − 1.005 = +0.025 raw. So the
// group-neutral excess is 0.015 (raw: 0.0375), over 2 picks. Without groups
// it is 0 over 0 picks.
func TestGroupNeutralExcessHandComputed(t *testing.T) {
	d1, d2 := int32(20240102), int32(20240103)
	preds := []Prediction{
		{Ticker: 1, Date: d1, Score: 1.09, Realized: 1.06, Group: "A"}, {Ticker: 2, Date: d1, Score: 1.01, Realized: 1.02, Group: "A"},
		{Ticker: 3, Date: d1, Score: 1.02, Realized: 1.00, Group: "B"}, {Ticker: 4, Date: d1, Score: 1.00, Realized: 0.96, Group: "B"},
		{Ticker: 1, Date: d2, Score: 1.00, Realized: 0.99, Group: "A"}, {Ticker: 2, Date: d2, Score: 1.01, Realized: 0.99, Group: "A"},
		{Ticker: 3, Date: d2, Score: 1.08, Realized: 1.03, Group: "B"}, {Ticker: 4, Date: d2, Score: 1.02, Realized: 1.01, Group: "B"},
	}
	r, err := Evaluate(preds, Config{TopK: 1, HorizonDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Precision
	if math.Abs(p.GroupNeutralExcess-0.015) > 1e-12 || p.GroupNeutralPicks != 2 || math.Abs(p.Excess-0.0375) > 1e-12 {
		t.Errorf("group-neutral excess %.6g over %d picks (raw %.6g), want 0.015 over 2 (raw 0.0375)", p.GroupNeutralExcess, p.GroupNeutralPicks, p.Excess)
	}
	if ci := p.GroupNeutralExcessCI95; ci.N != 2 || !(ci.Lo < 0.015 && ci.Hi > 0.015) {
		t.Errorf("interval %+v does not hold the mean 0.015", ci)
	}
	for i := range preds {
		preds[i].Group = ""
	}
	r, err = Evaluate(preds, Config{TopK: 1, HorizonDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Precision.GroupNeutralPicks != 0 || r.Precision.GroupNeutralExcess != 0 {
		t.Errorf("without groups: %+v", r.Precision)
	}
}
