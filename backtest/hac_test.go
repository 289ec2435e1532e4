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
