package torch

/*
#include "satorch.h"
*/
import "C"

import "sync/atomic"

// FP8 linear layers (float8_e4m3fn, one scale per tensor) for the scoring
// cascade's cheap pass. The float32 Linear stays the reference.
//
// A tensor t is stored as t/s rounded to e4m3 with s = max|t|/448 (448: e4m3's
// largest finite value; s = 1 for an all-zero tensor). e4m3 keeps 3 mantissa
// bits, so each element is within 2⁻⁴ of its value relatively, or 2⁻¹⁰·s
// absolutely in e4m3's subnormal range (below 2⁻⁶·s).

// FP8E4M3Max is the largest finite float8_e4m3fn value; a tensor's scale maps
// its largest magnitude to it.
const FP8E4M3Max = 448.0

// FP8Weight is a weight matrix [out, in] quantised once to float8_e4m3fn, with
// its scale. Quantise the weights once per scoring pass (they change with
// every training step) and Free them after.
type FP8Weight struct {
	q, scale *Tensor
}

// QuantizeFP8 quantises w (floating point, any device) to float8_e4m3fn with
// the per-tensor scale max|w|/448.
func QuantizeFP8(w *Tensor) (*FP8Weight, error) {
	if !w.Valid() {
		return nil, &Error{Op: "fp8 quantize", Msg: "nil or freed input tensor", Kind: KindValue}
	}
	var q, s C.sat_tensor
	if err := check("fp8 quantize", C.sat_fp8_quantize(w.c, &q, &s)); err != nil {
		return nil, err
	}
	return &FP8Weight{q: newTensor(q), scale: newTensor(s)}, nil
}

// Scale returns the per-tensor scale (max|w|/448, or 1 for zeros).
func (w *FP8Weight) Scale() (float64, error) { return w.scale.Item() }

// Shape is the weight's shape.
func (w *FP8Weight) Shape() []int64 { return w.q.Shape() }

// Dequantized returns the float32 values the quantised weight stands for
// (the e4m3 values times the scale), in s.
func (s *Scope) Dequantized(w *FP8Weight) *Tensor {
	if w == nil || !s.ready("fp8 dequantize", w.q, w.scale) {
		return nil
	}
	var out C.sat_tensor
	return s.result("fp8 dequantize", out, C.sat_fp8_dequantize(w.q.c, w.scale.c, &out))
}

// Free releases the quantised weight. Safe on nil and twice.
func (w *FP8Weight) Free() {
	if w == nil {
		return
	}
	w.q.Free()
	w.scale.Free()
}

// LinearFP8 computes x wᵀ + b with x [..., in] quantised to e4m3 per call
// (scale max|x|/448), w from QuantizeFP8, b [out] (may be nil) added in
// float32: at::_scaled_mm with a float32 result [..., out]. On CUDA it needs a
// device of compute capability 8.9 or newer (H100, L40, RTX 40xx) and in and
// out multiples of 16; the error says so otherwise. No autograd: scoring only.
func (s *Scope) LinearFP8(x *Tensor, w *FP8Weight, b *Tensor) *Tensor {
	if w == nil {
		s.Fail(&Error{Op: "fp8 linear", Msg: "nil weight", Kind: KindValue})
		return nil
	}
	if !s.ready("fp8 linear", x, w.q, w.scale) {
		return nil
	}
	var bc C.sat_tensor
	if b != nil {
		if !s.ready("fp8 linear", b) {
			return nil
		}
		bc = b.c
	}
	var out C.sat_tensor
	y := s.result("fp8 linear", out, C.sat_fp8_linear(x.c, w.q.c, w.scale.c, bc, &out))
	if y != nil {
		fp8LinearCalls.Add(1)
	}
	return y
}

var fp8LinearCalls atomic.Int64

// FP8LinearCalls counts the LinearFP8 calls that ran in this process (for
// tests and benchmarks: it tells the FP8 path really ran).
func FP8LinearCalls() int64 { return fp8LinearCalls.Load() }
