package loader

// barSeries is one ticker's bars ready for the features: open, high, low and
// close in adjusted prices (currency units of the latest day), dollar volume
// (raw close x raw volume, currency units, which a split leaves unchanged)
// and, per row, the first row of its unbroken part.
type barSeries struct {
	o, h, l, c []float64
	dollarVol  []float64
	segStart   []int
}

const (
	// segmentWarmup is the number of rows at the start of a ticker's history
	// whose features are missing: the longest feature window (ret60) needs 60
	// earlier rows.
	segmentWarmup = 60
)

// adjustSeries returns one ticker's rows (those on the panel's day axis) as
// bars in adjusted prices: OHLC times the vendor's factor adj/close of the
// same row.
func adjustSeries(s *priceSeries) *barSeries {
	n := s.len()
	b := &barSeries{o: make([]float64, n), h: make([]float64, n), l: make([]float64, n), c: make([]float64, n),
		dollarVol: make([]float64, n), segStart: make([]int, n)}
	for i := 0; i < n; i++ {
		f := s.adj[i] / s.c[i]
		b.o[i], b.h[i], b.l[i], b.c[i] = s.o[i]*f, s.h[i]*f, s.l[i]*f, s.c[i]*f
		b.dollarVol[i] = s.c[i] * s.v[i]
	}
	return b
}
