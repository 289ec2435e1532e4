// Package reporttest holds what the tests of eval and trainer share to
// compare two backtest reports of one model: the figures promised identical
// whatever the inference batching, and the float noise allowed in the rest.
package reporttest

import (
	"math"

	"github.com/satrain/satrain/backtest"
)

// ScoreFree clears the report's figures that are means of raw scores or
// losses, and the IC and rank IC values (raw and residual, and the score's
// rank correlation with volatility): those carry each sequence's float
// noise (docs/METRICS.md) and are compared with a tolerance instead of
// exactly. What is left (picks, portfolio, backtest figures, the dates on
// which IC is defined) is promised identical.
func ScoreFree(r backtest.Report) backtest.Report {
	r.Precision.TopKMeanScore = 0
	r.All.Loss, r.TopK.Loss = 0, 0
	r.Calibration = nil
	r.Config.TieRTol = 0
	r.IC = backtest.CorrStats{Dates: r.IC.Dates, Skipped: r.IC.Skipped}
	r.RankIC = backtest.CorrStats{Dates: r.RankIC.Dates, Skipped: r.RankIC.Skipped}
	r.ResidualIC = backtest.CorrStats{Dates: r.ResidualIC.Dates, Skipped: r.ResidualIC.Skipped}
	r.ResidualRankIC = backtest.CorrStats{Dates: r.ResidualRankIC.Dates, Skipped: r.ResidualRankIC.Skipped}
	r.Exposure.ScoreVolRankCorr, r.Exposure.ScoreSigmaRankCorr = 0, 0
	r.Dates = append([]backtest.DateRow(nil), r.Dates...)
	for i := range r.Dates {
		r.Dates[i].IC, r.Dates[i].RankIC = 0, 0
		r.Dates[i].ResidualIC, r.Dates[i].ResidualRankIC = nil, nil
	}
	return r
}

// ICNoise bounds the difference of an IC or rank IC (a correlation, in
// [-1, 1]) between inference batch sizes. Scores move by up to the tie
// tolerance r relative; a Pearson correlation moves by at most about
// 2·r·|x|/sd(x) (x the scores: gross returns near 1, so |x|/sd(x) can be
// ~10³ on a quiet date), and a rank IC changes where a group of near-equal
// scores straddles the tolerance's edge. docs/METRICS.md promises agreement
// to noise of order 1e-4; the test allows 1e-3.
const ICNoise = 1e-3

// SameIC reports whether two reports' IC and rank IC agree within ICNoise.
func SameIC(a, b *backtest.Report) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= ICNoise || (math.IsNaN(x) && math.IsNaN(y)) }
	if !near(a.IC.Mean, b.IC.Mean) || !near(a.IC.Std, b.IC.Std) || !near(a.RankIC.Mean, b.RankIC.Mean) ||
		!near(a.RankIC.Std, b.RankIC.Std) || len(a.Dates) != len(b.Dates) {
		return false
	}
	for i := range a.Dates {
		if !near(a.Dates[i].IC, b.Dates[i].IC) || !near(a.Dates[i].RankIC, b.Dates[i].RankIC) {
			return false
		}
	}
	return true
}
