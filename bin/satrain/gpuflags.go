package main

import (
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// gpuFlags are the opt-in speed paths: libtorch's fused kernels, CUDA
// graphs for scoring, and the scoring cascade's precision flags.
func gpuFlags() []cli.Flag {
	return []cli.Flag{
		boolFlag("fused-kernels", false, "fused bias+GELU when scoring and a fused AdamW step (CUDA, libtorch 2.1+) where libtorch has them; the plain ops stay the reference", catOther),
		boolFlag("cuda-graphs", false, "score by replaying a captured CUDA graph of the forward pass (CUDA only; scoring stays eager elsewhere and in FP8)", catOther),
		boolFlag("native-world-of-one", false, "under a launcher with WORLD_SIZE=1 (torchrun --nproc-per-node 1), join a real process group of one (NCCL on CUDA, Gloo on the CPU) so that every collective runs, to measure its cost", catOther),
		stringFlag("score-precision", "", "cheap first scoring pass: fp32, bf16 or fp8, then the best --rescore-top are rescored in the run's precision (default: one pass in the run's precision)", catSelection),
		intFlag("rescore-top", 0, "candidates the cascade rescores in the run's precision (0: 4 x --top-k)", catSelection),
	}
}

// applyGPUFlags copies the flags of gpuFlags into cfg and checks them (one
// line on error, before any work).
func applyGPUFlags(c *cli.Context, cfg *trainer.RunConfig, selectionAware bool) error {
	cfg.Step.FusedKernels = c.Bool("fused-kernels")
	cfg.Step.CUDAGraphs = c.Bool("cuda-graphs")
	if !selectionAware {
		return nil
	}
	sc := selection.ScoreConfig{Precision: c.String("score-precision"), RescoreTop: c.Int("rescore-top")}
	ref := trainer.ReferencePrecision(cfg.Step)
	if err := sc.Validate(cfg.TopK, cfg.SampleSize, ref); err != nil {
		return err
	}
	if err := sc.CheckStrategy(cfg.Strategy, ref); err != nil {
		return err
	}
	cfg.Score = sc
	return nil
}
