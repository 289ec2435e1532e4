package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"
)

// DType is a tensor element type.
type DType int

const (
	Float32  DType = C.SAT_FLOAT32
	Float16  DType = C.SAT_FLOAT16
	BFloat16 DType = C.SAT_BFLOAT16
	Int64    DType = C.SAT_INT64
	Bool     DType = C.SAT_BOOL
	Int32    DType = C.SAT_INT32
	Uint8    DType = C.SAT_UINT8
	Float64  DType = C.SAT_FLOAT64
)

var dtypeNames = map[DType]string{Float32: "float32", Float16: "float16", BFloat16: "bfloat16",
	Int64: "int64", Bool: "bool", Int32: "int32", Uint8: "uint8", Float64: "float64"}

func (d DType) String() string {
	if n, ok := dtypeNames[d]; ok {
		return n
	}
	return "dtype(" + strconv.Itoa(int(d)) + ")"
}

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float32, Int32:
		return 4
	case Float16, BFloat16:
		return 2
	case Int64, Float64:
		return 8
	default:
		return 1
	}
}

// ParseDType accepts float32, float16/fp16, bfloat16/bf16.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "float32", "fp32":
		return Float32, nil
	case "float16", "fp16", "half":
		return Float16, nil
	case "bfloat16", "bf16":
		return BFloat16, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want float32, float16 or bfloat16)", s)
}

// DeviceType is cpu or cuda.
type DeviceType int

const (
	DeviceCPU  DeviceType = C.SAT_CPU
	DeviceCUDA DeviceType = C.SAT_CUDA
)

// Device names where a tensor lives.
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host device.
var CPU = Device{Type: DeviceCPU}

// CUDA returns cuda:i.
func CUDA(i int) Device { return Device{Type: DeviceCUDA, Index: i} }

// IsCUDA reports whether d is a CUDA device.
func (d Device) IsCUDA() bool { return d.Type == DeviceCUDA }

func (d Device) String() string {
	if d.Type == DeviceCUDA {
		return "cuda:" + strconv.Itoa(d.Index)
	}
	return "cpu"
}

// ParseDevice accepts "cpu", "cuda" and "cuda:N". It does not check that the
// device exists; CheckDevice does.
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "cpu":
		return CPU, nil
	case s == "cuda":
		return CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[5:])
		if err != nil || i < 0 {
			return Device{}, fmt.Errorf("unknown device %q (want cpu, cuda or cuda:N)", s)
		}
		return CUDA(i), nil
	}
	return Device{}, fmt.Errorf("unknown device %q (want cpu, cuda or cuda:N)", s)
}

// CheckDevice returns an error saying why d cannot be used here, or nil.
func CheckDevice(d Device) error {
	if d.Type == DeviceCPU {
		return nil
	}
	if !BuiltWithCUDA() {
		return fmt.Errorf("device %s: this satrain's libsatorch.so was built without CUDA (rebuild with `make shim TORCH_CUDA=1` against a CUDA libtorch, or use --device cpu)", d)
	}
	if !CUDAIsAvailable() {
		return fmt.Errorf("device %s: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES, or use --device cpu)", d)
	}
	if n := CUDADeviceCount(); d.Index >= n {
		return fmt.Errorf("device %s: only %d CUDA device(s) present", d, n)
	}
	return nil
}

// Version is libtorch's version string, e.g. "2.11.0".
func Version() string {
	var p *C.char
	if err := check("version", C.sat_version(&p)); err != nil {
		return "unknown"
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// BuiltWithCUDA reports whether libsatorch.so has its CUDA code compiled in.
func BuiltWithCUDA() bool { return C.sat_built_with_cuda() != 0 }

// CUDAIsAvailable reports whether a CUDA device can be used.
func CUDAIsAvailable() bool { return C.sat_cuda_is_available() != 0 }

// CUDADeviceCount is the number of visible CUDA devices.
func CUDADeviceCount() int { return int(C.sat_cuda_device_count()) }

// Synchronize waits for all work queued on the device (a no-op for cpu).
func Synchronize(d Device) error {
	if !d.IsCUDA() {
		return nil
	}
	return check("cuda synchronize", C.sat_cuda_synchronize(C.int(d.Index)))
}

// MemoryStats are the CUDA caching allocator's byte counts.
type MemoryStats struct{ Allocated, Peak, Reserved int64 }

// DeviceMemory reports allocator statistics for a CUDA device.
func DeviceMemory(d Device) (MemoryStats, error) {
	if !d.IsCUDA() {
		return MemoryStats{}, &Error{Op: "memory stats", Msg: "only CUDA devices have allocator statistics", Kind: KindValue}
	}
	var a, p, r C.int64_t
	err := check("cuda memory", C.sat_cuda_memory(C.int(d.Index), &a, &p, &r))
	return MemoryStats{int64(a), int64(p), int64(r)}, err
}

// ResetPeakMemory resets the peak statistic of a CUDA device.
func ResetPeakMemory(d Device) error {
	if !d.IsCUDA() {
		return nil
	}
	return check("cuda reset peak", C.sat_cuda_reset_peak(C.int(d.Index)))
}

// EmptyCache returns cached, unused CUDA memory to the driver.
func EmptyCache() error { return check("cuda empty cache", C.sat_cuda_empty_cache()) }

// SetNumThreads applies the thread policy with n threads (see SetThreadPolicy); n must be >= 1.
func SetNumThreads(n int) error {
	if n < 1 {
		return &Error{Op: "set_num_threads", Msg: fmt.Sprintf("want n >= 1, got %d", n), Kind: KindValue}
	}
	return SetThreadPolicy(n)
}

// NumThreads is libtorch's intra-op thread count.
func NumThreads() int { return int(C.sat_get_num_threads()) }

// AffinityCPUs is the number of CPUs this process may run on (its
// sched_getaffinity mask, so taskset, cgroup cpusets and container limits
// that narrow the mask count), at least 1.
func AffinityCPUs() int { return int(C.sat_affinity_cpus()) }

// DefaultThreads is the thread count SetThreadPolicy(0) uses: libtorch's own
// default intra-op count (what torch.get_num_threads() gives a PyTorch user on
// the same machine: OMP_NUM_THREADS when set, else its count of physical
// cores), never more than AffinityCPUs, at least 1. On the 2-vCPU VMs this
// project is developed on that is 1: there 2 threads scored 1.3-1.4x faster
// when the machine was idle and 5-8x slower when other jobs kept its cores
// busy (bench/README.md, "Threads").
func DefaultThreads() int { return int(C.sat_default_threads()) }

// SetThreadPolicy sizes the CPU thread pools of the process: libtorch's
// intra-op pool to n threads (MKL, the wheel's BLAS, runs on the same OpenMP
// threads), and libtorch's inter-op pool to 1 (satrain issues no
// parallel ops; libtorch allows this once per process, before any inter-op
// work, so later calls leave it). n <= 0 means DefaultThreads. Call it on the
// torch thread: OpenMP keeps the count per thread (threads that start torch
// work later take the new count). The package applies SetThreadPolicy(0) when
// it loads.
//
// Processes that share a machine, e.g. the ranks of a distributed run, should
// split the CPUs among themselves instead, e.g.
// SetThreadPolicy(max(1, AffinityCPUs()/localWorldSize)); more threads than
// free cores make the OpenMP threads wait on each other (idle ones spin).
func SetThreadPolicy(n int) error {
	if n <= 0 {
		n = DefaultThreads()
	}
	return check("thread policy", C.sat_set_thread_policy(C.int(n)))
}

// ThreadInfo reports libtorch's CPU thread pools as the calling thread sees them.
type ThreadInfo struct{ IntraOp, InterOp int }

// Threads reports the current sizes of the two thread pools.
func Threads() ThreadInfo {
	var intra, inter C.int
	C.sat_thread_info(&intra, &inter)
	return ThreadInfo{IntraOp: int(intra), InterOp: int(inter)}
}

// ShimPath is the file this process loaded libsatorch.so from ("" when the
// loader does not say): a binary finds it beside itself first, then in the
// build tree it was built in.
func ShimPath() string {
	var p *C.char
	if err := check("shim path", C.sat_shim_path(&p)); err != nil {
		return ""
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// MallocPolicy says how the shim set glibc's allocator when it loaded:
// "keep" (freed memory stays in the process: mmap threshold 32 MiB, trim
// threshold 1 GiB, one arena for all threads), "system" (glibc's defaults, chosen with
// SATRAIN_MALLOC=system) or "refused" (glibc rejected the settings).
func MallocPolicy() string {
	switch C.sat_malloc_policy() {
	case 1:
		return "keep"
	case 0:
		return "system"
	}
	return "refused"
}

func init() {
	// The default thread policy; errors are impossible for n >= 1 short of a
	// broken libtorch, which the first real op reports.
	_ = SetThreadPolicy(0)
}

// ManualSeed seeds the default CPU generator and every CUDA generator.
func ManualSeed(seed uint64) error { return check("manual_seed", C.sat_manual_seed(C.uint64_t(seed))) }

// RNGState returns a copy of the default generator's state for a device type
// (a uint8 tensor; caller frees).
func RNGState(d Device) (*Tensor, error) {
	var out C.sat_tensor
	if err := check("rng state", C.sat_rng_state(C.int(d.Type), &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// SetRNGState restores a state returned by RNGState.
func SetRNGState(d Device, state *Tensor) error {
	if state == nil || state.c == nil {
		return &Error{Op: "set rng state", Msg: "nil state", Kind: KindValue}
	}
	return check("set rng state", C.sat_set_rng_state(C.int(d.Type), state.c))
}

// GradEnabled reports whether autograd records operations on this thread.
func GradEnabled() bool { return C.sat_grad_enabled() != 0 }

// SetGradEnabled turns autograd recording on or off for this thread and
// returns the previous setting.
func SetGradEnabled(on bool) (prev bool) {
	prev = GradEnabled()
	v := 0
	if on {
		v = 1
	}
	C.sat_set_grad_enabled(C.int(v))
	return prev
}

// NoGrad runs f with autograd recording off.
func NoGrad(f func()) {
	prev := SetGradEnabled(false)
	defer SetGradEnabled(prev)
	f()
}

// InferenceMode enters libtorch's inference mode (no autograd bookkeeping at
// all) on this thread; call the returned function to leave it. Tensors made
// inside cannot later take part in autograd.
func InferenceMode() (exit func(), err error) {
	var g C.sat_guard
	if err := check("inference mode", C.sat_inference_mode_enter(&g)); err != nil {
		return func() {}, err
	}
	return func() { C.sat_inference_mode_exit(g) }, nil
}

// Autocast enables mixed precision for ops on device type d.Type with the
// given low-precision dtype (bf16 or fp16 on CUDA, bf16 on CPU) until the
// returned function is called.
func Autocast(d Device, dt DType) (exit func() error, err error) {
	if err := check("autocast", C.sat_autocast_enter(C.int(d.Type), C.int(dt))); err != nil {
		return func() error { return nil }, err
	}
	return func() error { return check("autocast exit", C.sat_autocast_exit(C.int(d.Type))) }, nil
}
