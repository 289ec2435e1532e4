package torch

import (
	"fmt"
	"math"
	"testing"
)

// attentionRef is softmax(q kᵀ/√hd) v in float64 for q, k, v taken from a
// fused projection qkv [b, s, 3, heads, hd] (the model's layout), with the
// queries restricted to the last lq positions. Result: [b, heads, lq, hd].
func attentionRef(qkv []float32, b, s, nh, hd, lq int) []float64 {
	at := func(bi, si, part, h, e int) float64 {
		return float64(qkv[(((bi*s+si)*3+part)*nh+h)*hd+e])
	}
	out := make([]float64, b*nh*lq*hd)
	scale := 1 / math.Sqrt(float64(hd))
	sc := make([]float64, s)
	for bi := 0; bi < b; bi++ {
		for h := 0; h < nh; h++ {
			for i := 0; i < lq; i++ {
				qi := s - lq + i
				mx := math.Inf(-1)
				for j := 0; j < s; j++ {
					var dot float64
					for e := 0; e < hd; e++ {
						dot += at(bi, qi, 0, h, e) * at(bi, j, 1, h, e)
					}
					sc[j] = dot * scale
					mx = math.Max(mx, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					z += sc[j]
				}
				for e := 0; e < hd; e++ {
					var o float64
					for j := 0; j < s; j++ {
						o += sc[j] / z * at(bi, j, 2, h, e)
					}
					out[((bi*nh+h)*lq+i)*hd+e] = o
				}
			}
		}
	}
	return out
}

// TestAttentionStridedSplit checks both attention paths on q, k, v that are
// strided views of one qkv projection, as the model passes them: the
// gradient-free path (per head, per batch chunk, scores in a reused buffer,
// output written in [b, s, heads, hd] order) and the differentiable one. The
// shapes cover several batch chunks with a partial last one (b 40 at s 128:
// chunks of 16), a single query (the last-query shortcut) and odd sizes.
//
// Tolerance: float32 rounding of a length-hd dot product, of the softmax over
// s terms and of the s-term weighted sum, bounded by
// (2·hd·max|q||k|/√hd + s + 8)·eps·max|v|, eps = 2⁻²³.
func TestAttentionStridedSplit(t *testing.T) {
	cases := []struct{ b, s, nh, hd, lq int }{
		{40, 128, 4, 8, 128}, // three chunks, the last partial
		{40, 128, 4, 8, 1},   // last query only
		{5, 7, 2, 3, 7},      // odd sizes, one chunk
		// Shapes for the CPU kernels' tiles (cpu_kernels.cpp: 4 rows x 16 or 8
		// columns, then single rows and columns): the tiny preset's heads (hd 8, s 32),
		// the default preset's head size (64), sizes past a tile (hd 17, s 19), a single key.
		{6, 32, 4, 8, 32},
		{2, 40, 2, 64, 40},
		{3, 19, 2, 17, 19},
		{3, 19, 2, 17, 1},
		{4, 1, 2, 8, 1},
	}
	for _, c := range cases {
		s := scope(t)
		g, err := NewGenerator(11)
		if err != nil {
			t.Fatal(err)
		}
		qkv := s.Randn([]int64{int64(c.b), int64(c.s), int64(3 * c.nh * c.hd)}, Float32, CPU, g)
		g.Free()
		flat := vals(t, s, qkv)
		want := attentionRef(flat, c.b, c.s, c.nh, c.hd, c.lq)
		var maxAbs float64
		for _, v := range flat {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		eps := math.Pow(2, -23)
		tol := (2*float64(c.hd)*maxAbs*maxAbs/math.Sqrt(float64(c.hd)) + float64(c.s) + 8) * eps * maxAbs

		split := func(x *Tensor) (q, k, v *Tensor) {
			parts := s.Unbind(s.Permute(s.View(x, int64(c.b), int64(c.s), 3, int64(c.nh), int64(c.hd)), 2, 0, 3, 1, 4), 0, 3)
			q, k, v = parts[0], parts[1], parts[2]
			if c.lq < c.s {
				q = s.Narrow(q, 2, int64(c.s-c.lq), int64(c.lq))
			}
			return q, k, v
		}
		check := func(name string, o *Tensor) {
			t.Helper()
			if sh := o.Shape(); len(sh) != 4 || sh[0] != int64(c.b) || sh[1] != int64(c.nh) || sh[2] != int64(c.lq) || sh[3] != int64(c.hd) {
				t.Fatalf("%s %+v: shape %v", name, c, sh)
			}
			got := vals(t, s, o)
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol) {
					t.Fatalf("%s %+v: element %d = %v, want %v (|diff| %.3g > tol %.3g)", name, c, i, got[i], want[i], d, tol)
				}
			}
			// The model's next step: [b, lq, heads·hd] rows.
			r := vals(t, s, s.Reshape(s.Transpose(o, 1, 2), int64(c.b), int64(c.lq), int64(c.nh*c.hd)))
			for bi := 0; bi < c.b; bi++ {
				for i := 0; i < c.lq; i++ {
					for h := 0; h < c.nh; h++ {
						for e := 0; e < c.hd; e++ {
							w := want[((bi*c.nh+h)*c.lq+i)*c.hd+e]
							gv := r[(bi*c.lq+i)*c.nh*c.hd+h*c.hd+e]
							if d := math.Abs(float64(gv) - w); !(d <= tol) {
								t.Fatalf("%s %+v: reshaped [%d,%d,%d] = %v, want %v", name, c, bi, i, h*c.hd+e, gv, w)
							}
						}
					}
				}
			}
		}

		for _, on := range []bool{true, false} {
			prev := SetCPUKernels(on)
			NoGrad(func() {
				q, k, v := split(qkv)
				check(fmt.Sprintf("no-grad path (CPU kernels %v)", on), s.Attention(q, k, v, 0, false, AttentionMath))
			})
			SetCPUKernels(prev)
		}

		leaf := s.Detach(qkv)
		if err := leaf.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
		q, k, v := split(leaf)
		o := s.Attention(q, k, v, 0, false, AttentionMath)
		check("autograd path", o)
		s.Backward(s.Sum(s.Mul(o, o)))
		ok(t, s)
		if s.Grad(leaf) == nil {
			t.Fatalf("%+v: no gradient reached qkv", c)
		}
	}
}
