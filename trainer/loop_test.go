package trainer

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/internal/testenv"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/option"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/selection/rank"
	"github.com/satrain/satrain/torch"
)

func idSet(ids []loader.SeqID) map[loader.SeqID]bool {
	m := make(map[loader.SeqID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// ltWindows reads the windows of ids from data with the run's loader options.
func ltWindows(t *testing.T, cfg RunConfig, ids []loader.SeqID) ([]float32, *loader.Dataset) {
	t.Helper()
	opt := cfg.DataOpt
	opt.SeqLen = cfg.Model.SeqLen
	ds, err := loader.Open(cfg.Data, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	feats := make([]float32, len(ids)*opt.SeqLen*ds.NumFeatures())
	labels := make([]int64, len(ids)*len(ds.Horizons()))
	if err := ds.ReadWindows(ids, feats, labels, nil); err != nil {
		t.Fatal(err)
	}
	return feats, ds
}

// ltInferCheckpoint loads a checkpoint and runs Go inference on feats.
func ltInferCheckpoint(t *testing.T, path string, feats []float32, n, seqLen int) model.InferResult {
	t.Helper()
	l, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Free()
	m, err := l.NewModel(torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	eng, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, l.Centers, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	res, err := eng.Infer(feats, nil, n, seqLen, true)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func countMatches(s, pattern string) int {
	return len(regexp.MustCompile(pattern).FindAllStringIndex(s, -1))
}

// TestSelectionAwareEndToEnd runs five iterations of the method on a small
// synthetic panel and checks the console, the selection of every iteration
// against a full sort of its scores, the validation and checkpoint cadence,
// the metrics log, and that the best model loads in PyTorch with the same
// logits as Go's inference.
func TestSelectionAwareEndToEnd(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations = 5
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("RunSelectionAware: %v\n%s", err, console.String())
	}
	out := console.String()

	// Console shape (line for line in TestConsoleDocumented).
	for _, want := range []string{
		"SELECTION-AWARE TRAINING",
		"  Sample 96 sequences\n  Select top 12 (12.5%) by expected return\n  Train on them for 2 epochs\n  Repeat 5 times\n",
		"  Val:   48 sequences",
		"Iteration 1/5", "Iteration 5/5",
		"Done: 5 iterations",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  Train: [1-9][0-9,]* sequences$`).MatchString(out) {
		t.Errorf("console lacks a 'Train: N sequences' line:\n%s", out)
	}
	perIter := map[string]int{
		`🎲 Sampling 96 sequences and selecting top 12\.\.\.`: 5,
		`📊 Expected return stats:\n      Mean: -?\d+\.\d{4}\n      Median: -?\d+\.\d{4}\n      Top 12 mean: -?\d+\.\d{4}\n      Top 12 min: -?\d+\.\d{4}\n`: 5,
		`🏋️  Training on top 12 for 2 epochs\.\.\.\n  ✅ Training loss: \d+\.\d{4}\n`:                                                                        5,
		`📊 Validating\.\.\.\n  ✅ Validation loss: \d+\.\d{4}`:                                                                                               3, // iterations 2, 4 and 5 (the last)
	}
	for pat, n := range perIter {
		if got := countMatches(out, pat); got != n {
			t.Errorf("console: %d lines match %q, want %d:\n%s", got, pat, n, out)
		}
	}
	if countMatches(out, `✅ Saved best model \(val_loss: \d+\.\d{4}\)\n     `+regexp.QuoteMeta(dir)) < 1 {
		t.Errorf("console never says it saved the best model:\n%s", out)
	}

	// Iterations: selection = true top-k of the scores; training only on it.
	if len(res.Iterations) != 5 || res.LastIter != 5 || res.Interrupted {
		t.Fatalf("result: %d iterations, last %d, interrupted %v", len(res.Iterations), res.LastIter, res.Interrupted)
	}
	// Scores within the model's rounding noise tie (ticker, then day).
	_, lds := ltWindows(t, cfg, res.Iterations[0].sample[:1])
	mc := cfg.Model
	mc.NumFeatures = lds.NumFeatures()
	rtol := model.ScoreTieRTol(mc)
	var valIters []int
	for i, rec := range res.Iterations {
		it := i + 1
		if rec.Iteration != it {
			t.Fatalf("record %d has iteration %d", i, rec.Iteration)
		}
		if len(rec.sample) != cfg.SampleSize || len(rec.scores) != cfg.SampleSize {
			t.Fatalf("iteration %d: %d sampled, %d scores, want %d", it, len(rec.sample), len(rec.scores), cfg.SampleSize)
		}
		for j, v := range rec.scores {
			if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
				t.Fatalf("iteration %d: score %d is %v, want a finite gross return", it, j, v)
			}
		}
		// SelectTopKTies is checked against a full sort in package selection.
		want := selection.SelectTopKTies(rec.scores, rec.sample, cfg.TopK, rtol)
		merged := rank.MergeTies(rec.scores, rtol)
		if len(rec.Selected) != cfg.TopK {
			t.Fatalf("iteration %d: selected %d, want %d", it, len(rec.Selected), cfg.TopK)
		}
		for r, j := range want {
			if rec.Selected[r] != rec.sample[j] {
				t.Fatalf("iteration %d: selected[%d] = %v, the method says %v (score %v)", it, r, rec.Selected[r], rec.sample[j], rec.scores[j])
			}
		}
		// Every unselected score is <= the selected minimum.
		sel := idSet(rec.Selected)
		minSel := math.Inf(1)
		var sumSel float64
		for _, j := range want {
			minSel = math.Min(minSel, rec.scores[j])
			sumSel += rec.scores[j]
		}
		minMerged := math.Inf(1)
		for _, j := range want {
			minMerged = math.Min(minMerged, merged[j])
		}
		for j, id := range rec.sample {
			if !sel[id] && merged[j] > minMerged {
				t.Fatalf("iteration %d: unselected %v scores %v > selected min %v (beyond ties)", it, id, rec.scores[j], minSel)
			}
		}
		if rec.TopKERMin != minSel || math.Abs(rec.TopKERMean-sumSel/float64(cfg.TopK)) > 1e-12 {
			t.Errorf("iteration %d: top-k stats %v/%v, selected scores give %v/%v", it, rec.TopKERMean, rec.TopKERMin, sumSel/float64(cfg.TopK), minSel)
		}
		if len(rec.TrainedIDs) == 0 {
			t.Fatalf("iteration %d trained on nothing", it)
		}
		for _, id := range rec.TrainedIDs {
			if !sel[id] {
				t.Fatalf("iteration %d trained on %v, which was not selected", it, id)
			}
		}
		if got, want := rec.TrainedTotal, int64(it*cfg.TopK*cfg.EpochsPerIteration); got != want {
			t.Errorf("iteration %d: sequences trained total %d, want %d", it, got, want)
		}
		if got, want := rec.ScoredTotal, int64(it*cfg.SampleSize); got != want {
			t.Errorf("iteration %d: sequences scored total %d, want %d", it, got, want)
		}
		if math.IsNaN(rec.TrainLoss) || rec.TrainLoss <= 0 {
			t.Errorf("iteration %d: train loss %v", it, rec.TrainLoss)
		}
		if rec.Validated {
			valIters = append(valIters, it)
		}
	}
	if fmt.Sprint(valIters) != "[2 4 5]" {
		t.Errorf("validated at iterations %v, want [2 4 5] (every %d plus the last)", valIters, cfg.ValEvery)
	}

	// Files.
	best := filepath.Join(dir, "best_model_selection_aware.pt")
	if res.BestPath != best || !ltExists(best) {
		t.Errorf("best model at %q (exists %v), want %s", res.BestPath, ltExists(best), best)
	}
	for it := 1; it <= 5; it++ {
		p := filepath.Join(dir, fmt.Sprintf("checkpoint_iter_%d.pt", it))
		want := it%cfg.CheckpointEvery == 0 || it == 5
		if ltExists(p) != want {
			t.Errorf("%s exists = %v, want %v", p, !want, want)
		}
	}
	l, err := checkpoint.Load(filepath.Join(dir, "checkpoint_iter_5.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Meta.Kind != KindSelectionAware || l.Meta.Iteration != 5 || !l.HasOptim || l.Meta.SequencesScored != 5*96 {
		t.Errorf("checkpoint_iter_5.pt meta %+v (optimizer %v)", l.Meta, l.HasOptim)
	}
	l.Free()
	lb, err := checkpoint.Load(best)
	if err != nil {
		t.Fatal(err)
	}
	if lb.HasOptim || lb.Meta.BestValLoss != res.BestValLoss || res.Iterations[lb.Meta.BestIteration-1].ValLoss != res.BestValLoss {
		t.Errorf("best model meta %+v (optimizer %v), run best %v", lb.Meta, lb.HasOptim, res.BestValLoss)
	}
	lb.Free()

	// Metrics log: one JSON object per iteration with the contract's keys.
	lines := ltLines(t, filepath.Join(dir, "metrics.jsonl"))
	if len(lines) != 5 {
		t.Fatalf("metrics.jsonl has %d lines, want 5", len(lines))
	}
	keys := []string{"time", "strategy", "iteration", "train_loss", "val_loss", "er_mean", "er_median", "topk_er_mean",
		"topk_er_min", "sequences_scored_total", "sequences_trained_total", "phase_seconds", "iteration_seconds"}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics.jsonl line %d is not JSON: %v\n%s", i+1, err, line)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("metrics.jsonl line %d lacks %q: %s", i+1, k, line)
			}
		}
		rec := res.Iterations[i]
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(m["time"])); err != nil {
			t.Errorf("line %d: time %v is not RFC3339", i+1, m["time"])
		}
		if m["strategy"] != "selection_aware" || m["iteration"] != float64(i+1) {
			t.Errorf("line %d: strategy %v iteration %v", i+1, m["strategy"], m["iteration"])
		}
		for k, v := range map[string]float64{"train_loss": rec.TrainLoss, "er_mean": rec.ERMean, "er_median": rec.ERMedian,
			"topk_er_mean": rec.TopKERMean, "topk_er_min": rec.TopKERMin,
			"sequences_scored_total": float64(rec.ScoredTotal), "sequences_trained_total": float64(rec.TrainedTotal)} {
			if m[k] != v {
				t.Errorf("line %d: %s = %v, run says %v", i+1, k, m[k], v)
			}
		}
		if (m["val_loss"] == nil) != (!rec.Validated) || rec.Validated && m["val_loss"] != rec.ValLoss {
			t.Errorf("line %d: val_loss %v, run says %v", i+1, m["val_loss"], rec.ValLoss)
		}
		ph, ok := m["phase_seconds"].(map[string]any)
		if !ok {
			t.Fatalf("line %d: phase_seconds %v", i+1, m["phase_seconds"])
		}
		for _, p := range AllPhases {
			if v, ok := ph[p].(float64); !ok && p != PhaseValidation && p != PhaseCheckpoint || ok && v < 0 {
				t.Errorf("line %d: phase_seconds[%s] = %v", i+1, p, ph[p])
			}
		}
		if v, ok := m["iteration_seconds"].(float64); !ok || v <= 0 {
			t.Errorf("line %d: iteration_seconds %v", i+1, m["iteration_seconds"])
		}
	}

	t.Run("python", func(t *testing.T) {
		ltPythonParity(t, cfg, best, res.Iterations[4].Selected[:3])
	})
}

// ltPythonParity loads path with python/satrain_model.py and compares its
// float32 logits on the windows of ids with Go's inference.
func ltPythonParity(t *testing.T, cfg RunConfig, path string, ids []loader.SeqID) {
	defer torch.LockThread()() // a subtest runs on its own goroutine: keep torch on one thread
	py := testenv.Python(t, "torch")
	feats, ds := ltWindows(t, cfg, ids)
	n, S, F := len(ids), cfg.Model.SeqLen, ds.NumFeatures()
	goOut := ltInferCheckpoint(t, path, feats, n, S)

	tmp := t.TempDir()
	in, outPath := filepath.Join(tmp, "x.f32"), filepath.Join(tmp, "logits.f32")
	raw := make([]byte, 4*len(feats))
	for i, v := range feats {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	script := `
import sys, json
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from satrain_model import load_checkpoint
model, ckpt = load_checkpoint(sys.argv[2], dropout=0.0)
x = torch.from_numpy(np.fromfile(sys.argv[3], dtype="<f4").reshape(int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])))
with torch.no_grad():
    logits = model(x)
logits.float().numpy().astype("<f4").tofile(sys.argv[4])
print(json.dumps({"kind": ckpt["kind"], "format": ckpt["format"], "iteration": int(ckpt["iteration"]), "shape": list(logits.shape), "training": model.training}))
`
	cmd := exec.Command(py, "-c", script, filepath.Join(repo, "python"), path, in, outPath,
		fmt.Sprint(n), fmt.Sprint(S), fmt.Sprint(F))
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	stdout, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var info struct {
		Kind, Format string
		Iteration    int
		Shape        []int
		Training     bool
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout), &info); err != nil {
		t.Fatalf("python output %q: %v", stdout, err)
	}
	H, B := len(ds.Horizons()), ds.NumBins()
	if info.Kind != KindSelectionAware || info.Format != checkpoint.Format || fmt.Sprint(info.Shape) != fmt.Sprint([]int{n, H, B}) || info.Training {
		t.Errorf("python sees %+v, want kind %s, shape [%d %d %d], eval mode", info, KindSelectionAware, n, H, B)
	}
	pyRaw, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(pyRaw) != 4*len(goOut.Logits) {
		t.Fatalf("python wrote %d logits, Go has %d", len(pyRaw)/4, len(goOut.Logits))
	}
	var maxDiff, maxAbs float64
	for i, g := range goOut.Logits {
		p := float64(math.Float32frombits(binary.LittleEndian.Uint32(pyRaw[4*i:])))
		maxDiff = math.Max(maxDiff, math.Abs(float64(g)-p))
		maxAbs = math.Max(maxAbs, math.Abs(p))
	}
	mc := cfg.Model
	mc.NumFeatures = F
	if bound := modeltest.LogitBound(mc, maxAbs); maxDiff > bound || maxAbs == 0 {
		t.Errorf("Go vs PyTorch logits: max |diff| %.3g > %.3g (max |logit| %.3g)", maxDiff, bound, maxAbs)
	} else {
		t.Logf("Go vs PyTorch logits: max |diff| %.3g over max |logit| %.3g", maxDiff, maxAbs)
	}
}

// sameIteration compares the deterministic outputs of two records.
func sameIteration(t *testing.T, what string, a, b IterationRecord) {
	t.Helper()
	close := func(x, y float64) bool { return x == y || math.Abs(x-y) <= 1e-6*math.Max(1, math.Abs(y)) }
	if a.Iteration != b.Iteration || !close(a.TrainLoss, b.TrainLoss) || !close(a.ERMean, b.ERMean) || !close(a.ERMedian, b.ERMedian) ||
		!close(a.TopKERMean, b.TopKERMean) || !close(a.TopKERMin, b.TopKERMin) {
		t.Errorf("%s iteration %d differs:\n  straight: loss %.9g er %.9g/%.9g top-k %.9g/%.9g\n  resumed:  loss %.9g er %.9g/%.9g top-k %.9g/%.9g",
			what, b.Iteration, b.TrainLoss, b.ERMean, b.ERMedian, b.TopKERMean, b.TopKERMin,
			a.TrainLoss, a.ERMean, a.ERMedian, a.TopKERMean, a.TopKERMin)
	}
	if fmt.Sprint(a.Selected) != fmt.Sprint(b.Selected) {
		t.Errorf("%s iteration %d selected different sequences", what, b.Iteration)
	}
	if (!a.Validated) != (!b.Validated) || a.Validated && !close(a.ValLoss, b.ValLoss) {
		t.Errorf("%s iteration %d: val loss %v vs %v", what, b.Iteration, a.ValLoss, b.ValLoss)
	}
}

// TestResumeEquivalence: four iterations straight equal two iterations, a
// checkpoint, and a resumed run of iterations 3 and 4 (fixed seed, CPU, one
// thread, float32).
func TestResumeEquivalence(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)

	var c1 bytes.Buffer
	dirA := t.TempDir()
	cfg := ltConfig(data, dirA, &c1)
	cfg.NumIterations = 4
	straight, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("straight run: %v\n%s", err, c1.String())
	}

	var c2 bytes.Buffer
	dirB := t.TempDir()
	cfg = ltConfig(data, dirB, &c2)
	cfg.NumIterations = 2
	first, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("first half: %v\n%s", err, c2.String())
	}
	for i := range first.Iterations {
		sameIteration(t, "first half", first.Iterations[i], straight.Iterations[i])
	}
	ckpt := filepath.Join(dirB, "checkpoint_iter_2.pt")
	var c3 bytes.Buffer
	cfg = ltConfig(data, dirB, &c3)
	cfg.NumIterations = 4
	cfg.ResumeFrom = ckpt
	second, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, c3.String())
	}
	if !strings.Contains(c3.String(), "Resuming selection_aware run from "+ckpt+": continuing after iteration 2") {
		t.Errorf("resumed console does not say it resumes after iteration 2:\n%s", c3.String())
	}
	if strings.Contains(c3.String(), "Iteration 1/4") || strings.Contains(c3.String(), "Iteration 2/4") {
		t.Errorf("resumed run repeated iterations 1-2:\n%s", c3.String())
	}
	if len(second.Iterations) != 2 || second.Iterations[0].Iteration != 3 || second.LastIter != 4 {
		t.Fatalf("resumed run did iterations %+v", second.Iterations)
	}
	for i, rec := range second.Iterations {
		sameIteration(t, "resumed", rec, straight.Iterations[2+i])
		if rec.ScoredTotal != straight.Iterations[2+i].ScoredTotal ||
			rec.TrainedTotal != straight.Iterations[2+i].TrainedTotal {
			t.Errorf("iteration %d counters: resumed %d/%d, straight %d/%d", rec.Iteration, rec.ScoredTotal, rec.TrainedTotal,
				straight.Iterations[2+i].ScoredTotal, straight.Iterations[2+i].TrainedTotal)
		}
	}
	if second.BestValLoss != straight.BestValLoss {
		t.Errorf("best val loss: resumed %v, straight %v", second.BestValLoss, straight.BestValLoss)
	}
	// The metrics log continues in the same folder.
	if n := len(ltLines(t, filepath.Join(dirB, "metrics.jsonl"))); n != 4 {
		t.Errorf("metrics.jsonl after resume has %d lines, want 4", n)
	}
}

// TestResumeFromStandard: selection-aware training started from a standard
// run's best_model.pt begins at iteration 1 with those weights.
func TestResumeFromStandard(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var c1 bytes.Buffer
	stdDir := t.TempDir()
	cfg := ltConfig(data, stdDir, &c1)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 1, 64
	sres, err := RunStandard(context.Background(), cfg)
	if err != nil {
		t.Fatalf("RunStandard: %v\n%s", err, c1.String())
	}
	if !strings.Contains(c1.String(), "STANDARD TRAINING") || sres.LastIter != 1 || sres.Iterations[0].TrainedTotal != 64 {
		t.Errorf("standard run: last %d, records %+v\n%s", sres.LastIter, sres.Iterations, c1.String())
	}
	best := filepath.Join(stdDir, "best_model.pt")
	if !ltExists(best) || !ltExists(filepath.Join(stdDir, "checkpoint_epoch_1.pt")) {
		t.Fatalf("standard run wrote no best_model.pt / checkpoint_epoch_1.pt")
	}

	var c2 bytes.Buffer
	cfg = ltConfig(data, t.TempDir(), &c2)
	cfg.NumIterations = 1
	cfg.ResumeFrom = best
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("fine-tune: %v\n%s", err, c2.String())
	}
	if !strings.Contains(c2.String(), "Fine-tuning from standard-training weights "+best) {
		t.Errorf("console does not say it fine-tunes from standard weights:\n%s", c2.String())
	}
	if len(res.Iterations) != 1 || res.Iterations[0].Iteration != 1 || !strings.Contains(c2.String(), "Iteration 1/1") {
		t.Fatalf("fine-tune did iterations %+v", res.Iterations)
	}
	// Iteration 1 scored its sample with the standard model's weights.
	rec := res.Iterations[0]
	feats, ds := ltWindows(t, cfg, rec.sample)
	want := ltInferCheckpoint(t, best, feats, len(rec.sample), cfg.Model.SeqLen)
	H := len(ds.Horizons())
	// Same weights, other batching: the scores agree to the rounding bound.
	mc := cfg.Model
	mc.NumFeatures = ds.NumFeatures()
	bound := modeltest.ScoreBound(modeltest.LogitBound(mc, modeltest.MaxAbs32(want.Logits)), ds.BinCenters())
	for i, got := range rec.scores {
		w := float64(want.Expected[i*H+cfg.HorizonIdx])
		if math.Abs(got-w) > bound {
			t.Fatalf("iteration 1 score %d = %v, the standard model gives %v (bound %.3g)", i, got, w, bound)
		}
	}
}

// tripCtx is a context that is cancelled by its own Err: once armed, the
// n-th call of Err (the loops poll it after every batch) cancels it, so the
// run is interrupted inside an iteration at a reproducible point.
type tripCtx struct {
	context.Context
	mu      sync.Mutex
	armed   bool
	left    int
	tripped bool
	done    chan struct{}
}

func newTripCtx() *tripCtx { return &tripCtx{Context: context.Background(), done: make(chan struct{})} }

func (c *tripCtx) Done() <-chan struct{} { return c.done }

func (c *tripCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tripped && c.armed {
		c.left--
		if c.left <= 0 {
			c.tripped = true
			close(c.done)
		}
	}
	if c.tripped {
		return context.Canceled
	}
	return nil
}

func (c *tripCtx) arm(n int) {
	c.mu.Lock()
	c.armed, c.left = true, n
	c.mu.Unlock()
}

// ltCheckInterrupted checks an interrupted run: ErrInterrupted, the resume
// hint, and a loadable checkpoint of the last completed iteration.
func ltCheckInterrupted(t *testing.T, res *RunResult, err error, console, dir string, lastDone int, name string) string {
	t.Helper()
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run returned %v, want an error wrapping ErrInterrupted\n%s", err, console)
	}
	if res == nil || !res.Interrupted || res.LastIter != lastDone {
		t.Fatalf("result %+v, want interrupted after iteration %d", res, lastDone)
	}
	ckpt := filepath.Join(dir, name)
	// The resume hint is said once, by the error (the CLI prints it on
	// stderr); the console names the file the state went to.
	var st *StoppedError
	if !strings.Contains(console, "State saved to "+ckpt+"\n") || !errors.As(err, &st) || st.Resume != ckpt || st.Kind != KindSelectionAware ||
		st.Then != "continue with" || strings.Contains(console, "--resume-from") {
		t.Errorf("want the resume hint naming %s in the error only, and the console naming the file:\nerr: %v\n%s", ckpt, err, console)
	}
	l, lerr := checkpoint.Load(ckpt)
	if lerr != nil {
		t.Fatalf("checkpoint after interrupt: %v", lerr)
	}
	defer l.Free()
	if l.Meta.Iteration != lastDone || !l.HasOptim || l.Meta.Kind != KindSelectionAware {
		t.Errorf("interrupt checkpoint: iteration %d, optimizer %v, kind %s; want iteration %d with optimizer", l.Meta.Iteration, l.HasOptim, l.Meta.Kind, lastDone)
	}
	return ckpt
}

func ltResumeToEnd(t *testing.T, cfg RunConfig, ckpt string, from int) {
	t.Helper()
	var c bytes.Buffer
	cfg.Console, cfg.ResumeFrom, cfg.AfterIteration = &c, ckpt, nil
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("resume after interrupt: %v\n%s", err, c.String())
	}
	var its []int
	for _, r := range res.Iterations {
		its = append(its, r.Iteration)
	}
	var want []int
	for it := from; it <= cfg.NumIterations; it++ {
		want = append(want, it)
	}
	if fmt.Sprint(its) != fmt.Sprint(want) || res.LastIter != cfg.NumIterations {
		t.Errorf("resumed run did iterations %v, want %v", its, want)
	}
	if !ltExists(filepath.Join(cfg.SaveDir, fmt.Sprintf("checkpoint_iter_%d.pt", cfg.NumIterations))) {
		t.Errorf("resumed run wrote no final checkpoint")
	}
}

// TestInterruptBetweenIterations cancels after iteration 2 of 5.
func TestInterruptBetweenIterations(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.CheckpointEvery, cfg.ValEvery = 5, 10, 10
	cfg.EpochsPerIteration = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.AfterIteration = func(it int) {
		if it == 2 {
			cancel()
		}
	}
	res, err := RunSelectionAware(ctx, cfg)
	ckpt := ltCheckInterrupted(t, res, err, console.String(), dir, 2, "checkpoint_iter_2.pt")
	if strings.Contains(console.String(), "Iteration 4/5") {
		t.Errorf("run went on after the interrupt:\n%s", console.String())
	}
	ltResumeToEnd(t, cfg, ckpt, 3)
}

// TestInterruptMidIteration cancels inside iteration 2 (after its scoring,
// during training): the checkpoint is that of iteration 1.
func TestInterruptMidIteration(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.CheckpointEvery, cfg.ValEvery = 3, 10, 10
	ctx := newTripCtx()
	cfg.AfterIteration = func(it int) {
		if it == 1 {
			// Iteration 2 polls once per inference batch (96/32 = 3) and
			// once per training batch (12/8 -> 2 per epoch): the 5th poll
			// is in the middle of training.
			ctx.arm(5)
		}
	}
	res, err := RunSelectionAware(ctx, cfg)
	out := console.String()
	// Partial training state goes to its own file, never over a periodic checkpoint.
	ckpt := ltCheckInterrupted(t, res, err, out, dir, 1, "checkpoint_interrupted_iter_2.pt")
	if !strings.Contains(out, "Iteration 2/3") || strings.Contains(out, "Iteration 3/3") || !strings.Contains(out, "interrupted during training of iteration 2") {
		t.Errorf("console does not show an interrupt inside iteration 2:\n%s", out)
	}
	// It stopped during training: iteration 2 printed no train loss.
	it2 := out[strings.Index(out, "Iteration 2/3"):]
	if !strings.Contains(it2, "Training on top 12") || strings.Contains(it2, "Training loss") {
		t.Errorf("the interrupt did not land in iteration 2's training:\n%s", it2)
	}
	ltResumeToEnd(t, cfg, ckpt, 2)
}

// TestCheckpointDamageRefused: truncated and byte-flipped checkpoints are
// refused with an error that names the file.
func TestCheckpointDamageRefused(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.EpochsPerIteration = 1, 1
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "checkpoint_iter_1.pt")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := checkpoint.Load(good); err != nil {
		t.Fatalf("intact checkpoint: %v", err)
	} else {
		l.Free()
	}

	damaged := map[string][]byte{
		"truncated-half.pt": raw[:len(raw)/2],
		"truncated-tail.pt": raw[:len(raw)-100],
		"empty.pt":          {},
	}
	// Flip one byte inside the stored data of several tensors (zip entries
	// archive/data/N are stored uncompressed).
	for i, off := range ltTensorOffsets(t, raw) {
		b := append([]byte(nil), raw...)
		b[off] ^= 0x5a
		damaged[fmt.Sprintf("flipped-%d.pt", i)] = b
		if i >= 4 {
			break
		}
	}
	if len(damaged) < 5 {
		t.Fatalf("found no tensor data in the checkpoint to damage")
	}
	names := make([]string, 0, len(damaged))
	for n := range damaged {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, damaged[name], 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := checkpoint.Load(p)
		if err == nil {
			l.Free()
			t.Errorf("%s: damaged checkpoint was accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// A run refuses to resume from it too, before training.
	var c bytes.Buffer
	cfg2 := ltConfig(cfg.Data, t.TempDir(), &c)
	cfg2.ResumeFrom = filepath.Join(dir, "flipped-0.pt")
	if _, err := RunSelectionAware(context.Background(), cfg2); err == nil || !strings.Contains(err.Error(), cfg2.ResumeFrom) {
		t.Errorf("resume from a damaged checkpoint: %v", err)
	}
	if strings.Contains(c.String(), "Iteration 1/") {
		t.Errorf("run started despite a damaged checkpoint:\n%s", c.String())
	}
}

// ltTensorOffsets returns a byte offset in the middle of each stored tensor
// of a .pt file (a zip archive whose data/N entries hold the raw storages).
func ltTensorOffsets(t *testing.T, raw []byte) []int64 {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("checkpoint is not a zip archive: %v", err)
	}
	var offs []int64
	for _, f := range zr.File {
		if !strings.Contains(f.Name, "/data/") || f.Method != zip.Store || f.UncompressedSize64 < 8 {
			continue
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off+int64(f.UncompressedSize64/2))
	}
	return offs
}

func TestCheckSaveDir(t *testing.T) {
	defer torch.LockThread()()
	dir := t.TempDir()
	if err := checkpoint.CheckSaveDir(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatalf("creatable dir: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "a", "b", ".satrain-write-test-*")); len(left) != 0 {
		t.Errorf("CheckSaveDir left %v", left)
	}
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "sub")
	err := checkpoint.CheckSaveDir(bad)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "--save-dir "+bad) {
		t.Errorf("save dir under a regular file: %v, want an error naming --save-dir %s", err, bad)
	}
	// A read-only folder (meaningless as root, who may write anyway).
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(ro, 0o755)
		if err := checkpoint.CheckSaveDir(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only save dir: %v", err)
		}
	}
	// A run with such a save dir fails before opening the data.
	var c bytes.Buffer
	cfg := ltConfig(filepath.Join(dir, "no-such.h5"), bad, &c)
	if _, err := RunSelectionAware(context.Background(), cfg); err == nil || !strings.Contains(option.CommandLine(err).Error(), "--save-dir") {
		t.Errorf("run with an unusable save dir: %v", err)
	}
}
