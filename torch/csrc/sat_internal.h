// sat_internal.h: what the shim's translation units share (not part of the C ABI): the tensor handle, the
// conversions between our codes and libtorch's (dtypes, devices), and the one place C++ exceptions become sat_errors
// (SAT_TRY / SAT_CATCH), with the exception type a feature throws when this build or device cannot run it.
//
// satorch.cpp, host_copy.cpp and graph.cpp include it. fp8.cpp and dist.cpp predate it and carry their own
// copies of the handle and error helpers (identical definitions, so the one-definition rule holds).
#ifndef SAT_INTERNAL_H
#define SAT_INTERNAL_H

#include "satorch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

struct sat_tensor_s {
  at::Tensor t;
};

// Thrown where a feature cannot run in this build or on this device (a CUDA graph in the CPU build, say).
// SAT_CATCH turns it into SAT_ERR_NOT_IMPLEMENTED, which Go reports as errors.ErrUnsupported.
struct sat_unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace {

inline char *dup_cstr(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

inline sat_error *make_error(int kind, const std::string &msg) {
  sat_error *e = static_cast<sat_error *>(std::malloc(sizeof(sat_error)));
  if (!e) return nullptr;  // nothing sensible left to do
  e->kind = kind;
  e->msg = dup_cstr(msg);
  return e;
}

inline int kind_of(const std::string &msg) {
  if (msg.find("out of memory") != std::string::npos || msg.find("OutOfMemory") != std::string::npos)
    return SAT_ERR_OOM;
  return SAT_ERR_GENERIC;
}

inline sat_tensor wrap(at::Tensor t) { return new sat_tensor_s{std::move(t)}; }

inline const at::Tensor &T(sat_tensor t) {
  if (!t) throw std::invalid_argument("nil tensor");
  return t->t;
}

inline at::ScalarType to_scalar(int dtype) {
  switch (dtype) {
    case SAT_FLOAT32: return at::kFloat;
    case SAT_FLOAT16: return at::kHalf;
    case SAT_BFLOAT16: return at::kBFloat16;
    case SAT_INT64: return at::kLong;
    case SAT_BOOL: return at::kBool;
    case SAT_INT32: return at::kInt;
    case SAT_UINT8: return at::kByte;
    case SAT_FLOAT64: return at::kDouble;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

inline int from_scalar(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return SAT_FLOAT32;
    case at::kHalf: return SAT_FLOAT16;
    case at::kBFloat16: return SAT_BFLOAT16;
    case at::kLong: return SAT_INT64;
    case at::kBool: return SAT_BOOL;
    case at::kInt: return SAT_INT32;
    case at::kByte: return SAT_UINT8;
    case at::kDouble: return SAT_FLOAT64;
    default: return -1;
  }
}

inline at::Device to_device(int type, int index) {
  if (type == SAT_CPU) return at::Device(at::kCPU);
  if (type == SAT_CUDA) {
#ifndef SATORCH_CUDA
    throw std::invalid_argument("cuda requested but libsatorch was built without CUDA (rebuild with TORCH_CUDA=1)");
#else
    if (!torch::cuda::is_available()) throw std::invalid_argument("cuda requested but no CUDA device is available");
    if (index < 0 || index >= (int)torch::cuda::device_count())
      throw std::invalid_argument("cuda:" + std::to_string(index) + " does not exist (" +
                                  std::to_string(torch::cuda::device_count()) + " devices)");
    return at::Device(at::kCUDA, index);
#endif
  }
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

}  // namespace

#define SAT_TRY try {
#define SAT_CATCH                                                                  \
  return nullptr;                                                                  \
  }                                                                                \
  catch (const c10::OutOfMemoryError &e) {                                         \
    return make_error(SAT_ERR_OOM, e.what_without_backtrace());                    \
  }                                                                                \
  catch (const c10::IndexError &e) {                                               \
    return make_error(SAT_ERR_INDEX, e.what_without_backtrace());                  \
  }                                                                                \
  catch (const c10::Error &e) {                                                    \
    std::string m = e.what_without_backtrace();                                    \
    return make_error(kind_of(m), m);                                              \
  }                                                                                \
  catch (const std::bad_alloc &e) {                                                \
    return make_error(SAT_ERR_OOM, std::string("host out of memory: ") + e.what()); \
  }                                                                                \
  catch (const std::invalid_argument &e) {                                         \
    return make_error(SAT_ERR_VALUE, e.what());                                    \
  }                                                                                \
  catch (const sat_unsupported &e) {                                               \
    return make_error(SAT_ERR_NOT_IMPLEMENTED, e.what());                          \
  }                                                                                \
  catch (const std::exception &e) {                                                \
    std::string m = e.what();                                                      \
    return make_error(kind_of(m), m);                                              \
  }                                                                                \
  catch (...) {                                                                    \
    return make_error(SAT_ERR_GENERIC, "unknown C++ exception");                   \
  }

#endif
