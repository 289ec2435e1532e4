package loader

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/hdf5"

	"github.com/satrain/satrain/internal/atomicfile"
)

// FormatVersion is the value of the root attribute "format_version" this
// package writes and accepts.
const FormatVersion = 1

// DefaultHorizons are the forward-return horizons (trading days) used when a
// tool is given none.
var DefaultHorizons = []int{1, 5, 10, 20}

// Panel is a whole market panel in memory: the content of one file.
// Features is [T][D][F] row-major, Returns [T][D][H].
type Panel struct {
	Tickers      []string
	Dates        []int32 // YYYYMMDD, strictly increasing
	FeatureNames []string
	Horizons     []int
	Groups       []string // per ticker; nil for none
	Features     []float32
	Returns      []float32
	BinEdges     [][]float32 // [H][B+1]
	TrainEnd     int32       // written as attribute when non-zero
	ValEnd       int32
}

// chunkShape picks the storage chunk of a [T,D,K] dataset: chunks span days
// (up to 8192 of them) and enough tickers to reach about 1 MiB.
func chunkShape(t, d, k int) []int {
	cd := d
	if cd > 8192 {
		cd = 8192
	}
	row := cd * k * 4
	ct := (1<<20 + row - 1) / row
	if ct > t {
		ct = t
	}
	if ct < 1 {
		ct = 1
	}
	if cd < 1 {
		cd = 1
	}
	return []int{ct, cd, k}
}

func (p *Panel) check() error {
	T, D, F, H := len(p.Tickers), len(p.Dates), len(p.FeatureNames), len(p.Horizons)
	if T == 0 || D == 0 || F == 0 || H == 0 {
		return fmt.Errorf("empty panel: %d tickers, %d dates, %d features, %d horizons", T, D, F, H)
	}
	if len(p.Features) != T*D*F {
		return fmt.Errorf("features has %d values, want %d", len(p.Features), T*D*F)
	}
	if len(p.Returns) != T*D*H {
		return fmt.Errorf("returns has %d values, want %d", len(p.Returns), T*D*H)
	}
	if len(p.BinEdges) != H {
		return fmt.Errorf("bin edges for %d horizons, want %d", len(p.BinEdges), H)
	}
	for h := range p.BinEdges {
		if len(p.BinEdges[h]) != len(p.BinEdges[0]) || len(p.BinEdges[h]) < 3 {
			return fmt.Errorf("bin edges of horizon %d: %d values", p.Horizons[h], len(p.BinEdges[h]))
		}
	}
	if p.Groups != nil && len(p.Groups) != T {
		return fmt.Errorf("%d groups for %d tickers", len(p.Groups), T)
	}
	return nil
}

// WritePanel writes p to path in the satrain panel format (see docs/FORMAT.md),
// replacing any existing file atomically: the panel is written to a
// temporary file beside path, fsynced and renamed over it, so a failed write
// (a full disk, an interrupted process) leaves the previous file intact and
// no partial one. It does not validate the content beyond shapes: Open does
// that.
func WritePanel(path string, p *Panel) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("loader: write %s: %v", path, err)
	}
	err := atomicfile.WriteNamed(path, 0o644, func(tmp string) error {
		return h5do(func() error { return writePanelH5(tmp, p) })
	})
	if err != nil {
		return fmt.Errorf("loader: write %s: %v (previous file left intact)", path, err)
	}
	return nil
}

func writePanelH5(path string, p *Panel) (err error) {
	f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
	if err != nil {
		return fmt.Errorf("create: %s", h5Cause(err))
	}
	defer func() {
		// Closing writes what HDF5 still buffers: its failure is the write's.
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %s", h5Cause(cerr))
		}
	}()
	return writePanelContentH5(f, p)
}

func writePanelContentH5(f *hdf5.File, p *Panel) error {
	T, D, F, H := len(p.Tickers), len(p.Dates), len(p.FeatureNames), len(p.Horizons)
	B := len(p.BinEdges[0]) - 1
	if err := writeDatasetH5(f, "features", hdf5.T_NATIVE_FLOAT, []int{T, D, F}, chunkShape(T, D, F), &p.Features); err != nil {
		return err
	}
	if err := writeDatasetH5(f, "returns", hdf5.T_NATIVE_FLOAT, []int{T, D, H}, chunkShape(T, D, H), &p.Returns); err != nil {
		return err
	}
	if err := writeStringsH5(f, "tickers", p.Tickers); err != nil {
		return err
	}
	if err := writeStringsH5(f, "feature_names", p.FeatureNames); err != nil {
		return err
	}
	if p.Groups != nil {
		if err := writeStringsH5(f, "groups", p.Groups); err != nil {
			return err
		}
	}
	dates := append([]int32(nil), p.Dates...)
	if err := writeDatasetH5(f, "dates", hdf5.T_NATIVE_INT32, []int{D}, nil, &dates); err != nil {
		return err
	}
	hz := make([]int32, H)
	for k, h := range p.Horizons {
		hz[k] = int32(h)
	}
	if err := writeDatasetH5(f, "horizons", hdf5.T_NATIVE_INT32, []int{H}, nil, &hz); err != nil {
		return err
	}
	edges := make([]float32, 0, H*(B+1))
	for _, e := range p.BinEdges {
		edges = append(edges, e...)
	}
	if err := writeDatasetH5(f, "bin_edges", hdf5.T_NATIVE_FLOAT, []int{H, B + 1}, nil, &edges); err != nil {
		return err
	}
	root, err := f.OpenGroup("/")
	if err != nil {
		return fmt.Errorf("open root group: %s", h5Cause(err))
	}
	defer root.Close()
	if err := writeAttrInt32H5(root, "format_version", FormatVersion); err != nil {
		return err
	}
	if p.TrainEnd != 0 {
		if err := writeAttrInt32H5(root, "train_end", p.TrainEnd); err != nil {
			return err
		}
	}
	if p.ValEnd != 0 {
		if err := writeAttrInt32H5(root, "val_end", p.ValEnd); err != nil {
			return err
		}
	}
	if err := f.Flush(hdf5.F_SCOPE_GLOBAL); err != nil {
		return fmt.Errorf("flush: %s", h5Cause(err))
	}
	return nil
}

// QuantileEdges computes B+1 strictly increasing bin edges from a sample of
// returns (non-finite values are ignored): interior edges at the k/B
// quantiles, outer edges at the 0.5% and 99.5% quantiles so the centres of the
// outer bins are not set by outliers. Ties (common in real prices) are broken
// by nudging each edge just above its predecessor.
func QuantileEdges(sample []float32, bins int) ([]float32, error) {
	if bins < 2 {
		return nil, fmt.Errorf("need at least 2 bins, got %d", bins)
	}
	v := make([]float64, 0, len(sample))
	for _, x := range sample {
		if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
			v = append(v, float64(x))
		}
	}
	if len(v) < bins {
		return nil, fmt.Errorf("only %d finite returns to place %d bins", len(v), bins)
	}
	sort.Float64s(v)
	q := func(p float64) float64 {
		pos := p * float64(len(v)-1)
		i := int(pos)
		if i >= len(v)-1 {
			return v[len(v)-1]
		}
		fr := pos - float64(i)
		return v[i]*(1-fr) + v[i+1]*fr
	}
	edges := make([]float32, bins+1)
	for k := 0; k <= bins; k++ {
		p := float64(k) / float64(bins)
		if k == 0 {
			p = 0.005
		} else if k == bins {
			p = 0.995
		}
		edges[k] = float32(q(p))
	}
	for k := 1; k <= bins; k++ {
		min := edges[k-1] + float32(math.Max(1e-6, math.Abs(float64(edges[k-1]))*1e-6))
		if !(edges[k] >= min) {
			edges[k] = min
		}
	}
	return edges, nil
}

// binIndex returns the bin of r for edges e: the number of interior edges
// e[1..B-1] that are <= r, so values below e[0] land in bin 0 and values at or
// above e[B] in bin B-1.
func binIndex(e []float32, r float32) int {
	lo, hi := 1, len(e)-1 // search interior edges e[1:B]
	for lo < hi {
		m := (lo + hi) >> 1
		if e[m] <= r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}
