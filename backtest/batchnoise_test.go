package backtest

import (
	"math"
	"math/rand"
	"testing"

	"github.com/satrain/satrain/selection/rank"
)

// TestICBatchNoiseBound (issue 23, item 11) checks the statement the README
// and docs/METRICS.md make about IC and rank IC at two inference batch sizes.
// Scoring one input in another batch moves its float32 score by a relative
// amount below the tie tolerance. On a date, a correlation ρ = a·b/(‖a‖‖b‖)
// of centred scores (or score ranks) a with centred returns (or return
// ranks) b changes with a → a′ = a + Δ by
//
//	|ρ − ρ′| ≤ ‖Δ‖₁·max|b| / (‖a‖‖b‖) + |ρ′|·‖Δ‖₂/‖a‖
//
// (ρ − ρ′ = Δ·b/(‖a‖‖b‖) + ρ′(‖a′‖/‖a‖ − 1), and |‖a′‖ − ‖a‖| ≤ ‖Δ‖₂). The
// mean rank is (n+1)/2 however ties are merged, so for rank IC Δ = r − r′,
// the change of the merged score ranks, and max|b| ≤ (n−1)/2, ‖a‖‖b‖ ≈
// (n³−n)/12: a near-tied pair that swaps (‖Δ‖₁ = 2) moves a date's rank IC
// by at most about 12/n² + |ρ|·√24/n^1.5, 6.6·10⁻⁵ at n = 500 and ρ = 0.03.
// For IC, Δ is the change of the merged scores, below the tolerance. The mean
// over dates moves by at most the mean of the per-date bounds. The bounds are
// absolute: relative to a mean rank IC near 0 the same difference is large.
func TestICBatchNoiseBound(t *testing.T) {
	const n, dates, rtol = 500, 250, 6e-5
	rng := rand.New(rand.NewSource(11))
	var a, b []Prediction
	for d := 0; d < dates; d++ {
		date := int32(20100104 + d) // any increasing keys will do
		for i := 0; i < n; i++ {
			z := rng.NormFloat64()
			s := 1 + 0.002*z
			if i%20 == 1 { // planted near-ties with the name before
				s = a[len(a)-1].Score * (1 + (rng.Float64()-0.5)*rtol)
			}
			real := 1 + 0.02*(0.03*z+rng.NormFloat64())
			a = append(a, Prediction{Ticker: int32(i), Date: date, Score: s, Realized: real, Loss: 1})
			noisy := s * (1 + (rng.Float64()-0.5)*rtol)
			b = append(b, Prediction{Ticker: int32(i), Date: date, Score: noisy, Realized: real, Loss: 1})
		}
	}
	cfg := Config{TopK: 50, HorizonDays: 1, TieRTol: rtol}
	ra, err := Evaluate(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Evaluate(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sumRankBound, sumICBound, varSum float64
	moved := 0
	for d := 0; d < dates; d++ {
		sa := rank.MergeTies(scoresOf(a[d*n:(d+1)*n]), rtol)
		sb := rank.MergeTies(scoresOf(b[d*n:(d+1)*n]), rtol)
		da, db := ra.Dates[d], rb.Dates[d]
		real := realizedOf(a[d*n : (d+1)*n])
		rs, rs2 := ranks(sa), ranks(sb)
		rankBound := corrBound(rs, rs2, ranks(real), db.RankIC)
		// Typical size: the displacement is independent of the returns.
		sd := dist(rs, rs2) / (centredNorm(rs) * math.Sqrt(n))
		varSum += sd * sd
		icBound := corrBound(sa, sb, real, db.IC)
		if dr := math.Abs(da.RankIC - db.RankIC); dr > rankBound+1e-12 {
			t.Errorf("date %d: rank IC moved %.3g, bound %.3g", d, dr, rankBound)
		} else if dr > 0 {
			moved++
		}
		if di := math.Abs(da.IC - db.IC); di > icBound+1e-12 {
			t.Errorf("date %d: IC moved %.3g, bound %.3g", d, di, icBound)
		}
		sumRankBound += rankBound
		sumICBound += icBound
	}
	dRank, dIC := math.Abs(ra.RankIC.Mean-rb.RankIC.Mean), math.Abs(ra.IC.Mean-rb.IC.Mean)
	if dRank > sumRankBound/dates+1e-12 || dIC > sumICBound/dates+1e-12 {
		t.Errorf("mean rank IC moved %.3g (bound %.3g), mean IC %.3g (bound %.3g)", dRank, sumRankBound/dates, dIC, sumICBound/dates)
	}
	// Rounding noise knows nothing of the realised returns: the change of
	// the mean is a sum of random-sign terms, of size sigma.
	sigma := math.Sqrt(varSum) / dates
	if dRank > 4*sigma {
		t.Errorf("mean rank IC moved %.3g, more than 4 sigma = %.3g", dRank, 4*sigma)
	}
	// The noise must actually move rankings, or the check above is empty.
	if moved < dates/2 {
		t.Errorf("rank IC moved on %d of %d dates; the noise does not reach the rankings", moved, dates)
	}
	t.Logf("mean rank IC %.4g vs %.4g: |Δ| %.2g (bound %.2g, sigma %.2g), relative %.2g; mean IC |Δ| %.2g (bound %.2g)",
		ra.RankIC.Mean, rb.RankIC.Mean, dRank, sumRankBound/dates, sigma, dRank/math.Abs(ra.RankIC.Mean), dIC, sumICBound/dates)
}

// corrBound is the bound above on |corr(x, z) − corr(y, z)|, with ρ′ = corr(y, z).
func corrBound(x, y, z []float64, rho2 float64) float64 {
	var l1, maxB float64
	for i := range x {
		l1 += math.Abs(x[i] - y[i])
	}
	mz := mean(z)
	for _, v := range z {
		maxB = math.Max(maxB, math.Abs(v-mz))
	}
	na, nb := centredNorm(x), centredNorm(z)
	return l1*maxB/(na*nb) + math.Abs(rho2)*dist(x, y)/na
}

func dist(x, y []float64) float64 {
	var s float64
	for i := range x {
		s += (x[i] - y[i]) * (x[i] - y[i])
	}
	return math.Sqrt(s)
}

func centredNorm(x []float64) float64 {
	m := mean(x)
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return math.Sqrt(s)
}
