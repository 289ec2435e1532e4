package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// Backend names a c10d process-group backend.
type Backend int

const (
	// Gloo runs collectives over TCP on CPU tensors.
	Gloo Backend = C.SAT_DIST_GLOO
	// NCCL runs collectives on CUDA tensors (device cuda:LOCAL_RANK).
	NCCL Backend = C.SAT_DIST_NCCL
)

func (b Backend) String() string {
	switch b {
	case Gloo:
		return "gloo"
	case NCCL:
		return "nccl"
	}
	return fmt.Sprintf("backend(%d)", int(b))
}

// HasBackend reports whether libsatorch was built with backend b.
func HasBackend(b Backend) bool { return C.sat_dist_backends()&(1<<uint(b)) != 0 }

// GroupConfig says how a process joins a process group: the rendezvous store
// at StoreAddr:StorePort (HostStore: this process runs it), the keys' prefix,
// this process's rank among WorldSize, the backend and the timeout of every
// collective and of the rendezvous.
type GroupConfig struct {
	Rank, WorldSize int
	StoreAddr       string
	StorePort       int
	HostStore       bool
	Prefix          string
	Backend         Backend
	DeviceIndex     int
	Timeout         time.Duration
	// NativeWorldOfOne makes a WorldSize of 1 join a real group of its backend
	// instead of returning SingleProcess, so its collectives run through the
	// backend (NCCL on one GPU, say): for measuring a backend's cost per step
	// and checking it on one device. Results are the same as SingleProcess's.
	NativeWorldOfOne bool
}

// ProcessGroup is a c10d process group: WorldSize processes that run the same
// collectives in the same order. A world of one (SingleProcess) holds no native
// group and every collective is a no-op, so single-process code runs the same
// calls. Every method must be called from the torch goroutine.
//
// A collective that fails (a peer died, or Timeout passed without every rank
// joining) returns a *DistError; the group is unusable afterwards and the
// process should exit after Close.
type ProcessGroup struct {
	c       C.sat_pg
	rank    int
	world   int
	timeout time.Duration
	backend Backend
	bucket  int64 // AllReduceGrads bucket size in bytes (0: GradBucketBytes)
	native  bool  // a world of one with a real group (GroupConfig.NativeWorldOfOne)
}

// SetGradBucketBytes sets the bucket size of AllReduceGrads (n <= 0: the
// default GradBucketBytes). Every rank must use the same size.
func (g *ProcessGroup) SetGradBucketBytes(n int64) { g.bucket = max(n, 0) }

// DistError is a failed collective or rendezvous.
type DistError struct {
	Op      string // "all-reduce", "all-gather", "broadcast", "barrier", "rendezvous"
	Rank    int    // this process's rank
	World   int
	Timeout time.Duration
	Msg     string // libtorch's message, first line
}

func (e *DistError) Error() string {
	peer := "a peer"
	if e.World == 2 {
		peer = fmt.Sprintf("peer rank %d", 1-e.Rank)
	}
	if e.Op == "rendezvous" {
		return fmt.Sprintf("torch: rendezvous (rank %d of %d): %s", e.Rank, e.World, e.Msg)
	}
	return fmt.Sprintf("torch: %s failed on rank %d of %d: %s died or did not answer within %s: %s",
		e.Op, e.Rank, e.World, peer, e.Timeout, e.Msg)
}

// SingleProcess is the world of one: rank 0, every collective a no-op.
func SingleProcess() *ProcessGroup { return &ProcessGroup{world: 1} }

// NewProcessGroup joins (and, with HostStore, hosts the store of) a process
// group; it returns once every rank has joined, or an error after
// cfg.Timeout. A WorldSize of 1 returns SingleProcess without any network,
// unless cfg.NativeWorldOfOne asks for a real group.
func NewProcessGroup(cfg GroupConfig) (*ProcessGroup, error) {
	if cfg.WorldSize < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.WorldSize {
		return nil, fmt.Errorf("torch: process group: rank %d outside world size %d", cfg.Rank, cfg.WorldSize)
	}
	if cfg.WorldSize == 1 && !cfg.NativeWorldOfOne {
		return SingleProcess(), nil
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("torch: process group: timeout %s must be positive", cfg.Timeout)
	}
	if !HasBackend(cfg.Backend) {
		return nil, fmt.Errorf("torch: process group: libsatorch was built without the %s backend", cfg.Backend)
	}
	host, freeHost := cString(cfg.StoreAddr)
	defer freeHost()
	prefix, freePrefix := cString(cfg.Prefix)
	defer freePrefix()
	hostStore := C.int(0)
	if cfg.HostStore {
		hostStore = 1
	}
	var h C.sat_pg
	e := C.sat_pg_new(host, C.int(cfg.StorePort), hostStore, prefix, C.int(cfg.Rank), C.int(cfg.WorldSize),
		C.int(cfg.Backend), C.int(cfg.DeviceIndex), C.int64_t(cfg.Timeout.Milliseconds()), &h)
	if e != nil {
		msg := firstLine(C.GoString(e.msg))
		C.sat_error_free(e)
		return nil, &DistError{Op: "rendezvous", Rank: cfg.Rank, World: cfg.WorldSize, Timeout: cfg.Timeout,
			Msg: rendezvousHint(msg, cfg)}
	}
	return &ProcessGroup{c: h, rank: cfg.Rank, world: cfg.WorldSize, timeout: cfg.Timeout, backend: cfg.Backend,
		native: cfg.WorldSize == 1}, nil
}

// rendezvousHint turns libtorch's set-up failures into what the user should check.
func rendezvousHint(msg string, cfg GroupConfig) string {
	addr := fmt.Sprintf("%s:%d", cfg.StoreAddr, cfg.StorePort)
	switch {
	case cfg.HostStore && (strings.Contains(msg, "ddress already in use") || strings.Contains(msg, "failed to listen") ||
		strings.Contains(msg, "failed to bind")):
		return fmt.Sprintf("cannot host the store on %s: port in use (set MASTER_PORT to a free port): %s", addr, msg)
	case strings.Contains(msg, "imed out") || strings.Contains(msg, "imeout"):
		return fmt.Sprintf("not every rank joined through the store at %s within %s (are all %d ranks started with the same MASTER_ADDR/MASTER_PORT?): %s",
			addr, cfg.Timeout, cfg.WorldSize, msg)
	}
	return fmt.Sprintf("store %s: %s", addr, msg)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// Rank is this process's rank in [0, WorldSize).
func (g *ProcessGroup) Rank() int { return g.rank }

// Backend is the group's backend (Gloo for a world of one).
func (g *ProcessGroup) Backend() Backend { return g.backend }

// WorldSize is the number of processes in the group.
func (g *ProcessGroup) WorldSize() int { return g.world }

// Native reports whether the group's collectives run through its backend:
// true for every group NewProcessGroup joined, false for SingleProcess (a
// world of one whose collectives are no-ops).
func (g *ProcessGroup) Native() bool { return g.world > 1 || g.native }

// local reports whether collectives are no-ops here (SingleProcess).
func (g *ProcessGroup) local() bool { return !g.Native() }

// Timeout is the limit on every collective (0 for a world of one).
func (g *ProcessGroup) Timeout() time.Duration { return g.timeout }

// Close leaves the group and frees it. Safe to call twice.
func (g *ProcessGroup) Close() {
	if g == nil || g.c == nil {
		return
	}
	C.sat_pg_free(g.c)
	g.c = nil
}

func (g *ProcessGroup) fail(op string, e *C.sat_error) error {
	if e == nil {
		return nil
	}
	msg := firstLine(C.GoString(e.msg))
	kind := ErrorKind(e.kind)
	C.sat_error_free(e)
	if kind == KindValue {
		return &Error{Op: op, Msg: msg, Kind: kind}
	}
	return &DistError{Op: op, Rank: g.rank, World: g.world, Timeout: g.timeout, Msg: msg}
}

func (g *ProcessGroup) ready(op string, t *Tensor) error {
	if g.Native() && g.c == nil {
		return &Error{Op: op, Msg: "process group is closed", Kind: KindValue}
	}
	return t.needValid(op)
}

// AllReduceSum replaces t, on every rank, with the element-wise sum of every
// rank's t (torch.distributed.all_reduce with ReduceOp.SUM). t must be
// contiguous and have the same shape and dtype on every rank.
func (g *ProcessGroup) AllReduceSum(t *Tensor) error {
	if err := g.ready("all-reduce", t); err != nil || g.local() {
		return err
	}
	return g.fail("all-reduce", C.sat_pg_all_reduce_sum(g.c, t.c))
}

// AllReduceMean replaces t with the element-wise mean over ranks: the sum,
// then a multiplication by 1/WorldSize.
func (g *ProcessGroup) AllReduceMean(t *Tensor) error {
	if err := g.AllReduceSum(t); err != nil || g.world == 1 {
		return err
	}
	return t.MulScalarInPlace(1 / float64(g.world))
}

// Broadcast replaces t on every rank with root's t.
func (g *ProcessGroup) Broadcast(t *Tensor, root int) error {
	if err := g.ready("broadcast", t); err != nil {
		return err
	}
	if root < 0 || root >= g.world {
		return &Error{Op: "broadcast", Msg: fmt.Sprintf("root %d outside world size %d", root, g.world), Kind: KindValue}
	}
	if g.local() {
		return nil
	}
	return g.fail("broadcast", C.sat_pg_broadcast(g.c, t.c, C.int(root)))
}

// AllGather returns a new tensor [WorldSize, numel(t)] whose row r is rank
// r's t flattened. Every rank's t must have the same numel and dtype.
func (g *ProcessGroup) AllGather(t *Tensor) (*Tensor, error) {
	if err := g.ready("all-gather", t); err != nil {
		return nil, err
	}
	if g.local() {
		s := NewScope()
		defer s.Close()
		v := s.Reshape(t, 1, t.Numel())
		out := s.Clone(v)
		if err := s.Err(); err != nil {
			return nil, err
		}
		return s.Keep(out), nil
	}
	var out C.sat_tensor
	if err := g.fail("all-gather", C.sat_pg_all_gather(g.c, t.c, &out)); err != nil {
		return nil, err
	}
	return newTensor(out), nil
}

// AllGatherFloat32 gathers a float32 slice from every rank, of any length
// (lengths may differ): element r of the result is rank r's v. It costs two
// collectives: the lengths, then the slices padded to the longest.
func (g *ProcessGroup) AllGatherFloat32(v []float32) ([][]float32, error) {
	if g.local() {
		return [][]float32{append([]float32(nil), v...)}, nil
	}
	lens, err := g.AllGatherInt64([]int64{int64(len(v))})
	if err != nil {
		return nil, err
	}
	longest := int64(0)
	for _, l := range lens {
		longest = max(longest, l[0])
	}
	padded := make([]float32, max(longest, 1))
	copy(padded, v)
	t, err := FromFloat32(padded, int64(len(padded)))
	if err != nil {
		return nil, err
	}
	defer t.Free()
	all, err := g.AllGather(t)
	if err != nil {
		return nil, err
	}
	defer all.Free()
	flat, err := all.Float32s()
	if err != nil {
		return nil, err
	}
	out := make([][]float32, g.world)
	for r := range out {
		row := flat[int64(r)*int64(len(padded)):]
		out[r] = append([]float32(nil), row[:lens[r][0]]...)
	}
	return out, nil
}

// AllGatherInt64 gathers an int64 slice of the same length from every rank:
// element r of the result is rank r's v.
func (g *ProcessGroup) AllGatherInt64(v []int64) ([][]int64, error) {
	if g.local() {
		return [][]int64{append([]int64(nil), v...)}, nil
	}
	if len(v) == 0 {
		return nil, &Error{Op: "all-gather", Msg: "empty slice", Kind: KindValue}
	}
	t, err := FromInt64(v, int64(len(v)))
	if err != nil {
		return nil, err
	}
	defer t.Free()
	all, err := g.AllGather(t)
	if err != nil {
		return nil, err
	}
	defer all.Free()
	flat, err := all.Int64s()
	if err != nil {
		return nil, err
	}
	out := make([][]int64, g.world)
	for r := range out {
		out[r] = flat[r*len(v) : (r+1)*len(v)]
	}
	return out, nil
}

// Barrier returns once every rank has called it.
func (g *ProcessGroup) Barrier() error {
	if g.local() {
		return nil
	}
	if g.c == nil {
		return &Error{Op: "barrier", Msg: "process group is closed", Kind: KindValue}
	}
	return g.fail("barrier", C.sat_pg_barrier(g.c))
}

// Share is the contiguous block [lo, hi) of n items that rank owns when n is
// split across world ranks as evenly as possible: the first n%world ranks
// get one more. Concatenating every rank's share in rank order gives 0..n.
func Share(n, rank, world int) (lo, hi int) {
	q, r := n/world, n%world
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// IsDistError reports whether err is (or wraps) a failed collective or rendezvous.
func IsDistError(err error) bool {
	var de *DistError
	return errors.As(err, &de)
}

// GradBucketBytes is the size of the buffers gradients are flattened into for
// the all-reduce: DDP's default bucket_cap_mb of 25 MiB.
const GradBucketBytes = 25 << 20

// AllReduceGrads averages gradients the way DDP does: every parameter's grad
// (zeros where a rank has none) is multiplied by scale, flattened in
// parameter order into buckets of GradBucketBytes, each bucket is summed over
// ranks and written back, defining the grads a rank lacked. With scale = this
// rank's share of the global batch (n_r / N) and per-rank mean losses, the
// result is the gradient of the global mean loss. extra values (already
// scaled by the caller, e.g. the loss times n_r / N) ride in the last bucket
// and are summed in place. Parameters must be float32 on one device and in the
// same order on every rank. In SingleProcess it only applies scale.
func (g *ProcessGroup) AllReduceGrads(params []*Tensor, scale float64, extra []float32) error {
	if g.local() {
		if scale == 1 {
			return nil
		}
		return ScaleGrads(params, scale)
	}
	if g.c == nil {
		return &Error{Op: "all-reduce grads", Msg: "process group is closed", Kind: KindValue}
	}
	hs, err := paramHandles("all-reduce grads", params)
	if err != nil {
		return err
	}
	var hp *C.sat_tensor
	if len(hs) > 0 {
		hp = &hs[0]
	}
	var ep *C.float
	if len(extra) > 0 {
		ep = (*C.float)(unsafe.Pointer(&extra[0]))
	}
	return g.fail("all-reduce", C.sat_pg_all_reduce_grads(g.c, hp, C.int(len(hs)), C.double(scale), ep, C.int(len(extra)),
		C.int64_t(cmp.Or(g.bucket, GradBucketBytes))))
}

// AllGatherParts all-gathers float32 slices of any lengths from every rank
// and concatenates each part in rank order, with the OR of the ranks' stop
// flags (stop != 0): two collectives (the lengths, then the data padded to
// the longest). Every rank must pass the same number of parts. The result
// has len(parts) slices; slice i holds rank 0's part i, then rank 1's, ...
func (pg *ProcessGroup) AllGatherParts(stop float32, parts ...[]float32) ([][]float32, bool, error) {
	head := make([]int64, len(parts)+1)
	total := 0
	for i, p := range parts {
		head[i] = int64(len(p))
		total += len(p)
	}
	head[len(parts)] = int64(stop)
	heads, err := pg.AllGatherInt64(head)
	if err != nil {
		return nil, false, err
	}
	longest, anyStop := 0, false
	for _, h := range heads {
		n := 0
		for i := range parts {
			n += int(h[i])
		}
		longest = max(longest, n)
		anyStop = anyStop || h[len(parts)] != 0
	}
	flat := make([]float32, 0, max(longest, 1))
	for _, p := range parts {
		flat = append(flat, p...)
	}
	flat = flat[:max(longest, 1)]
	t, err := FromFloat32(flat, int64(len(flat)))
	if err != nil {
		return nil, false, err
	}
	defer t.Free()
	all, err := pg.AllGather(t)
	if err != nil {
		return nil, false, err
	}
	defer all.Free()
	v, err := all.Float32s()
	if err != nil {
		return nil, false, err
	}
	out := make([][]float32, len(parts))
	for r, h := range heads {
		row := v[r*len(flat):]
		off := 0
		for i := range parts {
			out[i] = append(out[i], row[off:off+int(h[i])]...)
			off += int(h[i])
		}
	}
	return out, anyStop, nil
}

// ShareAndGather is the data-parallel pattern of scoring n items: each rank
// computes local over its contiguous share [lo, hi) of them (Share), which
// returns its parts (float32 columns of any lengths) and its stop flag, and
// AllGatherParts gives every rank every rank's parts in rank order, so the
// items come back in their order, with the OR of the stop flags. An error
// of local returns at once, before any collective.
func (pg *ProcessGroup) ShareAndGather(n int, local func(lo, hi int) (parts [][]float32, stop float32, err error)) ([][]float32, bool, error) {
	lo, hi := Share(n, pg.Rank(), pg.WorldSize())
	parts, stop, err := local(lo, hi)
	if err != nil {
		return nil, false, err
	}
	return pg.AllGatherParts(stop, parts...)
}
