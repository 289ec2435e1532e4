package backtest

import "math"

// Interval is a confidence interval for the mean of a per-date series,
// with the standard error it comes from.
type Interval struct {
	Lo  float64 `json:"lo"`
	Hi  float64 `json:"hi"`
	SE  float64 `json:"se"`  // Newey–West standard error of the mean
	Lag int     `json:"lag"` // autocovariance lags in the estimate (holding period - 1)
	N   int     `json:"n"`   // dates in the series
}

// z975 is the standard normal's 97.5% quantile: a two-sided 95% interval.
const z975 = 1.959963984540054

// NeweyWestSE is the heteroskedasticity- and autocorrelation-consistent
// standard error of the mean of x (Newey and West, Econometrica 1987) with
// Bartlett weights over lag autocovariances:
//
//	γ_j = (1/T) Σ_{t=j+1..T} (x_t - x̄)(x_{t-j} - x̄),
//	Var(x̄) = (γ_0 + 2 Σ_{j=1..L} (1 - j/(L+1)) γ_j) / T.
//
// A decision made every day and held h days overlaps the next h-1
// decisions, so their outcomes are correlated up to lag h-1: the plain
// √(γ_0/T) understates the error and L = h-1 accounts for it. NaN for fewer
// than two values; a negative lag is 0; the lag is capped at T-1.
func NeweyWestSE(x []float64, lag int) float64 {
	T := len(x)
	if T < 2 {
		return math.NaN()
	}
	lag = max(0, min(lag, T-1))
	m := mean(x)
	gamma := func(j int) float64 {
		var s float64
		for t := j; t < T; t++ {
			s += (x[t] - m) * (x[t-j] - m)
		}
		return s / float64(T)
	}
	v := gamma(0)
	for j := 1; j <= lag; j++ {
		v += 2 * (1 - float64(j)/float64(lag+1)) * gamma(j)
	}
	return math.Sqrt(math.Max(v, 0) / float64(T))
}

// meanInterval is the two-sided 95% interval x̄ ± z·SE of x's mean, with
// the Newey–West SE at lag (normal approximation). Under two dates there is
// no error to estimate: Lo = Hi = the mean (0 with no dates), SE 0, as the
// report's other undefined figures read 0.
func meanInterval(x []float64, lag int) Interval {
	if len(x) < 2 {
		m := 0.0
		if len(x) == 1 {
			m = x[0]
		}
		return Interval{Lo: m, Hi: m, N: len(x)}
	}
	se := NeweyWestSE(x, lag)
	m := mean(x)
	return Interval{Lo: m - z975*se, Hi: m + z975*se, SE: se, Lag: min(max(0, lag), len(x)-1), N: len(x)}
}
