package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Tensor is a handle on one libtorch tensor. It is not safe for concurrent use
// (see the package doc on threads).
type Tensor struct {
	c       C.sat_tensor
	cleanup runtime.Cleanup
}

func freeHandle(c C.sat_tensor) { C.sat_tensor_free(c) }

func newTensor(c C.sat_tensor) *Tensor {
	t := &Tensor{c: c}
	t.cleanup = runtime.AddCleanup(t, freeHandle, c)
	return t
}

// Free releases the handle's reference now. Safe to call twice and on nil.
func (t *Tensor) Free() {
	if t == nil || t.c == nil {
		return
	}
	t.cleanup.Stop()
	C.sat_tensor_free(t.c)
	t.c = nil
}

// Valid reports whether t holds a tensor (not nil, not freed).
func (t *Tensor) Valid() bool { return t != nil && t.c != nil }

// Dim is the number of dimensions.
func (t *Tensor) Dim() int {
	if !t.Valid() {
		return 0
	}
	return int(C.sat_dim(t.c))
}

// Shape returns the sizes of every dimension.
func (t *Tensor) Shape() []int64 {
	n := t.Dim()
	if n == 0 {
		return []int64{}
	}
	s := make([]int64, n)
	C.sat_shape(t.c, (*C.int64_t)(unsafe.Pointer(&s[0])))
	return s
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	if !t.Valid() {
		return 0
	}
	return int64(C.sat_numel(t.c))
}

// DType is the element type.
func (t *Tensor) DType() DType { return DType(C.sat_dtype(t.c)) }

// Device is where the tensor lives.
func (t *Tensor) Device() Device {
	var ty, idx C.int
	C.sat_device(t.c, &ty, &idx)
	d := Device{Type: DeviceType(ty), Index: int(idx)}
	if d.Type == DeviceCPU {
		d.Index = 0
	}
	return d
}

// IsContiguous reports whether the tensor is laid out contiguously.
func (t *Tensor) IsContiguous() bool { return t.Valid() && C.sat_is_contiguous(t.c) != 0 }

func (t *Tensor) String() string {
	if !t.Valid() {
		return "Tensor(freed)"
	}
	return fmt.Sprintf("Tensor(%v, %s, %s)", t.Shape(), t.DType(), t.Device())
}

func (t *Tensor) needValid(op string) error {
	if !t.Valid() {
		return &Error{Op: op, Msg: "nil or freed tensor", Kind: KindValue}
	}
	return nil
}

func (t *Tensor) copyOut(op string, want DType, dst unsafe.Pointer, nbytes int) error {
	if err := t.needValid(op); err != nil {
		return err
	}
	if t.DType() != want {
		return &Error{Op: op, Msg: fmt.Sprintf("tensor is %s, want %s", t.DType(), want), Kind: KindValue}
	}
	return check(op, C.sat_copy_to(t.c, dst, C.size_t(nbytes)))
}

// Float32s copies a float32 tensor (any device, any layout) into a new slice.
func (t *Tensor) Float32s() ([]float32, error) {
	out := make([]float32, t.Numel())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	return out, t.copyOut("to float32 slice", Float32, p, len(out)*4)
}

// Float64s copies a float64 tensor into a new slice.
func (t *Tensor) Float64s() ([]float64, error) {
	out := make([]float64, t.Numel())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	return out, t.copyOut("to float64 slice", Float64, p, len(out)*8)
}

// Int64s copies an int64 tensor into a new slice.
func (t *Tensor) Int64s() ([]int64, error) {
	out := make([]int64, t.Numel())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	return out, t.copyOut("to int64 slice", Int64, p, len(out)*8)
}

// Bools copies a bool tensor into a new slice.
func (t *Tensor) Bools() ([]bool, error) {
	out := make([]bool, t.Numel())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	return out, t.copyOut("to bool slice", Bool, p, len(out))
}

// Bytes copies the raw little-endian element bytes of any tensor.
func (t *Tensor) Bytes() ([]byte, error) {
	if err := t.needValid("to bytes"); err != nil {
		return nil, err
	}
	out := make([]byte, int(t.Numel())*t.DType().Size())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	return out, check("to bytes", C.sat_copy_to(t.c, p, C.size_t(len(out))))
}

// Item returns the value of a one-element tensor as float64.
func (t *Tensor) Item() (float64, error) {
	if err := t.needValid("item"); err != nil {
		return 0, err
	}
	var v C.double
	err := check("item", C.sat_item(t.c, &v))
	return float64(v), err
}

// Float32View returns a Go slice over the memory of a contiguous float32 CPU
// tensor, without copying: writes go straight into the tensor (this is how
// pinned host batches are filled). The slice is valid only while t is alive.
func (t *Tensor) Float32View() ([]float32, error) {
	if err := t.needValid("float32 view"); err != nil {
		return nil, err
	}
	if t.DType() != Float32 || t.Device().Type != DeviceCPU || !t.IsContiguous() {
		return nil, &Error{Op: "float32 view", Msg: "want a contiguous float32 CPU tensor, got " + t.String(), Kind: KindValue}
	}
	n := t.Numel()
	if n == 0 {
		return []float32{}, nil
	}
	return unsafe.Slice((*float32)(C.sat_data_ptr(t.c)), n), nil
}

// Int64View is Float32View for int64 tensors.
func (t *Tensor) Int64View() ([]int64, error) {
	if err := t.needValid("int64 view"); err != nil {
		return nil, err
	}
	if t.DType() != Int64 || t.Device().Type != DeviceCPU || !t.IsContiguous() {
		return nil, &Error{Op: "int64 view", Msg: "want a contiguous int64 CPU tensor, got " + t.String(), Kind: KindValue}
	}
	n := t.Numel()
	if n == 0 {
		return []int64{}, nil
	}
	return unsafe.Slice((*int64)(C.sat_data_ptr(t.c)), n), nil
}

// SetRequiresGrad marks a leaf tensor as a parameter autograd tracks.
func (t *Tensor) SetRequiresGrad(on bool) error {
	if err := t.needValid("requires_grad"); err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	return check("requires_grad", C.sat_set_requires_grad(t.c, C.int(v)))
}

// RequiresGrad reports whether autograd tracks t.
func (t *Tensor) RequiresGrad() bool { return t.Valid() && C.sat_requires_grad(t.c) != 0 }

// Backward runs autograd from t (a scalar) and accumulates into leaves' grads.
func (t *Tensor) Backward() error {
	if err := t.needValid("backward"); err != nil {
		return err
	}
	return check("backward", C.sat_backward(t.c, nil))
}

// CopyFrom copies src into t (shapes broadcast; devices and dtypes may differ).
func (t *Tensor) CopyFrom(src *Tensor, nonBlocking bool) error {
	if err := t.needValid("copy_"); err != nil {
		return err
	}
	if err := src.needValid("copy_"); err != nil {
		return err
	}
	nb := 0
	if nonBlocking {
		nb = 1
	}
	return check("copy_", C.sat_copy_(t.c, src.c, C.int(nb)))
}

// Fill sets every element to v.
func (t *Tensor) Fill(v float64) error {
	if err := t.needValid("fill_"); err != nil {
		return err
	}
	return check("fill_", C.sat_fill_(t.c, C.double(v)))
}

// Uniform fills t in place from U(lo, hi) using g (nil: the default generator).
func (t *Tensor) Uniform(lo, hi float64, g *Generator) error {
	if err := t.needValid("uniform_"); err != nil {
		return err
	}
	return check("uniform_", C.sat_uniform_(t.c, C.double(lo), C.double(hi), g.handle()))
}

// Normal fills t in place from N(mean, std²) using g (nil: the default generator).
func (t *Tensor) Normal(mean, std float64, g *Generator) error {
	if err := t.needValid("normal_"); err != nil {
		return err
	}
	return check("normal_", C.sat_normal_(t.c, C.double(mean), C.double(std), g.handle()))
}

// MulScalarInPlace multiplies t by s in place.
func (t *Tensor) MulScalarInPlace(s float64) error {
	if err := t.needValid("mul_"); err != nil {
		return err
	}
	return check("mul_", C.sat_binary_scalar_(C.SAT_MUL, t.c, C.double(s)))
}

// AddInPlace adds o to t in place.
func (t *Tensor) AddInPlace(o *Tensor) error {
	if err := t.needValid("add_"); err != nil {
		return err
	}
	if err := o.needValid("add_"); err != nil {
		return err
	}
	return check("add_", C.sat_binary_(C.SAT_ADD, t.c, o.c))
}

// Generator is a seeded CPU random generator. Tensors on other devices drawn
// with it are drawn on the CPU and copied, so results do not depend on device.
type Generator struct{ c C.sat_gen }

// NewGenerator returns a CPU generator seeded with seed.
func NewGenerator(seed uint64) (*Generator, error) {
	var g C.sat_gen
	if err := check("generator", C.sat_gen_new(C.uint64_t(seed), &g)); err != nil {
		return nil, err
	}
	return &Generator{c: g}, nil
}

// Free releases the generator.
func (g *Generator) Free() {
	if g != nil && g.c != nil {
		C.sat_gen_free(g.c)
		g.c = nil
	}
}

func (g *Generator) handle() C.sat_gen {
	if g == nil {
		return nil
	}
	return g.c
}

// --- constructors for persistent tensors (caller frees) ---

// Empty allocates an uninitialised tensor. pinned asks for page-locked host
// memory (honoured when CUDA is available) for fast non-blocking copies.
func Empty(shape []int64, dt DType, d Device, pinned bool) (*Tensor, error) {
	sp, n := cShape(shape)
	p := 0
	if pinned {
		p = 1
	}
	var out C.sat_tensor
	if err := check("empty", C.sat_empty(sp, n, C.int(dt), C.int(d.Type), C.int(d.Index), C.int(p), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// Full returns a tensor filled with v.
func Full(shape []int64, v float64, dt DType, d Device) (*Tensor, error) {
	sp, n := cShape(shape)
	var out C.sat_tensor
	if err := check("full", C.sat_full(sp, n, C.double(v), C.int(dt), C.int(d.Type), C.int(d.Index), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// Zeros returns a zero tensor.
func Zeros(shape []int64, dt DType, d Device) (*Tensor, error) { return Full(shape, 0, dt, d) }

// Ones returns a tensor of ones.
func Ones(shape []int64, dt DType, d Device) (*Tensor, error) { return Full(shape, 1, dt, d) }

// Randn draws N(0,1) values with g (nil: default generator of the device).
func Randn(shape []int64, dt DType, d Device, g *Generator) (*Tensor, error) {
	sp, n := cShape(shape)
	var out C.sat_tensor
	if err := check("randn", C.sat_randn(sp, n, C.int(dt), C.int(d.Type), C.int(d.Index), g.handle(), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// Arange returns 0..n-1.
func Arange(n int64, dt DType, d Device) (*Tensor, error) {
	var out C.sat_tensor
	if err := check("arange", C.sat_arange(C.int64_t(n), C.int(dt), C.int(d.Type), C.int(d.Index), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

func checkLen(op string, n int, shape []int64) error {
	want := int64(1)
	for _, s := range shape {
		if s < 0 {
			return &Error{Op: op, Msg: fmt.Sprintf("negative dimension in shape %v", shape), Kind: KindValue}
		}
		want *= s
	}
	if int64(n) != want {
		return &Error{Op: op, Msg: fmt.Sprintf("%d values do not fill shape %v (%d)", n, shape, want), Kind: KindValue}
	}
	return nil
}

func fromBlob(op string, p unsafe.Pointer, n int, shape []int64, dt DType) (*Tensor, error) {
	if err := checkLen(op, n, shape); err != nil {
		return nil, err
	}
	sp, nd := cShape(shape)
	var out C.sat_tensor
	if err := check(op, C.sat_from_blob_copy(p, sp, nd, C.int(dt), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// FromFloat32 copies data into a new CPU float32 tensor of the given shape.
func FromFloat32(data []float32, shape ...int64) (*Tensor, error) {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return fromBlob("from float32", p, len(data), shape, Float32)
}

// FromFloat64 copies data into a new CPU float64 tensor.
func FromFloat64(data []float64, shape ...int64) (*Tensor, error) {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return fromBlob("from float64", p, len(data), shape, Float64)
}

// FromInt64 copies data into a new CPU int64 tensor.
func FromInt64(data []int64, shape ...int64) (*Tensor, error) {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return fromBlob("from int64", p, len(data), shape, Int64)
}

// FromBytes copies raw element bytes into a new CPU tensor of dtype dt.
func FromBytes(data []byte, dt DType, shape ...int64) (*Tensor, error) {
	if len(data)%dt.Size() != 0 {
		return nil, &Error{Op: "from bytes", Msg: "byte count is not a multiple of the element size", Kind: KindValue}
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return fromBlob("from bytes", p, len(data)/dt.Size(), shape, dt)
}

// RawBytes returns the element bytes of a contiguous CPU tensor without
// copying (valid only while t is alive and unchanged).
func (t *Tensor) RawBytes() ([]byte, error) {
	if err := t.needValid("raw bytes"); err != nil {
		return nil, err
	}
	if t.Device().Type != DeviceCPU || !t.IsContiguous() {
		return nil, &Error{Op: "raw bytes", Msg: "want a contiguous CPU tensor, got " + t.String(), Kind: KindValue}
	}
	n := int(t.Numel()) * t.DType().Size()
	if n == 0 {
		return []byte{}, nil
	}
	return unsafe.Slice((*byte)(C.sat_data_ptr(t.c)), n), nil
}
