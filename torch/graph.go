package torch

/*
#include "satorch.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// CUDA graphs: a fixed-shape piece of device work captured once and replayed
// with one launch (at::cuda::CUDAGraph, as torch.cuda.graph). The scoring
// pass is their use here: the default model issues about 400 kernels a batch
// from Go, and a replay issues them from the GPU's own queue.
//
// The CPU build of libsatorch has no graphs: NewGraph, CaptureGraph and
// CaptureForward return an *Error of KindNotImplemented, which matches
// errors.ErrUnsupported, so a caller falls back to running the work eagerly.

// Graph is a captured CUDA graph on one device. Not safe for concurrent use;
// call it from the torch goroutine.
type Graph struct {
	c   C.sat_graph
	dev Device
}

// NewGraph returns an empty graph for CUDA device d, with its own stream. It
// fails with an error matching errors.ErrUnsupported in the CPU build or when
// d is not a CUDA device.
func NewGraph(d Device) (*Graph, error) {
	if !d.IsCUDA() {
		return nil, &Error{Op: "cuda graph", Msg: fmt.Sprintf("graphs need a CUDA device, not %s", d), Kind: KindNotImplemented}
	}
	var g C.sat_graph
	if err := check("cuda graph", C.sat_graph_new(C.int(d.Index), &g)); err != nil {
		return nil, err
	}
	return &Graph{c: g, dev: d}, nil
}

// CaptureGraph records the device work f issues on d: it runs f warmup times
// on the graph's stream (libtorch's lazy set-up, cuBLAS workspaces, kernel
// selection happen there, outside the graph), then once more while
// capturing. f must issue device work only: no host synchronisation (Item,
// Float32s, a copy to or from unpinned host memory, a size that depends on
// data), or the capture fails with libtorch's error. Tensors f allocates
// during the capture come from the graph's private memory pool; those f keeps
// alive are the graph's outputs, rewritten by every Replay, and the tensors
// it reads (weights, a static input) must stay at the same addresses (update
// them in place) for as long as the graph is replayed. Autocast's cast cache
// is off during the capture, so casts of weights are captured as kernels and
// replays see weights changed in place.
//
// On failure the graph is freed and the error is f's (or libtorch's); an
// error matching errors.ErrUnsupported means no graph can run here.
func CaptureGraph(d Device, warmup int, f func() error) (*Graph, error) {
	g, err := NewGraph(d)
	if err != nil {
		return nil, err
	}
	if err := g.capture(warmup, f); err != nil {
		g.Free()
		return nil, err
	}
	return g, nil
}

func (g *Graph) capture(warmup int, f func() error) error {
	if warmup > 0 {
		if err := check("cuda graph warm-up", C.sat_graph_stream_enter(g.c)); err != nil {
			return err
		}
		var ferr error
		for i := 0; i < warmup && ferr == nil; i++ {
			ferr = f()
		}
		if err := errors.Join(ferr, check("cuda graph warm-up", C.sat_graph_stream_exit(g.c))); err != nil {
			return err
		}
	}
	if err := check("cuda graph capture", C.sat_graph_capture_begin(g.c)); err != nil {
		return err
	}
	if ferr := f(); ferr != nil {
		endErr := check("cuda graph capture", C.sat_graph_capture_end(g.c, 0))
		return errors.Join(fmt.Errorf("torch: cuda graph capture: %w", ferr), endErr)
	}
	return check("cuda graph capture", C.sat_graph_capture_end(g.c, 1))
}

// Replay launches the captured work on the device's current stream.
func (g *Graph) Replay() error {
	if g == nil || g.c == nil {
		return &Error{Op: "cuda graph replay", Msg: "nil or freed graph", Kind: KindValue}
	}
	return check("cuda graph replay", C.sat_graph_replay(g.c))
}

// Device is the graph's device.
func (g *Graph) Device() Device { return g.dev }

// Free releases the graph and, once no output tensor of it is left, its
// memory pool. Safe on nil and twice.
func (g *Graph) Free() {
	if g == nil || g.c == nil {
		return
	}
	C.sat_graph_free(g.c)
	g.c = nil
}

// GraphedForward is a forward pass over a fixed-shape batch captured as a
// CUDA graph, for scoring: a static input tensor [batch, ...] the graph
// reads, and the output tensors it writes.
type GraphedForward struct {
	graph *Graph
	in    *Tensor
	outs  []*Tensor
}

// CaptureForward allocates the static input (shape, dtype dt, on d, filled
// with zeros), captures outs := forward(s, in) as a graph (see CaptureGraph;
// warmup eager runs first) and keeps the outputs. forward must build its
// results from in and from tensors that stay in place (the model's weights),
// must treat the rows of the batch (dimension 0) independently, and must not
// synchronise with the host. It runs inside a scope of its own, closed after
// each run; the returned tensors are kept.
//
// The error matches errors.ErrUnsupported in the CPU build or off CUDA; an
// *Error of KindOutOfMemory when the batch does not fit.
func CaptureForward(shape []int64, dt DType, d Device, warmup int, forward func(s *Scope, in *Tensor) []*Tensor) (*GraphedForward, error) {
	if len(shape) == 0 || shape[0] < 1 {
		return nil, &Error{Op: "cuda graph capture", Msg: fmt.Sprintf("static input shape %v: want a batch dimension of at least 1", shape), Kind: KindValue}
	}
	g, err := NewGraph(d) // first: where graphs cannot run, nothing is allocated
	if err != nil {
		return nil, err
	}
	in, err := Zeros(shape, dt, d)
	if err != nil {
		g.Free()
		return nil, err
	}
	gf := &GraphedForward{graph: g, in: in}
	run := func(keep bool) error {
		s := NewScope()
		defer s.Close()
		outs := forward(s, in)
		if err := s.Err(); err != nil {
			return err
		}
		if len(outs) == 0 {
			return &Error{Op: "cuda graph capture", Msg: "forward returned no output", Kind: KindValue}
		}
		for i, o := range outs {
			if !o.Valid() {
				return &Error{Op: "cuda graph capture", Msg: fmt.Sprintf("output %d is nil", i), Kind: KindValue}
			}
			if o.Dim() == 0 || o.Shape()[0] != shape[0] {
				return &Error{Op: "cuda graph capture", Msg: fmt.Sprintf("output %d has shape %v: want the batch (%d) as its first dimension", i, o.Shape(), shape[0]), Kind: KindValue}
			}
		}
		if keep {
			for _, o := range outs {
				gf.outs = append(gf.outs, s.Keep(o))
			}
		}
		return nil
	}
	warm := 0
	if err := g.capture(warmup, func() error {
		warm++
		return run(warm > warmup)
	}); err != nil {
		gf.Free()
		return nil, err
	}
	return gf, nil
}

// Batch is the captured batch size (the static input's first dimension).
func (g *GraphedForward) Batch() int64 { return g.in.Shape()[0] }

// Run scores x ([n, ...] with n <= Batch() and the static input's other
// dimensions, on its device): it copies x into the first n rows of the static
// input (the rows after them keep their last contents, whose outputs are
// never returned), replays the graph on the current stream, and returns the
// first n rows of each output as views owned by s. The views read the graph's
// outputs: they are valid until the next Run or Free; copy what must outlive
// that. Errors go to s, as for every scope op.
func (g *GraphedForward) Run(s *Scope, x *Tensor) []*Tensor {
	if g == nil || g.graph == nil {
		s.Fail(&Error{Op: "cuda graph run", Msg: "nil or freed graphed forward", Kind: KindValue})
		return nil
	}
	if !s.ready("cuda graph run", x) {
		return nil
	}
	want, got := g.in.Shape(), x.Shape()
	n := int64(0)
	if len(got) == len(want) && len(got) > 0 {
		n = got[0]
		for i := 1; i < len(got); i++ {
			if got[i] != want[i] {
				n = 0
			}
		}
	}
	if n < 1 || n > want[0] {
		s.Fail(&Error{Op: "cuda graph run", Msg: fmt.Sprintf("input shape %v does not fit the captured batch %v", got, want), Kind: KindValue})
		return nil
	}
	dst := g.in
	if n < want[0] {
		dst = s.Narrow(g.in, 0, 0, n)
	}
	if dst == nil {
		return nil
	}
	if err := dst.CopyFrom(x, true); err != nil {
		s.Fail(err)
		return nil
	}
	if err := g.graph.Replay(); err != nil {
		s.Fail(err)
		return nil
	}
	res := make([]*Tensor, len(g.outs))
	for i, o := range g.outs {
		res[i] = s.Narrow(o, 0, 0, n)
	}
	return res
}

// Free releases the outputs, the static input and the graph. Safe on nil and
// twice.
func (g *GraphedForward) Free() {
	if g == nil {
		return
	}
	for _, o := range g.outs {
		o.Free()
	}
	g.outs = nil
	g.in.Free()
	g.graph.Free()
	g.graph = nil
}
