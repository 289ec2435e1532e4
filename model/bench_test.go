package model_test

import (
	"math"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/torch"
)

// CPU benchmarks of the model at the "small" preset (d=128, 4 layers, 4 heads,
// seq_len 128, 16 features, 4 horizons x 10 bins), float32: the shapes
// bench/model_bench.py --preset small uses for the PyTorch side
// (bench/model_cpu.sh runs both, interleaved, and prints the ratio).
//
// Threads: SATRAIN_THREADS if set, else torch.DefaultThreads(), applied with
// torch.SetThreadPolicy (libtorch intra-op to n, inter-op 1), the
// same three pools model_bench.py --threads sets on the PyTorch side. The
// allocator is the shim's (SATRAIN_MALLOC=system for glibc's defaults).
// Every benchmark also reports minor page faults and CPU milliseconds per op
// (getrusage): faults do not depend on what else the machine runs, and CPU
// time at one thread depends on it far less than wall time.
func benchThreads(b *testing.B) int {
	b.Helper()
	n := torch.DefaultThreads()
	if v := os.Getenv("SATRAIN_THREADS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("SATRAIN_THREADS=%q: want a positive integer", v)
		}
	}
	if err := torch.SetThreadPolicy(n); err != nil {
		b.Fatal(err)
	}
	return n
}

// usage is the process's minor page faults and CPU time (user + system).
func usage() (faults int64, cpu float64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return ru.Minflt, tv(ru.Utime) + tv(ru.Stime)
}

// runTimed runs op b.N times after one warm-up call and reports seq/s (when
// perOp > 0), minor page faults per op and CPU time per op (all threads of
// the process; at one thread it is the work done, whatever the load).
func runTimed(b *testing.B, perOp int, op func() error) {
	b.Helper()
	if err := op(); err != nil {
		b.Fatal(err)
	}
	f0, c0 := usage()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	f1, c1 := usage()
	b.ReportMetric(float64(f1-f0)/float64(b.N), "faults/op")
	b.ReportMetric((c1-c0)*1e3/float64(b.N), "cpu-ms/op")
	if perOp > 0 {
		b.ReportMetric(float64(perOp*b.N)/b.Elapsed().Seconds(), "seq/s")
	}
}

func benchEngine(b *testing.B) (*model.Engine, model.Config) { return benchEngineFor(b, "small", 64) }

func benchEngineFor(b *testing.B, preset string, inferBatch int) (*model.Engine, model.Config) {
	b.Helper()
	benchThreads(b)
	p := model.Presets[preset]
	cfg := model.Config{NumFeatures: 16, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: 4, NumBins: 10, Dropout: 0.15, SeqLen: p.SeqLen}
	m, err := model.New(cfg, torch.CPU, 1)
	if err != nil {
		b.Fatal(err)
	}
	centers := make([][]float32, 4)
	for h := range centers {
		for i := 0; i < 10; i++ {
			centers[h] = append(centers[h], 0.95+0.01*float32(i))
		}
	}
	e, err := model.NewEngine(m, model.StepConfig{LR: 4e-5, WeightDecay: 0.01, MaxGradNorm: 1}, centers, inferBatch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Free(); m.Free() })
	return e, cfg
}

// benchInference enters inference mode on the calling (locked) thread and
// returns a scope and a generator seeded with 1 for a benchmark's inputs;
// done releases them and leaves inference mode, on the same thread.
func benchInference(b *testing.B) (keep *torch.Scope, g *torch.Generator, done func()) {
	b.Helper()
	exit, err := torch.InferenceMode()
	if err != nil {
		b.Fatal(err)
	}
	keep = torch.NewScope()
	if g, err = torch.NewGenerator(1); err != nil {
		keep.Close()
		exit()
		b.Fatal(err)
	}
	return keep, g, func() { g.Free(); keep.Close(); exit() }
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
	x, _ := modeltest.RandomBatch(n, cfg)
	runTimed(b, n, func() error {
		_, err := e.Infer(x, nil, n, cfg.SeqLen, false)
		return err
	})
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
	x, y := modeltest.RandomBatch(n, cfg)
	runTimed(b, n, func() error {
		_, err := e.TrainStep(x, y, nil, n, cfg.SeqLen)
		return err
	})
}

// opShapes are the attention and feed-forward shapes of scoring: the tiny
// preset at satrain eval's inference batch (256) and the small preset at the
// benchmark's (64).
var opShapes = []struct {
	name             string
	batch, seq, d, h int
}{
	{"tiny-b256", 256, 32, 32, 4},
	{"small-b64", 64, 128, 128, 4},
}

// BenchmarkAttention: one layer's attention in a scoring pass, on q, k, v
// split from a qkv projection as the model does, output reshaped to
// [b, s, d]. "shim" is Scope.Attention (the shim's gradient-free path);
// "composed" is the same function written with separate ops, which is what
// the shim did before (and what PyTorch's math path does): matmul, scale,
// softmax, matmul, then the transpose copy.
func BenchmarkAttention(b *testing.B) {
	for _, sh := range opShapes {
		for _, impl := range []string{"shim", "composed"} {
			b.Run(sh.name+"/"+impl, func(b *testing.B) {
				benchThreads(b)
				defer torch.LockThread()()
				keep, g, done := benchInference(b)
				defer done()
				qkv := keep.Randn([]int64{int64(sh.batch), int64(sh.seq), int64(3 * sh.d)}, torch.Float32, torch.CPU, g)
				if err := keep.Err(); err != nil {
					b.Fatal(err)
				}
				B, S, D, H := int64(sh.batch), int64(sh.seq), int64(sh.d), int64(sh.h)
				scale := 1 / math.Sqrt(float64(D/H))
				runTimed(b, sh.batch, func() error {
					s := torch.NewScope()
					defer s.Close()
					parts := s.Unbind(s.Permute(s.View(qkv, B, S, 3, H, D/H), 2, 0, 3, 1, 4), 0, 3)
					var o *torch.Tensor
					if impl == "shim" {
						o = s.Attention(parts[0], parts[1], parts[2], 0, false, torch.AttentionMath)
					} else {
						p := s.Softmax(s.MulScalar(s.Matmul(parts[0], s.Transpose(parts[1], 2, 3)), scale), 3)
						o = s.Matmul(p, parts[2])
					}
					s.Reshape(s.Transpose(o, 1, 2), B, S, D)
					return s.Err()
				})
			})
		}
	}
}

// BenchmarkGelu: the feed-forward's GELU on [b, s, 4d] in a scoring pass (a
// fresh output each call, as in the model).
func BenchmarkGelu(b *testing.B) {
	for _, sh := range opShapes {
		b.Run(sh.name, func(b *testing.B) {
			benchThreads(b)
			defer torch.LockThread()()
			keep, g, done := benchInference(b)
			defer done()
			x := keep.Randn([]int64{int64(sh.batch), int64(sh.seq), int64(4 * sh.d)}, torch.Float32, torch.CPU, g)
			if err := keep.Err(); err != nil {
				b.Fatal(err)
			}
			runTimed(b, sh.batch, func() error {
				s := torch.NewScope()
				defer s.Close()
				s.Gelu(x)
				return s.Err()
			})
		})
	}
}
