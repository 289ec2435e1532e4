// satorch.cpp: the C ABI over libtorch used by the Go package torch.
//
// Every entry point is wrapped in SAT_TRY/SAT_CATCH so that no C++ exception
// reaches Go (an exception crossing a cgo frame aborts the process). Errors come
// back as a malloc'd sat_error whose kind lets Go tell out-of-memory apart.
//
// Builds against libtorch 2.11 (the PyTorch wheel; CMakeLists.txt refuses older). CUDA-only code is guarded on
// SATORCH_CUDA so the CPU build needs no CUDA headers.

#include "sat_internal.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/serialize.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/version.h>
#include <torch/cuda.h>

#ifdef SATORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

struct sat_dict_s {
  c10::impl::GenericDict d{c10::StringType::get(), c10::AnyType::get()};
};
struct sat_gen_s {
  at::Generator g;
};
struct sat_guard_s {
  c10::InferenceMode mode;
};

namespace {

at::IntArrayRef dims(const int64_t *shape, int ndim) { return at::IntArrayRef(shape, (size_t)ndim); }

std::vector<at::Tensor> tensor_list(const sat_tensor *ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  return v;
}

}  // namespace

extern "C" {

void sat_error_free(sat_error *e) {
  if (!e) return;
  std::free(e->msg);
  std::free(e);
}

// ---------------------------------------------------------------- library

sat_error *sat_version(char **out) {
  SAT_TRY
  *out = dup_cstr(TORCH_VERSION);
  SAT_CATCH
}

int sat_built_with_cuda(void) {
#ifdef SATORCH_CUDA
  return 1;
#else
  return 0;
#endif
}

int sat_cuda_is_available(void) {
  try {
    return torch::cuda::is_available() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

int sat_cuda_device_count(void) {
  try {
    return (int)torch::cuda::device_count();
  } catch (...) {
    return 0;
  }
}

sat_error *sat_cuda_synchronize(int device) {
  SAT_TRY
#ifdef SATORCH_CUDA
  to_device(SAT_CUDA, device);
  c10::cuda::CUDAGuard guard(device);
  c10::cuda::device_synchronize();
#else
  (void)device;
  throw std::invalid_argument("cuda synchronize: libsatorch was built without CUDA");
#endif
  SAT_CATCH
}

sat_error *sat_cuda_memory(int device, int64_t *allocated, int64_t *peak, int64_t *reserved) {
  SAT_TRY
#ifdef SATORCH_CUDA
  to_device(SAT_CUDA, device);
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  // Index 0 is the AGGREGATE pool in every version (the enum's namespace moved).
  const size_t agg = 0;
  *allocated = stats.allocated_bytes[agg].current;
  *peak = stats.allocated_bytes[agg].peak;
  *reserved = stats.reserved_bytes[agg].current;
#else
  (void)device;
  *allocated = *peak = *reserved = 0;
  throw std::invalid_argument("cuda memory stats: libsatorch was built without CUDA");
#endif
  SAT_CATCH
}

sat_error *sat_cuda_reset_peak(int device) {
  SAT_TRY
#ifdef SATORCH_CUDA
  to_device(SAT_CUDA, device);
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
#else
  (void)device;
  throw std::invalid_argument("cuda reset peak: libsatorch was built without CUDA");
#endif
  SAT_CATCH
}

sat_error *sat_cuda_empty_cache(void) {
  SAT_TRY
#ifdef SATORCH_CUDA
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  SAT_CATCH
}

sat_error *sat_set_num_threads(int n) {
  SAT_TRY
  if (n < 1) throw std::invalid_argument("set_num_threads: want n >= 1, got " + std::to_string(n));
  at::set_num_threads(n);
  SAT_CATCH
}

int sat_get_num_threads(void) { return at::get_num_threads(); }

}  // extern "C"

// ---------------------------------------------------------------- allocator and thread policy

namespace {

// glibc's defaults return freed memory to the kernel (heap top above 128 KiB is trimmed, blocks from
// 128 KiB up are mmap'd and unmapped on free), so every batch faults its activations back in page by
// page; on a VM each fault is an exit to the hypervisor. Keeping freed memory in the process removes
// those faults. The thresholds are the largest glibc accepts: mmap only above 32 MiB (HEAP_MAX/2 on
// 64-bit), trim only when 1 GiB lies free at the top of the heap. One arena: a thread other than the main
// one (a Go test's goroutine, a program that runs torch off its main thread) would otherwise get its own
// arena made of 64 MiB heaps, which glibc unmaps whenever one empties, whatever the trim threshold; small
// blocks still come from per-thread caches. SATRAIN_MALLOC=system opts out of all three.
int g_malloc_policy = 0;

__attribute__((constructor)) void sat_init_malloc(void) {
  const char *e = std::getenv("SATRAIN_MALLOC");
  if (e && *e && std::strcmp(e, "keep") != 0) return;  // "system" (or anything else): glibc's defaults
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && ok;
  ok = mallopt(M_ARENA_MAX, 1) == 1 && ok;
  g_malloc_policy = ok ? 1 : -1;
}

std::once_flag g_interop_once;

}  // namespace

extern "C" {

int sat_malloc_policy(void) { return g_malloc_policy; }

int sat_affinity_cpus(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int sat_default_threads(void) {
  int n = sat_affinity_cpus();
  try {
    int lib = at::intraop_default_num_threads();
    if (lib >= 1 && lib < n) n = lib;
  } catch (...) {
    // keep the affinity count
  }
  return n;
}

sat_error *sat_set_thread_policy(int n) {
  SAT_TRY
  if (n < 1) throw std::invalid_argument("thread policy: want n >= 1 threads, got " + std::to_string(n));
  std::call_once(g_interop_once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error &) {
      // already started or set (by the embedding program): keep what it has
    }
  });
  at::set_num_threads(n);  // the wheel's BLAS (MKL) runs on these OpenMP threads: no pool of its own
  SAT_CATCH
}

sat_error *sat_shim_path(char **out) {
  SAT_TRY
  Dl_info info{};
  const char *p = dladdr(reinterpret_cast<void *>(&sat_shim_path), &info) && info.dli_fname ? info.dli_fname : "";
  *out = dup_cstr(p);
  SAT_CATCH
}

void sat_thread_info(int *intra, int *interop) {
  *intra = at::get_num_threads();
  *interop = at::get_num_interop_threads();
}

sat_error *sat_manual_seed(uint64_t seed) {
  SAT_TRY
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
#ifdef SATORCH_CUDA
  if (torch::cuda::is_available()) {
    for (int i = 0; i < (int)torch::cuda::device_count(); i++) {
      auto g = at::cuda::detail::getDefaultCUDAGenerator(i);
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
  }
#endif
  SAT_CATCH
}

sat_error *sat_rng_state(int device_type, sat_tensor *out) {
  SAT_TRY
  if (device_type == SAT_CPU) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    *out = wrap(gen.get_state());
  } else {
#ifdef SATORCH_CUDA
    to_device(SAT_CUDA, 0);
    auto gen = at::cuda::detail::getDefaultCUDAGenerator(0);
    std::lock_guard<std::mutex> lock(gen.mutex());
    *out = wrap(gen.get_state());
#else
    throw std::invalid_argument("cuda rng state: libsatorch was built without CUDA");
#endif
  }
  SAT_CATCH
}

sat_error *sat_set_rng_state(int device_type, sat_tensor state) {
  SAT_TRY
  if (device_type == SAT_CPU) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(T(state));
  } else {
#ifdef SATORCH_CUDA
    to_device(SAT_CUDA, 0);
    auto gen = at::cuda::detail::getDefaultCUDAGenerator(0);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(T(state));
#else
    throw std::invalid_argument("cuda rng state: libsatorch was built without CUDA");
#endif
  }
  SAT_CATCH
}

int sat_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }
void sat_set_grad_enabled(int enabled) { at::GradMode::set_enabled(enabled != 0); }

sat_error *sat_inference_mode_enter(sat_guard *out) {
  SAT_TRY
  *out = new sat_guard_s();
  SAT_CATCH
}

void sat_inference_mode_exit(sat_guard g) { delete g; }

sat_error *sat_autocast_enter(int device_type, int dtype) {
  SAT_TRY
  at::ScalarType st = to_scalar(dtype);
  if (device_type == SAT_CUDA) {
#ifndef SATORCH_CUDA
    throw std::invalid_argument("cuda autocast: libsatorch was built without CUDA");
#endif
    if (st != at::kBFloat16 && st != at::kHalf)
      throw std::invalid_argument("cuda autocast supports bfloat16 and float16");
    at::autocast::set_autocast_dtype(at::kCUDA, st);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
  } else if (device_type == SAT_CPU) {
    if (st != at::kBFloat16) throw std::invalid_argument("cpu autocast supports bfloat16 only");
    at::autocast::set_autocast_dtype(at::kCPU, st);
    at::autocast::set_autocast_enabled(at::kCPU, true);
  } else {
    throw std::invalid_argument("autocast: unknown device type");
  }
  at::autocast::increment_nesting();
  SAT_CATCH
}

sat_error *sat_autocast_exit(int device_type) {
  SAT_TRY
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (device_type == SAT_CUDA) {
    at::autocast::set_autocast_enabled(at::kCUDA, false);
  } else {
    at::autocast::set_autocast_enabled(at::kCPU, false);
  }
  SAT_CATCH
}

// ---------------------------------------------------------------- generators

sat_error *sat_gen_new(uint64_t seed, sat_gen *out) {
  SAT_TRY
  *out = new sat_gen_s{at::detail::createCPUGenerator(seed)};
  SAT_CATCH
}

void sat_gen_free(sat_gen g) { delete g; }

static std::optional<at::Generator> gen_of(sat_gen g) {
  if (!g) return std::nullopt;
  return g->g;
}

// ---------------------------------------------------------------- tensors

void sat_tensor_free(sat_tensor t) { delete t; }

sat_error *sat_from_blob_copy(const void *data, const int64_t *shape, int ndim, int dtype, sat_tensor *out) {
  SAT_TRY
  auto opts = at::TensorOptions().dtype(to_scalar(dtype));
  at::Tensor t = at::empty(dims(shape, ndim), opts);
  if (t.numel() > 0) std::memcpy(t.data_ptr(), data, t.numel() * t.element_size());
  *out = wrap(t);
  SAT_CATCH
}

sat_error *sat_empty(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, int pinned,
                     sat_tensor *out) {
  SAT_TRY
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(device_type, device_index));
  if (pinned && device_type == SAT_CPU && sat_cuda_is_available()) opts = opts.pinned_memory(true);
  *out = wrap(at::empty(dims(shape, ndim), opts));
  SAT_CATCH
}

sat_error *sat_full(const int64_t *shape, int ndim, double value, int dtype, int device_type, int device_index,
                    sat_tensor *out) {
  SAT_TRY
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(device_type, device_index));
  *out = wrap(at::full(dims(shape, ndim), value, opts));
  SAT_CATCH
}

sat_error *sat_randn(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, sat_gen g,
                     sat_tensor *out) {
  SAT_TRY
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(device_type, device_index));
  if (g && device_type != SAT_CPU) {
    // Generators are CPU generators: draw there, then move.
    at::Tensor t = at::randn(dims(shape, ndim), g->g, at::TensorOptions().dtype(to_scalar(dtype)));
    *out = wrap(t.to(opts.device()));
  } else {
    *out = wrap(at::randn(dims(shape, ndim), gen_of(g), opts));
  }
  SAT_CATCH
}

sat_error *sat_uniform_(sat_tensor t, double lo, double hi, sat_gen g) {
  SAT_TRY
  if (g && !T(t).is_cpu()) {
    at::Tensor tmp = at::empty(T(t).sizes(), T(t).options().device(at::kCPU));
    tmp.uniform_(lo, hi, g->g);
    T(t).copy_(tmp);
  } else {
    T(t).uniform_(lo, hi, gen_of(g));
  }
  SAT_CATCH
}

sat_error *sat_normal_(sat_tensor t, double mean, double std, sat_gen g) {
  SAT_TRY
  if (g && !T(t).is_cpu()) {
    at::Tensor tmp = at::empty(T(t).sizes(), T(t).options().device(at::kCPU));
    tmp.normal_(mean, std, g->g);
    T(t).copy_(tmp);
  } else {
    T(t).normal_(mean, std, gen_of(g));
  }
  SAT_CATCH
}

sat_error *sat_arange(int64_t n, int dtype, int device_type, int device_index, sat_tensor *out) {
  SAT_TRY
  auto opts = at::TensorOptions().dtype(to_scalar(dtype)).device(to_device(device_type, device_index));
  *out = wrap(at::arange(n, opts));
  SAT_CATCH
}

int sat_dim(sat_tensor t) { return t && t->t.defined() ? (int)t->t.dim() : 0; }

void sat_shape(sat_tensor t, int64_t *out) {
  if (!t || !t->t.defined()) return;
  for (int64_t i = 0; i < t->t.dim(); i++) out[i] = t->t.size(i);
}

int64_t sat_numel(sat_tensor t) { return t && t->t.defined() ? t->t.numel() : 0; }
int sat_dtype(sat_tensor t) { return t && t->t.defined() ? from_scalar(t->t.scalar_type()) : -1; }

void sat_device(sat_tensor t, int *type, int *index) {
  *type = SAT_CPU;
  *index = -1;
  if (!t || !t->t.defined()) return;
  auto d = t->t.device();
  *type = d.is_cuda() ? SAT_CUDA : SAT_CPU;
  *index = d.has_index() ? d.index() : (d.is_cuda() ? 0 : -1);
}

int sat_is_contiguous(sat_tensor t) { return t && t->t.defined() && t->t.is_contiguous() ? 1 : 0; }
int sat_is_defined(sat_tensor t) { return t && t->t.defined() ? 1 : 0; }

void *sat_data_ptr(sat_tensor t) {
  if (!t || !t->t.defined() || !t->t.is_cpu()) return nullptr;
  return t->t.data_ptr();
}

sat_error *sat_copy_to(sat_tensor t, void *dst, size_t nbytes) {
  SAT_TRY
  at::Tensor c = T(t).to(at::kCPU).contiguous();
  size_t need = c.numel() * c.element_size();
  if (need != nbytes)
    throw std::invalid_argument("copy to host: tensor holds " + std::to_string(need) + " bytes, buffer has " +
                                std::to_string(nbytes));
  if (need) std::memcpy(dst, c.data_ptr(), need);
  SAT_CATCH
}

sat_error *sat_item(sat_tensor t, double *out) {
  SAT_TRY
  *out = T(t).item<double>();
  SAT_CATCH
}

sat_error *sat_to(sat_tensor t, int device_type, int device_index, int dtype, int non_blocking, sat_tensor *out) {
  SAT_TRY
  at::ScalarType st = dtype < 0 ? T(t).scalar_type() : to_scalar(dtype);
  *out = wrap(T(t).to(to_device(device_type, device_index), st, non_blocking != 0));
  SAT_CATCH
}

sat_error *sat_copy_(sat_tensor dst, sat_tensor src, int non_blocking) {
  SAT_TRY
  T(dst).copy_(T(src), non_blocking != 0);
  SAT_CATCH
}

sat_error *sat_clone(sat_tensor t, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).clone());
  SAT_CATCH
}

sat_error *sat_detach(sat_tensor t, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).detach());
  SAT_CATCH
}

sat_error *sat_shallow(sat_tensor t, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t));
  SAT_CATCH
}

sat_error *sat_fill_(sat_tensor t, double v) {
  SAT_TRY
  T(t).fill_(v);
  SAT_CATCH
}

// ---------------------------------------------------------------- elementwise

static at::Tensor binop(int op, const at::Tensor &a, const at::Tensor &b) {
  switch (op) {
    case SAT_ADD: return at::add(a, b);
    case SAT_SUB: return at::sub(a, b);
    case SAT_MUL: return at::mul(a, b);
    case SAT_DIV: return at::div(a, b);
    case SAT_MAXIMUM: return at::maximum(a, b);
    case SAT_MINIMUM: return at::minimum(a, b);
    case SAT_POW: return at::pow(a, b);
    case SAT_EQ: return at::eq(a, b);
    case SAT_GT: return at::gt(a, b);
    case SAT_LT: return at::lt(a, b);
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

static at::Tensor binop_scalar(int op, const at::Tensor &a, double s) {
  switch (op) {
    case SAT_ADD: return at::add(a, s);
    case SAT_SUB: return at::sub(a, s);
    case SAT_MUL: return at::mul(a, s);
    case SAT_DIV: return at::div(a, s);
    case SAT_MAXIMUM: return at::clamp_min(a, s);
    case SAT_MINIMUM: return at::clamp_max(a, s);
    case SAT_POW: return at::pow(a, s);
    case SAT_EQ: return at::eq(a, s);
    case SAT_GT: return at::gt(a, s);
    case SAT_LT: return at::lt(a, s);
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
}

sat_error *sat_binary(int op, sat_tensor a, sat_tensor b, sat_tensor *out) {
  SAT_TRY
  *out = wrap(binop(op, T(a), T(b)));
  SAT_CATCH
}

sat_error *sat_binary_scalar(int op, sat_tensor a, double s, sat_tensor *out) {
  SAT_TRY
  *out = wrap(binop_scalar(op, T(a), s));
  SAT_CATCH
}

sat_error *sat_binary_(int op, sat_tensor a, sat_tensor b) {
  SAT_TRY
  at::Tensor x = T(a);
  switch (op) {
    case SAT_ADD: x.add_(T(b)); break;
    case SAT_SUB: x.sub_(T(b)); break;
    case SAT_MUL: x.mul_(T(b)); break;
    case SAT_DIV: x.div_(T(b)); break;
    default: throw std::invalid_argument("in-place op " + std::to_string(op) + " not supported");
  }
  SAT_CATCH
}

sat_error *sat_binary_scalar_(int op, sat_tensor a, double s) {
  SAT_TRY
  at::Tensor x = T(a);
  switch (op) {
    case SAT_ADD: x.add_(s); break;
    case SAT_SUB: x.sub_(s); break;
    case SAT_MUL: x.mul_(s); break;
    case SAT_DIV: x.div_(s); break;
    default: throw std::invalid_argument("in-place scalar op " + std::to_string(op) + " not supported");
  }
  SAT_CATCH
}

sat_error *sat_unary(int op, sat_tensor a, sat_tensor *out) {
  SAT_TRY
  const at::Tensor &x = T(a);
  at::Tensor r;
  switch (op) {
    case SAT_NEG: r = at::neg(x); break;
    case SAT_EXP: r = at::exp(x); break;
    case SAT_LOG: r = at::log(x); break;
    case SAT_SQRT: r = at::sqrt(x); break;
    case SAT_ABS: r = at::abs(x); break;
    case SAT_TANH: r = at::tanh(x); break;
    case SAT_SIGMOID: r = at::sigmoid(x); break;
    case SAT_RELU: r = at::relu(x); break;
    case SAT_GELU: r = at::gelu(x); break;
    case SAT_SIN: r = at::sin(x); break;
    case SAT_COS: r = at::cos(x); break;
    case SAT_ISFINITE: r = at::isfinite(x); break;
    case SAT_RSQRT: r = at::rsqrt(x); break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  *out = wrap(r);
  SAT_CATCH
}

// ---------------------------------------------------------------- shape

sat_error *sat_reshape(sat_tensor t, const int64_t *shape, int ndim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).reshape(dims(shape, ndim)));
  SAT_CATCH
}

sat_error *sat_view(sat_tensor t, const int64_t *shape, int ndim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).view(dims(shape, ndim)));
  SAT_CATCH
}

sat_error *sat_permute(sat_tensor t, const int64_t *d, int ndim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).permute(dims(d, ndim)));
  SAT_CATCH
}

sat_error *sat_transpose(sat_tensor t, int64_t d0, int64_t d1, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).transpose(d0, d1));
  SAT_CATCH
}

sat_error *sat_contiguous(sat_tensor t, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).contiguous());
  SAT_CATCH
}

sat_error *sat_narrow(sat_tensor t, int64_t dim, int64_t start, int64_t len, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).narrow(dim, start, len));
  SAT_CATCH
}

sat_error *sat_select(sat_tensor t, int64_t dim, int64_t index, sat_tensor *out) {
  SAT_TRY
  *out = wrap(T(t).select(dim, index));
  SAT_CATCH
}

sat_error *sat_cat(const sat_tensor *ts, int n, int64_t dim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::cat(tensor_list(ts, n), dim));
  SAT_CATCH
}

sat_error *sat_stack(const sat_tensor *ts, int n, int64_t dim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::stack(tensor_list(ts, n), dim));
  SAT_CATCH
}

sat_error *sat_unbind(sat_tensor t, int64_t dim, sat_tensor *outs, int n) {
  SAT_TRY
  auto parts = T(t).unbind(dim);
  if ((int)parts.size() != n)
    throw std::invalid_argument("unbind: dimension has " + std::to_string(parts.size()) + " entries, want " +
                                std::to_string(n));
  for (int i = 0; i < n; i++) outs[i] = wrap(parts[i]);
  SAT_CATCH
}

sat_error *sat_index_select(sat_tensor t, int64_t dim, sat_tensor index, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::index_select(T(t), dim, T(index)));
  SAT_CATCH
}

sat_error *sat_gather(sat_tensor t, int64_t dim, sat_tensor index, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::gather(T(t), dim, T(index)));
  SAT_CATCH
}

// ---------------------------------------------------------------- reductions

sat_error *sat_reduce_all(int op, sat_tensor t, sat_tensor *out) {
  SAT_TRY
  const at::Tensor &x = T(t);
  switch (op) {
    case SAT_RED_SUM: *out = wrap(x.sum()); break;
    case SAT_RED_MEAN: *out = wrap(x.mean()); break;
    case SAT_RED_MAX: *out = wrap(x.max()); break;
    case SAT_RED_MIN: *out = wrap(x.min()); break;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
  SAT_CATCH
}

sat_error *sat_reduce_dim(int op, sat_tensor t, int64_t dim, int keepdim, sat_tensor *out) {
  SAT_TRY
  const at::Tensor &x = T(t);
  bool k = keepdim != 0;
  switch (op) {
    case SAT_RED_SUM: *out = wrap(x.sum(dim, k)); break;
    case SAT_RED_MEAN: *out = wrap(x.mean(dim, k)); break;
    case SAT_RED_MAX: *out = wrap(std::get<0>(x.max(dim, k))); break;
    case SAT_RED_MIN: *out = wrap(std::get<0>(x.min(dim, k))); break;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
  SAT_CATCH
}

sat_error *sat_max_dim(sat_tensor t, int64_t dim, int keepdim, sat_tensor *values, sat_tensor *indices) {
  SAT_TRY
  auto r = T(t).max(dim, keepdim != 0);
  *values = wrap(std::get<0>(r));
  *indices = wrap(std::get<1>(r));
  SAT_CATCH
}

sat_error *sat_argmax(sat_tensor t, int64_t dim, int keepdim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::argmax(T(t), dim, keepdim != 0));
  SAT_CATCH
}

sat_error *sat_topk(sat_tensor t, int64_t k, int64_t dim, int largest, sat_tensor *values, sat_tensor *indices) {
  SAT_TRY
  auto r = at::topk(T(t), k, dim, largest != 0, true);
  *values = wrap(std::get<0>(r));
  *indices = wrap(std::get<1>(r));
  SAT_CATCH
}

// ---------------------------------------------------------------- nn

sat_error *sat_matmul(sat_tensor a, sat_tensor b, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::matmul(T(a), T(b)));
  SAT_CATCH
}


sat_error *sat_linear(sat_tensor x, sat_tensor w, sat_tensor b, sat_tensor *out) {
  SAT_TRY
  std::optional<at::Tensor> bias;
  if (b) bias = T(b);
  *out = wrap(at::linear(T(x), T(w), bias));
  SAT_CATCH
}

sat_error *sat_layer_norm(sat_tensor x, int64_t normalized, sat_tensor w, sat_tensor b, double eps,
                          sat_tensor *out) {
  SAT_TRY
  std::optional<at::Tensor> wt, bt;
  if (w) wt = T(w);
  if (b) bt = T(b);
  *out = wrap(at::layer_norm(T(x), {normalized}, wt, bt, eps));
  SAT_CATCH
}

sat_error *sat_dropout(sat_tensor x, double p, int train, sat_tensor *out) {
  SAT_TRY
  if (p < 0 || p >= 1) throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
  *out = wrap(at::dropout(T(x), p, train != 0));
  SAT_CATCH
}

sat_error *sat_softmax(sat_tensor x, int64_t dim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::softmax(T(x), dim));
  SAT_CATCH
}

sat_error *sat_log_softmax(sat_tensor x, int64_t dim, sat_tensor *out) {
  SAT_TRY
  *out = wrap(at::log_softmax(T(x), dim));
  SAT_CATCH
}

// softmax(q kᵀ / √hd) v, differentiable, in the order of operations of PyTorch's own math path (and of
// python/satrain_model.py): scores first, then the scale. Folding the scale into q instead (one pass over
// [.., L, hd] rather than [.., L, S]) changes the rounding of the key bias's gradient, which is zero in exact
// arithmetic (softmax ignores a per-row shift) and so pure rounding noise; AdamW normalises that noise to
// steps of size lr, and the parity test's weights after one step then differ from PyTorch's by 2e-4.
static at::Tensor attention_math(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, double dropout_p,
                                 bool causal) {
  const double scale = 1.0 / std::sqrt((double)q.size(-1));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    auto L = q.size(-2), S = k.size(-2);
    at::Tensor mask = at::ones({L, S}, q.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  at::Tensor p = at::softmax(scores, -1);
  if (dropout_p > 0) p = at::dropout(p, dropout_p, true);
  return at::matmul(p, v);
}


sat_error *sat_sdpa(sat_tensor q, sat_tensor k, sat_tensor v, double dropout_p, int causal, int impl,
                    sat_tensor *out) {
  SAT_TRY
  if (T(q).dim() != 4 || T(k).dim() != 4 || T(v).dim() != 4)
    throw std::invalid_argument("attention: want q, k, v of rank 4 [batch, heads, seq, head_dim]");
  if (impl == 0) {
    *out = wrap(at::scaled_dot_product_attention(T(q), T(k), T(v), {}, dropout_p, causal != 0));
    return nullptr;
  }
  *out = wrap(attention_math(T(q), T(k), T(v), dropout_p, causal != 0));
  SAT_CATCH
}

sat_error *sat_cross_entropy(sat_tensor logits, sat_tensor target, int reduction, double label_smoothing,
                             sat_tensor *out) {
  SAT_TRY
  int64_t red;
  switch (reduction) {
    case 0: red = at::Reduction::None; break;
    case 1: red = at::Reduction::Mean; break;
    case 2: red = at::Reduction::Sum; break;
    default: throw std::invalid_argument("cross_entropy: unknown reduction " + std::to_string(reduction));
  }
  *out = wrap(at::cross_entropy_loss(T(logits), T(target), {}, red, -100, label_smoothing));
  SAT_CATCH
}

// ---------------------------------------------------------------- autograd

sat_error *sat_set_requires_grad(sat_tensor t, int req) {
  SAT_TRY
  T(t).set_requires_grad(req != 0);
  SAT_CATCH
}

int sat_requires_grad(sat_tensor t) { return t && t->t.defined() && t->t.requires_grad() ? 1 : 0; }

sat_error *sat_backward(sat_tensor t, sat_tensor grad) {
  SAT_TRY
  if (!T(t).requires_grad())
    throw std::invalid_argument("backward: tensor does not require grad and has no grad_fn");
  if (grad)
    T(t).backward(T(grad));
  else
    T(t).backward();
  SAT_CATCH
}

sat_error *sat_grad(sat_tensor t, sat_tensor *out) {
  SAT_TRY
  at::Tensor g = T(t).grad();
  *out = g.defined() ? wrap(g) : nullptr;
  SAT_CATCH
}

sat_error *sat_zero_grad(const sat_tensor *params, int n) {
  SAT_TRY
  for (int i = 0; i < n; i++) {
    at::Tensor p = T(params[i]);
    p.mutable_grad().reset();
  }
  SAT_CATCH
}

sat_error *sat_clip_grad_norm(const sat_tensor *params, int n, double max_norm, double *total) {
  SAT_TRY
  std::vector<at::Tensor> norms;
  std::vector<at::Tensor> grads;
  for (int i = 0; i < n; i++) {
    at::Tensor g = T(params[i]).grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    norms.push_back(at::linalg_vector_norm(g.detach(), 2.0, std::nullopt, false, at::kFloat));
  }
  if (grads.empty()) {
    *total = 0;
    return nullptr;
  }
  at::Tensor tn = at::linalg_vector_norm(at::stack(norms), 2.0, std::nullopt, false, at::kFloat);
  *total = tn.item<double>();
  if (max_norm > 0 && std::isfinite(*total)) {
    // Same arithmetic as torch.nn.utils.clip_grad_norm_: coef = max/(total+1e-6), clamped to 1.
    at::Tensor coef = at::clamp_max(max_norm / (tn + 1e-6), 1.0);
    for (auto &g : grads) g.mul_(coef.to(g.device(), g.scalar_type()));
  }
  SAT_CATCH
}

sat_error *sat_scale_grads(const sat_tensor *params, int n, double s) {
  SAT_TRY
  for (int i = 0; i < n; i++) {
    at::Tensor g = T(params[i]).grad();
    if (g.defined()) g.mul_(s);
  }
  SAT_CATCH
}

// ---------------------------------------------------------------- AdamW

}  // extern "C"

struct sat_adamw_s {
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
  std::vector<int64_t> steps;
  double lr, beta1, beta2, eps, wd;
  bool fused = false;              // sat_adamw_set_fused: at::_fused_adamw_ (2.x, CUDA)
  std::vector<at::Tensor> step_t;  // fused path: steps as float32 scalars on the device
};

namespace {
// One at::_fused_adamw_ call over every parameter that has a gradient: the
// same update as the loop in sat_adamw_step (torch.optim.AdamW with
// fused=True), in one multi-tensor kernel instead of ~10 per parameter.
// PyTorch's optimizer increments the step tensors before the call; so do we.
void adamw_step_fused(sat_adamw o) {
  std::vector<at::Tensor> ps, gs, ms, vs, ts;
  if (o->step_t.size() != o->params.size()) o->step_t.assign(o->params.size(), at::Tensor());
  for (size_t i = 0; i < o->params.size(); i++) {
    at::Tensor &p = o->params[i];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!o->exp_avg[i].defined()) {
      o->exp_avg[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      o->exp_avg_sq[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    if (!o->step_t[i].defined())
      o->step_t[i] = at::full({}, (double)o->steps[i], p.options().dtype(at::kFloat));
    ++o->steps[i];
    ps.push_back(p);
    gs.push_back(g);
    ms.push_back(o->exp_avg[i]);
    vs.push_back(o->exp_avg_sq[i]);
    ts.push_back(o->step_t[i]);
  }
  if (ps.empty()) return;
  at::_foreach_add_(ts, at::Scalar(1.0));
  at::_fused_adamw_(ps, gs, ms, vs, /*max_exp_avg_sqs=*/{}, ts, o->lr, o->beta1, o->beta2, o->wd, o->eps,
                    /*amsgrad=*/false, /*maximize=*/false);
}
}  // namespace

extern "C" {

sat_error *sat_adamw_new(const sat_tensor *params, int n, double lr, double beta1, double beta2, double eps,
                         double wd, sat_adamw *out) {
  SAT_TRY
  auto *o = new sat_adamw_s();
  o->params = tensor_list(params, n);
  o->exp_avg.resize(n);
  o->exp_avg_sq.resize(n);
  o->steps.assign(n, 0);
  o->lr = lr;
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->wd = wd;
  *out = o;
  SAT_CATCH
}

void sat_adamw_free(sat_adamw o) { delete o; }

void sat_adamw_set_lr(sat_adamw o, double lr) {
  if (o) o->lr = lr;
}

// The update is torch.optim.AdamW's (single-tensor form):
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
sat_error *sat_adamw_step(sat_adamw o) {
  SAT_TRY
  if (!o) throw std::invalid_argument("adamw: nil optimizer");
  at::NoGradGuard no_grad;
  if (o->fused) {
    adamw_step_fused(o);
    return nullptr;
  }
  for (size_t i = 0; i < o->params.size(); i++) {
    at::Tensor &p = o->params[i];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!o->exp_avg[i].defined()) {
      o->exp_avg[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      o->exp_avg_sq[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    int64_t step = ++o->steps[i];
    p.mul_(1.0 - o->lr * o->wd);
    o->exp_avg[i].lerp_(g, 1.0 - o->beta1);
    o->exp_avg_sq[i].mul_(o->beta2).addcmul_(g, g, 1.0 - o->beta2);
    double bc1 = 1.0 - std::pow(o->beta1, (double)step);
    double bc2 = 1.0 - std::pow(o->beta2, (double)step);
    double step_size = o->lr / bc1;
    at::Tensor denom = (o->exp_avg_sq[i].sqrt() / std::sqrt(bc2)).add_(o->eps);
    p.addcdiv_(o->exp_avg[i], denom, -step_size);
  }
  SAT_CATCH
}

sat_error *sat_adamw_get_state(sat_adamw o, int i, int64_t *step, sat_tensor *exp_avg, sat_tensor *exp_avg_sq) {
  SAT_TRY
  if (!o || i < 0 || i >= (int)o->params.size()) throw std::invalid_argument("adamw state: index out of range");
  *step = o->steps[i];
  *exp_avg = o->exp_avg[i].defined() ? wrap(o->exp_avg[i]) : nullptr;
  *exp_avg_sq = o->exp_avg_sq[i].defined() ? wrap(o->exp_avg_sq[i]) : nullptr;
  SAT_CATCH
}

sat_error *sat_adamw_set_state(sat_adamw o, int i, int64_t step, sat_tensor exp_avg, sat_tensor exp_avg_sq) {
  SAT_TRY
  if (!o || i < 0 || i >= (int)o->params.size()) throw std::invalid_argument("adamw state: index out of range");
  const at::Tensor &p = o->params[i];
  if (!T(exp_avg).sizes().equals(p.sizes()) || !T(exp_avg_sq).sizes().equals(p.sizes()))
    throw std::invalid_argument("adamw state " + std::to_string(i) + ": moment shape does not match parameter");
  o->steps[i] = step;
  if (!o->step_t.empty()) o->step_t[i] = at::Tensor();  // the fused path rebuilds it from steps[i]
  o->exp_avg[i] = T(exp_avg).to(p.device(), p.scalar_type()).clone();
  o->exp_avg_sq[i] = T(exp_avg_sq).to(p.device(), p.scalar_type()).clone();
  SAT_CATCH
}

// ---------------------------------------------------------------- fused paths (issue 18)
//
// Each fused kernel is opt-in and sits beside the plain path, which stays the
// reference: the Go side asks for the fused one and falls back to the plain
// ops when the fused one cannot run (older libtorch, a device it does not
// support, or autograd needing a derivative the fused op lacks).

int sat_fused_support(void) {
  int f = 0;
  f |= SAT_FUSED_LINEAR_GELU;
  f |= SAT_FUSED_ADAMW;
  return f;
}

}  // extern "C"

namespace {
// The dtype autocast gives a matmul on device d, if autocast is on there.
// at::_addmm_activation has no autocast rule in every version, so the fused
// path casts its inputs itself, as autocast would for at::linear.
std::optional<at::ScalarType> autocast_matmul_dtype(const at::Device &d) {
  if (at::autocast::is_autocast_enabled(d.type())) return at::autocast::get_autocast_dtype(d.type());
  return std::nullopt;
}
}  // namespace

extern "C" {

// gelu(x wᵀ + b) as one at::_addmm_activation (the bias add and GELU run in
// the GEMM epilogue on CUDA through cublasLt). *out stays NULL when the fused
// op cannot be used here; the caller then runs the plain linear + gelu:
//  - autograd would need its derivative (the op has none; the fused path is
//    for scoring, which runs without grad);
//  - no bias, a 1-d input, or operands on different devices.
// On CPU the op computes the exact (erf) GELU, as at::gelu does. On CUDA
// PyTorch's kernel computes the tanh approximation of GELU (|difference| <
// 1e-3 for every input), so there the fused scores differ from the plain ones
// by more than rounding; bench/RESULTS.md lists that measurement as pending.
sat_error *sat_linear_gelu_fused(sat_tensor x, sat_tensor w, sat_tensor b, sat_tensor *out) {
  SAT_TRY
  *out = nullptr;
  const at::Tensor &xt = T(x), &wt = T(w);
  if (!b) return nullptr;
  const at::Tensor &bt = T(b);
  bool grad = at::GradMode::is_enabled() && (xt.requires_grad() || wt.requires_grad() || bt.requires_grad());
  if (grad || xt.dim() < 2 || wt.dim() != 2 || bt.dim() != 1 || xt.device() != wt.device() ||
      bt.device() != wt.device())
    return nullptr;
  if (xt.size(-1) != wt.size(1))
    throw std::invalid_argument("linear_gelu: input has " + std::to_string(xt.size(-1)) +
                                " features, weight expects " + std::to_string(wt.size(1)));
  at::Tensor x2 = xt.reshape({-1, xt.size(-1)}), w2 = wt, b2 = bt;
  if (auto dt = autocast_matmul_dtype(xt.device())) {
    x2 = x2.to(*dt);
    w2 = w2.to(*dt);
    b2 = b2.to(*dt);
  }
  at::Tensor y = at::_addmm_activation(b2, x2, w2.t(), /*beta=*/1, /*alpha=*/1, /*use_gelu=*/true);
  std::vector<int64_t> shape(xt.sizes().begin(), xt.sizes().end());
  shape.back() = wt.size(0);
  *out = wrap(y.view(shape));
  SAT_CATCH
}

// Asks for the fused AdamW step. *active tells whether it will run: libtorch
// 2.1 or newer and every parameter on a CUDA device (PyTorch's CPU kernel for
// it only arrived in 2.4 and is not used here). Otherwise the plain loop runs.
sat_error *sat_adamw_set_fused(sat_adamw o, int on, int *active) {
  SAT_TRY
  if (!o) throw std::invalid_argument("adamw: nil optimizer");
  bool ok = false;
  ok = !o->params.empty();
  for (const auto &p : o->params)
    if (!p.is_cuda() || p.scalar_type() != o->params[0].scalar_type() || p.device() != o->params[0].device()) ok = false;
  o->fused = on != 0 && ok;
  *active = o->fused ? 1 : 0;
  SAT_CATCH
}

// ---------------------------------------------------------------- dicts and .pt files

sat_error *sat_dict_new(sat_dict *out) {
  SAT_TRY
  *out = new sat_dict_s();
  SAT_CATCH
}

void sat_dict_free(sat_dict d) { delete d; }

static sat_dict_s &D(sat_dict d) {
  if (!d) throw std::invalid_argument("nil dict");
  return *d;
}

sat_error *sat_dict_set_tensor(sat_dict d, const char *key, sat_tensor t) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(T(t)));
  SAT_CATCH
}

sat_error *sat_dict_set_int(sat_dict d, const char *key, int64_t v) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(v));
  SAT_CATCH
}

sat_error *sat_dict_set_double(sat_dict d, const char *key, double v) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(v));
  SAT_CATCH
}

sat_error *sat_dict_set_bool(sat_dict d, const char *key, int v) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(v != 0));
  SAT_CATCH
}

sat_error *sat_dict_set_string(sat_dict d, const char *key, const char *v) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(std::string(v)));
  SAT_CATCH
}

sat_error *sat_dict_set_dict(sat_dict d, const char *key, sat_dict v) {
  SAT_TRY
  D(d).d.insert_or_assign(std::string(key), c10::IValue(D(v).d.copy()));
  SAT_CATCH
}

int64_t sat_dict_size(sat_dict d) { return d ? (int64_t)d->d.size() : 0; }

static int value_type(const c10::IValue &v) {
  if (v.isNone()) return SAT_V_NONE;
  if (v.isTensor()) return SAT_V_TENSOR;
  if (v.isInt()) return SAT_V_INT;
  if (v.isDouble()) return SAT_V_DOUBLE;
  if (v.isString()) return SAT_V_STRING;
  if (v.isGenericDict()) return SAT_V_DICT;
  if (v.isBool()) return SAT_V_BOOL;
  return SAT_V_OTHER;
}

sat_error *sat_dict_entry(sat_dict d, int64_t i, char **key, int *type) {
  SAT_TRY
  auto &dd = D(d).d;
  if (i < 0 || i >= (int64_t)dd.size()) throw std::invalid_argument("dict entry: index out of range");
  auto it = dd.begin();
  std::advance(it, i);
  if (!it->key().isString()) throw std::invalid_argument("dict entry: key is not a string");
  *key = dup_cstr(it->key().toStringRef());
  *type = value_type(it->value());
  SAT_CATCH
}

static c10::IValue lookup(sat_dict d, const char *key) {
  auto &dd = D(d).d;
  auto it = dd.find(std::string(key));
  if (it == dd.end()) throw std::invalid_argument(std::string("key \"") + key + "\" not found");
  return it->value();
}

sat_error *sat_dict_get_tensor(sat_dict d, const char *key, sat_tensor *out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (!v.isTensor()) throw std::invalid_argument(std::string("key \"") + key + "\" is not a tensor");
  *out = wrap(v.toTensor());
  SAT_CATCH
}

sat_error *sat_dict_get_int(sat_dict d, const char *key, int64_t *out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (!v.isInt()) throw std::invalid_argument(std::string("key \"") + key + "\" is not an int");
  *out = v.toInt();
  SAT_CATCH
}

sat_error *sat_dict_get_double(sat_dict d, const char *key, double *out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (v.isDouble())
    *out = v.toDouble();
  else if (v.isInt())
    *out = (double)v.toInt();
  else if (v.isTensor() && v.toTensor().dim() == 0 && v.toTensor().is_floating_point())
    *out = v.toTensor().item<double>();  // how files written before 2.11 (for 1.13's safe loader) store a double
  else
    throw std::invalid_argument(std::string("key \"") + key + "\" is not a number");
  SAT_CATCH
}

sat_error *sat_dict_get_bool(sat_dict d, const char *key, int *out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (!v.isBool()) throw std::invalid_argument(std::string("key \"") + key + "\" is not a bool");
  *out = v.toBool() ? 1 : 0;
  SAT_CATCH
}

sat_error *sat_dict_get_string(sat_dict d, const char *key, char **out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (!v.isString()) throw std::invalid_argument(std::string("key \"") + key + "\" is not a string");
  *out = dup_cstr(v.toStringRef());
  SAT_CATCH
}

sat_error *sat_dict_get_dict(sat_dict d, const char *key, sat_dict *out) {
  SAT_TRY
  auto v = lookup(d, key);
  if (!v.isGenericDict()) throw std::invalid_argument(std::string("key \"") + key + "\" is not a dict");
  auto *nd = new sat_dict_s();
  nd->d = v.toGenericDict();
  *out = nd;
  SAT_CATCH
}

}  // extern "C"

// pickle_untagged renders v as torch.save lays out a file (a zip archive of
// data.pkl plus one record per tensor storage, the layout torch::pickle_save
// writes), but pickles dicts and lists without libtorch's type tags
// (torch.jit._pickle.restore_type_tag(value, "Dict[str, Any]")). The tag is a
// call into torch.jit, which PyTorch's safe loader, torch.load(path,
// weights_only=True, the default since 2.6), refuses; so the file holds only
// dicts, lists, ints, floats, bools, strings and tensors. pickle_load reads
// both this and the tagged form (an untagged dict comes back as
// Dict[Any, Any]).
static std::vector<char> pickle_untagged(const c10::IValue &value) {
  const c10::IValue &v = value;
  std::vector<char> pkl;
  torch::jit::Pickler p([&](const char *b, size_t n) { pkl.insert(pkl.end(), b, b + n); }, nullptr, nullptr,
                        nullptr, nullptr, /*tag_aggregates=*/false);
  p.protocol();
  p.pushIValue(v);
  p.stop();
  std::vector<char> out;
  out.reserve(pkl.size());
  caffe2::serialize::PyTorchStreamWriter w([&](const void *b, size_t n) -> size_t {
    const char *c = static_cast<const char *>(b);
    out.insert(out.end(), c, c + n);
    return n;
  });
  torch::jit::writeArchiveAndTensors("data", pkl.data(), pkl.size(), p.tensorData(), w);
  w.writeEndOfFile();
  return out;
}

extern "C" {

sat_error *sat_dict_save(sat_dict d, const char *path) {
  SAT_TRY
  std::vector<char> bytes = pickle_untagged(c10::IValue(D(d).d));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path + " for writing");
  f.write(bytes.data(), (std::streamsize)bytes.size());
  f.flush();
  if (!f) throw std::runtime_error(std::string("write ") + path + " failed (disk full?)");
  SAT_CATCH
}

}  // extern "C"

struct sat_bytes_s {
  std::vector<char> v;
};

extern "C" {

sat_error *sat_dict_serialize(sat_dict d, sat_bytes *out, const char **data, int64_t *len) {
  SAT_TRY
  auto *b = new sat_bytes_s{pickle_untagged(c10::IValue(D(d).d))};
  *out = b;
  *data = b->v.data();
  *len = (int64_t)b->v.size();
  SAT_CATCH
}

// Plain memory release, no libtorch call: safe from any thread.
void sat_bytes_free(sat_bytes b) { delete b; }

sat_error *sat_dict_load(const char *path, sat_dict *out) {
  SAT_TRY
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw std::runtime_error(std::string(path) + " is empty");
  c10::IValue v = torch::pickle_load(bytes);
  if (!v.isGenericDict()) throw std::runtime_error(std::string(path) + " does not hold a dictionary");
  auto *nd = new sat_dict_s();
  nd->d = v.toGenericDict();
  *out = nd;
  SAT_CATCH
}

}  // extern "C"
