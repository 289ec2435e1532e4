package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// captureStderrFD runs fn with file descriptor 2 (where the HDF5 C library
// prints its diagnostics) redirected to a file, and returns what was written.
func captureStderrFD(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "fd2-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			syscall.Dup3(saved, 2, 0)
			syscall.Close(saved)
		}()
		fn()
	}()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenH5ErrorsOneLine: files h5py writes that this HDF5 cannot read give
// one line naming the file, the dataset or attribute and the cause, and
// nothing on stderr (no HDF5-DIAG dump).
func TestOpenH5ErrorsOneLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.h5")
	if err := WritePanel(good, knownPanel(4, 120)); err != nil {
		t.Fatal(err)
	}
	// Rewrite the panel with h5py: /returns (only) with LZF, every big
	// dataset with gzip+shuffle, and format_version as a string.
	pythonH5(t, `
import sys, h5py, numpy as np
src, d = sys.argv[1], sys.argv[2]
def copy(dst, comp, **kw):
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for k in a.keys():
            v = a[k][()]
            if k in comp:
                b.create_dataset(k, data=v, **kw)
            else:
                b.create_dataset(k, data=v)
        for k, v in a.attrs.items():
            b.attrs[k] = v
copy(d + "/lzf.h5", ("returns",), compression="lzf")
copy(d + "/gzip.h5", ("features", "returns"), compression="gzip", shuffle=True)
copy(d + "/strver.h5", ())
with h5py.File(d + "/strver.h5", "a") as f:
    f.attrs["format_version"] = "1"
copy(d + "/floatver.h5", ())
with h5py.File(d + "/floatver.h5", "a") as f:
    f.attrs["format_version"] = np.float64(1)
`, good, dir)
	cases := []struct{ file, want string }{
		{"lzf.h5", "/returns: uses the LZF filter, which this HDF5 cannot decode; write it with gzip or without compression"},
		{"strver.h5", "attribute format_version: want an integer, got variable-length string (write it as np.int32(...))"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			var err error
			stderr := captureStderrFD(t, func() {
				for _, mode := range []string{"preload", "stream"} {
					var d *Dataset
					if d, err = Open(path, Options{SeqLen: 10, Mode: mode}); err == nil {
						d.Close()
					}
				}
			})
			if stderr != "" {
				t.Errorf("HDF5 printed to stderr:\n%s", stderr)
			}
			want := "loader: open " + path + ": " + c.want
			if err == nil || err.Error() != want {
				t.Errorf("error %v\nwant  %s", err, want)
			}
		})
	}
	// A float format_version converts to the integer, as it always did.
	if d, err := Open(filepath.Join(dir, "floatver.h5"), Options{SeqLen: 10}); err != nil {
		t.Errorf("float format_version: %v", err)
	} else {
		d.Close()
	}
	// gzip (deflate) and shuffle are built into HDF5: the check must not
	// refuse them, and the values read back are the panel's.
	for _, mode := range []string{"preload", "stream"} {
		d, err := Open(filepath.Join(dir, "gzip.h5"), Options{SeqLen: 10, Mode: mode})
		if err != nil {
			t.Fatalf("gzip panel (%s): %v", mode, err)
		}
		ref, err := Open(good, Options{SeqLen: 10, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		tr := d.Split("train")
		var ids []SeqID
		for i := int64(0); i < 8; i++ {
			ids = append(ids, tr.At(i*tr.Len()/8))
		}
		a := make([]float32, len(ids)*10*d.F)
		b := make([]float32, len(a))
		if err := d.ReadWindows(ids, a, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := ref.ReadWindows(ids, b, nil, nil); err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: gzip panel value %d: %v, want %v", mode, i, a[i], b[i])
			}
		}
		d.Close()
		ref.Close()
	}
}

// TestCauseFromStack turns HDF5 error stacks (as printed by HDF5 1.10.8 for
// the two faults of issue 13 and a full disk) into their one-line cause.
func TestCauseFromStack(t *testing.T) {
	lzf := "H5Dread\x1fcan't read data\x1e" +
		"H5D__read\x1fcan't read data\x1e" +
		"H5D__chunk_read\x1funable to read raw data chunk\x1e" +
		"H5D__chunk_lock\x1fdata pipeline read failed\x1e" +
		"H5Z_pipeline\x1frequired filter 'lzf' is not registered\x1e" +
		"H5PL_load\x1fsearch in path table failed\x1e" +
		"H5PL__find_plugin_in_path\x1fcan't open directory: /usr/lib/x86_64-linux-gnu/hdf5/serial/plugins\x1e"
	full := "H5Dwrite\x1fcan't write data\x1e" +
		"H5D__write\x1fcan't write data\x1e" +
		"H5FD_sec2_write\x1ffile write failed: time = Mon Nov 30 07:00:00 2026\n, filename = 'p.h5', file descriptor = 5, errno = 27, error message = 'File too large', buf = 0x7f, total write size = 4096\x1e"
	conv := "H5Aread\x1funable to read attribute\x1e" +
		"H5A__read\x1funable to convert between src and dst datatypes\x1e" +
		"H5T_path_find\x1fcan't find datatype conversion path\x1e" +
		"H5T__path_find_real\x1fno appropriate function for conversion path\x1e"
	fallback := errors.New("code -1")
	for stack, want := range map[string]string{
		lzf:  "uses the LZF filter, which this HDF5 cannot decode; write it with gzip or without compression",
		full: "File too large",
		conv: "no appropriate function for conversion path",
		"":   "code -1 (HDF5 gave no reason; the file may be damaged)",
	} {
		if got := causeFromStack(stack, fallback); got != want {
			t.Errorf("cause %q, want %q (stack %q)", got, want, stack)
		}
		if strings.Contains(causeFromStack(stack, fallback), "\n") {
			t.Errorf("cause of %q spans lines", stack)
		}
	}
	if got := filterMessage("", 32001); !strings.HasPrefix(got, "uses the Blosc filter,") {
		t.Errorf("filterMessage(32001) = %q", got)
	}
	if got := filterMessage("", 40000); !strings.HasPrefix(got, "uses the filter id 40000,") {
		t.Errorf("filterMessage(40000) = %q", got)
	}
}
