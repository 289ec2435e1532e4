package trainer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/internal/testenv"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"

	"github.com/satrain/satrain/torch"
)

// pythonTorch returns the project's Python with torch, or skips (fails under CI).
func pythonTorch(t *testing.T) string {
	t.Helper()
	return testenv.Python(t, "torch")
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// norm2 is ‖a‖₂ in float64.
func norm2(a []float32) float64 {
	var s float64
	for _, v := range a {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

// TestParityWithPyTorch gives satrain and python/satrain_model.py (PyTorch's
// nn.Module of the same architecture) the same weights and batch and compares
// what the mathematics determines, each with a float32 rounding bound:
//   - float32 forward logits (dropout off), relative to their norm;
//   - the loss, the gradient norm and every parameter's gradient (after
//     clipping: the one AdamW uses), relative to that tensor's gradient norm;
//   - the key third of each qkv bias, whose exact gradient is zero (softmax is
//     unchanged when one value is added to every score of a query), is near
//     zero on both sides instead: relative errors of float noise mean nothing;
//   - satrain's AdamW update, in units of lr, against the AdamW formula on
//     satrain's own gradient and moments;
//   - the two updates, in units of lr, wherever the gradient's sign is
//     determined; where it is not, both gradients are within noise of zero.
//
// Weights after one Adam step are not compared directly: the first step moves
// each weight by about ±lr whatever the gradient's size, so a gradient that is
// float noise on both sides gives opposite ±lr steps on different CPUs.
//
// It runs with 1 and 2 intra-op threads on both sides (reduction order, and
// so the float noise, depends on the thread count).
func TestParityWithPyTorch(t *testing.T) {
	py := pythonTorch(t)
	defer torch.LockThread()()
	for _, threads := range []int{1, 2} {
		parityWithPyTorch(t, py, threads)
	}
}

func parityWithPyTorch(t *testing.T, py string, threads int) {
	t.Logf("threads %d", threads)
	if err := torch.SetNumThreads(threads); err != nil {
		t.Fatal(err)
	}
	defer torch.SetNumThreads(1)
	cfg := model.Config{NumFeatures: 5, HiddenDim: 32, NumLayers: 2, NumHeads: 4, NumHorizons: 4, NumBins: 6, Dropout: 0, SeqLen: 12}
	m, err := model.New(cfg, torch.CPU, 11)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	centers := make([][]float32, cfg.NumHorizons)
	for h := range centers {
		for b := 0; b < cfg.NumBins; b++ {
			centers[h] = append(centers[h], 0.9+0.04*float32(b)+0.01*float32(h))
		}
	}
	step := model.StepConfig{LR: 3e-3, WeightDecay: 0.05, MaxGradNorm: 0.5, LabelSmoothing: 0.1}
	eng, err := model.NewEngine(m, step, centers, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.pt")
	if err := checkpoint.Save(ckpt, eng, checkpoint.Meta{Kind: KindStandard, BestValLoss: math.Inf(1)}, false); err != nil {
		t.Fatal(err)
	}

	const b = 6
	g, _ := torch.NewGenerator(5)
	defer g.Free()
	s := torch.NewScope()
	defer s.Close()
	x := s.Randn([]int64{b, int64(cfg.SeqLen), int64(cfg.NumFeatures)}, torch.Float32, torch.CPU, g)
	xs := s.Float32s(x)
	labels := make([]int64, b*cfg.NumHorizons)
	for i := range labels {
		labels[i] = int64((i*7 + 3) % cfg.NumBins)
	}
	weights := []float32{1, 0.5, 2, 1, 0.25, 1.25}
	in, _ := torch.NewDict()
	defer in.Free()
	y := s.FromInt64(labels, b, int64(cfg.NumHorizons))
	w := s.FromFloat32(weights, b)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{in.SetTensor("x", x), in.SetTensor("y", y), in.SetTensor("w", w),
		in.SetFloat("lr", step.LR), in.SetFloat("weight_decay", step.WeightDecay),
		in.SetFloat("max_norm", step.MaxGradNorm), in.SetFloat("label_smoothing", step.LabelSmoothing)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	inputs := filepath.Join(dir, "inputs.pt")
	if err := in.Save(inputs); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "py")
	cmd := exec.Command(py, "python/parity.py", "--checkpoint", ckpt, "--inputs", inputs, "--out", out, "--threads", fmt.Sprint(threads))
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python/parity.py: %v\n%s", err, msg)
	}

	// Forward, float32, dropout off.
	res, err := eng.Infer(xs, labels, b, cfg.SeqLen, true)
	if err != nil {
		t.Fatal(err)
	}
	tolFwd := float64(cfg.ForwardRoundingTerms()) * modeltest.UnitRoundoff
	pyLogits := readF32(t, filepath.Join(out, "logits.f32"))
	if e := modeltest.RelErr(res.Logits, pyLogits); e > tolFwd || math.IsNaN(e) {
		t.Fatalf("logits relative error %.3g > %.3g", e, tolFwd)
	} else {
		t.Logf("forward logits relative error %.3g (bound %.3g)", e, tolFwd)
	}
	// Expected returns: bounded by how far the logits actually moved.
	maxDz := 0.0
	for i := range pyLogits {
		maxDz = math.Max(maxDz, math.Abs(float64(res.Logits[i])-float64(pyLogits[i])))
	}
	pyER := readF32(t, filepath.Join(out, "expected.f32"))
	for i := range pyER {
		if d, bound := math.Abs(float64(res.Expected[i])-float64(pyER[i])), modeltest.ScoreBound(maxDz, centers); d > bound {
			t.Fatalf("expected return %d: satrain %.9g, PyTorch %.9g: |diff| %.3g > %.3g", i, res.Expected[i], pyER[i], d, bound)
		}
	}
	// The full (all-positions) final layer gives the same logits as the
	// last-query shortcut.
	m.LastQueryOnly = false
	full, err := eng.Infer(xs, nil, b, cfg.SeqLen, true)
	m.LastQueryOnly = true
	if err != nil {
		t.Fatal(err)
	}
	if e := modeltest.RelErr(full.Logits, pyLogits); e > tolFwd {
		t.Fatalf("full final layer: logits relative error %.3g > %.3g", e, tolFwd)
	}

	// One training step.
	before := make([][]float32, len(m.Parameters()))
	for i, p := range m.Parameters() {
		if before[i], err = p.Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := eng.TrainStep(xs, labels, normalizeWeights(weights), b, cfg.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	pyLoss := float64(readF32(t, filepath.Join(out, "loss.f32"))[0])
	if d, bound := math.Abs(r.Loss-pyLoss), modeltest.LossBound(maxDz, cfg.NumBins, pyLoss)+float64(b)*modeltest.UnitRoundoff*pyLoss; d > bound {
		t.Fatalf("loss: satrain %.8f, PyTorch %.8f: |diff| %.3g > %.3g", r.Loss, pyLoss, d, bound)
	}
	// Backward runs the forward chain's reductions again, transposed, plus
	// the sums over batch × positions that weight gradients take.
	tolGrad := float64(2*cfg.ForwardRoundingTerms()+b*cfg.SeqLen) * modeltest.UnitRoundoff
	pyNorm := float64(readF32(t, filepath.Join(out, "grad_norm.f32"))[0])
	if math.Abs(r.GradNorm-pyNorm) > tolGrad*pyNorm {
		t.Fatalf("grad norm: satrain %.8f, PyTorch %.8f (relative bound %.3g)", r.GradNorm, pyNorm, tolGrad)
	}
	if r.GradNorm <= step.MaxGradNorm {
		t.Fatalf("grad norm %.4f does not exceed max norm %.1f: clipping is not exercised", r.GradNorm, step.MaxGradNorm)
	}
	var man struct {
		Params [][2]any `json:"params"`
	}
	raw, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	pyParams := readF32(t, filepath.Join(out, "params.f32"))
	pyGrads := readF32(t, filepath.Join(out, "clipped_grads.f32"))
	const beta1, beta2, adamEps = 0.9, 0.999, 1e-8
	lr, wd := step.LR, step.WeightDecay
	off, worstGrad, undetermined, zeroChecked := 0, 0.0, 0, 0
	for i, p := range m.Parameters() {
		name := m.ParamNames()[i]
		if man.Params[i][0].(string) != name {
			t.Fatalf("parameter %d: python %v, satrain %s", i, man.Params[i][0], name)
		}
		after, err := p.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		n := len(after)
		if off+n > len(pyParams) {
			t.Fatalf("parameter count: PyTorch has fewer than satrain (%s)", name)
		}
		// satrain's gradient and second moment, read back from its AdamW
		// state: after one step m = (1−β1)·g and v = (1−β2)·g².
		st, mt, vt, err := eng.Opt.State(i)
		if err != nil || mt == nil || vt == nil {
			t.Fatalf("%s: AdamW state: %v", name, err)
		}
		mv, err1 := mt.Float32s()
		vv, err2 := vt.Float32s()
		mt.Free()
		vt.Free()
		if err1 != nil || err2 != nil || st != 1 {
			t.Fatalf("%s: AdamW state: step %d, %v, %v", name, st, err1, err2)
		}
		goGrad := make([]float32, n)
		for j := range mv {
			goGrad[j] = float32(float64(mv[j]) / (1 - beta1))
		}
		pyGrad := pyGrads[off : off+n]

		// Gradients, per tensor, relative to the tensor's gradient norm. The
		// key third of a qkv bias is exactly zero in exact arithmetic: both
		// sides must be noise there, measured against the whole bias's gradient.
		type part struct {
			what   string
			lo, hi int
			zero   bool
		}
		parts := []part{{name, 0, n, false}}
		if strings.HasSuffix(name, ".attn.qkv.bias") {
			d := cfg.HiddenDim
			parts = []part{{name + "[query]", 0, d, false}, {name + "[key]", d, 2 * d, true}, {name + "[value]", 2 * d, 3 * d, false}}
		}
		scale := norm2(pyGrad)
		for _, pt := range parts {
			g, pg := goGrad[pt.lo:pt.hi], pyGrad[pt.lo:pt.hi]
			if pt.zero {
				zeroChecked++
				t.Logf("%s: ‖g‖ satrain %.3g, PyTorch %.3g; ‖bias grad‖ %.3g", pt.what, norm2(g), norm2(pg), scale)
				if ng, np := norm2(g), norm2(pg); ng > tolGrad*scale || np > tolGrad*scale {
					t.Fatalf("%s: gradient is zero in exact arithmetic, but ‖g‖ satrain %.3g, PyTorch %.3g > %.3g·‖bias grad‖ %.3g", pt.what, ng, np, tolGrad, scale)
				}
				continue
			}
			e := modeltest.RelErr(g, pg)
			worstGrad = math.Max(worstGrad, e)
			if e > tolGrad || math.IsNaN(e) {
				t.Fatalf("%s gradient: relative error %.3g > %.3g", pt.what, e, tolGrad)
			}
		}
		// Absolute noise of one gradient element: the tensor's error bound.
		noise := tolGrad * scale

		for j := 0; j < n; j++ {
			th := float64(before[i][j])
			// satrain's step against AdamW (decoupled weight decay, bias
			// corrections for step 1), in units of lr: the float32 update
			// rounds θ·(1−lr·wd) and the sum (≈ 2u·|θ|/lr) and the ratio
			// m̂/(√v̂+ε) (a few u).
			want := -wd*th - (float64(mv[j])/(1-beta1))/(math.Sqrt(float64(vv[j]))/math.Sqrt(1-beta2)+adamEps)
			got := (float64(after[j]) - th) / lr
			round := modeltest.UnitRoundoff * (4*math.Abs(th)/lr + 8)
			if math.Abs(got-want) > round {
				t.Fatalf("%s[%d]: satrain AdamW step %.9g·lr, formula %.9g·lr (bound %.3g)", name, j, got, want, round)
			}
			// Against PyTorch's step: g/(|g|+ε) has slope ε/(|g|+ε)² for a
			// fixed sign, so where both gradients share a sign the updates
			// differ by at most that times |Δg|, plus both roundings. Where
			// the signs differ, both gradients must be noise.
			pyStep := (float64(pyParams[off+j]) - th) / lr
			g1, g2 := float64(goGrad[j]), float64(pyGrad[j])
			if (g1 > 0) != (g2 > 0) && g1 != g2 {
				if math.Abs(g1) > noise || math.Abs(g2) > noise {
					t.Fatalf("%s[%d]: gradient sign differs beyond noise: satrain %.3g, PyTorch %.3g (noise %.3g)", name, j, g1, g2, noise)
				}
				undetermined++
				continue
			}
			small := math.Min(math.Abs(g1), math.Abs(g2))
			bound := adamEps*math.Abs(g1-g2)/((small+adamEps)*(small+adamEps)) + 2*round
			if math.Abs(got-pyStep) > bound {
				t.Fatalf("%s[%d]: update satrain %.9g·lr, PyTorch %.9g·lr (bound %.3g; gradients %.6g, %.6g)", name, j, got, pyStep, bound, g1, g2)
			}
		}
		off += n
	}
	if off != len(pyParams) || off != len(pyGrads) {
		t.Fatalf("parameter count: satrain %d, PyTorch %d (gradients %d)", off, len(pyParams), len(pyGrads))
	}
	if zeroChecked != cfg.NumLayers {
		t.Fatalf("checked %d key-bias slices, want one per layer (%d)", zeroChecked, cfg.NumLayers)
	}
	t.Logf("gradients: worst per-tensor relative error %.3g (bound %.3g); %d update elements with an undetermined sign", worstGrad, tolGrad, undetermined)
}
