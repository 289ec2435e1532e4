package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"fmt"
)

// Scope owns the tensors a step creates (see the package doc). The zero value
// is not usable; call NewScope.
type Scope struct {
	owned []*Tensor
	err   error
}

// NewScope returns an empty scope.
func NewScope() *Scope { return &Scope{} }

// Err returns the first error any op of the scope hit.
func (s *Scope) Err() error { return s.err }

// Fail records err as the scope's error unless one is already recorded.
func (s *Scope) Fail(err error) {
	if s.err == nil && err != nil {
		s.err = err
	}
}

// Close frees every tensor the scope still owns.
func (s *Scope) Close() {
	for _, t := range s.owned {
		t.Free()
	}
	s.owned = s.owned[:0]
}

// Len is the number of tensors the scope owns (for tests).
func (s *Scope) Len() int { return len(s.owned) }

// Keep removes t from the scope so that it outlives Close; the caller then
// owns it. Returns t.
func (s *Scope) Keep(t *Tensor) *Tensor {
	for i := len(s.owned) - 1; i >= 0; i-- {
		if s.owned[i] == t {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			break
		}
	}
	return t
}

// Own hands t to the scope, which will free it on Close.
func (s *Scope) Own(t *Tensor) *Tensor {
	if t != nil {
		s.owned = append(s.owned, t)
	}
	return t
}

// Track adopts the result of a constructor that returns (*Tensor, error).
func (s *Scope) Track(t *Tensor, err error) *Tensor {
	if err != nil {
		s.Fail(err)
		return nil
	}
	return s.Own(t)
}

// ready reports whether an op may run: no earlier error and valid inputs.
func (s *Scope) ready(op string, in ...*Tensor) bool {
	if s.err != nil {
		return false
	}
	for _, t := range in {
		if !t.Valid() {
			s.err = &Error{Op: op, Msg: "nil or freed input tensor", Kind: KindValue}
			return false
		}
	}
	return true
}

func (s *Scope) result(op string, out C.sat_tensor, e *C.sat_error) *Tensor {
	if err := check(op, e); err != nil {
		s.err = err
		return nil
	}
	return s.Own(newTensor(out))
}

// --- constructors ---

func (s *Scope) FromFloat32(data []float32, shape ...int64) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(FromFloat32(data, shape...))
}

func (s *Scope) FromInt64(data []int64, shape ...int64) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(FromInt64(data, shape...))
}

func (s *Scope) Zeros(shape []int64, dt DType, d Device) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Zeros(shape, dt, d))
}

func (s *Scope) Ones(shape []int64, dt DType, d Device) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Ones(shape, dt, d))
}

func (s *Scope) Full(shape []int64, v float64, dt DType, d Device) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Full(shape, v, dt, d))
}

func (s *Scope) Empty(shape []int64, dt DType, d Device, pinned bool) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Empty(shape, dt, d, pinned))
}

func (s *Scope) Randn(shape []int64, dt DType, d Device, g *Generator) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Randn(shape, dt, d, g))
}

func (s *Scope) Arange(n int64, dt DType, d Device) *Tensor {
	if s.err != nil {
		return nil
	}
	return s.Track(Arange(n, dt, d))
}

// --- conversions ---

// To moves/casts t; dt < 0 keeps the dtype.
func (s *Scope) To(t *Tensor, d Device, dt DType, nonBlocking bool) *Tensor {
	if !s.ready("to", t) {
		return nil
	}
	nb := 0
	if nonBlocking {
		nb = 1
	}
	var out C.sat_tensor
	return s.result("to", out, C.sat_to(t.c, C.int(d.Type), C.int(d.Index), C.int(dt), C.int(nb), &out))
}

// ToDType casts on the same device.
func (s *Scope) ToDType(t *Tensor, dt DType) *Tensor {
	if !s.ready("to dtype", t) {
		return nil
	}
	return s.To(t, t.Device(), dt, false)
}

func (s *Scope) Clone(t *Tensor) *Tensor {
	if !s.ready("clone", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("clone", out, C.sat_clone(t.c, &out))
}

func (s *Scope) Detach(t *Tensor) *Tensor {
	if !s.ready("detach", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("detach", out, C.sat_detach(t.c, &out))
}

// Ref returns a second handle on the same tensor (shared storage and autograd).
func (s *Scope) Ref(t *Tensor) *Tensor {
	if !s.ready("ref", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("ref", out, C.sat_shallow(t.c, &out))
}

// --- elementwise ---

var binaryNames = map[C.int]string{C.SAT_ADD: "add", C.SAT_SUB: "sub", C.SAT_MUL: "mul", C.SAT_DIV: "div",
	C.SAT_MAXIMUM: "maximum", C.SAT_MINIMUM: "minimum", C.SAT_POW: "pow", C.SAT_EQ: "eq", C.SAT_GT: "gt", C.SAT_LT: "lt"}

func (s *Scope) binary(op C.int, a, b *Tensor) *Tensor {
	name := binaryNames[op]
	if !s.ready(name, a, b) {
		return nil
	}
	var out C.sat_tensor
	return s.result(name, out, C.sat_binary(op, a.c, b.c, &out))
}

func (s *Scope) binaryScalar(op C.int, a *Tensor, v float64) *Tensor {
	name := binaryNames[op]
	if !s.ready(name, a) {
		return nil
	}
	var out C.sat_tensor
	return s.result(name, out, C.sat_binary_scalar(op, a.c, C.double(v), &out))
}

func (s *Scope) Add(a, b *Tensor) *Tensor               { return s.binary(C.SAT_ADD, a, b) }
func (s *Scope) Sub(a, b *Tensor) *Tensor               { return s.binary(C.SAT_SUB, a, b) }
func (s *Scope) Mul(a, b *Tensor) *Tensor               { return s.binary(C.SAT_MUL, a, b) }
func (s *Scope) Div(a, b *Tensor) *Tensor               { return s.binary(C.SAT_DIV, a, b) }
func (s *Scope) Maximum(a, b *Tensor) *Tensor           { return s.binary(C.SAT_MAXIMUM, a, b) }
func (s *Scope) Minimum(a, b *Tensor) *Tensor           { return s.binary(C.SAT_MINIMUM, a, b) }
func (s *Scope) Pow(a, b *Tensor) *Tensor               { return s.binary(C.SAT_POW, a, b) }
func (s *Scope) Eq(a, b *Tensor) *Tensor                { return s.binary(C.SAT_EQ, a, b) }
func (s *Scope) Gt(a, b *Tensor) *Tensor                { return s.binary(C.SAT_GT, a, b) }
func (s *Scope) Lt(a, b *Tensor) *Tensor                { return s.binary(C.SAT_LT, a, b) }
func (s *Scope) AddScalar(a *Tensor, v float64) *Tensor { return s.binaryScalar(C.SAT_ADD, a, v) }
func (s *Scope) SubScalar(a *Tensor, v float64) *Tensor { return s.binaryScalar(C.SAT_SUB, a, v) }
func (s *Scope) MulScalar(a *Tensor, v float64) *Tensor { return s.binaryScalar(C.SAT_MUL, a, v) }
func (s *Scope) DivScalar(a *Tensor, v float64) *Tensor { return s.binaryScalar(C.SAT_DIV, a, v) }
func (s *Scope) PowScalar(a *Tensor, v float64) *Tensor { return s.binaryScalar(C.SAT_POW, a, v) }
func (s *Scope) ClampMin(a *Tensor, v float64) *Tensor  { return s.binaryScalar(C.SAT_MAXIMUM, a, v) }
func (s *Scope) ClampMax(a *Tensor, v float64) *Tensor  { return s.binaryScalar(C.SAT_MINIMUM, a, v) }
func (s *Scope) GtScalar(a *Tensor, v float64) *Tensor  { return s.binaryScalar(C.SAT_GT, a, v) }

var unaryNames = map[C.int]string{C.SAT_NEG: "neg", C.SAT_EXP: "exp", C.SAT_LOG: "log", C.SAT_SQRT: "sqrt",
	C.SAT_ABS: "abs", C.SAT_TANH: "tanh", C.SAT_SIGMOID: "sigmoid", C.SAT_RELU: "relu", C.SAT_GELU: "gelu",
	C.SAT_SIN: "sin", C.SAT_COS: "cos", C.SAT_ISFINITE: "isfinite", C.SAT_RSQRT: "rsqrt"}

func (s *Scope) unary(op C.int, a *Tensor) *Tensor {
	name := unaryNames[op]
	if !s.ready(name, a) {
		return nil
	}
	var out C.sat_tensor
	return s.result(name, out, C.sat_unary(op, a.c, &out))
}

func (s *Scope) Neg(a *Tensor) *Tensor      { return s.unary(C.SAT_NEG, a) }
func (s *Scope) Exp(a *Tensor) *Tensor      { return s.unary(C.SAT_EXP, a) }
func (s *Scope) Log(a *Tensor) *Tensor      { return s.unary(C.SAT_LOG, a) }
func (s *Scope) Sqrt(a *Tensor) *Tensor     { return s.unary(C.SAT_SQRT, a) }
func (s *Scope) Rsqrt(a *Tensor) *Tensor    { return s.unary(C.SAT_RSQRT, a) }
func (s *Scope) Abs(a *Tensor) *Tensor      { return s.unary(C.SAT_ABS, a) }
func (s *Scope) Tanh(a *Tensor) *Tensor     { return s.unary(C.SAT_TANH, a) }
func (s *Scope) Sigmoid(a *Tensor) *Tensor  { return s.unary(C.SAT_SIGMOID, a) }
func (s *Scope) Relu(a *Tensor) *Tensor     { return s.unary(C.SAT_RELU, a) }
func (s *Scope) Gelu(a *Tensor) *Tensor     { return s.unary(C.SAT_GELU, a) }
func (s *Scope) Sin(a *Tensor) *Tensor      { return s.unary(C.SAT_SIN, a) }
func (s *Scope) Cos(a *Tensor) *Tensor      { return s.unary(C.SAT_COS, a) }
func (s *Scope) IsFinite(a *Tensor) *Tensor { return s.unary(C.SAT_ISFINITE, a) }

// --- shape ---

func (s *Scope) Reshape(t *Tensor, shape ...int64) *Tensor {
	if !s.ready("reshape", t) {
		return nil
	}
	sp, n := cShape(shape)
	var out C.sat_tensor
	return s.result("reshape", out, C.sat_reshape(t.c, sp, n, &out))
}

func (s *Scope) View(t *Tensor, shape ...int64) *Tensor {
	if !s.ready("view", t) {
		return nil
	}
	sp, n := cShape(shape)
	var out C.sat_tensor
	return s.result("view", out, C.sat_view(t.c, sp, n, &out))
}

func (s *Scope) Permute(t *Tensor, dims ...int64) *Tensor {
	if !s.ready("permute", t) {
		return nil
	}
	sp, n := cShape(dims)
	var out C.sat_tensor
	return s.result("permute", out, C.sat_permute(t.c, sp, n, &out))
}

func (s *Scope) Transpose(t *Tensor, d0, d1 int64) *Tensor {
	if !s.ready("transpose", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("transpose", out, C.sat_transpose(t.c, C.int64_t(d0), C.int64_t(d1), &out))
}

func (s *Scope) Contiguous(t *Tensor) *Tensor {
	if !s.ready("contiguous", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("contiguous", out, C.sat_contiguous(t.c, &out))
}

func (s *Scope) Narrow(t *Tensor, dim, start, length int64) *Tensor {
	if !s.ready("narrow", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("narrow", out, C.sat_narrow(t.c, C.int64_t(dim), C.int64_t(start), C.int64_t(length), &out))
}

func (s *Scope) Select(t *Tensor, dim, index int64) *Tensor {
	if !s.ready("select", t) {
		return nil
	}
	var out C.sat_tensor
	return s.result("select", out, C.sat_select(t.c, C.int64_t(dim), C.int64_t(index), &out))
}

func handles(ts []*Tensor) []C.sat_tensor {
	hs := make([]C.sat_tensor, len(ts))
	for i, t := range ts {
		hs[i] = t.c
	}
	return hs
}

func (s *Scope) listOp(op string, ts []*Tensor, f func(*C.sat_tensor, C.int, *C.sat_tensor) *C.sat_error) *Tensor {
	if !s.ready(op, ts...) {
		return nil
	}
	if len(ts) == 0 {
		s.err = &Error{Op: op, Msg: "empty tensor list", Kind: KindValue}
		return nil
	}
	hs := handles(ts)
	var out C.sat_tensor
	return s.result(op, out, f(&hs[0], C.int(len(hs)), &out))
}

func (s *Scope) Cat(ts []*Tensor, dim int64) *Tensor {
	return s.listOp("cat", ts, func(h *C.sat_tensor, n C.int, out *C.sat_tensor) *C.sat_error {
		return C.sat_cat(h, n, C.int64_t(dim), out)
	})
}

func (s *Scope) Stack(ts []*Tensor, dim int64) *Tensor {
	return s.listOp("stack", ts, func(h *C.sat_tensor, n C.int, out *C.sat_tensor) *C.sat_error {
		return C.sat_stack(h, n, C.int64_t(dim), out)
	})
}

// Unbind splits t along dim into n tensors (n must equal t's size there).
func (s *Scope) Unbind(t *Tensor, dim int64, n int) []*Tensor {
	if !s.ready("unbind", t) {
		return make([]*Tensor, n)
	}
	outs := make([]C.sat_tensor, n)
	res := make([]*Tensor, n)
	if n == 0 {
		s.err = &Error{Op: "unbind", Msg: "n must be positive", Kind: KindValue}
		return res
	}
	if err := check("unbind", C.sat_unbind(t.c, C.int64_t(dim), &outs[0], C.int(n))); err != nil {
		s.err = err
		return res
	}
	for i, o := range outs {
		res[i] = s.Own(newTensor(o))
	}
	return res
}

func (s *Scope) IndexSelect(t *Tensor, dim int64, index *Tensor) *Tensor {
	if !s.ready("index_select", t, index) {
		return nil
	}
	var out C.sat_tensor
	return s.result("index_select", out, C.sat_index_select(t.c, C.int64_t(dim), index.c, &out))
}

func (s *Scope) Gather(t *Tensor, dim int64, index *Tensor) *Tensor {
	if !s.ready("gather", t, index) {
		return nil
	}
	var out C.sat_tensor
	return s.result("gather", out, C.sat_gather(t.c, C.int64_t(dim), index.c, &out))
}

// --- reductions ---

func (s *Scope) reduceAll(op C.int, name string, t *Tensor) *Tensor {
	if !s.ready(name, t) {
		return nil
	}
	var out C.sat_tensor
	return s.result(name, out, C.sat_reduce_all(op, t.c, &out))
}

func (s *Scope) reduceDim(op C.int, name string, t *Tensor, dim int64, keep bool) *Tensor {
	if !s.ready(name, t) {
		return nil
	}
	k := 0
	if keep {
		k = 1
	}
	var out C.sat_tensor
	return s.result(name, out, C.sat_reduce_dim(op, t.c, C.int64_t(dim), C.int(k), &out))
}

func (s *Scope) Sum(t *Tensor) *Tensor  { return s.reduceAll(C.SAT_RED_SUM, "sum", t) }
func (s *Scope) Mean(t *Tensor) *Tensor { return s.reduceAll(C.SAT_RED_MEAN, "mean", t) }
func (s *Scope) Max(t *Tensor) *Tensor  { return s.reduceAll(C.SAT_RED_MAX, "max", t) }
func (s *Scope) Min(t *Tensor) *Tensor  { return s.reduceAll(C.SAT_RED_MIN, "min", t) }
func (s *Scope) SumDim(t *Tensor, dim int64, keep bool) *Tensor {
	return s.reduceDim(C.SAT_RED_SUM, "sum", t, dim, keep)
}
func (s *Scope) MeanDim(t *Tensor, dim int64, keep bool) *Tensor {
	return s.reduceDim(C.SAT_RED_MEAN, "mean", t, dim, keep)
}

// MaxDim returns the maxima along dim and their indices.
func (s *Scope) MaxDim(t *Tensor, dim int64, keep bool) (values, indices *Tensor) {
	if !s.ready("max", t) {
		return nil, nil
	}
	k := 0
	if keep {
		k = 1
	}
	var v, i C.sat_tensor
	if err := check("max", C.sat_max_dim(t.c, C.int64_t(dim), C.int(k), &v, &i)); err != nil {
		s.err = err
		return nil, nil
	}
	return s.Own(newTensor(v)), s.Own(newTensor(i))
}

func (s *Scope) Argmax(t *Tensor, dim int64, keep bool) *Tensor {
	if !s.ready("argmax", t) {
		return nil
	}
	k := 0
	if keep {
		k = 1
	}
	var out C.sat_tensor
	return s.result("argmax", out, C.sat_argmax(t.c, C.int64_t(dim), C.int(k), &out))
}

// TopK returns the k largest (or smallest) values along dim, sorted, with indices.
func (s *Scope) TopK(t *Tensor, k, dim int64, largest bool) (values, indices *Tensor) {
	if !s.ready("topk", t) {
		return nil, nil
	}
	l := 0
	if largest {
		l = 1
	}
	var v, i C.sat_tensor
	if err := check("topk", C.sat_topk(t.c, C.int64_t(k), C.int64_t(dim), C.int(l), &v, &i)); err != nil {
		s.err = err
		return nil, nil
	}
	return s.Own(newTensor(v)), s.Own(newTensor(i))
}

// --- nn ---

func (s *Scope) Matmul(a, b *Tensor) *Tensor {
	if !s.ready("matmul", a, b) {
		return nil
	}
	var out C.sat_tensor
	return s.result("matmul", out, C.sat_matmul(a.c, b.c, &out))
}

// Linear computes x wᵀ + b (b may be nil).
func (s *Scope) Linear(x, w, b *Tensor) *Tensor {
	if !s.ready("linear", x, w) {
		return nil
	}
	var bc C.sat_tensor
	if b != nil {
		if !s.ready("linear", b) {
			return nil
		}
		bc = b.c
	}
	var out C.sat_tensor
	return s.result("linear", out, C.sat_linear(x.c, w.c, bc, &out))
}

// LayerNorm normalises over the last dimension (size n) with affine w, b (may be nil).
func (s *Scope) LayerNorm(x *Tensor, n int64, w, b *Tensor, eps float64) *Tensor {
	if !s.ready("layer_norm", x) {
		return nil
	}
	var wc, bc C.sat_tensor
	if w != nil {
		wc = w.c
	}
	if b != nil {
		bc = b.c
	}
	var out C.sat_tensor
	return s.result("layer_norm", out, C.sat_layer_norm(x.c, C.int64_t(n), wc, bc, C.double(eps), &out))
}

// Dropout zeroes elements with probability p when train is true (scaling the rest).
func (s *Scope) Dropout(x *Tensor, p float64, train bool) *Tensor {
	if !s.ready("dropout", x) {
		return nil
	}
	if !train || p == 0 {
		return x
	}
	var out C.sat_tensor
	return s.result("dropout", out, C.sat_dropout(x.c, C.double(p), 1, &out))
}

func (s *Scope) Softmax(x *Tensor, dim int64) *Tensor {
	if !s.ready("softmax", x) {
		return nil
	}
	var out C.sat_tensor
	return s.result("softmax", out, C.sat_softmax(x.c, C.int64_t(dim), &out))
}

func (s *Scope) LogSoftmax(x *Tensor, dim int64) *Tensor {
	if !s.ready("log_softmax", x) {
		return nil
	}
	var out C.sat_tensor
	return s.result("log_softmax", out, C.sat_log_softmax(x.c, C.int64_t(dim), &out))
}

// AttentionImpl picks the attention kernel.
type AttentionImpl int

const (
	// AttentionAuto uses at::scaled_dot_product_attention where libtorch has
	// it (2.0+: flash / memory-efficient kernels on CUDA), else the math form.
	AttentionAuto AttentionImpl = 0
	// AttentionMath is softmax(q kᵀ/√d) v written out.
	AttentionMath AttentionImpl = 1
)

// Attention is scaled dot-product attention over [batch, heads, seq, head_dim].
func (s *Scope) Attention(q, k, v *Tensor, dropoutP float64, causal bool, impl AttentionImpl) *Tensor {
	if !s.ready("scaled_dot_product_attention", q, k, v) {
		return nil
	}
	c := 0
	if causal {
		c = 1
	}
	var out C.sat_tensor
	return s.result("scaled_dot_product_attention", out,
		C.sat_sdpa(q.c, k.c, v.c, C.double(dropoutP), C.int(c), C.int(impl), &out))
}

// Reduction for losses.
type Reduction int

const (
	ReduceNone Reduction = 0
	ReduceMean Reduction = 1
	ReduceSum  Reduction = 2
)

// CrossEntropy of logits [N, C] against int64 targets [N], with label smoothing.
func (s *Scope) CrossEntropy(logits, target *Tensor, red Reduction, labelSmoothing float64) *Tensor {
	if !s.ready("cross_entropy", logits, target) {
		return nil
	}
	var out C.sat_tensor
	return s.result("cross_entropy", out,
		C.sat_cross_entropy(logits.c, target.c, C.int(red), C.double(labelSmoothing), &out))
}

// --- autograd ---

// Backward runs autograd from a scalar tensor.
func (s *Scope) Backward(t *Tensor) {
	if !s.ready("backward", t) {
		return
	}
	s.Fail(check("backward", C.sat_backward(t.c, nil)))
}

// Grad returns t's accumulated gradient, or nil (with no error) if it has none.
func (s *Scope) Grad(t *Tensor) *Tensor {
	if !s.ready("grad", t) {
		return nil
	}
	var out C.sat_tensor
	if err := check("grad", C.sat_grad(t.c, &out)); err != nil {
		s.err = err
		return nil
	}
	if out == nil {
		return nil
	}
	return s.Own(newTensor(out))
}

// Item reads a one-element tensor.
func (s *Scope) Item(t *Tensor) float64 {
	if !s.ready("item", t) {
		return 0
	}
	v, err := t.Item()
	s.Fail(err)
	return v
}

// Float32s copies t to a Go slice.
func (s *Scope) Float32s(t *Tensor) []float32 {
	if !s.ready("to float32 slice", t) {
		return nil
	}
	v, err := t.Float32s()
	s.Fail(err)
	return v
}

// Int64s copies t to a Go slice.
func (s *Scope) Int64s(t *Tensor) []int64 {
	if !s.ready("to int64 slice", t) {
		return nil
	}
	v, err := t.Int64s()
	s.Fail(err)
	return v
}

// ShapeIs records an error unless t has exactly the given shape.
func (s *Scope) ShapeIs(op string, t *Tensor, shape ...int64) bool {
	if !s.ready(op, t) {
		return false
	}
	got := t.Shape()
	ok := len(got) == len(shape)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == shape[i]
	}
	if !ok {
		s.err = &Error{Op: op, Msg: fmt.Sprintf("want shape %v, got %v", shape, got), Kind: KindValue}
	}
	return ok
}
