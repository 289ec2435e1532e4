package torch

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// nativeWorldOfOne joins a real group of one on backend b (GroupConfig.NativeWorldOfOne).
func nativeWorldOfOne(t testing.TB, b Backend, port int) *ProcessGroup {
	t.Helper()
	g, err := NewProcessGroup(GroupConfig{Rank: 0, WorldSize: 1, StoreAddr: "127.0.0.1", StorePort: port, HostStore: true,
		Backend: b, Timeout: time.Minute, NativeWorldOfOne: true})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Native() || g.WorldSize() != 1 || g.Backend() != b {
		t.Fatalf("native world of one: native %v, world %d, backend %v", g.Native(), g.WorldSize(), g.Backend())
	}
	return g
}

// worldOfOneCase runs every collective on a native world of one and on
// SingleProcess with the same inputs on d: the results must be equal bit for
// bit (a sum over one rank is the value itself), except that AllReduceGrads on
// a native group defines the gradient a parameter lacked, as zeros, as it does
// in any larger world.
func worldOfOneCase(t *testing.T, g *ProcessGroup, d Device) {
	s := scope(t)
	single := SingleProcess()
	if single.Native() {
		t.Fatal("SingleProcess reports a native group")
	}
	in := []float32{1.5, -2, 1e-7, 3e5}
	for name, f := range map[string]func(*ProcessGroup, *Tensor) error{
		"all-reduce sum":  (*ProcessGroup).AllReduceSum,
		"all-reduce mean": (*ProcessGroup).AllReduceMean,
		"broadcast":       func(g *ProcessGroup, x *Tensor) error { return g.Broadcast(x, 0) },
	} {
		x := s.To(s.FromFloat32(in, 4), d, Float32, false)
		ok(t, s)
		if err := f(g, x); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := vals(t, s, x); !slices.Equal(got, in) {
			t.Fatalf("%s on a world of one: %v, want %v", name, got, in)
		}
	}
	x := s.To(s.FromFloat32(in, 2, 2), d, Float32, false)
	ok(t, s)
	all, err := g.AllGather(x)
	if err != nil {
		t.Fatal(err)
	}
	if got := vals(t, s, s.Own(all)); !slices.Equal(all.Shape(), []int64{1, 4}) || !slices.Equal(got, in) {
		t.Fatalf("all-gather: %v %v", all.Shape(), got)
	}
	ragged, err := g.AllGatherFloat32(in[:3])
	if err != nil || len(ragged) != 1 || !slices.Equal(ragged[0], in[:3]) {
		t.Fatalf("all-gather float32: %v %v", ragged, err)
	}
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	// Gradients: a has one, b has none.
	grads := func() (a, b *Tensor) {
		a = s.To(s.FromFloat32([]float32{1, 2, 3}, 3), d, Float32, false)
		b = s.To(s.FromFloat32([]float32{4, 5}, 2), d, Float32, false)
		ok(t, s)
		for _, p := range []*Tensor{a, b} {
			if err := p.SetRequiresGrad(true); err != nil {
				t.Fatal(err)
			}
		}
		s.Backward(s.Sum(s.Mul(a, s.To(s.FromFloat32([]float32{0.5, -1, 3}, 3), d, Float32, false))))
		ok(t, s)
		return a, b
	}
	a1, b1 := grads()
	a2, b2 := grads()
	extra1, extra2 := []float32{0.75, 1}, []float32{0.75, 1}
	if err := single.AllReduceGrads([]*Tensor{a1, b1}, 0.25, extra1); err != nil {
		t.Fatal(err)
	}
	if err := g.AllReduceGrads([]*Tensor{a2, b2}, 0.25, extra2); err != nil {
		t.Fatal(err)
	}
	if ga1, ga2 := vals(t, s, s.Grad(a1)), vals(t, s, s.Grad(a2)); !slices.Equal(ga1, ga2) || !slices.Equal(ga2, []float32{0.125, -0.25, 0.75}) {
		t.Fatalf("grads: single process %v, native world of one %v, want [0.125 -0.25 0.75]", ga1, ga2)
	}
	if s.Grad(b1) != nil {
		t.Fatal("SingleProcess defined a missing gradient")
	}
	if gb2 := vals(t, s, s.Grad(b2)); !slices.Equal(gb2, []float32{0, 0}) {
		t.Fatalf("the missing gradient on a native group: %v, want zeros", gb2)
	}
	if !slices.Equal(extra1, extra2) || !slices.Equal(extra2, []float32{0.75, 1}) {
		t.Fatalf("extra values: %v and %v, want [0.75 1]", extra1, extra2)
	}
	g.Close()
	if err := g.AllReduceSum(x); err == nil {
		t.Fatal("a closed native group ran a collective")
	}
	var te *Error
	if err := g.Barrier(); !errors.As(err, &te) || te.Kind != KindValue {
		t.Fatalf("barrier on a closed group: %v", err)
	}
}

func TestNativeWorldOfOneGloo(t *testing.T) {
	needGloo(t)
	worldOfOneCase(t, nativeWorldOfOne(t, Gloo, freePort(t)), CPU)
}

// NCCL on one GPU gives the same results as SingleProcess.
func TestNativeWorldOfOneNCCL(t *testing.T) {
	if !CUDAIsAvailable() || !HasBackend(NCCL) {
		t.Skip("needs a CUDA device and the NCCL build")
	}
	defer LockThread()()
	worldOfOneCase(t, nativeWorldOfOne(t, NCCL, freePort(t)), CUDA(0))
}

// BenchmarkAllReduceGradsNCCL times one training step's gradient all-reduce
// of the default model (201.6M float32 gradients in 25 MiB buckets, as
// trainer's syncStep issues it) on a native NCCL world of one: the fixed cost
// of the data-parallel path on one GPU (flattening into buckets, the NCCL
// calls, writing back), against SingleProcess, which only scales.
//
//	torch.test -test.run '^$' -test.bench AllReduceGradsNCCL -test.benchtime 5x
func BenchmarkAllReduceGradsNCCL(b *testing.B) {
	if !CUDAIsAvailable() || !HasBackend(NCCL) {
		b.Skip("needs a CUDA device and the NCCL build")
	}
	defer LockThread()()
	s := NewScope()
	defer s.Close()
	shapes := defaultStateShapes()
	shapes = shapes[:len(shapes)/3] // the parameters only
	var params []*Tensor
	var total int64
	for _, sh := range shapes {
		p := s.Randn(sh, Float32, CUDA(0), nil)
		if p == nil {
			break
		}
		if err := p.SetRequiresGrad(true); err != nil {
			b.Fatal(err)
		}
		params = append(params, p)
		total += p.Numel() * 4
	}
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	// Gradients for every parameter: backward through the sum of all.
	loss := s.Sum(s.Cat(func() []*Tensor {
		var flat []*Tensor
		for _, p := range params {
			flat = append(flat, s.Reshape(p, -1))
		}
		return flat
	}(), 0))
	s.Backward(loss)
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	g := nativeWorldOfOne(b, NCCL, freePort(b))
	defer g.Close()
	for _, c := range []struct {
		name string
		g    *ProcessGroup
	}{{"nccl-world-of-one", g}, {"single-process", SingleProcess()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(total)
			extra := []float32{0.5, 0}
			for i := 0; i < b.N; i++ {
				if err := c.g.AllReduceGrads(params, 1.0/32, extra); err != nil {
					b.Fatal(err)
				}
			}
			if err := Synchronize(CUDA(0)); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Logf("%d gradients, %.1f MB", len(params), float64(total)/1e6)
}
