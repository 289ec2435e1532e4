package torch

/*
#cgo CFLAGS: -I${SRCDIR}/csrc
#cgo LDFLAGS: -L${SRCDIR}/../build -lsatorch -Wl,-rpath,$ORIGIN -Wl,-rpath,${SRCDIR}/../build
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// ErrorKind classifies an error from libtorch.
type ErrorKind int

const (
	KindGeneric        ErrorKind = 1
	KindOutOfMemory    ErrorKind = 2
	KindIndex          ErrorKind = 3
	KindValue          ErrorKind = 4
	KindNotImplemented ErrorKind = 5 // not in this build or on this device; matches errors.ErrUnsupported
)

// Error is an error raised by libtorch (or by the shim's argument checks).
type Error struct {
	Op   string
	Msg  string
	Kind ErrorKind
}

func (e *Error) Error() string { return fmt.Sprintf("torch: %s: %s", e.Op, e.Msg) }

// Is makes an error of KindNotImplemented match errors.ErrUnsupported, so a
// caller can fall back (errors.Is(err, errors.ErrUnsupported)) without
// knowing this package's kinds.
func (e *Error) Is(target error) bool {
	return target == errors.ErrUnsupported && e.Kind == KindNotImplemented
}

// IsOutOfMemory reports whether err is (or wraps) a device or host
// out-of-memory error from libtorch.
func IsOutOfMemory(err error) bool {
	var te *Error
	return errors.As(err, &te) && te.Kind == KindOutOfMemory
}

// check converts a shim error into a Go error and frees the C side.
func check(op string, e *C.sat_error) error {
	if e == nil {
		return nil
	}
	err := &Error{Op: op, Msg: C.GoString(e.msg), Kind: ErrorKind(e.kind)}
	C.sat_error_free(e)
	return err
}

// LockThread pins the calling goroutine to its OS thread (see the package
// doc) and returns the function that releases it.
func LockThread() (unlock func()) {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

func cShape(shape []int64) (*C.int64_t, C.int) {
	if len(shape) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0])), C.int(len(shape))
}

func cString(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}
