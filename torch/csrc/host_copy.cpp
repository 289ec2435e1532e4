// host_copy.cpp: private host copies of many tensors in one call, for checkpoints (sat_copy_to_host).
//
// A checkpoint copies about 400 tensors (2.4 GB for the default model with its AdamW state) to the host
// while training waits. One at::Tensor::to(kCPU) per tensor copies through pageable memory: each copy is
// staged by the driver and synchronises before the next starts, and every output is fresh memory whose
// pages fault in as the copy writes them. Here, on CUDA:
//  - one pinned host allocation per output dtype, from libtorch's caching host allocator (the block is
//    kept in its cache when the copies are freed, so the next checkpoint of the same size reuses it and
//    pays no pinning; the allocator rounds each request up to a power of two);
//  - every copy enqueued non_blocking on a side stream of the tensor's device, after that stream has
//    waited for the device's current stream (so work already queued on the tensors, an optimizer step,
//    finishes first);
//  - one synchronisation per device at the end.
// Each output is its own tensor with its own storage (a slice of the pinned block, 64-byte aligned, that
// holds a reference to the block), so a serialiser writes it exactly as it writes a tensor from
// at::Tensor::to: the .pt bytes do not change. The block goes back to the cache with the last output.
//
// On the CPU each output is at::empty + copy_: a private contiguous copy, as the checkpoint writer's
// per-tensor toCPU makes (To(CPU, dtype), Contiguous, and a Clone when the input is already on the CPU).

#include "sat_internal.h"

#ifdef SATORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CachingHostAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <map>
#include <memory>

namespace {

constexpr int64_t kHostAlign = 64;

int64_t align_up(int64_t n) { return (n + kHostAlign - 1) / kHostAlign * kHostAlign; }

#ifdef SATORCH_CUDA
// Synchronises every side stream when it goes out of scope, also when an exception leaves the function
// with copies in flight: the pinned block must not go back to the cache while the DMA still writes it.
struct SyncOnExit {
  std::map<c10::DeviceIndex, c10::cuda::CUDAStream> &streams;
  ~SyncOnExit() {
    for (auto &[dev, stream] : streams) {
      try {
        stream.synchronize();
      } catch (...) {
        // an error already on its way out, or one the caller sees at its next call
      }
    }
  }
};
#endif

}  // namespace

extern "C" {

sat_error *sat_copy_to_host(const sat_tensor *ts, int n, int dtype, sat_tensor *outs, int64_t *pinned_bytes) {
  SAT_TRY
  if (n < 0) throw std::invalid_argument("copy to host: negative count " + std::to_string(n));
  if (pinned_bytes) *pinned_bytes = 0;
  std::vector<at::Tensor> in(n);
  std::vector<at::ScalarType> want(n);
  for (int i = 0; i < n; i++) {
    if (!ts[i] || !ts[i]->t.defined())
      throw std::invalid_argument("copy to host: tensor " + std::to_string(i) + " is nil or undefined");
    in[i] = ts[i]->t.detach();
    want[i] = dtype < 0 ? in[i].scalar_type() : to_scalar(dtype);
    if (!in[i].is_cpu() && !in[i].is_cuda())
      throw std::invalid_argument("copy to host: tensor " + std::to_string(i) + " is on " + in[i].device().str());
  }
  std::vector<at::Tensor> res(n);
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cpu()) continue;
    res[i] = at::empty(in[i].sizes(), at::TensorOptions().dtype(want[i]));
    res[i].copy_(in[i]);
  }
#ifdef SATORCH_CUDA
  // Offsets of each CUDA tensor's copy in the pinned block of its output dtype.
  std::map<at::ScalarType, int64_t> block_bytes;
  std::vector<int64_t> offset(n, -1);
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cuda()) continue;
    int64_t &used = block_bytes[want[i]];
    offset[i] = used;
    used += align_up(in[i].numel() * (int64_t)c10::elementSize(want[i]));
  }
  std::map<at::ScalarType, std::shared_ptr<at::DataPtr>> blocks;
  int64_t total = 0;
  for (auto &[st, bytes] : block_bytes) {
    blocks[st] = std::make_shared<at::DataPtr>(at::getHostAllocator(at::kCUDA)->allocate((size_t)bytes));
    total += bytes;
  }
  // One side stream per device, which first waits for the work queued on the device's current stream.
  std::map<c10::DeviceIndex, c10::cuda::CUDAStream> side;
  SyncOnExit sync_on_exit{side};
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cuda()) continue;
    c10::DeviceIndex dev = in[i].device().index();
    if (side.count(dev)) continue;
    c10::cuda::CUDAGuard guard(dev);
    auto stream = c10::cuda::getStreamFromPool(false, dev);
    at::cuda::CUDAEvent ready;
    ready.record(c10::cuda::getCurrentCUDAStream(dev));
    ready.block(stream);
    side.emplace(dev, stream);
  }
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cuda()) continue;
    std::shared_ptr<at::DataPtr> block = blocks[want[i]];
    void *p = static_cast<char *>(block->get()) + offset[i];
    res[i] = at::from_blob(p, in[i].sizes(), [block](void *) {}, at::TensorOptions().dtype(want[i]));
    c10::DeviceIndex dev = in[i].device().index();
    c10::cuda::CUDAGuard guard(dev);
    c10::cuda::CUDAStreamGuard on_side(side.at(dev));
    // A dtype change or a strided source is resolved on the device by copy_ (a temporary on this stream).
    res[i].copy_(in[i], /*non_blocking=*/true);
  }
  for (auto &[dev, stream] : side) stream.synchronize();  // the one wait for the copies
  if (pinned_bytes) *pinned_bytes = total;
#endif
  for (int i = 0; i < n; i++) outs[i] = wrap(std::move(res[i]));
  SAT_CATCH
}

}  // extern "C"
