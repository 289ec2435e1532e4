package torch

/*
#include "satorch.h"
*/
import "C"

import "fmt"

// CopyToHost returns a private CPU copy of each tensor of ts, in one call:
// out[i] has ts[i]'s shape, is contiguous and detached (no autograd history),
// and has dtype dt (dt < 0 keeps ts[i]'s own dtype, as in Scope.To). ts may
// mix devices and is left untouched; the copies share no memory with it, so
// they may be read (serialised, hashed) on another goroutine while the
// originals keep changing. The caller owns the copies and frees each with
// Free.
//
// It is the checkpoint's device-to-host copy. On CUDA the copies go through
// pinned host memory from libtorch's caching host allocator: one flat buffer
// when they total at most 256 MiB, else blocks of exactly 256 MiB. The
// allocator keeps a freed block in its cache (by power-of-two size), so once
// it holds as many blocks as the copies alive at one time need (a checkpoint
// being written in the background holds its own), later calls pin nothing,
// whatever their size. Every copy is enqueued asynchronously on a side stream
// that first waits for the work already queued on the device, and the call
// synchronises once at the end. Each copy owns its own storage (a slice of a
// block), so a .pt file written from it has the same bytes as one written
// from per-tensor copies. On the CPU each copy is a fresh contiguous tensor.
// The values are those of Contiguous(To(t, CPU, dt)) either way.
//
// pinnedBytes is the pinned memory the copies use (0 when nothing was on
// CUDA). A nil or freed tensor in ts is an *Error of KindValue naming its
// index; on any error no copy is returned.
func CopyToHost(ts []*Tensor, dt DType) (out []*Tensor, pinnedBytes int64, err error) {
	for i, t := range ts {
		if !t.Valid() {
			return nil, 0, &Error{Op: "copy to host", Msg: fmt.Sprintf("tensor %d of %d is nil or freed", i, len(ts)), Kind: KindValue}
		}
	}
	if len(ts) == 0 {
		return []*Tensor{}, 0, nil
	}
	in := handles(ts)
	outs := make([]C.sat_tensor, len(ts))
	var pinned C.int64_t
	if err := check("copy to host", C.sat_copy_to_host(&in[0], C.int(len(in)), C.int(dt), &outs[0], &pinned)); err != nil {
		return nil, 0, err
	}
	out = make([]*Tensor, len(outs))
	for i, c := range outs {
		out[i] = newTensor(c)
	}
	return out, int64(pinned), nil
}
