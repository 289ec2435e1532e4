package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The precision flags fail before any work with one line: an unknown
// precision, a cheap pass dearer than the run's precision, an M outside
// [k, sample], --rescore-top without a cascade, and the cascade with a
// selection variant it cannot serve. The cascade (fp8 or bf16 under an fp32
// run, fp8 under bf16) and --fused-kernels run end to end.
func TestScorePrecisionFlags(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		over map[string]string
		want string
	}{
		{"unknown precision", nil, map[string]string{"score-precision": "int4"}, `--score-precision "int4": want fp32, bf16 or fp8`},
		{"fp32 under bf16 amp", nil, map[string]string{"score-precision": "fp32"}, "--score-precision fp32 is not cheaper than the reference precision bf16"},
		{"rescore-top below top-k", nil, map[string]string{"score-precision": "bf16", "use-amp": "false", "rescore-top": "3"}, "--rescore-top 3: want between --top-k 5 and --sample-size 50"},
		{"rescore-top alone", nil, map[string]string{"rescore-top": "20"}, "--rescore-top 20 needs --score-precision"},
		{"fp8 with select-by loss", nil, map[string]string{"score-precision": "fp8", "select-by": "loss"},
			"--score-precision fp8: the scoring cascade ranks by expected return over the whole sample and rescores only its top --rescore-top; it cannot be combined with --select-by loss"},
		{"fp8 from the environment with per-date scope", []string{"SATRAIN_SCORE_PRECISION=fp8"}, map[string]string{"select-scope": "per-date"},
			"--score-precision fp8: the scoring cascade ranks by expected return over the whole sample and rescores only its top --rescore-top; it cannot be combined with --select-scope per-date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saveDir := filepath.Join(t.TempDir(), "ckpt")
			r := runCLI(t, c.env, cliArgs(saveDir, c.over)...)
			checkOneLineError(t, r, c.want)
		})
	}
	// The same precision as the run's is one pass: today's behaviour,
	// accepted. A cheaper one runs the cascade.
	for _, over := range []map[string]string{
		{"score-precision": "bf16", "fused-kernels": "true", "threads": "1"},
		{"score-precision": "fp32", "use-amp": "false", "threads": "1"},
		{"score-precision": "fp8", "threads": "1"},
		{"score-precision": "fp8", "use-amp": "false", "rescore-top": "10", "threads": "1"},
		{"score-precision": "bf16", "use-amp": "false", "threads": "1"},
	} {
		r := runCLI(t, nil, cliArgs(filepath.Join(t.TempDir(), "ckpt"), over)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\nstderr:\n%s", over, r.code, r.stderr)
		}
		// The Strategy block says when the cascade runs, and at which precisions.
		cascade := strings.Contains(r.stdout, "(scoring cascade)")
		switch {
		case over["score-precision"] == "fp8" && over["rescore-top"] == "10" &&
			!strings.Contains(r.stdout, "  Score the sample in fp8, rescore the best 10 in fp32 (scoring cascade)"):
			t.Errorf("%v: Strategy block lacks the cascade line:\n%s", over, r.stdout)
		case over["score-precision"] == "fp32" && cascade:
			t.Errorf("%v: one pass in the run's own precision is no cascade:\n%s", over, r.stdout)
		case over["score-precision"] == "fp8" && !cascade:
			t.Errorf("%v: no cascade line:\n%s", over, r.stdout)
		}
	}
}
