// graph.cpp: CUDA graphs (at::cuda::CUDAGraph) for the fixed-shape scoring batch.
//
// A scoring pass runs the same forward on batches of one shape thousands of times; with the default model
// that is about 400 kernel launches a batch, issued one by one from Go through cgo. A graph captures them
// once and replays them with one launch. What Go drives (torch/graph.go):
//
//   sat_graph_new                      a graph for one CUDA device, with its own capture stream
//   sat_graph_stream_enter / _exit     run on that stream (the warm-up passes before capture)
//   sat_graph_capture_begin / _end     capture what this thread issues between the two
//   sat_graph_replay                   launch the captured work on the current stream
//
// Capture rules, as in torch.cuda.graph: it runs on a non-default stream (ours), allocations made during
// capture come from the graph's private memory pool and stay valid for replays, no host synchronisation may
// happen in between (libtorch raises an error and the capture is invalidated), and the addresses the
// kernels read and write are fixed: inputs are copied into a static tensor before each replay, outputs are
// read from the tensors allocated during capture. The capture mode is thread-local, so another thread's
// CUDA calls (a checkpoint being finished in the background) do not invalidate it.
//
// Autocast: while capturing, autocast's weight-cast cache is off (and cleared), so each bf16 cast of a
// weight is captured as a kernel that reads the live float32 weight. With the cache on, a cast cached
// before the capture would be baked in as a stale copy, and one cached during it would be freed when
// autocast exits.
//
// The CPU build has none of this: sat_graph_new fails with SAT_ERR_NOT_IMPLEMENTED.

#include "sat_internal.h"

#ifdef SATORCH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>

#include <optional>
#endif

#ifdef SATORCH_CUDA
struct sat_graph_s {
  sat_graph_s(c10::DeviceIndex d, c10::cuda::CUDAStream s) : device(d), stream(s) {}
  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  // the graph's private memory pool, named here so that a failed capture can hand it back (CUDAGraph::pool()
  // answers only after a successful capture)
  c10::MempoolId_t pool{0, 0};
  // set while the graph's stream is current: what to restore on exit
  std::optional<c10::cuda::CUDAStream> prev_stream;
  c10::DeviceIndex prev_device = -1;
  bool capturing = false;
  bool captured = false;
  bool prev_cache = true;
};
#else
struct sat_graph_s {};
#endif

namespace {

#ifdef SATORCH_CUDA
sat_graph_s &G(sat_graph g) {
  if (!g) throw std::invalid_argument("nil graph");
  return *g;
}

// Make g's stream current on its device, after it waits for the stream that was current there.
void enter(sat_graph_s &g) {
  if (g.prev_stream) throw std::invalid_argument("cuda graph: its stream is already current");
  g.prev_device = c10::cuda::current_device();
  c10::cuda::set_device(g.device);
  auto prev = c10::cuda::getCurrentCUDAStream(g.device);
  at::cuda::CUDAEvent ev;
  ev.record(prev);
  ev.block(g.stream);
  c10::cuda::setCurrentCUDAStream(g.stream);
  g.prev_stream = prev;
}

// Restore the stream (and device) enter replaced; the restored stream waits for g's stream.
void leave(sat_graph_s &g) {
  if (!g.prev_stream) return;
  auto prev = *g.prev_stream;
  g.prev_stream.reset();
  c10::cuda::setCurrentCUDAStream(prev);
  at::cuda::CUDAEvent ev;
  ev.record(g.stream);
  ev.block(prev);
  if (g.prev_device >= 0) c10::cuda::set_device(g.prev_device);
}

// After a capture that failed: take the stream out of capture mode, discard the partial graph, and return
// the allocator to normal and the pool to it (what CUDAGraph::capture_end and reset do after a success).
void abandon_capture(sat_graph_s &g) {
  cudaGraph_t partial = nullptr;
  if (cudaStreamEndCapture(g.stream.stream(), &partial) == cudaSuccess && partial) cudaGraphDestroy(partial);
  (void)cudaGetLastError();
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(g.device, g.pool);
  } catch (...) {
  }
  try {
    c10::cuda::CUDACachingAllocator::releasePool(g.device, g.pool);
  } catch (...) {
  }
}
#endif

[[noreturn]] void unsupported_here() {
  throw sat_unsupported(
      "CUDA graphs need the CUDA build of libsatorch (make shim TORCH_CUDA=1) and a CUDA device; this is the CPU build");
}

}  // namespace

extern "C" {

sat_error *sat_graph_new(int device, sat_graph *out) {
  SAT_TRY
  *out = nullptr;
#ifdef SATORCH_CUDA
  at::Device d = to_device(SAT_CUDA, device);  // a value error when there is no such device
  c10::cuda::CUDAGuard guard(d.index());
  auto stream = c10::cuda::getStreamFromPool(false, d.index());
  *out = new sat_graph_s(d.index(), stream);
#else
  (void)device;
  unsupported_here();
#endif
  SAT_CATCH
}

void sat_graph_free(sat_graph g) {
#ifdef SATORCH_CUDA
  if (!g) return;
  try {
    if (g->capturing) {
      // A capture never ended (the caller bailed out): end it so the stream and the allocator leave capture.
      abandon_capture(*g);
      at::autocast::set_autocast_cache_enabled(g->prev_cache);
    }
    leave(*g);
  } catch (...) {
  }
#endif
  delete g;
}

sat_error *sat_graph_stream_enter(sat_graph g) {
  SAT_TRY
#ifdef SATORCH_CUDA
  enter(G(g));
#else
  (void)g;
  unsupported_here();
#endif
  SAT_CATCH
}

sat_error *sat_graph_stream_exit(sat_graph g) {
  SAT_TRY
#ifdef SATORCH_CUDA
  if (G(g).capturing) throw std::invalid_argument("cuda graph: end the capture before leaving its stream");
  leave(G(g));
#else
  (void)g;
  unsupported_here();
#endif
  SAT_CATCH
}

sat_error *sat_graph_capture_begin(sat_graph g) {
  SAT_TRY
#ifdef SATORCH_CUDA
  sat_graph_s &s = G(g);
  if (s.captured || s.capturing) throw std::invalid_argument("cuda graph: already captured (make a new graph)");
  bool entered_here = !s.prev_stream;
  if (entered_here) enter(s);
  try {
    s.prev_cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::clear_cache();
    at::autocast::set_autocast_cache_enabled(false);
    s.pool = at::cuda::graph_pool_handle();
    s.graph.capture_begin(s.pool, cudaStreamCaptureModeThreadLocal);
    s.capturing = true;
  } catch (...) {
    at::autocast::set_autocast_cache_enabled(s.prev_cache);
    if (entered_here) leave(s);
    throw;
  }
#else
  (void)g;
  unsupported_here();
#endif
  SAT_CATCH
}

// ok == 0: the caller's capture failed (an op raised); end the capture and discard it. Either way the
// stream that was current before capture_begin (or stream_enter) is current again afterwards.
sat_error *sat_graph_capture_end(sat_graph g, int ok) {
  SAT_TRY
#ifdef SATORCH_CUDA
  sat_graph_s &s = G(g);
  if (!s.capturing) throw std::invalid_argument("cuda graph: no capture in progress");
  s.capturing = false;
  struct Restore {
    sat_graph_s &s;
    ~Restore() {
      at::autocast::set_autocast_cache_enabled(s.prev_cache);
      try {
        leave(s);
      } catch (...) {
      }
    }
  } restore{s};
  if (ok) {
    s.graph.capture_end();  // ends the capture, returns the allocator to normal, instantiates
    s.captured = true;
    return nullptr;
  }
  abandon_capture(s);
#else
  (void)g;
  (void)ok;
  unsupported_here();
#endif
  SAT_CATCH
}

sat_error *sat_graph_replay(sat_graph g) {
  SAT_TRY
#ifdef SATORCH_CUDA
  sat_graph_s &s = G(g);
  if (!s.captured) throw std::invalid_argument("cuda graph: nothing captured");
  c10::cuda::CUDAGuard guard(s.device);
  s.graph.replay();  // on the device's current stream
#else
  (void)g;
  unsupported_here();
#endif
  SAT_CATCH
}

}  // extern "C"
