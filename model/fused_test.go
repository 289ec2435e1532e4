package model_test

import (
	"math"
	"testing"

	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/torch"
)

// fusedPair returns two engines over identical weights (same seed), the
// second with the fused kernels requested.
func fusedPair(t *testing.T, cfg model.Config, step model.StepConfig) (plain, fused *model.Engine, st model.FusedStatus) {
	t.Helper()
	centers := make([][]float32, cfg.NumHorizons)
	for h := range centers {
		for b := 0; b < cfg.NumBins; b++ {
			centers[h] = append(centers[h], -0.05+0.01*float32(b))
		}
	}
	for i, on := range []bool{false, true} {
		m, err := model.New(cfg, torch.CPU, 11)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Free)
		e, err := model.NewEngine(m, step, centers, 64)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Free)
		if i == 0 {
			plain = e
			continue
		}
		fused = e
		if st, err = e.UseFusedKernels(on); err != nil {
			t.Fatal(err)
		}
	}
	return plain, fused, st
}

// The fused kernels change no result beyond float32 rounding: scoring
// (inference) logits agree and the fused bias+GELU kernel really runs there
// (once per layer and batch); a training step keeps the reference ops (the
// fused op has no derivative), so its loss, gradient norm and updated weights
// equal the plain step's exactly.
func TestFusedKernelsAgreeWithPlain(t *testing.T) {
	if !torch.Fused().LinearGelu {
		t.Skipf("libtorch %s has no at::_addmm_activation", torch.Version())
	}
	defer torch.LockThread()()
	cfg := model.Config{NumFeatures: 5, HiddenDim: 32, NumLayers: 2, NumHeads: 4, NumHorizons: 4, NumBins: 6, Dropout: 0, SeqLen: 12}
	step := model.StepConfig{LR: 3e-3, WeightDecay: 0.05, MaxGradNorm: 0.5}
	plain, fused, st := fusedPair(t, cfg, step)
	if !st.LinearGelu {
		t.Fatal("UseFusedKernels(true) did not turn the fused bias+GELU on, though the build has it")
	}
	if st.AdamW {
		t.Fatal("fused AdamW reported active on CPU parameters")
	}

	const b = 6
	g, _ := torch.NewGenerator(5)
	defer g.Free()
	s := torch.NewScope()
	defer s.Close()
	xs := s.Float32s(s.Randn([]int64{b, int64(cfg.SeqLen), int64(cfg.NumFeatures)}, torch.Float32, torch.CPU, g))
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	labels := make([]int64, b*cfg.NumHorizons)
	for i := range labels {
		labels[i] = int64((i*5 + 1) % cfg.NumBins)
	}

	want, err := plain.Infer(xs, nil, b, cfg.SeqLen, true)
	if err != nil {
		t.Fatal(err)
	}
	calls := torch.FusedLinearGeluCalls()
	got, err := fused.Infer(xs, nil, b, cfg.SeqLen, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := torch.FusedLinearGeluCalls() - calls; n != int64(cfg.NumLayers) {
		t.Fatalf("fused bias+GELU ran %d times for one batch of a %d-layer model, want %d", n, cfg.NumLayers, cfg.NumLayers)
	}
	// Each fused output differs from the plain one by at most
	// 2·1.13·γ_{d+1} of its |x|·|w| sum (torch/fused_test.go); allow the
	// later layers (LayerNorm, attention, head) to amplify that relative
	// error by up to 100 per layer.
	u := 1.0 / (1 << 24)
	d := float64(cfg.HiddenDim)
	tol := float64(cfg.NumLayers) * 100 * 2 * 1.13 * (d + 1) * u / (1 - (d+1)*u)
	if e := modeltest.RelErr(got.Logits, want.Logits); e > tol || math.IsNaN(e) {
		t.Fatalf("scoring logits, fused vs plain: relative error %.3g > %.3g", e, tol)
	}
	if e := modeltest.RelErr(got.Expected, want.Expected); e > tol || math.IsNaN(e) {
		t.Fatalf("expected returns, fused vs plain: relative error %.3g > %.3g", e, tol)
	}

	calls = torch.FusedLinearGeluCalls()
	rp, err := plain.TrainStep(xs, labels, nil, b, cfg.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := fused.TrainStep(xs, labels, nil, b, cfg.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	if n := torch.FusedLinearGeluCalls() - calls; n != 0 {
		t.Fatalf("fused bias+GELU ran %d times in a training step; it has no derivative there", n)
	}
	if rp.Loss != rf.Loss || rp.GradNorm != rf.GradNorm {
		t.Fatalf("training step: loss %v / grad norm %v with fused kernels, %v / %v without", rf.Loss, rf.GradNorm, rp.Loss, rp.GradNorm)
	}
	pp, fp := plain.Model.Parameters(), fused.Model.Parameters()
	for i := range pp {
		a, _ := pp[i].Float32s()
		c, _ := fp[i].Float32s()
		for j := range a {
			if a[j] != c[j] {
				t.Fatalf("%s[%d] after one step: %v with fused kernels, %v without", plain.Model.ParamNames()[i], j, c[j], a[j])
			}
		}
	}
}
