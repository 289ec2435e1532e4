package torch

import (
	"math"
	"testing"
)

// Float32 and bfloat16 unit roundoff (half an ulp at 1).
const (
	u32 = 1.0 / (1 << 24)
	u16 = 1.0 / (1 << 8)
)

// gamma is Higham's γ_n = n·u/(1 − n·u), the bound on the relative error of
// an n-term dot product in any summation order.
func gamma(n int, u float64) float64 { return float64(n) * u / (1 - float64(n)*u) }

// geluLipschitz bounds |gelu'(z)| = |Φ(z) + z·φ(z)| over all z (its maximum,
// about 1.129, is at z = √2).
const geluLipschitz = 1.13

func geluErf(z float64) float64 { return 0.5 * z * (1 + math.Erf(z/math.Sqrt2)) }
func geluTanh(z float64) float64 {
	return 0.5 * z * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(z+0.044715*z*z*z)))
}

// linearGeluBound returns, for each output of gelu(x wᵀ + b), the largest
// difference two float evaluations may show: each path's pre-activation is
// off by at most γ_{K+1}·(|x|·|w|ᵀ + |b|) plus a rounding of z to the output
// type (uOut·|z|), GELU's slope carries that through, and each path rounds
// its GELU output once more (a few uOut of |y|). gap is added for kernels that
// compute a different GELU (the tanh approximation on CUDA).
func linearGeluBound(x, w, b []float64, n, k, m int, uAcc, uOut, gap float64) []float64 {
	out := make([]float64, n*m)
	g := gamma(k+1, uAcc)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			a, z := math.Abs(b[j]), b[j]
			for t := 0; t < k; t++ {
				a += math.Abs(x[i*k+t] * w[j*k+t])
				z += x[i*k+t] * w[j*k+t]
			}
			pre := g*a + uOut*math.Abs(z)
			out[i*m+j] = 2*(geluLipschitz*pre+4*uOut*math.Abs(geluErf(z))) + gap
		}
	}
	return out
}

func f64s(t *testing.T, s *Scope, x *Tensor) []float64 {
	t.Helper()
	v := vals(t, s, s.ToDType(x, Float32))
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out
}

type linearGeluCase struct {
	x, w, b    *Tensor
	xs, ws, bs []float64
	n, k, m    int
}

// newLinearGeluCase makes x [2, 5, 64], w [48, 64] and b [48] on d with
// entries of the size nn.Linear's initialisation gives (pre-activations of
// order 1, where GELU is far from linear).
func newLinearGeluCase(t *testing.T, s *Scope, d Device) linearGeluCase {
	t.Helper()
	g, err := NewGenerator(7)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	c := linearGeluCase{n: 10, k: 64, m: 48}
	x := s.Randn([]int64{2, 5, int64(c.k)}, Float32, CPU, g)
	w := s.MulScalar(s.Randn([]int64{int64(c.m), int64(c.k)}, Float32, CPU, g), 1/math.Sqrt(float64(c.k)))
	b := s.MulScalar(s.Randn([]int64{int64(c.m)}, Float32, CPU, g), 0.5)
	c.xs, c.ws, c.bs = f64s(t, s, x), f64s(t, s, w), f64s(t, s, b)
	c.x, c.w, c.b = s.To(x, d, Float32, false), s.To(w, d, Float32, false), s.To(b, d, Float32, false)
	ok(t, s)
	return c
}

func checkWithin(t *testing.T, name string, got, want, bound []float64) {
	t.Helper()
	if len(got) != len(want) || len(got) != len(bound) {
		t.Fatalf("%s: %d values, want %d (bounds %d)", name, len(got), len(want), len(bound))
	}
	worst, at := 0.0, 0
	for i := range got {
		d := math.Abs(got[i] - want[i])
		if math.IsNaN(got[i]) || d > bound[i] {
			t.Fatalf("%s[%d] = %v, reference %v: |difference| %.3g > bound %.3g", name, i, got[i], want[i], d, bound[i])
		}
		if r := d / bound[i]; r > worst {
			worst, at = r, i
		}
	}
	t.Logf("%s: largest difference is %.2g of its bound (element %d)", name, worst, at)
}

// The fused bias + GELU kernel against the plain linear + gelu, on the CPU in
// float32 and under bf16 autocast. The fused path must actually run where the
// build has the op, and fall back to the reference,
// bit for bit, when autograd needs the op's derivative.
func TestLinearGeluFusedMatchesPlain(t *testing.T) {
	s := scope(t)
	c := newLinearGeluCase(t, s, CPU)
	if !Fused().LinearGelu {
		t.Skipf("libtorch %s has no at::_addmm_activation", Version())
	}

	var plain, fused *Tensor
	var ran bool
	NoGrad(func() {
		plain = s.LinearGelu(c.x, c.w, c.b, false)
		fused, ran = s.LinearGeluPath(c.x, c.w, c.b, true)
	})
	ok(t, s)
	if !ran {
		t.Fatal("fused path did not run without grad on the CPU, though the build has at::_addmm_activation")
	}
	if got := fused.Shape(); len(got) != 3 || got[0] != 2 || got[1] != 5 || got[2] != int64(c.m) {
		t.Fatalf("fused output shape %v, want [2 5 %d]", got, c.m)
	}
	bound := linearGeluBound(c.xs, c.ws, c.bs, c.n, c.k, c.m, u32, u32, 0)
	checkWithin(t, "fp32 fused vs plain", f64s(t, s, fused), f64s(t, s, plain), bound)

	// bf16 autocast: both paths cast x, w, b to bfloat16 (identically) and
	// round outputs to bfloat16; the accumulation precision of a bf16 GEMM is
	// the kernel's choice, so the bound takes bfloat16's.
	exit, err := Autocast(CPU, BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	NoGrad(func() {
		plain = s.LinearGelu(c.x, c.w, c.b, false)
		fused, ran = s.LinearGeluPath(c.x, c.w, c.b, true)
	})
	if err := exit(); err != nil {
		t.Fatal(err)
	}
	ok(t, s)
	if !ran || fused.DType() != BFloat16 || plain.DType() != BFloat16 {
		t.Fatalf("under bf16 autocast: fused ran %v, dtypes fused %s plain %s (want bfloat16 both)", ran, fused.DType(), plain.DType())
	}
	bound = linearGeluBound(c.xs, c.ws, c.bs, c.n, c.k, c.m, u16, u16, 0)
	checkWithin(t, "bf16 autocast fused vs plain", f64s(t, s, fused), f64s(t, s, plain), bound)

	// With grad needed the reference runs: same tensor values, and backward works.
	if err := c.w.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	withGrad, ran := s.LinearGeluPath(c.x, c.w, c.b, true)
	ref := s.LinearGelu(c.x, c.w, c.b, false)
	ok(t, s)
	if ran {
		t.Fatal("fused path ran although autograd needs its derivative")
	}
	a, r := f64s(t, s, withGrad), f64s(t, s, ref)
	for i := range a {
		if a[i] != r[i] {
			t.Fatalf("fallback path [%d] = %v, plain %v: must be the same ops", i, a[i], r[i])
		}
	}
	s.Backward(s.Sum(withGrad))
	if s.Grad(c.w) == nil {
		t.Fatal("no gradient through the fallback path")
	}
	ok(t, s)

	// Without a bias there is nothing to fuse: the reference runs.
	NoGrad(func() { _, ran = s.LinearGeluPath(c.x, c.w, nil, true) })
	ok(t, s)
	if ran {
		t.Fatal("fused path ran without a bias")
	}
}

// On CUDA PyTorch's fused kernel computes GELU's tanh approximation, so the
// bound adds the largest gap between the two GELUs (computed here).
func TestLinearGeluFusedMatchesPlainCUDA(t *testing.T) {
	if !CUDAIsAvailable() || !Fused().LinearGelu {
		t.Skip("needs a CUDA device and at::_addmm_activation")
	}
	s := scope(t)
	c := newLinearGeluCase(t, s, Device{Type: DeviceCUDA})
	gap := 0.0
	for z := -10.0; z <= 10; z += 1e-4 {
		gap = math.Max(gap, math.Abs(geluErf(z)-geluTanh(z)))
	}
	var plain, fused *Tensor
	var ran bool
	NoGrad(func() {
		plain = s.LinearGelu(c.x, c.w, c.b, false)
		fused, ran = s.LinearGeluPath(c.x, c.w, c.b, true)
	})
	ok(t, s)
	if !ran {
		t.Fatal("fused path did not run on CUDA without grad")
	}
	bound := linearGeluBound(c.xs, c.ws, c.bs, c.n, c.k, c.m, u32, u32, gap)
	checkWithin(t, "CUDA fp32 fused vs plain", f64s(t, s, fused), f64s(t, s, plain), bound)
}

// adamwRun makes p on d from p0, runs steps AdamW steps with the gradients gs
// (loss = Σ p·g), and returns p and whether the fused step was active.
func adamwRun(t *testing.T, s *Scope, d Device, p0, g []float64, steps int, fused bool) ([]float64, bool) {
	t.Helper()
	host, err := FromFloat64(p0, int64(len(p0)))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Free()
	p := s.Keep(s.To(s.ToDType(host, Float32), d, Float32, false))
	ok(t, s)
	defer p.Free()
	if err := p.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	opt, err := NewAdamW([]*Tensor{p}, AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Free()
	active, err := opt.SetFused(fused)
	if err != nil {
		t.Fatal(err)
	}
	gh, _ := FromFloat64(g, int64(len(g)))
	defer gh.Free()
	gd := s.To(s.ToDType(gh, Float32), d, Float32, false)
	for i := 0; i < steps; i++ {
		s.Backward(s.Sum(s.Mul(p, gd)))
		ok(t, s)
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
	}
	if st, _, _, err := opt.State(0); err != nil || st != int64(steps) {
		t.Fatalf("optimizer state: step %d, err %v; want %d", st, err, steps)
	}
	return f64s(t, s, p), active
}

// Off CUDA the fused AdamW step is never active and the reference loop runs,
// bit for bit the same as an optimizer that never asked for it.
func TestAdamWFusedFallsBackOffCUDA(t *testing.T) {
	s := scope(t)
	p0 := []float64{0.5, -1, 2, 0.25}
	g := []float64{0.1, -0.3, 0.2, 0}
	plain, _ := adamwRun(t, s, CPU, p0, g, 3, false)
	fused, active := adamwRun(t, s, CPU, p0, g, 3, true)
	if active {
		t.Fatal("fused AdamW reported active on CPU parameters")
	}
	for i := range plain {
		if plain[i] != fused[i] {
			t.Fatalf("param %d: %v with fused requested, %v without", i, fused[i], plain[i])
		}
	}
}

// On CUDA with libtorch 2.1+ the fused step runs and agrees with the loop up
// to float32 rounding: per step the weight-decay product (|p|·u) and the
// update's ~10 operations (10·u of lr·|m̂/(√v̂+ε)|, which Adam keeps below
// (1−β1)/√(1−β2) ≈ 3.2 in the first step and near 1 later).
func TestAdamWFusedMatchesPlainCUDA(t *testing.T) {
	if !CUDAIsAvailable() || !Fused().AdamW {
		t.Skip("needs a CUDA device and libtorch 2.1+ (at::_fused_adamw_)")
	}
	s := scope(t)
	d := Device{Type: DeviceCUDA}
	p0 := []float64{0.5, -1, 2, 0.25, 3e-3}
	g := []float64{0.1, -0.3, 0.2, 0, 1e-4}
	const steps = 3
	plain, _ := adamwRun(t, s, d, p0, g, steps, false)
	fused, active := adamwRun(t, s, d, p0, g, steps, true)
	if !active {
		t.Fatal("fused AdamW not active on CUDA parameters with libtorch 2.1+")
	}
	for i := range plain {
		bound := steps * (2*u32*(math.Abs(p0[i])+1) + 2*10*u32*1e-2*3.2)
		if d := math.Abs(plain[i] - fused[i]); d > bound {
			t.Fatalf("param %d: fused %v, plain %v: |difference| %.3g > bound %.3g", i, fused[i], plain[i], d, bound)
		}
	}
}
