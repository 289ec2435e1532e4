package backtest

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"time"

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

// Panel is one chart of a Figure together with the names of its series in
// legend order, so that a test can check what a picture shows without
// looking at it.
type Panel struct {
	Plot   *plot.Plot
	Series []string

	// legend holds the entries' thumbnails, Series' order. Figure.Save draws
	// them in a strip under the panel (see layout), never over its title or
	// data: gonum's own legend is drawn inside the data area.
	legend [][]plot.Thumbnailer
}

// Figure is one PNG: its panels stacked from top to bottom, each plotWidth
// wide and PanelHeight high.
type Figure struct {
	Panels      []*Panel
	PanelHeight vg.Length
}

// Save renders the figure as a PNG file (whatever the extension of path).
func (f *Figure) Save(path string) error {
	if len(f.Panels) == 0 {
		return fmt.Errorf("backtest: render %s: figure has no panels", path)
	}
	img := vgimg.New(f.size())
	dc := draw.New(img)
	for i, l := range f.layout(dc) {
		f.Panels[i].Plot.Draw(l.plot)
		f.Panels[i].drawLegend(l)
	}
	return writeFile(path, func(out io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(out)
		return err
	})
}

func (f *Figure) size() (w, h vg.Length) {
	ph := f.PanelHeight
	if ph == 0 {
		ph = plotHeight
	}
	return plotWidth, vg.Length(len(f.Panels)) * ph
}

// panelLayout is where one panel goes: the plot (title, axes, data) and,
// under it, the strip of its legend with each entry's top-left corner.
type panelLayout struct {
	plot, legend draw.Canvas
	entries      []vg.Point
}

// Legend geometry: the gap between two entries of a row, and the line
// height as a multiple of the text height.
const (
	legendGap     = 5 * vg.Millimeter
	legendLeading = 1.25
)

// layout splits the canvas among the panels (stacked, their data areas
// aligned) and each panel's share between its plot and its legend strip.
// Legend entries run left to right from the left edge of the data area and
// wrap to a new row before they would pass its right edge.
func (f *Figure) layout(dc draw.Canvas) []panelLayout {
	var tiles []draw.Canvas
	if len(f.Panels) == 1 {
		tiles = []draw.Canvas{dc}
	} else {
		t := draw.Tiles{Rows: len(f.Panels), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
			PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
		plots := make([][]*plot.Plot, len(f.Panels))
		for i, p := range f.Panels {
			plots[i] = []*plot.Plot{p.Plot}
		}
		for _, row := range plot.Align(plots, t, dc) {
			tiles = append(tiles, row[0])
		}
	}
	out := make([]panelLayout, len(f.Panels))
	for i, pn := range f.Panels {
		c := tiles[i]
		data := pn.Plot.DataCanvas(c)
		sty := plot.NewLegend().TextStyle
		lineH := vg.Length(0)
		for _, name := range pn.Series {
			lineH = max(lineH, legendLeading*sty.Rectangle(name).Max.Y)
		}
		var entries []vg.Point
		x, row := vg.Length(0), 0
		width := data.Max.X - data.Min.X
		for _, name := range pn.Series {
			w := plot.NewLegend().ThumbnailWidth + sty.Rectangle(" "+name).Max.X
			if x > 0 && x+w > width {
				x, row = 0, row+1
			}
			entries = append(entries, vg.Point{X: data.Min.X + x, Y: -vg.Length(row) * lineH})
			x += w + legendGap
		}
		h := vg.Length(0)
		if len(entries) > 0 {
			h = vg.Length(row+1)*lineH + vg.Millimeter
		}
		l := panelLayout{plot: draw.Crop(c, 0, 0, h, 0), entries: entries}
		l.legend = c
		l.legend.Max.Y = c.Min.Y + h
		for j := range l.entries {
			l.entries[j].Y += l.legend.Max.Y
		}
		out[i] = l
	}
	return out
}

// drawLegend draws the panel's legend entries where layout put them.
func (pn *Panel) drawLegend(l panelLayout) {
	for i, name := range pn.Series {
		leg := plot.NewLegend()
		leg.Top, leg.Left = true, true
		leg.Add(name, pn.legend[i]...)
		c := l.legend
		c.Min.X, c.Max.Y = l.entries[i].X, l.entries[i].Y
		leg.Draw(c)
	}
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

// lineStyle says how a series is drawn: colour and marker index (negative:
// grey, for reference lines), dashed or solid, with or without point markers.
type lineStyle struct {
	color  int
	points bool
	dashed bool
	dotted bool // reference lines, told apart from dashed series
}

// line adds a line series (with a legend entry when name is not empty).
func (pn *Panel) line(name string, pts plotter.XYs, st lineStyle) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("line %q: %w", name, err)
	}
	l.Color = plotutil.Color(st.color)
	if st.color < 0 {
		l.Color = color.Gray{Y: 110}
	}
	l.Width = vg.Points(1.5)
	if st.dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	if st.dotted {
		l.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
	}
	pn.Plot.Add(l)
	thumbs := []plot.Thumbnailer{l}
	if st.points {
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("points %q: %w", name, err)
		}
		s.Color = plotutil.Color(st.color)
		s.Shape = plotutil.Shape(st.color)
		pn.Plot.Add(s)
		thumbs = append(thumbs, s)
	}
	if name != "" {
		pn.legend = append(pn.legend, thumbs)
		pn.Series = append(pn.Series, name)
	}
	return nil
}

// hline adds a dotted horizontal reference line at y from x0 to x1.
func (pn *Panel) hline(name string, y, x0, x1 float64, color int) error {
	if x1 <= x0 {
		x1 = x0 + 1
	}
	return pn.line(name, plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, lineStyle{color: color, dotted: true})
}

// newPanel returns a panel with a grid and Y tick labels that show each
// tick's value exactly; its legend goes under it (Figure.layout).
func newPanel(title, xLabel, yLabel string) *Panel {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = 2 * vg.Millimeter // the title clear of the highest tick label
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Y.Tick.Marker = preciseTicks{}
	p.Add(plotter.NewGrid())
	return &Panel{Plot: p}
}

// preciseTicks is plot.DefaultTicks with labels that show each tick's value
// exactly (up to 10 decimals). The default labels round to the tick spacing,
// so on a narrow range around 1, typical of gross returns, a tick at 1.0025
// reads "1", and on a loss range of 2.26..2.30 every label reads "2.3". Where
// plot.DefaultTicks labels fewer than minLabels ticks (an equity range of
// 0.85..1.25 got only 0.9 and 1.2), denseTicks labels more.
type preciseTicks struct{}

// minLabels is the least number of labelled ticks preciseTicks aims for.
const minLabels = 5

func (preciseTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	labelled := 0
	for _, t := range ticks {
		if t.Label != "" {
			labelled++
		}
	}
	if labelled < minLabels {
		if dense := denseTicks(lo, hi); len(dense) > 0 {
			ticks = dense
		}
	}
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
			v := t.Value
			if math.Abs(v) < 1e-12*math.Max(math.Abs(lo), math.Abs(hi)) {
				v = 0 // no "-0" from an accumulated tick position
			}
			ticks[i].Label = strconv.FormatFloat(v, 'f', prec, 64)
		}
	}
	return ticks
}

// denseTicks labels the multiples of the largest step of the form
// {1, 2, 2.5, 5} x 10^k that gives at least minLabels of them in [lo, hi],
// with an unlabelled minor tick halfway between two. nil when the range is
// empty or not finite. Values are computed as i*step (not by accumulation),
// so labels carry no drift; preciseTicks formats them.
func denseTicks(lo, hi float64) []plot.Tick {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return nil
	}
	mag := math.Pow10(int(math.Floor(math.Log10(span))))
	var step float64
	for _, e := range []float64{1, 0.1, 0.01} {
		for _, m := range []float64{5, 2.5, 2, 1} {
			s := m * mag * e
			if math.Floor(hi/s)-math.Ceil(lo/s)+1 >= minLabels {
				step = s
				break
			}
		}
		if step > 0 {
			break
		}
	}
	if step == 0 {
		return nil
	}
	var ticks []plot.Tick
	for i := math.Ceil(2 * lo / step); i <= math.Floor(2*hi/step); i++ {
		t := plot.Tick{Value: i * step / 2}
		if math.Mod(i, 2) == 0 {
			t.Label = "x" // formatted by preciseTicks
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// integerTicks labels whole numbers only (iterations, epochs, deciles):
// the multiples of the smallest step of 1, 2 or 5 x 10^k that gives at most
// maxIntLabels labels, with an unlabelled tick at every whole number when
// the range holds at most maxIntMinor of them (so that any iteration can be
// read off), else at every fifth (half for a step of 2 x 10^k) of the step.
type integerTicks struct{}

const (
	maxIntLabels = 16
	maxIntMinor  = 150
)

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	if !(last >= first) || math.IsInf(last-first, 0) {
		return nil
	}
	step, minor := 1.0, 1.0
	for mag := 1.0; ; mag *= 10 {
		found := false
		for _, m := range []float64{1, 2, 5} {
			s := m * mag
			if math.Floor(last/s)-math.Ceil(first/s)+1 <= maxIntLabels {
				step, minor, found = s, max(1, s/5), true
				if m == 2 {
					minor = max(1, s/2)
				}
				break
			}
		}
		if found {
			break
		}
	}
	if last-first+1 <= maxIntMinor {
		minor = 1
	}
	var ticks []plot.Tick
	for i := math.Ceil(first / minor); i*minor <= last; i++ {
		v := i * minor
		t := plot.Tick{Value: v}
		if math.Mod(v, step) == 0 {
			t.Label = strconv.FormatFloat(v, 'f', 0, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// calendarTicks labels trading-day indices (index i is dates[i], YYYYMMDD)
// at the first trading day of a month, every 1, 2, 3, 6, 12, ... months so
// that at most 8 labels appear; yearly labels read "2019", the others
// "Mar 2018", and the other month starts get unlabelled minor ticks. Indices
// past the last date get no tick. With fewer than two labelled month starts
// in range it labels about five days as "2018-03-05" instead.
type calendarTicks struct{ dates []int32 }

func dateOf(d int32) time.Time {
	return time.Date(int(d/10000), time.Month(d/100%100), int(d%100), 0, 0, 0, 0, time.UTC)
}

func (ct calendarTicks) Ticks(lo, hi float64) []plot.Tick {
	i0, i1 := max(0, int(math.Ceil(lo))), min(len(ct.dates)-1, int(math.Floor(hi)))
	if i1 < i0 {
		return nil
	}
	type start struct {
		idx         int
		year, month int
	}
	var starts []start
	for i := max(1, i0); i <= i1; i++ {
		// A month start is a day whose month differs from the day before;
		// the first day of the series is not one (it may fall mid-month).
		if d := ct.dates[i]; d/100 != ct.dates[i-1]/100 {
			starts = append(starts, start{i, int(d / 10000), int(d / 100 % 100)})
		}
	}
	var ticks []plot.Tick
	if len(starts) >= 2 {
		for _, step := range []int{1, 2, 3, 6, 12, 24, 60, 120} {
			ticks = ticks[:0]
			for _, s := range starts {
				if (s.year*12+s.month-1)%step != 0 {
					continue
				}
				label := dateOf(ct.dates[s.idx]).Format("Jan 2006")
				if step >= 12 {
					label = strconv.Itoa(s.year)
				}
				ticks = append(ticks, plot.Tick{Value: float64(s.idx), Label: label})
			}
			if len(ticks) <= 8 {
				break
			}
		}
		// Unlabelled minor ticks at the other month starts.
		labelled := map[int]bool{}
		for _, t := range ticks {
			labelled[int(t.Value)] = true
		}
		for _, s := range starts {
			if !labelled[s.idx] {
				ticks = append(ticks, plot.Tick{Value: float64(s.idx)})
			}
		}
		if len(labelled) >= 2 {
			return ticks
		}
	}
	// Short range: about five evenly spaced days with their full date.
	n := i1 - i0
	step := max(1, int(math.Ceil(float64(n)/4)))
	ticks = ticks[:0]
	for i := i0; i <= i1; i += step {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: dateOf(ct.dates[i]).Format("2006-01-02")})
	}
	return ticks
}

// bps converts a return (a fraction) into basis points.
func bps(x float64) float64 { return 1e4 * x }

// EquityFigure builds equity.png: the equity of the long top-k strategy and
// of the equal-weight universe, the strategy's cumulative excess over the
// universe (equity ratio - 1, in %), and both drawdowns (in %), against the
// trading date. Equity index t is the value at the close of decision date t;
// the last h-1 points (staggered) or the rest of the last period
// (non-overlapping) lie after the last decision date and carry no label.
func (r *Report) EquityFigure() (*Figure, error) {
	if r == nil || len(r.Strategy.Equity) == 0 || len(r.Benchmark.Equity) == 0 {
		return nil, fmt.Errorf("report has no equity curves")
	}
	if len(r.Strategy.Equity) != len(r.Benchmark.Equity) {
		return nil, fmt.Errorf("strategy and universe equity differ in length (%d, %d)", len(r.Strategy.Equity), len(r.Benchmark.Equity))
	}
	dates := make([]int32, len(r.Dates))
	for i, d := range r.Dates {
		dates[i] = int32(d.Date)
	}
	c := r.Config
	const xLabel = "date (close of the trading day)"
	eqP := newPanel(fmt.Sprintf("Equity: long top-k vs the equal-weight universe (%dd horizon, %s rebalancing, %.4g bps cost)",
		c.HorizonDays, c.Rebalance, c.CostBps), "", "equity (start = 1)")
	exP := newPanel("Excess over the equal-weight universe: top-k equity / universe equity - 1", "", "cumulative excess (%)")
	ddP := newPanel("Drawdown from the running peak", xLabel, "drawdown (%)")
	n := len(r.Strategy.Equity)
	x := make([]float64, n)
	excess := make([]float64, n)
	for t := range x {
		x[t] = float64(t)
		excess[t] = 100 * (r.Strategy.Equity[t]/r.Benchmark.Equity[t] - 1)
	}
	for i, s := range []struct {
		name string
		pf   *Portfolio
	}{{"long top-k", &r.Strategy}, {"equal-weight universe", &r.Benchmark}} {
		label := fmt.Sprintf("%s (Sharpe %.2f annualized, max drawdown %.1f%%)", s.name, s.pf.Sharpe, 100*s.pf.MaxDrawdown)
		if err := eqP.line(label, xys(x, s.pf.Equity), lineStyle{color: i}); err != nil {
			return nil, err
		}
		if err := ddP.line(s.name, xys(x, drawdownSeries(s.pf.Equity)), lineStyle{color: i}); err != nil {
			return nil, err
		}
	}
	exLabel := fmt.Sprintf("top-k over universe (%+.1f%% at the end)", excess[n-1])
	if err := exP.line(exLabel, xys(x, excess), lineStyle{color: 2}); err != nil {
		return nil, err
	}
	if err := exP.hline("", 0, 0, float64(n-1), -1); err != nil {
		return nil, err
	}
	for _, pn := range []*Panel{eqP, exP, ddP} {
		pn.Plot.X.Tick.Marker = calendarTicks{dates}
	}
	return &Figure{Panels: []*Panel{eqP, exP, ddP}, PanelHeight: 3.5 * vg.Inch}, nil
}

// drawdownSeries is -100 (1 - E_t / max_{u<=t} E_u): the loss from the
// running peak in percent, as a non-positive number.
func drawdownSeries(equity []float64) []float64 {
	out := make([]float64, len(equity))
	peak := math.Inf(-1)
	for t, e := range equity {
		peak = math.Max(peak, e)
		if peak > 0 {
			out[t] = -100 * (1 - e/peak)
		}
	}
	return out
}

// WriteEquityPlot writes EquityFigure as a PNG (768 x 1008 pixels).
func (r *Report) WriteEquityPlot(path string) error {
	f, err := r.EquityFigure()
	if err != nil {
		return fmt.Errorf("backtest: equity plot %s: %w", path, err)
	}
	return f.Save(path)
}

// CalibrationFigure builds calibration.png: per score decile (every decile
// labelled), the mean predicted and the mean realized return over the
// horizon, in bps (gross return - 1).
func (r *Report) CalibrationFigure() (*Figure, error) {
	if r == nil || len(r.Calibration) == 0 {
		return nil, fmt.Errorf("report has no calibration buckets")
	}
	pn := newPanel(fmt.Sprintf("Calibration: mean predicted vs realized %dd return by score decile", r.Config.HorizonDays),
		"score decile (1 = lowest predicted, 10 = highest)", fmt.Sprintf("mean %dd return (bps)", r.Config.HorizonDays))
	pn.Plot.X.Tick.Marker = integerTicks{}
	var dec, sc, re []float64
	for _, b := range r.Calibration {
		dec = append(dec, float64(b.Decile))
		sc = append(sc, bps(b.MeanScore-1))
		re = append(re, bps(b.MeanRealized-1))
	}
	if err := pn.line("mean predicted (expected return)", xys(dec, sc), lineStyle{color: 0, points: true}); err != nil {
		return nil, err
	}
	if err := pn.line("mean realized", xys(dec, re), lineStyle{color: 1, points: true}); err != nil {
		return nil, err
	}
	pn.Plot.X.Min, pn.Plot.X.Max = math.Min(pn.Plot.X.Min, 1)-0.3, math.Max(pn.Plot.X.Max, 10)+0.3
	return &Figure{Panels: []*Panel{pn}}, nil
}

// WriteCalibrationPlot writes CalibrationFigure as a PNG (768 x 480 pixels).
func (r *Report) WriteCalibrationPlot(path string) error {
	f, err := r.CalibrationFigure()
	if err != nil {
		return fmt.Errorf("backtest: calibration plot %s: %w", path, err)
	}
	return f.Save(path)
}

// ConvergenceFigure builds convergence.png: per arm, the mean over seeds of
// the validation top-k excess return (bps) against sequence-passes trained
// (line), each seed's points, and for an arm with a stage-1 baseline
// (two-stage) a dotted line at the mean value of the stage-1 model that
// stage 2 starts from.
func (s *Summary) ConvergenceFigure() (*Figure, error) {
	if s == nil {
		return nil, fmt.Errorf("nil summary")
	}
	pn := newPanel("Convergence: validation top-k excess return vs training budget (mean over seeds)",
		"sequence-passes trained", "top-k excess over the universe (bps)")
	found := false
	xmax := 0.0
	for _, a := range s.Arms {
		for _, c := range a.Curve {
			xmax = math.Max(xmax, float64(c.Budget))
		}
	}
	for i, a := range s.Arms {
		if len(a.Curve) == 0 {
			continue
		}
		found = true
		var x, y []float64
		for _, c := range a.Curve {
			x = append(x, float64(c.Budget))
			y = append(y, bps(c.Mean))
		}
		if err := pn.line(fmt.Sprintf("%s (n=%d)", a.Arm, len(a.Seeds)), xys(x, y), lineStyle{color: i}); err != nil {
			return nil, err
		}
		var seedPts plotter.XYs
		for _, c := range a.Curves {
			for _, cp := range c {
				seedPts = append(seedPts, plotter.XY{X: float64(cp.Budget), Y: bps(cp.TopKReturn)})
			}
		}
		sc, err := plotter.NewScatter(seedPts)
		if err != nil {
			return nil, err
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		sc.Radius = vg.Points(2)
		pn.Plot.Add(sc)
		if b := a.Stage1; b != nil {
			if err := pn.hline(fmt.Sprintf("%s: best stage-1 model (stage 2's start)", a.Arm), bps(b.Mean), float64(b.Budget), xmax, i); err != nil {
				return nil, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("no curve points in any arm")
	}
	return &Figure{Panels: []*Panel{pn}}, nil
}

// WriteConvergencePlot writes ConvergenceFigure as a PNG (768 x 480 pixels).
func (s *Summary) WriteConvergencePlot(path string) error {
	f, err := s.ConvergenceFigure()
	if err != nil {
		return fmt.Errorf("backtest: convergence plot %s: %w", path, err)
	}
	return f.Save(path)
}

// LossSeries is one run's validation loss against sequence-passes trained,
// for ValLossFigure. Stage1 (two-stage runs) is the best stage-1 validation
// loss and the budget at which stage 2 started.
type LossSeries struct {
	Arm    string
	Seed   int64
	Points []CurvePoint // TopKReturn holds the loss
	Stage1 *CurvePoint
}

// ValLossFigure builds compare's val_loss.png: each run's validation loss
// against sequence-passes trained, one colour per arm (one legend entry per
// arm), and a dotted stage-1 baseline per two-stage run.
func ValLossFigure(runs []LossSeries) (*Figure, error) {
	pn := newPanel("Validation loss vs training budget", "sequence-passes trained", "validation loss (cross-entropy, nats)")
	arms := map[string]int{}
	xmax := 0.0
	for _, r := range runs {
		for _, p := range r.Points {
			xmax = math.Max(xmax, float64(p.Budget))
		}
	}
	for _, r := range runs {
		if len(r.Points) == 0 {
			continue
		}
		i, seen := arms[r.Arm]
		if !seen {
			i = len(arms)
			arms[r.Arm] = i
		}
		pts := make(plotter.XYs, len(r.Points))
		for j, v := range r.Points {
			pts[j].X, pts[j].Y = float64(v.Budget), v.TopKReturn
		}
		name := ""
		if !seen {
			name = r.Arm
		}
		if err := pn.line(name, pts, lineStyle{color: i, points: true}); err != nil {
			return nil, err
		}
		if b := r.Stage1; b != nil {
			name := ""
			if !seen {
				name = r.Arm + ": best stage-1 loss (stage 2's start)"
			}
			if err := pn.hline(name, b.TopKReturn, float64(b.Budget), xmax, i); err != nil {
				return nil, err
			}
		}
	}
	if len(arms) == 0 {
		return nil, fmt.Errorf("no validation points")
	}
	return &Figure{Panels: []*Panel{pn}}, nil
}

// WriteValLossPlot writes ValLossFigure as a PNG (768 x 480 pixels).
func WriteValLossPlot(path string, runs []LossSeries) error {
	f, err := ValLossFigure(runs)
	if err != nil {
		return fmt.Errorf("backtest: validation loss plot %s: %w", path, err)
	}
	return f.Save(path)
}
