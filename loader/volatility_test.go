package loader

import (
	"math"
	"testing"
)

// TestTrailingVolatility checks the figure against a direct computation
// from the panel's 1-day returns: the std (n-1) of the logs of
// returns[t, day-window .. day-1, 1d], and that it never reads day's own
// return (known only at the close of day+1) or later ones.
func TestTrailingVolatility(t *testing.T) {
	p := knownPanel(3, 120)
	// Ticker 1: alternate 1% up and 1% down before day 50, then a huge move on
	// day 50 itself (its 1-day return ends at day 51's close: the future at 50).
	for d := 0; d < 120; d++ {
		r := float32(1.01)
		if d%2 == 1 {
			r = 0.99
		}
		if d == 50 {
			r = 3
		}
		p.Returns[(1*120+d)*2] = r
	}
	p.Returns[(1*120+45)*2] = float32(math.NaN()) // a missing price inside the window
	path := tempH5(t, "vol.h5")
	if err := WritePanel(path, p); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path, Options{SeqLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// By hand: window 10 before day 50 = days 40..49, day 45 missing: 9 logs.
	var logs []float64
	for j := 40; j < 50; j++ {
		if j == 45 {
			continue
		}
		if j%2 == 0 {
			logs = append(logs, math.Log(float64(float32(1.01))))
		} else {
			logs = append(logs, math.Log(float64(float32(0.99))))
		}
	}
	var m, ss float64
	for _, l := range logs {
		m += l / float64(len(logs))
	}
	for _, l := range logs {
		ss += (l - m) * (l - m)
	}
	want := math.Sqrt(ss / float64(len(logs)-1))
	got, ok := d.TrailingVolatility(1, 50, 10)
	if !ok || math.Abs(got-want) > 1e-12 {
		t.Fatalf("TrailingVolatility(1, 50, 10) = %v, %v; want %v (9 known returns of days 40..49)", got, ok, want)
	}
	// Day 51's window holds day 50's return of 3x: the figure jumps only then.
	if v, _ := d.TrailingVolatility(1, 51, 10); v < 10*want {
		t.Errorf("day 51 must see day 50's 3x return: vol %v (day 50: %v)", v, want)
	}
	// Knownpanel's ticker 0 has returns 1 + (0+d)/1000 on the 1-day horizon.
	var l0 []float64
	for j := 10; j < 30; j++ {
		l0 = append(l0, math.Log(float64(float32(1+float64(j)/1000))))
	}
	m, ss = 0, 0
	for _, l := range l0 {
		m += l / 20
	}
	for _, l := range l0 {
		ss += (l - m) * (l - m)
	}
	if got, ok := d.TrailingVolatility(0, 30, 20); !ok || math.Abs(got-math.Sqrt(ss/19)) > 1e-12 {
		t.Errorf("ticker 0 day 30: %v %v, want %v", got, ok, math.Sqrt(ss/19))
	}
	for _, c := range []struct{ t, day, window int }{{0, 5, 10}, {0, 10, 1}, {5, 50, 10}, {0, 200, 10}} {
		if _, ok := d.TrailingVolatility(c.t, c.day, c.window); ok {
			t.Errorf("TrailingVolatility(%d, %d, %d) must be unknown", c.t, c.day, c.window)
		}
	}
	// Too few known returns: 5 of a 10-day window is not enough (needs 6).
	for j := 60; j < 65; j++ {
		p.Returns[(2*120+j)*2] = float32(math.NaN())
	}
	path2 := tempH5(t, "vol2.h5")
	if err := WritePanel(path2, p); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(path2, Options{SeqLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if _, ok := d2.TrailingVolatility(2, 70, 10); ok {
		t.Error("5 known returns of 10 must be unknown")
	}
	if _, ok := d2.TrailingVolatility(2, 71, 10); !ok {
		t.Error("6 known returns of 10 must be known")
	}
}
