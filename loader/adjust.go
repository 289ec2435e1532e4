package loader

import (
	"fmt"
	"math"
)

// Cross-checks of a vendor's adjusted close against its raw close.
//
// A vendor back-adjusts multiplicatively: every price before an event
// (dividend, split) is multiplied by the event's factor. So the adjustment
// factor adj/close of a ticker is constant between events and steps only on
// an event's day, and there the raw close moves the other way: on a 2-for-1
// split the close halves while the factor doubles, and the adjusted close
// barely moves. Two faults break this and would reach the panel as returns
// that never happened:
//
//   - an adjustment step on a day the raw close does not move (the vendor
//     applied a split that the close already reflects, or on the wrong day):
//     the adjusted close jumps by the step;
//   - a split the vendor never adjusted: close and adjusted close both move by
//     a split ratio (1/2, 1/3, 2/3, ...) and the factor does not step.
//
// Each check reads one day and the day before it only, so a repair or cut
// made on day d depends on nothing after d. (A cut does remove the returns
// of the days before d whose horizon reaches d: labels, which are the future
// by definition.)

// AdjustmentIssue is one finding of the adjusted-close checks: a day (or a
// whole file, Date 0) whose adjusted prices fail a check.
type AdjustmentIssue struct {
	Ticker string
	Date   int32  // YYYYMMDD; 0 for a finding about the whole file
	Kind   string // one of the adjust* constants
	What   string // what was seen, e.g. "adjusted close x2.05 while close x1.02"
	Action string // what ImportCSV did about it
}

// Kinds of AdjustmentIssue.
const (
	adjustJump  = "adjustment step without a price move"
	adjustSplit = "suspected unadjusted split"
	adjustNone  = "no adjusted close column"
)

const (
	// adjustStepMin is the smallest day-over-day change of adj/close, in log
	// units, that the jump check looks at: log(1.25). A regular dividend
	// steps the factor by its yield, a few percent; a step of 25% or more is
	// a split or an error.
	adjustStepMin = 0.22314355131420976
	// adjustSplitTol is how close, in log units, a one-day move must be to a
	// split ratio to be taken for an unadjusted split (2%: the ratio times an
	// ordinary day's move).
	adjustSplitTol = 0.02
	// adjustFlatTol is the largest change of adj/close, in log units, that
	// counts as "not adjusted" on a suspected split day.
	adjustFlatTol = 0.01
	// segmentWarmup is the number of rows at the start of a ticker's history
	// (or of a part of it after a cut) whose features are missing: the
	// longest feature window (ret60) needs 60 earlier rows.
	segmentWarmup = 60
)

// splitRatios are the one-day close ratios (after / before) that a split
// produces: num/den for a den-for-num split (1/2 is 2-for-1, 3/2 is the
// reverse 2-for-3).
var splitRatios = [][2]int{{1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 10}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {10, 1}, {2, 3}, {3, 2}}

// splitCuts says whether a suspected unadjusted split of close ratio r cuts
// the history. A day that halves or doubles a large company's price (or
// more) is rarer than a forgotten split, so it is cut; a -33% or +50% day is
// not: on the S&P 500 folder 41 days with no adjustment step fall within 2%
// of 2/3 or 3/2, 19 of them in the crashes of 2008-09 and 2020 alone, so
// those are reported and kept as returns.
func splitCuts(r [2]int) bool { return r[0]*r[0] >= 4*r[1]*r[1] || 4*r[0]*r[0] <= r[1]*r[1] }

// splitName words a close ratio num/den as the split that makes it.
func splitName(r [2]int) string {
	if r[0] < r[1] {
		return fmt.Sprintf("%d-for-%d split", r[1], r[0])
	}
	return fmt.Sprintf("%d-for-%d reverse split", r[1], r[0])
}

// barSeries is one ticker's bars ready for the features: open, high, low and
// close in adjusted prices (currency units of the latest day), dollar volume
// (raw close x raw volume, currency units, which a split leaves unchanged)
// and, per row, the first row of its unbroken part (a cut restarts it).
type barSeries struct {
	o, h, l, c []float64
	dollarVol  []float64
	segStart   []int
}

// adjustSeries checks the adjusted close of one ticker's rows (those on the
// panel's day axis) against its raw close, repairs adjustment steps that the
// close does not explain, cuts the history at suspected unadjusted splits,
// and returns the bars in adjusted prices with what it found.
func adjustSeries(ticker, file string, s *priceSeries) (*barSeries, []AdjustmentIssue) {
	n := s.len()
	var issues []AdjustmentIssue
	if !s.hasAdj {
		issues = append(issues, AdjustmentIssue{Ticker: ticker, Kind: adjustNone,
			What:   file + " has a close column but no adjusted close column",
			Action: "prices used as they are (returns leave out dividends); splits checked from the close alone"})
	}
	factor := make([]float64, n) // adj/close per row
	for i := range factor {
		factor[i] = s.adj[i] / s.c[i]
	}
	// Decide on every day from the vendor's own factors first: a repair only
	// rescales the days before it, which changes no later day's step.
	var repair []int // rows whose step is undone
	cut := make([]bool, n)
	for i := 1; i < n; i++ {
		step := math.Log(factor[i] / factor[i-1])
		move := math.Log(s.c[i] / s.c[i-1])
		adjMove := math.Log(s.adj[i] / s.adj[i-1])
		if math.Abs(step) >= adjustStepMin && math.Abs(move) <= math.Abs(step)/3 {
			repair = append(repair, i)
			issues = append(issues, AdjustmentIssue{Ticker: ticker, Date: s.dates[i], Kind: adjustJump,
				What: fmt.Sprintf("adjusted close x%.3g while close x%.3g", math.Exp(adjMove), math.Exp(move)),
				Action: fmt.Sprintf("repaired: the day's return is the close's, adjusted prices before the day rescaled x%.3g",
					factor[i]/factor[i-1])})
			continue
		}
		if math.Abs(step) > adjustFlatTol {
			continue
		}
		for _, r := range splitRatios {
			if math.Abs(adjMove-math.Log(float64(r[0])/float64(r[1]))) <= adjustSplitTol {
				is := AdjustmentIssue{Ticker: ticker, Date: s.dates[i], Kind: adjustSplit,
					What:   fmt.Sprintf("close and adjusted close x%.3g, near a %s, adjustment unchanged", math.Exp(adjMove), splitName(r)),
					Action: "kept as a return (a real move of this size is as likely; check the vendor's split history)"}
				if splitCuts(r) {
					cut[i] = true
					is.Action = fmt.Sprintf("history cut: no return or feature window spans the day, features missing for %d rows after it",
						segmentWarmup)
				}
				issues = append(issues, is)
				break
			}
		}
	}
	for _, i := range repair {
		k := factor[i] / factor[i-1]
		for j := 0; j < i; j++ {
			factor[j] *= k
		}
	}
	b := &barSeries{o: make([]float64, n), h: make([]float64, n), l: make([]float64, n), c: make([]float64, n),
		dollarVol: make([]float64, n), segStart: make([]int, n)}
	start := 0
	for i := 0; i < n; i++ {
		if cut[i] {
			start = i
		}
		f := factor[i]
		b.o[i], b.h[i], b.l[i], b.c[i] = s.o[i]*f, s.h[i]*f, s.l[i]*f, s.c[i]*f
		b.dollarVol[i] = s.c[i] * s.v[i]
		b.segStart[i] = start
	}
	return b, issues
}
