package backtest

import (
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

const tol = 1e-9

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

const (
	d1 = 20240102
	d2 = 20240103
	d3 = 20240104
)

// example is the 3-date, 4-ticker panel every hand computation below uses.
//
//	date  ticker  score  realized  loss  correct
//	d1    1       1.04   1.02      0.5   T
//	d1    2       1.03   1.05      0.7   F
//	d1    3       1.01   0.99      0.9   F
//	d1    4       1.00   0.98      NaN   T
//	d2    1       1.00   1.01      0.6   F
//	d2    2       1.02   0.97      0.4   T
//	d2    3       1.05   1.03      0.8   T
//	d2    4       0.99   1.00      1.0   F
//	d3    1       1.02   1.00      0.3   T
//	d3    2       1.01   1.04      0.5   F
//	d3    3       1.03   0.96      NaN   F
//	d3    4       1.00   1.02      0.2   T
//
// With TopK = 2 the model holds d1 {1,2}, d2 {3,2}, d3 {3,1}.
func example() []Prediction {
	nan := math.NaN()
	return []Prediction{
		{1, d1, 1.04, 1.02, 0.5, true, "", 0, 0},
		{2, d1, 1.03, 1.05, 0.7, false, "", 0, 0},
		{3, d1, 1.01, 0.99, 0.9, false, "", 0, 0},
		{4, d1, 1.00, 0.98, nan, true, "", 0, 0},
		{1, d2, 1.00, 1.01, 0.6, false, "", 0, 0},
		{2, d2, 1.02, 0.97, 0.4, true, "", 0, 0},
		{3, d2, 1.05, 1.03, 0.8, true, "", 0, 0},
		{4, d2, 0.99, 1.00, 1.0, false, "", 0, 0},
		{1, d3, 1.02, 1.00, 0.3, true, "", 0, 0},
		{2, d3, 1.01, 1.04, 0.5, false, "", 0, 0},
		{3, d3, 1.03, 0.96, nan, false, "", 0, 0},
		{4, d3, 1.00, 1.02, 0.2, true, "", 0, 0},
	}
}

func evalExample(t *testing.T, cfg Config) *Report {
	t.Helper()
	// Shuffle to check that input order does not matter.
	p := example()
	rand.New(rand.NewSource(7)).Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	r, err := Evaluate(p, cfg)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return r
}

func TestLossAccuracy(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 1})
	// All: 12 sequences, 10 known losses summing to
	// 0.5+0.7+0.9+0.6+0.4+0.8+1.0+0.3+0.5+0.2 = 5.9 -> 0.59;
	// correct: d1 {1,4}, d2 {2,3}, d3 {1,4} = 6/12.
	if r.All.Count != 12 || r.All.LossCount != 10 {
		t.Errorf("all counts = %d/%d, want 12/10", r.All.Count, r.All.LossCount)
	}
	near(t, "all loss", r.All.Loss, 0.59)
	near(t, "all accuracy", r.All.Accuracy, 0.5)
	// Top-2: d1 t1 (0.5,T) t2 (0.7,F); d2 t3 (0.8,T) t2 (0.4,T); d3 t3 (NaN,F) t1 (0.3,T)
	// loss (0.5+0.7+0.8+0.4+0.3)/5 = 0.54, accuracy 4/6.
	if r.TopK.Count != 6 || r.TopK.LossCount != 5 {
		t.Errorf("topk counts = %d/%d, want 6/5", r.TopK.Count, r.TopK.LossCount)
	}
	near(t, "topk loss", r.TopK.Loss, 0.54)
	near(t, "topk accuracy", r.TopK.Accuracy, 4.0/6)
	if r.NumPredictions != 12 || r.NumDates != 3 || r.NumTickers != 4 || r.FirstDate != d1 || r.LastDate != d3 {
		t.Errorf("counts: %+v", r)
	}
}

func TestPrecision(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 1})
	// d1: realized sorted .98 .99 1.02 1.05, median 1.005; picks 1.02, 1.05 both beat it and are > 1;
	//     picks mean 1.035, date mean 4.04/4 = 1.01, picks' score mean 1.035.
	// d2: sorted .97 1.00 1.01 1.03, median 1.005; picks 1.03 (beats, >1), 0.97 (no, no);
	//     picks mean 1.00, date mean 4.01/4 = 1.0025, score mean 1.035.
	// d3: sorted .96 1.00 1.02 1.04, median 1.01; picks 0.96, 1.00: neither beats, neither > 1 (strict);
	//     picks mean 0.98, date mean 4.02/4 = 1.005, score mean 1.025.
	p := r.Precision
	if p.Picks != 6 {
		t.Errorf("picks = %d, want 6", p.Picks)
	}
	near(t, "beat median", p.BeatMedian, 3.0/6)
	near(t, "above one", p.AboveOne, 3.0/6)
	near(t, "topk mean realized", p.TopKMeanRealized, (1.035+1.00+0.98)/3)
	near(t, "universe mean realized", p.UniverseMeanRealized, (1.01+1.0025+1.005)/3)
	near(t, "excess", p.Excess, 1.005-3.0175/3)
	near(t, "topk mean score", p.TopKMeanScore, (1.035+1.035+1.025)/3)
	wantK := []int{2, 2, 2}
	wantMed := []float64{1.005, 1.005, 1.01}
	for i, d := range r.Dates {
		if d.K != wantK[i] || d.N != 4 {
			t.Errorf("date %d: n,k = %d,%d", d.Date, d.N, d.K)
		}
		near(t, "median", d.MedianRealized, wantMed[i])
	}
}

func TestTopKTiesAndFraction(t *testing.T) {
	// Equal scores: ties go to the lower ticker.
	p := []Prediction{
		{5, d1, 1.01, 1.0, 0, false, "", 0, 0}, {3, d1, 1.01, 1.1, 0, false, "", 0, 0},
		{9, d1, 1.02, 0.9, 0, false, "", 0, 0}, {1, d1, 0.99, 1.0, 0, false, "", 0, 0},
	}
	r, err := Evaluate(p, Config{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	// picks: 9 (1.02) then 3 (1.01, lower ticker than 5): mean realized (0.9+1.1)/2 = 1.0
	near(t, "tie-broken pick mean", r.Precision.TopKMeanRealized, 1.0)

	for _, c := range []struct {
		frac float64
		n, k int
	}{{0.1, 30, 3}, {0.1, 4, 1}, {0.5, 4, 2}, {0.5, 5, 3}, {1, 7, 7}, {0.01, 10, 1}} {
		if got := (Config{TopFrac: c.frac}).selectK(c.n); got != c.k {
			t.Errorf("selectK(frac %v, n %d) = %d, want %d", c.frac, c.n, got, c.k)
		}
	}
	if got := (Config{TopK: 10}).selectK(4); got != 4 {
		t.Errorf("TopK larger than the cross-section: k = %d, want 4", got)
	}
	// Default TopFrac 0.1 -> 1 name of 4.
	r, err = Evaluate(example(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.TopFrac != 0.1 || r.Config.HorizonDays != 1 || r.Config.Rebalance != RebalanceNonOverlapping {
		t.Errorf("defaults not filled: %+v", r.Config)
	}
	if r.TopK.Count != 3 {
		t.Errorf("top 10%% of 4 names on 3 dates: %d picks, want 3", r.TopK.Count)
	}
}

func TestIC(t *testing.T) {
	r := evalExample(t, Config{TopK: 2})
	// d1: S-mean 1.02, dS = (.02,.01,-.01,-.02); R-mean 1.01, dR = (.01,.04,-.02,-.03)
	//     Sxy = .0014, Sxx = .0010, Syy = .0030 -> IC = 1.4/sqrt(3) / 1 = .0014/sqrt(.000003)
	//     ranks S (by ticker) 4,3,2,1; ranks R 3,4,2,1; sum d^2 = 2 -> rho = 1 - 6*2/(4*15) = 0.8
	// d2: S-mean 1.015, dS = (-.015,.005,.035,-.025); R-mean 1.0025, dR = (.0075,-.0325,.0275,-.0025)
	//     Sxy = .00075, Sxx = .0021, Syy = .001875 -> IC = .00075/sqrt(.0021*.001875) = 1/sqrt(7)
	//     ranks S 2,3,4,1; ranks R 3,1,4,2; sum d^2 = 6 -> rho = 1 - 36/60 = 0.4
	// d3: S-mean 1.015, dS = (.005,-.005,.015,-.015); R-mean 1.005, dR = (-.005,.035,-.045,.015)
	//     Sxy = -.0011, Sxx = .0005, Syy = .0035 -> IC = -.0011/sqrt(.00000175)
	//     ranks S 3,2,4,1; ranks R 2,4,1,3; sum d^2 = 18 -> rho = 1 - 108/60 = -0.8
	ics := []float64{0.0014 / math.Sqrt(0.000003), 1 / math.Sqrt(7), -0.0011 / math.Sqrt(0.00000175)}
	rics := []float64{0.8, 0.4, -0.8}
	for i, d := range r.Dates {
		if !d.ICValid {
			t.Fatalf("date %d: IC not valid", d.Date)
		}
		near(t, "IC", d.IC, ics[i])
		near(t, "rank IC", d.RankIC, rics[i])
	}
	m := (ics[0] + ics[1] + ics[2]) / 3
	s := math.Sqrt(((ics[0]-m)*(ics[0]-m) + (ics[1]-m)*(ics[1]-m) + (ics[2]-m)*(ics[2]-m)) / 2)
	near(t, "IC mean", r.IC.Mean, m)
	near(t, "IC std", r.IC.Std, s)
	near(t, "ICIR", r.IC.IR, m/s)
	near(t, "IC t", r.IC.TStat, m/s*math.Sqrt(3))
	// rank IC: mean 0.4/3; deviations .6667, .2667, -.9333 -> sum sq 1.38667, /2, sqrt = 0.832666
	rm := 0.4 / 3
	rs := math.Sqrt((math.Pow(0.8-rm, 2) + math.Pow(0.4-rm, 2) + math.Pow(-0.8-rm, 2)) / 2)
	near(t, "rank IC mean", r.RankIC.Mean, rm)
	near(t, "rank IC std", r.RankIC.Std, rs)
	near(t, "rank ICIR", r.RankIC.IR, rm/rs)
	if r.IC.Dates != 3 || r.IC.Skipped != 0 || r.RankIC.Dates != 3 {
		t.Errorf("IC dates/skipped = %d/%d", r.IC.Dates, r.IC.Skipped)
	}
}

func TestICSkipsDegenerateDates(t *testing.T) {
	p := example()
	p = append(p,
		// 2 names only -> skipped
		Prediction{1, 20240105, 1.0, 1.0, 0, false, "", 0, 0}, Prediction{2, 20240105, 1.1, 1.2, 0, false, "", 0, 0},
		// constant score -> skipped
		Prediction{1, 20240108, 1.0, 1.0, 0, false, "", 0, 0}, Prediction{2, 20240108, 1.0, 1.1, 0, false, "", 0, 0}, Prediction{3, 20240108, 1.0, 0.9, 0, false, "", 0, 0},
		// constant realized -> skipped
		Prediction{1, 20240109, 1.0, 1.0, 0, false, "", 0, 0}, Prediction{2, 20240109, 1.1, 1.0, 0, false, "", 0, 0}, Prediction{3, 20240109, 1.2, 1.0, 0, false, "", 0, 0},
	)
	r, err := Evaluate(p, Config{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.IC.Dates != 3 || r.IC.Skipped != 3 || r.RankIC.Skipped != 3 {
		t.Errorf("IC dates/skipped = %d/%d, want 3/3", r.IC.Dates, r.IC.Skipped)
	}
	near(t, "IC mean unchanged", r.IC.Mean, (0.0014/math.Sqrt(0.000003)+1/math.Sqrt(7)-0.0011/math.Sqrt(0.00000175))/3)
	// A single valid date has no std: IR 0.
	r, err = Evaluate(example()[:4], Config{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.IC.Dates != 1 || r.IC.Std != 0 || r.IC.IR != 0 {
		t.Errorf("single date IC: %+v", r.IC)
	}
}

func TestSpearmanTies(t *testing.T) {
	// ranks with ties: 3,1,3,2,3 -> 1 gets 1, 2 gets 2, the three 3s share (3+4+5)/3 = 4.
	if got, want := ranks([]float64{3, 1, 3, 2, 3}), []float64{4, 1, 4, 2, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("ranks = %v, want %v", got, want)
	}
	// x = 1,2,2,3 -> ranks 1,2.5,2.5,4; y = 1,3,2,4 -> ranks 1,3,2,4.
	// centred: dx = -1.5,0,0,1.5; dy = -1.5,.5,-.5,1.5; Sxy = 4.5, Sxx = 4.5, Syy = 5
	// rho = 4.5/sqrt(22.5) = sqrt(0.9)
	rho, ok := spearman([]float64{1, 2, 2, 3}, []float64{1, 3, 2, 4})
	if !ok {
		t.Fatal("spearman not ok")
	}
	near(t, "spearman with ties", rho, math.Sqrt(0.9))
	if _, ok := spearman([]float64{1, 1, 1}, []float64{1, 2, 3}); ok {
		t.Error("spearman of a constant should be undefined")
	}
	// (0.1+0.1+0.1)/3 != 0.1 in floating point; the zero-variance check must still hold.
	if _, ok := pearson([]float64{0.1, 0.1, 0.1}, []float64{1, 2, 3}); ok {
		t.Error("pearson of a constant should be undefined")
	}
}

func TestSharpeDrawdownKnownSeries(t *testing.T) {
	daily := []float64{0.01, -0.02, 0.03, 0.00}
	// h=1: mean .005; deviations .005,-.025,.025,-.005 -> sum sq .0013, /3 -> std sqrt(.0013/3)
	s, v := blockSharpe(daily, 1)
	sd := math.Sqrt(0.0013 / 3)
	near(t, "sharpe h=1", s, math.Sqrt(252)*0.005/sd)
	near(t, "vol h=1", v, math.Sqrt(252)*sd)
	// h=2: blocks 1.01*0.98-1 = -.0102 and 1.03*1.00-1 = .03; mean .0099, std .0402/sqrt(2)
	s, v = blockSharpe(daily, 2)
	near(t, "sharpe h=2", s, math.Sqrt(126)*0.0099/(0.0402/math.Sqrt(2)))
	near(t, "vol h=2", v, math.Sqrt(126)*0.0402/math.Sqrt(2))
	// h=3: one full block, the partial one is dropped -> undefined -> 0
	if s, v = blockSharpe(daily, 3); s != 0 || v != 0 {
		t.Errorf("one block: sharpe %v vol %v, want 0", s, v)
	}
	if s, _ = blockSharpe([]float64{0.01, 0.01, 0.01}, 1); s != 0 {
		t.Errorf("constant series: sharpe %v, want 0", s)
	}

	// equity 1, 1.1, .88, .924, .8316, 1.08108: peak 1.1, trough .8316 -> dd = 1 - .8316/1.1 = .244
	eq := equityCurve([]float64{0.10, -0.20, 0.05, -0.10, 0.30})
	near(t, "final equity", eq[5], 1.08108)
	near(t, "max drawdown", maxDrawdown(eq), 0.244)
	near(t, "no drawdown", maxDrawdown(equityCurve([]float64{0.01, 0.02})), 0)
	near(t, "ann return", annualizedReturn(1.1, 126), 1.21-1)
	near(t, "wiped out", annualizedReturn(0, 10), -1)
	near(t, "daily equivalent", dailyEquivalent(1.21, 2), 0.1)
	near(t, "daily equivalent of wipe-out", dailyEquivalent(-0.5, 3), -1)
}

func TestTurnover(t *testing.T) {
	// {1:.5, 2:.5} -> {2:.25, 3:.25, 4:.5}: |0-.5| + |.25-.5| + .25 + .5 = 1.5
	near(t, "turnover", turnover(weights{1: .5, 2: .5}, weights{2: .25, 3: .25, 4: .5}), 1.5)
	near(t, "initial turnover", turnover(weights{}, weights{7: 1}), 1)
	near(t, "no change", turnover(weights{1: .5, 2: .5}, weights{2: .5, 1: .5}), 0)
}

func TestBacktestNonOverlappingDaily(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 1, CostBps: 10})
	// c = 10 bps = .001. Books: d1 {1,2} (turnover 1 from cash), d2 {3,2} (sell 1 .5, buy 3 .5 -> 1),
	// d3 {3,1} (sell 2, buy 1 -> 1). Gross means 1.035, 1.00, 0.98.
	// net daily returns: .035-.001 = .034, .00-.001 = -.001, -.02-.001 = -.021.
	s := r.Strategy
	want := []float64{0.034, -0.001, -0.021}
	if len(s.Daily) != 3 || s.Days != 3 || s.Rebalances != 3 {
		t.Fatalf("strategy daily = %v (days %d, rebalances %d)", s.Daily, s.Days, s.Rebalances)
	}
	for i := range want {
		near(t, "strategy daily", s.Daily[i], want[i])
	}
	end := 1.034 * 0.999 * 0.979
	near(t, "total return", s.TotalReturn, end-1)
	near(t, "ann return", s.AnnReturn, math.Pow(end, 84)-1)
	// mean .004; deviations .030,-.005,-.025 -> sum sq .00155, /2 -> std sqrt(.000775)
	near(t, "sharpe", s.Sharpe, math.Sqrt(252)*0.004/math.Sqrt(0.000775))
	near(t, "sharpe daily = sharpe for h=1", s.SharpeNaive, s.Sharpe)
	near(t, "ann vol", s.AnnVol, math.Sqrt(252)*math.Sqrt(0.000775))
	// peak 1.034 after day 1, then .999*.979 of it: dd = 1 - .978021
	near(t, "max drawdown", s.MaxDrawdown, 1-0.999*0.979)
	near(t, "avg turnover", s.AvgTurnover, 1)
	near(t, "ann turnover", s.AnnTurnover, 3.0*252/3)
	near(t, "total cost", s.TotalCost, 0.003)

	// Benchmark: all 4 names each date, weights .25: turnover 1, 0, 0.
	// daily: 1.01-.001 -1 = .009, 1.0025-1 = .0025, 1.005-1 = .005.
	b := r.Benchmark
	bw := []float64{0.009, 0.0025, 0.005}
	for i := range bw {
		near(t, "benchmark daily", b.Daily[i], bw[i])
	}
	near(t, "benchmark avg turnover", b.AvgTurnover, 1.0/3)
	near(t, "benchmark total cost", b.TotalCost, 0.001)
	near(t, "benchmark drawdown", b.MaxDrawdown, 0)
	if len(s.Equity) != 4 || s.Equity[0] != 1 {
		t.Errorf("equity = %v", s.Equity)
	}
}

func TestBacktestNonOverlappingH2(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 2, CostBps: 10})
	// Rebalance on d1 and d3 only. d1 book {1,2}: turnover 1, gross 1.035 -> net 1.034.
	// d3 book {3,1} vs {1,2}: keep 1, sell 2, buy 3 -> turnover 1, gross .98 -> net .979.
	// Each period's net gross return is spread over 2 days by the square root.
	a, b := math.Sqrt(1.034)-1, math.Sqrt(0.979)-1
	s := r.Strategy
	if s.Days != 4 || s.Rebalances != 2 {
		t.Fatalf("days %d rebalances %d, want 4, 2", s.Days, s.Rebalances)
	}
	for i, w := range []float64{a, a, b, b} {
		near(t, "daily", s.Daily[i], w)
	}
	near(t, "total return", s.TotalReturn, 1.034*0.979-1)
	near(t, "ann return", s.AnnReturn, math.Pow(1.034*0.979, 63)-1)
	// 2-day blocks are the period returns .034 and -.021: mean .0065, std .055/sqrt(2)
	near(t, "sharpe", s.Sharpe, math.Sqrt(126)*0.0065/(0.055/math.Sqrt(2)))
	// the naive daily-series Sharpe on (a,a,b,b)
	m := (a + b) / 2
	sd := math.Sqrt((2*(a-m)*(a-m) + 2*(b-m)*(b-m)) / 3)
	near(t, "sharpe daily", s.SharpeNaive, math.Sqrt(252)*m/sd)
	near(t, "max drawdown", s.MaxDrawdown, 1-0.979)
	near(t, "avg turnover", s.AvgTurnover, 1)
	near(t, "total cost", s.TotalCost, 0.002)
}

func TestBacktestStaggered(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 2, CostBps: 10, Rebalance: RebalanceStaggered})
	// Tranches (one per date, held 2 days):
	//   s=0 d1 {1,2}: from cash, turnover 1, net gross 1.035-.001 = 1.034
	//   s=1 d2 {3,2}: from cash (s < h), turnover 1, net 1.00-.001 = .999
	//   s=2 d3 {3,1}: replaces s=0 {1,2}: turnover 1, net .98-.001 = .979
	// rates r_s = sqrt(net)-1; days 1..4 average the live tranches:
	//   day1 {0}, day2 {0,1}, day3 {1,2}, day4 {2}.
	r0, r1, r2 := math.Sqrt(1.034)-1, math.Sqrt(0.999)-1, math.Sqrt(0.979)-1
	want := []float64{r0, (r0 + r1) / 2, (r1 + r2) / 2, r2}
	s := r.Strategy
	if s.Days != 4 || s.Rebalances != 3 {
		t.Fatalf("days %d rebalances %d, want 4, 3", s.Days, s.Rebalances)
	}
	for i := range want {
		near(t, "staggered daily", s.Daily[i], want[i])
	}
	// portfolio turnover: each tranche is 1/h of capital -> (1+1+1)/2 = 1.5 in total, 0.5 per event
	near(t, "avg turnover", s.AvgTurnover, 0.5)
	near(t, "total cost", s.TotalCost, 0.0015)
	near(t, "ann turnover", s.AnnTurnover, 1.5*252/4)
	eq := (1 + want[0]) * (1 + want[1]) * (1 + want[2]) * (1 + want[3])
	near(t, "total return", s.TotalReturn, eq-1)
	// blocks: days 1-2 and 3-4
	b1 := (1+want[0])*(1+want[1]) - 1
	b2 := (1+want[2])*(1+want[3]) - 1
	bm := (b1 + b2) / 2
	near(t, "sharpe", s.Sharpe, math.Sqrt(126)*bm/(math.Abs(b1-b2)/math.Sqrt(2)))
}

func TestCalibration(t *testing.T) {
	r := evalExample(t, Config{TopK: 2})
	// 12 predictions sorted by score (ties by date, then ticker):
	//  pos score realized          pos score realized
	//  0   0.99  1.00 (d2 t4)       6   1.02  0.97 (d2 t2)
	//  1   1.00  0.98 (d1 t4)       7   1.02  1.00 (d3 t1)
	//  2   1.00  1.01 (d2 t1)       8   1.03  1.05 (d1 t2)
	//  3   1.00  1.02 (d3 t4)       9   1.03  0.96 (d3 t3)
	//  4   1.01  0.99 (d1 t3)       10  1.04  1.02 (d1 t1)
	//  5   1.01  1.04 (d3 t2)       11  1.05  1.03 (d2 t3)
	// bucket i = [floor(12i/10), floor(12(i+1)/10)): sizes 1,1,1,1,2,1,1,1,1,2
	type b struct {
		count      int
		score, rea float64
	}
	want := []b{{1, 0.99, 1.00}, {1, 1.00, 0.98}, {1, 1.00, 1.01}, {1, 1.00, 1.02},
		{2, 1.01, (0.99 + 1.04) / 2}, {1, 1.02, 0.97}, {1, 1.02, 1.00}, {1, 1.03, 1.05},
		{1, 1.03, 0.96}, {2, (1.04 + 1.05) / 2, (1.02 + 1.03) / 2}}
	if len(r.Calibration) != 10 {
		t.Fatalf("%d buckets, want 10", len(r.Calibration))
	}
	for i, w := range want {
		g := r.Calibration[i]
		if g.Decile != i+1 || g.Count != w.count {
			t.Errorf("bucket %d: decile %d count %d, want %d %d", i, g.Decile, g.Count, i+1, w.count)
		}
		near(t, "mean score", g.MeanScore, w.score)
		near(t, "mean realized", g.MeanRealized, w.rea)
	}
	near(t, "top bucket min", r.Calibration[9].MinScore, 1.04)
	near(t, "top bucket max", r.Calibration[9].MaxScore, 1.05)

	// Fewer than 10 predictions: empty buckets are omitted, deciles keep their numbers.
	r, err := Evaluate(example()[:4], Config{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	// n=4: boundaries 0,0,0,1,1,2,2,2,3,3,4 -> buckets 3,5,8,10 of one prediction each
	var dec []int
	for _, c := range r.Calibration {
		dec = append(dec, c.Decile)
	}
	if !reflect.DeepEqual(dec, []int{3, 5, 8, 10}) {
		t.Errorf("deciles = %v, want [3 5 8 10]", dec)
	}
}

func TestEvaluateErrors(t *testing.T) {
	bad := func(f func(p []Prediction) []Prediction) []Prediction { return f(example()) }
	cases := []struct {
		name  string
		preds []Prediction
		cfg   Config
		want  string
	}{
		{"empty", nil, Config{}, "no predictions"},
		{"nan score", bad(func(p []Prediction) []Prediction { p[3].Score = math.NaN(); return p }), Config{}, "non-finite score"},
		{"inf realized", bad(func(p []Prediction) []Prediction { p[3].Realized = math.Inf(1); return p }), Config{}, "realized"},
		{"negative realized", bad(func(p []Prediction) []Prediction { p[3].Realized = -0.1; return p }), Config{}, "realized"},
		{"bad date", bad(func(p []Prediction) []Prediction { p[0].Date = 0; return p }), Config{}, "invalid date"},
		{"duplicate", bad(func(p []Prediction) []Prediction { return append(p, p[5]) }), Config{}, "duplicate"},
		{"top_k", example(), Config{TopK: -1}, "top_k"},
		{"top_frac", example(), Config{TopFrac: 1.5}, "top_frac"},
		{"horizon", example(), Config{HorizonDays: -2}, "horizon_days"},
		{"huge horizon", example(), Config{HorizonDays: 1 << 30}, "horizon_days"},
		{"cost", example(), Config{CostBps: math.NaN()}, "cost_bps"},
		{"rebalance", example(), Config{Rebalance: "weekly"}, "rebalance"},
	}
	for _, c := range cases {
		r, err := Evaluate(c.preds, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.want)
		}
		if r != nil {
			t.Errorf("%s: non-nil report with an error", c.name)
		}
	}
}

func TestEvaluateDoesNotModifyInput(t *testing.T) {
	p := example()
	p[0], p[11] = p[11], p[0]
	before := append([]Prediction(nil), p...)
	if _, err := Evaluate(p, Config{TopK: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if p[i].Ticker != before[i].Ticker || p[i].Date != before[i].Date {
			t.Fatal("Evaluate reordered its input")
		}
	}
}

func TestWriteTable(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 1, CostBps: 10})
	var sb strings.Builder
	r.WriteTable(&sb)
	out := sb.String()
	for _, want := range []string{"predictions 12, decision dates 3 (2024-01-02 .. 2024-01-04)", "Rank IC (Spearman)", "long top-k", "equal-weight universe", "decile", "0.5900", "0.5400",
		"mean realized 1d return (bps)", fmt.Sprintf("%.1f", 1e4*r.Precision.Excess), "return days"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestSchemesAgreeForDailyHorizon(t *testing.T) {
	a := evalExample(t, Config{TopK: 2, HorizonDays: 1, CostBps: 7, Rebalance: RebalanceNonOverlapping})
	b := evalExample(t, Config{TopK: 2, HorizonDays: 1, CostBps: 7, Rebalance: RebalanceStaggered})
	if !reflect.DeepEqual(a.Strategy, b.Strategy) || !reflect.DeepEqual(a.Benchmark, b.Benchmark) {
		t.Errorf("h=1: staggered and non-overlapping differ:\n%+v\n%+v", a.Strategy, b.Strategy)
	}
}

func TestPerfectForesight(t *testing.T) {
	// Score = Realized on a random panel: IC = rank IC = 1 every date, every pick
	// beats the median (k = 10% < half), top-k excess > 0, decile means increase.
	rng := rand.New(rand.NewSource(3))
	var p []Prediction
	for d := int32(0); d < 40; d++ {
		for tk := int32(0); tk < 50; tk++ {
			r := 1 + rng.NormFloat64()*0.02
			p = append(p, Prediction{Ticker: tk, Date: 20230101 + d, Score: r, Realized: r, Loss: math.NaN()})
		}
	}
	for _, reb := range []string{RebalanceNonOverlapping, RebalanceStaggered} {
		r, err := Evaluate(p, Config{TopFrac: 0.1, HorizonDays: 5, CostBps: 10, Rebalance: reb})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "IC", r.IC.Mean, 1)
		near(t, "rank IC", r.RankIC.Mean, 1)
		near(t, "beat median", r.Precision.BeatMedian, 1)
		if r.Precision.Excess <= 0 || r.Strategy.TotalReturn <= r.Benchmark.TotalReturn {
			t.Errorf("%s: perfect foresight does not beat the universe: %+v", reb, r.Precision)
		}
		if r.All.LossCount != 0 || r.All.Loss != 0 {
			t.Errorf("unknown losses: %+v", r.All)
		}
		for i := 1; i < len(r.Calibration); i++ {
			if r.Calibration[i].MeanRealized <= r.Calibration[i-1].MeanRealized {
				t.Errorf("calibration not increasing at decile %d", i+1)
			}
		}
		if r.Strategy.Days != map[string]int{RebalanceNonOverlapping: 40, RebalanceStaggered: 44}[reb] {
			t.Errorf("%s: %d days", reb, r.Strategy.Days)
		}
	}
}

// TestTurnoverIndependentOfMapOrder: turnover of two books over many names
// with weights whose sum depends on the order of addition is the same on
// every call (Go randomises map iteration), and equals the sum taken in
// ticker order.
func TestTurnoverIndependentOfMapOrder(t *testing.T) {
	old, new := weights{}, weights{}
	for i := 0; i < 200; i++ {
		name := int32(i)
		if i%3 != 0 {
			old[name] = 1 / float64(7+i%11)
		}
		if i%4 != 0 {
			new[name] = 1 / float64(3+i%13)
		}
	}
	first := turnover(old, new)
	for i := 0; i < 50; i++ {
		if got := turnover(old, new); got != first {
			t.Fatalf("call %d: turnover %.17g, first call %.17g", i, got, first)
		}
	}
	want := 0.0
	for i := 0; i < 200; i++ {
		name := int32(i)
		want += math.Abs(new[name] - old[name])
	}
	if first != want {
		t.Fatalf("turnover %.17g, the sum in name order %.17g", first, want)
	}
}
