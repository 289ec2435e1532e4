package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

func TestReferencePrecision(t *testing.T) {
	if ReferencePrecision(model.StepConfig{UseAMP: true}) != selection.PrecisionBF16 || ReferencePrecision(model.StepConfig{}) != selection.PrecisionFP32 ||
		ReferencePrecision(model.StepConfig{UseAMP: true, AMPDType: "fp16"}) != selection.PrecisionFP16 {
		t.Fatal("reference precision: --use-amp is bf16 (fp16 with --amp-dtype fp16), otherwise fp32")
	}
}

// The cascade with the model itself: a cheap pass in bf16 autocast or in FP8
// (the encoder layers' matmuls through at::_scaled_mm) against float32 (the
// reference) on a synthetic panel, a tiny model, 8 samples of 240 sequences,
// k = 8, M = 4k. The engine scores one sequence per call, so a sequence's
// score does not depend on its batch (FP8 scales activations per call).
// Whenever the float32 top-k lies inside the cheap top-M, the selections are
// equal; the rate is logged. The scorer leaves the engine as it found it.
func TestCascadeEngineScorersVsFP32(t *testing.T) {
	defer torch.LockThread()()
	ds, err := loader.Open(runtest.Panel(t, 11), loader.Options{SeqLen: 16, ValSize: 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cfg := model.Config{NumFeatures: ds.NumFeatures(), HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: len(ds.Horizons()),
		NumBins: 10, SeqLen: 16}
	m, err := model.New(cfg, torch.CPU, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	e, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, ds.BinCenters(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	ref := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: selection.PrecisionFP32}
	for _, p := range []string{selection.PrecisionBF16, selection.PrecisionFP8} {
		cheap := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: p}
		const samples, n, k = 8, 240, 8
		contained := 0
		for i := 0; i < samples; i++ {
			ids := ds.Split("train").Sample(n, rand.New(rand.NewSource(int64(i))))
			check, res, err := selection.MeasureCascade(context.Background(), ids, cheap, ref, k, selection.DefaultRescoreFactor*k, model.ScoreTieRTol(cfg))
			if err != nil {
				t.Fatal(err)
			}
			cand := make([]float64, len(res.Candidates))
			worst := 0.0
			for j, c := range res.Candidates {
				cand[j] = res.Cheap[c]
				worst = math.Max(worst, math.Abs(cand[j]-res.Rescored[j])/math.Abs(res.Rescored[j]))
			}
			if slices.Equal(cand, res.Rescored) {
				t.Fatalf("%s: the cheap pass gave float32's scores: it did not take effect", p)
			}
			// Expected gross returns near 1: a cheap pass off by more than
			// 1% would be broken, not coarse.
			if worst > 0.01 {
				t.Fatalf("%s: a candidate's cheap score is %.3g off its float32 score relatively", p, worst)
			}
			if check.AllContained() {
				contained++
				if !check.Equal {
					t.Fatalf("%s sample %d: float32 top-%d inside the cheap top-%d, but the cascade selected another set", p, i, k, check.M)
				}
			}
		}
		if e.AMP() != "off" || m.FP8Active() {
			t.Fatalf("%s: the scorer left autocast (%s) or the FP8 weights (%v) switched on", p, e.AMP(), m.FP8Active())
		}
		t.Logf("float32 top-%d inside the %s top-%d in %d of %d samples", k, p, selection.DefaultRescoreFactor*k, contained, samples)
	}
}

// The cascade in the selection-aware loop (RunConfig.Score), one process:
//   - with M = the sample size every sequence is rescored in the run's
//     precision, so the run must equal the plain run bit for bit (selections
//     and losses): the hook rescored, restricted and selected like the
//     single pass, and left the engine in its own precision for training;
//   - with the default M = 4k (48 of 96) the run completes and selects k
//     distinct sequences each iteration.
func TestCascadeInSelectionAwareLoop(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	run := func(sc selection.ScoreConfig) *RunResult {
		cfg := ltConfig(data, filepath.Join(t.TempDir(), "ckpt"), nil)
		cfg.Console, cfg.Reporters = nil, []event.Reporter{}
		cfg.Score = sc
		res, err := RunSelectionAware(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%+v: %v", sc, err)
		}
		return res
	}
	plain := run(selection.ScoreConfig{})
	calls := torch.FP8LinearCalls()
	full := run(selection.ScoreConfig{Precision: selection.PrecisionFP8, RescoreTop: 96})
	part := run(selection.ScoreConfig{Precision: selection.PrecisionFP8})
	// 3 iterations, 96 sequences in batches of 32: 9 cheap forward passes per
	// run, each with 4 FP8 linears in the one layer.
	if got := torch.FP8LinearCalls() - calls; got != 2*9*4 {
		t.Fatalf("the runs made %d FP8 linear calls, want %d: the cheap pass did not run in FP8", got, 2*9*4)
	}
	if len(plain.Iterations) != 3 || len(full.Iterations) != 3 || len(part.Iterations) != 3 {
		t.Fatalf("iterations: plain %d, cascade M=n %d, cascade M=4k %d, want 3", len(plain.Iterations), len(full.Iterations), len(part.Iterations))
	}
	for i := range plain.Iterations {
		a, b := plain.Iterations[i], full.Iterations[i]
		if !slices.Equal(a.Selected, b.Selected) || a.TrainLoss != b.TrainLoss {
			t.Fatalf("iteration %d: cascade with M = n selected %v (train loss %v), the single pass %v (%v)", i+1, b.Selected, b.TrainLoss, a.Selected, a.TrainLoss)
		}
		sel := part.Iterations[i].Selected
		if len(sel) != 12 || len(idSet(sel)) != 12 {
			t.Fatalf("iteration %d: cascade with M = 4k selected %d sequences (%d distinct), want 12", i+1, len(sel), len(idSet(sel)))
		}
	}
}

// The cascade under data parallelism: two ranks (Gloo), each scoring its
// share of the cheap pass and of the rescoring and all-gathering both, give
// the one-process run's selections and losses on every rank (M = n, so the
// selections must also equal the plain single pass). A rank issuing the
// collectives in another order would hang or fail the run.
func TestCascadeDataParallel(t *testing.T) {
	if !torch.HasBackend(torch.Gloo) {
		ltNeed(t, false, "libsatorch built without Gloo")
	}
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	dir := t.TempDir()
	res1, err := runKind(context.Background(), "selection-fp8", distTestConfig("selection-fp8", data, filepath.Join(dir, "world1")))
	if err != nil {
		t.Fatal(err)
	}
	want := resultOf(res1)
	plain, err := runKind(context.Background(), "selection", distTestConfig("selection", data, filepath.Join(dir, "plain")))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resultOf(plain).Selected) != fmt.Sprint(want.Selected) {
		t.Fatalf("cascade (M = n) selected %v, the plain single pass %v", want.Selected, resultOf(plain).Selected)
	}
	outs := runRanks(t, "SATRAIN_TRAINER_DIST=selection-fp8", "SATRAIN_TRAINER_DIST_DATA="+data, "SATRAIN_TRAINER_DIST_SAVE="+filepath.Join(dir, "world2"))
	for r := range outs {
		var got distRankResult
		if err := json.Unmarshal([]byte(outs[r]), &got); err != nil {
			t.Fatalf("rank %d: %v in %q", r, err, outs[r])
		}
		if fmt.Sprint(got.Selected) != fmt.Sprint(want.Selected) {
			t.Errorf("rank %d selected %v, one process %v", r, got.Selected, want.Selected)
		}
		for i := range want.TrainLoss {
			if math.Abs(got.TrainLoss[i]-want.TrainLoss[i]) > 1e-5*math.Abs(want.TrainLoss[i]) {
				t.Errorf("rank %d iteration %d train loss %.8f, one process %.8f", r, i+1, got.TrainLoss[i], want.TrainLoss[i])
			}
		}
	}
}

// BenchCascade (satrain bench-cascade) on a checkpoint of a tiny run: one
// record per iteration, the full passes alternating, and figures that agree
// with each other: MinM (the worst cheap rank of a reference top-k sequence)
// is at least k, at most M exactly when the top-k is contained; equal
// selections are equal sets; one thread scores a sequence the same in any
// batch, so the rescored scores equal the full pass's.
func TestBenchCascade(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	cfg := ltConfig(data, filepath.Join(t.TempDir(), "ckpt"), nil)
	cfg.Console, cfg.Reporters = nil, []event.Reporter{}
	cfg.NumIterations = 1
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bc := CascadeBenchConfig{Eval: eval.Options{Checkpoint: res.BestPath, Data: data, Device: torch.CPU, InferenceBatch: 32, Threads: 1,
		DataOpt: cfg.DataOpt}, Cheap: selection.PrecisionFP8, Reference: selection.PrecisionFP32, Horizon: 1, SampleSize: 200, TopK: 10, Iterations: 3, Seed: 1}
	var its []CascadeBenchIteration
	if err := BenchCascade(context.Background(), bc, func(r CascadeBenchIteration) { its = append(its, r) }); err != nil {
		t.Fatal(err)
	}
	if len(its) != 3 {
		t.Fatalf("%d records, want 3", len(its))
	}
	for i, r := range its {
		if r.Iteration != i+1 || r.Sample != 200 || r.K != 10 || r.M != 40 || r.CheapFirst != (i%2 == 0) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if r.MinM < r.K || (r.MinM <= r.M) != (r.Contained == r.K) || (r.Equal && !r.SameSet) {
			t.Fatalf("record %d: min M %d, contained %d of %d at M %d, equal %v, same set %v", i, r.MinM, r.Contained, r.K, r.M, r.Equal, r.SameSet)
		}
		if r.RescoreDiff != 0 || r.CheapSec <= 0 || r.RefSec <= 0 || r.RescoreSec <= 0 {
			t.Fatalf("record %d: rescored scores differ from the full pass by %g; times %g %g %g", i, r.RescoreDiff, r.CheapSec, r.RefSec, r.RescoreSec)
		}
	}
	bc.Reference = selection.PrecisionFP16
	if err := BenchCascade(context.Background(), bc, func(CascadeBenchIteration) {}); err == nil || !strings.Contains(option.CommandLine(err).Error(), `--reference "fp16": want fp32 or bf16`) {
		t.Fatalf("fp16 reference: %v", err)
	}
}
