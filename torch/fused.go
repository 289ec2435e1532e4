package torch

/*
#include "satorch.h"
*/
import "C"

import "sync/atomic"

// Fused kernels (opt-in). Each has the plain composition of ops beside it as
// the reference, and falls back to it wherever the fused kernel cannot run.

// FusedSupport says which fused kernels this libtorch build has (compile
// time). Whether one runs also depends on the call: see LinearGelu and
// AdamW.SetFused.
type FusedSupport struct {
	LinearGelu bool // at::_addmm_activation
	AdamW      bool // at::_fused_adamw_: libtorch 2.1 and newer (CUDA parameters only)
}

// Fused returns the fused kernels of the loaded libsatorch.
func Fused() FusedSupport {
	f := C.sat_fused_support()
	return FusedSupport{LinearGelu: f&C.SAT_FUSED_LINEAR_GELU != 0, AdamW: f&C.SAT_FUSED_ADAMW != 0}
}

// LinearGelu computes gelu(x wᵀ + b): x [..., in], w [out, in], b [out] ->
// [..., out]. With fused false it is exactly Gelu(Linear(x, w, b)), the
// reference. With fused true it runs one at::_addmm_activation (bias and GELU
// in the GEMM epilogue on CUDA) where that can run, and the reference
// otherwise: autograd needs a derivative (the op has none, so training steps
// keep the reference path), or b is nil. Under autocast the fused path casts x, w and b to the
// autocast dtype itself, as autocast does for at::linear.
//
// On CPU both paths compute the exact (erf) GELU. On CUDA PyTorch's fused
// kernel computes GELU's tanh approximation, which differs from the exact
// GELU by less than 1e-3 in absolute value for every input.
func (s *Scope) LinearGelu(x, w, b *Tensor, fused bool) *Tensor {
	y, _ := s.LinearGeluPath(x, w, b, fused)
	return y
}

// LinearGeluPath is LinearGelu that also reports whether the fused kernel ran.
func (s *Scope) LinearGeluPath(x, w, b *Tensor, fused bool) (*Tensor, bool) {
	if fused && b != nil && s.ready("linear_gelu", x, w, b) {
		var out C.sat_tensor
		if err := check("linear_gelu", C.sat_linear_gelu_fused(x.c, w.c, b.c, &out)); err != nil {
			s.Fail(err)
			return nil, false
		}
		if out != nil {
			fusedLinearGeluCalls.Add(1)
			return s.Own(newTensor(out)), true
		}
	}
	return s.Gelu(s.Linear(x, w, b)), false
}

var fusedLinearGeluCalls atomic.Int64

// FusedLinearGeluCalls counts the calls of LinearGelu that ran the fused
// kernel in this process (for tests and benchmarks: it tells the fused path
// really ran, not its fallback).
func FusedLinearGeluCalls() int64 { return fusedLinearGeluCalls.Load() }

// SetFused asks for the fused AdamW step (at::_fused_adamw_, one multi-tensor
// kernel) instead of the per-parameter loop, and returns whether it will run:
// it needs libtorch 2.1 or newer and every parameter on one CUDA device.
// Otherwise the loop, the reference, keeps running. Both compute
// torch.optim.AdamW's update; they differ only in float rounding order.
func (o *AdamW) SetFused(on bool) (active bool, err error) {
	var a C.int
	v := C.int(0)
	if on {
		v = 1
	}
	if err := check("adamw set fused", C.sat_adamw_set_fused(o.c, v, &a)); err != nil {
		return false, err
	}
	return a != 0, nil
}
