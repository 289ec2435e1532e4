package backtest

import (
	"math"
	"slices"
)

// TradingDaysPerYear is used for every annualisation.
const TradingDaysPerYear = 252

// Portfolio is the result of one backtested portfolio. The daily series starts
// at the close of the first decision date: Equity[0] = 1 and Equity[t] is the
// value after t trading days. It runs past the last decision date by the
// last holding period, so Days exceeds the report's decision dates (by h-1
// for staggered rebalancing).
type Portfolio struct {
	Days        int     `json:"return_days"`  // daily returns in the series (decision dates + the last holding period's tail)
	Rebalances  int     `json:"rebalances"`   // rebalance events (tranche formations for staggered)
	TotalReturn float64 `json:"total_return"` // Equity[Days] - 1
	AnnReturn   float64 `json:"ann_return"`   // Equity[Days]^(252/Days) - 1
	AnnVol      float64 `json:"ann_vol"`      // std of h-day block returns * sqrt(252/h)
	// Sharpe is the annualised Sharpe ratio to use: mean/std of h-day
	// block returns * sqrt(252/h), zero risk-free rate.
	Sharpe float64 `json:"sharpe_annualized"`
	// SharpeNaive is sqrt(252) * mean/std of the smoothed daily series: it
	// overstates the Sharpe ratio by about sqrt(h) for h > 1 (reference only).
	SharpeNaive float64   `json:"sharpe_annualized_naive"`
	MaxDrawdown float64   `json:"max_drawdown"` // largest peak-to-trough loss of Equity, as a positive fraction
	AvgTurnover float64   `json:"avg_turnover"` // mean portfolio turnover sum|w_new - w_old| per rebalance event
	AnnTurnover float64   `json:"ann_turnover"` // total portfolio turnover * 252 / Days
	TotalCost   float64   `json:"total_cost"`   // sum of cost charges (fractions of capital)
	Daily       []float64 `json:"daily"`        // daily net returns
	Equity      []float64 `json:"equity"`       // len Days+1
}

// weights is an equal-weight book keyed by ticker.
type weights map[int32]float64

func equalWeights(ps []Prediction, idx []int) (weights, float64) {
	w := make(weights, len(idx))
	g := 0.0
	for _, i := range idx {
		w[ps[i].Ticker] = 1 / float64(len(idx))
		g += ps[i].Realized
	}
	return w, g / float64(len(idx))
}

// turnover returns sum over the union of names of |new - old|. Weight drift
// between rebalances is ignored: old is the book as set at its rebalance.
// The terms are added in ticker order, so the result does not depend on Go's
// map iteration order (floating-point addition is not associative).
func turnover(old, new weights) float64 {
	names := make([]int32, 0, len(old)+len(new))
	for k := range new {
		names = append(names, k)
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	t := 0.0
	for _, k := range names {
		t += math.Abs(new[k] - old[k])
	}
	return t
}

// dailyEquivalent converts an h-day net gross return g into the constant daily
// return with the same compounded value: g^(1/h) - 1. A non-positive g (the
// position was wiped out, e.g. by costs) maps to -1.
func dailyEquivalent(g float64, h int) float64 {
	if g <= 0 {
		return -1
	}
	return math.Pow(g, 1/float64(h)) - 1
}

// selector picks the held names of a cross-section.
type selector func(cs crossSection) []int

func topSelector(cs crossSection) []int { return cs.top }

func allSelector(cs crossSection) []int {
	idx := make([]int, len(cs.preds))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func backtest(days []crossSection, cfg Config) (strategy, bench Portfolio) {
	run := nonOverlapping
	if cfg.Rebalance == RebalanceStaggered {
		run = staggered
	}
	return run(days, cfg, topSelector), run(days, cfg, allSelector)
}

// nonOverlapping rebalances on date indices 0, h, 2h, ... and holds each book
// for h days; each period contributes h equal daily returns.
func nonOverlapping(days []crossSection, cfg Config, sel selector) Portfolio {
	h := cfg.HorizonDays
	c := cfg.CostBps / 1e4
	var p Portfolio
	var daily []float64
	var totalTurn float64
	old := weights{}
	for t := 0; t < len(days); t += h {
		w, g := equalWeights(days[t].preds, sel(days[t]))
		tau := turnover(old, w)
		totalTurn += tau
		p.TotalCost += c * tau
		d := dailyEquivalent(g-c*tau, h)
		for range h {
			daily = append(daily, d)
		}
		p.Rebalances++
		old = w
	}
	finishPortfolio(&p, daily, h, totalTurn)
	return p
}

// staggered forms a tranche on every date s, held for the h days s+1..s+h.
// Each tranche earns the daily equivalent of its net forward h-day return on
// each of its days; a day's portfolio return is the average over the live
// tranches (those formed on dates t-h..t-1 that exist). Tranche s replaces
// tranche s-h, so its turnover is sum|w_s - w_{s-h}| at the tranche level and
// 1/h of that at the portfolio level; the cost is charged to the tranche.
func staggered(days []crossSection, cfg Config, sel selector) Portfolio {
	h := cfg.HorizonDays
	c := cfg.CostBps / 1e4
	T := len(days)
	var p Portfolio
	books := make([]weights, h) // ring: books[s%h] is the live book of tranche s-h, then s
	rate := make([]float64, T)
	var totalTurn float64
	for s := range days {
		w, g := equalWeights(days[s].preds, sel(days[s]))
		old := books[s%h] // nil (cash) for s < h
		tau := turnover(old, w)
		totalTurn += tau / float64(h)
		p.TotalCost += c * tau / float64(h)
		rate[s] = dailyEquivalent(g-c*tau, h)
		books[s%h] = w
		p.Rebalances++
	}
	daily := make([]float64, 0, T+h-1)
	for t := 1; t <= T-1+h; t++ {
		lo, hi := max(0, t-h), min(T-1, t-1)
		sum := 0.0
		for s := lo; s <= hi; s++ {
			sum += rate[s]
		}
		daily = append(daily, sum/float64(hi-lo+1))
	}
	finishPortfolio(&p, daily, h, totalTurn)
	return p
}

func finishPortfolio(p *Portfolio, daily []float64, h int, totalTurn float64) {
	p.Daily = daily
	p.Days = len(daily)
	p.Equity = equityCurve(daily)
	end := p.Equity[len(p.Equity)-1]
	p.TotalReturn = end - 1
	p.AnnReturn = annualizedReturn(end, p.Days)
	p.Sharpe, p.AnnVol = blockSharpe(daily, h)
	p.SharpeNaive, _ = blockSharpe(daily, 1)
	p.MaxDrawdown = maxDrawdown(p.Equity)
	if p.Rebalances > 0 {
		p.AvgTurnover = totalTurn / float64(p.Rebalances)
	}
	if p.Days > 0 {
		p.AnnTurnover = totalTurn * TradingDaysPerYear / float64(p.Days)
	}
}

// equityCurve compounds daily returns starting from 1.
func equityCurve(daily []float64) []float64 {
	eq := make([]float64, len(daily)+1)
	eq[0] = 1
	for i, r := range daily {
		eq[i+1] = eq[i] * (1 + r)
	}
	return eq
}

// annualizedReturn is end^(252/days) - 1 (-1 when the equity is wiped out,
// 0 for an empty series).
func annualizedReturn(end float64, days int) float64 {
	if days == 0 {
		return 0
	}
	if end <= 0 {
		return -1
	}
	return math.Pow(end, float64(TradingDaysPerYear)/float64(days)) - 1
}

// blockSharpe compounds the daily series into consecutive non-overlapping
// blocks of h days (a trailing partial block is dropped) and returns the
// annualised Sharpe ratio sqrt(252/h)*mean/std and volatility
// sqrt(252/h)*std of the block returns (sample std; zero risk-free rate).
// Both are 0 with fewer than two blocks or zero std. With h = 1 this is the
// usual daily Sharpe ratio.
func blockSharpe(daily []float64, h int) (sharpe, vol float64) {
	var blocks []float64
	for i := 0; i+h <= len(daily); i += h {
		g := 1.0
		for _, r := range daily[i : i+h] {
			g *= 1 + r
		}
		blocks = append(blocks, g-1)
	}
	if len(blocks) < 2 || allEqual(blocks) {
		return 0, 0
	}
	m, s := mean(blocks), sampleStd(blocks)
	scale := math.Sqrt(float64(TradingDaysPerYear) / float64(h))
	return scale * m / s, scale * s
}

// maxDrawdown returns max_t (1 - E_t / max_{s<=t} E_s) as a positive fraction.
func maxDrawdown(equity []float64) float64 {
	peak, mdd := math.Inf(-1), 0.0
	for _, e := range equity {
		if e > peak {
			peak = e
		}
		if peak > 0 {
			mdd = math.Max(mdd, 1-e/peak)
		}
	}
	return mdd
}
