// host_copy.cpp: private host copies of many tensors in one call, for checkpoints (sat_copy_to_host).
//
// A checkpoint copies about 400 tensors (2.4 GB for the default model with its AdamW state) to the host
// while training waits. One at::Tensor::to(kCPU) per tensor copies through pageable memory: each copy is
// staged by the driver and synchronises before the next starts, and every output is fresh memory whose
// pages fault in as the copy writes them. Here, on CUDA:
//  - the copies packed into pinned host memory from libtorch's caching host allocator, as one flat buffer
//    when they total at most 256 MiB, else in blocks of exactly 256 MiB (a tensor larger than that gets a
//    block of its own). The allocator keeps a freed block in its cache, per power-of-two size, so the
//    next checkpoint reuses the blocks and pins nothing; equal 256 MiB blocks make that hold whatever the
//    checkpoint's size (the best model's 0.8 GB and the full checkpoint's 2.4 GB share them), and pin
//    2.5 GB for 2.4 GB where one flat buffer would be rounded up to 4 GB;
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

#include <algorithm>
#include <map>
#include <memory>

namespace {

#ifdef SATORCH_CUDA
constexpr int64_t kHostAlign = 64;
constexpr int64_t kHostBlock = int64_t(256) << 20;  // a power of two, as the allocator's buckets are

int64_t align_up(int64_t n) { return (n + kHostAlign - 1) / kHostAlign * kHostAlign; }

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
  // Where each CUDA tensor's copy goes: block[i] at offset[i], in the order given.
  std::vector<int64_t> nbytes(n, 0), block(n, -1), offset(n, 0), block_size;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cuda()) continue;
    nbytes[i] = align_up(in[i].numel() * (int64_t)c10::elementSize(want[i]));
    total += nbytes[i];
  }
  const int64_t chunk = std::min(total, kHostBlock);  // one flat buffer for a small checkpoint
  int64_t open_block = -1, used = 0;
  for (int i = 0; i < n; i++) {
    if (!in[i].is_cuda()) continue;
    if (nbytes[i] > chunk) {  // a block of its own
      block[i] = (int64_t)block_size.size();
      block_size.push_back(nbytes[i]);
      continue;
    }
    if (open_block < 0 || used + nbytes[i] > chunk) {
      open_block = (int64_t)block_size.size();
      block_size.push_back(chunk);
      used = 0;
    }
    block[i] = open_block;
    offset[i] = used;
    used += nbytes[i];
  }
  std::vector<std::shared_ptr<at::DataPtr>> blocks;
  int64_t pinned = 0;
  for (int64_t b : block_size) {
    blocks.push_back(std::make_shared<at::DataPtr>(at::getHostAllocator(at::kCUDA)->allocate((size_t)b)));
    pinned += b;
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
    std::shared_ptr<at::DataPtr> owner = blocks[block[i]];
    void *p = static_cast<char *>(owner->get()) + offset[i];
    res[i] = at::from_blob(p, in[i].sizes(), [owner](void *) {}, at::TensorOptions().dtype(want[i]));
    c10::DeviceIndex dev = in[i].device().index();
    c10::cuda::CUDAGuard guard(dev);
    c10::cuda::CUDAStreamGuard on_side(side.at(dev));
    // A dtype change or a strided source is resolved on the device by copy_ (a temporary on this stream).
    res[i].copy_(in[i], /*non_blocking=*/true);
  }
  for (auto &[dev, stream] : side) stream.synchronize();  // the one wait for the copies
  if (pinned_bytes) *pinned_bytes = pinned;
#endif
  for (int i = 0; i < n; i++) outs[i] = wrap(std::move(res[i]));
  SAT_CATCH
}

}  // extern "C"
