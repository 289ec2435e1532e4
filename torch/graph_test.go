package torch

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Where graphs cannot run, every entry point says so with an error that
// matches errors.ErrUnsupported, and no work is attempted.
func TestGraphUnsupported(t *testing.T) {
	s := scope(t)
	called := 0
	f := func() error { called++; return nil }
	fwd := func(s *Scope, in *Tensor) []*Tensor { called++; return []*Tensor{in} }
	unsupported := func(what string, err error) {
		t.Helper()
		var te *Error
		if !errors.Is(err, errors.ErrUnsupported) || !errors.As(err, &te) || te.Kind != KindNotImplemented {
			t.Fatalf("%s: %v (%T), want an *Error of KindNotImplemented matching errors.ErrUnsupported", what, err, err)
		}
	}
	// Off CUDA, in any build.
	_, err := CaptureGraph(CPU, 1, f)
	unsupported("CaptureGraph(cpu)", err)
	_, err = CaptureForward([]int64{2, 3}, Float32, CPU, 1, fwd)
	unsupported("CaptureForward(cpu)", err)
	if !strings.Contains(err.Error(), "graphs need a CUDA device, not cpu") {
		t.Errorf("CaptureForward(cpu): %v", err)
	}
	// On CUDA in the CPU build: the shim itself refuses.
	if !BuiltWithCUDA() {
		_, err = CaptureGraph(CUDA(0), 1, f)
		unsupported("CaptureGraph(cuda:0), CPU build", err)
		if !strings.Contains(err.Error(), "CUDA graphs need the CUDA build of libsatorch") {
			t.Errorf("CPU build: %v", err)
		}
		_, err = CaptureForward([]int64{2, 3}, Float32, CUDA(0), 1, fwd)
		unsupported("CaptureForward(cuda:0), CPU build", err)
	} else if !CUDAIsAvailable() {
		// The CUDA build without a device: the usual device error, not "unsupported".
		_, err = CaptureGraph(CUDA(0), 1, f)
		var te *Error
		if !errors.As(err, &te) || te.Kind != KindValue || errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("CUDA build, no device: %v", err)
		}
	}
	if called != 0 {
		t.Fatalf("the captured function ran %d times where graphs cannot run", called)
	}
	// A nil graph and a nil graphed forward fail cleanly.
	var g *Graph
	if err := g.Replay(); err == nil {
		t.Fatal("nil graph replayed")
	}
	g.Free()
	var gf *GraphedForward
	x := s.FromFloat32([]float32{1, 2}, 1, 2)
	if out := gf.Run(s, x); out != nil || s.Err() == nil {
		t.Fatalf("nil graphed forward ran: %v %v", out, s.Err())
	}
	gf.Free()
}

// graphNet is a small scoring-like forward: linear, GELU, LayerNorm, linear,
// and a softmax as a second output, rows independent.
type graphNet struct{ w1, b1, w2, b2 *Tensor }

func newGraphNet(t *testing.T, s *Scope, d Device) graphNet {
	t.Helper()
	g, err := NewGenerator(7)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	n := graphNet{
		w1: s.MulScalar(s.Randn([]int64{32, 16}, Float32, d, g), 0.25),
		b1: s.Randn([]int64{32}, Float32, d, g),
		w2: s.MulScalar(s.Randn([]int64{8, 32}, Float32, d, g), 0.2),
		b2: s.Randn([]int64{8}, Float32, d, g),
	}
	ok(t, s)
	// Parameters, as a model's are: autocast caches the casts of exactly these
	// (leaves that require grad) when its cache is on.
	for _, p := range []*Tensor{n.w1, n.b1, n.w2, n.b2} {
		if err := p.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n graphNet) forward(s *Scope, x *Tensor) []*Tensor {
	h := s.LayerNorm(s.Gelu(s.Linear(x, n.w1, n.b1)), 32, nil, nil, 1e-5)
	y := s.ToDType(s.Linear(h, n.w2, n.b2), Float32)
	return []*Tensor{y, s.Softmax(y, 1)}
}

func closeTo(t *testing.T, what string, got, want []float32, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= rtol*(1+math.Abs(float64(want[i])))) {
			t.Fatalf("%s[%d] = %v, eager %v", what, i, got[i], want[i])
		}
	}
}

// A captured forward gives what the eager forward gives: for a full batch, for
// a partial one, after the weights change in place, and under bf16 autocast
// (whose weight casts must be captured, not taken from a cache).
func TestGraphedForwardMatchesEagerCUDA(t *testing.T) {
	if !CUDAIsAvailable() {
		t.Skip("needs a CUDA device")
	}
	s := scope(t)
	d := CUDA(0)
	net := newGraphNet(t, s, d)
	exitInf, err := InferenceMode()
	if err != nil {
		t.Fatal(err)
	}
	defer exitInf()
	for _, amp := range []bool{false, true} {
		// Same kernels on both sides; the bound allows a different cuBLAS
		// algorithm under capture (a float32 or bf16 reduction order).
		rtol := 1e-5
		if amp {
			rtol = 2e-2
		}
		fwd := func(s *Scope, in *Tensor) []*Tensor {
			if amp {
				exit, err := Autocast(d, BFloat16)
				if err != nil {
					s.Fail(err)
					return nil
				}
				defer func() { s.Fail(exit()) }()
			}
			return net.forward(s, in)
		}
		gf, err := CaptureForward([]int64{8, 16}, Float32, d, 2, fwd)
		if err != nil {
			t.Fatalf("amp %v: capture: %v", amp, err)
		}
		if gf.Batch() != 8 {
			t.Fatalf("batch %d", gf.Batch())
		}
		for _, step := range []struct {
			name string
			rows int64
			w1   float64 // w1 scaled in place before the step
		}{{"full batch", 8, 1}, {"partial batch", 5, 1}, {"weights changed in place", 8, -0.5}} {
			if step.w1 != 1 {
				if err := net.w1.MulScalarInPlace(step.w1); err != nil {
					t.Fatal(err)
				}
			}
			x := s.Randn([]int64{step.rows, 16}, Float32, d, nil)
			got := gf.Run(s, x)
			ok(t, s)
			var g0, g1 []float32
			g0, g1 = vals(t, s, got[0]), vals(t, s, got[1])
			want := fwd(s, x)
			ok(t, s)
			if got[0].Shape()[0] != step.rows {
				t.Fatalf("amp %v, %s: output shape %v", amp, step.name, got[0].Shape())
			}
			closeTo(t, step.name+" logits", g0, vals(t, s, want[0]), rtol)
			closeTo(t, step.name+" softmax", g1, vals(t, s, want[1]), rtol)
		}
		// A batch larger than the captured one, or of another width, is refused.
		rs := NewScope()
		gf.Run(rs, rs.Randn([]int64{9, 16}, Float32, d, nil))
		if rs.Err() == nil || !strings.Contains(rs.Err().Error(), "does not fit the captured batch") {
			t.Fatalf("batch 9 into 8: %v", rs.Err())
		}
		rs.Close()
		gf.Free()
		gf.Free()
	}
}

// A forward that synchronises with the host cannot be captured: the capture
// fails with an error, the device stays usable, and a later capture works.
func TestGraphCaptureFailureCUDA(t *testing.T) {
	if !CUDAIsAvailable() {
		t.Skip("needs a CUDA device")
	}
	s := scope(t)
	d := CUDA(0)
	net := newGraphNet(t, s, d)
	bad := func(s *Scope, in *Tensor) []*Tensor {
		out := net.forward(s, in)
		s.Item(s.Sum(out[0])) // a host synchronisation: not capturable
		return out
	}
	if _, err := CaptureForward([]int64{4, 16}, Float32, d, 1, bad); err == nil {
		t.Fatal("a forward that reads a value on the host was captured")
	}
	x := s.Randn([]int64{4, 16}, Float32, d, nil)
	want := vals(t, s, net.forward(s, x)[0])
	gf, err := CaptureForward([]int64{4, 16}, Float32, d, 1, net.forward)
	if err != nil {
		t.Fatalf("capture after a failed one: %v", err)
	}
	defer gf.Free()
	closeTo(t, "after a failed capture", vals(t, s, gf.Run(s, x)[0]), want, 1e-5)
}
