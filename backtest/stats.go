package backtest

import (
	"math"
	"sort"
)

// mean returns the arithmetic mean of xs (0 for an empty slice).
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// sampleStd returns the sample standard deviation (n-1 denominator); 0 when
// fewer than two values.
func sampleStd(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := mean(xs)
	ss := 0.0
	for _, x := range xs {
		d := x - m
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(xs)-1))
}

// median of xs (average of the two middle values for even length). xs is not
// modified. 0 for an empty slice.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// pearson returns the Pearson correlation of x and y and ok=false when it is
// undefined (fewer than two points or a zero variance).
func pearson(x, y []float64) (float64, bool) {
	n := len(x)
	if n != len(y) || n < 2 {
		return 0, false
	}
	if allEqual(x) || allEqual(y) {
		return 0, false
	}
	mx, my := mean(x), mean(y)
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0, false
	}
	r := sxy / math.Sqrt(sxx*syy)
	// Guard against rounding pushing |r| marginally above 1.
	return math.Max(-1, math.Min(1, r)), true
}

// ranks returns 1-based ranks of xs in ascending order; tied values receive
// the average of the ranks they span (the "fractional"/average method).
func ranks(xs []float64) []float64 {
	n := len(xs)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	r := make([]float64, n)
	for i := 0; i < n; {
		j := i
		for j+1 < n && xs[idx[j+1]] == xs[idx[i]] {
			j++
		}
		// positions i..j (0-based) share ranks i+1..j+1; average = (i+j)/2 + 1
		avg := float64(i+j)/2 + 1
		for t := i; t <= j; t++ {
			r[idx[t]] = avg
		}
		i = j + 1
	}
	return r
}

// spearman returns the Spearman rank correlation (Pearson on average ranks).
func spearman(x, y []float64) (float64, bool) {
	if len(x) != len(y) || len(x) < 2 {
		return 0, false
	}
	return pearson(ranks(x), ranks(y))
}

// meanStdIR summarises a per-date series: mean, sample std, mean/std (0 when
// std is 0) and the t-statistic mean/std*sqrt(n).
func meanStdIR(xs []float64) (m, s, ir, t float64) {
	m = mean(xs)
	if len(xs) < 2 || allEqual(xs) {
		return m, 0, 0, 0
	}
	s = sampleStd(xs)
	if s > 0 {
		ir = m / s
		t = ir * math.Sqrt(float64(len(xs)))
	}
	return
}

// allEqual reports whether every value of xs equals the first. Used for
// zero-variance checks, which must not depend on rounding in the mean.
func allEqual(xs []float64) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}
