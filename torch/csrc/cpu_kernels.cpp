// cpu_kernels.cpp: see cpu_kernels.h.
//
// Why these exist (bench/README.md, "CPU kernels"): libtorch 1.13 sends float32 linear layers and
// batched matmuls to the BLAS it was built with. Debian's is OpenBLAS 0.3.21, which falls back to its SSE3
// "Prescott" kernels on CPUs it does not know (newer Xeons among them), and libtorch's bmm calls that BLAS
// once per matrix with its full per-call overhead, which dominates for the small heads of the CPU presets.
// oneDNN, which libtorch already loads, picks its kernels from the CPU's instruction set instead of its
// model number; the attention's matrices are small enough that register-tiled loops beat a call per matrix.

#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <dlfcn.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <strings.h>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace satcpu {
namespace {

// oneDNN's C API (dnnl.h, stable since 1.0): row-major C = alpha·op(A)·op(B) + beta·C, returning a
// dnnl_status_t (0 = success). Looked up at run time so that a libtorch without a shared oneDNN (PyTorch
// wheels link it statically and hide it) still loads; the path is then libtorch's.
using sgemm_fn = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
struct dnnl_version_t {
  int major, minor, patch;
  const char *hash;
  unsigned cpu_runtime, gpu_runtime;
};
using version_fn = const dnnl_version_t *(*)(void);

sgemm_fn g_sgemm = nullptr;
std::atomic<bool> g_enabled{true};
std::string g_name = "libtorch";
std::once_flag g_once;

void *dnnl_symbol(const char *name) {
  void *p = dlsym(RTLD_DEFAULT, name);
  if (!p) {
    if (void *h = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_NOLOAD)) p = dlsym(h, name);
  }
  return p;
}

void init() {
  std::call_once(g_once, [] {
    // SATRAIN_CPU_GEMM=libtorch (any case): the reference path, until set_enabled(true). satrain's command
    // line refuses any value other than libtorch and onednn before this runs.
    const char *e = std::getenv("SATRAIN_CPU_GEMM");
    if (e && strcasecmp(e, "libtorch") == 0) g_enabled = false;
    g_sgemm = reinterpret_cast<sgemm_fn>(dnnl_symbol("dnnl_sgemm"));
    if (!g_sgemm) return;
    g_name = "onednn";
    if (auto v = reinterpret_cast<version_fn>(dnnl_symbol("dnnl_version"))) {
      if (const dnnl_version_t *d = v())
        g_name += " " + std::to_string(d->major) + "." + std::to_string(d->minor) + "." + std::to_string(d->patch);
    }
  });
}

// ---------------------------------------------------------------- attention's small GEMMs

// The loop bodies, written once and compiled twice below (AVX2 + FMA, baseline x86-64) so that one binary
// runs everywhere and uses 256-bit vectors and FMA where the CPU has them. Dispatch is by instruction set
// (__builtin_cpu_supports), not by CPU model. Vectors run over columns, never over the sum, so each output
// element is accumulated in the order the comments give. (The AVX2 variant contracts a·b + c into one FMA
// rounding; the baseline rounds twice.)

// Both products are C = alpha·(A·B) for one small matrix, A [M, K] and B [K, N] row-major with row strides lda and
// ldb, C [M, N] with row stride ldc. C is computed in tiles of R rows x NV vectors of 8 columns held in
// registers while k runs over the whole sum: each B row segment is loaded once per tile and used R times,
// and the R·NV accumulators are independent chains. Columns past the last multiple of 8 are done one at a
// time. Every element is Σ_k A[i][k]·B[k][j] with k in order, whatever the tile. GCC's vector extension
// (8 floats) compiles to one AVX register in the AVX2 variant and to two SSE registers in the baseline.
typedef float v8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline v8 load8(const float *p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

__attribute__((always_inline)) inline void store8(float *p, v8 v) { std::memcpy(p, &v, sizeof v); }

template <int R, int NV>
__attribute__((always_inline)) inline void tile(const float *__restrict A, int64_t lda, const float *__restrict B,
                                                int64_t ldb, float *__restrict C, int64_t ldc, int64_t K,
                                                float alpha) {
  v8 acc[R][NV];
  for (int v = 0; v < NV; v++) {
    const v8 b = load8(B + 8 * v);
    for (int r = 0; r < R; r++) acc[r][v] = A[r * lda] * b;
  }
  for (int64_t k = 1; k < K; k++) {
    v8 b[NV];
    for (int v = 0; v < NV; v++) b[v] = load8(B + k * ldb + 8 * v);
    for (int r = 0; r < R; r++) {
      const float a = A[r * lda + k];
      for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) store8(C + r * ldc + 8 * v, alpha == 1.f ? acc[r][v] : acc[r][v] * alpha);
}

template <int R>
__attribute__((always_inline)) inline void tile_col(const float *__restrict A, int64_t lda,
                                                    const float *__restrict B, int64_t ldb, float *__restrict C,
                                                    int64_t ldc, int64_t K, float alpha) {
  for (int r = 0; r < R; r++) {
    float acc = A[r * lda] * B[0];
    for (int64_t k = 1; k < K; k++) acc += A[r * lda + k] * B[k * ldb];
    C[r * ldc] = alpha == 1.f ? acc : acc * alpha;
  }
}

template <int R>
__attribute__((always_inline)) inline void tile_row(const float *A, int64_t lda, const float *B, int64_t ldb,
                                                    float *C, int64_t ldc, int64_t N, int64_t K, float alpha) {
  int64_t j = 0;
  for (; j + 16 <= N; j += 16) tile<R, 2>(A, lda, B + j, ldb, C + j, ldc, K, alpha);
  if (j + 8 <= N) {
    tile<R, 1>(A, lda, B + j, ldb, C + j, ldc, K, alpha);
    j += 8;
  }
  for (; j < N; j++) tile_col<R>(A, lda, B + j, ldb, C + j, ldc, K, alpha);
}

__attribute__((always_inline)) inline void small_gemm(const float *A, int64_t lda, const float *B, int64_t ldb,
                                                      float *C, int64_t ldc, int64_t M, int64_t N, int64_t K,
                                                      float alpha) {
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) tile_row<4>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, N, K, alpha);
  for (; i < M; i++) tile_row<1>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, N, K, alpha);
}

// One matrix of scores: out[i][j] = (Σ_e q[i][e]·k[j][e])·scale, e in order, then one rounding for the
// scale (as a product followed by a scaling pass). kt is scratch of E·S floats (kᵀ).
__attribute__((always_inline)) inline void scores_body(const float *__restrict q, int64_t qs,
                                                       const float *__restrict k, int64_t ks,
                                                       float *__restrict kt, float *__restrict out, int64_t L,
                                                       int64_t S, int64_t E, float scale) {
  for (int64_t j = 0; j < S; j++)
    for (int64_t e = 0; e < E; e++) kt[e * S + j] = k[j * ks + e];
  small_gemm(q, qs, kt, S, out, S, L, S, E, scale);
}

// One matrix of outputs: out[i][c] = Σ_j p[i][j]·v[j][c], j in order.
__attribute__((always_inline)) inline void pv_body(const float *__restrict p, const float *__restrict v,
                                                   int64_t vs, float *__restrict out, int64_t os, int64_t L,
                                                   int64_t S, int64_t Ev) {
  small_gemm(p, S, v, vs, out, os, L, Ev, S, 1.f);
}

// One row of layer normalisation: mean and biased variance over d (two passes: the sum of x, then the sum
// of (x - mean)², each in 8 lane sums added at the end), rstd = 1/√(var + eps), then
// y = (x·rstd - mean·rstd)·gamma + beta, the arrangement of libtorch's CPU kernel.
__attribute__((always_inline)) inline float hsum8(v8 v) {
  float s = 0.f;
  for (int l = 0; l < 8; l++) s += v[l];
  return s;
}

__attribute__((always_inline)) inline void ln_body(const float *__restrict x, const float *__restrict g,
                                                   const float *__restrict b, float *__restrict y, int64_t d,
                                                   float eps) {
  v8 s8 = {};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) s8 += load8(x + i);
  float sum = hsum8(s8);
  for (; i < d; i++) sum += x[i];
  const float mean = sum / (float)d;
  v8 q8 = {};
  for (i = 0; i + 8 <= d; i += 8) {
    const v8 c = load8(x + i) - mean;
    q8 += c * c;
  }
  float sq = hsum8(q8);
  for (; i < d; i++) sq += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.f / std::sqrt(sq / (float)d + eps);
  const float shift = -rstd * mean;
  for (i = 0; i + 8 <= d; i += 8) store8(y + i, (load8(x + i) * rstd + shift) * load8(g + i) + load8(b + i));
  for (; i < d; i++) y[i] = (x[i] * rstd + shift) * g[i] + b[i];
}

#define SAT_KERNELS(suffix, attr)                                                                           \
  attr void scores_##suffix(const float *q, int64_t qs, const float *k, int64_t ks, float *kt, float *out,      \
                            int64_t L, int64_t S, int64_t E, float scale) {                                  \
    scores_body(q, qs, k, ks, kt, out, L, S, E, scale);                                                     \
  }                                                                                                         \
  attr void pv_##suffix(const float *p, const float *v, int64_t vs, float *out, int64_t os, int64_t L,         \
                        int64_t S, int64_t Ev) {                                                            \
    pv_body(p, v, vs, out, os, L, S, Ev);                                                                   \
  }                                                                                                         \
  attr void ln_##suffix(const float *x, int64_t xs, const float *g, const float *b, float *y, int64_t rows,    \
                        int64_t d, float eps) {                                                             \
    for (int64_t r = 0; r < rows; r++) ln_body(x + r * xs, g, b, y + r * d, d, eps);                        \
  }                                                                                                         \
  attr void mm_##suffix(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,       \
                        int64_t M, int64_t N, int64_t K) {                                                  \
    small_gemm(A, lda, B, ldb, C, ldc, M, N, K, 1.f);                                                       \
  }

#if defined(__x86_64__) && defined(__GNUC__)
SAT_KERNELS(avx2, __attribute__((target("avx2,fma"))))
#endif
SAT_KERNELS(base, )

using scores_kernel = void (*)(const float *, int64_t, const float *, int64_t, float *, float *, int64_t, int64_t,
                               int64_t, float);
using pv_kernel = void (*)(const float *, const float *, int64_t, float *, int64_t, int64_t, int64_t, int64_t);
using ln_kernel = void (*)(const float *, int64_t, const float *, const float *, float *, int64_t, int64_t, float);
using mm_kernel = void (*)(const float *, int64_t, const float *, int64_t, float *, int64_t, int64_t, int64_t,
                           int64_t);

struct kernels {
  scores_kernel scores = scores_base;
  pv_kernel pv = pv_base;
  ln_kernel ln = ln_base;
  mm_kernel mm = mm_base;
  const char *name = "baseline";
  // SATRAIN_CPU_ISA=baseline keeps the baseline variant on any CPU: the tests run it that way too, so the
  // code a CPU without AVX2 gets is tested on one that has it.
  kernels() {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char *isa = std::getenv("SATRAIN_CPU_ISA");
    const bool baseline = isa && strcasecmp(isa, "baseline") == 0;
    if (!baseline && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      scores = scores_avx2;
      pv = pv_avx2;
      ln = ln_avx2;
      mm = mm_avx2;
      name = "avx2+fma";
    }
#endif
  }
};

const kernels &picked() {
  static const kernels k;
  return k;
}

void check_f32_unit(const at::Tensor &t, int64_t dim, const char *what) {
  if (t.scalar_type() != at::kFloat || !t.is_cpu() || t.dim() != dim || (t.size(-1) > 1 && t.stride(-1) != 1))
    throw std::invalid_argument(std::string("cpu attention kernel: ") + what +
                                " must be a float32 CPU tensor of rank " + std::to_string(dim) +
                                " with unit stride in its last dimension");
}

}  // namespace

const char *gemm_name() {
  init();
  return g_enabled ? g_name.c_str() : "libtorch";
}

bool enabled() {
  init();
  return g_enabled;
}

bool set_enabled(bool on) {
  init();
  return g_enabled.exchange(on);
}

const char *attention_variant() { return enabled() ? picked().name : "libtorch"; }

namespace {

bool linear_applies(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) {
  init();
  if (!g_sgemm || !g_enabled) return false;
  if (!x.is_cpu() || !w.is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat ||
      w.dim() != 2 || x.dim() < 1 || !w.is_contiguous() || x.size(-1) != w.size(1) || x.numel() == 0 ||
      w.size(0) == 0)
    return false;
  if (b.defined() && (!b.is_cpu() || b.scalar_type() != at::kFloat || b.dim() != 1 || b.size(0) != w.size(0)))
    return false;
  return true;
}

void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
           int64_t ldb, float beta, float *C, int64_t ldc) {
  // oneDNN sizes its OpenMP team from omp_get_max_threads() of the calling thread; libtorch sets that
  // per thread, lazily, to its pool size when asked.
  (void)at::get_num_threads();
  int st = g_sgemm(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
  if (st != 0) throw std::runtime_error("linear: oneDNN sgemm failed with status " + std::to_string(st));
}

// [M, K] rows of x: a view when its rows are evenly spaced with unit column stride (the last-position
// slice of a sequence is), a copy otherwise; *ld is the row stride.
at::Tensor rows_of(const at::Tensor &x, int64_t K, int64_t *ld) {
  at::Tensor x2 = x.reshape({-1, K});
  *ld = x2.size(0) > 1 ? x2.stride(0) : K;
  if ((K > 1 && x2.stride(1) != 1) || *ld < K) {
    x2 = x2.contiguous();
    *ld = K;
  }
  return x2;
}

// y = x wᵀ + b without autograd (callers check linear_applies).
at::Tensor linear_raw(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) {
  const int64_t K = w.size(1), N = w.size(0);
  int64_t lda;
  at::Tensor x2 = rows_of(x, K, &lda);
  const int64_t M = x2.size(0);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  at::Tensor y = at::empty({M, N}, x.options());
  float beta = 0.f;
  if (b.defined()) {
    y.copy_(b.expand({M, N}));
    beta = 1.f;
  }
  sgemm('N', 'T', M, N, K, x2.data_ptr<float>(), lda, w.data_ptr<float>(), K, beta, y.data_ptr<float>(), N);
  return y.view(shape);
}

// The same layer for training: forward as above; backward
//   ∂x = ∂y · w        [M, N] x [N, K]
//   ∂w = ∂yᵀ · x       [N, M] x [M, K]
//   ∂b = Σ_rows ∂y
// the three products libtorch's linear backward computes, through oneDNN's sgemm.
struct LinearFn : public torch::autograd::Function<LinearFn> {
  // b is an empty tensor when the layer has no bias (custom functions take no undefined tensors).
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x, const at::Tensor &w,
                            const at::Tensor &b) {
    ctx->save_for_backward({x, w});
    const bool bias = b.numel() > 0;
    ctx->saved_data["bias"] = bias;
    return linear_raw(x, w, bias ? b : at::Tensor());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const int64_t K = w.size(1), N = w.size(0);
    at::Tensor g = grads[0].reshape({-1, N}).contiguous();
    const int64_t M = g.size(0);
    at::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = at::empty({M, K}, g.options());
      sgemm('N', 'N', M, K, N, g.data_ptr<float>(), N, w.data_ptr<float>(), K, 0.f, gx.data_ptr<float>(), K);
      gx = gx.view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      int64_t ldx;
      at::Tensor x2 = rows_of(x, K, &ldx);
      gw = at::empty({N, K}, g.options());
      sgemm('T', 'N', N, K, M, g.data_ptr<float>(), N, x2.data_ptr<float>(), ldx, 0.f, gw.data_ptr<float>(), K);
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gb = g.sum(0);
    return {gx, gw, gb};
  }
};

// ---------------------------------------------------------------- training's attention products

// Copies a rows x cols matrix with strides (rs, cs) into buf, row-major and contiguous; returns buf's data.
const float *pack(const float *src, int64_t rs, int64_t cs, int64_t rows, int64_t cols, std::vector<float> &buf) {
  if ((int64_t)buf.size() < rows * cols) buf.resize(rows * cols);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) buf[r * cols + c] = src[r * rs + c * cs];
  return buf.data();
}

// C[n][h] = A[n][h]·B[n][h] for float32 CPU tensors A [Bn, H, M, K] and B [Bn, H, K, P] of any strides;
// C is a new contiguous [Bn, H, M, P]. Each matrix runs through the register-tiled loops above (every
// element Σ_k A[i][k]·B[k][j] with k in order); an operand whose last dimension is not of unit stride (a
// transposed view: kᵀ, pᵀ, qᵀ, vᵀ) is first packed into a contiguous scratch copy, O(M·K) against the
// product's O(M·K·P).
at::Tensor bmm4_raw(const at::Tensor &a, const at::Tensor &b) {
  const int64_t Bn = a.size(0), H = a.size(1), M = a.size(2), K = a.size(3), P = b.size(3);
  at::Tensor c = at::empty({Bn, H, M, P}, a.options());
  if (c.numel() == 0) return c;
  if (K == 0) return c.zero_();
  const float *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>();
  float *cp = c.data_ptr<float>();
  const int64_t a0 = a.stride(0), a1 = a.stride(1), ar = a.stride(2), ac = a.stride(3);
  const int64_t b0 = b.stride(0), b1 = b.stride(1), br = b.stride(2), bc = b.stride(3);
  const bool a_rows = ac == 1 || K == 1, b_rows = bc == 1 || P == 1;
  const mm_kernel f = picked().mm;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, M * K * P));
  at::parallel_for(0, Bn * H, grain, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> abuf, bbuf;
    for (int64_t i = i0; i < i1; i++) {
      const int64_t n = i / H, h = i % H;
      const float *A = ap + n * a0 + h * a1, *B = bp + n * b0 + h * b1;
      int64_t lda = M > 1 ? ar : K, ldb = K > 1 ? br : P;
      if (!a_rows) {
        A = pack(A, ar, ac, M, K, abuf);
        lda = K;
      }
      if (!b_rows) {
        B = pack(B, br, bc, K, P, bbuf);
        ldb = P;
      }
      f(A, lda, B, ldb, cp + i * M * P, P, M, P, K);
    }
  });
  return c;
}

// The same product with a gradient: ∂A = ∂C·Bᵀ and ∂B = Aᵀ·∂C, both again through bmm4_raw.
struct AttnMatmulFn : public torch::autograd::Function<AttnMatmulFn> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &a, const at::Tensor &b) {
    ctx->save_for_backward({a, b});
    return bmm4_raw(a, b);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1], &g = grads[0];
    at::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = bmm4_raw(g, b.transpose(2, 3));
    if (ctx->needs_input_grad(1)) gb = bmm4_raw(a.transpose(2, 3), g);
    return {ga, gb};
  }
};

}  // namespace

at::Tensor attention_matmul(const at::Tensor &a, const at::Tensor &b) {
  if (!enabled()) return {};
  for (const at::Tensor *t : {&a, &b})
    if (!t->is_cpu() || t->scalar_type() != at::kFloat || t->dim() != 4 || t->layout() != at::kStrided) return {};
  const int64_t M = a.size(2), K = a.size(3), P = b.size(3);
  if (b.size(0) != a.size(0) || b.size(1) != a.size(1) || b.size(2) != K) return {};
  // Every operand of the forward and backward products (and the packing scratch) within 2^16 floats
  // (256 KiB): the loops keep no cache blocking, so larger matrices stay with libtorch's BLAS.
  constexpr int64_t lim = int64_t(1) << 16;
  if (M * K > lim || K * P > lim || M * P > lim) return {};
  if (at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad())) return AttnMatmulFn::apply(a, b);
  return bmm4_raw(a, b);
}

at::Tensor linear_inference(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) {
  if (!linear_applies(x, w, b)) return {};
  return linear_raw(x, w, b);
}

at::Tensor linear_autograd(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) {
  if (!linear_applies(x, w, b)) return {};
  return LinearFn::apply(x, w, b.defined() ? b : at::empty({0}, w.options()));
}

void batched_scores(const at::Tensor &q, const at::Tensor &k, float scale, at::Tensor &scores) {
  check_f32_unit(q, 3, "q");
  check_f32_unit(k, 3, "k");
  const int64_t N = q.size(0), L = q.size(1), E = q.size(2), S = k.size(1);
  if (k.size(0) != N || k.size(2) != E || !scores.is_contiguous() || scores.scalar_type() != at::kFloat ||
      scores.size(0) != N || scores.size(1) != L || scores.size(2) != S)
    throw std::invalid_argument("cpu attention kernel: scores shape does not match q and k");
  if (N == 0 || L == 0 || S == 0) return;
  if (E == 0) {
    scores.zero_();
    return;
  }
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>();
  float *sp = scores.data_ptr<float>();
  const int64_t qn = q.stride(0), qs = q.stride(1), kn = k.stride(0), ks = k.stride(1);
  const scores_kernel f = picked().scores;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, L * S * E));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    thread_local std::vector<float> kt;
    if ((int64_t)kt.size() < E * S) kt.resize(E * S);
    for (int64_t n = n0; n < n1; n++)
      f(qp + n * qn, qs, kp + n * kn, ks, kt.data(), sp + n * L * S, L, S, E, scale);
  });
}

void batched_pv(const at::Tensor &p, const at::Tensor &v, at::Tensor &out) {
  check_f32_unit(v, 3, "v");
  check_f32_unit(out, 3, "out");
  const int64_t N = p.size(0), L = p.size(1), S = p.size(2), Ev = v.size(2);
  if (!p.is_contiguous() || p.scalar_type() != at::kFloat || v.size(0) != N || v.size(1) != S ||
      out.size(0) != N || out.size(1) != L || out.size(2) != Ev)
    throw std::invalid_argument("cpu attention kernel: p, v and out shapes do not match");
  if (N == 0 || L == 0 || Ev == 0) return;
  if (S == 0) {
    out.zero_();
    return;
  }
  const float *pp = p.data_ptr<float>(), *vp = v.data_ptr<float>();
  float *op = out.data_ptr<float>();
  const int64_t vn = v.stride(0), vs = v.stride(1), on = out.stride(0), os = out.stride(1);
  const pv_kernel f = picked().pv;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, L * S * Ev));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) f(pp + n * L * S, vp + n * vn, vs, op + n * on, os, L, S, Ev);
  });
}

at::Tensor layer_norm_inference(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b, double eps) {
  if (!enabled() || !x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() < 1 || !w.defined() || !b.defined())
    return {};
  const int64_t d = x.size(-1);
  for (const at::Tensor *t : {&w, &b})
    if (!t->is_cpu() || t->scalar_type() != at::kFloat || t->dim() != 1 || t->size(0) != d || !t->is_contiguous())
      return {};
  if (d == 0 || x.numel() == 0) return {};
  int64_t xs;
  const at::Tensor x2 = rows_of(x, d, &xs);
  const int64_t rows = x2.size(0);
  at::Tensor y = at::empty({rows, d}, x.options());
  const float *xp = x2.data_ptr<float>(), *gp = w.data_ptr<float>(), *bp = b.data_ptr<float>();
  float *yp = y.data_ptr<float>();
  const ln_kernel f = picked().ln;
  const float e = (float)eps;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / d);
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) { f(xp + r0 * xs, xs, gp, bp, yp + r0 * d, r1 - r0, d, e); });
  return y.view(x.sizes());
}

}  // namespace satcpu
