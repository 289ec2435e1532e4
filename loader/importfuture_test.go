package loader

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rawBars is a synthetic ticker history as a vendor gives it: raw prices
// (currency units), raw volume (shares) and the adjusted close.
type rawBars struct {
	dates            []int32
	o, h, l, c, adj  []float64
	vol              []float64
	withoutAdjColumn bool
}

// randomBars returns n days of a random walk (daily moves of about 1%,
// never beyond 3%) with adjusted close = close, deterministic by seed.
func randomBars(seed int64, n int) *rawBars {
	rng := rand.New(rand.NewSource(seed))
	b := &rawBars{dates: TradingDays(20180102, n)}
	c := 50.0
	for i := 0; i < n; i++ {
		prev := c
		c *= math.Exp(math.Max(-0.03, math.Min(0.03, 0.01*rng.NormFloat64())))
		o := prev * math.Exp(0.003*rng.NormFloat64())
		b.o = append(b.o, o)
		b.h = append(b.h, math.Max(o, c)*1.005)
		b.l = append(b.l, math.Min(o, c)*0.995)
		b.c = append(b.c, c)
		b.adj = append(b.adj, c)
		b.vol = append(b.vol, math.Round(1e6*(1+rng.Float64())))
	}
	return b
}

func (b *rawBars) clone() *rawBars {
	return &rawBars{dates: b.dates, o: append([]float64(nil), b.o...), h: append([]float64(nil), b.h...),
		l: append([]float64(nil), b.l...), c: append([]float64(nil), b.c...), adj: append([]float64(nil), b.adj...),
		vol: append([]float64(nil), b.vol...), withoutAdjColumn: b.withoutAdjColumn}
}

// scalePrices multiplies the raw prices of rows from..to-1 by k and their
// volume by vk (a split from row from on: k = 1/2, vk = 2).
func (b *rawBars) scalePrices(from, to int, k, vk float64) {
	for i := from; i < to; i++ {
		b.o[i], b.h[i], b.l[i], b.c[i] = b.o[i]*k, b.h[i]*k, b.l[i]*k, b.c[i]*k
		b.vol[i] *= vk
	}
}

// setMove rescales rows i.. (prices and adjusted close) so that the close
// moves by exactly r on row i.
func (b *rawBars) setMove(i int, r float64) {
	k := r / (b.c[i] / b.c[i-1])
	b.scalePrices(i, len(b.dates), k, 1)
	b.scaleAdj(i, len(b.dates), k)
}

// scaleAdj multiplies the adjusted close of rows from..to-1 by k.
func (b *rawBars) scaleAdj(from, to int, k float64) {
	for i := from; i < to; i++ {
		b.adj[i] *= k
	}
}

// csv renders the history as a CSV file: the Yahoo layout, or
// Date,Open,High,Low,Close,Volume without an adjusted close.
func (b *rawBars) csv() string {
	var s strings.Builder
	if b.withoutAdjColumn {
		s.WriteString("Date,Open,High,Low,Close,Volume\n")
	} else {
		s.WriteString("Date,Open,High,Low,Close,Adj Close,Volume\n")
	}
	for i, d := range b.dates {
		fmt.Fprintf(&s, "%s,%.10g,%.10g,%.10g,%.10g,", ymd(d), b.o[i], b.h[i], b.l[i], b.c[i])
		if !b.withoutAdjColumn {
			fmt.Fprintf(&s, "%.10g,", b.adj[i])
		}
		fmt.Fprintf(&s, "%.0f\n", b.vol[i])
	}
	return s.String()
}

// importBars imports the tickers' histories and returns the report and
// the panel (tickers in name order), read back from the file.
func importBars(t *testing.T, tickers map[string]*rawBars) (*ImportReport, *Dataset) {
	t.Helper()
	dir := t.TempDir()
	for name, b := range tickers {
		writeFile(t, dir, name+".csv", b.csv())
	}
	return importDir(t, dir)
}

// importDir imports a folder of CSVs and returns the report and the panel
// read back from the file (closed when the test ends).
func importDir(t *testing.T, dir string) (*ImportReport, *Dataset) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "p.h5")
	rep, err := ImportCSV(dir, out, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(out, Options{SeqLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return rep, d
}

func (d *Dataset) feature(t, day, f int) float32 { return d.features[(t*d.D+day)*d.F+f] }
func (d *Dataset) ret(t, day, h int) float32     { return d.returns[(t*d.D+day)*d.H+h] }

// TestImportFeaturesIgnoreLaterEvents: three tickers with the same raw
// history up to row 360 of 400; one splits 2-for-1 there and one pays a 3%
// dividend (both in the test period). A vendor back-adjusts every earlier
// adjusted close for them, so anything read from that factor knows the
// event in advance. Every feature of every day before the event must be the
// same for the three (issue 23, item 1: the old volume feature, volume
// divided by adj/close, differs for years before the split).
func TestImportFeaturesIgnoreLaterEvents(t *testing.T) {
	const n, event = 400, 360
	plain := randomBars(1, n)

	// The adjusted close of either is the latest raw price level throughout:
	// the closes before the event are scaled by its factor.
	split := plain.clone()
	split.scalePrices(event, n, 0.5, 2)
	split.scaleAdj(0, n, 0.5)

	const yield = 0.03
	div := plain.clone()
	div.scalePrices(event, n, 1-yield, 1) // the ex-dividend drop
	div.scaleAdj(0, n, 1-yield)

	rep, d := importBars(t, map[string]*rawBars{"DIV": div, "PLAIN": plain, "SPLIT": split})
	if d.D != n || strings.Join(d.Tickers(), " ") != "DIV PLAIN SPLIT" {
		t.Fatalf("panel %v x %d days, want DIV PLAIN SPLIT x %d", d.Tickers(), d.D, n)
	}
	if plain.dates[event] < rep.ValEnd {
		t.Fatalf("event day %d is before the test period (val end %d)", plain.dates[event], rep.ValEnd)
	}
	compared := 0
	for _, other := range []int{0, 2} {
		for day := 0; day < event; day++ {
			for f := 0; f < d.F; f++ {
				a, b := d.feature(1, day, f), d.feature(other, day, f)
				if a != a && b != b {
					continue
				}
				compared++
				if !(math.Abs(float64(a-b)) <= 1e-4) {
					t.Fatalf("%s on %s: %s has %v, PLAIN %v (standard units): the feature depends on the %s on %s",
						d.names[f], ymd(d.Dates()[day]), d.Tickers()[other], b, a,
						map[int]string{0: "dividend", 2: "split"}[other], ymd(plain.dates[event]))
				}
			}
		}
	}
	// Warm-up aside (60 rows), every day before the event is compared.
	if want := 2 * (event - 60) * d.F; compared != want {
		t.Errorf("compared %d feature values, want %d", compared, want)
	}
	// The event itself is in the adjusted prices: the 1-day return into the
	// split day is the raw move (not 0.5), into the ex-day raw move / (1-yield).
	for _, c := range []struct {
		tk   int
		want float64
	}{{2, plain.c[event] / plain.c[event-1]}, {0, plain.c[event] / plain.c[event-1]}} {
		if got := float64(d.ret(c.tk, event-1, 0)); math.Abs(got/c.want-1) > 1e-5 {
			t.Errorf("%s 1-day return into the event: %v, want %v", d.Tickers()[c.tk], got, c.want)
		}
	}
}

// TestImportAdjustmentStepRepaired: an adjusted close that steps on a day
// the raw close does not move (issue 23, item 2: ANTM 2002-03-18 and
// GNRC 2010-02-12 in the S&P folder) is reported, and the panel's return
// for the day is the close's, not the step.
func TestImportAdjustmentStepRepaired(t *testing.T) {
	const n = 400
	up := randomBars(2, n)
	up.scaleAdj(0, 200, 0.5) // adjusted close doubles on row 200
	down := randomBars(3, n)
	down.scaleAdj(0, 300, 1/0.3) // and falls to 0.3 on row 300
	rep, d := importBars(t, map[string]*rawBars{"UP": up, "DOWN": down, "PLAIN": randomBars(4, n)})
	s := rep.String()
	for _, c := range []struct {
		tk, name string
		b        *rawBars
		row      int
		step     string
	}{{"UP", "UP", up, 200, "x2"}, {"DOWN", "DOWN", down, 300, "x0.3"}} {
		want := fmt.Sprintf("    %s %s: adjustment step without a price move: adjusted close x", c.name, ymd(c.b.dates[c.row]))
		if !strings.Contains(s, want) || !strings.Contains(s, "adjusted prices before the day rescaled "+c.step+"\n") {
			t.Errorf("report lacks %q (rescaled %s):\n%s", want, c.step, s)
		}
		tk := indexOf(d.Tickers(), c.tk)
		wantR := c.b.c[c.row] / c.b.c[c.row-1]
		if got := float64(d.ret(tk, c.row-1, 0)); math.Abs(got/wantR-1) > 1e-5 {
			t.Errorf("%s 1-day return into row %d: %v, want the close's %v", c.tk, c.row, got, wantR)
		}
		// The synthetic closes never move more than 3% a day.
		for day := 0; day+1 < d.D; day++ {
			if r := d.ret(tk, day, 0); r > 1.031 || r < 0.969 {
				t.Errorf("%s 1-day return from %s: %v, a move the closes never make", c.tk, ymd(d.Dates()[day]), r)
			}
		}
	}
}

// TestImportUnadjustedSplit: a 4-for-1 split the vendor did not adjust (close
// and adjusted close both x0.25 on one day) cuts the history: reported, no
// return spans the day, and the features after it wait for a new warm-up.
// A -33% day (near a 3-for-2 split) is reported but kept as a return; a file
// without an adjusted close column is reported and checked the same way.
func TestImportUnadjustedSplit(t *testing.T) {
	const n, cut = 400, 250
	quad := randomBars(5, n)
	quad.setMove(cut, 1.004)
	quad.scalePrices(cut, n, 0.25, 4)
	copy(quad.adj, quad.c)
	crash := randomBars(6, n)
	crash.setMove(150, 1.005)
	crash.scalePrices(150, n, 2.0/3, 1)
	copy(crash.adj, crash.c)
	noAdj := randomBars(7, n)
	noAdj.setMove(cut, 0.996)
	noAdj.scalePrices(cut, n, 0.5, 2)
	noAdj.withoutAdjColumn = true
	rep, d := importBars(t, map[string]*rawBars{"QUAD": quad, "CRASH": crash, "NOADJ": noAdj})
	s := rep.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\n    QUAD ` + ymd(quad.dates[cut]) + `: suspected unadjusted split: close and adjusted close x0\.2\d+, near a 4-for-1 split, adjustment unchanged; history cut`),
		regexp.MustCompile(`\n    NOADJ ` + ymd(noAdj.dates[cut]) + `: suspected unadjusted split: close and adjusted close x0\.\d+, near a 2-for-1 split, adjustment unchanged; history cut`),
		regexp.MustCompile(`\n    CRASH ` + ymd(crash.dates[150]) + `: suspected unadjusted split: close and adjusted close x0\.6\d+, near a 3-for-2 split, adjustment unchanged; kept as a return`),
		regexp.MustCompile(`\n    NOADJ whole file: no adjusted close column: NOADJ\.csv has a close column but no adjusted close column; prices used as they are \(returns leave out dividends\)`),
	} {
		if !want.MatchString(s) {
			t.Errorf("report lacks %s:\n%s", want, s)
		}
	}
	for _, name := range []string{"QUAD", "NOADJ"} {
		tk := indexOf(d.Tickers(), name)
		for day := 0; day < d.D; day++ {
			for h, hz := range d.Horizons() {
				r := d.ret(tk, day, h)
				spans := day < cut && day+hz >= cut
				if spans && r == r {
					t.Errorf("%s %d-day return from %s spans the split: %v, want NaN", name, hz, ymd(d.Dates()[day]), r)
				}
				if !spans && day+hz < d.D && !(r > 0.75 && r < 1.34) {
					t.Errorf("%s %d-day return from %s: %v", name, hz, ymd(d.Dates()[day]), r)
				}
			}
			missing := d.feature(tk, day, 0) != d.feature(tk, day, 0)
			if warm := day < 60 || (day >= cut && day < cut+60); missing != warm {
				t.Errorf("%s features on row %d: missing %v, want %v (60-row warm-up after the start and the cut)", name, day, missing, warm)
			}
		}
	}
	tk := indexOf(d.Tickers(), "CRASH")
	if r, want := float64(d.ret(tk, 149, 0)), crash.c[150]/crash.c[149]; math.Abs(r/want-1) > 1e-5 {
		t.Errorf("CRASH 1-day return into the -33%% day: %v, want %v", r, want)
	}
}

// TestImportReportsEndedTickers: a ticker whose history ends before the
// panel's last day is listed with its last day (issue 23, item 5), and the
// report states the survivorship of a constituent list whether or not a
// ticker ends early (one late acquisition used to hide that line).
func TestImportReportsEndedTickers(t *testing.T) {
	const n = 400
	gone := randomBars(8, n)
	last := gone.dates[n-1]
	gone.dates = gone.dates[:320]
	rep, _ := importBars(t, map[string]*rawBars{"AAA": randomBars(9, n), "GONE": gone, "ZZZ": randomBars(10, n)})
	s := rep.String()
	want := fmt.Sprintf("  tickers that end before the panel's last day (%s): 1; last day each:\n    GONE %s\n",
		ymd(last), ymd(gone.dates[319]))
	const survivorship = "  survivorship: a folder of today's index constituents leaves out every company that failed or left the index"
	if !strings.Contains(s, want) || !strings.Contains(s, survivorship) {
		t.Errorf("report lacks %q or the survivorship line:\n%s", want, s)
	}
	rep, _ = importBars(t, map[string]*rawBars{"AAA": randomBars(9, n), "ZZZ": randomBars(10, n)})
	if s := rep.String(); !strings.Contains(s, "  every ticker trades on the panel's last day ("+ymd(rep.LastDate)+")") || !strings.Contains(s, survivorship) {
		t.Errorf("report without an ended ticker lacks its lines:\n%s", s)
	}
}

// TestImportRealAdjustmentErrors: on the S&P 500 folder, the five days whose
// adjusted close jumps while the close does not (issue 23, item 2) are
// reported, and none reaches the panel as a 1-day return beyond +-25%.
func TestImportRealAdjustmentErrors(t *testing.T) {
	yahooRows(t, "ANTM", 1) // skips without the real data
	dir := t.TempDir()
	for _, tk := range append([]string{"ANTM", "GNRC", "TRMB", "ZBRA"}, leakTickers...) {
		f := "DA-" + tk + "-T-2021-04-21.csv"
		if err := os.Symlink(mustAbs(t, filepath.Join(realDataDir, f)), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	rep, d := importDir(t, dir)
	s := rep.String()
	for _, c := range []struct {
		tk   string
		date int32
	}{{"ANTM", 20020318}, {"GNRC", 20100212}, {"TRMB", 20070223}, {"ZBRA", 20030821}, {"ZBRA", 20040825}} {
		want := "\n    " + c.tk + " " + ymd(c.date) + ": adjustment step without a price move: "
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
		tk, day := indexOf(d.Tickers(), c.tk), indexOf32(d.Dates(), c.date)
		if tk < 0 || day < 1 {
			t.Fatalf("%s or %d not in the panel", c.tk, c.date)
		}
		if r := d.ret(tk, day-1, 0); r > 1.25 || r < 0.8 {
			t.Errorf("%s 1-day return into %s: %v", c.tk, ymd(c.date), r)
		}
	}
	if t.Failed() {
		t.Log(s)
	}
}
