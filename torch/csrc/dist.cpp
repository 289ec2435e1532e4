// dist.cpp: the C ABI over PyTorch's c10d (the layer under torch.distributed):
// a TCPStore rendezvous, a PrefixStore per restart attempt, and a process group
// (Gloo on CPU, NCCL on CUDA) with the four collectives satrain needs.
//
// Same rules as satorch.cpp: every entry point catches every C++ exception and
// returns a sat_error, so a peer that dies or a collective that times out comes
// back to Go as an error; nothing here may abort the process.
//
// The shim holds the concrete backend (Gloo or NCCL) through its base class,
// c10d::Backend, which carries the collectives. Gloo and NCCL headers are optional at build time (CMake defines
// SATORCH_GLOO / SATORCH_NCCL when it finds them); without them the backend
// is refused with an error at run time.

#include "satorch.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <torch/csrc/distributed/c10d/Backend.hpp>

#ifdef SATORCH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(SATORCH_CUDA) && defined(SATORCH_NCCL)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// The tensor handle, defined identically in satorch.cpp (one definition in
// every translation unit that uses it).
struct sat_tensor_s {
  at::Tensor t;
};

using sat_backend = c10d::Backend;  // the base of ProcessGroupGloo and ProcessGroupNCCL

struct sat_pg_s {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<sat_backend> pg;
  int rank = 0;
  int world = 1;
  std::chrono::milliseconds timeout{0};
  // NCCL: the CUDA device of this rank. NCCL moves only CUDA tensors, so a collective on a CPU tensor (the
  // all-gathers of scores and of the config check, whose values live in Go slices) is staged through it.
  int cuda_device = -1;
};

namespace {

char *dist_dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

sat_error *dist_error(int kind, const std::string &msg) {
  sat_error *e = static_cast<sat_error *>(std::malloc(sizeof(sat_error)));
  if (!e) return nullptr;
  e->kind = kind;
  e->msg = dist_dup(msg);
  return e;
}

const at::Tensor &dist_tensor(sat_tensor t) {
  if (!t) throw std::invalid_argument("nil tensor");
  return t->t;
}

sat_pg_s &group(sat_pg g) {
  if (!g || !g->pg) throw std::invalid_argument("process group is closed");
  return *g;
}

// Waits for a collective; Work::wait throws on the backend's error (peer gone)
// or when the timeout passes.
void finish(const sat_pg_s &g, const c10::intrusive_ptr<c10d::Work> &w) { w->wait(g.timeout); }

// The tensor a collective runs on: t itself, or for a CPU tensor on NCCL a copy on the group's device (the
// caller copies results back).
at::Tensor on_backend(const sat_pg_s &g, const at::Tensor &t) {
  if (g.cuda_device >= 0 && t.is_cpu()) return t.to(at::Device(at::kCUDA, g.cuda_device));
  return t;
}

// Quiets libtorch's log while it is in scope. c10d logs every failed bind
// and connect attempt of the rendezvous to stderr; the caller gets the
// failure as one error instead. Rendezvous runs once, on the torch thread.
class QuietLog {
 public:
#ifdef C10_USE_GLOG
  QuietLog() : saved_(FLAGS_minloglevel) { FLAGS_minloglevel = google::GLOG_FATAL; }
  ~QuietLog() { FLAGS_minloglevel = saved_; }
#else
  QuietLog() : saved_(FLAGS_caffe2_log_level) { FLAGS_caffe2_log_level = 3; }  // FATAL
  ~QuietLog() { FLAGS_caffe2_log_level = saved_; }
#endif
 private:
  int saved_;
};

}  // namespace

#define DIST_TRY try {
#define DIST_CATCH                                                                  \
  return nullptr;                                                                   \
  }                                                                                 \
  catch (const c10::Error &e) {                                                     \
    return dist_error(SAT_ERR_GENERIC, e.what_without_backtrace());                 \
  }                                                                                 \
  catch (const std::invalid_argument &e) {                                          \
    return dist_error(SAT_ERR_VALUE, e.what());                                     \
  }                                                                                 \
  catch (const std::bad_alloc &e) {                                                 \
    return dist_error(SAT_ERR_OOM, std::string("host out of memory: ") + e.what()); \
  }                                                                                 \
  catch (const std::exception &e) {                                                 \
    return dist_error(SAT_ERR_GENERIC, e.what());                                   \
  }                                                                                 \
  catch (...) {                                                                     \
    return dist_error(SAT_ERR_GENERIC, "unknown C++ exception");                    \
  }

extern "C" {

int sat_dist_backends(void) {
  int b = 0;
#ifdef SATORCH_GLOO
  b |= 1 << SAT_DIST_GLOO;
#endif
#if defined(SATORCH_CUDA) && defined(SATORCH_NCCL)
  b |= 1 << SAT_DIST_NCCL;
#endif
  return b;
}

sat_error *sat_pg_new(const char *host, int port, int host_store, const char *prefix, int rank, int world,
                      int backend, int device_index, int64_t timeout_ms, sat_pg *out) {
  DIST_TRY
  *out = nullptr;
  if (!host || !*host) throw std::invalid_argument("empty store host");
  if (port < 0 || port > 65535) throw std::invalid_argument("store port " + std::to_string(port) + " out of range");
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rank " + std::to_string(rank) + " outside world of " + std::to_string(world));
  if (timeout_ms <= 0) throw std::invalid_argument("timeout must be positive");
  auto timeout = std::chrono::milliseconds(timeout_ms);
  QuietLog quiet;

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = host_store != 0;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = false;  // the process group's own rendezvous waits for everyone
  so.timeout = timeout;
  so.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
  if (prefix && *prefix) store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);

  auto g = std::make_unique<sat_pg_s>();
  g->store = store;
  g->rank = rank;
  g->world = world;
  g->timeout = timeout;

  if (backend == SAT_DIST_GLOO) {
#ifdef SATORCH_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // One device for every pair: the address this host's name resolves to,
    // falling back to loopback (what torch.distributed does without
    // GLOO_SOCKET_IFNAME).
    const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
#else
    throw std::invalid_argument("libsatorch was built without the Gloo headers (install libgloo-dev and rebuild)");
#endif
  } else if (backend == SAT_DIST_NCCL) {
#if defined(SATORCH_CUDA) && defined(SATORCH_NCCL)
    // Untested here (no GPU in CI). Blocking wait makes a timed-out or failed
    // collective throw in the waiting thread instead of letting NCCL's watchdog
    // tear the process down; the variables are read by the constructor.
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 1);
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0", 1);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    if (device_index < 0) throw std::invalid_argument("nccl: negative device index " + std::to_string(device_index));
    g->cuda_device = device_index;  // tensors carry their device; CPU tensors are staged through this one
    g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
    throw std::invalid_argument("libsatorch was built without CUDA and NCCL (rebuild with TORCH_CUDA=1)");
#endif
  } else {
    throw std::invalid_argument("unknown process group backend " + std::to_string(backend));
  }
  *out = g.release();
  DIST_CATCH
}

void sat_pg_free(sat_pg g) { delete g; }

sat_error *sat_pg_all_reduce_sum(sat_pg g, sat_tensor t) {
  DIST_TRY
  auto &pg = group(g);
  const at::Tensor &x = dist_tensor(t);
  if (!x.is_contiguous()) throw std::invalid_argument("all-reduce: tensor is not contiguous");
  std::vector<at::Tensor> ts{on_backend(pg, x)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = pg.timeout;
  finish(pg, pg.pg->allreduce(ts, o));
  if (!ts[0].is_same(x)) x.copy_(ts[0]);
  DIST_CATCH
}

sat_error *sat_pg_broadcast(sat_pg g, sat_tensor t, int root) {
  DIST_TRY
  auto &pg = group(g);
  if (root < 0 || root >= pg.world) throw std::invalid_argument("broadcast: root " + std::to_string(root) + " outside the world");
  const at::Tensor &x = dist_tensor(t);
  if (!x.is_contiguous()) throw std::invalid_argument("broadcast: tensor is not contiguous");
  std::vector<at::Tensor> ts{on_backend(pg, x)};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.rootTensor = 0;
  o.timeout = pg.timeout;
  finish(pg, pg.pg->broadcast(ts, o));
  if (!ts[0].is_same(x)) x.copy_(ts[0]);
  DIST_CATCH
}

sat_error *sat_pg_all_gather(sat_pg g, sat_tensor in, sat_tensor *out) {
  DIST_TRY
  auto &pg = group(g);
  *out = nullptr;
  const at::Tensor &x = dist_tensor(in);
  if (!x.is_contiguous()) throw std::invalid_argument("all-gather: tensor is not contiguous");
  at::Tensor flat = on_backend(pg, x.reshape({-1}));
  at::Tensor all = at::empty({(int64_t)pg.world, flat.numel()}, flat.options());
  std::vector<at::Tensor> inputs{flat};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < pg.world; r++) outputs[0].push_back(all.select(0, r));
  c10d::AllgatherOptions o;
  o.timeout = pg.timeout;
  finish(pg, pg.pg->allgather(outputs, inputs, o));
  *out = new sat_tensor_s{x.is_cpu() ? all.to(at::kCPU) : all};
  DIST_CATCH
}

sat_error *sat_pg_all_reduce_grads(sat_pg g, const sat_tensor *params, int n, double scale, float *extra, int n_extra,
                                   int64_t bucket_bytes) {
  DIST_TRY
  auto &pg = group(g);
  if (n_extra < 0 || (n_extra > 0 && !extra)) throw std::invalid_argument("all-reduce grads: bad extra values");
  std::vector<at::Tensor> ps;
  ps.reserve(n);
  for (int i = 0; i < n; i++) ps.push_back(dist_tensor(params[i]));
  if (ps.empty() && n_extra == 0) return nullptr;
  at::TensorOptions opts = ps.empty() ? at::TensorOptions().dtype(at::kFloat)
                                      : at::TensorOptions().dtype(at::kFloat).device(ps[0].device());
  const int64_t limit = std::max<int64_t>(1, bucket_bytes / 4);
  // Buckets of consecutive parameters, each flattened into one buffer: the
  // gradient times scale, zeros where a rank has none, so every rank issues
  // the same all-reduces whatever its share of the batch produced. The last
  // bucket also carries the extra values.
  size_t i = 0;
  bool extra_sent = false;
  while (i < ps.size() || !extra_sent) {
    size_t j = i;
    int64_t numel = 0;
    while (j < ps.size() && (j == i || numel + ps[j].numel() <= limit)) numel += ps[j++].numel();
    bool last = j >= ps.size();
    int64_t total = numel + (last ? n_extra : 0);
    at::Tensor buf = at::zeros({total}, opts);
    int64_t off = 0;
    for (size_t k = i; k < j; k++) {
      const at::Tensor &p = ps[k];
      if (p.scalar_type() != at::kFloat) throw std::invalid_argument("all-reduce grads: parameters must be float32");
      const at::Tensor &gr = p.grad();
      if (gr.defined()) buf.narrow(0, off, p.numel()).copy_(gr.reshape({-1}));
      off += p.numel();
    }
    if (scale != 1.0) buf.mul_(scale);
    if (last && n_extra > 0)
      buf.narrow(0, off, n_extra).copy_(at::from_blob(extra, {n_extra}, at::kFloat).to(buf.device()));
    std::vector<at::Tensor> ts{buf};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = pg.timeout;
    finish(pg, pg.pg->allreduce(ts, o));
    off = 0;
    for (size_t k = i; k < j; k++) {
      at::Tensor p = ps[k];
      at::Tensor part = buf.narrow(0, off, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(part);
      else
        p.mutable_grad() = part.clone();
      off += p.numel();
    }
    if (last) {
      if (n_extra > 0) {
        at::Tensor host = buf.narrow(0, off, n_extra).to(at::kCPU).contiguous();
        std::memcpy(extra, host.data_ptr<float>(), sizeof(float) * n_extra);
      }
      extra_sent = true;
    }
    i = j;
  }
  DIST_CATCH
}

sat_error *sat_pg_barrier(sat_pg g) {
  DIST_TRY
  auto &pg = group(g);
  c10d::BarrierOptions o;
  o.timeout = pg.timeout;
  if (pg.cuda_device >= 0) o.device_ids = {pg.cuda_device};  // else NCCL guesses the device from the rank
  finish(pg, pg.pg->barrier(o));
  DIST_CATCH
}

}  // extern "C"
