package loader

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"
)

func TestOpenValidationErrors(t *testing.T) {
	base := knownPanel(4, 120)
	items, attrs := panelItems(base)
	nan := float32(math.NaN())
	T, D, F := 4, 120, 3

	i64 := make([]int64, T*D*F)
	f64 := make([]float64, T*D*F)
	rank2 := make([]float32, T*D*F)
	shortRet := make([]float32, T*(D-1)*2)
	badDates := append([]int32(nil), base.Dates...)
	badDates[50] = badDates[49]
	notYMD := append([]int32(nil), base.Dates...)
	notYMD[0] = 20201301
	badEdges := []float32{0.9, 1.0, 1.05, 1.1, 1.2, 0.8, 1.1, 1.0, 1.2, 1.3}
	nanEdges := []float32{0.9, 1.0, nan, 1.1, 1.2, 0.8, 1.0, 1.1, 1.2, 1.3}
	hz := []int32{5, 1}
	dates := base.Dates

	cases := []struct {
		name  string
		items []h5item
		attrs map[string]int32
		opt   Options
		want  []string
	}{
		{"missing returns", dropItem(items, "returns"), attrs, Options{SeqLen: 10}, []string{"missing dataset /returns"}},
		{"missing dates", dropItem(items, "dates"), attrs, Options{SeqLen: 10}, []string{"missing dataset /dates"}},
		{"features int64", replaceItem(items, h5item{"features", hdf5.T_NATIVE_INT64, []int{T, D, F}, &i64}), attrs, Options{SeqLen: 10},
			[]string{"/features: want float32, got int64"}},
		{"features float64", replaceItem(items, h5item{"features", hdf5.T_NATIVE_DOUBLE, []int{T, D, F}, &f64}), attrs, Options{SeqLen: 10},
			[]string{"/features: want float32, got float64"}},
		{"features big-endian", replaceItem(items, h5item{"features", hdf5.T_IEEE_F32BE, []int{T, D, F}, &rank2}), attrs, Options{SeqLen: 10},
			[]string{"/features: want float32, got float32 big-endian"}},
		{"features rank 2", replaceItem(items, h5item{"features", hdf5.T_NATIVE_FLOAT, []int{T * D, F}, &rank2}), attrs, Options{SeqLen: 10},
			[]string{"/features: want rank 3, got rank 2"}},
		{"dates float", replaceItem(items, h5item{"dates", hdf5.T_NATIVE_FLOAT, []int{D}, &[]float32{}}), attrs, Options{SeqLen: 10},
			[]string{"/dates: want int32, got float32"}},
		{"tickers not strings", replaceItem(items, h5item{"tickers", hdf5.T_NATIVE_INT32, []int{T}, &[]int32{1, 2, 3, 4}}), attrs, Options{SeqLen: 10},
			[]string{"/tickers: want fixed-length string, got int32"}},
		{"returns shape", replaceItem(items, h5item{"returns", hdf5.T_NATIVE_FLOAT, []int{T, D - 1, 2}, &shortRet}), attrs, Options{SeqLen: 10},
			[]string{"shape mismatch: /returns is [4 119 2], /features is [4 120 3]"}},
		{"tickers count", replaceItem(items, h5item{"tickers", nil, nil, []string{"A", "B", "C"}}), attrs, Options{SeqLen: 10},
			[]string{"shape mismatch: /tickers has 3 entries, /features has 4 tickers"}},
		{"duplicate ticker", replaceItem(items, h5item{"tickers", nil, nil, []string{"A", "B", "A", "C"}}), attrs, Options{SeqLen: 10},
			[]string{`/tickers: "A" appears twice`}},
		{"dates not increasing", replaceItem(items, h5item{"dates", hdf5.T_NATIVE_INT32, []int{D}, &badDates}), attrs, Options{SeqLen: 10},
			[]string{"/dates not increasing: [50]"}},
		{"date not YYYYMMDD", replaceItem(items, h5item{"dates", hdf5.T_NATIVE_INT32, []int{D}, &notYMD}), attrs, Options{SeqLen: 10},
			[]string{"/dates[0] = 20201301: not a YYYYMMDD date"}},
		{"edges not increasing", replaceItem(items, h5item{"bin_edges", hdf5.T_NATIVE_FLOAT, []int{2, 5}, &badEdges}), attrs, Options{SeqLen: 10},
			[]string{"/bin_edges[1] not strictly increasing: [2] = 1 after 1.1"}},
		{"NaN in edges", replaceItem(items, h5item{"bin_edges", hdf5.T_NATIVE_FLOAT, []int{2, 5}, &nanEdges}), attrs, Options{SeqLen: 10},
			[]string{"/bin_edges[0][2] = NaN: edges must be finite"}},
		{"horizons not increasing", replaceItem(items, h5item{"horizons", hdf5.T_NATIVE_INT32, []int{2}, &hz}), attrs, Options{SeqLen: 10},
			[]string{"/horizons not increasing"}},
		{"no format version", items, map[string]int32{}, Options{SeqLen: 10},
			[]string{"missing root attribute format_version"}},
		{"wrong format version", items, map[string]int32{"format_version": 7}, Options{SeqLen: 10},
			[]string{"attribute format_version: want 1, got 7"}},
		{"seq-len longer than file", items, attrs, Options{SeqLen: 500},
			[]string{"--seq-len 500 longer than any series (120 days in the file)"}},
		{"seq-len longer than any run", replaceItem(items, func() h5item {
			f := append([]float32(nil), base.Features...)
			for tk := 0; tk < T; tk++ {
				f[(tk*D+50)*F] = nan
			}
			return h5item{"features", hdf5.T_NATIVE_FLOAT, []int{T, D, F}, &f}
		}()), attrs, Options{SeqLen: 80},
			[]string{"--seq-len 80 longer than any series (longest run of complete feature rows: 69 days)"}},
		{"empty val split", items, attrs, Options{SeqLen: 10, TrainEnd: dates[90], ValEnd: dates[93]},
			[]string{"split val is empty"}},
		{"empty test split (no labels)", items, attrs, Options{SeqLen: 10, ValEnd: dates[116]},
			[]string{"split test is empty: no valid sequence of 10 days"}},
		{"train end outside", items, attrs, Options{SeqLen: 10, TrainEnd: 19990101},
			[]string{"train end 1999-01-01: outside the panel's dates 2020-01-01..2020-06-16"}},
		{"val end before the train end", items, attrs, Options{SeqLen: 10, TrainEnd: dates[90], ValEnd: dates[80]},
			[]string{"val end " + FormatDate(dates[80]) + ": must fall after the train end " + FormatDate(dates[90])}},
		{"bad mode", items, attrs, Options{SeqLen: 10, Mode: "mmap"}, []string{`mode "mmap"`}},
		{"seq-len zero", items, attrs, Options{}, []string{"seq-len 0: must be at least 1"}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := dir + "/" + strings.ReplaceAll(c.name, " ", "_") + ".h5"
			writeItems(t, path, c.items, c.attrs)
			d, err := Open(path, c.opt)
			if err == nil {
				d.Close()
			}
			wantErr(t, err, append([]string{"loader: open " + path + ": "}, c.want...)...)
		})
	}
	t.Run("not hdf5", func(t *testing.T) {
		path := dir + "/text.h5"
		os.WriteFile(path, []byte("hello"), 0o644)
		_, err := Open(path, Options{SeqLen: 10})
		wantErr(t, err, "loader: open "+path+": not an HDF5 file")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Open(dir+"/nope.h5", Options{SeqLen: 10})
		wantErr(t, err, "loader: open "+dir+"/nope.h5", "no such file")
	})
}

// Variable-length strings crash gonum/hdf5 on read, so Open must refuse them
// before reading. h5py writes them by default for str data.
func TestOpenRefusesVarLenStrings(t *testing.T) {
	path := tempH5(t, "vlen.h5")
	good := tempH5(t, "good.h5")
	if err := WritePanel(good, knownPanel(4, 120)); err != nil {
		t.Fatal(err)
	}
	pythonH5(t, `
import sys, h5py
src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
    for k in a.keys():
        a.copy(k, b)
    b.attrs["format_version"] = a.attrs["format_version"]
    del b["tickers"]
    b.create_dataset("tickers", data=["T0", "T1", "T2", "T3"], dtype=h5py.string_dtype())
`, good, path)
	_, err := Open(path, Options{SeqLen: 10})
	wantErr(t, err, "/tickers: variable-length strings are not supported")
}

func TestOpenAndReadKnownValues(t *testing.T) {
	path := tempH5(t, "known.h5")
	p := knownPanel(4, 120)
	if err := WritePanel(path, p); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"preload", "stream"} {
		t.Run(mode, func(t *testing.T) {
			d, err := Open(path, Options{SeqLen: 10, Mode: mode, ValSize: 20, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Mode() != mode {
				t.Fatalf("mode %s, want %s", d.Mode(), mode)
			}
			if got := d.Split("train").Len(); got != 210 {
				t.Errorf("train len %d, want 210", got)
			}
			if got := d.Split("val").Len(); got != 52 {
				t.Errorf("val len %d, want 52", got)
			}
			if got := d.Split("test").Len(); got != 52 {
				t.Errorf("test len %d, want 52", got)
			}
			if got := len(d.ValidationSet()); got != 20 {
				t.Errorf("validation set %d, want 20", got)
			}
			if d.NumFeatures() != 3 || d.NumBins() != 4 || len(d.Horizons()) != 2 || d.Horizons()[1] != 5 {
				t.Errorf("shape: F %d B %d horizons %v", d.NumFeatures(), d.NumBins(), d.Horizons())
			}
			if c := d.BinCenters(); c[0][0] != 0.95 || c[1][3] != 1.25 {
				t.Errorf("centers %v", c)
			}
			if g := d.Groups(); len(g) != 4 || g[1] != "G1" {
				t.Errorf("groups %v", g)
			}
			if n := d.FeatureNames(); strings.Join(n, ",") != "a,b,c" {
				t.Errorf("names %v", n)
			}
			ids := []SeqID{{0, 20}, {3, 60}, {1, 40}, {3, 110}, {3, 61}, {0, 9}}
			L, F, H := 10, 3, 2
			feats := make([]float32, len(ids)*L*F)
			labels := make([]int64, len(ids)*H)
			rets := make([]float32, len(ids)*H)
			if err := d.ReadWindows(ids, feats, labels, rets); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				for k := 0; k < L; k++ {
					day := int(id.Day) - L + 1 + k
					for f := 0; f < F; f++ {
						want := float32(int(id.Ticker)*1000+day) + float32(f)/100
						if got := feats[(i*L+k)*F+f]; got != want {
							t.Fatalf("window %v row %d feature %d: got %v want %v", id, k, f, got, want)
						}
					}
				}
				for h := 0; h < H; h++ {
					want := float32(1 + float64(int(id.Ticker)+int(id.Day)+h)/1000)
					if rets[i*H+h] != want {
						t.Errorf("return %v h%d: got %v want %v", id, h, rets[i*H+h], want)
					}
				}
			}
			// by hand, r = 1+(t+d+h)/1000; h=1 edges {0.9,1,1.05,1.1,1.2}, h=5 edges {0.8,1,1.1,1.2,1.3}:
			// (0,20): 1.020->1, 1.021->1; (3,60): 1.063->2, 1.064->1; (1,40): 1.041->1, 1.042->1;
			// (3,110): 1.113->3, 1.114->2; (3,61): 1.064->2, 1.065->1; (0,9): 1.009->1, 1.010->1
			wantLabels := []int64{1, 1, 2, 1, 1, 1, 3, 2, 2, 1, 1, 1}
			for k, w := range wantLabels {
				if labels[k] != w {
					t.Fatalf("labels %v, want %v", labels, wantLabels)
				}
			}
			// invalid windows are refused
			for _, bad := range []SeqID{{1, 35}, {2, 65}, {0, 8}, {0, 117}, {9, 10}} {
				err := d.ReadWindows([]SeqID{bad}, feats, labels, nil)
				if err == nil {
					t.Errorf("window %v: want error", bad)
				}
			}
			wantErr(t, d.ReadWindows(ids, feats[:5], labels, nil), "feature buffer holds 5 floats, need 180")
		})
	}
}

func TestIdentityAndCounts(t *testing.T) {
	path := tempH5(t, "id.h5")
	if err := WritePanel(path, knownPanel(4, 120)); err != nil {
		t.Fatal(err)
	}
	a, err := Open(path, Options{SeqLen: 10, Mode: "preload"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path, Options{SeqLen: 20, Mode: "stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Identity() != b.Identity() || len(a.Identity()) != 64 {
		t.Errorf("identity differs between opens: %s %s", a.Identity(), b.Identity())
	}
	var buf bytes.Buffer
	a.PrintCounts(&buf)
	want := "Train: 210 sequences\nVal: 52 sequences\nTest: 52 sequences\n"
	if buf.String() != want {
		t.Errorf("counts:\n%s\nwant:\n%s", buf.String(), want)
	}
	for n, s := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := FormatCount(n); got != s {
			t.Errorf("FormatCount(%d) = %q, want %q", n, got, s)
		}
	}
}

func TestFormatDate(t *testing.T) {
	for d, want := range map[int32]string{20200101: "2020-01-01", 19991231: "1999-12-31", 20141111: "2014-11-11"} {
		if got := FormatDate(d); got != want {
			t.Errorf("FormatDate(%d) = %q, want %q", d, got, want)
		}
	}
}

func TestInspect(t *testing.T) {
	path := tempH5(t, "inspect.h5")
	if err := WritePanel(path, knownPanel(4, 120)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Inspect(path, Options{SeqLen: 10}, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// A sequence ends no earlier than day SeqLen-1 (10 days of history) and
	// no later than day D-1-5 (a 5-day label): the end days inspect prints
	// are these, not the split's bounds (2020-01-01 and 2020-06-16).
	days := TradingDays(20200101, 120)
	for _, want := range []string{
		"features:  [4 tickers, 120 days, 3 features] float32",
		"horizons [1 5] days",
		"dates:     2020-01-01 .. 2020-06-16",
		"train  end days " + FormatDate(days[9]) + "..2020-04-20: 210 sequences",
		"val    end days 2020-04-28..2020-05-14: 52 sequences",
		"test   end days 2020-05-22.." + FormatDate(days[120-1-5]) + ": 52 sequences",
		"groups:    2: G0 (2) G1 (2)",
		"missing:   61 of 480 feature rows",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

// inspectShortPanel runs Inspect with seqLen on a 120-day panel of 4
// tickers and returns what it wrote and its error.
func inspectShortPanel(t *testing.T, seqLen int) (string, error) {
	t.Helper()
	path := tempH5(t, "short.h5")
	if err := WritePanel(path, knownPanel(4, 120)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := Inspect(path, Options{SeqLen: seqLen}, &buf)
	return buf.String(), err
}

// TestInspectSeqLenLongerThanFile: a window longer than the file (the CLI's
// default 2000 on a short panel) still gets the schema written, then one line
// on the window, and the error.
func TestInspectSeqLenLongerThanFile(t *testing.T) {
	out, err := inspectShortPanel(t, 2000)
	var sle *SeqLenError
	if !errors.As(err, &sle) || sle.SeqLen != 2000 || sle.Max != 120 {
		t.Fatalf("Inspect with --seq-len 2000 on 120 days: err %v, want a *SeqLenError (2000 > 120)", err)
	}
	if !strings.Contains(err.Error(), "--seq-len 2000 longer than any series (120 days in the file)") {
		t.Errorf("error %q does not say what is wrong", err)
	}
	for _, want := range []string{
		"features:  [4 tickers, 120 days, 3 features] float32",
		"dates:     2020-01-01 .. 2020-06-16",
		"seq-len:   2000: no sequence fits (120 days in the file); split counts need a shorter --seq-len",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sequences") && !strings.Contains(out, "no sequence fits") || strings.Contains(out, "train  end days") {
		t.Errorf("inspect printed split counts for a window that fits nowhere:\n%s", out)
	}
}

// TestInspectEmptySplit: a window that fits the file but leaves a split
// without sequences also gets the schema, a line naming the split, and the
// error (*EmptySplitError).
func TestInspectEmptySplit(t *testing.T) {
	out, err := inspectShortPanel(t, 100)
	var ese *EmptySplitError
	if !errors.As(err, &ese) || ese.Split != "train" {
		t.Fatalf("Inspect with --seq-len 100 on 120 days: err %v, want an *EmptySplitError for train", err)
	}
	for _, want := range []string{
		"features:  [4 tickers, 120 days, 3 features] float32",
		"seq-len:   100: split train is empty: no valid sequence of 100 days",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
}
