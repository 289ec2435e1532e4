package loader

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	synthOnce sync.Once
	synthPath string
	synthErr  error
)

// smallSynth is a shared synthetic file for the split and stream tests.
func smallSynth(t *testing.T) string {
	t.Helper()
	synthOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			synthErr = err
			return
		}
		synthPath = dir + "/synth.h5"
		synthErr = Synth(synthPath, SynthConfig{Tickers: 30, Days: 800, Features: 5, Seed: 7})
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthPath
}

// TestSplitsNoLeakage walks every sequence of every split and checks that no
// label window of an earlier split reaches a day of a later split, and that
// splits are disjoint and ordered by end day.
func TestSplitsNoLeakage(t *testing.T) {
	path := smallSynth(t)
	for _, opt := range []Options{
		{SeqLen: 32},
		{SeqLen: 16, Embargo: 30},
		{SeqLen: 20, TrainEnd: 20020401, ValEnd: 20020901}, // after the fit end 2002-02-25
	} {
		d, err := Open(path, opt)
		if err != nil {
			t.Fatal(err)
		}
		dates := d.Dates()
		maxH := d.Horizons()[len(d.Horizons())-1]
		if d.Embargo() < maxH || (opt.Embargo > maxH && d.Embargo() != opt.Embargo) {
			t.Errorf("embargo %d with longest horizon %d, option %d", d.Embargo(), maxH, opt.Embargo)
		}
		// first day of the val and test periods, from the dates alone
		valDay, testDay := d.valStart, d.testStart
		if opt.TrainEnd != 0 && (dates[valDay] < opt.TrainEnd || dates[valDay-1] >= opt.TrainEnd) {
			t.Fatalf("val period starts %d, option %d", dates[valDay], opt.TrainEnd)
		}
		type span struct{ lo, hi int } // first feature day .. last label day
		spans := map[string]span{}
		for _, name := range []string{"train", "val", "test"} {
			s := d.Split(name)
			sp := span{math.MaxInt, -1}
			for i := int64(0); i < s.Len(); i++ {
				id := s.At(i)
				if !d.isValid(int(id.Ticker), int(id.Day)) {
					t.Fatalf("%s[%d] = %v is not valid", name, i, id)
				}
				lo, hi := int(id.Day)-opt.SeqLen+1, int(id.Day)+maxH
				if lo < sp.lo {
					sp.lo = lo
				}
				if hi > sp.hi {
					sp.hi = hi
				}
				switch name {
				case "train":
					if hi >= valDay {
						t.Fatalf("train %v: label window reaches day %d (%d), val starts %d", id, hi, dates[hi], dates[valDay])
					}
				case "val":
					if int(id.Day) < valDay || hi >= testDay {
						t.Fatalf("val %v: end %d or label end %d outside [%d, %d)", id, id.Day, hi, valDay, testDay)
					}
				case "test":
					if int(id.Day) < testDay {
						t.Fatalf("test %v ends before the test period", id)
					}
				}
			}
			spans[name] = sp
		}
		if spans["train"].hi >= valDay || spans["val"].hi >= testDay {
			t.Errorf("label overlap: train labels end %d, val starts %d; val labels end %d, test starts %d",
				spans["train"].hi, valDay, spans["val"].hi, testDay)
		}
		d.Close()
	}
}

func TestSampleReproducibleWithoutReplacement(t *testing.T) {
	d, err := Open(smallSynth(t), Options{SeqLen: 32, ValSize: 100, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tr := d.Split("train")
	a := tr.Sample(5000, rand.New(rand.NewSource(42)))
	b := tr.Sample(5000, rand.New(rand.NewSource(42)))
	c := tr.Sample(5000, rand.New(rand.NewSource(43)))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different samples")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same sample")
	}
	seen := map[SeqID]bool{}
	for _, id := range a {
		if seen[id] {
			t.Fatalf("%v drawn twice", id)
		}
		seen[id] = true
		if !d.isValid(int(id.Ticker), int(id.Day)) || int(id.Day) >= d.valStart {
			t.Fatalf("%v is not a train sequence", id)
		}
	}
	// n > Len: the whole split, each once
	v := d.Split("val")
	all := v.Sample(int(v.Len())+10, rand.New(rand.NewSource(1)))
	if int64(len(all)) != v.Len() {
		t.Fatalf("got %d, want the whole split %d", len(all), v.Len())
	}
	seen = map[SeqID]bool{}
	for _, id := range all {
		seen[id] = true
	}
	for i := int64(0); i < v.Len(); i++ {
		if !seen[v.At(i)] {
			t.Fatalf("%v missing from full sample", v.At(i))
		}
	}
	// uniform: each of the first 200 val sequences is drawn with probability
	// 1/2 when sampling half the split; over 400 draws the count is
	// Binomial(400, 0.5): mean 200, sd 10.
	const reps = 400
	counts := map[SeqID]int{}
	rng := rand.New(rand.NewSource(9))
	for r := 0; r < reps; r++ {
		for _, id := range v.Sample(int(v.Len()/2), rng) {
			counts[id]++
		}
	}
	for i := int64(0); i < 200; i++ {
		n := counts[v.At(i)]
		if n < 140 || n > 260 {
			t.Errorf("%v drawn %d of %d times, want about 200", v.At(i), n, reps)
		}
	}
	// fixed validation set: same options, same set
	d2, err := Open(smallSynth(t), Options{SeqLen: 32, ValSize: 100, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if vs := d.ValidationSet(); len(vs) != 100 || !reflect.DeepEqual(vs, d2.ValidationSet()) {
		t.Fatalf("validation set not reproducible (%d)", len(vs))
	}
}

func TestStreamMatchesReadWindows(t *testing.T) {
	for _, mode := range []string{"preload", "stream"} {
		t.Run(mode, func(t *testing.T) {
			d, err := Open(smallSynth(t), Options{SeqLen: 24, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ids := d.Split("train").Sample(1000, rand.New(rand.NewSource(1)))
			L, F, H := 24, d.NumFeatures(), len(d.Horizons())
			want := make([]float32, len(ids)*L*F)
			wantLab := make([]int64, len(ids)*H)
			if err := d.ReadWindows(ids, want, wantLab, nil); err != nil {
				t.Fatal(err)
			}
			for k, x := range want {
				if x != x || math.IsInf(float64(x), 0) {
					t.Fatalf("non-finite feature at %d", k)
				}
			}
			allocs := 0
			s := d.Stream(context.Background(), ids, StreamOptions{BatchSize: 300, Depth: 2,
				NewFeatures: func(n int) []float32 { allocs++; return make([]float32, n) }})
			defer s.Close()
			got := 0
			for {
				b, err := s.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n := len(b.IDs)
				if !reflect.DeepEqual(b.Features, want[got*L*F:(got+n)*L*F]) || !reflect.DeepEqual(b.Labels, wantLab[got*H:(got+n)*H]) {
					t.Fatalf("batch at %d differs from ReadWindows", got)
				}
				got += n
				s.Release(b)
			}
			if got != len(ids) {
				t.Fatalf("streamed %d of %d", got, len(ids))
			}
			if allocs > 4 {
				t.Errorf("%d feature buffers allocated for 4 batches with release", allocs)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		d, err := Open(smallSynth(t), Options{SeqLen: 24})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ids := d.Split("train").Sample(2000, rand.New(rand.NewSource(1)))
		ctx, cancel := context.WithCancel(context.Background())
		s := d.Stream(ctx, ids, StreamOptions{BatchSize: 10})
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
		cancel()
		var err2 error
		for i := 0; i < 300 && err2 == nil; i++ {
			_, err2 = s.Next()
		}
		if !errors.Is(err2, context.Canceled) {
			t.Fatalf("after cancel: %v", err2)
		}
		s.Close()
	})
	t.Run("bad id", func(t *testing.T) {
		d, err := Open(smallSynth(t), Options{SeqLen: 24})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		s := d.Stream(context.Background(), []SeqID{{0, 1}}, StreamOptions{BatchSize: 10})
		defer s.Close()
		_, err = s.Next()
		wantErr(t, err, "not a valid sequence")
	})
}

// TestSplitBeforeFitRefused (issue 23, item 3): a train end or val end before
// the panel's fit end (its train_end attribute, up to which normalisation and
// bins were fitted) is refused, naming the option, the date and the fit end;
// on or after it, and the file's own dates, open.
func TestSplitBeforeFitRefused(t *testing.T) {
	path := smallSynth(t) // fit end 2002-02-25 (day 560 of 800)
	for _, c := range []struct {
		opt  Options
		want string // "" opens
	}{
		{Options{SeqLen: 20, TrainEnd: 20010601, ValEnd: 20020601}, "train end 2001-06-01 falls before the panel's fit end 2002-02-25: "},
		{Options{SeqLen: 20, TrainEnd: 20010601, ValEnd: 20020101}, "val end 2002-01-01 falls before the panel's fit end 2002-02-25 (the train end too): "},
		{Options{SeqLen: 20, TrainEnd: 20020225, ValEnd: 20020601}, ""},
		{Options{SeqLen: 20, TrainEnd: 20020222, ValEnd: 20020601}, "train end 2002-02-22"}, // the Friday before
		{Options{SeqLen: 20}, ""},
	} {
		d, err := Open(path, c.opt)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.opt, err)
			} else {
				if d.FitEnd() != 20020225 {
					t.Errorf("FitEnd %d, want 20020225", d.FitEnd())
				}
				d.Close()
			}
			continue
		}
		var se *SplitBeforeFitError
		if err == nil {
			d.Close()
		}
		if !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) || se.FitEnd != 20020225 {
			t.Errorf("%+v: error %v, want a *SplitBeforeFitError with %q", c.opt, err, c.want)
		}
	}
}
