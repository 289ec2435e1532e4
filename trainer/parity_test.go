package trainer

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/satrain/satrain/torch"
)

// pythonTorch returns Debian's python3 with torch, or skips (fails under CI).
func pythonTorch(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SATRAIN_PYTHON"), "/usr/bin/python3", "python3"} {
		if p != "" && exec.Command(p, "-c", "import torch").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI: no python3 with torch (make deps installs python3-torch)")
	}
	t.Skip("no python3 with torch")
	return ""
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

// relErr is ‖a−b‖ / ‖b‖.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num) / math.Max(math.Sqrt(den), 1e-30)
}

// TestParityWithPyTorch gives satrain and python/satrain_model.py (PyTorch's
// nn.Module of the same architecture) the same weights and batch: float32
// forward logits must agree to 1e-5 relative error with dropout off, and the
// weights after one AdamW step (clipping, label smoothing, sample weights) to 1e-4.
func TestParityWithPyTorch(t *testing.T) {
	py := pythonTorch(t)
	defer torch.LockThread()()
	if err := torch.SetNumThreads(1); err != nil {
		t.Fatal(err)
	}
	cfg := ModelConfig{NumFeatures: 5, HiddenDim: 32, NumLayers: 2, NumHeads: 4, NumHorizons: 4, NumBins: 6, Dropout: 0, SeqLen: 12}
	m, err := NewModel(cfg, torch.CPU, 11)
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
	step := StepConfig{LR: 3e-3, WeightDecay: 0.05, MaxGradNorm: 0.5, LabelSmoothing: 0.1}
	eng, err := NewEngine(m, step, centers, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "model.pt")
	if err := SaveCheckpoint(ckpt, eng, Meta{Kind: KindStandard, BestValLoss: math.Inf(1)}, false); err != nil {
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
	cmd := exec.Command(py, "python/parity.py", "--checkpoint", ckpt, "--inputs", inputs, "--out", out)
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python/parity.py: %v\n%s", err, msg)
	}

	// Forward, float32, dropout off.
	res, err := eng.Infer(xs, labels, b, cfg.SeqLen, true)
	if err != nil {
		t.Fatal(err)
	}
	pyLogits := readF32(t, filepath.Join(out, "logits.f32"))
	if e := relErr(res.Logits, pyLogits); e > 1e-5 || math.IsNaN(e) {
		t.Fatalf("logits relative error %.3g > 1e-5", e)
	} else {
		t.Logf("forward logits relative error %.3g", e)
	}
	if e := relErr(res.Expected, readF32(t, filepath.Join(out, "expected.f32"))); e > 1e-6 {
		t.Fatalf("expected-return relative error %.3g", e)
	}
	// The full (all-positions) final layer gives the same logits as the
	// last-query shortcut.
	m.LastQueryOnly = false
	full, err := eng.Infer(xs, nil, b, cfg.SeqLen, true)
	m.LastQueryOnly = true
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(full.Logits, pyLogits); e > 1e-5 {
		t.Fatalf("full final layer: logits relative error %.3g", e)
	}

	// One training step.
	r, err := eng.TrainStep(xs, labels, normalizeWeights(weights), b, cfg.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	pyLoss := readF32(t, filepath.Join(out, "loss.f32"))[0]
	if math.Abs(r.Loss-float64(pyLoss)) > 1e-5*math.Abs(float64(pyLoss)) {
		t.Fatalf("loss: satrain %.8f, PyTorch %.8f", r.Loss, pyLoss)
	}
	pyNorm := readF32(t, filepath.Join(out, "grad_norm.f32"))[0]
	if math.Abs(r.GradNorm-float64(pyNorm)) > 1e-4*math.Abs(float64(pyNorm)) {
		t.Fatalf("grad norm: satrain %.8f, PyTorch %.8f", r.GradNorm, pyNorm)
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
	var goParams, before []float32
	off := 0
	worst := 0.0
	for i, p := range m.Parameters() {
		if man.Params[i][0].(string) != m.ParamNames()[i] {
			t.Fatalf("parameter %d: python %v, satrain %s", i, man.Params[i][0], m.ParamNames()[i])
		}
		v, err := p.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		goParams = append(goParams, v...)
		e := relErr(v, pyParams[off:off+len(v)])
		worst = math.Max(worst, e)
		if e > 1e-4 {
			t.Fatalf("%s after one AdamW step: relative error %.3g > 1e-4", m.ParamNames()[i], e)
		}
		off += len(v)
	}
	_ = before
	if off != len(pyParams) {
		t.Fatalf("parameter count: satrain %d, PyTorch %d", off, len(pyParams))
	}
	t.Logf("after one AdamW step: worst per-tensor relative error %.3g, all params %.3g", worst, relErr(goParams, pyParams))
}
