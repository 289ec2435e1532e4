package trainer

import (
	"math/rand"
	"testing"

	"github.com/satrain/satrain/torch"
)

// CPU benchmarks of the model at the "small" preset (d=128, 4 layers, 4 heads,
// seq_len 128, 16 features, 4 horizons x 10 bins), float32, 2 threads: the
// shapes bench/model_bench.py --preset small uses for the PyTorch side
// (bench/model_cpu.sh runs both and prints the ratio).
func benchEngine(b *testing.B) (*Engine, ModelConfig) {
	b.Helper()
	if err := torch.SetNumThreads(2); err != nil {
		b.Fatal(err)
	}
	p := Presets["small"]
	cfg := ModelConfig{NumFeatures: 16, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: 4, NumBins: 10, Dropout: 0.15, SeqLen: p.SeqLen}
	m, err := NewModel(cfg, torch.CPU, 1)
	if err != nil {
		b.Fatal(err)
	}
	centers := make([][]float32, 4)
	for h := range centers {
		for i := 0; i < 10; i++ {
			centers[h] = append(centers[h], 0.95+0.01*float32(i))
		}
	}
	e, err := NewEngine(m, StepConfig{LR: 4e-5, WeightDecay: 0.01, MaxGradNorm: 1}, centers, 64)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Free(); m.Free() })
	return e, cfg
}

func randomBatch(n int, cfg ModelConfig) ([]float32, []int64) {
	rng := rand.New(rand.NewSource(1))
	x := make([]float32, n*cfg.SeqLen*cfg.NumFeatures)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]int64, n*cfg.NumHorizons)
	for i := range y {
		y[i] = int64(rng.Intn(cfg.NumBins))
	}
	return x, y
}

// BenchmarkForwardSmall: the scoring pass (inference mode, dropout off), batch 64.
func BenchmarkForwardSmall(b *testing.B) { benchForward(b, true) }

// BenchmarkForwardSmallFull: the same with the final layer computed for every
// position (the computation the PyTorch module does).
func BenchmarkForwardSmallFull(b *testing.B) { benchForward(b, false) }

func benchForward(b *testing.B, lastQueryOnly bool) {
	defer torch.LockThread()()
	e, cfg := benchEngine(b)
	e.Model.LastQueryOnly = lastQueryOnly
	const n = 64
	x, _ := randomBatch(n, cfg)
	if _, err := e.Infer(x, nil, n, cfg.SeqLen, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Infer(x, nil, n, cfg.SeqLen, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "seq/s")
}

// BenchmarkTrainStepSmall: forward, loss, backward, clipping and AdamW, batch 32.
func BenchmarkTrainStepSmall(b *testing.B) { benchTrain(b, true) }

// BenchmarkTrainStepSmallFull: the same without the last-query shortcut.
func BenchmarkTrainStepSmallFull(b *testing.B) { benchTrain(b, false) }

func benchTrain(b *testing.B, lastQueryOnly bool) {
	defer torch.LockThread()()
	e, cfg := benchEngine(b)
	e.Model.LastQueryOnly = lastQueryOnly
	const n = 32
	x, y := randomBatch(n, cfg)
	if _, err := e.TrainStep(x, y, nil, n, cfg.SeqLen); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.TrainStep(x, y, nil, n, cfg.SeqLen); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "seq/s")
}
