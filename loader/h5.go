package loader

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"gonum.org/v1/hdf5"
)

// HDF5 1.10 serialises every call behind one global lock and the Debian build
// is not guaranteed thread-safe, so every HDF5 call of this package (readers,
// writers, tests) runs on one goroutine locked to its OS thread. h5do hands a
// closure to that goroutine and waits for it. Closures must not call h5do
// themselves (that would deadlock): helpers named *H5 expect to already run
// on the worker.

var (
	h5once  sync.Once
	h5queue chan func()
)

func h5do(fn func() error) error {
	h5once.Do(func() {
		h5queue = make(chan func())
		go func() {
			runtime.LockOSThread()
			// Errors come back as values (h5Cause), never as a dump on stderr.
			_ = silenceH5()
			for f := range h5queue {
				f()
			}
		}()
	})
	done := make(chan error, 1)
	h5queue <- func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("loader: internal error in HDF5 call: %v", r)
			}
		}()
		done <- fn()
	}
	return <-done
}

// namedTypes maps predefined HDF5 types to the names used in error messages.
var namedTypes = []struct {
	t    *hdf5.Datatype
	name string
}{
	{hdf5.T_IEEE_F32LE, "float32"},
	{hdf5.T_IEEE_F64LE, "float64"},
	{hdf5.T_IEEE_F32BE, "float32 big-endian"},
	{hdf5.T_IEEE_F64BE, "float64 big-endian"},
	{hdf5.T_STD_I8LE, "int8"},
	{hdf5.T_STD_I16LE, "int16"},
	{hdf5.T_STD_I32LE, "int32"},
	{hdf5.T_STD_I64LE, "int64"},
	{hdf5.T_STD_U8LE, "uint8"},
	{hdf5.T_STD_U16LE, "uint16"},
	{hdf5.T_STD_U32LE, "uint32"},
	{hdf5.T_STD_U64LE, "uint64"},
	{hdf5.T_STD_I32BE, "int32 big-endian"},
	{hdf5.T_STD_I64BE, "int64 big-endian"},
}

// typeNameH5 describes a datatype for error messages ("int64", "string(8)").
func typeNameH5(dt *hdf5.Datatype) string {
	for _, nt := range namedTypes {
		if dt.Equal(nt.t) {
			return nt.name
		}
	}
	switch dt.Class() {
	case hdf5.T_STRING:
		if isVarStringH5(dt) {
			return "variable-length string"
		}
		return fmt.Sprintf("string(%d)", dt.Size())
	case hdf5.T_FLOAT:
		if dt.Size() == 4 || dt.Size() == 8 {
			return fmt.Sprintf("a %d-byte float in another layout than this machine's IEEE float (byte order or bit fields; damaged file?)", dt.Size())
		}
		return fmt.Sprintf("float (%d bytes)", dt.Size())
	case hdf5.T_INTEGER:
		return fmt.Sprintf("integer (%d bytes)", dt.Size())
	case hdf5.T_COMPOUND:
		return "compound"
	case hdf5.T_VLEN:
		return "variable-length"
	case hdf5.T_ARRAY:
		return "array"
	case hdf5.T_ENUM:
		return "enum"
	case hdf5.T_OPAQUE:
		return "opaque"
	case hdf5.T_REFERENCE:
		return "reference"
	case hdf5.T_BITFIELD:
		return "bitfield"
	}
	return fmt.Sprintf("type class %d", int(dt.Class()))
}

func isVarStringH5(dt *hdf5.Datatype) bool {
	vl := hdf5.VarLenType{Datatype: *dt}
	return vl.IsVariableStr()
}

// dsInfo is what Open learns about one dataset before reading it.
type dsInfo struct {
	name  string // "/features"
	ds    *hdf5.Dataset
	dtype *hdf5.Datatype
	dims  []int
}

func (i *dsInfo) close() {
	if i == nil {
		return
	}
	if i.dtype != nil {
		i.dtype.Close()
	}
	if i.ds != nil {
		i.ds.Close()
	}
}

func (i *dsInfo) size() int {
	n := 1
	for _, d := range i.dims {
		n *= d
	}
	return n
}

// physicalMemory is this machine's RAM in bytes (0 when unknown).
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// allocCount is the number of elements of size elem bytes a whole read of the
// dataset needs, or an error naming the dataset when its shape overflows or
// needs more than the machine's memory: a damaged shape (one flipped byte can
// make a dimension 10¹²) must be refused, not allocated (Go cannot recover
// from running out of memory).
func (i *dsInfo) allocCount(elem int) (int, error) {
	n := int64(1)
	for _, d := range i.dims {
		if d < 0 || (d > 0 && n > math.MaxInt64/int64(elem)/int64(d)) {
			return 0, fmt.Errorf("%s: shape %v is too large to read (damaged file?)", i.name, i.dims)
		}
		n *= int64(d)
	}
	if mem := physicalMemory(); mem > 0 && n*int64(elem) > mem {
		return 0, fmt.Errorf("%s: shape %v needs %.1f GiB, more than this machine's memory (%.1f GiB): the file is damaged or too large to load",
			i.name, i.dims, float64(n*int64(elem))/(1<<30), float64(mem)/(1<<30))
	}
	return int(n), nil
}

var errMissing = errors.New("missing")

// openDatasetH5 opens name (without the leading slash) and reads its type and
// shape. A missing dataset gives errMissing.
func openDatasetH5(f *hdf5.File, name string, dapl *hdf5.PropList) (*dsInfo, error) {
	if !f.LinkExists(name) {
		return nil, errMissing
	}
	var (
		ds  *hdf5.Dataset
		err error
	)
	if dapl != nil {
		ds, err = f.OpenDatasetWith(name, dapl)
	} else {
		ds, err = f.OpenDataset(name)
	}
	if err != nil {
		return nil, fmt.Errorf("not a dataset (%s)", h5Cause(err))
	}
	// A filter (compression) this HDF5 lacks would fail every read of the
	// data: say so now, in one line, instead of at the first read.
	if msg := missingFilterH5(ds); msg != "" {
		ds.Close()
		return nil, fmt.Errorf("%s", msg)
	}
	info := &dsInfo{name: "/" + name, ds: ds}
	info.dtype, err = ds.Datatype()
	if err != nil {
		info.close()
		return nil, fmt.Errorf("cannot read datatype: %s", h5Cause(err))
	}
	sp := ds.Space()
	if sp == nil {
		info.close()
		return nil, fmt.Errorf("cannot read dataspace")
	}
	defer sp.Close()
	dims, _, err := sp.SimpleExtentDims()
	if err != nil {
		info.close()
		return nil, fmt.Errorf("cannot read shape: %s", h5Cause(err))
	}
	for _, d := range dims {
		info.dims = append(info.dims, int(d))
	}
	if err := storageCheckH5(ds, info.name, info.dims, int(info.dtype.Size())); err != nil {
		info.close()
		return nil, err
	}
	return info, nil
}

// checkKind verifies the datatype and rank of a dataset.
// kind is "float32", "int32" or "string".
func (i *dsInfo) check(kind string, rank int) error {
	switch kind {
	case "float32":
		if !i.dtype.Equal(hdf5.T_NATIVE_FLOAT) {
			return fmt.Errorf("%s: want float32, got %s", i.name, typeNameH5(i.dtype))
		}
	case "int32":
		if !i.dtype.Equal(hdf5.T_NATIVE_INT32) {
			return fmt.Errorf("%s: want int32, got %s", i.name, typeNameH5(i.dtype))
		}
	case "string":
		if i.dtype.Class() != hdf5.T_STRING {
			return fmt.Errorf("%s: want fixed-length string, got %s", i.name, typeNameH5(i.dtype))
		}
		if isVarStringH5(i.dtype) {
			return fmt.Errorf("%s: variable-length strings are not supported, store fixed-length strings (numpy dtype \"S<n>\")", i.name)
		}
	}
	if len(i.dims) != rank {
		return fmt.Errorf("%s: want rank %d, got rank %d (shape %v)", i.name, rank, len(i.dims), i.dims)
	}
	return nil
}

func (i *dsInfo) readFloat32H5() ([]float32, error) {
	n, err := i.allocCount(4)
	if err != nil {
		return nil, err
	}
	buf := make([]float32, n)
	if len(buf) == 0 {
		return buf, nil
	}
	if err := i.ds.Read(&buf); err != nil {
		return nil, fmt.Errorf("%s: read: %s", i.name, h5Cause(err))
	}
	return buf, nil
}

func (i *dsInfo) readInt32H5() ([]int32, error) {
	n, err := i.allocCount(4)
	if err != nil {
		return nil, err
	}
	buf := make([]int32, n)
	if len(buf) == 0 {
		return buf, nil
	}
	if err := i.ds.Read(&buf); err != nil {
		return nil, fmt.Errorf("%s: read: %s", i.name, h5Cause(err))
	}
	return buf, nil
}

// readStringsH5 reads a rank-1 fixed-length string dataset, trimming NUL and
// space padding.
func (i *dsInfo) readStringsH5() ([]string, error) {
	w := int(i.dtype.Size())
	if w <= 0 {
		return nil, fmt.Errorf("%s: string size %d", i.name, w)
	}
	n, err := i.allocCount(w)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	raw := make([]byte, n*w)
	if err := i.ds.Read(&raw); err != nil {
		return nil, fmt.Errorf("%s: read: %s", i.name, h5Cause(err))
	}
	out := make([]string, n)
	for k := range out {
		s := raw[k*w : (k+1)*w]
		if j := strings.IndexByte(string(s), 0); j >= 0 {
			s = s[:j]
		}
		out[k] = strings.TrimRight(string(s), " ")
	}
	return out, nil
}

// readAttrInt32H5 reads an integer scalar attribute of the root group.
// ok is false when the attribute does not exist.
func readAttrInt32H5(root *hdf5.Group, name string) (v int32, ok bool, err error) {
	a, err := root.OpenAttribute(name)
	if err != nil {
		return 0, false, nil
	}
	defer a.Close()
	return readAttrInt32Checked(a, name)
}

func readAttrInt32Checked(a *hdf5.Attribute, name string) (int32, bool, error) {
	sp := a.Space()
	if sp == nil {
		return 0, true, fmt.Errorf("attribute %s: cannot read dataspace", name)
	}
	np := sp.SimpleExtentNPoints()
	sp.Close()
	if np != 1 {
		return 0, true, fmt.Errorf("attribute %s: want a scalar, got %d values", name, np)
	}
	// Check the type first: reading a string as an integer fails inside
	// HDF5's conversion code with a stack that says nothing useful.
	if desc, numeric := attrTypeH5(a); !numeric {
		return 0, true, fmt.Errorf("attribute %s: want an integer, got %s (write it as np.int32(...))", name, desc)
	}
	var v int32
	if err := a.Read(&v, hdf5.T_NATIVE_INT32); err != nil {
		return 0, true, fmt.Errorf("attribute %s: want an integer: %s", name, h5Cause(err))
	}
	return v, true, nil
}

// --- writing ---

func writeDatasetH5(f *hdf5.File, name string, dt *hdf5.Datatype, dims []int, chunk []int, data interface{}) error {
	udims := make([]uint, len(dims))
	for k, d := range dims {
		udims[k] = uint(d)
	}
	sp, err := hdf5.CreateSimpleDataspace(udims, nil)
	if err != nil {
		return fmt.Errorf("%s: dataspace: %s", name, h5Cause(err))
	}
	defer sp.Close()
	var ds *hdf5.Dataset
	if chunk != nil {
		pl, err := hdf5.NewPropList(hdf5.P_DATASET_CREATE)
		if err != nil {
			return fmt.Errorf("%s: %s", name, h5Cause(err))
		}
		defer pl.Close()
		uc := make([]uint, len(chunk))
		for k, c := range chunk {
			uc[k] = uint(c)
		}
		if err := pl.SetChunk(uc); err != nil {
			return fmt.Errorf("%s: chunk %v: %s", name, chunk, h5Cause(err))
		}
		ds, err = f.CreateDatasetWith(name, dt, sp, pl)
		if err != nil {
			return fmt.Errorf("%s: create: %s", name, h5Cause(err))
		}
	} else {
		ds, err = f.CreateDataset(name, dt, sp)
		if err != nil {
			return fmt.Errorf("%s: create: %s", name, h5Cause(err))
		}
	}
	defer ds.Close()
	if data == nil {
		return nil
	}
	if err := ds.Write(data); err != nil {
		return fmt.Errorf("%s: write: %s", name, h5Cause(err))
	}
	return nil
}

// writeStringsH5 writes a rank-1 fixed-length (NUL-padded) string dataset.
func writeStringsH5(f *hdf5.File, name string, strs []string) error {
	w := 1
	for _, s := range strs {
		if len(s) > w {
			w = len(s)
		}
	}
	dt, err := hdf5.T_C_S1.Copy()
	if err != nil {
		return err
	}
	defer dt.Close()
	if err := dt.SetSize(w); err != nil {
		return fmt.Errorf("%s: string size %d: %s", name, w, h5Cause(err))
	}
	raw := make([]byte, w*len(strs))
	for k, s := range strs {
		copy(raw[k*w:], s)
	}
	var data interface{}
	if len(raw) > 0 {
		data = &raw
	}
	return writeDatasetH5(f, name, dt, []int{len(strs)}, nil, data)
}

func writeAttrInt32H5(root *hdf5.Group, name string, v int32) error {
	sp, err := hdf5.CreateDataspace(hdf5.S_SCALAR)
	if err != nil {
		return err
	}
	defer sp.Close()
	a, err := root.CreateAttribute(name, hdf5.T_NATIVE_INT32, sp)
	if err != nil {
		return fmt.Errorf("attribute %s: %s", name, h5Cause(err))
	}
	defer a.Close()
	if err := a.Write(&v, hdf5.T_NATIVE_INT32); err != nil {
		return fmt.Errorf("attribute %s: %s", name, h5Cause(err))
	}
	return nil
}
