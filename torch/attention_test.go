package torch

import (
	"fmt"
	"math"
	"testing"
)

// probsRef writes into p (length s) the attention probabilities of query qi
// of item bi, head h, over the s keys, in float64: softmax(q·kᵀ/√hd) for q, k
// in a qkv projection [b, s, 3, heads, hd].
func probsRef(qkv []float32, s, nh, hd, bi, h, qi int, p []float64) {
	at := func(si, part, e int) float64 { return float64(qkv[(((bi*s+si)*3+part)*nh+h)*hd+e]) }
	scale := 1 / math.Sqrt(float64(hd))
	mx := math.Inf(-1)
	for j := 0; j < s; j++ {
		var dot float64
		for e := 0; e < hd; e++ {
			dot += at(qi, 0, e) * at(j, 1, e)
		}
		p[j] = dot * scale
		mx = math.Max(mx, p[j])
	}
	var z float64
	for j := range p[:s] {
		p[j] = math.Exp(p[j] - mx)
		z += p[j]
	}
	for j := range p[:s] {
		p[j] /= z
	}
}

// attentionRef is softmax(q kᵀ/√hd) v in float64 for q, k, v taken from a
// fused projection qkv [b, s, 3, heads, hd] (the model's layout), with the
// queries restricted to the last lq positions. Result: [b, heads, lq, hd].
func attentionRef(qkv []float32, b, s, nh, hd, lq int) []float64 {
	at := func(bi, si, part, h, e int) float64 {
		return float64(qkv[(((bi*s+si)*3+part)*nh+h)*hd+e])
	}
	out := make([]float64, b*nh*lq*hd)
	sc := make([]float64, s)
	for bi := 0; bi < b; bi++ {
		for h := 0; h < nh; h++ {
			for i := 0; i < lq; i++ {
				probsRef(qkv, s, nh, hd, bi, h, s-lq+i, sc)
				for e := 0; e < hd; e++ {
					var o float64
					for j := 0; j < s; j++ {
						o += sc[j] * at(bi, j, 2, h, e)
					}
					out[((bi*nh+h)*lq+i)*hd+e] = o
				}
			}
		}
	}
	return out
}

// TestAttentionStridedSplit checks both attention kernels, libtorch's
// scaled_dot_product_attention (AttentionAuto, what the model runs) and the
// written-out formula (AttentionMath), without and with a gradient, on q, k,
// v that are strided views of one qkv projection, as the model passes them.
// The shapes cover a single query (the last-query shortcut), odd sizes, head
// sizes of the presets and a single key.
//
// Tolerance: float32 rounding of a length-hd dot product, of the softmax over
// s terms and of the s-term weighted sum, bounded by
// (2·hd·max|q||k|/√hd + s + 8)·eps·max|v|, eps = 2⁻²³.
func TestAttentionStridedSplit(t *testing.T) {
	cases := []struct{ b, s, nh, hd, lq int }{
		{40, 128, 4, 8, 128}, // three chunks, the last partial
		{40, 128, 4, 8, 1},   // last query only
		{5, 7, 2, 3, 7},      // odd sizes, one chunk
		// The tiny preset's heads (hd 8, s 32), the default preset's head size (64),
		// sizes that are no multiple of a vector (hd 17, s 19), a single key.
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

		for _, impl := range []AttentionImpl{AttentionAuto, AttentionMath} {
			NoGrad(func() {
				q, k, v := split(qkv)
				check(fmt.Sprintf("no-grad path (impl %d)", impl), s.Attention(q, k, v, 0, false, impl))
			})
			leaf := s.Detach(qkv)
			if err := leaf.SetRequiresGrad(true); err != nil {
				t.Fatal(err)
			}
			q, k, v := split(leaf)
			o := s.Attention(q, k, v, 0, false, impl)
			check(fmt.Sprintf("autograd path (impl %d)", impl), o)
			s.Backward(s.Sum(s.Mul(o, o)))
			ok(t, s)
			if s.Grad(leaf) == nil {
				t.Fatalf("%+v: no gradient reached qkv", c)
			}
		}
	}
}

// attentionGradRef is the gradient of Σ o⊙r with respect to qkv [b, s, 3,
// heads, hd], in float64, where o = attention over the last lq queries (as
// attentionRef) and r [b, heads, lq, hd] is fixed. With abs set, every product
// and sum runs over absolute values (|P|, |r|, |v|, |k|, |q| and |∂S| built
// from them), which gives the magnitudes the rounding errors scale with.
//
//	∂v_j = Σ_i P_ij r_i,  ∂P_ij = r_i·v_j,  ∂S_ij = P_ij (∂P_ij - Σ_j' P_ij' ∂P_ij'),
//	∂q_i = scale Σ_j ∂S_ij k_j,  ∂k_j = scale Σ_i ∂S_ij q_i
func attentionGradRef(qkv, r []float32, b, s, nh, hd, lq int, abs bool) []float64 {
	f := func(x float64) float64 {
		if abs {
			return math.Abs(x)
		}
		return x
	}
	idx := func(bi, si, part, h, e int) int { return (((bi*s+si)*3+part)*nh+h)*hd + e }
	at := func(bi, si, part, h, e int) float64 { return f(float64(qkv[idx(bi, si, part, h, e)])) }
	grad := make([]float64, len(qkv))
	scale := 1 / math.Sqrt(float64(hd))
	p := make([]float64, s)
	dp := make([]float64, s)
	for bi := 0; bi < b; bi++ {
		for h := 0; h < nh; h++ {
			for i := 0; i < lq; i++ {
				qi := s - lq + i
				ri := func(e int) float64 { return f(float64(r[((bi*nh+h)*lq+i)*hd+e])) }
				probsRef(qkv, s, nh, hd, bi, h, qi, p)
				var rowsum float64
				for j := 0; j < s; j++ {
					var d float64
					for e := 0; e < hd; e++ {
						grad[idx(bi, j, 2, h, e)] += p[j] * ri(e)
						d += ri(e) * at(bi, j, 2, h, e)
					}
					dp[j] = d
					rowsum += p[j] * d
				}
				for j := 0; j < s; j++ {
					ds := p[j] * (dp[j] - rowsum)
					if abs {
						ds = p[j] * (dp[j] + rowsum)
					}
					for e := 0; e < hd; e++ {
						grad[idx(bi, qi, 0, h, e)] += scale * ds * at(bi, j, 1, h, e)
						grad[idx(bi, j, 1, h, e)] += scale * ds * at(bi, qi, 0, h, e)
					}
				}
			}
		}
	}
	return grad
}

// TestAttentionGradients checks the gradient of both attention kernels
// (libtorch's scaled_dot_product_attention, which the model runs, and the
// written-out formula) with respect to a qkv projection they take strided
// views of, against a float64 reference.
//
// Tolerance, per element: to first order each float32 product of length n
// errs by at most n·eps times the sum of its terms' magnitudes; the forward
// scores' error (hd·eps·max|q||k|/√hd, absolute) becomes a relative error of
// P; the softmax adds s·eps. Along the backward chain (∂P, ∂S, then ∂q, ∂k,
// ∂v) the lengths add up, so
//
//	|∂ - ∂ref| <= 2·(hd·max|q||k|/√hd + 2·s + lq + 2·hd + 8)·eps·M,
//
// with M the same gradient computed over absolute values (attentionGradRef
// with abs) and the factor 2 for the second-order terms and the subtraction in
// ∂S, eps = 2⁻²³.
func TestAttentionGradients(t *testing.T) {
	cases := []struct{ b, s, nh, hd, lq int }{
		{6, 32, 4, 8, 32},  // the tiny preset's heads
		{2, 40, 2, 64, 40}, // the default preset's head size
		{3, 19, 2, 17, 19}, // sizes that are no multiple of a vector
		{3, 19, 2, 17, 1},  // last query only
		{4, 1, 2, 8, 1},    // a single key
		{2, 130, 2, 32, 130},
	}
	for _, c := range cases {
		for _, impl := range []AttentionImpl{AttentionAuto, AttentionMath} {
			name := fmt.Sprintf("%+v impl %d", c, impl)
			s := scope(t)
			g, err := NewGenerator(13)
			if err != nil {
				t.Fatal(err)
			}
			qkv := s.Randn([]int64{int64(c.b), int64(c.s), int64(3 * c.nh * c.hd)}, Float32, CPU, g)
			r := s.Randn([]int64{int64(c.b), int64(c.nh), int64(c.lq), int64(c.hd)}, Float32, CPU, g)
			g.Free()
			flat, rf := vals(t, s, qkv), vals(t, s, r)
			want := attentionGradRef(flat, rf, c.b, c.s, c.nh, c.hd, c.lq, false)
			mag := attentionGradRef(flat, rf, c.b, c.s, c.nh, c.hd, c.lq, true)
			var maxAbs float64
			for _, v := range flat {
				maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
			}
			eps := math.Pow(2, -23)
			rel := 2 * (float64(c.hd)*maxAbs*maxAbs/math.Sqrt(float64(c.hd)) + float64(2*c.s+c.lq+2*c.hd) + 8) * eps

			leaf := s.Detach(qkv)
			if err := leaf.SetRequiresGrad(true); err != nil {
				t.Fatal(err)
			}
			parts := s.Unbind(s.Permute(s.View(leaf, int64(c.b), int64(c.s), 3, int64(c.nh), int64(c.hd)), 2, 0, 3, 1, 4), 0, 3)
			q, k, v := parts[0], parts[1], parts[2]
			if c.lq < c.s {
				q = s.Narrow(q, 2, int64(c.s-c.lq), int64(c.lq))
			}
			o := s.Attention(q, k, v, 0, false, impl)
			s.Backward(s.Sum(s.Mul(o, r)))
			ok(t, s)
			gt := s.Grad(leaf)
			if gt == nil {
				t.Fatalf("%s: no gradient reached qkv", name)
			}
			got := vals(t, s, gt)
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); !(d <= rel*mag[i]) {
					t.Fatalf("%s: ∂qkv element %d = %v, want %v (|diff| %.3g > %.3g = %.3g x magnitude %.3g)",
						name, i, got[i], want[i], d, rel*mag[i], rel, mag[i])
				}
			}
		}
	}
}
