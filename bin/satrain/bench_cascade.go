package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// benchCascadeCommand measures the scoring cascade on a trained checkpoint
// (bench/fp8_cpu.sh runs it): containment, equal selections, pass times.
func benchCascadeCommand() *cli.Command {
	return &cli.Command{
		Name: "bench-cascade",
		Usage: "measure the scoring cascade on a checkpoint: over sampled iterations of the training split, how often the reference top-k " +
			"lies inside the cheap top-M, whether the selections are equal, and the time of each pass (JSON lines on stdout, a summary on stderr)",
		Flags: append(evalDataFlags(),
			intFlag("horizon-idx", 1, "horizon ranked on: 0=1d 1=5d 2=10d 3=20d", catEval),
			stringFlag("score-precision", "fp8", "the cheap pass: fp8 or bf16", catEval),
			stringFlag("reference", "fp32", "the reference pass (the run's precision): fp32, or bf16 (autocast; an fp8 pass then keeps bf16 outside its matmuls)", catEval),
			intFlag("sample-size", 10000, "sequences sampled per iteration", catEval),
			intFlag("top-k", 100, "sequences selected per iteration", catEval),
			intFlag("rescore-top", 0, "candidates the cascade rescores (0: 4 x --top-k)", catEval),
			intFlag("iterations", 100, "sampled iterations", catEval),
			&cli.Int64Flag{Name: "seed", Value: 42, Usage: "sampling seed", Category: catEval, EnvVars: env("seed")},
		),
		Action: runBenchCascade,
	}
}

func runBenchCascade(c *cli.Context) error {
	opt, err := evalOptions(c)
	if err != nil {
		return err
	}
	cfg := trainer.CascadeBenchConfig{Eval: opt, Cheap: c.String("score-precision"), Reference: c.String("reference"),
		Horizon: c.Int("horizon-idx"), SampleSize: c.Int("sample-size"), TopK: c.Int("top-k"), RescoreTop: c.Int("rescore-top"),
		Iterations: c.Int("iterations"), Seed: c.Int64("seed")}
	enc := json.NewEncoder(os.Stdout)
	var its []trainer.CascadeBenchIteration
	err = trainer.BenchCascade(c.Context, cfg, func(r trainer.CascadeBenchIteration) {
		its = append(its, r)
		_ = enc.Encode(r)
	})
	if err != nil {
		return err
	}
	contained, equal, same := 0, 0, 0
	diff := 0.0
	var cheap, ref, rescore, speedup []float64
	var minM []float64
	for _, r := range its {
		if r.Contained == r.K {
			contained++
		}
		if r.Equal {
			equal++
		}
		if r.SameSet {
			same++
		}
		diff = math.Max(diff, r.RescoreDiff)
		minM = append(minM, float64(r.MinM))
		cheap, ref, rescore = append(cheap, r.CheapSec), append(ref, r.RefSec), append(rescore, r.RescoreSec)
		speedup = append(speedup, r.RefSec/(r.CheapSec+r.RescoreSec))
	}
	last := its[len(its)-1]
	fmt.Fprintf(os.Stderr, "bench-cascade: %s vs %s reference, %d iterations of %d sequences, k %d, M %d\n",
		cfg.Cheap, cfg.Reference, len(its), last.Sample, last.K, last.M)
	fmt.Fprintf(os.Stderr, "  reference top-k inside the %s top-M: %d of %d iterations; selected sets equal: %d of %d; equal in order too: %d of %d\n",
		cfg.Cheap, contained, len(its), same, len(its), equal, len(its))
	fmt.Fprintf(os.Stderr, "  smallest M that would have held the reference top-k: %s\n", spread(minM))
	fmt.Fprintf(os.Stderr, "  largest relative difference of a rescored score from the same sequence's score in the full pass: %.2g (tie tolerance %.2g)\n",
		diff, last.TieRTol)
	fmt.Fprintf(os.Stderr, "  pass over the sample, seconds (median [min, max]): %s %s, %s %s; rescoring %s\n",
		cfg.Cheap, spread(cheap), cfg.Reference, spread(ref), spread(rescore))
	fmt.Fprintf(os.Stderr, "  %s pass time / %s pass time: %.2f (median of per-iteration ratios; above 1: the cheap pass is slower)\n",
		cfg.Cheap, cfg.Reference, medianOf(ratios(cheap, ref)))
	fmt.Fprintf(os.Stderr, "  speed-up of the cascade, %s pass / (%s pass + rescoring): %s (below 1: slower than one %s pass)\n",
		cfg.Reference, cfg.Cheap, spread(speedup), cfg.Reference)
	return nil
}

func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) string {
	return fmt.Sprintf("%.3g [%.3g, %.3g]", medianOf(v), slices.Min(v), slices.Max(v))
}
