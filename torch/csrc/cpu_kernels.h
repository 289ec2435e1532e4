// cpu_kernels.h: the shim's CPU kernels for float32 without autocast: linear layers through oneDNN's
// sgemm (scoring, and training through a custom autograd function with its own backward), the attention's
// small batched GEMMs (scoring, and training's through a custom autograd function) and, for scoring only,
// layer normalisation. libtorch's ops stay the reference path: training's softmax, dropout and layer norm,
// CUDA, other dtypes, and everything when the kernels are off (SATRAIN_CPU_GEMM=libtorch).
#pragma once

#include <ATen/ATen.h>

namespace satcpu {

// Which GEMM the CPU linear layers use: "onednn" (dnnl_sgemm found in the process, oneDNN's JIT kernels
// for the CPU at hand), or "libtorch" (at::linear, i.e. the BLAS libtorch was built with) when oneDNN is
// absent or SATRAIN_CPU_GEMM=libtorch is set.
const char *gemm_name();

// Whether the kernels here are on: false under SATRAIN_CPU_GEMM=libtorch, which keeps libtorch's
// ops everywhere (the reference path).
bool enabled();

// Turns the kernels on or off for the whole process (tests and benchmarks compare both paths in one
// process); returns the previous setting.
bool set_enabled(bool on);

// The attention kernels' variant picked for this CPU: "avx2+fma" or "baseline" (SSE2), or "libtorch" when
// disabled (SATRAIN_CPU_GEMM=libtorch).
const char *attention_variant();

// Linear layer y = x wᵀ + b for scoring: x [..., in] float32 on the CPU, w [out, in], b [out] or undefined.
// Returns an undefined tensor when this path does not apply (dtype, device, layout, oneDNN missing); the
// caller then runs at::linear. Errors from oneDNN throw std::runtime_error naming the status.
at::Tensor linear_inference(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b);

// The same layer with a gradient (training): a custom autograd function whose forward and backward
// (∂x = ∂y·w, ∂w = ∂yᵀ·x, ∂b = Σ ∂y) run through oneDNN's sgemm. Undefined when this path does not apply.
at::Tensor linear_autograd(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b);

// scores[n][i][j] = (Σ_e q[n][i][e] · k[n][j][e]) · scale, for n < N matrices: q [N, L, E] and k [N, S, E]
// with unit stride in their last dimension (any other strides), scores [N, L, S] contiguous. The sum runs
// over e in order, as a naive dot product, and is then scaled (the same roundings as a product followed by
// a scaling pass). Float32 only.
void batched_scores(const at::Tensor &q, const at::Tensor &k, float scale, at::Tensor &scores);

// out[n][i][c] = Σ_j p[n][i][j] · v[n][j][c]: p [N, L, S] contiguous, v [N, S, Ev] and out [N, L, Ev] with
// unit stride in their last dimension. The sum runs over j in order. Float32 only.
void batched_pv(const at::Tensor &p, const at::Tensor &v, at::Tensor &out);

// The attention's two products for training, C = A·B with a gradient: A [Bn, H, M, K] and B [Bn, H, K, P]
// float32 CPU tensors of any strides (the split heads' views and their transposes), C [Bn, H, M, P]
// contiguous. Forward and backward (∂A = ∂C·Bᵀ, ∂B = Aᵀ·∂C) run through the register-tiled loops of the
// scoring attention, each element summed over k in order. Without a gradient wanted it is the product
// alone. Undefined when this path does not apply (kernels off, dtype, device, shapes that broadcast, or a
// matrix of more than 2^16 elements); the caller then runs at::matmul.
at::Tensor attention_matmul(const at::Tensor &a, const at::Tensor &b);

// Layer normalisation over the last dimension for scoring: x [..., d] float32 on the CPU, w and b [d]
// (both defined). Returns an undefined tensor when this path does not apply; the caller then runs
// at::layer_norm. Mean and variance are taken in two passes in float32 (libtorch: Welford's update in
// float32); y = (x·rstd - mean·rstd)·w + b as in libtorch.
at::Tensor layer_norm_inference(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b, double eps);

}  // namespace satcpu
