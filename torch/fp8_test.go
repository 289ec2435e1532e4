package torch

import (
	"math"
	"strings"
	"testing"
)

// e4m3's unit roundoff: 3 mantissa bits, so rounding to nearest is within
// 2⁻⁴ relatively for normal values; below 2⁻⁶·s (the subnormal range, in
// units of the scale s) the spacing is 2⁻⁹·s, so the error is within 2⁻¹⁰·s.
const (
	uE4M3      = 1.0 / 16
	subE4M3Abs = 1.0 / 1024
)

// e4m3Err bounds |q(v)·s − v| for an element v of a tensor quantised with
// scale s (the float32 division v/s adds a few 2⁻²⁴, covered by the factor).
func e4m3Err(v, s float64) float64 {
	return math.Max(uE4M3*math.Abs(v), subE4M3Abs*s) * (1 + 1e-6)
}

func amax(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// fp8LinearBound bounds |fp8(x wᵀ + b) − (x wᵀ + b)| per output: each
// product x·w becomes (x+e_x)(w+e_w), off by |e_x||w| + |x||e_w| + |e_x||e_w|
// with e from e4m3Err and the scales max|x|/448, max|w|/448 (as
// torch.float8_e4m3fn quantisation with per-tensor scales computes them), plus
// the float32 accumulation and scaling of the K products and the bias add,
// γ_{K+3}·Σ(|x|+e_x)(|w|+e_w) + |b|.
func fp8LinearBound(x, w, b []float64, n, k, m int) []float64 {
	sx, sw := amax(x)/FP8E4M3Max, amax(w)/FP8E4M3Max
	g := gamma(k+3, u32)
	out := make([]float64, n*m)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			quant, mag := 0.0, math.Abs(b[j])
			for t := 0; t < k; t++ {
				xv, wv := math.Abs(x[i*k+t]), math.Abs(w[j*k+t])
				ex, ew := e4m3Err(xv, sx), e4m3Err(wv, sw)
				quant += ex*wv + xv*ew + ex*ew
				mag += (xv + ex) * (wv + ew)
			}
			out[i*m+j] = quant + g*mag
		}
	}
	return out
}

// reference computes x wᵀ + b in float64.
func linearF64(x, w, b []float64, n, k, m int) []float64 {
	out := make([]float64, n*m)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			z := 0.0
			if b != nil {
				z = b[j]
			}
			for t := 0; t < k; t++ {
				z += x[i*k+t] * w[j*k+t]
			}
			out[i*m+j] = z
		}
	}
	return out
}

// checkFP8Linear runs LinearFP8 on the case and checks it against the exact
// product (torch.nn.functional.linear in float64) within fp8LinearBound, and
// against F.linear of the dequantised operands within float32 rounding.
func checkFP8Linear(t *testing.T, s *Scope, c linearGeluCase, name string) {
	t.Helper()
	w8, err := QuantizeFP8(c.w)
	if err != nil {
		t.Fatal(err)
	}
	defer w8.Free()
	if sc, err := w8.Scale(); err != nil || math.Abs(sc-amax(c.ws)/FP8E4M3Max) > 4*u32*sc {
		t.Fatalf("%s: weight scale %v (%v), want max|w|/448 = %v", name, sc, err, amax(c.ws)/FP8E4M3Max)
	}
	var y *Tensor
	NoGrad(func() { y = s.LinearFP8(c.x, w8, c.b) })
	ok(t, s)
	if got := y.Shape(); len(got) != 3 || got[0] != 2 || got[1] != 5 || got[2] != int64(c.m) {
		t.Fatalf("%s: output shape %v, want [2 5 %d]", name, got, c.m)
	}
	if y.DType() != Float32 {
		t.Fatalf("%s: output dtype %v, want float32", name, y.DType())
	}
	got := f64s(t, s, y)
	exact := linearF64(c.xs, c.ws, c.bs, c.n, c.k, c.m)
	checkWithin(t, name+" vs exact", got, exact, fp8LinearBound(c.xs, c.ws, c.bs, c.n, c.k, c.m))
	// It really quantised: the float32 path's error bound is γ_{K+1}·Σ|x||w|,
	// some 10⁻⁵ here; e4m3 leaves errors of order 2⁻⁴·|x||w|/√K ≈ 10⁻².
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(got[i]-exact[i]))
	}
	if worst < 1e-3 {
		t.Fatalf("%s: largest error %.3g: the FP8 path did not quantise", name, worst)
	}

	// Against float32 F.linear on the dequantised operands: the same
	// products, so only float32 accumulation differs. x is quantised per
	// call with the same rule QuantizeFP8 applies.
	x8, err := QuantizeFP8(c.x)
	if err != nil {
		t.Fatal(err)
	}
	defer x8.Free()
	xd, wd := s.Dequantized(x8), s.Dequantized(w8)
	ok(t, s)
	xq, wq := f64s(t, s, xd), f64s(t, s, wd)
	var ref *Tensor
	NoGrad(func() { ref = s.Linear(xd, wd, c.b) })
	g := gamma(c.k+3, u32)
	bound := make([]float64, c.n*c.m)
	for i := 0; i < c.n; i++ {
		for j := 0; j < c.m; j++ {
			a := math.Abs(c.bs[j])
			for k := 0; k < c.k; k++ {
				a += math.Abs(xq[i*c.k+k] * wq[j*c.k+k])
			}
			bound[i*c.m+j] = 2 * g * a
		}
	}
	checkWithin(t, name+" vs F.linear(dequantised)", got, f64s(t, s, ref), bound)
}

// LinearFP8 against the exact x wᵀ + b on the CPU, with a bound derived from
// e4m3's 3 mantissa bits (torch._scaled_mm(x8, w8.t(), scale_a=sx,
// scale_b=sw, out_dtype=torch.float32) + b, with x8 = (x/sx).to(float8_e4m3fn)
// and sx = x.abs().max()/448, is the PyTorch expression it mirrors).
func TestFP8LinearWithinE4M3Bound(t *testing.T) {
	s := scope(t)
	checkFP8Linear(t, s, newLinearGeluCase(t, s, CPU), "cpu fp8 linear")
}

// The same on a CUDA device of compute capability 8.9+ (FP8 GEMMs).
func TestFP8LinearWithinE4M3BoundCUDA(t *testing.T) {
	if !CUDAIsAvailable() {
		t.Skip("needs a CUDA device")
	}
	s := scope(t)
	checkFP8Linear(t, s, newLinearGeluCase(t, s, Device{Type: DeviceCUDA}), "cuda fp8 linear")
}

// Scales: per-tensor scales make the result scale-equivariant. Multiplying x
// by a power of two multiplies its scale by the same power and leaves the e4m3
// codes unchanged, so the product scales exactly: for 2¹⁰, for 2²⁰ ≈ 1e6 (far
// beyond e4m3's largest value, 448: scaled into range, not overflowed to NaN)
// and for 2⁻²⁰ (far below its smallest, 2⁻⁹: not flushed to zero).
func TestFP8LinearScaleHandling(t *testing.T) {
	s := scope(t)
	c := newLinearGeluCase(t, s, CPU)
	w8, err := QuantizeFP8(c.w)
	if err != nil {
		t.Fatal(err)
	}
	defer w8.Free()
	var y *Tensor
	NoGrad(func() { y = s.LinearFP8(c.x, w8, nil) })
	ok(t, s)
	a := f64s(t, s, y)
	for _, f := range []float64{1 << 10, 1 << 20, 1.0 / (1 << 20)} {
		var yf *Tensor
		NoGrad(func() { yf = s.LinearFP8(s.MulScalar(c.x, f), w8, nil) })
		ok(t, s)
		for i, got := range f64s(t, s, yf) {
			if got != f*a[i] {
				t.Fatalf("fp8(%g·x)[%d] = %v, want exactly %g·fp8(x) = %v", f, i, got, f, f*a[i])
			}
		}
	}
	// A weight's dequantised values keep its largest magnitude exactly (it maps to ±448).
	wd := f64s(t, s, s.Dequantized(w8))
	if got, want := amax(wd), amax(c.ws); math.Abs(got-want) > 4*u32*want {
		t.Fatalf("max |dequantised w| = %v, want max |w| = %v", got, want)
	}
}

// Zero tensors: an all-zero weight or input gets scale 1 (no division by
// zero) and the output is the bias exactly.
func TestFP8LinearZeroTensor(t *testing.T) {
	s := scope(t)
	c := newLinearGeluCase(t, s, CPU)
	zw := s.Zeros([]int64{int64(c.m), int64(c.k)}, Float32, CPU)
	zx := s.Zeros([]int64{3, int64(c.k)}, Float32, CPU)
	ok(t, s)
	z8, err := QuantizeFP8(zw)
	if err != nil {
		t.Fatal(err)
	}
	defer z8.Free()
	if sc, err := z8.Scale(); err != nil || sc != 1 {
		t.Fatalf("scale of a zero tensor: %v (%v), want 1", sc, err)
	}
	w8, err := QuantizeFP8(c.w)
	if err != nil {
		t.Fatal(err)
	}
	defer w8.Free()
	var a, b *Tensor
	NoGrad(func() {
		a = s.LinearFP8(c.x, z8, c.b)
		b = s.LinearFP8(zx, w8, c.b)
	})
	ok(t, s)
	for name, y := range map[string]*Tensor{"zero weight": a, "zero input": b} {
		v := f64s(t, s, y)
		for i, got := range v {
			if want := c.bs[i%c.m]; got != want {
				t.Fatalf("%s: out[%d] = %v, want the bias %v", name, i, got, want)
			}
		}
	}
}

// Misuse comes back as an error naming the problem, never an abort.
func TestFP8LinearErrors(t *testing.T) {
	s := scope(t)
	c := newLinearGeluCase(t, s, CPU)
	w8, err := QuantizeFP8(c.w)
	if err != nil {
		t.Fatal(err)
	}
	defer w8.Free()
	x := s.Zeros([]int64{2, 3}, Float32, CPU)
	ok(t, s)
	s2 := NewScope()
	defer s2.Close()
	s2.LinearFP8(x, w8, nil)
	if err := s2.Err(); err == nil || !strings.Contains(err.Error(), "fp8 linear: input has 3 features, weight expects 64") {
		t.Fatalf("wrong feature count: %v", err)
	}
	s3 := NewScope()
	defer s3.Close()
	s3.LinearFP8(x, nil, nil)
	if err := s3.Err(); err == nil || !strings.Contains(err.Error(), "nil weight") {
		t.Fatalf("nil weight: %v", err)
	}
	if _, err := QuantizeFP8(s.Zeros([]int64{2}, Int64, CPU)); err == nil || !strings.Contains(err.Error(), "want a floating-point tensor") {
		t.Fatalf("int64 tensor: %v", err)
	}
}
