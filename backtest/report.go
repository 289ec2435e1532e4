package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/satrain/satrain/internal/atomicfile"
)

// Units of a Scalar: how the value is measured and how tables print it.
const (
	UnitNats     = "nats"     // cross-entropy; printed with 4 decimals
	UnitFraction = "fraction" // a share in [0, 1]; 3 decimals
	UnitGross    = "gross"    // a gross return over the horizon (1 = flat); printed as (x-1) in bps
	UnitReturn   = "return"   // a simple return or a difference of returns; printed in bps
	UnitPercent  = "percent"  // an annual or total return, volatility or drawdown as a fraction; printed in %
	UnitCorr     = "corr"     // a correlation; 4 decimals
	UnitRatio    = "ratio"    // IR, Sharpe ratio, turnover; 2 decimals
)

// Scalar is one named scalar metric of a Report, in its stored unit (a
// fraction for returns; FormatScalar converts for display).
type Scalar struct {
	Name  string
	Value float64
	Unit  string
}

// Scalars lists the report's scalar metrics in a fixed order (the exposure
// figures only where the predictions carried groups or volatilities).
// Summarize aggregates exactly these over seeds.
func (r *Report) Scalars() []Scalar {
	s := []Scalar{
		{"loss", r.All.Loss, UnitNats},
		{"accuracy", r.All.Accuracy, UnitFraction},
		{"topk.loss", r.TopK.Loss, UnitNats},
		{"topk.accuracy", r.TopK.Accuracy, UnitFraction},
		{"precision.beat_median", r.Precision.BeatMedian, UnitFraction},
		{"precision.above_one", r.Precision.AboveOne, UnitFraction},
		{"topk.mean_score", r.Precision.TopKMeanScore, UnitGross},
		{"topk.mean_realized", r.Precision.TopKMeanRealized, UnitGross},
		{"universe.mean_realized", r.Precision.UniverseMeanRealized, UnitGross},
		{"topk.excess", r.Precision.Excess, UnitReturn},
		{"ic.mean", r.IC.Mean, UnitCorr},
		{"ic.std", r.IC.Std, UnitCorr},
		{"ic.ir", r.IC.IR, UnitRatio},
		{"rank_ic.mean", r.RankIC.Mean, UnitCorr},
		{"rank_ic.std", r.RankIC.Std, UnitCorr},
		{"rank_ic.ir", r.RankIC.IR, UnitRatio},
	}
	// The exposure figures exist only where the predictions carry groups and
	// trailing volatilities.
	if r.Precision.GroupNeutralPicks > 0 {
		s = append(s, Scalar{"precision.group_neutral_excess", r.Precision.GroupNeutralExcess, UnitReturn})
	}
	if r.Exposure.VolNames > 0 {
		s = append(s,
			Scalar{"precision.vol_matched_excess", r.Precision.VolMatchedExcess, UnitReturn},
			Scalar{"residual_ic.mean", r.ResidualIC.Mean, UnitCorr},
			Scalar{"residual_rank_ic.mean", r.ResidualRankIC.Mean, UnitCorr},
			Scalar{"exposure.beta", r.Exposure.Beta, UnitRatio},
			Scalar{"exposure.rel_vol", r.Exposure.RelVol, UnitRatio},
			Scalar{"exposure.score_vol_rank_corr", r.Exposure.ScoreVolRankCorr, UnitCorr},
		)
	}
	if r.Exposure.SigmaNames > 0 {
		s = append(s,
			Scalar{"exposure.sigma_matched_excess", r.Exposure.SigmaMatchedExcess, UnitReturn},
			Scalar{"exposure.score_sigma_rank_corr", r.Exposure.ScoreSigmaRankCorr, UnitCorr},
		)
	}
	for _, pf := range []struct {
		name string
		p    *Portfolio
	}{{"strategy", &r.Strategy}, {"benchmark", &r.Benchmark}} {
		s = append(s,
			Scalar{pf.name + ".total_return", pf.p.TotalReturn, UnitPercent},
			Scalar{pf.name + ".ann_return", pf.p.AnnReturn, UnitPercent},
			Scalar{pf.name + ".ann_vol", pf.p.AnnVol, UnitPercent},
			Scalar{pf.name + ".sharpe_annualized", pf.p.Sharpe, UnitRatio},
			Scalar{pf.name + ".max_drawdown", pf.p.MaxDrawdown, UnitPercent},
			Scalar{pf.name + ".avg_turnover", pf.p.AvgTurnover, UnitRatio},
		)
	}
	s = append(s, Scalar{"excess.ann_return", r.Strategy.AnnReturn - r.Benchmark.AnnReturn, UnitPercent})
	return s
}

// unitDisplay is how a unit is printed: the scale applied to the stored
// value, the offset subtracted first, the printf verbs of a value and of a
// spread, and the suffix naming the display unit.
func unitDisplay(unit string) (offset, scale float64, verb, spread, suffix string) {
	switch unit {
	case UnitNats:
		return 0, 1, "%.4f", "%.4f", ""
	case UnitFraction:
		return 0, 1, "%.3f", "%.3f", ""
	case UnitGross:
		return 1, 1e4, "%.1f", "%.1f", "bps"
	case UnitReturn:
		return 0, 1e4, "%.1f", "%.1f", "bps"
	case UnitPercent:
		return 0, 100, "%.2f", "%.2f", "%"
	case UnitCorr:
		return 0, 1, "%.4f", "%.4f", ""
	}
	return 0, 1, "%.2f", "%.2f", ""
}

// ScalarLabel is the table label of a metric: its name and display unit,
// e.g. "topk.excess (bps)".
func ScalarLabel(name, unit string) string {
	if _, _, _, _, suffix := unitDisplay(unit); suffix != "" {
		return name + " (" + suffix + ")"
	}
	return name
}

// FormatScalar prints a value of unit in its display unit without the
// suffix: 0.0043 UnitReturn is "43.0", 1.0043 UnitGross too.
func FormatScalar(v float64, unit string) string {
	off, scale, verb, _, _ := unitDisplay(unit)
	out := fmt.Sprintf(verb, (v-off)*scale)
	if strings.Trim(out, "-0.") == "" {
		// A value that rounds to zero prints as 0, never "-0.0".
		out = strings.TrimPrefix(out, "-")
	}
	return out
}

// FormatMeanStd prints mean ± std over n seeds in the display unit, or the
// value alone when n is 1 (a single seed has no spread).
func FormatMeanStd(mean, std float64, n int, unit string) string {
	if n <= 1 {
		return FormatScalar(mean, unit)
	}
	_, scale, _, spread, _ := unitDisplay(unit)
	return FormatScalar(mean, unit) + " ± " + fmt.Sprintf(spread, std*scale)
}

func na(count int, format string, v float64) string {
	if count == 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

// WriteTable writes a human-readable, aligned summary of the report. Returns
// over the horizon are in bps, annual figures in %, dates YYYY-MM-DD.
func (r *Report) WriteTable(w io.Writer) {
	if r == nil {
		fmt.Fprintln(w, "(no report)")
		return
	}
	c := r.Config
	sel := fmt.Sprintf("top %d per date", c.TopK)
	if c.TopK == 0 {
		sel = fmt.Sprintf("top %.4g%% per date", 100*c.TopFrac)
	}
	fmt.Fprintf(w, "predictions %d, decision dates %d (%s .. %s), tickers %d; selection %s; horizon %dd, %s rebalancing, cost %.4g bps per unit turnover\n",
		r.NumPredictions, r.NumDates, r.FirstDate, r.LastDate, r.NumTickers, sel, c.HorizonDays, c.Rebalance, c.CostBps)

	h := c.HorizonDays
	t := &textTable{}
	t.add("", "all", "top-k")
	t.addf("sequences", "%d\t%d", r.All.Count, r.TopK.Count)
	t.addf("loss (nats)", "%s\t%s", na(r.All.LossCount, "%.4f", r.All.Loss), na(r.TopK.LossCount, "%.4f", r.TopK.Loss))
	t.addf("accuracy", "%.3f\t%.3f", r.All.Accuracy, r.TopK.Accuracy)
	t.addf(fmt.Sprintf("mean realized %dd return (bps)", h), "%s\t%s",
		FormatScalar(r.Precision.UniverseMeanRealized, UnitGross), FormatScalar(r.Precision.TopKMeanRealized, UnitGross))
	t.write(w)

	fmt.Fprintln(w)
	t = &textTable{}
	t.addf("top-k picks", "%d", r.Precision.Picks)
	t.addf("precision (> date median)", "%.3f", r.Precision.BeatMedian)
	t.addf("precision (> 0 return)", "%.3f", r.Precision.AboveOne)
	if c.RankBy == "risk-adjusted" {
		t.addf(fmt.Sprintf("top-k mean ranking key (E[r]-1)/sd, %dd", h), "%.3f", r.Precision.TopKMeanScore)
	} else {
		t.addf(fmt.Sprintf("top-k mean expected %dd return (bps)", h), "%s", FormatScalar(r.Precision.TopKMeanScore, UnitGross))
	}
	t.addf(fmt.Sprintf("top-k excess realized %dd return (bps)", h), "%s", FormatScalar(r.Precision.Excess, UnitReturn))
	if ci := r.Precision.ExcessCI95; ci.N >= 2 {
		t.addf(fmt.Sprintf("  95%% CI (Newey-West, lag %d)", ci.Lag), "[%s, %s]", FormatScalar(ci.Lo, UnitReturn), FormatScalar(ci.Hi, UnitReturn))
	}
	if r.Precision.GroupNeutralPicks > 0 {
		t.addf(fmt.Sprintf("top-k group-neutral excess %dd return (bps)", h), "%s", FormatScalar(r.Precision.GroupNeutralExcess, UnitReturn))
		if ci := r.Precision.GroupNeutralExcessCI95; ci.N >= 2 {
			t.addf(fmt.Sprintf("  95%% CI (Newey-West, lag %d)", ci.Lag), "[%s, %s]", FormatScalar(ci.Lo, UnitReturn), FormatScalar(ci.Hi, UnitReturn))
		}
	}
	if r.Precision.VolMatchedPicks > 0 {
		t.addf(fmt.Sprintf("top-k vol-matched excess %dd return (bps)", h), "%s", FormatScalar(r.Precision.VolMatchedExcess, UnitReturn))
		if ci := r.Precision.VolMatchedExcessCI95; ci.N >= 2 {
			t.addf(fmt.Sprintf("  95%% CI (Newey-West, lag %d)", ci.Lag), "[%s, %s]", FormatScalar(ci.Lo, UnitReturn), FormatScalar(ci.Hi, UnitReturn))
		}
	}
	if e := r.Exposure; e.VolNames > 0 {
		t.addf("top-k beta to the equal-weight universe", "%.2f", e.Beta)
		t.addf("top-k trailing volatility / universe's", "%.2f", e.RelVol)
		t.addf("rank corr. of score with trailing volatility", "%+.3f", e.ScoreVolRankCorr)
	}
	if e := r.Exposure; e.SigmaNames > 0 {
		t.addf(fmt.Sprintf("top-k excess over predicted-sd-matched names %dd (bps)", h), "%s", FormatScalar(e.SigmaMatchedExcess, UnitReturn))
		if ci := e.SigmaMatchedExcessCI95; ci.N >= 2 {
			t.addf(fmt.Sprintf("  95%% CI (Newey-West, lag %d)", ci.Lag), "[%s, %s]", FormatScalar(ci.Lo, UnitReturn), FormatScalar(ci.Hi, UnitReturn))
		}
		t.addf("rank corr. of score with predicted sd", "%+.3f", e.ScoreSigmaRankCorr)
	}
	t.write(w)

	fmt.Fprintln(w)
	t = &textTable{}
	t.add("", "mean", "std", "IR", "t (iid)", "t (NW)", "dates", "skipped")
	for _, x := range []struct {
		name string
		c    CorrStats
	}{{"IC (Pearson)", r.IC}, {"Rank IC (Spearman)", r.RankIC},
		{"IC vs residual returns", r.ResidualIC}, {"Rank IC vs residual returns", r.ResidualRankIC}} {
		if x.c.Dates == 0 && x.c.Skipped == 0 {
			continue
		}
		nwT := 0.0
		if se := x.c.CI95.SE; se > 0 {
			nwT = x.c.Mean / se
		}
		t.addf(x.name, "%s\t%s\t%s\t%s\t%s\t%d\t%d",
			na(x.c.Dates, "%+.4f", x.c.Mean), na(x.c.Dates, "%.4f", x.c.Std),
			na(x.c.Dates, "%+.2f", x.c.IR), na(x.c.Dates, "%+.2f", x.c.TStat), na(x.c.CI95.N/2, "%+.2f", nwT), x.c.Dates, x.c.Skipped)
	}
	t.write(w)
	if r.IC.CI95.N >= 2 || r.RankIC.CI95.N >= 2 {
		fmt.Fprintf(w, "95%% CI of the mean (Newey-West, lag %d: overlapping %d-day outcomes): IC [%+.4f, %+.4f], rank IC [%+.4f, %+.4f]\n",
			max(r.IC.CI95.Lag, r.RankIC.CI95.Lag), h, r.IC.CI95.Lo, r.IC.CI95.Hi, r.RankIC.CI95.Lo, r.RankIC.CI95.Hi)
	}
	if r.ResidualRankIC.CI95.N >= 2 {
		fmt.Fprintf(w, "95%% CI of the mean against residual returns (sector and volatility removed): IC [%+.4f, %+.4f], rank IC [%+.4f, %+.4f]\n",
			r.ResidualIC.CI95.Lo, r.ResidualIC.CI95.Hi, r.ResidualRankIC.CI95.Lo, r.ResidualRankIC.CI95.Hi)
	}

	fmt.Fprintln(w)
	t = &textTable{}
	t.add("portfolio (net of costs)", "total ret", "ann ret", "ann vol", "Sharpe (ann.)", "max DD", "avg turnover", "ann turnover", "cost", "return days")
	for _, x := range []struct {
		name string
		p    Portfolio
	}{{"long top-k", r.Strategy}, {"equal-weight universe", r.Benchmark}} {
		p := x.p
		t.addf(x.name, "%+.2f%%\t%+.2f%%\t%.2f%%\t%.2f\t%.2f%%\t%.2f\t%.2f\t%.2f%%\t%d",
			100*p.TotalReturn, 100*p.AnnReturn, 100*p.AnnVol, p.Sharpe, 100*p.MaxDrawdown,
			p.AvgTurnover, p.AnnTurnover, 100*p.TotalCost, p.Days)
	}
	t.write(w)

	if len(r.Calibration) > 0 && c.RankBy != "risk-adjusted" {
		fmt.Fprintln(w)
		t = &textTable{}
		t.add("decile", "count", "min score (bps)", "max score (bps)", "mean score (bps)", "mean realized (bps)")
		for _, b := range r.Calibration {
			t.addf(fmt.Sprint(b.Decile), "%d\t%s\t%s\t%s\t%s", b.Count, FormatScalar(b.MinScore, UnitGross), FormatScalar(b.MaxScore, UnitGross),
				FormatScalar(b.MeanScore, UnitGross), FormatScalar(b.MeanRealized, UnitGross))
		}
		t.write(w)
	}
}

// WriteJSON writes the whole report, including the per-date rows and the
// daily series, as indented JSON.
func (r *Report) WriteJSON(path string) error {
	if r == nil {
		return fmt.Errorf("backtest: write %s: nil report", path)
	}
	return writeJSONFile(path, r)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	var r Report
	if err := readJSONFile(path, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("backtest: encode %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("backtest: write %s: %w", path, err)
	}
	return nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("backtest: read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("backtest: decode %s: %w", path, err)
	}
	return nil
}
