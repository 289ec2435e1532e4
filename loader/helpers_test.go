package loader

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/testenv"

	"gonum.org/v1/hdf5"
)

// knownPanel is a small panel with values that tests can predict:
// features[t,d,f] = t*1000 + d + f/100, returns[t,d,h] = 1 + (t+d+h)/1000
// (NaN for the last 20 days), and NaN feature rows at (1, 30) and (2, 0..59).
func knownPanel(T, D int) *Panel {
	F, H := 3, 2
	p := &Panel{
		Dates:        TradingDays(20200101, D),
		FeatureNames: []string{"a", "b", "c"},
		Horizons:     []int{1, 5},
		Features:     make([]float32, T*D*F),
		Returns:      make([]float32, T*D*H),
		BinEdges:     [][]float32{{0.9, 1.0, 1.05, 1.1, 1.2}, {0.8, 1.0, 1.1, 1.2, 1.3}},
		Groups:       make([]string, T),
	}
	for t := 0; t < T; t++ {
		p.Tickers = append(p.Tickers, fmt.Sprintf("T%d", t))
		p.Groups[t] = fmt.Sprintf("G%d", t%2)
		for d := 0; d < D; d++ {
			for f := 0; f < F; f++ {
				p.Features[(t*D+d)*F+f] = float32(t*1000+d) + float32(f)/100
			}
			for h := 0; h < H; h++ {
				r := float32(1 + float64(t+d+h)/1000)
				if d >= D-p.Horizons[len(p.Horizons)-1] {
					r = float32(math.NaN())
				}
				p.Returns[(t*D+d)*H+h] = r
			}
		}
	}
	nan := float32(math.NaN())
	if T > 1 && D > 30 {
		p.Features[(1*D+30)*F+1] = nan
	}
	if T > 2 && D > 60 {
		for d := 0; d < 60; d++ {
			p.Features[(2*D+d)*F] = nan
		}
	}
	return p
}

// h5item is one dataset of a hand-made (possibly malformed) file.
type h5item struct {
	name  string
	dtype *hdf5.Datatype // nil for fixed-length strings
	dims  []int
	data  interface{} // pointer to a slice, or []string
}

// writeItems writes items and int32 root attributes to path with gonum/hdf5.
func writeItems(t testing.TB, path string, items []h5item, attrs map[string]int32) {
	t.Helper()
	err := h5do(func() error {
		f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
		if err != nil {
			return err
		}
		defer f.Close()
		for _, it := range items {
			if s, ok := it.data.([]string); ok {
				if err := writeStringsH5(f, it.name, s); err != nil {
					return err
				}
				continue
			}
			if err := writeDatasetH5(f, it.name, it.dtype, it.dims, nil, it.data); err != nil {
				return err
			}
		}
		root, err := f.OpenGroup("/")
		if err != nil {
			return err
		}
		defer root.Close()
		for k, v := range attrs {
			if err := writeAttrInt32H5(root, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// panelItems returns the datasets of p as h5items, to be mutated by tests.
func panelItems(p *Panel) ([]h5item, map[string]int32) {
	T, D, F, H := len(p.Tickers), len(p.Dates), len(p.FeatureNames), len(p.Horizons)
	feats := append([]float32(nil), p.Features...)
	rets := append([]float32(nil), p.Returns...)
	dates := append([]int32(nil), p.Dates...)
	hz := make([]int32, H)
	for k, h := range p.Horizons {
		hz[k] = int32(h)
	}
	var edges []float32
	for _, e := range p.BinEdges {
		edges = append(edges, e...)
	}
	items := []h5item{
		{"features", hdf5.T_NATIVE_FLOAT, []int{T, D, F}, &feats},
		{"returns", hdf5.T_NATIVE_FLOAT, []int{T, D, H}, &rets},
		{"tickers", nil, nil, append([]string(nil), p.Tickers...)},
		{"feature_names", nil, nil, append([]string(nil), p.FeatureNames...)},
		{"dates", hdf5.T_NATIVE_INT32, []int{D}, &dates},
		{"horizons", hdf5.T_NATIVE_INT32, []int{H}, &hz},
		{"bin_edges", hdf5.T_NATIVE_FLOAT, []int{H, len(p.BinEdges[0])}, &edges},
	}
	return items, map[string]int32{"format_version": FormatVersion}
}

func replaceItem(items []h5item, it h5item) []h5item {
	out := append([]h5item(nil), items...)
	for k := range out {
		if out[k].name == it.name {
			out[k] = it
			return out
		}
	}
	return append(out, it)
}

func dropItem(items []h5item, name string) []h5item {
	var out []h5item
	for _, it := range items {
		if it.name != name {
			out = append(out, it)
		}
	}
	return out
}

// pythonH5 runs a Python snippet with the project's Python and h5py, skipping the
// test when either is missing (a failure under CI=true, where they must be).
func pythonH5(t *testing.T, script string, args ...string) {
	t.Helper()
	py := testenv.Python(t, "h5py", "numpy")
	out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

func tempH5(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error containing %q, got nil", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}
