package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure scoring and training throughput of the model on random inputs (JSON lines on stdout)",
		Flags: []cli.Flag{
			stringFlag("preset", "default", "model size: "+presetList(), ""),
			intFlag("seq-len", 0, "override the preset's seq_len", ""),
			intFlag("num-features", 16, "input features", ""), intFlag("num-horizons", 4, "horizons", ""), intFlag("num-bins", 10, "bins", ""),
			stringFlag("device", "cuda", "cuda or cpu", ""),
			boolFlag("use-amp", true, "bf16 autocast", ""),
			stringFlag("score-batches", "64", "comma-separated inference batch sizes", ""),
			intFlag("train-batch", 32, "training batch (0: skip)", ""),
			intFlag("warmup", 2, "untimed repetitions", ""), intFlag("iters", 5, "timed repetitions (median reported)", ""),
			floatFlag("peak-tflops", 0, "peak TFLOP/s for MFU (e.g. the measured bf16 matmul ceiling)", ""),
			intFlag("threads", 0, "CPU threads for libtorch's intra-op pool (0: libtorch's default, at most the CPUs this process may use)", ""),
			boolFlag("full-final-layer", false, "compute the final layer for every position (no last-query shortcut)", ""),
			boolFlag("fused-kernels", false, "fused bias+GELU (scoring) and fused AdamW (CUDA, libtorch 2.1+) where libtorch has them", ""),
			boolFlag("cuda-graphs", false, "score by replaying a captured CUDA graph of the forward (CUDA only; eager elsewhere)", ""),
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "weights and input seed", EnvVars: env("seed")},
			stringFlag("save-checkpoint", "", "also write the benchmarked weights as a checkpoint (for the PyTorch side)", ""),
			stringFlag("agreement-dir", "", "write inputs.pt and satrain's logits (fp32 and with autocast) for a fixed batch into DIR", ""),
		},
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	p, ok := model.Presets[c.String("preset")]
	if !ok {
		return fmt.Errorf("--preset %q: want one of %s", c.String("preset"), presetList())
	}
	dev, err := torch.ParseDevice(c.String("device"))
	if err != nil {
		return err
	}
	if err := torch.CheckDevice(dev); err != nil {
		return err
	}
	if n := c.Int("threads"); n > 0 {
		if err := torch.SetNumThreads(n); err != nil {
			return err
		}
	}
	mc := model.Config{NumFeatures: c.Int("num-features"), HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: c.Int("num-horizons"), NumBins: c.Int("num-bins"), Dropout: 0.15, SeqLen: p.SeqLen}
	if s := c.Int("seq-len"); s > 0 {
		mc.SeqLen = s
	}
	var batches []int
	for _, f := range strings.Split(c.String("score-batches"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("--score-batches: %q is not a positive integer", f)
		}
		batches = append(batches, n)
	}
	seed := uint64(c.Int64("seed"))
	if path := c.String("save-checkpoint"); path != "" || c.String("agreement-dir") != "" {
		if err := benchArtifacts(mc, dev, seed, path, c.String("agreement-dir"), c.Bool("use-amp")); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s parameters, %s, libtorch %s\n", model.FormatParams(mc.NumParams()), mc.String(), torch.Version())
	enc := json.NewEncoder(os.Stdout)
	return model.Bench(model.BenchConfig{Model: mc, Device: dev, UseAMP: c.Bool("use-amp"), ScoreBatches: batches,
		TrainBatch: c.Int("train-batch"), Warmup: c.Int("warmup"), Iters: c.Int("iters"), PeakTFLOPs: c.Float64("peak-tflops"),
		Seed: seed, FullFinalLayer: c.Bool("full-final-layer"), FusedKernels: c.Bool("fused-kernels"), CUDAGraphs: c.Bool("cuda-graphs")}, func(r model.BenchResult) { _ = enc.Encode(r) })
}

// benchArtifacts writes the benchmark's weights as a checkpoint and, for the
// agreement check, a fixed input batch with satrain's logits on it.
func benchArtifacts(mc model.Config, dev torch.Device, seed uint64, ckpt, dir string, amp bool) error {
	m, err := model.New(mc, dev, seed)
	if err != nil {
		return err
	}
	defer m.Free()
	centers := make([][]float32, mc.NumHorizons)
	for h := range centers {
		for b := 0; b < mc.NumBins; b++ {
			centers[h] = append(centers[h], 0.95+0.01*float32(b))
		}
	}
	e, err := model.NewEngine(m, model.StepConfig{LR: 4e-5}, centers, 4)
	if err != nil {
		return err
	}
	defer e.Free()
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if ckpt == "" {
		ckpt = filepath.Join(dir, "weights.pt")
	}
	if err := checkpoint.Save(ckpt, e, checkpoint.Meta{Kind: trainer.KindStandard, BestValLoss: math.Inf(1)}, false); err != nil {
		return err
	}
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	const n = 4
	g, err := torch.NewGenerator(seed + 1)
	if err != nil {
		return err
	}
	defer g.Free()
	s := torch.NewScope()
	defer s.Close()
	x := s.Randn([]int64{n, int64(mc.SeqLen), int64(mc.NumFeatures)}, torch.Float32, torch.CPU, g)
	xs := s.Float32s(x)
	if err := s.Err(); err != nil {
		return err
	}
	in, _ := torch.NewDict()
	defer in.Free()
	if err := in.SetTensor("x", x); err != nil {
		return err
	}
	if err := in.Save(filepath.Join(dir, "inputs.pt")); err != nil {
		return err
	}
	for _, mode := range []struct {
		name string
		amp  bool
	}{{"fp32", false}, {"amp", true}} {
		if mode.amp && !amp {
			continue
		}
		e2, err := model.NewEngine(m, model.StepConfig{LR: 4e-5, UseAMP: mode.amp}, centers, n)
		if err != nil {
			return err
		}
		res, err := e2.Infer(xs, nil, n, mc.SeqLen, true)
		e2.Free()
		if err != nil {
			return err
		}
		if err := writeF32(filepath.Join(dir, "satrain_logits_"+mode.name+".f32"), res.Logits); err != nil {
			return err
		}
	}
	return nil
}

func writeF32(path string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return os.WriteFile(path, b, 0o644)
}
