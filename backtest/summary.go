package backtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// CurvePoint is one point of a convergence curve: after Budget sequence-passes
// of training, the top-k expected (or realized) return.
type CurvePoint struct {
	Budget     int64   `json:"budget"`
	TopKReturn float64 `json:"topk_return"`
}

// ArmResult is the evaluation of one arm (training strategy) with one seed.
type ArmResult struct {
	Arm    string       `json:"arm"`
	Seed   int64        `json:"seed"`
	Report *Report      `json:"report"`
	Curve  []CurvePoint `json:"curve"`
	// Stage1 is, for a two-stage run, the stage-1 model that stage 2 starts
	// from: the budget spent in stage 1 and that model's value on the
	// curve's measure (nil for single-stage runs).
	Stage1 *CurvePoint `json:"stage1,omitempty"`
}

// MetricSummary is one scalar metric over the seeds of an arm.
type MetricSummary struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"` // Unit* constant: values are stored in it (fractions for returns)
	Mean   float64   `json:"mean"`
	Std    float64   `json:"std"` // sample std (n-1); 0 when N == 1
	N      int       `json:"n"`
	Values []float64 `json:"values"` // per seed, in ascending seed order
}

// CurveSummary is the convergence curve of an arm at one budget, over the
// seeds that have a point at that budget.
type CurveSummary struct {
	Budget int64   `json:"budget"`
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	N      int     `json:"n"`
}

// ArmSummary aggregates one arm over its seeds.
type ArmSummary struct {
	Arm     string          `json:"arm"`
	Seeds   []int64         `json:"seeds"` // ascending
	Metrics []MetricSummary `json:"metrics"`
	Curve   []CurveSummary  `json:"curve"`  // ascending budget
	Curves  [][]CurvePoint  `json:"curves"` // per seed (Seeds order), as given
	// Stage1 is the mean over seeds of the stage-1 baselines (two-stage
	// arms; Budget is the mean stage-1 budget), nil when no seed has one.
	Stage1 *CurveSummary `json:"stage1,omitempty"`
	// Intervals are the arm's per-date metrics, mean over seeds and dates
	// with their two-way 95% intervals (ArmIntervals).
	Intervals []PairedDifference `json:"intervals,omitempty"`
}

// Summary is the comparison of several arms; arms keep their order of first
// appearance in the input.
type Summary struct {
	Arms []ArmSummary `json:"arms"`
	// Paired holds every pair of arms' paired differences (PairedDifferences).
	Paired []PairedDifference `json:"paired,omitempty"`
}

// Summarize aggregates each scalar metric (Report.Scalars) of each arm as mean
// and sample standard deviation over seeds, averages the convergence curves
// per budget, and pairs every two arms on seed and date (PairedDifferences).
func Summarize(results []ArmResult) (*Summary, error) {
	if len(results) == 0 {
		return nil, errors.New("backtest: summarize: no results")
	}
	var order []string
	byArm := map[string][]ArmResult{}
	for _, res := range results {
		if res.Arm == "" {
			return nil, fmt.Errorf("backtest: summarize: result with seed %d has an empty arm name", res.Seed)
		}
		if res.Report == nil {
			return nil, fmt.Errorf("backtest: summarize: arm %q seed %d: nil report", res.Arm, res.Seed)
		}
		for _, o := range byArm[res.Arm] {
			if o.Seed == res.Seed {
				return nil, fmt.Errorf("backtest: summarize: arm %q seed %d given twice", res.Arm, res.Seed)
			}
		}
		for _, cp := range res.Curve {
			if math.IsNaN(cp.TopKReturn) || math.IsInf(cp.TopKReturn, 0) {
				return nil, fmt.Errorf("backtest: summarize: arm %q seed %d: non-finite curve value at budget %d", res.Arm, res.Seed, cp.Budget)
			}
		}
		if b := res.Stage1; b != nil && (math.IsNaN(b.TopKReturn) || math.IsInf(b.TopKReturn, 0)) {
			return nil, fmt.Errorf("backtest: summarize: arm %q seed %d: non-finite stage-1 baseline", res.Arm, res.Seed)
		}
		if _, ok := byArm[res.Arm]; !ok {
			order = append(order, res.Arm)
		}
		byArm[res.Arm] = append(byArm[res.Arm], res)
	}
	s := &Summary{}
	for _, arm := range order {
		rs := byArm[arm]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Seed < rs[j].Seed })
		as := ArmSummary{Arm: arm}
		var scalars [][]Scalar
		for _, r := range rs {
			as.Seeds = append(as.Seeds, r.Seed)
			as.Curves = append(as.Curves, r.Curve)
			scalars = append(scalars, r.Report.Scalars())
		}
		// Metrics in the order of the seed that has the most; a metric some
		// seed lacks (no groups or volatilities in its data) is over the
		// seeds that have it.
		longest := 0
		for k, sc := range scalars {
			if len(sc) > len(scalars[longest]) {
				longest = k
			}
		}
		for _, first := range scalars[longest] {
			ms := MetricSummary{Name: first.Name, Unit: first.Unit}
			for _, sc := range scalars {
				for _, x := range sc {
					if x.Name == first.Name {
						ms.Values = append(ms.Values, x.Value)
						break
					}
				}
			}
			ms.N = len(ms.Values)
			ms.Mean, ms.Std = mean(ms.Values), sampleStd(ms.Values)
			as.Metrics = append(as.Metrics, ms)
		}
		byBudget := map[int64][]float64{}
		for _, r := range rs {
			for _, cp := range r.Curve {
				byBudget[cp.Budget] = append(byBudget[cp.Budget], cp.TopKReturn)
			}
		}
		for b, vs := range byBudget {
			as.Curve = append(as.Curve, CurveSummary{Budget: b, Mean: mean(vs), Std: sampleStd(vs), N: len(vs)})
		}
		sort.Slice(as.Curve, func(i, j int) bool { return as.Curve[i].Budget < as.Curve[j].Budget })
		var base []float64
		var budget int64
		for _, r := range rs {
			if r.Stage1 != nil {
				base = append(base, r.Stage1.TopKReturn)
				budget += r.Stage1.Budget
			}
		}
		if len(base) > 0 {
			as.Stage1 = &CurveSummary{Budget: budget / int64(len(base)), Mean: mean(base), Std: sampleStd(base), N: len(base)}
		}
		s.Arms = append(s.Arms, as)
	}
	s.Paired = PairedDifferences(results)
	iv := ArmIntervals(results)
	for i := range s.Arms {
		s.Arms[i].Intervals = iv[s.Arms[i].Arm]
	}
	return s, nil
}

// Metric returns the summary of the named metric for arm, if present.
func (s *Summary) Metric(arm, name string) (MetricSummary, bool) {
	for _, a := range s.Arms {
		if a.Arm != arm {
			continue
		}
		for _, m := range a.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return MetricSummary{}, false
}

// WriteTable writes one row per metric, labelled with its display unit
// (returns in bps, annual figures in %), and one column per arm: mean ± std
// over seeds, or the single value where an arm has one seed (n=1 in its
// header).
func (s *Summary) WriteTable(w io.Writer) {
	if s == nil || len(s.Arms) == 0 {
		fmt.Fprintln(w, "(no arms)")
		return
	}
	t := &textTable{}
	hdr := []string{"metric (mean ± std over seeds)"}
	for _, a := range s.Arms {
		hdr = append(hdr, fmt.Sprintf("%s (n=%d)", a.Arm, len(a.Seeds)))
	}
	t.add(hdr...)
	for _, ms := range s.Arms[0].Metrics {
		row := []string{ScalarLabel(ms.Name, ms.Unit)}
		for _, a := range s.Arms {
			x, ok := s.Metric(a.Arm, ms.Name)
			if !ok {
				row = append(row, "n/a")
				continue
			}
			row = append(row, FormatMeanStd(x.Mean, x.Std, x.N, ms.Unit))
		}
		t.add(row...)
	}
	t.write(w)
	arms := make([]string, len(s.Arms))
	iv := map[string][]PairedDifference{}
	for i, a := range s.Arms {
		arms[i] = a.Arm
		iv[a.Arm] = a.Intervals
	}
	if len(s.Arms[0].Intervals) > 0 {
		fmt.Fprintln(w)
		WriteArmIntervals(w, arms, iv)
	}
	if len(s.Paired) > 0 {
		fmt.Fprintln(w)
		WritePairedTable(w, s.Paired)
	}
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(path string) error {
	if s == nil {
		return fmt.Errorf("backtest: write %s: nil summary", path)
	}
	return writeJSONFile(path, s)
}

// ReadSummary reads a summary written by WriteJSON.
func ReadSummary(path string) (*Summary, error) {
	var s Summary
	if err := readJSONFile(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
