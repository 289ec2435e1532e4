package backtest

import (
	"math"
	"sort"
)

// DefaultVolControls is the number of unselected names, nearest in
// trailing volatility, whose mean realized return is a pick's control.
const DefaultVolControls = 10

// Exposure describes what the picks are exposed to, apart from skill:
// market beta and volatility. Every figure needs Prediction.Vol (the
// trailing realised volatility known at the decision date); VolNames counts
// the predictions that have it (0: none did, and the figures are 0).
type Exposure struct {
	// Beta is the OLS slope, over decision dates, of the picks' mean
	// realized h-day return on the equal-weight universe's mean realized
	// h-day return (both per date, as in Precision): the picks' beta to the
	// equal-weight market, ex post.
	Beta float64 `json:"beta"`
	// RelVol is the mean over dates of the picks' mean trailing volatility
	// divided by the universe's mean trailing volatility that date (1: the
	// picks are as volatile as the average name; ex ante, known at d).
	RelVol float64 `json:"rel_vol"`
	// ScoreVolRankCorr is the mean over dates of the Spearman correlation
	// between the score and the trailing volatility across that date's
	// names: how much the ranking is a volatility ranking.
	ScoreVolRankCorr float64 `json:"score_vol_rank_corr"`
	VolNames         int     `json:"vol_names"`
	// SigmaMatchedExcess is the vol-matched excess with the model's own
	// predicted dispersion (Prediction.Sigma) in place of the trailing
	// volatility; ScoreSigmaRankCorr the mean per-date Spearman correlation
	// of the score with it. SigmaNames counts the predictions with a Sigma
	// (0: none, and the three are 0).
	SigmaMatchedExcess     float64  `json:"sigma_matched_excess"`
	SigmaMatchedExcessCI95 Interval `json:"sigma_matched_excess_ci95"`
	ScoreSigmaRankCorr     float64  `json:"score_sigma_rank_corr"`
	SigmaNames             int      `json:"sigma_names"`
	// VolWindowDays is the trailing window of Prediction.Vol, in trading
	// days (set by whoever filled Vol; 0 when unknown).
	VolWindowDays int `json:"vol_window_days,omitempty"`
}

// hasVol reports whether p carries a trailing volatility.
func hasVol(p Prediction) bool { return p.Vol > 0 && !math.IsInf(p.Vol, 0) }

// volMatchedExcess is one date's mean over picks of (pick's realized -
// the mean realized of its m nearest unselected names in log trailing
// volatility); ok is false when no pick has a volatility or no unselected
// name does. Ties in distance go to the lower ticker (preds are
// ticker-sorted).
func volMatchedExcess(d crossSection, m int) (excess float64, picks int, ok bool) {
	return matchedExcess(d, m, func(p Prediction) float64 { return p.Vol })
}

// matchedExcess is volMatchedExcess on any positive key (0 or less:
// unknown): the trailing volatility, or the model's predicted dispersion.
func matchedExcess(d crossSection, m int, key func(Prediction) float64) (excess float64, picks int, ok bool) {
	known := func(p Prediction) bool { k := key(p); return k > 0 && !math.IsInf(k, 0) }
	picked := make(map[int]bool, len(d.top))
	for _, i := range d.top {
		picked[i] = true
	}
	var pool []int
	for i, p := range d.preds {
		if !picked[i] && known(p) {
			pool = append(pool, i)
		}
	}
	if len(pool) == 0 {
		return 0, 0, false
	}
	type cand struct {
		dist float64
		i    int
	}
	cands := make([]cand, len(pool))
	var sum float64
	for _, i := range d.top {
		p := d.preds[i]
		if !known(p) {
			continue
		}
		lv := math.Log(key(p))
		for c, j := range pool {
			cands[c] = cand{math.Abs(math.Log(key(d.preds[j])) - lv), j}
		}
		sort.Slice(cands, func(a, b int) bool {
			if cands[a].dist != cands[b].dist {
				return cands[a].dist < cands[b].dist
			}
			return cands[a].i < cands[b].i
		})
		n := min(m, len(cands))
		var ctl float64
		for _, c := range cands[:n] {
			ctl += d.preds[c.i].Realized
		}
		sum += p.Realized - ctl/float64(n)
		picks++
	}
	if picks == 0 {
		return 0, 0, false
	}
	return sum / float64(picks), picks, true
}

// residualReturns is one date's realized returns with the group and
// volatility components removed: the residuals of the cross-sectional
// regression r_i = a_g(i) + b·ln(vol_i) + e_i (one intercept per group,
// names without a group forming one group), computed by demeaning r and
// ln(vol) within groups and regressing one on the other (Frisch–Waugh).
// Only names with a volatility take part: idx lists them. ok is false with
// fewer than minICNames of them.
func residualReturns(d crossSection) (idx []int, res []float64, ok bool) {
	for i, p := range d.preds {
		if hasVol(p) {
			idx = append(idx, i)
		}
	}
	if len(idx) < minICNames {
		return nil, nil, false
	}
	sumR, sumV, n := map[string]float64{}, map[string]float64{}, map[string]int{}
	for _, i := range idx {
		p := d.preds[i]
		sumR[p.Group] += p.Realized
		sumV[p.Group] += math.Log(p.Vol)
		n[p.Group]++
	}
	r, v := make([]float64, len(idx)), make([]float64, len(idx))
	var sxy, sxx float64
	for k, i := range idx {
		p := d.preds[i]
		g := float64(n[p.Group])
		r[k] = p.Realized - sumR[p.Group]/g
		v[k] = math.Log(p.Vol) - sumV[p.Group]/g
		sxy += r[k] * v[k]
		sxx += v[k] * v[k]
	}
	b := 0.0
	if sxx > 0 {
		b = sxy / sxx
	}
	for k := range r {
		r[k] -= b * v[k]
	}
	return idx, r, true
}

// exposure computes Exposure and the per-date vol-matched excess and
// residual ICs into rows (same order as days), and the summaries of those
// series with their Newey–West intervals at lag.
func exposure(days []crossSection, rows []DateRow, volControls, lag int) (ex Exposure, vm volMatched, ric, rric CorrStats) {
	var topReal, uniReal, relVol, svc, vmx, rics, rrics []float64
	residualSkipped := 0
	for t, d := range days {
		var tr float64
		for _, i := range d.top {
			tr += d.preds[i].Realized
		}
		topReal = append(topReal, tr/float64(len(d.top)))
		uniReal = append(uniReal, mean(realizedOf(d.preds)))

		var vols, scores []float64
		for _, p := range d.preds {
			if hasVol(p) {
				vols = append(vols, p.Vol)
				scores = append(scores, p.Score)
				ex.VolNames++
			}
		}
		if len(vols) == 0 {
			residualSkipped++
			continue
		}
		var pv []float64
		for _, i := range d.top {
			if p := d.preds[i]; hasVol(p) {
				pv = append(pv, p.Vol)
			}
		}
		if len(pv) > 0 {
			relVol = append(relVol, mean(pv)/mean(vols))
		}
		if c, ok := spearman(scores, vols); ok && len(vols) >= minICNames {
			svc = append(svc, c)
		}
		if x, picks, ok := volMatchedExcess(d, volControls); ok {
			vmx = append(vmx, x)
			vm.picks += picks
			rows[t].VolMatchedExcess = ptr(x)
		}
		idx, res, ok := residualReturns(d)
		if !ok {
			residualSkipped++
			continue
		}
		sc := make([]float64, len(idx))
		for k, i := range idx {
			sc[k] = d.preds[i].Score
		}
		c, ok1 := pearson(sc, res)
		rc, ok2 := spearman(sc, res)
		if !ok1 || !ok2 {
			residualSkipped++
			continue
		}
		rics = append(rics, c)
		rrics = append(rrics, rc)
		rows[t].ResidualIC, rows[t].ResidualRankIC = ptr(c), ptr(rc)
	}
	sig := sigmaExposure(days, volControls, lag)
	if ex.VolNames == 0 {
		return sig, volMatched{}, CorrStats{}, CorrStats{}
	}
	ex.SigmaMatchedExcess, ex.SigmaMatchedExcessCI95, ex.ScoreSigmaRankCorr, ex.SigmaNames =
		sig.SigmaMatchedExcess, sig.SigmaMatchedExcessCI95, sig.ScoreSigmaRankCorr, sig.SigmaNames
	ex.Beta = olsSlope(uniReal, topReal)
	ex.RelVol = mean(relVol)
	ex.ScoreVolRankCorr = mean(svc)
	if len(vmx) > 0 {
		vm.excess = mean(vmx)
	}
	vm.ci = meanInterval(vmx, lag)
	for _, x := range []struct {
		s  *CorrStats
		xs []float64
	}{{&ric, rics}, {&rric, rrics}} {
		x.s.Mean, x.s.Std, x.s.IR, x.s.TStat = meanStdIR(x.xs)
		x.s.Dates, x.s.Skipped = len(x.xs), residualSkipped
		x.s.CI95 = meanInterval(x.xs, lag)
	}
	return ex, vm, ric, rric
}

// volMatched is the vol-matched excess and its interval (Precision's
// fields).
type volMatched struct {
	excess float64
	ci     Interval
	picks  int
}

// olsSlope is the least-squares slope of y on x with an intercept (0 when
// x does not vary).
func olsSlope(x, y []float64) float64 {
	mx, my := mean(x), mean(y)
	var sxy, sxx float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}

func ptr(x float64) *float64 { return &x }

// sigmaExposure is the Exposure fields of the predicted dispersion
// (Prediction.Sigma), the rest left 0.
func sigmaExposure(days []crossSection, m, lag int) Exposure {
	var ex Exposure
	var mx, corr []float64
	sigma := func(p Prediction) float64 { return p.Sigma }
	for _, d := range days {
		var sg, sc []float64
		for _, p := range d.preds {
			if p.Sigma > 0 && !math.IsInf(p.Sigma, 0) {
				sg = append(sg, p.Sigma)
				sc = append(sc, p.Score)
			}
		}
		ex.SigmaNames += len(sg)
		if c, ok := spearman(sc, sg); ok && len(sg) >= minICNames {
			corr = append(corr, c)
		}
		if x, _, ok := matchedExcess(d, m, sigma); ok {
			mx = append(mx, x)
		}
	}
	if ex.SigmaNames == 0 {
		return Exposure{}
	}
	if len(mx) > 0 {
		ex.SigmaMatchedExcess = mean(mx)
	}
	ex.SigmaMatchedExcessCI95 = meanInterval(mx, lag)
	ex.ScoreSigmaRankCorr = mean(corr)
	return ex
}
