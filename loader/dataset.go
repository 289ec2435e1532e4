package loader

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/satrain/satrain/option"
	"gonum.org/v1/hdf5"
)

// Options configure Open.
type Options struct {
	SeqLen       int    // window length (days)
	ValSize      int    // size of the fixed validation subset (default 1000 when 0)
	Seed         int64  // seeds the validation subset
	TrainEnd     int32  // YYYYMMDD, first day of validation period; 0 = file attribute, else 70% of dates
	ValEnd       int32  // YYYYMMDD, first day of test period; 0 = file attribute, else 85% of dates
	Mode         string // "auto" (default), "preload", "stream"
	MemoryBudget int64  // bytes for preload in auto mode (default 8 GiB)

	// Embargo is the number of end days dropped before each split boundary;
	// 0 or anything below the longest horizon means the longest horizon.
	Embargo int
	// ChunkCache is the HDF5 chunk cache for /features in stream mode:
	// 0 = auto (the whole dataset when it fits in 512 MiB, else none, so that
	// random windows never pull whole chunks through a thrashing cache),
	// < 0 = none, > 0 = that many bytes.
	ChunkCache int64
}

const (
	defaultValSize      = 1000
	defaultMemoryBudget = 8 << 30
	autoChunkCacheLimit = 512 << 20
)

// Dataset is an opened, validated panel file. Its methods are safe for
// concurrent use; HDF5 access is serialised on one internal goroutine.
type Dataset struct {
	path      string
	opt       Options
	identity  string
	mode      string
	T, D, F   int
	H, B      int
	tickers   []string
	dates     []int32
	names     []string
	horizons  []int
	groups    []string
	edges     [][]float32
	centers   [][]float32
	returns   []float32 // [T][D][H], always in memory
	features  []float32 // [T][D][F] in preload mode
	validEnd  []uint64  // bitmap over t*D+d: complete window and all labels known
	rowsMiss  int64     // feature rows that are missing (NaN/Inf)
	fitEnd    int32     // the file's train_end: its normalisation and bins were fitted on the days before (0: not recorded)
	infValues int64     // Inf feature values seen (treated as missing)
	maxRun    int       // longest run of complete rows over tickers

	trainStart, valStart, testStart int // day indices of split boundaries (first day of each period)
	embargo                         int
	splits                          map[string]*Split
	valSet                          []SeqID

	// stream mode (touched only on the HDF5 goroutine)
	file    *hdf5.File
	fds     *hdf5.Dataset
	fspace  *hdf5.Dataspace
	mspaces map[int]*hdf5.Dataspace // memory dataspaces [1,n,F] by n
	scratch []float32
	closed  bool
}

func openErr(path, format string, args ...interface{}) error {
	return fmt.Errorf("loader: open %s: "+format, append([]interface{}{path}, args...)...)
}

// Open opens and validates a panel file, computes the splits and, depending on
// opt.Mode, loads the features into memory.
func Open(path string, opt Options) (*Dataset, error) {
	if opt.ValSize == 0 {
		opt.ValSize = defaultValSize
	}
	if opt.MemoryBudget == 0 {
		opt.MemoryBudget = defaultMemoryBudget
	}
	if opt.Mode == "" {
		opt.Mode = "auto"
	}
	switch opt.Mode {
	case "auto", "preload", "stream":
	default:
		return nil, openErr(path, "mode %q: want auto, preload or stream", opt.Mode)
	}
	if opt.SeqLen < 1 {
		return nil, option.Errorf("loader: open %s: {seq-len} %d: must be at least 1", path, opt.SeqLen)
	}
	if opt.ValSize < 0 {
		return nil, openErr(path, "validation size %d: must not be negative", opt.ValSize)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("loader: open %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, openErr(path, "is a directory")
	}
	d := &Dataset{path: path, opt: opt}
	var attrTrain, attrVal int32
	err = h5do(func() error {
		var err error
		attrTrain, attrVal, err = d.loadH5(st.Size())
		return err
	})
	if err != nil {
		return nil, openErr(path, "%v", err)
	}
	if err := d.computeSplits(attrTrain, attrVal); err != nil {
		d.Close()
		return nil, fmt.Errorf("loader: open %s: %w", path, err)
	}
	return d, nil
}

// loadH5 reads and validates the schema, the small datasets and the returns,
// scans the features for missing rows and, in preload mode, keeps them.
func (d *Dataset) loadH5(fileSize int64) (trainEnd, valEnd int32, err error) {
	if !hdf5.IsHDF5(d.path) {
		return 0, 0, fmt.Errorf("not an HDF5 file")
	}
	f, err := hdf5.OpenFile(d.path, hdf5.F_ACC_RDONLY)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot open HDF5 file: %s", h5Cause(err))
	}
	keep := false
	defer func() {
		if !keep {
			d.closeH5()
			f.Close()
		}
	}()
	root, err := f.OpenGroup("/")
	if err != nil {
		return 0, 0, fmt.Errorf("cannot open root group: %v", err)
	}
	defer root.Close()
	ver, ok, err := readAttrInt32H5(root, "format_version")
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, fmt.Errorf("missing root attribute format_version (want %d)", FormatVersion)
	}
	if ver != FormatVersion {
		return 0, 0, fmt.Errorf("attribute format_version: want %d, got %d", FormatVersion, ver)
	}
	if trainEnd, _, err = readAttrInt32H5(root, "train_end"); err != nil {
		return 0, 0, err
	}
	if valEnd, _, err = readAttrInt32H5(root, "val_end"); err != nil {
		return 0, 0, err
	}

	open := func(name, kind string, rank int, optional bool) (*dsInfo, error) {
		info, err := openDatasetH5(f, name, nil)
		if err == errMissing {
			if optional {
				return nil, nil
			}
			return nil, fmt.Errorf("missing dataset /%s", name)
		}
		if err != nil {
			return nil, fmt.Errorf("/%s: %v", name, err)
		}
		if err := info.check(kind, rank); err != nil {
			info.close()
			return nil, err
		}
		return info, nil
	}
	var infos []*dsInfo
	defer func() {
		for _, i := range infos {
			i.close()
		}
	}()
	get := func(name, kind string, rank int, optional bool) *dsInfo {
		if err != nil {
			return nil
		}
		var i *dsInfo
		i, err = open(name, kind, rank, optional)
		if i != nil {
			infos = append(infos, i)
		}
		return i
	}
	feat := get("features", "float32", 3, false)
	ret := get("returns", "float32", 3, false)
	tick := get("tickers", "string", 1, false)
	dates := get("dates", "int32", 1, false)
	hor := get("horizons", "int32", 1, false)
	edges := get("bin_edges", "float32", 2, false)
	names := get("feature_names", "string", 1, true)
	groups := get("groups", "string", 1, true)
	if err != nil {
		return 0, 0, err
	}

	T, D, F := feat.dims[0], feat.dims[1], feat.dims[2]
	if T == 0 || D == 0 || F == 0 {
		return 0, 0, fmt.Errorf("/features: empty shape %v", feat.dims)
	}
	H := ret.dims[2]
	if ret.dims[0] != T || ret.dims[1] != D {
		return 0, 0, fmt.Errorf("shape mismatch: /returns is %v, /features is %v (want [%d %d H])", ret.dims, feat.dims, T, D)
	}
	if tick.dims[0] != T {
		return 0, 0, fmt.Errorf("shape mismatch: /tickers has %d entries, /features has %d tickers", tick.dims[0], T)
	}
	if dates.dims[0] != D {
		return 0, 0, fmt.Errorf("shape mismatch: /dates has %d entries, /features has %d days", dates.dims[0], D)
	}
	if hor.dims[0] != H || H == 0 {
		return 0, 0, fmt.Errorf("shape mismatch: /horizons has %d entries, /returns has %d horizons", hor.dims[0], H)
	}
	if edges.dims[0] != H {
		return 0, 0, fmt.Errorf("shape mismatch: /bin_edges has %d rows, want one per horizon (%d)", edges.dims[0], H)
	}
	if edges.dims[1] < 3 {
		return 0, 0, fmt.Errorf("/bin_edges: %d edges per horizon, want at least 3 (2 bins)", edges.dims[1])
	}
	if names != nil && names.dims[0] != F {
		return 0, 0, fmt.Errorf("shape mismatch: /feature_names has %d entries, /features has %d features", names.dims[0], F)
	}
	if groups != nil && groups.dims[0] != T {
		return 0, 0, fmt.Errorf("shape mismatch: /groups has %d entries, /features has %d tickers", groups.dims[0], T)
	}
	d.T, d.D, d.F, d.H, d.B = T, D, F, H, edges.dims[1]-1

	if d.tickers, err = tick.readStringsH5(); err != nil {
		return 0, 0, err
	}
	seen := make(map[string]int, T)
	for k, s := range d.tickers {
		if s == "" {
			return 0, 0, fmt.Errorf("/tickers[%d]: empty name", k)
		}
		if j, dup := seen[s]; dup {
			return 0, 0, fmt.Errorf("/tickers: %q appears twice (entries %d and %d)", s, j, k)
		}
		seen[s] = k
	}
	if d.dates, err = dates.readInt32H5(); err != nil {
		return 0, 0, err
	}
	for k, v := range d.dates {
		if !validYMD(v) {
			return 0, 0, fmt.Errorf("/dates[%d] = %d: not a YYYYMMDD date", k, v)
		}
		if k > 0 && v <= d.dates[k-1] {
			return 0, 0, fmt.Errorf("/dates not increasing: [%d] = %d after [%d] = %d", k, v, k-1, d.dates[k-1])
		}
	}
	hz, err := hor.readInt32H5()
	if err != nil {
		return 0, 0, err
	}
	for k, h := range hz {
		if h < 1 || int(h) >= D {
			return 0, 0, fmt.Errorf("/horizons[%d] = %d: want 1..%d days", k, h, D-1)
		}
		if k > 0 && h <= hz[k-1] {
			return 0, 0, fmt.Errorf("/horizons not increasing: [%d] = %d after %d", k, h, hz[k-1])
		}
		d.horizons = append(d.horizons, int(h))
	}
	e, err := edges.readFloat32H5()
	if err != nil {
		return 0, 0, err
	}
	for h := 0; h < H; h++ {
		row := e[h*(d.B+1) : (h+1)*(d.B+1)]
		for b, x := range row {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return 0, 0, fmt.Errorf("/bin_edges[%d][%d] = %v: edges must be finite", h, b, x)
			}
			if b > 0 && !(x > row[b-1]) {
				return 0, 0, fmt.Errorf("/bin_edges[%d] not strictly increasing: [%d] = %v after %v", h, b, x, row[b-1])
			}
		}
		d.edges = append(d.edges, row)
		c := make([]float32, d.B)
		for b := range c {
			c[b] = (row[b] + row[b+1]) / 2
		}
		d.centers = append(d.centers, c)
	}
	if names != nil {
		if d.names, err = names.readStringsH5(); err != nil {
			return 0, 0, err
		}
	} else {
		for k := 0; k < F; k++ {
			d.names = append(d.names, fmt.Sprintf("f%d", k))
		}
	}
	if groups != nil {
		if d.groups, err = groups.readStringsH5(); err != nil {
			return 0, 0, err
		}
	}
	if d.returns, err = ret.readFloat32H5(); err != nil {
		return 0, 0, err
	}

	featBytes := int64(T) * int64(D) * int64(F) * 4
	switch d.opt.Mode {
	case "preload":
		d.mode = "preload"
	case "stream":
		d.mode = "stream"
	default:
		if featBytes+int64(len(d.returns))*4 <= d.opt.MemoryBudget {
			d.mode = "preload"
		} else {
			d.mode = "stream"
		}
	}
	rowOK := make([]bool, T*D)
	if d.mode == "preload" {
		if d.features, err = feat.readFloat32H5(); err != nil {
			return 0, 0, err
		}
		d.scanRows(d.features, 0, T, rowOK)
	} else {
		// Scan in blocks of whole tickers (~64 MiB) with a memory dataspace of
		// the same shape as the file selection.
		per := D * F
		tb := (64 << 20) / (per * 4)
		if tb < 1 {
			tb = 1
		}
		buf := make([]float32, 0)
		fs := feat.ds.Space()
		defer fs.Close()
		for t0 := 0; t0 < T; t0 += tb {
			n := tb
			if t0+n > T {
				n = T - t0
			}
			if cap(buf) < n*per {
				buf = make([]float32, n*per)
			}
			buf = buf[:n*per]
			if err := fs.SelectHyperslab([]uint{uint(t0), 0, 0}, nil, []uint{uint(n), uint(D), uint(F)}, nil); err != nil {
				return 0, 0, fmt.Errorf("/features: select: %v", err)
			}
			ms, err := hdf5.CreateSimpleDataspace([]uint{uint(n), uint(D), uint(F)}, nil)
			if err != nil {
				return 0, 0, err
			}
			if err = feat.ds.ReadSubset(&buf, ms, fs); err != nil {
				err = fmt.Errorf("/features: read tickers %d..%d: %s", t0, t0+n-1, h5Cause(err)) // before Close clears the stack
			}
			ms.Close()
			if err != nil {
				return 0, 0, err
			}
			d.scanRows(buf, t0, n, rowOK)
		}
		if err := d.openStreamH5(f, featBytes); err != nil {
			return 0, 0, err
		}
		keep = true
	}
	d.markValid(rowOK)
	d.identity = d.computeIdentity(fileSize)
	return trainEnd, valEnd, nil
}

func validYMD(v int32) bool {
	y, m, day := v/10000, (v/100)%100, v%100
	return y >= 1000 && y <= 9999 && m >= 1 && m <= 12 && day >= 1 && day <= 31
}

// scanRows marks complete feature rows (every value finite) of tickers
// t0..t0+n-1 held in buf.
func (d *Dataset) scanRows(buf []float32, t0, n int, rowOK []bool) {
	F := d.F
	for t := 0; t < n; t++ {
		for day := 0; day < d.D; day++ {
			row := buf[(t*d.D+day)*F : (t*d.D+day+1)*F]
			ok := true
			for _, x := range row {
				if x != x {
					ok = false
				} else if x > math.MaxFloat32 || x < -math.MaxFloat32 {
					ok = false
					d.infValues++
				}
			}
			rowOK[(t0+t)*d.D+day] = ok
			if !ok {
				d.rowsMiss++
			}
		}
	}
}

// markValid builds the bitmap of valid sequence end days: SeqLen complete
// rows ending there and every horizon's return finite.
func (d *Dataset) markValid(rowOK []bool) {
	d.validEnd = make([]uint64, (d.T*d.D+63)/64)
	L := d.opt.SeqLen
	for t := 0; t < d.T; t++ {
		run := 0
		for day := 0; day < d.D; day++ {
			i := t*d.D + day
			if rowOK[i] {
				run++
			} else {
				run = 0
			}
			if run > d.maxRun {
				d.maxRun = run
			}
			if run < L {
				continue
			}
			ok := true
			for _, r := range d.returns[i*d.H : (i+1)*d.H] {
				if r != r || r > math.MaxFloat32 || r < -math.MaxFloat32 {
					ok = false
					break
				}
			}
			if ok {
				d.validEnd[i>>6] |= 1 << (uint(i) & 63)
			}
		}
	}
}

func (d *Dataset) isValid(t, day int) bool {
	i := t*d.D + day
	return d.validEnd[i>>6]&(1<<(uint(i)&63)) != 0
}

func (d *Dataset) computeIdentity(fileSize int64) string {
	h := sha256.New()
	w := func(v interface{}) { binary.Write(h, binary.LittleEndian, v) }
	w(int64(FormatVersion))
	w([]int64{int64(d.T), int64(d.D), int64(d.F), int64(d.H), int64(d.B), fileSize})
	for _, s := range d.tickers {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, s := range d.names {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	w(d.dates)
	for _, x := range d.horizons {
		w(int64(x))
	}
	for _, e := range d.edges {
		w(e)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// openStreamH5 keeps /features open with a sized chunk cache for hyperslab
// reads.
func (d *Dataset) openStreamH5(f *hdf5.File, featBytes int64) error {
	cache := d.opt.ChunkCache
	if cache == 0 {
		if featBytes <= autoChunkCacheLimit {
			cache = featBytes + featBytes/8 + (2 << 20)
		} else {
			cache = -1
		}
	}
	if cache < 0 {
		cache = 0
	}
	dapl, err := hdf5.NewPropList(hdf5.P_DATASET_ACCESS)
	if err != nil {
		return err
	}
	defer dapl.Close()
	// Slots: a prime well above the number of chunks that fit (>= 1 MiB each).
	slots := int(cache>>20)*100 + 521
	slots = nextPrime(slots)
	if err := dapl.SetChunkCache(slots, int(cache), 0.75); err != nil {
		return fmt.Errorf("/features: chunk cache: %v", err)
	}
	info, err := openDatasetH5(f, "features", dapl)
	if err != nil {
		return fmt.Errorf("/features: reopen: %v", err)
	}
	info.dtype.Close()
	d.file = f
	d.fds = info.ds
	d.fspace = info.ds.Space()
	d.mspaces = map[int]*hdf5.Dataspace{}
	return nil
}

func nextPrime(n int) int {
	for ; ; n++ {
		prime := n > 1
		for k := 2; k*k <= n; k++ {
			if n%k == 0 {
				prime = false
				break
			}
		}
		if prime {
			return n
		}
	}
}

func (d *Dataset) closeH5() {
	for _, ms := range d.mspaces {
		ms.Close()
	}
	d.mspaces = nil
	if d.fspace != nil {
		d.fspace.Close()
		d.fspace = nil
	}
	if d.fds != nil {
		d.fds.Close()
		d.fds = nil
	}
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
}

// Close releases the file (stream mode) and memory. Safe to call twice.
func (d *Dataset) Close() error {
	err := h5do(func() error {
		if d.closed {
			return nil
		}
		d.closed = true
		d.closeH5()
		return nil
	})
	d.features = nil
	return err
}

func (d *Dataset) Path() string            { return d.path }
func (d *Dataset) Identity() string        { return d.identity }
func (d *Dataset) SeqLen() int             { return d.opt.SeqLen }
func (d *Dataset) NumFeatures() int        { return d.F }
func (d *Dataset) FeatureNames() []string  { return append([]string(nil), d.names...) }
func (d *Dataset) Horizons() []int         { return append([]int(nil), d.horizons...) }
func (d *Dataset) NumBins() int            { return d.B }
func (d *Dataset) BinEdges() [][]float32   { return copy2(d.edges) }
func (d *Dataset) BinCenters() [][]float32 { return copy2(d.centers) }
func (d *Dataset) Tickers() []string       { return append([]string(nil), d.tickers...) }
func (d *Dataset) Dates() []int32          { return append([]int32(nil), d.dates...) }
func (d *Dataset) Mode() string            { return d.mode }
func (d *Dataset) NumHorizons() int        { return d.H }
func (d *Dataset) Embargo() int            { return d.embargo }
func (d *Dataset) MissingRows() int64      { return d.rowsMiss }
func (d *Dataset) Groups() []string {
	if d.groups == nil {
		return nil
	}
	return append([]string(nil), d.groups...)
}

func copy2(x [][]float32) [][]float32 {
	out := make([][]float32, len(x))
	for k := range x {
		out[k] = append([]float32(nil), x[k]...)
	}
	return out
}

// HorizonRangeError is a horizon index outside a panel's horizons.
type HorizonRangeError struct {
	Index    int    // the index asked for
	Path     string // the panel
	Horizons []int  // its horizons, in days
}

func (e *HorizonRangeError) Error() string {
	return fmt.Sprintf("horizon index %d out of range: %s has %d horizons (%v days; 0..%d)", e.Index, e.Path, len(e.Horizons), e.Horizons, len(e.Horizons)-1)
}

// CheckHorizon returns a *HorizonRangeError when h is not an index of
// horizons (the panel at path's horizons, in days), else nil.
func CheckHorizon(h int, path string, horizons []int) error {
	if h < 0 || h >= len(horizons) {
		return &HorizonRangeError{Index: h, Path: path, Horizons: horizons}
	}
	return nil
}

// TrailingVolatility is the realised volatility of ticker t known at the
// close of day: the sample standard deviation (n-1) of the log 1-day
// returns ln(close[j+1]/close[j]) for j = day-window .. day-1, read from
// the panel's 1-day horizon of /returns. Each of those returns is known at
// the close of j+1 <= day, so the figure uses nothing after day. Units:
// per day, a log return (multiply by sqrt(252) for an annual figure).
//
// ok is false when the panel has no 1-day horizon, day < window, or fewer
// than window/2+1 of the window's returns are known (missing prices are
// NaN in /returns and are skipped).
func (d *Dataset) TrailingVolatility(t, day, window int) (vol float64, ok bool) {
	h := slices.Index(d.horizons, 1)
	if h < 0 || window < 2 || t < 0 || t >= d.T || day < window || day >= d.D {
		return 0, false
	}
	var n int
	var sum, sumSq float64
	for j := day - window; j < day; j++ {
		r := float64(d.returns[(t*d.D+j)*d.H+h])
		if math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
			continue
		}
		l := math.Log(r)
		n++
		sum += l
		sumSq += l * l
	}
	if n < window/2+1 {
		return 0, false
	}
	m := sum / float64(n)
	v := (sumSq - float64(n)*m*m) / float64(n-1)
	return math.Sqrt(max(0, v)), true
}
