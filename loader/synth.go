package loader

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// SynthConfig sizes a synthetic panel. Zero values take the defaults noted.
type SynthConfig struct {
	Tickers, Days, Features, Bins int     // defaults 50, 1500, 8, 10 (Features >= 3)
	Horizons                      []int   // default DefaultHorizons
	Seed                          int64   // same seed, same file content
	SignalFraction                float64 // share of (ticker, day) in the signal regime, default 0.15
	StartDate                     int32   // first trading day YYYYMMDD, default 20000103; weekends skipped
}

// Synthetic panel, per ticker t and day d (all noise N(0,1) unless noted):
//
//	regime r[d] in {0,1}: a Markov chain with mean run length 10 days that
//	    spends SignalFraction of the days in state 1
//	driver x[d]; z[d] = (x[d]+x[d-1]+...+x[d-4]) / sqrt(5)
//	daily log return u[d+1] = sigma * (kappa * r[d] * z[d] + noise), sigma 0.02, kappa 1.2
//	features: f0 = 2r-1 (+0.05 noise) "regime", f1 = x "driver", f2 = u/sigma
//	    "ret1", f3.. AR(1) noise (coefficient 0.9) "noise<k>"
//	returns[d, h] = exp(u[d+1] + ... + u[d+h])
//
// So in the regime the forward returns are predictable from the last five
// driver values (strongly for short horizons), and elsewhere they are pure
// noise: a model that ranks sequences by expected return profits from picking
// regime sequences with a large |z|. About 10% of tickers list late (NaN rows
// before their first day) and 0.1% of rows are missing at random.
const (
	synthSigma = 0.02
	synthKappa = 1.2
)

// SynthMinDays is the fewest trading days Synth writes for these horizons
// (DefaultHorizons when empty): four times the longest horizon plus 20, so
// that every split keeps sequences with labels after the embargo.
func SynthMinDays(horizons []int) int {
	if len(horizons) == 0 {
		horizons = DefaultHorizons
	}
	return 4*horizons[len(horizons)-1] + 20
}

func (c *SynthConfig) defaults() error {
	if c.Tickers == 0 {
		c.Tickers = 50
	}
	if c.Days == 0 {
		c.Days = 1500
	}
	if c.Features == 0 {
		c.Features = 8
	}
	if c.Bins == 0 {
		c.Bins = 10
	}
	if len(c.Horizons) == 0 {
		c.Horizons = append([]int(nil), DefaultHorizons...)
	}
	if c.SignalFraction == 0 {
		c.SignalFraction = 0.15
	}
	if c.StartDate == 0 {
		c.StartDate = 20000103
	}
	switch {
	case c.Tickers < 1:
		return fmt.Errorf("tickers %d: want at least 1", c.Tickers)
	case c.Features < 3:
		return fmt.Errorf("features %d: want at least 3 (regime, driver, ret1)", c.Features)
	case c.Bins < 2:
		return fmt.Errorf("bins %d: want at least 2", c.Bins)
	case c.SignalFraction <= 0 || c.SignalFraction >= 1:
		return fmt.Errorf("signal fraction %v: want 0 < f < 1", c.SignalFraction)
	case !validYMD(c.StartDate):
		return fmt.Errorf("start date %d: not YYYYMMDD", c.StartDate)
	}
	for k, h := range c.Horizons {
		if h < 1 || (k > 0 && h <= c.Horizons[k-1]) {
			return fmt.Errorf("horizons %v: want positive and increasing", c.Horizons)
		}
	}
	if minDays := SynthMinDays(c.Horizons); c.Days < minDays {
		return fmt.Errorf("days %d: want at least %d for horizons %v", c.Days, minDays, c.Horizons)
	}
	return nil
}

// TradingDays returns n weekdays starting at start (or the next weekday), as
// YYYYMMDD.
func TradingDays(start int32, n int) []int32 {
	t := time.Date(int(start/10000), time.Month(start/100%100), int(start%100), 0, 0, 0, 0, time.UTC)
	out := make([]int32, 0, n)
	for len(out) < n {
		if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday {
			out = append(out, int32(t.Year()*10000+int(t.Month())*100+t.Day()))
		}
		t = t.AddDate(0, 0, 1)
	}
	return out
}

// Synth writes a synthetic panel with a planted signal (see SynthConfig).
// The content depends only on cfg.
func Synth(path string, cfg SynthConfig) error {
	p, err := SynthPanel(cfg)
	if err != nil {
		return fmt.Errorf("loader: synth %s: %v", path, err)
	}
	return WritePanel(path, p)
}

// SynthPanel builds the synthetic panel in memory.
func SynthPanel(cfg SynthConfig) (*Panel, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	T, D, F, H := cfg.Tickers, cfg.Days, cfg.Features, len(cfg.Horizons)
	p := &Panel{
		Dates:    TradingDays(cfg.StartDate, D),
		Horizons: append([]int(nil), cfg.Horizons...),
		Features: make([]float32, T*D*F),
		Returns:  make([]float32, T*D*H),
		Groups:   make([]string, T),
	}
	for t := 0; t < T; t++ {
		p.Tickers = append(p.Tickers, fmt.Sprintf("SYN%04d", t))
		p.Groups[t] = fmt.Sprintf("Sector%02d", t%11)
	}
	p.FeatureNames = []string{"regime", "driver", "ret1"}
	for k := 3; k < F; k++ {
		p.FeatureNames = append(p.FeatureNames, fmt.Sprintf("noise%d", k-3))
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := make([]float64, D+1)
			for t := range next {
				synthTicker(cfg, t, p, u)
			}
		}()
	}
	for t := 0; t < T; t++ {
		next <- t
	}
	close(next)
	wg.Wait()

	v := int(float64(D) * 0.70)
	w := int(float64(D) * 0.85)
	p.TrainEnd, p.ValEnd = p.Dates[v], p.Dates[w]
	sample := make([]float32, 0, T*v)
	for h := 0; h < H; h++ {
		sample = sample[:0]
		for t := 0; t < T; t++ {
			for d := 0; d+cfg.Horizons[h] < v; d++ {
				sample = append(sample, p.Returns[(t*D+d)*H+h])
			}
		}
		e, err := QuantileEdges(sample, cfg.Bins)
		if err != nil {
			return nil, fmt.Errorf("bin edges of horizon %d: %v", cfg.Horizons[h], err)
		}
		p.BinEdges = append(p.BinEdges, e)
	}
	return p, nil
}

func synthTicker(cfg SynthConfig, t int, p *Panel, u []float64) {
	D, F, H := cfg.Days, cfg.Features, len(cfg.Horizons)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(t)*0x9e3779b97f4a7c15+1))
	start := 0
	if rng.Float64() < 0.10 {
		start = rng.IntN(D * 3 / 10)
	}
	exit := 0.1
	enter := exit * cfg.SignalFraction / (1 - cfg.SignalFraction)
	regime := rng.Float64() < cfg.SignalFraction
	var xs [5]float64
	ar := make([]float64, F)
	for k := 3; k < F; k++ {
		ar[k] = rng.NormFloat64()
	}
	feat := p.Features[t*D*F : (t+1)*D*F]
	u[0] = 0
	for d := 0; d < D; d++ {
		x := rng.NormFloat64()
		copy(xs[1:], xs[:4])
		xs[0] = x
		z := (xs[0] + xs[1] + xs[2] + xs[3] + xs[4]) / math.Sqrt(5)
		row := feat[d*F : (d+1)*F]
		r := 0.0
		if regime {
			r = 1
		}
		row[0] = float32(2*r - 1 + 0.05*rng.NormFloat64())
		row[1] = float32(x)
		row[2] = float32(u[d] / synthSigma)
		for k := 3; k < F; k++ {
			ar[k] = 0.9*ar[k] + math.Sqrt(1-0.81)*rng.NormFloat64()
			row[k] = float32(ar[k])
		}
		// the return from close d to close d+1
		u[d+1] = synthSigma * (synthKappa*r*z + rng.NormFloat64())
		if d < 4 || d < start || rng.Float64() < 0.001 {
			nan := float32(math.NaN())
			for k := range row {
				row[k] = nan
			}
		}
		if regime {
			regime = rng.Float64() >= exit
		} else {
			regime = rng.Float64() < enter
		}
	}
	ret := p.Returns[t*D*H : (t+1)*D*H]
	for d := 0; d < D; d++ {
		for h, hz := range cfg.Horizons {
			if d < start || d+hz >= D {
				ret[d*H+h] = float32(math.NaN())
				continue
			}
			s := 0.0
			for k := 1; k <= hz; k++ {
				s += u[d+k]
			}
			ret[d*H+h] = float32(math.Exp(s))
		}
	}
}
