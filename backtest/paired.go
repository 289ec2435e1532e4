package backtest

import (
	"fmt"
	"io"
	"math"
	"sort"
)

// PairedDifference is arm A minus arm B on one per-date metric, paired on
// the seed (the same initial weights and data order) and on the decision
// date (the same cross-section): x[s][d] = A's value - B's value for seed s
// on date d, over the seeds and dates where both arms have the metric.
//
// Mean is the mean over dates of the per-date mean over seeds. Its standard
// error has a term for each source of noise (two-way clustering by seed and
// by date, Cameron, Gelbach and Miller, J. Bus. Econ. Stat. 2011, without
// subtracting the intersection term, which makes it conservative):
//
//	SEDates: Newey–West (lag h-1) of the per-date means over seeds: the
//	         market's date-to-date noise, with overlapping holding periods;
//	SESeeds: the sample std of the per-seed means over dates / √seeds: the
//	         training noise (what one more seed would change);
//	SE = √(SEDates² + SESeeds²), CI95 = Mean ± 1.96·SE.
//
// With one seed SESeeds is not measured (0) and SeedsOnly is false. A
// difference is distinguishable from zero at the 5% level when CI95
// excludes 0.
type PairedDifference struct {
	Metric  string   `json:"metric"` // a Scalars name: topk.excess, rank_ic.mean, ...
	Unit    string   `json:"unit"`
	A       string   `json:"a"`           // arm A (the difference is A - B)
	B       string   `json:"b,omitempty"` // empty: A's own mean (ArmIntervals)
	Mean    float64  `json:"mean"`
	CI95    Interval `json:"ci95"` // Lo, Hi, SE (combined), Lag, N = dates
	SEDates float64  `json:"se_dates"`
	SESeeds float64  `json:"se_seeds"`
	// SeedT is the mean over seeds of the per-seed mean difference divided
	// by SESeeds: the paired t statistic over seeds alone (qlib's seed
	// spread, made paired); 0 with one seed.
	SeedT         float64 `json:"seed_t"`
	Seeds         int     `json:"seeds"`
	Dates         int     `json:"dates"`
	Distinguished bool    `json:"distinguished"` // CI95 excludes 0
}

// pairedMetrics are the per-date series paired across arms: the Scalars
// name, its unit and how to read it from a date's row (ok false where the
// date has none).
var pairedMetrics = []struct {
	name, unit string
	value      func(DateRow) (float64, bool)
}{
	{"topk.excess", UnitReturn, func(r DateRow) (float64, bool) { return r.TopKMeanRealized - r.MeanRealized, true }},
	{"precision.vol_matched_excess", UnitReturn, func(r DateRow) (float64, bool) { return deref(r.VolMatchedExcess) }},
	{"precision.group_neutral_excess", UnitReturn, func(r DateRow) (float64, bool) { return deref(r.GroupNeutralExcess) }},
	{"ic.mean", UnitCorr, func(r DateRow) (float64, bool) { return r.IC, r.ICValid }},
	{"rank_ic.mean", UnitCorr, func(r DateRow) (float64, bool) { return r.RankIC, r.ICValid }},
	{"residual_rank_ic.mean", UnitCorr, func(r DateRow) (float64, bool) { return deref(r.ResidualRankIC) }},
}

func deref(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// PairedDifferences computes, for every pair of arms (B before A in the
// order of first appearance) and every paired metric, A - B paired on seed
// and date (PairedDifference). Pairs with no seed in common, and metrics
// neither report of a seed has, are left out. The lag of the date term is
// the reports' holding period minus one.
func PairedDifferences(results []ArmResult) []PairedDifference {
	order, byArm := reportsByArm(results)
	var out []PairedDifference
	for j := 1; j < len(order); j++ {
		for i := 0; i < j; i++ {
			a, b := order[j], order[i]
			var seeds []int64
			for s := range byArm[a] {
				if _, ok := byArm[b][s]; ok {
					seeds = append(seeds, s)
				}
			}
			sort.Slice(seeds, func(x, y int) bool { return seeds[x] < seeds[y] })
			if len(seeds) == 0 {
				continue
			}
			for _, m := range pairedMetrics {
				if d, ok := pairOne(byArm[a], byArm[b], seeds, m.value); ok {
					d.Metric, d.Unit, d.A, d.B = m.name, m.unit, a, b
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// ArmIntervals is, for each arm and each per-date metric, the arm's own
// mean over seeds and dates with the same two-way interval as a paired
// difference (B empty: the difference from zero).
func ArmIntervals(results []ArmResult) map[string][]PairedDifference {
	_, byArm := reportsByArm(results)
	out := map[string][]PairedDifference{}
	for arm, reps := range byArm {
		var seeds []int64
		for s := range reps {
			seeds = append(seeds, s)
		}
		sort.Slice(seeds, func(x, y int) bool { return seeds[x] < seeds[y] })
		for _, m := range pairedMetrics {
			if d, ok := pairOne(reps, nil, seeds, m.value); ok {
				d.Metric, d.Unit, d.A = m.name, m.unit, arm
				out[arm] = append(out[arm], d)
			}
		}
	}
	return out
}

// reportsByArm indexes the results' reports by arm and seed; order lists
// the arms in their order of first appearance.
func reportsByArm(results []ArmResult) (order []string, byArm map[string]map[int64]*Report) {
	byArm = map[string]map[int64]*Report{}
	for _, r := range results {
		if r.Report == nil {
			continue
		}
		if byArm[r.Arm] == nil {
			byArm[r.Arm] = map[int64]*Report{}
			order = append(order, r.Arm)
		}
		byArm[r.Arm][r.Seed] = r.Report
	}
	return order, byArm
}

// pairOne is the paired difference of one metric over seeds (b nil: a's
// values themselves).
func pairOne(a, b map[int64]*Report, seeds []int64, value func(DateRow) (float64, bool)) (PairedDifference, bool) {
	type acc struct {
		sum float64
		n   int
	}
	byDate := map[Date]*acc{}
	var seedMeans []float64
	lag := 0
	for _, s := range seeds {
		ra := a[s]
		lag = max(lag, max(1, ra.Config.HorizonDays)-1)
		var bRows map[Date]DateRow
		if b != nil {
			bRows = map[Date]DateRow{}
			for _, r := range b[s].Dates {
				bRows[r.Date] = r
			}
		}
		var sum float64
		n := 0
		for _, r := range ra.Dates {
			va, okA := value(r)
			if !okA {
				continue
			}
			x := va
			if b != nil {
				rbRow, ok := bRows[r.Date]
				if !ok {
					continue
				}
				vb, okB := value(rbRow)
				if !okB {
					continue
				}
				x -= vb
			}
			if byDate[r.Date] == nil {
				byDate[r.Date] = &acc{}
			}
			byDate[r.Date].sum += x
			byDate[r.Date].n++
			sum += x
			n++
		}
		if n > 0 {
			seedMeans = append(seedMeans, sum/float64(n))
		}
	}
	if len(byDate) == 0 {
		return PairedDifference{}, false
	}
	dates := make([]Date, 0, len(byDate))
	for d := range byDate {
		dates = append(dates, d)
	}
	sort.Slice(dates, func(i, j int) bool { return dates[i] < dates[j] })
	series := make([]float64, len(dates))
	for i, d := range dates {
		series[i] = byDate[d].sum / float64(byDate[d].n)
	}
	pd := PairedDifference{Mean: mean(series), Seeds: len(seedMeans), Dates: len(dates)}
	if len(series) >= 2 {
		pd.SEDates = NeweyWestSE(series, lag)
	}
	if len(seedMeans) >= 2 {
		pd.SESeeds = sampleStd(seedMeans) / math.Sqrt(float64(len(seedMeans)))
		if pd.SESeeds > 0 {
			pd.SeedT = mean(seedMeans) / pd.SESeeds
		}
	}
	se := math.Sqrt(pd.SEDates*pd.SEDates + pd.SESeeds*pd.SESeeds)
	pd.CI95 = Interval{Lo: pd.Mean - z975*se, Hi: pd.Mean + z975*se, SE: se, Lag: min(lag, max(0, len(series)-1)), N: len(series)}
	pd.Distinguished = se > 0 && (pd.CI95.Lo > 0 || pd.CI95.Hi < 0)
	return pd, true
}

// WritePairedTable writes one row per pair of arms and one column per
// metric: A - B with its 95% interval, "*" where the interval excludes 0,
// then how many seeds and dates the pairs used.
func WritePairedTable(w io.Writer, diffs []PairedDifference) {
	if len(diffs) == 0 {
		return
	}
	var metrics []string
	unit := map[string]string{}
	type key struct{ a, b string }
	var pairs []key
	cell := map[key]map[string]PairedDifference{}
	for _, d := range diffs {
		if _, ok := unit[d.Metric]; !ok {
			unit[d.Metric] = d.Unit
			metrics = append(metrics, d.Metric)
		}
		k := key{d.A, d.B}
		if cell[k] == nil {
			cell[k] = map[string]PairedDifference{}
			pairs = append(pairs, k)
		}
		cell[k][d.Metric] = d
	}
	fmt.Fprintln(w, "Paired differences A - B (same seed, same dates): mean [95% CI]; * = distinguishable from 0 at the 5% level")
	fmt.Fprintln(w, "(CI from a Newey-West SE over dates and the seed-to-seed SE, combined; docs/METRICS.md)")
	t := &textTable{}
	hdr := []string{"A - B"}
	for _, m := range metrics {
		hdr = append(hdr, ScalarLabel(m, unit[m]))
	}
	hdr = append(hdr, "seeds", "dates")
	t.add(hdr...)
	for _, k := range pairs {
		row := []string{k.a + " - " + k.b}
		seeds, dates := 0, 0
		for _, m := range metrics {
			d, ok := cell[k][m]
			if !ok {
				row = append(row, "n/a")
				continue
			}
			star := ""
			if d.Distinguished {
				star = " *"
			}
			row = append(row, fmt.Sprintf("%s [%s, %s]%s", FormatScalar(d.Mean, d.Unit), FormatScalar(d.CI95.Lo, d.Unit), FormatScalar(d.CI95.Hi, d.Unit), star))
			seeds, dates = max(seeds, d.Seeds), max(dates, d.Dates)
		}
		row = append(row, fmt.Sprint(seeds), fmt.Sprint(dates))
		t.add(row...)
	}
	t.write(w)
}

// WriteArmIntervals writes one row per arm and one column per metric: the
// arm's mean over seeds and dates with its two-way 95% interval.
func WriteArmIntervals(w io.Writer, arms []string, iv map[string][]PairedDifference) {
	var metrics []string
	unit := map[string]string{}
	for _, a := range arms {
		for _, d := range iv[a] {
			if _, ok := unit[d.Metric]; !ok {
				unit[d.Metric] = d.Unit
				metrics = append(metrics, d.Metric)
			}
		}
	}
	if len(metrics) == 0 {
		return
	}
	fmt.Fprintln(w, "Per arm, over seeds and dates: mean [95% CI] (Newey-West SE over dates and the seed-to-seed SE, combined)")
	t := &textTable{}
	hdr := []string{"arm"}
	for _, m := range metrics {
		hdr = append(hdr, ScalarLabel(m, unit[m]))
	}
	t.add(append(hdr, "seeds", "dates")...)
	for _, a := range arms {
		row := []string{a}
		seeds, dates := 0, 0
		for _, m := range metrics {
			cellText := "n/a"
			for _, d := range iv[a] {
				if d.Metric == m {
					cellText = fmt.Sprintf("%s [%s, %s]", FormatScalar(d.Mean, d.Unit), FormatScalar(d.CI95.Lo, d.Unit), FormatScalar(d.CI95.Hi, d.Unit))
					seeds, dates = max(seeds, d.Seeds), max(dates, d.Dates)
				}
			}
			row = append(row, cellText)
		}
		t.add(append(row, fmt.Sprint(seeds), fmt.Sprint(dates))...)
	}
	t.write(w)
}
