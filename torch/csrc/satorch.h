/* satorch.h: the C ABI between Go (package torch) and libtorch.
 *
 * Rules every function follows:
 *  - Handles are opaque. A tensor handle owns one reference to an at::Tensor and
 *    must be released with sat_tensor_free.
 *  - A fallible function returns NULL on success or a heap-allocated sat_error
 *    (free it with sat_error_free). Results come back through out-parameters.
 *  - No C++ exception ever crosses this boundary: every entry point catches
 *    c10::Error, std::exception and anything else.
 */
#ifndef SATORCH_H
#define SATORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sat_tensor_s *sat_tensor;
typedef struct sat_dict_s *sat_dict;
typedef struct sat_gen_s *sat_gen;
typedef struct sat_adamw_s *sat_adamw;
typedef struct sat_guard_s *sat_guard;

/* Error kinds. SAT_ERR_NOT_IMPLEMENTED: the feature cannot run in this build or on this device (a CUDA graph in the
 * CPU build). */
enum { SAT_ERR_GENERIC = 1, SAT_ERR_OOM = 2, SAT_ERR_INDEX = 3, SAT_ERR_VALUE = 4, SAT_ERR_NOT_IMPLEMENTED = 5 };

typedef struct sat_error {
  int kind;
  char *msg;
} sat_error;

void sat_error_free(sat_error *e);

/* dtypes: our own stable codes. */
enum {
  SAT_FLOAT32 = 0,
  SAT_FLOAT16 = 1,
  SAT_BFLOAT16 = 2,
  SAT_INT64 = 3,
  SAT_BOOL = 4,
  SAT_INT32 = 5,
  SAT_UINT8 = 6,
  SAT_FLOAT64 = 7
};

/* device types */
enum { SAT_CPU = 0, SAT_CUDA = 1 };

/* ---- library ---- */
sat_error *sat_version(char **out);   /* "2.11.0" (malloc'd) */
int sat_built_with_cuda(void);
int sat_cuda_is_available(void);
int sat_cuda_device_count(void);
sat_error *sat_cuda_synchronize(int device);
sat_error *sat_cuda_memory(int device, int64_t *allocated, int64_t *peak, int64_t *reserved);
sat_error *sat_cuda_reset_peak(int device);
sat_error *sat_cuda_empty_cache(void);
sat_error *sat_set_num_threads(int n);
int sat_get_num_threads(void);
/* Thread policy: libtorch's intra-op pool to n (MKL, the wheel's BLAS, uses it too), the inter-op pool to 1 (once per
 * process: libtorch refuses a change after its first inter-op work). Applies to the calling thread and to
 * threads that start libtorch work later. */
sat_error *sat_set_thread_policy(int n);
void sat_thread_info(int *intra, int *interop);
/* the file this libsatorch was loaded from (malloc'd; "" when unknown) */
sat_error *sat_shim_path(char **out);
/* CPUs this process may run on (sched_getaffinity), at least 1 */
int sat_affinity_cpus(void);
/* The default intra-op thread count: libtorch's own default (what torch.get_num_threads() gives a PyTorch
 * user on this machine: OMP_NUM_THREADS / MKL_NUM_THREADS when set, else its count of physical cores),
 * never more than sat_affinity_cpus(), at least 1 */
int sat_default_threads(void);
/* 1 when the shim set glibc malloc to keep freed memory at load (mmap threshold 32 MiB, trim threshold
 * 1 GiB, one arena; SATRAIN_MALLOC unset or "keep"), 0 when opted out (SATRAIN_MALLOC=system), -1 when
 * mallopt refused */
int sat_malloc_policy(void);
sat_error *sat_manual_seed(uint64_t seed);
sat_error *sat_rng_state(int device_type, sat_tensor *out);
sat_error *sat_set_rng_state(int device_type, sat_tensor state);
int sat_grad_enabled(void);
void sat_set_grad_enabled(int enabled);
sat_error *sat_inference_mode_enter(sat_guard *out);
void sat_inference_mode_exit(sat_guard g);
sat_error *sat_autocast_enter(int device_type, int dtype);
sat_error *sat_autocast_exit(int device_type);

/* ---- generators ---- */
sat_error *sat_gen_new(uint64_t seed, sat_gen *out);
void sat_gen_free(sat_gen g);

/* ---- tensor lifecycle and inspection ---- */
void sat_tensor_free(sat_tensor t);
sat_error *sat_from_blob_copy(const void *data, const int64_t *shape, int ndim, int dtype, sat_tensor *out);
sat_error *sat_empty(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, int pinned, sat_tensor *out);
sat_error *sat_full(const int64_t *shape, int ndim, double value, int dtype, int device_type, int device_index, sat_tensor *out);
sat_error *sat_randn(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, sat_gen g, sat_tensor *out);
sat_error *sat_uniform_(sat_tensor t, double lo, double hi, sat_gen g);
sat_error *sat_normal_(sat_tensor t, double mean, double std, sat_gen g);
sat_error *sat_arange(int64_t n, int dtype, int device_type, int device_index, sat_tensor *out);
int sat_dim(sat_tensor t);
void sat_shape(sat_tensor t, int64_t *out);
int64_t sat_numel(sat_tensor t);
int sat_dtype(sat_tensor t);
void sat_device(sat_tensor t, int *type, int *index);
int sat_is_contiguous(sat_tensor t);
int sat_is_defined(sat_tensor t);
void *sat_data_ptr(sat_tensor t);
sat_error *sat_copy_to(sat_tensor t, void *dst, size_t nbytes);
sat_error *sat_item(sat_tensor t, double *out);
sat_error *sat_to(sat_tensor t, int device_type, int device_index, int dtype, int non_blocking, sat_tensor *out);
sat_error *sat_copy_(sat_tensor dst, sat_tensor src, int non_blocking);
sat_error *sat_clone(sat_tensor t, sat_tensor *out);
sat_error *sat_detach(sat_tensor t, sat_tensor *out);
sat_error *sat_shallow(sat_tensor t, sat_tensor *out);
sat_error *sat_fill_(sat_tensor t, double v);

/* ---- elementwise ---- */
enum { SAT_ADD = 0, SAT_SUB, SAT_MUL, SAT_DIV, SAT_MAXIMUM, SAT_MINIMUM, SAT_POW, SAT_EQ, SAT_GT, SAT_LT };
sat_error *sat_binary(int op, sat_tensor a, sat_tensor b, sat_tensor *out);
sat_error *sat_binary_scalar(int op, sat_tensor a, double s, sat_tensor *out);
sat_error *sat_binary_(int op, sat_tensor a, sat_tensor b);        /* in place on a */
sat_error *sat_binary_scalar_(int op, sat_tensor a, double s);      /* in place on a */
enum { SAT_NEG = 0, SAT_EXP, SAT_LOG, SAT_SQRT, SAT_ABS, SAT_TANH, SAT_SIGMOID, SAT_RELU, SAT_GELU, SAT_SIN, SAT_COS, SAT_ISFINITE, SAT_RSQRT };
sat_error *sat_unary(int op, sat_tensor a, sat_tensor *out);

/* ---- shape ---- */
sat_error *sat_reshape(sat_tensor t, const int64_t *shape, int ndim, sat_tensor *out);
sat_error *sat_view(sat_tensor t, const int64_t *shape, int ndim, sat_tensor *out);
sat_error *sat_permute(sat_tensor t, const int64_t *dims, int ndim, sat_tensor *out);
sat_error *sat_transpose(sat_tensor t, int64_t d0, int64_t d1, sat_tensor *out);
sat_error *sat_contiguous(sat_tensor t, sat_tensor *out);
sat_error *sat_narrow(sat_tensor t, int64_t dim, int64_t start, int64_t len, sat_tensor *out);
sat_error *sat_select(sat_tensor t, int64_t dim, int64_t index, sat_tensor *out);
sat_error *sat_cat(const sat_tensor *ts, int n, int64_t dim, sat_tensor *out);
sat_error *sat_stack(const sat_tensor *ts, int n, int64_t dim, sat_tensor *out);
sat_error *sat_unbind(sat_tensor t, int64_t dim, sat_tensor *outs, int n);
sat_error *sat_index_select(sat_tensor t, int64_t dim, sat_tensor index, sat_tensor *out);
sat_error *sat_gather(sat_tensor t, int64_t dim, sat_tensor index, sat_tensor *out);

/* ---- reductions ---- */
enum { SAT_RED_SUM = 0, SAT_RED_MEAN, SAT_RED_MAX, SAT_RED_MIN };
sat_error *sat_reduce_all(int op, sat_tensor t, sat_tensor *out);
sat_error *sat_reduce_dim(int op, sat_tensor t, int64_t dim, int keepdim, sat_tensor *out);
sat_error *sat_max_dim(sat_tensor t, int64_t dim, int keepdim, sat_tensor *values, sat_tensor *indices);
sat_error *sat_argmax(sat_tensor t, int64_t dim, int keepdim, sat_tensor *out);
sat_error *sat_topk(sat_tensor t, int64_t k, int64_t dim, int largest, sat_tensor *values, sat_tensor *indices);

/* ---- nn ---- */
sat_error *sat_matmul(sat_tensor a, sat_tensor b, sat_tensor *out);
sat_error *sat_linear(sat_tensor x, sat_tensor w, sat_tensor b /* may be NULL */, sat_tensor *out);
sat_error *sat_layer_norm(sat_tensor x, int64_t normalized, sat_tensor w, sat_tensor b, double eps, sat_tensor *out);
sat_error *sat_dropout(sat_tensor x, double p, int train, sat_tensor *out);
sat_error *sat_softmax(sat_tensor x, int64_t dim, sat_tensor *out);
sat_error *sat_log_softmax(sat_tensor x, int64_t dim, sat_tensor *out);
/* attention over [b, heads, s, hd]; impl: 0 = best available (SDPA on 2.x), 1 = explicit math */
sat_error *sat_sdpa(sat_tensor q, sat_tensor k, sat_tensor v, double dropout_p, int causal, int impl, sat_tensor *out);
/* cross entropy: logits [N, C], target [N] int64; reduction 0 none, 1 mean, 2 sum */
sat_error *sat_cross_entropy(sat_tensor logits, sat_tensor target, int reduction, double label_smoothing, sat_tensor *out);

/* ---- autograd ---- */
sat_error *sat_set_requires_grad(sat_tensor t, int req);
int sat_requires_grad(sat_tensor t);
sat_error *sat_backward(sat_tensor t, sat_tensor grad /* may be NULL */);
sat_error *sat_grad(sat_tensor t, sat_tensor *out); /* *out NULL when no grad */
sat_error *sat_zero_grad(const sat_tensor *params, int n);
/* clip total 2-norm of grads to max_norm (max_norm <= 0: measure only); returns the norm before clipping */
sat_error *sat_clip_grad_norm(const sat_tensor *params, int n, double max_norm, double *total);
/* multiply every defined grad by s (GradScaler unscale) */
sat_error *sat_scale_grads(const sat_tensor *params, int n, double s);

/* ---- AdamW (decoupled weight decay), state per parameter ---- */
sat_error *sat_adamw_new(const sat_tensor *params, int n, double lr, double beta1, double beta2, double eps, double wd, sat_adamw *out);
void sat_adamw_free(sat_adamw o);
sat_error *sat_adamw_step(sat_adamw o);
void sat_adamw_set_lr(sat_adamw o, double lr);
/* state of parameter i: step count and the two moments; *exp_avg NULL when not started */
sat_error *sat_adamw_get_state(sat_adamw o, int i, int64_t *step, sat_tensor *exp_avg, sat_tensor *exp_avg_sq);
sat_error *sat_adamw_set_state(sat_adamw o, int i, int64_t step, sat_tensor exp_avg, sat_tensor exp_avg_sq);

/* ---- fused paths (opt-in; the plain ops stay the reference) ---- */
enum { SAT_FUSED_LINEAR_GELU = 1, SAT_FUSED_ADAMW = 2 };
/* bit set of the fused kernels this libtorch build has (compile time; run-time limits below) */
int sat_fused_support(void);
/* gelu(x wᵀ + b) in one at::_addmm_activation; *out NULL when it cannot run here (see satorch.cpp) */
sat_error *sat_linear_gelu_fused(sat_tensor x, sat_tensor w, sat_tensor b, sat_tensor *out);
/* use at::_fused_adamw_ for the steps; *active 0 when it cannot run (libtorch < 2.1, a parameter off CUDA) */
sat_error *sat_adamw_set_fused(sat_adamw o, int on, int *active);

/* ---- FP8 linear layers for scoring (fp8.cpp): float8_e4m3fn operands, one scale per tensor ---- */
/* q = t / scale rounded to e4m3 (contiguous, t's shape), scale = amax(|t|) / 448 as a 0-dim float32 tensor
 * on t's device (1 for an all-zero tensor) */
sat_error *sat_fp8_quantize(sat_tensor t, sat_tensor *q, sat_tensor *scale);
/* q · scale in float32 (what the quantised tensor stands for) */
sat_error *sat_fp8_dequantize(sat_tensor q, sat_tensor scale, sat_tensor *out);
/* x wᵀ + b: x [..., in] quantised per call, wq [out, in] and wscale from sat_fp8_quantize, b [out] or NULL,
 * through at::_scaled_mm with a float32 result [..., out] */
sat_error *sat_fp8_linear(sat_tensor x, sat_tensor wq, sat_tensor wscale, sat_tensor b, sat_tensor *out);

/* ---- host copies for checkpoints (host_copy.cpp) ----
 * outs[i] = a private, contiguous, detached CPU copy of ts[i] in dtype (dtype < 0: ts[i]'s own), same shape;
 * ts is left untouched. CUDA tensors are copied into pinned host memory from libtorch's caching host
 * allocator (one flat buffer up to 256 MiB, else blocks of 256 MiB; each output owns a slice of one), every copy
 * enqueued non_blocking on a side stream that first waits for the device's current stream, and one
 * synchronisation at the end; CPU tensors are
 * copied into fresh memory. *pinned_bytes (may be NULL): the pinned bytes used (0 in the CPU build). On error no
 * output is set. */
sat_error *sat_copy_to_host(const sat_tensor *ts, int n, int dtype, sat_tensor *outs, int64_t *pinned_bytes);

/* ---- CUDA graphs (graph.cpp): capture a fixed-shape forward once, replay it ----
 * Every function fails with SAT_ERR_NOT_IMPLEMENTED in the CPU build. A graph belongs to one CUDA device and has
 * its own stream. stream_enter makes that stream current on the calling thread (after it waits for the stream
 * that was current), stream_exit restores the previous one (which then waits for the graph's stream).
 * capture_begin enters the stream unless entered, turns autocast's cast cache off and starts a thread-local
 * capture; capture_end(ok = 1) ends and instantiates it, capture_end(ok = 0) discards a capture whose work
 * failed; both restore the stream and the cache. replay launches the captured work on the current stream. */
typedef struct sat_graph_s *sat_graph;
sat_error *sat_graph_new(int device, sat_graph *out);
void sat_graph_free(sat_graph g); /* ends a capture left open */
sat_error *sat_graph_stream_enter(sat_graph g);
sat_error *sat_graph_stream_exit(sat_graph g);
sat_error *sat_graph_capture_begin(sat_graph g);
sat_error *sat_graph_capture_end(sat_graph g, int ok);
sat_error *sat_graph_replay(sat_graph g);

/* ---- dictionaries of IValues, saved and loaded in PyTorch's .pt format ---- */
enum { SAT_V_NONE = 0, SAT_V_TENSOR, SAT_V_INT, SAT_V_DOUBLE, SAT_V_STRING, SAT_V_DICT, SAT_V_BOOL, SAT_V_OTHER };
sat_error *sat_dict_new(sat_dict *out);
void sat_dict_free(sat_dict d);
sat_error *sat_dict_set_tensor(sat_dict d, const char *key, sat_tensor t);
sat_error *sat_dict_set_int(sat_dict d, const char *key, int64_t v);
sat_error *sat_dict_set_double(sat_dict d, const char *key, double v);
sat_error *sat_dict_set_bool(sat_dict d, const char *key, int v);
sat_error *sat_dict_set_string(sat_dict d, const char *key, const char *v);
sat_error *sat_dict_set_dict(sat_dict d, const char *key, sat_dict v);
int64_t sat_dict_size(sat_dict d);
sat_error *sat_dict_entry(sat_dict d, int64_t i, char **key, int *type);
sat_error *sat_dict_get_tensor(sat_dict d, const char *key, sat_tensor *out);
sat_error *sat_dict_get_int(sat_dict d, const char *key, int64_t *out);
sat_error *sat_dict_get_double(sat_dict d, const char *key, double *out);
sat_error *sat_dict_get_bool(sat_dict d, const char *key, int *out);
sat_error *sat_dict_get_string(sat_dict d, const char *key, char **out);
sat_error *sat_dict_get_dict(sat_dict d, const char *key, sat_dict *out);
sat_error *sat_dict_save(sat_dict d, const char *path);
/* serialise to PyTorch's .pt bytes in memory; *data is valid until sat_bytes_free(*out) */
typedef struct sat_bytes_s *sat_bytes;
sat_error *sat_dict_serialize(sat_dict d, sat_bytes *out, const char **data, int64_t *len);
void sat_bytes_free(sat_bytes b);
sat_error *sat_dict_load(const char *path, sat_dict *out);

/* ---- distributed (c10d): implemented in dist.cpp ----
 * A process group joins `world` processes through a TCPStore at host:port
 * (host_store != 0: this process runs the store's server, else it connects as
 * a client), its keys under `prefix` (NULL or "" for none). Every collective
 * is synchronous, issued by every rank in the same order, and fails with a
 * sat_error when a peer is gone or timeout_ms passes; none aborts. */
typedef struct sat_pg_s *sat_pg;
enum { SAT_DIST_GLOO = 0, SAT_DIST_NCCL = 1 };
int sat_dist_backends(void); /* bit (1 << SAT_DIST_x) set for each backend built in */
sat_error *sat_pg_new(const char *host, int port, int host_store, const char *prefix, int rank, int world,
                      int backend, int device_index, int64_t timeout_ms, sat_pg *out);
void sat_pg_free(sat_pg g);
sat_error *sat_pg_all_reduce_sum(sat_pg g, sat_tensor t);      /* in place, contiguous */
sat_error *sat_pg_broadcast(sat_pg g, sat_tensor t, int root); /* in place, contiguous */
/* *out: a new tensor [world, numel(in)] holding every rank's `in`, row r from rank r */
sat_error *sat_pg_all_gather(sat_pg g, sat_tensor in, sat_tensor *out);
/* Gradient averaging as DDP does it: every param's grad (zeros where undefined)
 * times `scale`, flattened into buckets of at most bucket_bytes, each bucket
 * summed over ranks, written back (defining missing grads). extra[n_extra]
 * rides in the last bucket, scaled by the caller, summed in place. */
sat_error *sat_pg_all_reduce_grads(sat_pg g, const sat_tensor *params, int n, double scale, float *extra, int n_extra,
                                   int64_t bucket_bytes);
sat_error *sat_pg_barrier(sat_pg g);

#ifdef __cplusplus
}
#endif
#endif
