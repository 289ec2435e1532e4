package main

import (
	"path/filepath"
	"testing"
)

// The precision flags fail before any work with one line: fp8 (no FP8 path),
// a cheap pass dearer than the run's precision, an M outside [k, sample], and
// a cascade the loop does not run yet. --fused-kernels runs end to end.
func TestScorePrecisionFlags(t *testing.T) {
	cases := []struct {
		name string
		over map[string]string
		want string
	}{
		{"fp8", map[string]string{"score-precision": "fp8"}, "--score-precision fp8: this build has no FP8 scoring path"},
		{"fp8 from the environment", nil, "--score-precision fp8"},
		{"unknown precision", map[string]string{"score-precision": "int4"}, `--score-precision "int4": want fp32, bf16 or fp8`},
		{"fp32 under bf16 amp", map[string]string{"score-precision": "fp32"}, "--score-precision fp32 is not cheaper than the reference precision bf16"},
		{"rescore-top below top-k", map[string]string{"score-precision": "bf16", "use-amp": "false", "rescore-top": "3"}, "--rescore-top 3: want between --top-k 5 and --sample-size 50"},
		{"rescore-top alone", map[string]string{"rescore-top": "20"}, "--rescore-top 20 needs --score-precision"},
		{"cascade not hooked yet", map[string]string{"score-precision": "bf16", "use-amp": "false"}, "--score-precision bf16: the scoring cascade is not yet hooked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saveDir := filepath.Join(t.TempDir(), "ckpt")
			var env []string
			if c.over == nil {
				env = []string{"SATRAIN_SCORE_PRECISION=fp8"}
			}
			r := runCLI(t, env, cliArgs(saveDir, c.over)...)
			checkOneLineError(t, r, c.want)
		})
	}
	// The same precision as the run's is one pass: today's behaviour, accepted.
	for _, over := range []map[string]string{
		{"score-precision": "bf16", "fused-kernels": "true", "threads": "1"},
		{"score-precision": "fp32", "use-amp": "false", "threads": "1"},
	} {
		r := runCLI(t, nil, cliArgs(filepath.Join(t.TempDir(), "ckpt"), over)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\nstderr:\n%s", over, r.code, r.stderr)
		}
	}
}
