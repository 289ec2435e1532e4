package loader

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "loadertest") }

func TestSynthDeterministic(t *testing.T) {
	cfg := SynthConfig{Tickers: 6, Days: 300, Features: 5, Seed: 11}
	a, err := SynthPanel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SynthPanel(cfg)
	cfg.Seed = 12
	c, _ := SynthPanel(cfg)
	same := func(x, y []float32) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] && !(x[i] != x[i] && y[i] != y[i]) {
				return false
			}
		}
		return true
	}
	if !same(a.Features, b.Features) || !same(a.Returns, b.Returns) || !reflect.DeepEqual(a.BinEdges, b.BinEdges) {
		t.Fatal("same seed, different panels")
	}
	if same(a.Features, c.Features) {
		t.Fatal("different seeds, same features")
	}
	// Files written from the same config have the same identity.
	p1, p2 := tempH5(t, "a.h5"), tempH5(t, "b.h5")
	cfg.Seed = 11
	if err := Synth(p1, cfg); err != nil {
		t.Fatal(err)
	}
	if err := Synth(p2, cfg); err != nil {
		t.Fatal(err)
	}
	d1, err := Open(p1, Options{SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer d1.Close()
	d2, err := Open(p2, Options{SeqLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d1.Identity() != d2.Identity() {
		t.Error("same config, different identity")
	}
	if a.Dates[0] != 20000103 || a.Dates[4] != 20000107 || a.Dates[5] != 20000110 {
		t.Errorf("dates %v", a.Dates[:6])
	}
}

// TestSynthSignal checks the planted signal: in the regime, the 1-day return
// is predicted by the mean of the last five driver values (correlation ~0.77
// for kappa 1.2); outside it, not at all.
func TestSynthSignal(t *testing.T) {
	p, err := SynthPanel(SynthConfig{Tickers: 40, Days: 1000, Features: 4, Seed: 3, SignalFraction: 0.15})
	if err != nil {
		t.Fatal(err)
	}
	T, D, F, H := 40, 1000, 4, 4
	var in, out corr
	regimeRows, rows := 0, 0
	for tk := 0; tk < T; tk++ {
		for d := 5; d < D-1; d++ {
			ok := true
			z := 0.0
			for k := 0; k < 5; k++ {
				x := p.Features[(tk*D+d-k)*F+1]
				if x != x {
					ok = false
				}
				z += float64(x)
			}
			reg := p.Features[(tk*D+d)*F]
			r := p.Returns[(tk*D+d)*H]
			if !ok || r != r {
				continue
			}
			rows++
			if reg > 0 {
				regimeRows++
				in.add(z, math.Log(float64(r)))
			} else {
				out.add(z, math.Log(float64(r)))
			}
		}
	}
	frac := float64(regimeRows) / float64(rows)
	if frac < 0.10 || frac > 0.20 {
		t.Errorf("regime fraction %.3f, want about 0.15", frac)
	}
	if c := in.r(); c < 0.65 || c > 0.85 {
		t.Errorf("in-regime correlation %.3f, want about 0.77", c)
	}
	if c := out.r(); math.Abs(c) > 0.05 {
		t.Errorf("out-of-regime correlation %.3f, want about 0", c)
	}
}

type corr struct{ n, sx, sy, sxx, syy, sxy float64 }

func (c *corr) add(x, y float64) {
	c.n++
	c.sx += x
	c.sy += y
	c.sxx += x * x
	c.syy += y * y
	c.sxy += x * y
}

func (c *corr) r() float64 {
	cov := c.sxy/c.n - c.sx/c.n*c.sy/c.n
	vx := c.sxx/c.n - c.sx/c.n*c.sx/c.n
	vy := c.syy/c.n - c.sy/c.n*c.sy/c.n
	return cov / math.Sqrt(vx*vy)
}

func TestSynthConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  SynthConfig
		want string
	}{
		{SynthConfig{Features: 2}, "features 2: want at least 3"},
		{SynthConfig{Days: 30}, "days 30: want at least 100"},
		{SynthConfig{SignalFraction: 1.5}, "signal fraction 1.5"},
		{SynthConfig{Horizons: []int{5, 1}}, "horizons [5 1]"},
	} {
		err := Synth(tempH5(t, "x.h5"), c.cfg)
		wantErr(t, err, "loader: synth", c.want)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthPath != "" {
		os.RemoveAll(filepath.Dir(synthPath))
	}
	os.Exit(code)
}
