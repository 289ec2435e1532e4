package torch

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The CPU kernels (torch/csrc/cpu_kernels.cpp: oneDNN's sgemm for
// linear layers, the shim's own layer normalisation) against float64
// references, with the kernels on and off (off is libtorch's at::linear and
// at::layer_norm). The bounds are derived from float32 rounding (Higham,
// Accuracy and Stability of Numerical Algorithms, §3.1; u = 2⁻²⁴ and
// γ_n = nu/(1−nu)), so they hold for any summation order a kernel picks and on
// any CPU; a kernel that reads a wrong row, stride or tail is off by O(1).

// u32 and gamma are fused_test.go's.

// linearCase is x [rows..., k] (made as [outer, seq, k] and optionally cut to
// its last position, the model's last-query slice), w [n, k], b [n] or none.
type linearCase struct {
	outer, seq, k, n int
	last, bias       bool
}

func TestCPUScoringLinear(t *testing.T) {
	cases := []linearCase{
		{256, 32, 32, 96, false, true}, // the tiny preset's qkv projection
		{256, 32, 128, 32, false, true},
		{3, 5, 7, 11, false, true}, // odd sizes
		{3, 5, 7, 11, false, false},
		{40, 9, 32, 13, true, true}, // last position: rows 9·32 floats apart
		{1, 1, 5, 3, false, true},   // one row
	}
	for _, c := range cases {
		withKernels(t, fmt.Sprintf("%+v", c), func(t *testing.T) {
			s := scope(t)
			x, w, b := linearOperands(t, s, c, 5)
			rows := c.outer * c.seq
			if c.last {
				x = s.Narrow(x, 1, int64(c.seq-1), 1)
				rows = c.outer
			}
			xs, ws := vals(t, s, x), vals(t, s, w)
			var bs []float32
			if b != nil {
				bs = vals(t, s, b)
			}
			var y *Tensor
			NoGrad(func() { y = s.Linear(x, w, b) })
			got := vals(t, s, y)
			if len(got) != rows*c.n {
				t.Fatalf("got %d values, want %d", len(got), rows*c.n)
			}
			for r := 0; r < rows; r++ {
				for j := 0; j < c.n; j++ {
					var want, abs float64
					for e := 0; e < c.k; e++ {
						p := float64(xs[r*c.k+e]) * float64(ws[j*c.k+e])
						want += p
						abs += math.Abs(p)
					}
					if bs != nil {
						want += float64(bs[j])
						abs += math.Abs(float64(bs[j]))
					}
					tol := gamma(c.k+1, u32)*abs + 1e-12
					if d := math.Abs(float64(got[r*c.n+j]) - want); !(d <= tol) {
						t.Fatalf("y[%d][%d] = %v, want %v (|diff| %.3g > bound %.3g)", r, j, got[r*c.n+j], want, d, tol)
					}
				}
			}
		})
	}
}

// TestCPUScoringLayerNorm: y = (x − mean)/√(var + eps)·g + b over the last
// dimension. First-order bound per element, for a float32 computation of the
// mean by any summation order or by Welford's update (libtorch) and of the
// biased variance from the centred values:
//
//	|Δmean|   ≤ 3(d+1)u·max|x|
//	rel(var)  ≤ (2|Δmean|·Σ|c| + (γ_{d+1} + 2u)·Σc²)/Σc²,  c = x − mean
//	rel(rstd) ≤ rel(var)/2 + 3u
//	|Δx̂_i|   ≤ |Δmean|·rstd + |x̂_i|·rel(rstd) + 3u(|x_i| + |mean|)·rstd
//	|Δy_i|    ≤ |g_i|·|Δx̂_i| + 2u(|x̂_i·g_i| + |b_i|)
func TestCPUScoringLayerNorm(t *testing.T) {
	cases := []struct {
		rows, d int
		last    bool
	}{{256 * 32, 32, false}, {7, 128, false}, {5, 13, false}, {40, 32, true}, {3, 1, false}}
	const eps = 1e-5
	for _, c := range cases {
		withKernels(t, fmt.Sprintf("%+v", c), func(t *testing.T) {
			s := scope(t)
			g, err := NewGenerator(9)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free()
			seq := 1
			if c.last {
				seq = 6
			}
			x := s.AddScalar(s.MulScalar(s.Randn([]int64{int64(c.rows), int64(seq), int64(c.d)}, Float32, CPU, g), 3), 2)
			if c.last {
				x = s.Narrow(x, 1, int64(seq-1), 1)
			}
			w := s.Randn([]int64{int64(c.d)}, Float32, CPU, g)
			b := s.Randn([]int64{int64(c.d)}, Float32, CPU, g)
			xs, ws, bs := vals(t, s, x), vals(t, s, w), vals(t, s, b)
			var y *Tensor
			NoGrad(func() { y = s.LayerNorm(x, int64(c.d), w, b, eps) })
			got := vals(t, s, y)
			if len(got) != c.rows*c.d {
				t.Fatalf("got %d values, want %d", len(got), c.rows*c.d)
			}
			for r := 0; r < c.rows; r++ {
				row := xs[r*c.d : (r+1)*c.d]
				var sum, mx float64
				for _, v := range row {
					sum += float64(v)
					mx = math.Max(mx, math.Abs(float64(v)))
				}
				mean := sum / float64(c.d)
				var sc2, sc1 float64
				for _, v := range row {
					cv := float64(v) - mean
					sc2 += cv * cv
					sc1 += math.Abs(cv)
				}
				rstd := 1 / math.Sqrt(sc2/float64(c.d)+eps)
				dMean := 3 * float64(c.d+1) * u32 * mx
				relVar := 0.0
				if sc2 > 0 {
					relVar = (2*dMean*sc1 + (gamma(c.d+1, u32)+2*u32)*sc2) / sc2
				}
				relRstd := relVar/2 + 3*u32
				for i, v := range row {
					xh := (float64(v) - mean) * rstd
					want := xh*float64(ws[i]) + float64(bs[i])
					dxh := dMean*rstd + math.Abs(xh)*relRstd + 3*u32*(math.Abs(float64(v))+math.Abs(mean))*rstd
					tol := math.Abs(float64(ws[i]))*dxh + 2*u32*(math.Abs(xh*float64(ws[i]))+math.Abs(float64(bs[i]))) + 1e-12
					if d := math.Abs(float64(got[r*c.d+i]) - want); !(d <= tol) {
						t.Fatalf("y[%d][%d] = %v, want %v (|diff| %.3g > bound %.3g)", r, i, got[r*c.d+i], want, d, tol)
					}
				}
			}
		})
	}
}

// TestCPUKernelsReported: the kernels say what runs, and switching
// them off reports libtorch's ops.
func TestCPUKernelsReported(t *testing.T) {
	prev := SetCPUKernels(true)
	defer SetCPUKernels(prev)
	gemm, att := CPUKernels()
	if att != "avx2+fma" && att != "baseline" {
		t.Errorf("attention kernels %q, want avx2+fma or baseline", att)
	}
	if gemm == "" {
		t.Errorf("empty GEMM name")
	}
	SetCPUKernels(false)
	if gemm, att := CPUKernels(); gemm != "libtorch" || att != "libtorch" {
		t.Errorf("kernels off: got %q, %q, want libtorch for both", gemm, att)
	}
}

// TestCPULinearGradients: the training path of Linear on the CPU (oneDNN's
// sgemm in a custom autograd function when the kernels are on, libtorch's
// linear when off). With loss = Σ y ⊙ r the gradient reaching y is r exactly,
// so each gradient is one float32 sum against a float64 reference:
//
//	∂x[m][k] = Σ_n r[m][n]·w[n][k]   within γ_N·Σ|r||w|
//	∂w[n][k] = Σ_m r[m][n]·x[m][k]   within γ_M·Σ|r||x|
//	∂b[n]    = Σ_m r[m][n]           within γ_M·Σ|r|
func TestCPULinearGradients(t *testing.T) {
	for _, c := range []linearCase{
		{8, 32, 32, 96, false, true}, // qkv of a tiny-preset training batch
		{3, 5, 7, 11, false, true},
		{3, 5, 7, 11, false, false},
		{6, 9, 16, 13, true, true}, // the last position only: strided rows
	} {
		withKernels(t, fmt.Sprintf("%+v", c), func(t *testing.T) {
			s := scope(t)
			leafX, w, b := linearOperands(t, s, c, 13)
			params := []*Tensor{leafX, w}
			if b != nil {
				params = append(params, b)
			}
			for _, p := range params {
				if err := p.SetRequiresGrad(true); err != nil {
					t.Fatal(err)
				}
			}
			x, rows := leafX, c.outer*c.seq
			if c.last {
				x, rows = s.Narrow(leafX, 1, int64(c.seq-1), 1), c.outer
			}
			y := s.Linear(x, w, b)
			g, err := NewGenerator(14)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Free()
			r := s.Randn(y.Shape(), Float32, CPU, g)
			s.Backward(s.Sum(s.Mul(y, r)))
			ok(t, s)
			xs, ws, rs := vals(t, s, x), vals(t, s, w), vals(t, s, r)
			gx := vals(t, s, s.Grad(leafX))
			gw := vals(t, s, s.Grad(w))
			check := func(name string, got float32, want, abs float64, n int) {
				t.Helper()
				if d := math.Abs(float64(got) - want); !(d <= gamma(n, u32)*abs+1e-12) {
					t.Fatalf("%s = %v, want %v (|diff| %.3g > bound %.3g)", name, got, want, d, gamma(n, u32)*abs)
				}
			}
			for m := 0; m < rows; m++ {
				// row m of x is row (m·seq + seq−1) of the leaf when cut to the last position
				leafRow := m
				if c.last {
					leafRow = m*c.seq + c.seq - 1
				}
				for k := 0; k < c.k; k++ {
					var want, abs float64
					for n := 0; n < c.n; n++ {
						p := float64(rs[m*c.n+n]) * float64(ws[n*c.k+k])
						want, abs = want+p, abs+math.Abs(p)
					}
					check(fmt.Sprintf("∂x[%d][%d]", m, k), gx[leafRow*c.k+k], want, abs, c.n)
				}
			}
			if c.last { // rows of the leaf that were cut away get no gradient
				for i := 0; i < c.outer*c.seq; i++ {
					if i%c.seq != c.seq-1 {
						for k := 0; k < c.k; k++ {
							if gx[i*c.k+k] != 0 {
								t.Fatalf("∂x of an unused row %d = %v, want 0", i, gx[i*c.k+k])
							}
						}
					}
				}
			}
			for n := 0; n < c.n; n++ {
				for k := 0; k < c.k; k++ {
					var want, abs float64
					for m := 0; m < rows; m++ {
						p := float64(rs[m*c.n+n]) * float64(xs[m*c.k+k])
						want, abs = want+p, abs+math.Abs(p)
					}
					check(fmt.Sprintf("∂w[%d][%d]", n, k), gw[n*c.k+k], want, abs, rows)
				}
			}
			if b != nil {
				gb := vals(t, s, s.Grad(b))
				for n := 0; n < c.n; n++ {
					var want, abs float64
					for m := 0; m < rows; m++ {
						want, abs = want+float64(rs[m*c.n+n]), abs+math.Abs(float64(rs[m*c.n+n]))
					}
					check(fmt.Sprintf("∂b[%d]", n), gb[n], want, abs, rows)
				}
			}
		})
	}
}

// withKernels runs f as two subtests, name/kernels=true and name/kernels=false,
// with the CPU kernels switched accordingly.
func withKernels(t *testing.T, name string, f func(t *testing.T)) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("%s/kernels=%v", name, on), func(t *testing.T) {
			prev := SetCPUKernels(on)
			defer SetCPUKernels(prev)
			f(t)
		})
	}
}

// linearOperands draws x [outer, seq, k], w [n, k] and, when c.bias, b [n]
// (nil otherwise) from a generator seeded with seed.
func linearOperands(t *testing.T, s *Scope, c linearCase, seed uint64) (x, w, b *Tensor) {
	t.Helper()
	g, err := NewGenerator(seed)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	x = s.Randn([]int64{int64(c.outer), int64(c.seq), int64(c.k)}, Float32, CPU, g)
	w = s.Randn([]int64{int64(c.n), int64(c.k)}, Float32, CPU, g)
	if c.bias {
		b = s.Randn([]int64{int64(c.n)}, Float32, CPU, g)
	}
	ok(t, s)
	return x, w, b
}

// TestCPUKernelsBaselineVariant reruns this file's kernel tests and the
// attention test in a child process with SATRAIN_CPU_ISA=baseline, the
// variant a CPU without AVX2 and FMA runs (the kernels pick theirs once per
// process), and checks that the child ran that variant.
func TestCPUKernelsBaselineVariant(t *testing.T) {
	if os.Getenv("SATRAIN_CPU_ISA") != "" {
		prev := SetCPUKernels(true)
		defer SetCPUKernels(prev)
		if _, att := CPUKernels(); att != "baseline" {
			t.Fatalf("SATRAIN_CPU_ISA=%s: attention kernels %q, want baseline", os.Getenv("SATRAIN_CPU_ISA"), att)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestCPUScoringLinear|TestCPUScoringLayerNorm|TestCPULinearGradients|TestAttentionStridedSplit|TestAttentionGradients|TestCPUKernelsBaselineVariant)$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "SATRAIN_CPU_ISA=baseline", "SATRAIN_CPU_GEMM=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("kernel tests with SATRAIN_CPU_ISA=baseline: %v\n%s", err, out)
	}
}
