package backtest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// tickLabels returns the non-empty tick labels an axis draws for its range.
func tickLabels(ax plot.Axis) []string {
	var out []string
	for _, t := range ax.Tick.Marker.Ticks(ax.Min, ax.Max) {
		if t.Label != "" {
			out = append(out, t.Label)
		}
	}
	return out
}

// checkAxis checks an axis title and that its tick labels are distinct and at
// least min in number.
func checkAxis(t *testing.T, what string, ax plot.Axis, title string, min int) []string {
	t.Helper()
	if ax.Label.Text != title {
		t.Errorf("%s: axis title %q, want %q", what, ax.Label.Text, title)
	}
	labels := tickLabels(ax)
	if len(labels) < min {
		t.Errorf("%s: %d tick labels %v, want at least %d", what, len(labels), labels, min)
	}
	seen := map[string]bool{}
	for _, l := range labels {
		if seen[l] {
			t.Errorf("%s: tick label %q appears twice in %v", what, l, labels)
		}
		seen[l] = true
	}
	return labels
}

// tradingDays lists the weekdays from first to last as YYYYMMDD.
func tradingDays(first, last string) []int32 {
	a, _ := time.Parse("2006-01-02", first)
	b, _ := time.Parse("2006-01-02", last)
	var out []int32
	for d := a; !d.After(b); d = d.AddDate(0, 0, 1) {
		if d.Weekday() != time.Saturday && d.Weekday() != time.Sunday {
			out = append(out, int32(d.Year()*10000+int(d.Month())*100+d.Day()))
		}
	}
	return out
}

// reportOver builds a report whose decision dates are dates: two tickers a
// day with a slowly varying return, so the equity moves both ways.
func reportOver(t *testing.T, dates []int32, h int) *Report {
	t.Helper()
	var preds []Prediction
	for i, d := range dates {
		r := 1 + 0.01*math.Sin(float64(i)/7)
		preds = append(preds, Prediction{Ticker: 1, Date: d, Score: 1.01, Realized: r},
			Prediction{Ticker: 2, Date: d, Score: 1.00, Realized: 1 + 0.002*math.Cos(float64(i)/5)})
	}
	r, err := Evaluate(preds, Config{TopK: 1, HorizonDays: h, CostBps: 10, Rebalance: RebalanceStaggered})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var rawDate = regexp.MustCompile(`^\d{8}$`)

func TestEquityFigure(t *testing.T) {
	dates := tradingDays("2018-01-31", "2019-01-30")
	r := reportOver(t, dates, 5)
	f, err := r.EquityFigure()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Panels) != 3 {
		t.Fatalf("%d panels, want equity, excess and drawdown", len(f.Panels))
	}
	eq, ex, dd := f.Panels[0], f.Panels[1], f.Panels[2]
	if len(eq.Series) != 2 || !strings.HasPrefix(eq.Series[0], "long top-k") || !strings.HasPrefix(eq.Series[1], "equal-weight universe") {
		t.Errorf("equity series %q", eq.Series)
	}
	if len(ex.Series) != 1 || len(dd.Series) != 2 {
		t.Errorf("excess series %q, drawdown series %q", ex.Series, dd.Series)
	}
	checkAxis(t, "equity y", eq.Plot.Y, "equity (start = 1)", minLabels)
	checkAxis(t, "excess y", ex.Plot.Y, "cumulative excess (%)", minLabels)
	checkAxis(t, "drawdown y", dd.Plot.Y, "drawdown (%)", minLabels)
	labels := checkAxis(t, "date x", dd.Plot.X, "date (close of the trading day)", 4)
	if len(labels) > 8 {
		t.Errorf("%d date labels %v, want at most 8", len(labels), labels)
	}
	for _, l := range labels {
		if rawDate.MatchString(l) || strings.HasPrefix(l, "+") {
			t.Errorf("date tick %q: want a calendar label, not YYYYMMDD or +n", l)
		}
		if _, err := time.Parse("Jan 2006", l); err != nil {
			t.Errorf("date tick %q: want \"Mon YYYY\" over a year of data", l)
		}
	}
	// Each labelled tick sits on the first trading day of its month.
	for _, tk := range dd.Plot.X.Tick.Marker.Ticks(dd.Plot.X.Min, dd.Plot.X.Max) {
		i := int(tk.Value)
		if tk.Label == "" {
			continue
		}
		if i < 1 || i >= len(dates) || dates[i]/100 == dates[i-1]/100 {
			t.Errorf("tick %q at index %d is not a month's first trading day", tk.Label, i)
		}
		if got := dateOf(dates[i]).Format("Jan 2006"); got != tk.Label {
			t.Errorf("tick at index %d labelled %q, its date is %s", i, tk.Label, got)
		}
	}
	// The figure renders.
	p := filepath.Join(t.TempDir(), "equity.png")
	if err := f.Save(p); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, p, 768, 1008)
}

func TestCalendarTicksShortRange(t *testing.T) {
	// Three weeks inside one month, plus 4 days of tail past the last date:
	// a few ISO dates, none in the tail.
	dates := tradingDays("2018-03-05", "2018-03-23")
	var labels []string
	for _, tk := range (calendarTicks{dates}).Ticks(0, float64(len(dates)+3)) {
		if tk.Value >= float64(len(dates)) {
			t.Errorf("tick at %v lies past the last date", tk.Value)
		}
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if len(labels) < 3 || labels[0] != "2018-03-05" {
		t.Errorf("labels %v: want a few YYYY-MM-DD dates from 2018-03-05", labels)
	}
	// Ten years: yearly labels.
	dates = tradingDays("2008-06-02", "2018-06-01")
	var years []string
	for _, tk := range (calendarTicks{dates}).Ticks(0, float64(len(dates)-1)) {
		if tk.Label != "" {
			years = append(years, tk.Label)
		}
	}
	if len(years) < 4 || len(years) > 8 {
		t.Errorf("ten years: labels %v, want 4..8 year labels", years)
	}
	for _, y := range years {
		if len(y) != 4 {
			t.Errorf("ten years: label %q, want a year", y)
		}
	}
}

func TestDrawdownAndExcessSeries(t *testing.T) {
	// Equity 1, 1.2, 0.9, 1.0, 1.3: peaks 1, 1.2, 1.2, 1.2, 1.3.
	got := drawdownSeries([]float64{1, 1.2, 0.9, 1.0, 1.3})
	want := []float64{0, 0, -25, -100 * (1 - 1.0/1.2), 0}
	for i := range want {
		// Each value is one division and one subtraction from exact inputs.
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("drawdown[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	r := reportOver(t, tradingDays("2018-01-02", "2018-03-30"), 5)
	f, err := r.EquityFigure()
	if err != nil {
		t.Fatal(err)
	}
	// The excess panel ends at top-k equity / universe equity - 1, in %, as its legend says.
	n := len(r.Strategy.Equity)
	end := 100 * (r.Strategy.Equity[n-1]/r.Benchmark.Equity[n-1] - 1)
	if want := fmt.Sprintf("top-k over universe (%+.1f%% at the end)", end); f.Panels[1].Series[0] != want {
		t.Errorf("excess legend %q, want %q", f.Panels[1].Series[0], want)
	}
}

func TestCalibrationFigureLabelsEveryDecile(t *testing.T) {
	r := evalExample(t, Config{TopK: 2, HorizonDays: 5})
	f, err := r.CalibrationFigure()
	if err != nil {
		t.Fatal(err)
	}
	pn := f.Panels[0]
	labels := checkAxis(t, "decile x", pn.Plot.X, "score decile (1 = lowest predicted, 10 = highest)", 10)
	if !reflect.DeepEqual(labels, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}) {
		t.Errorf("decile labels %v", labels)
	}
	checkAxis(t, "calibration y", pn.Plot.Y, "mean 5d return (bps)", 2)
	if !reflect.DeepEqual(pn.Series, []string{"mean predicted (expected return)", "mean realized"}) {
		t.Errorf("series %q", pn.Series)
	}
}

func TestConvergenceFigureStage1Baseline(t *testing.T) {
	res := armResults()
	res = append(res, ArmResult{Arm: "two_stage", Seed: 1, Report: res[0].Report,
		Curve: []CurvePoint{{100, 1.0e-3}, {200, 2.0e-3}}, Stage1: &CurvePoint{Budget: 100, TopKReturn: 1.5e-3}})
	s, err := Summarize(res)
	if err != nil {
		t.Fatal(err)
	}
	if b := s.Arms[2].Stage1; b == nil || b.Budget != 100 || b.Mean != 1.5e-3 || b.N != 1 {
		t.Fatalf("two_stage stage-1 summary %+v", b)
	}
	if s.Arms[0].Stage1 != nil {
		t.Errorf("selection_aware has a stage-1 baseline %+v", s.Arms[0].Stage1)
	}
	f, err := s.ConvergenceFigure()
	if err != nil {
		t.Fatal(err)
	}
	pn := f.Panels[0]
	want := []string{"selection_aware (n=2)", "standard (n=1)", "two_stage (n=1)", "two_stage: best stage-1 model (stage 2's start)"}
	if !reflect.DeepEqual(pn.Series, want) {
		t.Errorf("series %q, want %q", pn.Series, want)
	}
	checkAxis(t, "convergence x", pn.Plot.X, "sequence-passes trained", 2)
	checkAxis(t, "convergence y", pn.Plot.Y, "top-k excess over the universe (bps)", 3)
}

func TestValLossFigureTicksDistinct(t *testing.T) {
	// The range that printed "2.3" on every tick: losses 2.262 .. 2.301.
	runs := []LossSeries{
		{Arm: "standard", Seed: 42, Points: []CurvePoint{{2000, 2.2899}, {4000, 2.2713}, {6000, 2.2619}}},
		{Arm: "standard", Seed: 43, Points: []CurvePoint{{2000, 2.2950}, {4000, 2.2800}, {6000, 2.2640}}},
		{Arm: "two_stage", Seed: 42, Points: []CurvePoint{{3000, 2.2921}, {4500, 2.3010}, {6000, 2.2672}},
			Stage1: &CurvePoint{Budget: 3000, TopKReturn: 2.2921}},
	}
	f, err := ValLossFigure(runs)
	if err != nil {
		t.Fatal(err)
	}
	pn := f.Panels[0]
	checkAxis(t, "val loss y", pn.Plot.Y, "validation loss (cross-entropy, nats)", 3)
	checkAxis(t, "val loss x", pn.Plot.X, "sequence-passes trained", 2)
	want := []string{"standard", "two_stage", "two_stage: best stage-1 loss (stage 2's start)"}
	if !reflect.DeepEqual(pn.Series, want) {
		t.Errorf("series %q, want one per arm and the baseline %q", pn.Series, want)
	}
	if _, err := ValLossFigure([]LossSeries{{Arm: "x"}}); err == nil {
		t.Error("no points: no error")
	}
}

// writeLog writes a metrics.jsonl of n records: standard (epochs, no
// scoring) or selection_aware (iterations, a scored sample).
func writeLog(t *testing.T, dir string, standard bool, n int) string {
	t.Helper()
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		if standard {
			fmt.Fprintf(&sb, `{"strategy":"standard","iteration":%d,"train_loss":%.3f,"val_loss":%.3f,"er_mean":0,"topk_er_mean":0,"sequences_scored_total":0,"sequences_trained_total":%d}`+"\n",
				i, 2.4-0.05*float64(i), 2.3-0.02*float64(i), 2000*i)
		} else {
			fmt.Fprintf(&sb, `{"strategy":"selection_aware","iteration":%d,"train_loss":%.3f,"val_loss":null,"er_mean":1.0005,"topk_er_mean":%.4f,"sequences_scored_total":%d,"sequences_trained_total":%d}`+"\n",
				i, 2.3-0.01*float64(i), 1.001+0.0001*float64(i), 1000*i, 300*i)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "metrics.jsonl")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrainingCurvesFigure(t *testing.T) {
	dir := t.TempDir()
	std := writeLog(t, filepath.Join(dir, "cmp", "standard", "seed42"), true, 3)
	sel := writeLog(t, filepath.Join(dir, "cmp", "selection_aware", "seed42"), false, 12)
	read := func(paths ...string) *Figure {
		t.Helper()
		var logs []*MetricsLog
		for i, p := range paths {
			l, err := ReadMetricsLog(p)
			if err != nil {
				t.Fatal(err)
			}
			l.Label = RunLabels(paths)[i]
			logs = append(logs, l)
		}
		f, err := TrainingCurvesFigure(logs)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	// Standard training: epochs, no expected-return panel (nothing was scored).
	f := read(std)
	if len(f.Panels) != 1 {
		t.Fatalf("standard run: %d panels, want the loss panel only", len(f.Panels))
	}
	labels := checkAxis(t, "standard x", f.Panels[0].Plot.X, "epoch", 3)
	if !reflect.DeepEqual(labels, []string{"1", "2", "3"}) {
		t.Errorf("epoch labels %v", labels)
	}
	checkAxis(t, "standard y", f.Panels[0].Plot.Y, "cross-entropy (nats)", 2)
	if !reflect.DeepEqual(f.Panels[0].Series, []string{"train loss", "validation loss"}) {
		t.Errorf("standard series %q", f.Panels[0].Series)
	}

	// Selection-aware: iterations and the expected-return panel in bps.
	f = read(sel)
	if len(f.Panels) != 2 {
		t.Fatalf("selection run: %d panels, want 2", len(f.Panels))
	}
	checkAxis(t, "selection x", f.Panels[1].Plot.X, "iteration", 3)
	checkAxis(t, "selection er y", f.Panels[1].Plot.Y, "expected return over the horizon (bps)", 2)
	if !reflect.DeepEqual(f.Panels[0].Series, []string{"train loss"}) || !reflect.DeepEqual(f.Panels[1].Series, []string{"top-k mean", "all mean"}) {
		t.Errorf("selection series %q, %q", f.Panels[0].Series, f.Panels[1].Series)
	}

	// Both overlaid: one legend entry per run and curve, on the common budget axis.
	f = read(std, sel)
	checkAxis(t, "overlay x", f.Panels[0].Plot.X, "sequence-passes trained", 2)
	want := []string{"standard/seed42: train loss", "standard/seed42: validation loss", "selection_aware/seed42: train loss"}
	if !reflect.DeepEqual(f.Panels[0].Series, want) {
		t.Errorf("overlay loss series %q, want %q", f.Panels[0].Series, want)
	}
	if len(f.Panels) != 2 || !reflect.DeepEqual(f.Panels[1].Series, []string{"selection_aware/seed42: top-k mean", "selection_aware/seed42: all mean"}) {
		t.Errorf("overlay expected-return panel: %d panels", len(f.Panels))
	}

	// The file: one 480-pixel panel per panel.
	out := filepath.Join(dir, "curves.png")
	if err := PlotTrainingCurves([]string{std}, out); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, out, 768, 480)
	if err := PlotTrainingCurves([]string{std, sel}, out); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, out, 768, 960)
}

func TestRunLabels(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"a/b/standard/seed42/metrics.jsonl", "a/b/two_stage/seed42/metrics.jsonl"}, []string{"standard/seed42", "two_stage/seed42"}},
		{[]string{"run1/metrics.jsonl", "run2/metrics.jsonl"}, []string{"run1", "run2"}},
		{[]string{"x/two_stage/seed1/stage1/metrics.jsonl", "x/two_stage/seed1/metrics.jsonl"}, []string{"seed1/stage1", "seed1"}},
		{[]string{"run/metrics.jsonl", "run/metrics.jsonl"}, []string{"run/metrics.jsonl", "run/metrics.jsonl"}},
		{[]string{"ckpt/metrics.jsonl"}, []string{"ckpt"}},
	} {
		if got := RunLabels(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RunLabels(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTrainingCurvesStageOneBaseline(t *testing.T) {
	// Stage 2 of two-stage: iteration 0 validates the stage-1 weights.
	dir := t.TempDir()
	p := filepath.Join(dir, "metrics.jsonl")
	log := `{"strategy":"selection_aware","iteration":0,"train_loss":null,"val_loss":2.2209,"sequences_scored_total":0,"sequences_trained_total":0}
{"strategy":"selection_aware","iteration":1,"train_loss":2.30,"val_loss":null,"er_mean":1.001,"topk_er_mean":1.004,"sequences_scored_total":1000,"sequences_trained_total":300}
{"strategy":"selection_aware","iteration":2,"train_loss":2.25,"val_loss":2.2301,"er_mean":1.001,"topk_er_mean":1.005,"sequences_scored_total":2000,"sequences_trained_total":600}
`
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ReadMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := TrainingCurvesFigure([]*MetricsLog{l})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"train loss", "validation loss", "validation loss of the starting weights (iteration 0)"}
	if !reflect.DeepEqual(f.Panels[0].Series, want) {
		t.Errorf("loss series %q, want %q", f.Panels[0].Series, want)
	}
	// The standard log of TestTrainingCurvesFigure starts at epoch 1: no baseline.
	std := writeLog(t, filepath.Join(dir, "std"), true, 2)
	l, _ = ReadMetricsLog(std)
	f, _ = TrainingCurvesFigure([]*MetricsLog{l})
	if len(f.Panels[0].Series) != 2 {
		t.Errorf("a fresh run has a baseline: %q", f.Panels[0].Series)
	}
}

// TestPreciseTicksEnoughLabels: on the ranges where plot.DefaultTicks
// labelled two or three ticks (an equity of 0.98..1.13 got "1.0" and "1.1"),
// at least minLabels distinct labels, each reading its tick's value.
func TestPreciseTicksEnoughLabels(t *testing.T) {
	for _, r := range [][2]float64{{0.98, 1.13}, {0.88, 1.22}, {2.26, 2.43}, {-4.2, 0.1}, {0, 6}, {1e-5, 3e-5}, {0.85, 1.25}} {
		var labels []string
		for _, tk := range (preciseTicks{}).Ticks(r[0], r[1]) {
			if tk.Label == "" {
				continue
			}
			labels = append(labels, tk.Label)
			v, err := strconv.ParseFloat(tk.Label, 64)
			// The label is exact up to float64 rounding of the tick's value.
			if err != nil || math.Abs(v-tk.Value) > 1e-12*math.Max(1, math.Abs(tk.Value)) {
				t.Errorf("%v: tick at %v labelled %q", r, tk.Value, tk.Label)
			}
			// Tick positions are i*step: within float64 rounding of the range.
			if eps := 1e-12 * (r[1] - r[0]); tk.Value < r[0]-eps || tk.Value > r[1]+eps {
				t.Errorf("%v: tick %q outside the range", r, tk.Label)
			}
		}
		if len(labels) < minLabels || len(labels) > 2*minLabels {
			t.Errorf("%v: labels %v, want %d to %d", r, labels, minLabels, 2*minLabels)
		}
	}
}

// TestReadMetricsLogCutLastLine: a last record cut short by a killed run (no
// newline, not JSON) is skipped; the same damage anywhere else, or a last line
// that has its newline, is an error naming the line.
func TestReadMetricsLogCutLastLine(t *testing.T) {
	dir := t.TempDir()
	rec := `{"iteration":%d,"train_loss":2.5,"val_loss":2.4}`
	whole := fmt.Sprintf(rec+"\n"+rec+"\n", 1, 2)
	for _, c := range []struct {
		body string
		n    int    // records read; -1: an error
		line string // the line the error names
	}{
		{whole, 2, ""},
		{whole + `{"iteration":3,"train_lo`, 2, ""},
		{whole + `{"iteration":3,"train_lo` + "\n", -1, "line 3"},
		{fmt.Sprintf(rec+"\n", 1) + `{"iterat` + "\n" + fmt.Sprintf(rec+"\n", 2), -1, "line 2"},
	} {
		p := filepath.Join(dir, "metrics.jsonl")
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := ReadMetricsLog(p)
		switch {
		case c.n < 0 && (err == nil || !strings.Contains(err.Error(), c.line+":")):
			t.Errorf("%q: err %v, want one naming %s", c.body, err, c.line)
		case c.n >= 0 && (err != nil || len(l.Records) != c.n):
			t.Errorf("%q: %v records, err %v; want %d", c.body, l, err, c.n)
		}
	}
}

// TestLegendsClearOfTitlesAndData: in every figure each panel's legend lies
// in a strip under the panel's plot (below its title, data and axes), holds
// one entry per series, starts each row at the data area's left edge and
// wraps before passing its right edge.
func TestLegendsClearOfTitlesAndData(t *testing.T) {
	figs := map[string]*Figure{}
	r := reportOver(t, tradingDays("2018-01-01", "2019-12-31"), 5)
	var err error
	if figs["equity"], err = r.EquityFigure(); err != nil {
		t.Fatal(err)
	}
	if figs["calibration"], err = evalExample(t, Config{TopK: 2, HorizonDays: 5}).CalibrationFigure(); err != nil {
		t.Fatal(err)
	}
	long := "a run label long enough that three of them cannot share one row of the legend"
	if figs["val_loss"], err = ValLossFigure([]LossSeries{
		{Arm: long + " 1", Points: []CurvePoint{{1, 2.3}, {2, 2.2}}}, {Arm: long + " 2", Points: []CurvePoint{{1, 2.4}, {2, 2.1}}},
		{Arm: long + " 3", Points: []CurvePoint{{1, 2.5}, {2, 2.0}}}}); err != nil {
		t.Fatal(err)
	}
	l, err := ReadMetricsLog(writeLog(t, t.TempDir(), false, 80))
	if err != nil {
		t.Fatal(err)
	}
	if figs["training curves"], err = TrainingCurvesFigure([]*MetricsLog{l}); err != nil {
		t.Fatal(err)
	}
	for name, f := range figs {
		w, h := f.size()
		c := draw.New(vgimg.New(w, h))
		for i, lay := range f.layout(c) {
			pn := f.Panels[i]
			what := fmt.Sprintf("%s panel %d", name, i)
			if len(pn.Series) == 0 || len(lay.entries) != len(pn.Series) {
				t.Fatalf("%s: %d legend entries for series %q", what, len(lay.entries), pn.Series)
			}
			if lay.legend.Max.Y > lay.plot.Min.Y || lay.legend.Min.Y < c.Min.Y {
				t.Errorf("%s: legend strip %v overlaps the plot %v or leaves the figure", what, lay.legend.Rectangle, lay.plot.Rectangle)
			}
			data := pn.Plot.DataCanvas(lay.plot)
			sty := plot.NewLegend().TextStyle
			rows := map[vg.Length]bool{}
			for j, e := range lay.entries {
				right := e.X + plot.NewLegend().ThumbnailWidth + sty.Rectangle(" "+pn.Series[j]).Max.X
				if e.X < data.Min.X || right > data.Max.X+1 {
					t.Errorf("%s: entry %q spans x %.0f..%.0f, outside the data area's %.0f..%.0f", what, pn.Series[j], e.X, right, data.Min.X, data.Max.X)
				}
				if e.Y > lay.legend.Max.Y || e.Y-sty.Rectangle(pn.Series[j]).Max.Y < lay.legend.Min.Y {
					t.Errorf("%s: entry %q at y %.0f outside its strip %v", what, pn.Series[j], e.Y, lay.legend.Rectangle)
				}
				if !rows[e.Y] && e.X != data.Min.X {
					t.Errorf("%s: row at y %.0f starts at x %.0f, not at the data area's left edge %.0f", what, e.Y, e.X, data.Min.X)
				}
				rows[e.Y] = true
			}
			if name == "val_loss" && len(rows) != 3 {
				t.Errorf("%s: three long entries in %d rows, want one row each", what, len(rows))
			}
		}
	}
}

// TestIntegerTicksEveryIteration: the iteration axis labels every 1, 2 or 5
// x 10^k (at most 16 labels) and has a tick at every iteration up to 150 of
// them: 80 iterations were labelled only at 10, 40 and 70.
func TestIntegerTicksEveryIteration(t *testing.T) {
	cases := []struct {
		lo, hi float64
		labels string
		ticks  int
	}{
		{1, 80, "5 10 15 20 25 30 35 40 45 50 55 60 65 70 75 80", 80},
		{0.7, 10.3, "1 2 3 4 5 6 7 8 9 10", 10},
		{1, 3, "1 2 3", 3},
		{1, 150, "10 20 30 40 50 60 70 80 90 100 110 120 130 140 150", 150},
		{1, 1000, "100 200 300 400 500 600 700 800 900 1000", 50}, // minor ticks every 20
		{1, 400, "50 100 150 200 250 300 350 400", 40},            // every 10
	}
	for _, c := range cases {
		ticks := integerTicks{}.Ticks(c.lo, c.hi)
		var labels []string
		for _, tk := range ticks {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
			if tk.Value != math.Round(tk.Value) || tk.Value < c.lo || tk.Value > c.hi {
				t.Errorf("%g..%g: tick at %g", c.lo, c.hi, tk.Value)
			}
		}
		if strings.Join(labels, " ") != c.labels || len(ticks) != c.ticks {
			t.Errorf("%g..%g: labels %v and %d ticks, want %s and %d", c.lo, c.hi, labels, len(ticks), c.labels, c.ticks)
		}
	}
	// The loss plot of an 80-iteration run reads every fifth iteration.
	l, err := ReadMetricsLog(writeLog(t, t.TempDir(), false, 80))
	if err != nil {
		t.Fatal(err)
	}
	f, err := TrainingCurvesFigure([]*MetricsLog{l})
	if err != nil {
		t.Fatal(err)
	}
	if labels := checkAxis(t, "loss x", f.Panels[0].Plot.X, "iteration", 16); labels[0] != "5" || labels[len(labels)-1] != "80" {
		t.Errorf("loss x labels %v, want 5 to 80", labels)
	}
}
