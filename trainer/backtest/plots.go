package backtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/satrain/satrain/internal/atomicfile"
)

// Plot sizes. At the PNG default of 96 dpi, 8in x 5in is 768 x 480 pixels.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 5 * vg.Inch
)

// savePNG renders p as a PNG file (whatever the extension of path).
func savePNG(p *plot.Plot, path string) error {
	wt, err := p.WriterTo(plotWidth, plotHeight, "png")
	if err != nil {
		return fmt.Errorf("backtest: render %s: %w", path, err)
	}
	return writeFile(path, func(f io.Writer) error {
		_, err := wt.WriteTo(f)
		return err
	})
}

// writeFile writes path atomically (internal/atomicfile): a failed write
// leaves the previous file intact and no partial one.
func writeFile(path string, write func(w io.Writer) error) error {
	if err := atomicfile.Write(path, 0o644, write); err != nil {
		return fmt.Errorf("backtest: write %s: %w", path, err)
	}
	return nil
}

func xys(xs, ys []float64) plotter.XYs {
	pts := make(plotter.XYs, len(xs))
	for i := range xs {
		pts[i].X, pts[i].Y = xs[i], ys[i]
	}
	return pts
}

func addLine(p *plot.Plot, name string, i int, pts plotter.XYs, points bool) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("line %q: %w", name, err)
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	if points {
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("points %q: %w", name, err)
		}
		s.Color = plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(s)
		p.Legend.Add(name, l, s)
	} else {
		p.Legend.Add(name, l)
	}
	return nil
}

// dateTicker labels integer day indices below len(dates) with their date.
type dateTicker struct{ dates []int32 }

func (dt dateTicker) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label == "" {
			continue
		}
		idx := int(math.Round(t.Value))
		switch {
		case t.Value != float64(idx) || idx < 0:
			ticks[i].Label = ""
		case idx < len(dt.dates):
			ticks[i].Label = strconv.Itoa(int(dt.dates[idx]))
		default:
			ticks[i].Label = fmt.Sprintf("+%d", idx-len(dt.dates)+1)
		}
	}
	return ticks
}

// preciseTicks is plot.DefaultTicks with labels that show each tick's value
// exactly (up to 10 decimals). The default labels round to the tick spacing,
// so on a narrow range around 1, typical of gross returns, a tick at 1.0025
// reads "1".
type preciseTicks struct{}

func (preciseTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	prec := 0
	for _, t := range ticks {
		if t.Label == "" {
			continue
		}
		for prec < 10 {
			scaled := t.Value * math.Pow10(prec)
			if math.Abs(scaled-math.Round(scaled)) <= 1e-9*math.Max(1, math.Abs(scaled)) {
				break
			}
			prec++
		}
	}
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', prec, 64)
		}
	}
	return ticks
}

// newPlot returns a plot with a grid and precise Y tick labels.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Y.Tick.Marker = preciseTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	return p
}

// legendRoom extends the Y range upwards so that a top legend with n entries
// does not hide the data.
func legendRoom(p *plot.Plot, n int) {
	if p.Y.Max > p.Y.Min {
		p.Y.Max += float64(n) * 0.07 * (p.Y.Max - p.Y.Min)
	}
}

// WriteEquityPlot draws the equity curves of the long top-k strategy and the
// equal-weight universe benchmark as a PNG.
func (r *Report) WriteEquityPlot(path string) error {
	if r == nil || len(r.Strategy.Equity) == 0 || len(r.Benchmark.Equity) == 0 {
		return fmt.Errorf("backtest: equity plot %s: report has no equity curves", path)
	}
	p := newPlot(fmt.Sprintf("Equity: long top-k vs equal-weight universe (h=%dd, %s, %.4g bps)",
		r.Config.HorizonDays, r.Config.Rebalance, r.Config.CostBps),
		"decision date (trading days; +n = after the last date)", "equity (start = 1)")
	dates := make([]int32, len(r.Dates))
	for i, d := range r.Dates {
		dates[i] = d.Date
	}
	p.X.Tick.Marker = dateTicker{dates}
	for i, s := range []struct {
		name string
		eq   []float64
	}{{fmt.Sprintf("long top-k (Sharpe %.2f)", r.Strategy.Sharpe), r.Strategy.Equity},
		{fmt.Sprintf("universe (Sharpe %.2f)", r.Benchmark.Sharpe), r.Benchmark.Equity}} {
		x := make([]float64, len(s.eq))
		for t := range x {
			x[t] = float64(t)
		}
		if err := addLine(p, s.name, i, xys(x, s.eq), false); err != nil {
			return fmt.Errorf("backtest: equity plot %s: %w", path, err)
		}
	}
	legendRoom(p, 2)
	return savePNG(p, path)
}

// WriteCalibrationPlot draws, per score decile, the mean predicted gross
// return against the mean realized gross return as a PNG.
func (r *Report) WriteCalibrationPlot(path string) error {
	if r == nil || len(r.Calibration) == 0 {
		return fmt.Errorf("backtest: calibration plot %s: report has no calibration buckets", path)
	}
	p := newPlot("Calibration: mean predicted vs realized gross return by score decile",
		"score decile (1 = lowest predicted)", "gross return over the horizon")
	var dec, sc, re []float64
	for _, b := range r.Calibration {
		dec = append(dec, float64(b.Decile))
		sc = append(sc, b.MeanScore)
		re = append(re, b.MeanRealized)
	}
	if err := addLine(p, "mean predicted (score)", 0, xys(dec, sc), true); err != nil {
		return fmt.Errorf("backtest: calibration plot %s: %w", path, err)
	}
	if err := addLine(p, "mean realized", 1, xys(dec, re), true); err != nil {
		return fmt.Errorf("backtest: calibration plot %s: %w", path, err)
	}
	legendRoom(p, 2)
	return savePNG(p, path)
}

// WriteConvergencePlot draws, per arm, the mean over seeds of the top-k
// return against the training budget (line), with each seed's points.
func (s *Summary) WriteConvergencePlot(path string) error {
	if s == nil {
		return fmt.Errorf("backtest: convergence plot %s: nil summary", path)
	}
	p := newPlot("Convergence: top-k return vs training budget (mean over seeds)",
		"sequence-passes trained", "top-k return")
	found := false
	for i, a := range s.Arms {
		if len(a.Curve) == 0 {
			continue
		}
		found = true
		var x, y []float64
		for _, c := range a.Curve {
			x = append(x, float64(c.Budget))
			y = append(y, c.Mean)
		}
		if err := addLine(p, fmt.Sprintf("%s (n=%d)", a.Arm, len(a.Seeds)), i, xys(x, y), false); err != nil {
			return fmt.Errorf("backtest: convergence plot %s: %w", path, err)
		}
		var seedPts plotter.XYs
		for _, c := range a.Curves {
			for _, cp := range c {
				seedPts = append(seedPts, plotter.XY{X: float64(cp.Budget), Y: cp.TopKReturn})
			}
		}
		sc, err := plotter.NewScatter(seedPts)
		if err != nil {
			return fmt.Errorf("backtest: convergence plot %s: %w", path, err)
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		sc.Radius = vg.Points(2)
		p.Add(sc)
	}
	if !found {
		return fmt.Errorf("backtest: convergence plot %s: no curve points in any arm", path)
	}
	legendRoom(p, len(s.Arms))
	return savePNG(p, path)
}

// metricsLine is the part of a metrics.jsonl record that the plots use.
type metricsLine struct {
	Iteration  *int64   `json:"iteration"`
	TrainLoss  *float64 `json:"train_loss"`
	ValLoss    *float64 `json:"val_loss"`
	ERMean     *float64 `json:"er_mean"`
	TopKERMean *float64 `json:"topk_er_mean"`
}

// PlotTrainingCurves reads the trainer's metrics log (one JSON object per
// line; see CONTRACTS "Metrics log") and draws two aligned panels as a PNG:
// train and validation loss per iteration (val_loss may be null or absent),
// and the top-k and overall mean expected return per iteration.
func PlotTrainingCurves(metricsLogPath, outPNG string) error {
	f, err := os.Open(metricsLogPath)
	if err != nil {
		return fmt.Errorf("backtest: training curves: %w", err)
	}
	defer f.Close()
	var train, val, topk, er plotter.XYs
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	lineNo, records := 0, 0
	for sc.Scan() {
		lineNo++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var m metricsLine
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("backtest: training curves: %s line %d: %w", metricsLogPath, lineNo, err)
		}
		if m.Iteration == nil {
			return fmt.Errorf("backtest: training curves: %s line %d: missing \"iteration\"", metricsLogPath, lineNo)
		}
		records++
		x := float64(*m.Iteration)
		for _, s := range []struct {
			v   *float64
			dst *plotter.XYs
		}{{m.TrainLoss, &train}, {m.ValLoss, &val}, {m.TopKERMean, &topk}, {m.ERMean, &er}} {
			if s.v != nil {
				*s.dst = append(*s.dst, plotter.XY{X: x, Y: *s.v})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("backtest: training curves: read %s: %w", metricsLogPath, err)
	}
	if records == 0 {
		return fmt.Errorf("backtest: training curves: %s has no records", metricsLogPath)
	}

	lossP := newPlot("Loss", "", "cross-entropy")
	erP := newPlot("Expected gross return of the scored sample", "iteration", "expected return")
	for _, s := range []struct {
		p    *plot.Plot
		name string
		i    int
		pts  plotter.XYs
	}{{lossP, "train loss", 0, train}, {lossP, "validation loss", 1, val},
		{erP, "top-k mean", 0, topk}, {erP, "all mean", 1, er}} {
		if len(s.pts) == 0 {
			continue
		}
		if err := addLine(s.p, s.name, s.i, s.pts, len(s.pts) < 50); err != nil {
			return fmt.Errorf("backtest: training curves %s: %w", outPNG, err)
		}
	}
	lossP.Legend.Left = false
	legendRoom(lossP, 2)
	legendRoom(erP, 2)

	img := vgimg.New(plotWidth, 2*plotHeight)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{lossP}, {erP}}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		plots[j][0].Draw(canvases[j][0])
	}
	return writeFile(outPNG, func(f io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		return err
	})
}
