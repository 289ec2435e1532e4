package backtest

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/testenv"
)

func TestReportJSONRoundTrip(t *testing.T) {
	for _, reb := range []string{RebalanceNonOverlapping, RebalanceStaggered} {
		r := evalExample(t, Config{TopK: 2, HorizonDays: 2, CostBps: 5, Rebalance: reb})
		path := filepath.Join(t.TempDir(), "report.json")
		if err := r.WriteJSON(path); err != nil {
			t.Fatal(err)
		}
		got, err := ReadReport(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: round trip differs:\n got %+v\nwant %+v", reb, got, r)
		}
		// Field names are stable snake_case.
		b, _ := os.ReadFile(path)
		for _, key := range []string{`"rank_ic"`, `"beat_median"`, `"max_drawdown"`, `"calibration"`, `"equity"`, `"loss_count"`} {
			if !strings.Contains(string(b), key) {
				t.Errorf("report JSON lacks %s", key)
			}
		}
	}
	if _, err := ReadReport(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("ReadReport of a missing file: no error")
	}
}

func checkPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s: %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	// Not blank: some pixel differs from the top-left background.
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if img.At(x, y) != bg {
				return
			}
		}
	}
	t.Errorf("%s: image is blank", path)
}

func TestReportPlots(t *testing.T) {
	dir := t.TempDir()
	r := evalExample(t, Config{TopK: 2, HorizonDays: 2, CostBps: 5})
	eq := filepath.Join(dir, "equity.png")
	if err := r.WriteEquityPlot(eq); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, eq, 768, 1008)
	cal := filepath.Join(dir, "calibration.png")
	if err := r.WriteCalibrationPlot(cal); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, cal, 768, 480)
	// A single date still plots; an empty report is an error, not a panic.
	one, err := Evaluate(example()[:1], Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := one.WriteEquityPlot(filepath.Join(dir, "one.png")); err != nil {
		t.Errorf("single-prediction equity plot: %v", err)
	}
	if err := (&Report{}).WriteEquityPlot(filepath.Join(dir, "empty.png")); err == nil {
		t.Error("empty report equity plot: no error")
	}
	if err := (&Report{}).WriteCalibrationPlot(filepath.Join(dir, "empty.png")); err == nil {
		t.Error("empty report calibration plot: no error")
	}
	if err := r.WriteEquityPlot(filepath.Join(dir, "no-such-dir", "x.png")); err == nil {
		t.Error("unwritable path: no error")
	}
}

func armResults() []ArmResult {
	rep := func(ic, sharpe float64) *Report {
		return &Report{IC: CorrStats{Mean: ic}, Strategy: Portfolio{Sharpe: sharpe}}
	}
	return []ArmResult{
		{Arm: "selection_aware", Seed: 2, Report: rep(0.03, 1.5), Curve: []CurvePoint{{100, 1.010}, {200, 1.030}}},
		{Arm: "standard", Seed: 1, Report: rep(0.01, 0.5), Curve: []CurvePoint{{100, 1.000}, {200, 1.010}}},
		{Arm: "selection_aware", Seed: 1, Report: rep(0.01, 0.5), Curve: []CurvePoint{{100, 1.020}, {200, 1.020}, {300, 1.040}}},
	}
}

func TestSummarize(t *testing.T) {
	s, err := Summarize(armResults())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Arms) != 2 || s.Arms[0].Arm != "selection_aware" || s.Arms[1].Arm != "standard" {
		t.Fatalf("arms = %+v", s.Arms)
	}
	if !reflect.DeepEqual(s.Arms[0].Seeds, []int64{1, 2}) {
		t.Errorf("seeds = %v, want [1 2]", s.Arms[0].Seeds)
	}
	// selection_aware: IC 0.01 (seed 1), 0.03 (seed 2): mean .02, sample std sqrt((.01^2+.01^2)/1) = .01*sqrt(2)
	m, ok := s.Metric("selection_aware", "ic.mean")
	if !ok {
		t.Fatal("no ic.mean")
	}
	near(t, "ic mean", m.Mean, 0.02)
	near(t, "ic std", m.Std, 0.01*math.Sqrt(2))
	if m.N != 2 || !reflect.DeepEqual(m.Values, []float64{0.01, 0.03}) {
		t.Errorf("values = %v (n %d)", m.Values, m.N)
	}
	// Sharpe 0.5, 1.5: mean 1, std sqrt(.5)
	m, _ = s.Metric("selection_aware", "strategy.sharpe_annualized")
	near(t, "sharpe mean", m.Mean, 1)
	near(t, "sharpe std", m.Std, math.Sqrt(0.5))
	// one seed: std 0
	m, _ = s.Metric("standard", "strategy.sharpe_annualized")
	near(t, "single seed mean", m.Mean, 0.5)
	near(t, "single seed std", m.Std, 0)
	// curve: budget 100 -> (1.02+1.01)/2, 200 -> 1.025, 300 -> only seed 1
	c := s.Arms[0].Curve
	if len(c) != 3 || c[0].Budget != 100 || c[2].Budget != 300 || c[2].N != 1 {
		t.Fatalf("curve = %+v", c)
	}
	near(t, "curve 100", c[0].Mean, 1.015)
	near(t, "curve 100 std", c[0].Std, 0.01/math.Sqrt(2))
	near(t, "curve 200", c[1].Mean, 1.025)
	near(t, "curve 300", c[2].Mean, 1.04)

	var sb strings.Builder
	s.WriteTable(&sb)
	out := sb.String()
	for _, want := range []string{"selection_aware (n=2)", "standard (n=1)", "strategy.sharpe_annualized", "1.00 ± 0.71", "ic.mean",
		"topk.excess (bps)", "strategy.ann_return (%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary table lacks %q:\n%s", want, out)
		}
	}
	// One seed has no spread: its column prints the value alone (the header says n=1).
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "strategy.sharpe_annualized") && !strings.HasSuffix(line, "1.00 ± 0.71            0.50") {
			t.Errorf("sharpe row %q: want the n=2 column as mean ± std and the n=1 column as the value alone", line)
		}
		if strings.HasSuffix(line, "± 0") || strings.Contains(line, "± 0 ") {
			t.Errorf("row %q shows a zero spread", line)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "summary.json")
	if err := s.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSummary(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("summary round trip differs")
	}
	png := filepath.Join(dir, "convergence.png")
	if err := s.WriteConvergencePlot(png); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, png, 768, 480)
}

func TestSummarizeErrors(t *testing.T) {
	if _, err := Summarize(nil); err == nil {
		t.Error("no results: no error")
	}
	r := armResults()
	r[1].Report = nil
	if _, err := Summarize(r); err == nil || !strings.Contains(err.Error(), "nil report") {
		t.Errorf("nil report: %v", err)
	}
	r = armResults()
	r[2].Seed = 2
	if _, err := Summarize(r); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate seed: %v", err)
	}
	r = armResults()
	r[0].Curve[0].TopKReturn = math.NaN()
	if _, err := Summarize(r); err == nil {
		t.Error("NaN curve: no error")
	}
	r = armResults()
	for i := range r {
		r[i].Curve = nil
	}
	s, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteConvergencePlot(filepath.Join(t.TempDir(), "c.png")); err == nil {
		t.Error("convergence plot without curves: no error")
	}
}

func TestPlotTrainingCurves(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "metrics.jsonl")
	var sb strings.Builder
	for i := 1; i <= 20; i++ {
		val := "null"
		if i%5 == 0 {
			val = fmt.Sprintf("%.4f", 2.0-0.03*float64(i))
		}
		fmt.Fprintf(&sb, `{"time":"2025-01-01T00:00:%02dZ","strategy":"selection_aware","iteration":%d,"train_loss":%.4f,"val_loss":%s,"er_mean":1.001,"er_median":1.0,"topk_er_mean":%.4f,"topk_er_min":1.0,"sequences_scored_total":%d,"sequences_trained_total":%d,"phase_seconds":{"sampling":0.1},"iteration_seconds":0.5}`+"\n",
			i, i, 2.1-0.04*float64(i), val, 1.0+0.001*float64(i), 1000*i, 100*i)
		if i == 10 {
			sb.WriteString("\n") // blank lines are ignored
		}
	}
	if err := os.WriteFile(log, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "curves.png")
	if err := PlotTrainingCurves([]string{log}, out); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, out, 768, 960)

	// all val_loss null, a single record
	one := filepath.Join(dir, "one.jsonl")
	os.WriteFile(one, []byte(`{"iteration":0,"train_loss":2.3,"val_loss":null,"topk_er_mean":1.0}`+"\n"), 0o644)
	if err := PlotTrainingCurves([]string{one}, filepath.Join(dir, "one.png")); err != nil {
		t.Errorf("single record: %v", err)
	}
	for name, content := range map[string]string{
		"empty.jsonl":   "\n\n",
		"broken.jsonl":  `{"iteration":1,"train_loss":2}` + "\n{not json\n",
		"no-iter.jsonl": `{"train_loss":2}` + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if err := PlotTrainingCurves([]string{p}, filepath.Join(dir, "x.png")); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := PlotTrainingCurves([]string{filepath.Join(dir, "missing.jsonl")}, out); err == nil {
		t.Error("missing log: no error")
	}
}

// TestICAgainstNumpy cross-checks per-date Pearson and Spearman (average ranks
// for ties) against numpy on a random panel with many ties.
func TestICAgainstNumpy(t *testing.T) {
	py := testenv.Python(t, "numpy")
	var preds []Prediction
	seed := uint64(12345)
	next := func() float64 { // small LCG, deterministic without math/rand ordering concerns
		seed = seed*6364136223846793005 + 1442695040888963407
		return float64(seed>>11) / float64(1<<53)
	}
	for d := int32(0); d < 6; d++ {
		for tk := int32(0); tk < 25; tk++ {
			s := 1 + math.Round((next()-0.5)*20)/1000 // coarse: many ties
			r := 1 + (s-1)*0.5 + math.Round((next()-0.5)*40)/1000
			preds = append(preds, Prediction{Ticker: tk, Date: 20240101 + d, Score: s, Realized: r})
		}
	}
	r, err := Evaluate(preds, Config{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
import numpy as np
p = json.load(open(sys.argv[1]))
def avg_ranks(x):
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return r
out = []
for d in sorted({q["Date"] for q in p}):
    rows = sorted([q for q in p if q["Date"] == d], key=lambda q: q["Ticker"])
    s = np.array([q["Score"] for q in rows]); y = np.array([q["Realized"] for q in rows])
    out.append([d, float(np.corrcoef(s, y)[0, 1]), float(np.corrcoef(avg_ranks(s), avg_ranks(y))[0, 1])])
print(json.dumps(out))
`
	in, err := json.Marshal(preds)
	if err != nil {
		t.Fatal(err)
	}
	inPath := filepath.Join(t.TempDir(), "preds.json")
	if err := os.WriteFile(inPath, in, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", script, inPath)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var want [][3]float64
	if err := json.Unmarshal(outb, &want); err != nil {
		t.Fatalf("python output %q: %v", outb, err)
	}
	if len(want) != len(r.Dates) {
		t.Fatalf("%d dates from numpy, %d from Go", len(want), len(r.Dates))
	}
	for i, w := range want {
		d := r.Dates[i]
		if Date(int32(w[0])) != d.Date || !d.ICValid {
			t.Fatalf("date %d: %v valid=%v", d.Date, w[0], d.ICValid)
		}
		if math.Abs(d.IC-w[1]) > 1e-12 || math.Abs(d.RankIC-w[2]) > 1e-12 {
			t.Errorf("date %d: IC %.15f/%.15f, numpy %.15f/%.15f", d.Date, d.IC, d.RankIC, w[1], w[2])
		}
	}
}

func TestPreciseTicks(t *testing.T) {
	// gonum's default labels print a tick at 1.0025 as "1"; ours must not.
	// Its three ticks are too few (minLabels): every 0.0025 is labelled.
	var labels []string
	for _, tk := range (preciseTicks{}).Ticks(1.0001, 1.0228) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if !reflect.DeepEqual(labels, []string{"1.0025", "1.0050", "1.0075", "1.0100", "1.0125", "1.0150", "1.0175", "1.0200", "1.0225"}) {
		t.Errorf("labels = %v", labels)
	}
}

func TestNilReceivers(t *testing.T) {
	var r *Report
	var s *Summary
	var sb strings.Builder
	r.WriteTable(&sb)
	s.WriteTable(&sb)
	p := filepath.Join(t.TempDir(), "x")
	for name, err := range map[string]error{
		"report json": r.WriteJSON(p), "equity": r.WriteEquityPlot(p), "calibration": r.WriteCalibrationPlot(p),
		"summary json": s.WriteJSON(p), "convergence": s.WriteConvergencePlot(p),
	} {
		if err == nil {
			t.Errorf("%s on nil: no error", name)
		}
	}
}
