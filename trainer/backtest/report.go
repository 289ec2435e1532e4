package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/satrain/satrain/internal/atomicfile"
)

// Scalar is one named scalar metric of a Report.
type Scalar struct {
	Name  string
	Value float64
}

// Scalars lists the report's scalar metrics in a fixed order. Summarize
// aggregates exactly these over seeds.
func (r *Report) Scalars() []Scalar {
	s := []Scalar{
		{"loss", r.All.Loss},
		{"accuracy", r.All.Accuracy},
		{"topk.loss", r.TopK.Loss},
		{"topk.accuracy", r.TopK.Accuracy},
		{"precision.beat_median", r.Precision.BeatMedian},
		{"precision.above_one", r.Precision.AboveOne},
		{"topk.mean_score", r.Precision.TopKMeanScore},
		{"topk.mean_realized", r.Precision.TopKMeanRealized},
		{"universe.mean_realized", r.Precision.UniverseMeanRealized},
		{"topk.excess", r.Precision.Excess},
		{"ic.mean", r.IC.Mean},
		{"ic.std", r.IC.Std},
		{"ic.ir", r.IC.IR},
		{"rank_ic.mean", r.RankIC.Mean},
		{"rank_ic.std", r.RankIC.Std},
		{"rank_ic.ir", r.RankIC.IR},
	}
	for _, pf := range []struct {
		name string
		p    *Portfolio
	}{{"strategy", &r.Strategy}, {"benchmark", &r.Benchmark}} {
		s = append(s,
			Scalar{pf.name + ".total_return", pf.p.TotalReturn},
			Scalar{pf.name + ".ann_return", pf.p.AnnReturn},
			Scalar{pf.name + ".ann_vol", pf.p.AnnVol},
			Scalar{pf.name + ".sharpe", pf.p.Sharpe},
			Scalar{pf.name + ".max_drawdown", pf.p.MaxDrawdown},
			Scalar{pf.name + ".avg_turnover", pf.p.AvgTurnover},
		)
	}
	s = append(s, Scalar{"excess.ann_return", r.Strategy.AnnReturn - r.Benchmark.AnnReturn})
	return s
}

func na(count int, format string, v float64) string {
	if count == 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

// WriteTable writes a human-readable, aligned summary of the report.
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
	fmt.Fprintf(w, "predictions %d, dates %d (%d..%d), tickers %d; selection %s; horizon %dd, %s, cost %.4g bps\n",
		r.NumPredictions, r.NumDates, r.FirstDate, r.LastDate, r.NumTickers, sel, c.HorizonDays, c.Rebalance, c.CostBps)

	t := &textTable{}
	t.add("", "all", "top-k")
	t.addf("sequences", "%d\t%d", r.All.Count, r.TopK.Count)
	t.addf("loss", "%s\t%s", na(r.All.LossCount, "%.5f", r.All.Loss), na(r.TopK.LossCount, "%.5f", r.TopK.Loss))
	t.addf("accuracy", "%.4f\t%.4f", r.All.Accuracy, r.TopK.Accuracy)
	t.addf("mean realized", "%.5f\t%.5f", r.Precision.UniverseMeanRealized, r.Precision.TopKMeanRealized)
	t.write(w)

	fmt.Fprintln(w)
	t = &textTable{}
	t.addf("top-k picks", "%d", r.Precision.Picks)
	t.addf("precision (> date median)", "%.4f", r.Precision.BeatMedian)
	t.addf("precision (> 1.0)", "%.4f", r.Precision.AboveOne)
	t.addf("top-k mean score", "%.5f", r.Precision.TopKMeanScore)
	t.addf("top-k excess realized", "%+.5f", r.Precision.Excess)
	t.write(w)

	fmt.Fprintln(w)
	t = &textTable{}
	t.add("", "mean", "std", "IR", "t-stat", "dates", "skipped")
	for _, x := range []struct {
		name string
		c    CorrStats
	}{{"IC (Pearson)", r.IC}, {"Rank IC (Spearman)", r.RankIC}} {
		t.addf(x.name, "%s\t%s\t%s\t%s\t%d\t%d",
			na(x.c.Dates, "%+.4f", x.c.Mean), na(x.c.Dates, "%.4f", x.c.Std),
			na(x.c.Dates, "%+.3f", x.c.IR), na(x.c.Dates, "%+.2f", x.c.TStat), x.c.Dates, x.c.Skipped)
	}
	t.write(w)

	fmt.Fprintln(w)
	t = &textTable{}
	t.add("portfolio", "total ret", "ann ret", "ann vol", "Sharpe", "max DD", "avg turnover", "ann turnover", "cost", "days")
	for _, x := range []struct {
		name string
		p    Portfolio
	}{{"long top-k", r.Strategy}, {"equal-weight universe", r.Benchmark}} {
		p := x.p
		t.addf(x.name, "%+.2f%%\t%+.2f%%\t%.2f%%\t%.3f\t%.2f%%\t%.3f\t%.2f\t%.4f\t%d",
			100*p.TotalReturn, 100*p.AnnReturn, 100*p.AnnVol, p.Sharpe, 100*p.MaxDrawdown,
			p.AvgTurnover, p.AnnTurnover, p.TotalCost, p.Days)
	}
	t.write(w)

	if len(r.Calibration) > 0 {
		fmt.Fprintln(w)
		t = &textTable{}
		t.add("decile", "count", "min score", "max score", "mean score", "mean realized")
		for _, b := range r.Calibration {
			t.addf(fmt.Sprint(b.Decile), "%d\t%.5f\t%.5f\t%.5f\t%.5f", b.Count, b.MinScore, b.MaxScore, b.MeanScore, b.MeanRealized)
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
