// fp8.cpp: FP8 linear layers for the scoring cascade's cheap pass (--score-precision fp8): operands in
// float8_e4m3fn with one scale per tensor, multiplied by at::_scaled_mm with a float32 result.
//
// Same rules as satorch.cpp: every entry point catches every C++ exception and returns a sat_error;
// results come back through out-parameters.
//
// Scales: a tensor t is stored as q = t / s rounded to e4m3, with s = amax(|t|) / 448 (448 is e4m3's
// largest finite value), so the largest element maps to ±448 and nothing overflows; an all-zero tensor
// gets s = 1 (it quantises to zeros, no division by zero). at::_scaled_mm computes (q_a · q_bᵀ) · s_a · s_b,
// accumulating in float32. e4m3 keeps 3 mantissa bits: each element is within 2⁻⁴ of its value
// relatively (2⁻¹⁰·s absolutely where it falls in the subnormal range).
//
// libtorch 2.11 runs at::_scaled_mm with float8 operands on the CPU (a reference kernel, no faster than
// float32 there) and on CUDA devices of compute capability 8.9 or newer. CUDA also wants the inner and
// output dimensions to be multiples of 16 and the second operand column-major: a weight [out, in] stored
// row-major and passed transposed is exactly that. The bias is added in float32 after the product (CUDA's
// kernel takes no float32 bias with a float32 result).

#include "satorch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

// The tensor handle, defined identically in satorch.cpp (one definition in every translation unit that
// uses it).
struct sat_tensor_s {
  at::Tensor t;
};

namespace {

constexpr double kE4M3Max = 448.0;

char *fp8_dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

sat_error *fp8_error(int kind, const std::string &msg) {
  sat_error *e = static_cast<sat_error *>(std::malloc(sizeof(sat_error)));
  if (!e) return nullptr;
  e->kind = kind;
  e->msg = fp8_dup(msg);
  return e;
}

int fp8_kind(const std::string &msg) {
  if (msg.find("out of memory") != std::string::npos || msg.find("OutOfMemory") != std::string::npos)
    return SAT_ERR_OOM;
  return SAT_ERR_GENERIC;
}

const at::Tensor &fp8_T(sat_tensor t) {
  if (!t) throw std::invalid_argument("nil tensor");
  return t->t;
}

// The per-tensor scale amax(|t|)/448 as a 0-dim float32 tensor on t's device (no host sync), 1 for an
// all-zero tensor. A NaN amax also gives 1, so the NaN reaches the result rather than the scale.
at::Tensor fp8_scale(const at::Tensor &t) {
  at::Tensor amax = t.detach().abs().amax().to(at::kFloat);
  return at::where(amax > 0, amax / kE4M3Max, at::ones_like(amax));
}

// t / scale rounded to e4m3. The clamp keeps a quotient that rounds a hair above 448 from becoming
// NaN (e4m3fn has no infinity).
at::Tensor fp8_quantize(const at::Tensor &t, const at::Tensor &scale) {
  return (t.detach().to(at::kFloat) / scale).clamp(-kE4M3Max, kE4M3Max).to(at::kFloat8_e4m3fn).contiguous();
}

}  // namespace

#define FP8_TRY try {
#define FP8_CATCH                                                                      \
  return nullptr;                                                                      \
  }                                                                                    \
  catch (const c10::OutOfMemoryError &e) {                                             \
    return fp8_error(SAT_ERR_OOM, e.what_without_backtrace());                         \
  }                                                                                    \
  catch (const c10::Error &e) {                                                        \
    std::string m = e.what_without_backtrace();                                        \
    return fp8_error(fp8_kind(m), m);                                                  \
  }                                                                                    \
  catch (const std::bad_alloc &e) {                                                    \
    return fp8_error(SAT_ERR_OOM, std::string("host out of memory: ") + e.what());     \
  }                                                                                    \
  catch (const std::invalid_argument &e) {                                             \
    return fp8_error(SAT_ERR_VALUE, e.what());                                         \
  }                                                                                    \
  catch (const std::exception &e) {                                                    \
    std::string m = e.what();                                                          \
    return fp8_error(fp8_kind(m), m);                                                  \
  }                                                                                    \
  catch (...) {                                                                        \
    return fp8_error(SAT_ERR_GENERIC, "unknown C++ exception");                        \
  }

extern "C" {

sat_error *sat_fp8_quantize(sat_tensor t, sat_tensor *q, sat_tensor *scale) {
  *q = nullptr;
  *scale = nullptr;
  FP8_TRY
  const at::Tensor &tt = fp8_T(t);
  if (!at::isFloatingType(tt.scalar_type()))
    throw std::invalid_argument(std::string("fp8 quantize: want a floating-point tensor, got ") +
                                c10::toString(tt.scalar_type()));
  at::Tensor s = fp8_scale(tt);
  at::Tensor qt = fp8_quantize(tt, s);
  *q = new sat_tensor_s{std::move(qt)};
  *scale = new sat_tensor_s{std::move(s)};
  FP8_CATCH
}

sat_error *sat_fp8_dequantize(sat_tensor q, sat_tensor scale, sat_tensor *out) {
  *out = nullptr;
  FP8_TRY
  const at::Tensor &qt = fp8_T(q), &st = fp8_T(scale);
  if (qt.scalar_type() != at::kFloat8_e4m3fn)
    throw std::invalid_argument(std::string("fp8 dequantize: want float8_e4m3fn, got ") +
                                c10::toString(qt.scalar_type()));
  *out = new sat_tensor_s{qt.to(at::kFloat) * st};
  FP8_CATCH
}

sat_error *sat_fp8_linear(sat_tensor x, sat_tensor wq, sat_tensor wscale, sat_tensor b, sat_tensor *out) {
  *out = nullptr;
  FP8_TRY
  const at::Tensor &xt = fp8_T(x), &w8 = fp8_T(wq), &ws = fp8_T(wscale);
  if (w8.scalar_type() != at::kFloat8_e4m3fn || w8.dim() != 2)
    throw std::invalid_argument("fp8 linear: the weight must be a 2-d float8_e4m3fn tensor (sat_fp8_quantize)");
  if (ws.numel() != 1 || ws.scalar_type() != at::kFloat)
    throw std::invalid_argument("fp8 linear: the weight scale must be one float32 value");
  if (xt.dim() < 1 || xt.size(-1) != w8.size(1))
    throw std::invalid_argument("fp8 linear: input has " + std::to_string(xt.dim() ? xt.size(-1) : 0) +
                                " features, weight expects " + std::to_string(w8.size(1)));
  if (xt.device() != w8.device())
    throw std::invalid_argument("fp8 linear: input on " + xt.device().str() + ", weight on " + w8.device().str());
  at::Tensor x2 = xt.reshape({-1, xt.size(-1)});
  at::Tensor xs = fp8_scale(x2);
  at::Tensor x8 = fp8_quantize(x2, xs);
  at::Tensor y = at::_scaled_mm(x8, w8.t(), xs, ws.reshape({}), std::nullopt, std::nullopt, at::kFloat,
                                /*use_fast_accum=*/false);
  if (b) y.add_(fp8_T(b).to(at::kFloat));
  std::vector<int64_t> shape(xt.sizes().begin(), xt.sizes().end());
  shape.back() = w8.size(0);
  *out = new sat_tensor_s{y.view(shape)};
  FP8_CATCH
}

}  // extern "C"
