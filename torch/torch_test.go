package torch

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/testenv"
)

// scope returns a scope whose error fails the test at cleanup, with the test
// goroutine locked to its thread (grad mode and autocast are per thread).
func scope(t *testing.T) *Scope {
	t.Helper()
	unlock := LockThread()
	s := NewScope()
	t.Cleanup(func() {
		s.Close()
		unlock()
	})
	return s
}

func ok(t *testing.T, s *Scope) {
	t.Helper()
	if err := s.Err(); err != nil {
		t.Fatalf("scope error: %v", err)
	}
}

// close32 checks float32 results of single ops against float64 references,
// to tol·(1+|want|). The tolerances used, 1e-6 ≈ 17u (u = 2⁻²⁴) for an
// elementwise op and 1e-5 for ops with a short reduction (LayerNorm, attention
// over 4–5 terms), cover the rounding of the float32 input and result plus the
// ≤ 3.5 ulp of vectorised libm kernels, on any CPU.
func close32(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", name, len(got), got, len(want), want)
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol*(1+math.Abs(want[i])) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", name, i, got[i], want[i], got)
		}
	}
}

func vals(t *testing.T, s *Scope, x *Tensor) []float32 {
	t.Helper()
	v := s.Float32s(x)
	ok(t, s)
	return v
}

func TestSliceRoundTrip(t *testing.T) {
	s := scope(t)
	x := s.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	ok(t, s)
	if !slices.Equal(x.Shape(), []int64{2, 3}) || x.DType() != Float32 || x.Device() != CPU || x.Numel() != 6 {
		t.Fatalf("metadata: %v", x)
	}
	close32(t, "x", vals(t, s, x), []float64{1, 2, 3, 4, 5, 6}, 0)
	i := s.FromInt64([]int64{-3, 7}, 2)
	got, err := i.Int64s()
	if err != nil || got[0] != -3 || got[1] != 7 {
		t.Fatalf("int64 round trip: %v %v", got, err)
	}
	if _, err := x.Int64s(); err == nil {
		t.Fatal("reading float32 as int64 must fail")
	}
	if _, err := FromFloat32([]float32{1, 2, 3}, 2, 2); err == nil {
		t.Fatal("3 values into shape [2 2] must fail")
	}
	// bf16 cast: 1.5 and 3 are exact in bfloat16; 1/3 rounds to 0.333984375.
	b := s.ToDType(s.FromFloat32([]float32{1.5, 3, float32(1.0 / 3)}, 3), BFloat16)
	back := s.ToDType(b, Float32)
	close32(t, "bf16", vals(t, s, back), []float64{1.5, 3, 0.333984375}, 0)
}

func TestElementwise(t *testing.T) {
	s := scope(t)
	a := s.FromFloat32([]float32{1, -2, 3, 0.5}, 4)
	b := s.FromFloat32([]float32{2, 2, -1, 4}, 4)
	close32(t, "add", vals(t, s, s.Add(a, b)), []float64{3, 0, 2, 4.5}, 0)
	close32(t, "sub", vals(t, s, s.Sub(a, b)), []float64{-1, -4, 4, -3.5}, 0)
	close32(t, "mul", vals(t, s, s.Mul(a, b)), []float64{2, -4, -3, 2}, 0)
	close32(t, "div", vals(t, s, s.Div(a, b)), []float64{0.5, -1, -3, 0.125}, 0)
	close32(t, "maximum", vals(t, s, s.Maximum(a, b)), []float64{2, 2, 3, 4}, 0)
	close32(t, "minimum", vals(t, s, s.Minimum(a, b)), []float64{1, -2, -1, 0.5}, 0)
	close32(t, "add scalar", vals(t, s, s.AddScalar(a, 1)), []float64{2, -1, 4, 1.5}, 0)
	close32(t, "mul scalar", vals(t, s, s.MulScalar(a, -2)), []float64{-2, 4, -6, -1}, 0)
	close32(t, "div scalar", vals(t, s, s.DivScalar(a, 4)), []float64{0.25, -0.5, 0.75, 0.125}, 0)
	close32(t, "pow scalar", vals(t, s, s.PowScalar(a, 2)), []float64{1, 4, 9, 0.25}, 0)
	close32(t, "clamp", vals(t, s, s.ClampMin(a, 0.75)), []float64{1, 0.75, 3, 0.75}, 0)
	close32(t, "neg", vals(t, s, s.Neg(a)), []float64{-1, 2, -3, -0.5}, 0)
	close32(t, "abs", vals(t, s, s.Abs(a)), []float64{1, 2, 3, 0.5}, 0)
	close32(t, "relu", vals(t, s, s.Relu(a)), []float64{1, 0, 3, 0.5}, 0)
	e := []float64{math.E, math.Exp(-2), math.Exp(3), math.Exp(0.5)}
	close32(t, "exp", vals(t, s, s.Exp(a)), e, 1e-6)
	close32(t, "log", vals(t, s, s.Log(s.Abs(a))), []float64{0, math.Log(2), math.Log(3), math.Log(0.5)}, 1e-6)
	close32(t, "sqrt", vals(t, s, s.Sqrt(b.abs(s))), []float64{math.Sqrt2, math.Sqrt2, 1, 2}, 1e-6)
	close32(t, "tanh", vals(t, s, s.Tanh(a)), []float64{math.Tanh(1), math.Tanh(-2), math.Tanh(3), math.Tanh(0.5)}, 1e-6)
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	close32(t, "sigmoid", vals(t, s, s.Sigmoid(a)), []float64{sig(1), sig(-2), sig(3), sig(0.5)}, 1e-6)
	// torch.nn.functional.gelu (exact): x * Phi(x)
	gelu := func(x float64) float64 { return x * 0.5 * (1 + math.Erf(x/math.Sqrt2)) }
	close32(t, "gelu", vals(t, s, s.Gelu(a)), []float64{gelu(1), gelu(-2), gelu(3), gelu(0.5)}, 1e-6)
	close32(t, "sin", vals(t, s, s.Sin(a)), []float64{math.Sin(1), math.Sin(-2), math.Sin(3), math.Sin(0.5)}, 1e-6)
	close32(t, "cos", vals(t, s, s.Cos(a)), []float64{math.Cos(1), math.Cos(-2), math.Cos(3), math.Cos(0.5)}, 1e-6)
	inf := s.FromFloat32([]float32{1, float32(math.Inf(1)), float32(math.NaN())}, 3)
	fin, err := s.IsFinite(inf).Bools()
	if err != nil || !fin[0] || fin[1] || fin[2] {
		t.Fatalf("isfinite: %v %v", fin, err)
	}
	// broadcasting [2,1] + [3] -> [2,3]
	c := s.Add(s.FromFloat32([]float32{10, 20}, 2, 1), s.FromFloat32([]float32{1, 2, 3}, 3))
	close32(t, "broadcast", vals(t, s, c), []float64{11, 12, 13, 21, 22, 23}, 0)
	// in place
	if err := a.MulScalarInPlace(2); err != nil {
		t.Fatal(err)
	}
	if err := a.AddInPlace(b); err != nil {
		t.Fatal(err)
	}
	close32(t, "in place", vals(t, s, a), []float64{4, -2, 5, 5}, 0)
}

func (t *Tensor) abs(s *Scope) *Tensor { return s.Abs(t) }

func TestShapeOps(t *testing.T) {
	s := scope(t)
	x := s.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 2, 3) // [[0 1 2] [3 4 5]]
	tr := s.Transpose(x, 0, 1)
	if !slices.Equal(tr.Shape(), []int64{3, 2}) || tr.IsContiguous() {
		t.Fatalf("transpose: %v contiguous=%v", tr.Shape(), tr.IsContiguous())
	}
	close32(t, "transpose", vals(t, s, tr), []float64{0, 3, 1, 4, 2, 5}, 0)
	cont := s.Contiguous(tr)
	if !cont.IsContiguous() {
		t.Fatal("contiguous")
	}
	close32(t, "reshape", vals(t, s, s.Reshape(tr, 6)), []float64{0, 3, 1, 4, 2, 5}, 0)
	close32(t, "view", vals(t, s, s.View(x, 3, 2)), []float64{0, 1, 2, 3, 4, 5}, 0)
	s.View(tr, 6) // view of a non-contiguous tensor fails
	if s.Err() == nil {
		t.Fatal("view of transposed tensor must fail")
	}
	s = scope(t)
	x = s.FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	p := s.Permute(s.Reshape(x, 1, 2, 3), 2, 0, 1)
	if !slices.Equal(p.Shape(), []int64{3, 1, 2}) {
		t.Fatalf("permute shape %v", p.Shape())
	}
	close32(t, "permute", vals(t, s, p), []float64{0, 3, 1, 4, 2, 5}, 0)
	close32(t, "narrow", vals(t, s, s.Narrow(x, 1, 1, 2)), []float64{1, 2, 4, 5}, 0)
	close32(t, "select", vals(t, s, s.Select(x, 0, 1)), []float64{3, 4, 5}, 0)
	close32(t, "cat", vals(t, s, s.Cat([]*Tensor{x, x}, 0)), []float64{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}, 0)
	st := s.Stack([]*Tensor{x, x}, 1)
	if !slices.Equal(st.Shape(), []int64{2, 2, 3}) {
		t.Fatalf("stack shape %v", st.Shape())
	}
	idx := s.FromInt64([]int64{2, 0}, 2)
	close32(t, "index_select", vals(t, s, s.IndexSelect(x, 1, idx)), []float64{2, 0, 5, 3}, 0)
	gi := s.FromInt64([]int64{1, 1, 0, 2}, 2, 2)
	close32(t, "gather", vals(t, s, s.Gather(x, 1, gi)), []float64{1, 1, 3, 5}, 0)
	parts := s.Unbind(x, 0, 2)
	close32(t, "unbind", vals(t, s, parts[1]), []float64{3, 4, 5}, 0)
}

func TestReductions(t *testing.T) {
	s := scope(t)
	x := s.FromFloat32([]float32{3, 1, 2, -4, 8, 0}, 2, 3)
	close32(t, "sum", vals(t, s, s.Sum(x)), []float64{10}, 0)
	close32(t, "mean", vals(t, s, s.Mean(x)), []float64{10.0 / 6}, 1e-6)
	close32(t, "max", vals(t, s, s.Max(x)), []float64{8}, 0)
	close32(t, "min", vals(t, s, s.Min(x)), []float64{-4}, 0)
	close32(t, "sum dim", vals(t, s, s.SumDim(x, 1, false)), []float64{6, 4}, 0)
	close32(t, "mean dim", vals(t, s, s.MeanDim(x, 0, true)), []float64{-0.5, 4.5, 1}, 0)
	v, i := s.MaxDim(x, 1, false)
	close32(t, "max dim", vals(t, s, v), []float64{3, 8}, 0)
	if ii := s.Int64s(i); ii[0] != 0 || ii[1] != 1 {
		t.Fatalf("max indices %v", ii)
	}
	if am := s.Int64s(s.Argmax(x, 1, false)); am[0] != 0 || am[1] != 1 {
		t.Fatalf("argmax %v", am)
	}
	tv, ti := s.TopK(s.Reshape(x, 6), 2, 0, true)
	close32(t, "topk", vals(t, s, tv), []float64{8, 3}, 0)
	if ii := s.Int64s(ti); ii[0] != 4 || ii[1] != 0 {
		t.Fatalf("topk indices %v", ii)
	}
	bv, _ := s.TopK(s.Reshape(x, 6), 2, 0, false)
	close32(t, "bottomk", vals(t, s, bv), []float64{-4, 0}, 0)
}

func TestLinearMatmulLayerNormSoftmax(t *testing.T) {
	s := scope(t)
	x := s.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	w := s.FromFloat32([]float32{1, 0, -1, 2, 0.5, 0.5}, 3, 2)
	b := s.FromFloat32([]float32{0.1, 0.2, 0.3}, 3)
	// F.linear(x, w, b) = x @ w.T + b
	close32(t, "linear", vals(t, s, s.Linear(x, w, b)), []float64{1.1, 3.2, 1.8, 3.1, 5.2, 3.8}, 1e-6)
	close32(t, "linear no bias", vals(t, s, s.Linear(x, w, nil)), []float64{1, 3, 1.5, 3, 5, 3.5}, 1e-6)
	close32(t, "matmul", vals(t, s, s.Matmul(x, x)), []float64{7, 10, 15, 22}, 0)
	// F.layer_norm(row, (4,), w, b, 1e-5): row [1,2,3,4] mean 2.5 var 1.25
	r := s.FromFloat32([]float32{1, 2, 3, 4}, 1, 4)
	lw := s.FromFloat32([]float32{1, 2, 1, 1}, 4)
	lb := s.FromFloat32([]float32{0, 0, 1, 0}, 4)
	sd := math.Sqrt(1.25 + 1e-5)
	close32(t, "layer_norm", vals(t, s, s.LayerNorm(r, 4, lw, lb, 1e-5)),
		[]float64{-1.5 / sd, 2 * -0.5 / sd, 1 + 0.5/sd, 1.5 / sd}, 1e-5)
	// softmax([1,2,3])
	z := math.Exp(1) + math.Exp(2) + math.Exp(3)
	sm := s.FromFloat32([]float32{1, 2, 3}, 3)
	close32(t, "softmax", vals(t, s, s.Softmax(sm, 0)), []float64{math.Exp(1) / z, math.Exp(2) / z, math.Exp(3) / z}, 1e-6)
	close32(t, "log_softmax", vals(t, s, s.LogSoftmax(sm, 0)), []float64{1 - math.Log(z), 2 - math.Log(z), 3 - math.Log(z)}, 1e-6)
}

func TestAttention(t *testing.T) {
	s := scope(t)
	// One batch, one head, 2 positions, head_dim 2.
	q := s.FromFloat32([]float32{1, 0, 0, 1}, 1, 1, 2, 2)
	k := s.FromFloat32([]float32{1, 0, 0, 2}, 1, 1, 2, 2)
	v := s.FromFloat32([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	// scores = q k^T / sqrt(2): row0 [1,0]/√2, row1 [0,2]/√2
	sm := func(a, b float64) (float64, float64) {
		ea, eb := math.Exp(a), math.Exp(b)
		return ea / (ea + eb), eb / (ea + eb)
	}
	p00, p01 := sm(1/math.Sqrt2, 0)
	p10, p11 := sm(0, 2/math.Sqrt2)
	want := []float64{p00*1 + p01*3, p00*2 + p01*4, p10*1 + p11*3, p10*2 + p11*4}
	close32(t, "attention math", vals(t, s, s.Attention(q, k, v, 0, false, AttentionMath)), want, 1e-6)
	close32(t, "attention auto", vals(t, s, s.Attention(q, k, v, 0, false, AttentionAuto)), want, 1e-6)
	// causal: position 0 only sees itself
	c := vals(t, s, s.Attention(q, k, v, 0, true, AttentionMath))
	close32(t, "causal", c[:2], []float64{1, 2}, 1e-6)
	// random shapes: auto agrees with math
	g, _ := NewGenerator(3)
	defer g.Free()
	qq := s.Randn([]int64{2, 3, 5, 4}, Float32, CPU, g)
	kk := s.Randn([]int64{2, 3, 5, 4}, Float32, CPU, g)
	vv := s.Randn([]int64{2, 3, 5, 4}, Float32, CPU, g)
	a1 := vals(t, s, s.Attention(qq, kk, vv, 0, false, AttentionAuto))
	a2 := vals(t, s, s.Attention(qq, kk, vv, 0, false, AttentionMath))
	w := make([]float64, len(a2))
	for i := range a2 {
		w[i] = float64(a2[i])
	}
	close32(t, "auto vs math", a1, w, 1e-5)
	s.Attention(s.Reshape(qq, 6, 5, 4), kk, vv, 0, false, AttentionAuto)
	if s.Err() == nil {
		t.Fatal("rank-3 query must be refused")
	}
}

func TestCrossEntropy(t *testing.T) {
	s := scope(t)
	logits := s.FromFloat32([]float32{1, 2, 3, 0, 0, 0}, 2, 3)
	target := s.FromInt64([]int64{2, 0}, 2)
	lse := math.Log(math.Exp(1) + math.Exp(2) + math.Exp(3))
	l0 := lse - 3     // -log p(2)
	l1 := math.Log(3) // uniform row
	close32(t, "ce none", vals(t, s, s.CrossEntropy(logits, target, ReduceNone, 0)), []float64{l0, l1}, 1e-6)
	close32(t, "ce mean", vals(t, s, s.CrossEntropy(logits, target, ReduceMean, 0)), []float64{(l0 + l1) / 2}, 1e-6)
	close32(t, "ce sum", vals(t, s, s.CrossEntropy(logits, target, ReduceSum, 0)), []float64{l0 + l1}, 1e-6)
	// F.cross_entropy(..., label_smoothing=0.1) = 0.9*nll + 0.1*mean_c(-log p_c)
	eps := 0.1
	m0 := ((lse - 1) + (lse - 2) + (lse - 3)) / 3
	want0 := (1-eps)*l0 + eps*m0
	want1 := (1-eps)*l1 + eps*math.Log(3)
	close32(t, "ce smoothing", vals(t, s, s.CrossEntropy(logits, target, ReduceNone, eps)), []float64{want0, want1}, 1e-6)
	s.CrossEntropy(logits, s.FromInt64([]int64{5, 0}, 2), ReduceMean, 0)
	if s.Err() == nil {
		t.Fatal("target out of range must be an error")
	}
}

func TestDropout(t *testing.T) {
	s := scope(t)
	if err := ManualSeed(7); err != nil {
		t.Fatal(err)
	}
	x := s.Ones([]int64{1000}, Float32, CPU)
	y := vals(t, s, s.Dropout(x, 0.5, true))
	zeros := 0
	for _, v := range y {
		switch v {
		case 0:
			zeros++
		case 2:
		default:
			t.Fatalf("dropout value %v, want 0 or 2", v)
		}
	}
	if zeros < 400 || zeros > 600 {
		t.Fatalf("dropout zeroed %d of 1000 at p=0.5", zeros)
	}
	if err := ManualSeed(7); err != nil {
		t.Fatal(err)
	}
	y2 := vals(t, s, s.Dropout(x, 0.5, true))
	for i := range y {
		if y[i] != y2[i] {
			t.Fatal("dropout not reproducible under ManualSeed")
		}
	}
	close32(t, "eval dropout", vals(t, s, s.Dropout(s.FromFloat32([]float32{3}, 1), 0.5, false)), []float64{3}, 0)
}

func TestRandomAndRNGState(t *testing.T) {
	s := scope(t)
	g1, _ := NewGenerator(42)
	g2, _ := NewGenerator(42)
	defer g1.Free()
	defer g2.Free()
	a := vals(t, s, s.Randn([]int64{50}, Float32, CPU, g1))
	b := vals(t, s, s.Randn([]int64{50}, Float32, CPU, g2))
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different draws")
		}
	}
	u := s.Zeros([]int64{1000}, Float32, CPU)
	if err := u.Uniform(-0.25, 0.25, g1); err != nil {
		t.Fatal(err)
	}
	for _, v := range vals(t, s, u) {
		if v < -0.25 || v >= 0.25 {
			t.Fatalf("uniform value %v outside [-0.25, 0.25)", v)
		}
	}
	n := s.Zeros([]int64{20000}, Float32, CPU)
	if err := n.Normal(3, 2, g1); err != nil {
		t.Fatal(err)
	}
	mean := s.Item(s.Mean(n))
	if math.Abs(mean-3) > 0.1 {
		t.Fatalf("normal mean %v, want ~3", mean)
	}
	st, err := RNGState(CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Free()
	r1 := vals(t, s, s.Randn([]int64{5}, Float32, CPU, nil))
	if err := SetRNGState(CPU, st); err != nil {
		t.Fatal(err)
	}
	r2 := vals(t, s, s.Randn([]int64{5}, Float32, CPU, nil))
	for i := range r1 {
		if r1[i] != r2[i] {
			t.Fatal("restoring the RNG state did not reproduce the draws")
		}
	}
	ar := s.Arange(4, Int64, CPU)
	if v := s.Int64s(ar); v[3] != 3 {
		t.Fatalf("arange %v", v)
	}
}

// f(W) = sum(gelu(x Wᵀ + b)²): autograd's dW against central differences in float64.
func TestGradientsFiniteDifferences(t *testing.T) {
	s := scope(t)
	g, _ := NewGenerator(1)
	defer g.Free()
	x := s.Randn([]int64{3, 4}, Float64, CPU, g)
	w := s.Randn([]int64{2, 4}, Float64, CPU, g)
	b := s.Randn([]int64{2}, Float64, CPU, g)
	ok(t, s)
	if err := w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	f := func(s *Scope, w *Tensor) *Tensor {
		y := s.Gelu(s.Linear(x, w, b))
		ln := s.LayerNorm(y, 2, nil, nil, 1e-5)
		return s.Add(s.Sum(s.Mul(y, y)), s.Mean(s.Softmax(ln, 1)))
	}
	loss := f(s, w)
	s.Backward(loss)
	grad, err := s.Grad(w).Float64s()
	ok(t, s)
	if err != nil {
		t.Fatal(err)
	}
	wv, _ := w.Float64s()
	const h = 1e-6
	for i := range wv {
		plus := append([]float64(nil), wv...)
		minus := append([]float64(nil), wv...)
		plus[i] += h
		minus[i] -= h
		wp, _ := FromFloat64(plus, 2, 4)
		wm, _ := FromFloat64(minus, 2, 4)
		fp := s.Item(f(s, wp))
		fm := s.Item(f(s, wm))
		wp.Free()
		wm.Free()
		num := (fp - fm) / (2 * h)
		if math.Abs(num-grad[i]) > 1e-5*(1+math.Abs(num)) {
			t.Fatalf("dW[%d]: autograd %v, finite difference %v", i, grad[i], num)
		}
	}
	if err := ZeroGrad([]*Tensor{w}); err != nil {
		t.Fatal(err)
	}
	if s.Grad(w) != nil {
		t.Fatal("grad still present after ZeroGrad")
	}
}

func TestNoGradAndInferenceMode(t *testing.T) {
	s := scope(t)
	w := s.Ones([]int64{2}, Float32, CPU)
	if err := w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	if !s.MulScalar(w, 2).RequiresGrad() {
		t.Fatal("op on a parameter should require grad")
	}
	NoGrad(func() {
		if s.MulScalar(w, 2).RequiresGrad() {
			t.Fatal("op under NoGrad requires grad")
		}
	})
	if !GradEnabled() {
		t.Fatal("grad mode not restored")
	}
	exit, err := InferenceMode()
	if err != nil {
		t.Fatal(err)
	}
	r := s.MulScalar(w, 2)
	exit()
	if r.RequiresGrad() {
		t.Fatal("op in inference mode requires grad")
	}
}

func TestAutocastCPU(t *testing.T) {
	s := scope(t)
	x := s.Ones([]int64{2, 4}, Float32, CPU)
	w := s.Ones([]int64{3, 4}, Float32, CPU)
	exit, err := Autocast(CPU, BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	y := s.Linear(x, w, nil)
	if err := exit(); err != nil {
		t.Fatal(err)
	}
	ok(t, s)
	if y.DType() != BFloat16 {
		t.Fatalf("linear under CPU autocast gave %s, want bfloat16", y.DType())
	}
	if z := s.Linear(x, w, nil); z.DType() != Float32 {
		t.Fatalf("after autocast exit linear gave %s", z.DType())
	}
	if _, err := Autocast(CPU, Float16); err == nil {
		t.Fatal("fp16 autocast on CPU must be refused")
	}
}

// One AdamW step against the formula of torch.optim.AdamW, computed in float64.
func TestAdamWStepAndState(t *testing.T) {
	s := scope(t)
	p0 := []float64{0.5, -1, 2}
	g := []float64{0.1, -0.3, 0.2}
	p, _ := FromFloat64(p0, 3)
	defer p.Free()
	if err := p.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	cfg := AdamWConfig{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	opt, err := NewAdamW([]*Tensor{p}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Free()
	gt := s.FromFloat32(nil, 0) // placeholder to keep scope non-empty
	_ = gt
	m := make([]float64, 3)
	v := make([]float64, 3)
	want := append([]float64(nil), p0...)
	for step := 1; step <= 2; step++ {
		// loss = sum(p * g) so dL/dp = g
		gs, _ := FromFloat64(g, 3)
		loss := s.Sum(s.Mul(p, gs))
		s.Backward(loss)
		gs.Free()
		ok(t, s)
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			want[i] *= 1 - cfg.LR*cfg.WeightDecay
			m[i] = cfg.Beta1*m[i] + (1-cfg.Beta1)*g[i]
			v[i] = cfg.Beta2*v[i] + (1-cfg.Beta2)*g[i]*g[i]
			bc1 := 1 - math.Pow(cfg.Beta1, float64(step))
			bc2 := 1 - math.Pow(cfg.Beta2, float64(step))
			want[i] -= cfg.LR / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + cfg.Eps)
		}
	}
	got, _ := p.Float64s()
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("param %d after 2 steps: %v, want %v", i, got[i], want[i])
		}
	}
	step, ea, eas, err := opt.State(0)
	if err != nil || step != 2 || ea == nil || eas == nil {
		t.Fatalf("state: step %d, %v %v, %v", step, ea, eas, err)
	}
	mv, _ := ea.Float64s()
	if math.Abs(mv[1]-m[1]) > 1e-15 {
		t.Fatalf("exp_avg %v, want %v", mv, m)
	}
	// Restoring the state into a fresh optimizer continues identically.
	q, _ := FromFloat64(got, 3)
	defer q.Free()
	_ = q.SetRequiresGrad(true)
	opt2, _ := NewAdamW([]*Tensor{q}, cfg)
	defer opt2.Free()
	if err := opt2.SetState(0, step, ea, eas); err != nil {
		t.Fatal(err)
	}
	ea.Free()
	eas.Free()
	for _, o := range []struct {
		p *Tensor
		o *AdamW
	}{{p, opt}, {q, opt2}} {
		gs, _ := FromFloat64(g, 3)
		s.Backward(s.Sum(s.Mul(o.p, gs)))
		gs.Free()
		if err := o.o.Step(); err != nil {
			t.Fatal(err)
		}
	}
	a1, _ := p.Float64s()
	a2, _ := q.Float64s()
	for i := range a1 {
		if a1[i] != a2[i] {
			t.Fatalf("restored optimizer diverged: %v vs %v", a1, a2)
		}
	}
	bad, _ := FromFloat64([]float64{1}, 1)
	defer bad.Free()
	if err := opt2.SetState(0, 1, bad, bad); err == nil {
		t.Fatal("moment of the wrong shape must be refused")
	}
}

func TestClipGradNormAndScaler(t *testing.T) {
	s := scope(t)
	p, _ := FromFloat32([]float32{1, 1}, 2)
	defer p.Free()
	_ = p.SetRequiresGrad(true)
	gs := s.FromFloat32([]float32{3, 4}, 2)
	s.Backward(s.Sum(s.Mul(p, gs)))
	ok(t, s)
	n, err := ClipGradNorm([]*Tensor{p}, 1)
	if err != nil || math.Abs(n-5) > 1e-6 {
		t.Fatalf("norm %v %v, want 5", n, err)
	}
	// torch: coef = 1/(5+1e-6)
	c := 1 / (5 + 1e-6)
	close32(t, "clipped", vals(t, s, s.Grad(p)), []float64{3 * c, 4 * c}, 1e-6)
	sc := NewGradScaler()
	sc.Scale = 4
	if err := ScaleGrads([]*Tensor{p}, 4); err != nil {
		t.Fatal(err)
	}
	norm, finite, err := sc.Unscale([]*Tensor{p})
	if err != nil || !finite || math.Abs(norm-5*c) > 1e-5 {
		t.Fatalf("unscale: %v %v %v", norm, finite, err)
	}
	sc.Update(true)
	if sc.Scale != 2 {
		t.Fatalf("scale after overflow %v, want 2", sc.Scale)
	}
	sc.GrowthInterval = 2
	sc.Update(false)
	sc.Update(false)
	if sc.Scale != 4 {
		t.Fatalf("scale after growth %v, want 4", sc.Scale)
	}
	// a NaN gradient reads as not finite
	_ = ZeroGrad([]*Tensor{p})
	s.Backward(s.Sum(s.Mul(p, s.FromFloat32([]float32{float32(math.NaN()), 1}, 2))))
	if _, finite, _ := sc.Unscale([]*Tensor{p}); finite {
		t.Fatal("NaN gradient reported finite")
	}
}

func TestViewsAndPinned(t *testing.T) {
	s := scope(t)
	x := s.Empty([]int64{2, 3}, Float32, CPU, true)
	ok(t, s)
	v, err := x.Float32View()
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		v[i] = float32(i) * 1.5
	}
	close32(t, "view write", vals(t, s, x), []float64{0, 1.5, 3, 4.5, 6, 7.5}, 0)
	if _, err := s.Transpose(x, 0, 1).Float32View(); err == nil {
		t.Fatal("view of a non-contiguous tensor must be refused")
	}
	dst := s.Zeros([]int64{2, 3}, Float32, CPU)
	if err := dst.CopyFrom(x, true); err != nil {
		t.Fatal(err)
	}
	close32(t, "copy", vals(t, s, dst), []float64{0, 1.5, 3, 4.5, 6, 7.5}, 0)
}

func TestErrorsAreGoErrors(t *testing.T) {
	s := scope(t)
	a := s.Ones([]int64{2, 3}, Float32, CPU)
	b := s.Ones([]int64{2, 3}, Float32, CPU)
	if r := s.Matmul(a, b); r != nil {
		t.Fatal("matmul of [2,3]x[2,3] returned a tensor")
	}
	var te *Error
	if err := s.Err(); !errors.As(err, &te) || te.Op != "matmul" || !strings.Contains(te.Msg, "shapes cannot be multiplied") {
		t.Fatalf("want a matmul *Error, got %v", s.Err())
	}
	// sticky: later ops do nothing and the first error stays
	if s.Add(a, b) != nil || !strings.Contains(s.Err().Error(), "matmul") {
		t.Fatal("scope error is not sticky")
	}

	s2 := scope(t)
	c := s2.Ones([]int64{2}, Float32, CPU)
	s2.Backward(s2.Sum(c))
	if err := s2.Err(); err == nil || !strings.Contains(err.Error(), "does not require grad") {
		t.Fatalf("backward without grad: %v", err)
	}
	if err := (&Tensor{}).Backward(); err == nil {
		t.Fatal("backward on a freed tensor")
	}

	if _, err := ParseDevice("tpu"); err == nil {
		t.Fatal("unknown device accepted")
	}
	if _, err := Zeros([]int64{2}, Float32, Device{Type: DeviceType(9)}); err == nil {
		t.Fatal("unknown device type accepted by libtorch call")
	}
	if !BuiltWithCUDA() {
		_, err := Zeros([]int64{2}, Float32, CUDA(0))
		if err == nil || !strings.Contains(err.Error(), "without CUDA") {
			t.Fatalf("cuda on a CPU build: %v", err)
		}
		if CheckDevice(CUDA(0)) == nil {
			t.Fatal("CheckDevice(cuda) passed on a CPU build")
		}
		if _, err := Autocast(CUDA(0), BFloat16); err == nil {
			t.Fatal("cuda autocast on a CPU build")
		}
		if _, err := DeviceMemory(CUDA(0)); err == nil {
			t.Fatal("cuda memory stats on a CPU build")
		}
	}
	// a truncated .pt file
	dir := t.TempDir()
	d, _ := NewDict()
	defer d.Free()
	_ = d.SetTensor("w", s2.Ones([]int64{100}, Float32, CPU))
	full := filepath.Join(dir, "full.pt")
	if err := d.Save(full); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(full)
	trunc := filepath.Join(dir, "trunc.pt")
	_ = os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	if _, err := LoadDict(trunc); err == nil {
		t.Fatal("loading a truncated file succeeded")
	}
	if _, err := LoadDict(filepath.Join(dir, "missing.pt")); err == nil {
		t.Fatal("loading a missing file succeeded")
	}
	garbage := filepath.Join(dir, "garbage.pt")
	_ = os.WriteFile(garbage, []byte("not a zip at all"), 0o644)
	if _, err := LoadDict(garbage); err == nil {
		t.Fatal("loading garbage succeeded")
	}
	if IsOutOfMemory(errors.New("x")) || !IsOutOfMemory(&Error{Kind: KindOutOfMemory}) {
		t.Fatal("IsOutOfMemory")
	}
}

func TestDictSaveLoad(t *testing.T) {
	s := scope(t)
	d, err := NewDict()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free()
	w := s.FromFloat32([]float32{1, 2.5, -3}, 3)
	bf := s.ToDType(s.FromFloat32([]float32{0.5, 4}, 2), BFloat16)
	ok(t, s)
	sub, _ := NewDict()
	defer sub.Free()
	_ = sub.SetInt("layers", 16)
	_ = sub.SetFloat("lr", 4e-5)
	for _, err := range []error{d.SetTensor("w", w), d.SetTensor("bf", bf), d.SetInt("iteration", 7),
		d.SetString("kind", "selection_aware"), d.SetBool("amp", true), d.SetDict("config", sub)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "x.pt")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDict(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	es, _ := back.Entries()
	if len(es) != 6 || es[0].Key != "w" || es[0].Kind != ValueTensor || es[5].Kind != ValueDict {
		t.Fatalf("entries %v", es)
	}
	wt, _ := back.Tensor("w")
	defer wt.Free()
	got, _ := wt.Float32s()
	close32(t, "w", got, []float64{1, 2.5, -3}, 0)
	bt, _ := back.Tensor("bf")
	defer bt.Free()
	if bt.DType() != BFloat16 {
		t.Fatalf("bf dtype %s", bt.DType())
	}
	if it, _ := back.Int("iteration"); it != 7 {
		t.Fatalf("iteration %d", it)
	}
	if k, _ := back.Str("kind"); k != "selection_aware" {
		t.Fatalf("kind %q", k)
	}
	if a, _ := back.Bool("amp"); !a {
		t.Fatal("amp")
	}
	cfg, err := back.Dict("config")
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Free()
	if lr, _ := cfg.Float("lr"); lr != 4e-5 {
		t.Fatalf("lr %v", lr)
	}
	if _, err := back.Int("kind"); err == nil {
		t.Fatal("reading a string as int must fail")
	}
	if _, err := back.Tensor("nope"); err == nil {
		t.Fatal("missing key must fail")
	}

	// PyTorch's plain torch.load (weights_only=True by default since 2.6)
	// opens the same file: no code-running globals such as libtorch's type
	// tags (torch.jit._pickle.restore_type_tag) are in it.
	py := pythonWithTorch(t)
	script := `
import sys, torch
d = torch.load(sys.argv[1])
assert d["w"].tolist() == [1.0, 2.5, -3.0], d["w"]
assert d["bf"].dtype == torch.bfloat16 and d["bf"].float().tolist() == [0.5, 4.0]
assert d["iteration"] == 7 and d["kind"] == "selection_aware" and d["amp"] is True
lr = d["config"]["lr"]   # a Python float, as torch.save writes one
assert type(lr) is float and lr == 4e-5, lr
assert d["config"]["layers"] == 16 and type(d["config"]["layers"]) is int
print("ok")
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python torch.load: %v\n%s", err, out)
	}
}

// pythonWithTorch returns the project's Python with torch, or skips the test (fails under CI).
func pythonWithTorch(t *testing.T) string {
	t.Helper()
	return testenv.Python(t, "torch")
}

func rssKiB(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// 100,000 create/op/free cycles through scopes: RSS must stay flat.
func TestNoLeakOverManyCycles(t *testing.T) {
	unlock := LockThread()
	defer unlock()
	data := make([]float32, 256)
	cycle := func() {
		s := NewScope()
		a := s.FromFloat32(data, 16, 16)
		b := s.MulScalar(s.Add(a, a), 0.5)
		c := s.Matmul(b, s.Transpose(a, 0, 1))
		_ = s.Sum(c)
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		s.Close()
	}
	for i := 0; i < 10000; i++ {
		cycle()
	}
	before := rssKiB(t)
	for i := 0; i < 100000; i++ {
		cycle()
	}
	after := rssKiB(t)
	// Each cycle allocates ~5 KiB of tensor memory; a leak of one tensor per
	// cycle would add >100 MiB. Allow 16 MiB for allocator and runtime noise.
	if growth := after - before; growth > 16*1024 {
		t.Fatalf("RSS grew %d KiB over 100,000 cycles (%d -> %d)", growth, before, after)
	} else {
		t.Logf("RSS %d KiB -> %d KiB over 100,000 cycles", before, after)
	}
}

func TestSerializeMatchesSave(t *testing.T) {
	s := scope(t)
	d, _ := NewDict()
	defer d.Free()
	if err := d.SetTensor("w", s.FromFloat32([]float32{1, 2, 3}, 3)); err != nil {
		t.Fatal(err)
	}
	_ = d.SetInt("n", 5)
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pt")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	ser, err := d.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	got := append([]byte(nil), ser.Bytes()...)
	ser.Free()
	if len(got) != len(want) || string(got) != string(want) {
		t.Fatalf("Serialize gave %d bytes, Save wrote %d (or different content)", len(got), len(want))
	}
	p2 := filepath.Join(dir, "b.pt")
	_ = os.WriteFile(p2, got, 0o644)
	back, err := LoadDict(p2)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	if n, _ := back.Int("n"); n != 5 {
		t.Fatalf("n = %d", n)
	}
}

// TestDictLoadTaggedFormat: files written before checkpoints dropped
// libtorch's type tags (torch.jit._pickle.restore_type_tag, doubles pickled as
// floats) still load. testdata/typed_dict_v1.pt was written by Dict.Save at
// commit 3239a93 (torch::pickle_save) with the values checked here.
func TestDictLoadTaggedFormat(t *testing.T) {
	raw, err := os.ReadFile("testdata/typed_dict_v1.pt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("restore_type_tag")) {
		t.Fatal("testdata/typed_dict_v1.pt is not in the tagged format")
	}
	d, err := LoadDict("testdata/typed_dict_v1.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free()
	w, err := d.Tensor("w")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	got, _ := w.Float32s()
	close32(t, "w", got, []float64{1, 2.5, -3}, 0)
	bf, err := d.Tensor("bf")
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Free()
	if bf.DType() != BFloat16 {
		t.Fatalf("bf dtype %s", bf.DType())
	}
	it, err1 := d.Int("iteration")
	kind, err2 := d.Str("kind")
	amp, err3 := d.Bool("amp")
	cfg, err4 := d.Dict("config")
	if err := errors.Join(err1, err2, err3, err4); err != nil || it != 7 || kind != "selection_aware" || !amp {
		t.Fatalf("iteration %d kind %q amp %v: %v", it, kind, amp, err)
	}
	defer cfg.Free()
	lr, err1 := cfg.Float("lr")
	layers, err2 := cfg.Int("layers")
	dev, err3 := cfg.Str("device")
	if err := errors.Join(err1, err2, err3); err != nil || lr != 4e-5 || layers != 16 || dev != "cpu" {
		t.Fatalf("config lr %v layers %d device %q: %v", lr, layers, dev, err)
	}
}

// TestDictSaveIsSafeToLoad: Save and Serialize write no type tags (the
// weights_only loader refuses them) and doubles as pickled floats; a double
// comes back exactly, +Inf included, in Go and in PyTorch's default
// torch.load. A file written before libtorch 2.11 holds a double as a 0-dim
// float64 tensor (1.13's safe loader had no pickled floats): Float reads it.
func TestDictSaveIsSafeToLoad(t *testing.T) {
	d, _ := NewDict()
	defer d.Free()
	sub, _ := NewDict()
	defer sub.Free()
	for _, err := range []error{sub.SetFloat("x", 0.1), d.SetDict("sub", sub), d.SetFloat("inf", math.Inf(1)),
		d.SetFloat("third", 1.0/3), d.SetInt("big", 1<<40), d.SetInt("neg", -5)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "safe.pt")
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("restore_type_tag")) || bytes.Contains(raw, []byte("torch.jit")) {
		t.Fatal("saved file still holds libtorch type tags")
	}
	back, err := LoadDict(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	inf, err1 := back.Float("inf")
	third, err2 := back.Float("third")
	big, err3 := back.Int("big")
	neg, err4 := back.Int("neg")
	bs, err5 := back.Dict("sub")
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || !math.IsInf(inf, 1) || third != 1.0/3 || big != 1<<40 || neg != -5 {
		t.Fatalf("inf %v third %v big %d neg %d: %v", inf, third, big, neg, err)
	}
	defer bs.Free()
	if x, err := bs.Float("x"); err != nil || x != 0.1 {
		t.Fatalf("sub.x %v: %v", x, err)
	}
	py := pythonWithTorch(t)
	script := `
import math, sys, torch
d = torch.load(sys.argv[1])
assert math.isinf(d["inf"]) and d["third"] == 1.0 / 3 and d["sub"]["x"] == 0.1, d
assert all(type(d[k]) is float for k in ("inf", "third")), d
assert d["big"] == 1 << 40 and d["neg"] == -5, d
old = sys.argv[2]   # the layout before 2.11
torch.save({"lr": torch.tensor(4e-5, dtype=torch.float64), "sub": {"x": torch.tensor(0.1, dtype=torch.float64)}}, old)
print("ok")
`
	old := filepath.Join(t.TempDir(), "old.pt")
	out, err := exec.Command(py, "-c", script, path, old).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python torch.load: %v\n%s", err, out)
	}
	od, err := LoadDict(old)
	if err != nil {
		t.Fatal(err)
	}
	defer od.Free()
	osub, err := od.Dict("sub")
	if err != nil {
		t.Fatal(err)
	}
	defer osub.Free()
	lr, err1 := od.Float("lr")
	x, err2 := osub.Float("x")
	if err := errors.Join(err1, err2); err != nil || lr != 4e-5 || x != 0.1 {
		t.Fatalf("a pre-2.11 file's 0-dim float64 tensors read as lr %v, x %v: %v", lr, x, err)
	}
}
