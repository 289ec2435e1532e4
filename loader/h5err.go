package loader

// HDF5 reports a failure by pushing records on a per-thread error stack and,
// unless told otherwise, printing that stack to stderr (the "HDF5-DIAG" dump).
// The worker thread of h5do turns the printing off; after a failed call,
// h5Cause turns the stack into one line. gonum/hdf5 exposes neither the stack
// nor a dataset's filter pipeline, hence this small cgo file.

/*
#cgo LDFLAGS: -lhdf5
#cgo linux,amd64 CFLAGS: -I/usr/lib/x86_64-linux-gnu/hdf5/serial/include
#cgo linux,amd64 LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial
#cgo linux,arm64 CFLAGS: -I/usr/lib/aarch64-linux-gnu/hdf5/serial/include
#cgo linux,arm64 LDFLAGS: -L/usr/lib/aarch64-linux-gnu/hdf5/serial
#cgo darwin CFLAGS: -I/usr/local/include
#cgo darwin LDFLAGS: -L/usr/local/lib
#include <stdlib.h>
#include <string.h>
#include <hdf5.h>

typedef struct { char *buf; size_t len, cap; } satrain_sbuf;

static void satrain_sb_add(satrain_sbuf *b, const char *s) {
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		size_t cap = 2 * (b->len + n + 1) + 256;
		char *nb = realloc(b->buf, cap);
		if (nb == NULL) return;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = 0;
}

static herr_t satrain_h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
	satrain_sbuf *b = data;
	satrain_sb_add(b, e->func_name ? e->func_name : "");
	satrain_sb_add(b, "\x1f");
	satrain_sb_add(b, e->desc ? e->desc : "");
	satrain_sb_add(b, "\x1e");
	return 0;
}

// satrain_h5_take_stack returns the calling thread's error stack, outermost
// (the API function) first, one "function\x1fdescription\x1e" a record
// (descriptions may hold newlines),
// and clears it. NULL when the stack is empty. The caller frees the result.
static char *satrain_h5_take_stack(void) {
	satrain_sbuf b = {0};
	hid_t st = H5Eget_current_stack();
	if (st < 0) return NULL;
	H5Ewalk2(st, H5E_WALK_DOWNWARD, satrain_h5_walk, &b);
	H5Eclose_stack(st);
	return b.buf;
}

// satrain_h5_missing_filter returns the name (malloc'd; "" when the file
// names none) of the first filter in dset's pipeline that this HDF5 cannot
// decode, with its id in *id; NULL when every filter can be decoded.
static char *satrain_h5_missing_filter(hid_t dset, int *id) {
	hid_t dcpl = H5Dget_create_plist(dset);
	if (dcpl < 0) return NULL;
	int n = H5Pget_nfilters(dcpl);
	for (int i = 0; i < n; i++) {
		unsigned flags = 0, config = 0;
		size_t nelmts = 0;
		char name[256];
		name[0] = 0;
		H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelmts, NULL, sizeof name, name, &config);
		if (f < 0) continue;
		int ok = H5Zfilter_avail(f) > 0;
		if (ok) {
			unsigned info = 0;
			ok = H5Zget_filter_info(f, &info) >= 0 && (info & H5Z_FILTER_CONFIG_DECODE_ENABLED);
		}
		if (!ok) {
			H5Pclose(dcpl);
			H5Eclear2(H5E_DEFAULT);
			name[sizeof name - 1] = 0;
			*id = (int)f;
			return strdup(name);
		}
	}
	H5Pclose(dcpl);
	H5Eclear2(H5E_DEFAULT);
	return NULL;
}

// satrain_h5_storage reports the bytes the file holds for dset's data
// (H5Dget_storage_size; 0 when none is allocated) and whether its pipeline
// has filters (compression).
static void satrain_h5_storage(hid_t dset, unsigned long long *bytes, int *filtered) {
	*bytes = (unsigned long long)H5Dget_storage_size(dset);
	*filtered = 0;
	hid_t dcpl = H5Dget_create_plist(dset);
	if (dcpl >= 0) {
		*filtered = H5Pget_nfilters(dcpl) > 0;
		H5Pclose(dcpl);
	}
	H5Eclear2(H5E_DEFAULT);
}

// satrain_h5_attr_class returns the type class of an attribute (-1 on
// error), its size in bytes and whether it is a variable-length string.
static int satrain_h5_attr_class(hid_t attr, size_t *size, int *vlen) {
	hid_t t = H5Aget_type(attr);
	if (t < 0) return -1;
	H5T_class_t c = H5Tget_class(t);
	*size = H5Tget_size(t);
	*vlen = c == H5T_STRING && H5Tis_variable_str(t) > 0;
	H5Tclose(t);
	return (int)c;
}
*/
import "C"

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unsafe"

	"gonum.org/v1/hdf5"
)

// silenceH5 turns HDF5's automatic error printing off for the calling
// thread (the setting is per thread in a thread-safe HDF5 build such as
// Debian's). h5do calls it on its worker before the first HDF5 call.
func silenceH5() error {
	return hdf5.DisplayErrors(false)
}

var (
	reMissingFilter = regexp.MustCompile(`required filter '([^']*)' is not registered`)
	reErrnoMessage  = regexp.MustCompile(`error message = '([^']*)'`)
)

// h5Cause describes in one line why the HDF5 call that just returned err
// failed, from this thread's error stack, and clears the stack. It must be
// called on the h5do worker right after the failing call, before any other
// HDF5 call (each call starts by clearing the stack). With an empty stack it
// falls back to err.
func h5Cause(err error) string {
	cs := C.satrain_h5_take_stack()
	if cs == nil {
		return noReason(err)
	}
	stack := C.GoString(cs)
	C.free(unsafe.Pointer(cs))
	return causeFromStack(stack, err)
}

// causeFromStack picks the line that says what went wrong from an error
// stack as satrain_h5_take_stack lists it (outermost first): a missing
// filter wins; otherwise the innermost record outside the plugin search
// (H5PL*), whose "error message = '...'" (the OS error) is preferred to the
// whole description.
func causeFromStack(stack string, err error) string {
	var cause string
	for _, rec := range strings.Split(stack, "\x1e") {
		fn, desc, _ := strings.Cut(rec, "\x1f")
		desc = strings.TrimSpace(desc)
		if m := reMissingFilter.FindStringSubmatch(desc); m != nil {
			return filterMessage(m[1], -1)
		}
		if strings.HasPrefix(fn, "H5PL") || desc == "" {
			continue
		}
		cause = desc
		if m := reErrnoMessage.FindStringSubmatch(desc); m != nil {
			cause = m[1]
		}
	}
	if cause == "" {
		return noReason(err)
	}
	return strings.Join(strings.Fields(cause), " ")
}

// noReason is the cause of a failed HDF5 call that left no error record:
// the binding's own text (e.g. "code -1") and what it most likely means.
func noReason(err error) string {
	msg := "HDF5 call failed"
	if err != nil {
		msg = err.Error()
	}
	return msg + " (HDF5 gave no reason; the file may be damaged)"
}

// knownFilters names third-party HDF5 filters by their registered id.
var knownFilters = map[int]string{32000: "LZF", 32001: "Blosc", 32004: "LZ4", 32008: "Bitshuffle", 32015: "Zstandard", 307: "bzip2"}

func filterMessage(name string, id int) string {
	label := knownFilters[id]
	switch {
	case label != "":
	case strings.EqualFold(name, "lzf"):
		label = "LZF"
	case name != "":
		label = name
	default:
		label = fmt.Sprintf("filter id %d", id)
	}
	if !strings.HasPrefix(label, "filter id") {
		label += " filter"
	}
	return fmt.Sprintf("uses the %s, which this HDF5 cannot decode; write it with gzip or without compression", label)
}

// missingFilterH5 returns a message when ds is stored through a filter
// (compression) this HDF5 cannot decode, "" otherwise.
func missingFilterH5(ds *hdf5.Dataset) string {
	var id C.int
	cs := C.satrain_h5_missing_filter(C.hid_t(ds.ID()), &id)
	if cs == nil {
		return ""
	}
	name := C.GoString(cs)
	C.free(unsafe.Pointer(cs))
	return filterMessage(name, int(id))
}

// maxDeflateRatio bounds how much a filtered (compressed) dataset can
// expand: deflate's ratio is at most 1032:1; the margin covers chunk headers.
const maxDeflateRatio = 1100

// storageCheckH5 refuses a dataset whose shape needs more bytes than its
// storage in the file can hold: all of them without compression, at most
// maxDeflateRatio times more with it. A damaged dataspace (one flipped byte
// can multiply a dimension by 2^32) otherwise passes every shape check that
// compares it with a dataset damaged the same way, and only fails at the read,
// after allocating it.
func storageCheckH5(ds *hdf5.Dataset, name string, dims []int, elem int) error {
	need := int64(elem)
	for _, d := range dims {
		if d < 0 || (d > 0 && need > math.MaxInt64/int64(d)) {
			return fmt.Errorf("%s: shape %v is too large (damaged file?)", name, dims)
		}
		need *= int64(d)
	}
	if need == 0 {
		return nil
	}
	var stored C.ulonglong
	var filtered C.int
	C.satrain_h5_storage(C.hid_t(ds.ID()), &stored, &filtered)
	limit := int64(stored)
	if filtered != 0 && limit < math.MaxInt64/maxDeflateRatio {
		limit *= maxDeflateRatio
	}
	if need > limit {
		return fmt.Errorf("%s: shape %v needs %d bytes but the file stores %d for it (damaged or truncated file?)", name, dims, need, int64(stored))
	}
	return nil
}

// attrTypeH5 describes the datatype of an attribute ("integer (4 bytes)",
// "variable-length string", ...) and reports whether it is a number HDF5
// converts to an integer (an integer, or a float as files written before
// this check may hold).
func attrTypeH5(a *hdf5.Attribute) (desc string, numeric bool) {
	var size C.size_t
	var vlen C.int
	c := C.satrain_h5_attr_class(C.hid_t(a.ID()), &size, &vlen)
	switch {
	case c < 0:
		h5Cause(nil)
		return "an unreadable type", false
	case c == C.H5T_INTEGER:
		return fmt.Sprintf("integer (%d bytes)", int(size)), true
	case c == C.H5T_FLOAT:
		return fmt.Sprintf("float (%d bytes)", int(size)), true
	case c == C.H5T_STRING && vlen != 0:
		return "variable-length string", false
	case c == C.H5T_STRING:
		return fmt.Sprintf("string(%d)", int(size)), false
	}
	return fmt.Sprintf("type class %d", int(c)), false
}
