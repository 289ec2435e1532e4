package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
)

// Tests of what a run writes and says: the documented console, metrics.jsonl
// with non-finite values, the save-dir rules, iteration 0 and lineage, the
// metrics port (issues 13 and 14).

// ltOpen opens the run's panel with its loader options.
func ltOpen(t *testing.T, cfg RunConfig) *loader.Dataset {
	t.Helper()
	opt := cfg.DataOpt
	opt.SeqLen = cfg.Model.SeqLen
	ds, err := loader.Open(cfg.Data, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// rfLines splits console output into lines (without the final newline).
func rfLines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// rfMatchDocumented checks got against the documented lines want, in order
// and exactly; after the documented lines whose index is in extraAfter,
// extra lines may follow up to the end of their block (a blank line). After
// the last documented line only the final summary may follow.
func rfMatchDocumented(t *testing.T, got, want []string, extraAfter map[int]bool) {
	t.Helper()
	i := 0
	for j, w := range want {
		if i >= len(got) || got[i] != w {
			g := "(end of output)"
			if i < len(got) {
				g = fmt.Sprintf("%q", got[i])
			}
			t.Fatalf("console line %d is %s, the documented line is %q\n%s", i+1, g, w, strings.Join(got, "\n"))
		}
		i++
		if extraAfter[j] {
			for i < len(got) && got[i] != "" {
				i++
			}
		}
	}
	rest := got[i:]
	if len(rest) < 3 || rest[0] != "" || rest[1] != report.Rule || !strings.HasPrefix(rest[2], "Done: ") {
		t.Fatalf("after the last iteration's block: %q, want the final summary", rest)
	}
}

// TestConsoleDocumented compares a selection-aware run's console, line for
// line, with the console documented for the method (issue 14, item 2), filled
// with this run's values; then a standard run's, which follows the same style.
func TestConsoleDocumented(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var console bytes.Buffer
	cfg := ltConfig(data, t.TempDir(), &console)
	cfg.NumIterations = 3 // validates at 2 and 3
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rule := strings.Repeat("=", 80)
	if len(report.Rule) != 80 || report.Rule != rule {
		t.Fatalf("rule %q", report.Rule)
	}
	want := []string{rule, "SELECTION-AWARE TRAINING", rule, "", "Strategy:", "  Sample 96 sequences",
		"  Select top 12 (12.5%) by expected return", "  Train on them for 2 epochs", "  Repeat 3 times"}
	extra := map[int]bool{len(want) - 1: true}
	ds := ltOpen(t, cfg)
	want = append(want, "", "📦 Loading data...", fmt.Sprintf("  Train: %s sequences", loader.FormatCount(ds.Split("train").Len())), "  Val:   48 sequences")
	extra[len(want)-1] = true
	best := math.Inf(1)
	f := report.F4
	for _, r := range res.Iterations {
		want = append(want, "", rule, fmt.Sprintf("Iteration %d/3", r.Iteration), rule, "",
			"  🎲 Sampling 96 sequences and selecting top 12...", "    📊 Expected return stats:",
			"      Mean: "+f(r.ERMean), "      Median: "+f(r.ERMedian), "      Top 12 mean: "+f(r.TopKERMean), "      Top 12 min: "+f(r.TopKERMin),
			"", "  🏋️  Training on top 12 for 2 epochs...", "  ✅ Training loss: "+f(r.TrainLoss))
		if r.Validated {
			want = append(want, "", "  📊 Validating...", "  ✅ Validation loss: "+f(r.ValLoss))
			if r.ValLoss < best {
				best = r.ValLoss
				want = append(want, "  ✅ Saved best model (val_loss: "+f(best)+")")
				extra[len(want)-1] = true
			}
		}
	}
	if len(res.Iterations) != 3 || !res.Iterations[1].Validated {
		t.Fatalf("run did %d iterations", len(res.Iterations))
	}
	rfMatchDocumented(t, rfLines(console.String()), want, extra)

	// Standard training, same style.
	console.Reset()
	cfg = ltConfig(data, t.TempDir(), &console)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 2, 40
	sres, err := RunStandard(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{rule, "STANDARD TRAINING", rule, "", "Strategy:", "  Train on 40 shuffled sequences per epoch (batch 8, loss on all horizons)",
		"  Repeat 2 epochs", "", "📦 Loading data...", fmt.Sprintf("  Train: %s sequences", loader.FormatCount(ds.Split("train").Len())), "  Val:   48 sequences"}
	extra = map[int]bool{len(want) - 1: true}
	best = math.Inf(1)
	for _, r := range sres.Iterations {
		want = append(want, "", rule, fmt.Sprintf("Epoch %d/2", r.Iteration), rule, "",
			"  🏋️  Training on 40 shuffled sequences for 1 epoch...", "  ✅ Training loss: "+f(r.TrainLoss),
			"", "  📊 Validating...", "  ✅ Validation loss: "+f(r.ValLoss))
		if r.ValLoss < best {
			best = r.ValLoss
			want = append(want, "  ✅ Saved best model (val_loss: "+f(best)+")")
			extra[len(want)-1] = true
		}
	}
	rfMatchDocumented(t, rfLines(console.String()), want, extra)
}

// rfRecords reads metrics.jsonl as generic objects.
func rfRecords(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, l := range ltLines(t, filepath.Join(dir, "metrics.jsonl")) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("metrics.jsonl line %d: %v\n%s", i+1, err, l)
		}
		out = append(out, m)
	}
	return out
}

// rfCheckNulls: every null value key is either listed in non_finite or not
// measured in that record (unmeasured), and every listed key is null.
func rfCheckNulls(t *testing.T, recs []map[string]any, unmeasured func(rec map[string]any, key string) bool) (nonFinite int) {
	t.Helper()
	for i, r := range recs {
		nf, ok := r["non_finite"].([]any)
		if !ok {
			t.Fatalf("record %d: non_finite %v, want a list", i+1, r["non_finite"])
		}
		listed := map[string]bool{}
		for _, k := range nf {
			listed[k.(string)] = true
			if r[k.(string)] != nil {
				t.Errorf("record %d lists %s as non-finite but holds %v", i+1, k, r[k.(string)])
			}
		}
		nonFinite += len(nf)
		for _, k := range []string{"train_loss", "val_loss", "er_mean", "er_median", "topk_er_mean", "topk_er_min"} {
			v, present := r[k]
			if !present {
				t.Errorf("record %d lacks %s", i+1, k)
			}
			if v == nil && !listed[k] && !unmeasured(r, k) {
				t.Errorf("record %d: %s is null but was measured and is not listed as non-finite", i+1, k)
			}
			if v != nil && unmeasured(r, k) {
				t.Errorf("record %d: %s = %v where nothing was measured", i+1, k, v)
			}
		}
	}
	return nonFinite
}

// TestNonFiniteRunRecordsEveryIteration: with --lr 1e30 --max-grad-norm 0
// the losses and scores turn NaN. (After one AdamW step the weights are about
// ±lr, so every product of a layer-normalised activation and a weight
// overflows float32 and the attention's softmax sees inf − inf, whatever the
// summation order a kernel picks. With 1e4 the outcome depended on it: inf −
// inf in one GEMM's order, a finite 5e12 loss in another's.) Every iteration is still in metrics.jsonl
// (non-finite values null and listed), the run ends with
// ErrNoFiniteValidation naming the last checkpoint, which is on disk, and no
// best model; the same for standard training, whose records hold null (not
// 0) expected returns.
func TestNonFiniteRunRecordsEveryIteration(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(data, dir, &console)
	cfg.NumIterations, cfg.ValEvery, cfg.CheckpointEvery = 6, 3, 3
	cfg.Step.LR, cfg.Step.MaxGradNorm, cfg.Step.MaxSkips = 1e30, 0, 1<<30
	res, err := RunSelectionAware(context.Background(), cfg)
	last := filepath.Join(dir, "checkpoint_iter_6.pt")
	if !errors.Is(err, ErrNoFiniteValidation) || !strings.Contains(err.Error(), last) {
		t.Fatalf("run returned %v; want ErrNoFiniteValidation naming %s\n%s", err, last, console.String())
	}
	if res == nil || res.LastIter != 6 || !math.IsInf(res.BestValLoss, 1) || ltExists(filepath.Join(dir, "best_model_selection_aware.pt")) {
		t.Fatalf("result %+v", res)
	}
	if l, lerr := checkpoint.Load(last); lerr != nil {
		t.Fatalf("the last checkpoint: %v", lerr)
	} else {
		l.Free()
	}
	recs := rfRecords(t, dir)
	if len(recs) != 6 {
		t.Fatalf("metrics.jsonl holds %d records, want 6", len(recs))
	}
	nf := rfCheckNulls(t, recs, func(r map[string]any, k string) bool {
		return k == "val_loss" && int(r["iteration"].(float64))%3 != 0
	})
	if nf == 0 {
		t.Fatalf("no value was non-finite: the test does not exercise the fault")
	}
	for _, it := range []int{3, 6} {
		if r := recs[it-1]; r["val_loss"] != nil || !strings.Contains(fmt.Sprint(r["non_finite"]), "val_loss") {
			t.Errorf("iteration %d: val_loss %v, non_finite %v", it, r["val_loss"], r["non_finite"])
		}
	}
	if !strings.Contains(console.String(), "⚠️  Validation loss: NaN") || !strings.Contains(console.String(), "Done: 6 iterations, no finite validation loss") {
		t.Errorf("console does not flag the non-finite validation loss:\n%s", console.String())
	}

	// Standard training.
	console.Reset()
	dir = t.TempDir()
	cfg = ltConfig(data, dir, &console)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 2, 64
	cfg.Step.LR, cfg.Step.MaxGradNorm, cfg.Step.MaxSkips = 1e30, 0, 1<<30
	_, err = RunStandard(context.Background(), cfg)
	if !errors.Is(err, ErrNoFiniteValidation) || !strings.Contains(err.Error(), filepath.Join(dir, "checkpoint_epoch_2.pt")) {
		t.Fatalf("standard run returned %v\n%s", err, console.String())
	}
	recs = rfRecords(t, dir)
	if len(recs) != 2 {
		t.Fatalf("standard metrics.jsonl holds %d records, want 2", len(recs))
	}
	rfCheckNulls(t, recs, func(r map[string]any, k string) bool {
		return strings.HasPrefix(k, "er_") || strings.HasPrefix(k, "topk_")
	})
}

// TestGaugesNaNUntilMeasured: no value gauge reads 0 before it is measured:
// validation loss and expected returns read NaN before the first validation
// and scoring, and a standard run never sets the expected-return gauges.
func TestGaugesNaNUntilMeasured(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), &console)
	cfg.NumIterations, cfg.ValEvery = 2, 2
	cfg.MetricsAddr = ltFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := report.NewMetrics("t", "t", false)
	body := rfGather(t, before)
	for _, name := range []string{"satrain_train_loss", "satrain_validation_loss", "satrain_expected_return_mean", "satrain_topk_expected_return_min", "satrain_selected_overlap_ratio"} {
		if v := metricValue(t, body, name); !math.IsNaN(v) {
			t.Errorf("%s = %v before any measurement, want NaN", name, v)
		}
	}
	var first string
	cfg.AfterIteration = func(it int) {
		if it == 1 {
			_, first = runtest.HTTPGet(t, "http://"+cfg.MetricsAddr+"/metrics")
		}
	}
	if _, err := RunSelectionAware(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, first, "satrain_validation_loss"); !math.IsNaN(v) {
		t.Errorf("satrain_validation_loss = %v after iteration 1 (no validation yet), want NaN", v)
	}
	if v := metricValue(t, first, "satrain_train_loss"); math.IsNaN(v) || v <= 0 {
		t.Errorf("satrain_train_loss = %v after iteration 1", v)
	}

	cfg = ltConfig(cfg.Data, t.TempDir(), &console)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 1, 32
	cfg.MetricsAddr = ltFreeAddr(t)
	if _, err := RunStandard(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, body = runtest.HTTPGet(t, "http://"+cfg.MetricsAddr+"/metrics")
	if v := metricValue(t, body, "satrain_expected_return_mean"); !math.IsNaN(v) {
		t.Errorf("standard run: satrain_expected_return_mean = %v, want NaN (nothing scored)", v)
	}
	if v := metricValue(t, body, "satrain_validation_loss"); math.IsNaN(v) {
		t.Errorf("standard run: satrain_validation_loss is NaN after a validated epoch")
	}
}

// rfGather renders a registry in the text exposition format.
func rfGather(t *testing.T, m *report.Metrics) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, body := runtest.HTTPGet(t, "http://"+addr+"/metrics")
	return body
}

// TestStartFromWeightsValidatedFirst: stage 2 of two-stage training
// validates the standard model's weights as iteration 0 and keeps them as
// the best to beat: when fine-tuning only makes things worse (here NaN), the
// best model is still the stage-1 weights, saved at iteration 0. Every
// checkpoint records its lineage (stage, file started from, its checksum).
func TestStartFromWeightsValidatedFirst(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var console bytes.Buffer
	stdDir := t.TempDir()
	cfg := ltConfig(data, stdDir, &console)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 1, 64
	sres, err := RunStandard(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stdBest := filepath.Join(stdDir, "best_model.pt")
	ls, err := checkpoint.Load(stdBest)
	if err != nil {
		t.Fatal(err)
	}
	stdSum, stdMeta := ls.Checksum, ls.Meta
	ls.Free()
	if stdMeta.Stage != checkpoint.StageStandard || stdMeta.StartedFrom != "" || !strings.HasPrefix(stdSum, "sha256:") {
		t.Errorf("standard best model lineage %q from %q, checksum %q", stdMeta.Stage, stdMeta.StartedFrom, stdSum)
	}

	console.Reset()
	dir := t.TempDir()
	cfg = ltConfig(data, dir, &console)
	cfg.ResumeFrom, cfg.NumIterations, cfg.ValEvery = stdBest, 2, 1
	cfg.Step.LR, cfg.Step.MaxGradNorm, cfg.Step.MaxSkips = 1e4, 0, 1<<30
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("stage 2: %v\n%s", err, console.String())
	}
	// The same weights, validation set, batch size and kernels in one
	// process: the same float operations, so the same loss bit for bit.
	if res.StartValLoss == nil || *res.StartValLoss != sres.BestValLoss {
		t.Fatalf("iteration 0 validation loss %v, the standard run's best %v (same weights, same validation set)", res.StartValLoss, sres.BestValLoss)
	}
	if res.BestValLoss != sres.BestValLoss {
		t.Errorf("best validation loss %v, want the starting weights' %v", res.BestValLoss, sres.BestValLoss)
	}
	out := console.String()
	if !strings.Contains(out, "Iteration 0/2 (the starting weights)\n"+report.Rule+"\n\n  📊 Validating...\n  ✅ Validation loss: "+report.F4(sres.BestValLoss)+"\n  ✅ Saved best model") {
		t.Errorf("console does not show iteration 0:\n%s", out)
	}
	best := filepath.Join(dir, "best_model_selection_aware.pt")
	lb, err := checkpoint.Load(best)
	if err != nil {
		t.Fatal(err)
	}
	bm := lb.Meta
	lb.Free()
	if bm.Iteration != 0 || bm.BestIteration != 0 || bm.BestValLoss != sres.BestValLoss {
		t.Errorf("best model: iteration %d, best %v at %d", bm.Iteration, bm.BestValLoss, bm.BestIteration)
	}
	for _, p := range []string{best, filepath.Join(dir, "checkpoint_iter_2.pt")} {
		l, err := checkpoint.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		m := l.Meta
		l.Free()
		if m.Stage != checkpoint.StageTwoStage || m.StartedFrom != stdBest || m.StartedFromChecksum != stdSum {
			t.Errorf("%s lineage: stage %q, from %q (%s); want two-stage from %s (%s)", p, m.Stage, m.StartedFrom, m.StartedFromChecksum, stdBest, stdSum)
		}
		if want := fmt.Sprintf("two-stage, started from %s (%s)", stdBest, stdSum); m.Lineage() != want {
			t.Errorf("Lineage() = %q, want %q", m.Lineage(), want)
		}
	}
	recs := rfRecords(t, dir)
	if len(recs) != 3 || recs[0]["iteration"] != 0.0 || recs[0]["val_loss"] != sres.BestValLoss || recs[0]["train_loss"] != nil {
		t.Errorf("metrics.jsonl records %v; want iteration 0 with the starting validation loss first", recs)
	}

	// Resuming stage 2 keeps its lineage.
	console.Reset()
	cfg.ResumeFrom, cfg.NumIterations = filepath.Join(dir, "checkpoint_iter_2.pt"), 3
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	l, err := checkpoint.Load(filepath.Join(dir, "checkpoint_iter_3.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Meta.Stage != checkpoint.StageTwoStage || l.Meta.StartedFrom != stdBest || l.Meta.StartedFromChecksum != stdSum {
		t.Errorf("resumed run's lineage %q from %q", l.Meta.Stage, l.Meta.StartedFrom)
	}
	l.Free()
	if strings.Contains(console.String(), "Iteration 0/") {
		t.Errorf("a resumed run validated iteration 0 again")
	}
}

// TestSaveDirHoldsAnotherRun: a second run into a save dir is refused with
// a message naming the way out; resuming is allowed and keeps only the
// records up to the checkpoint; --overwrite starts a fresh metrics.jsonl and
// removes the earlier run's checkpoints.
func TestSaveDirHoldsAnotherRun(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(data, dir, &console)
	cfg.NumIterations, cfg.CheckpointEvery, cfg.EpochsPerIteration = 3, 1, 1
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))

	console.Reset()
	_, err := RunSelectionAware(context.Background(), cfg)
	var inUse *checkpoint.SaveDirInUseError
	if !errors.Is(err, checkpoint.ErrSaveDirInUse) || !errors.As(err, &inUse) || inUse.Dir != dir || !strings.Contains(option.CommandLine(err).Error(), "--overwrite") ||
		inUse.Kind != KindSelectionAware || !strings.HasPrefix(inUse.Newest, filepath.Join(dir, "checkpoint_iter_")) {
		t.Fatalf("second run: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl")); !bytes.Equal(before, after) || console.Len() != 0 {
		t.Errorf("the refused run changed metrics.jsonl or printed:\n%s", console.String())
	}
	// Fine-tuning from a checkpoint is a new run too.
	cfg.ResumeFrom = filepath.Join(dir, "best_model_selection_aware.pt")
	if _, err := RunSelectionAware(context.Background(), cfg); !errors.Is(err, checkpoint.ErrSaveDirInUse) {
		t.Errorf("fine-tuning into the same save dir: %v", err)
	}

	// Resume from iteration 1: records 2 and 3 of the first run are dropped.
	cfg.ResumeFrom = filepath.Join(dir, "checkpoint_iter_1.pt")
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	var its []int
	for _, r := range rfRecords(t, dir) {
		its = append(its, int(r["iteration"].(float64)))
	}
	if fmt.Sprint(its) != "[1 2 3]" {
		t.Errorf("metrics.jsonl after resuming from iteration 1 holds iterations %v, want [1 2 3]", its)
	}

	// Overwrite: a fresh run of 1 iteration; nothing of the earlier run is left.
	cfg.ResumeFrom, cfg.Overwrite, cfg.NumIterations = "", true, 1
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if recs := rfRecords(t, dir); len(recs) != 1 {
		t.Errorf("after --overwrite metrics.jsonl holds %d records, want 1", len(recs))
	}
	for _, n := range []string{"checkpoint_iter_2.pt", "checkpoint_iter_3.pt"} {
		if ltExists(filepath.Join(dir, n)) {
			t.Errorf("%s of the overwritten run is still there", n)
		}
	}
}

// TestStartupFailureLeavesNoFolder: a run that fails at start-up (a bad
// data file; a busy metrics port) removes the save dir folders it created,
// prints nothing and says which port to use instead.
func TestStartupFailureLeavesNoFolder(t *testing.T) {
	defer torch.LockThread()()
	root := t.TempDir()
	bad := filepath.Join(root, "bad.h5")
	if err := os.WriteFile(bad, []byte("not hdf5"), 0o644); err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	cfg := ltConfig(bad, filepath.Join(root, "runs", "a", "b"), &console)
	if _, err := RunSelectionAware(context.Background(), cfg); err == nil {
		t.Fatal("a run on a broken data file started")
	}
	if ltExists(filepath.Join(root, "runs")) || console.Len() != 0 {
		t.Errorf("failed start-up left %s (exists %v) or printed %q", filepath.Join(root, "runs"), ltExists(filepath.Join(root, "runs")), console.String())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg = ltConfig(runtest.Panel(t, 11), filepath.Join(root, "runs", "c"), &console)
	cfg.MetricsAddr = ln.Addr().String()
	_, err = RunSelectionAware(context.Background(), cfg)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "--metrics-addr "+cfg.MetricsAddr) || !strings.Contains(option.CommandLine(err).Error(), "in use") ||
		!strings.Contains(err.Error(), "127.0.0.1:0") {
		t.Fatalf("busy port: %v", err)
	}
	if ltExists(filepath.Join(root, "runs")) || console.Len() != 0 {
		t.Errorf("busy port: save dir left behind or console %q", console.String())
	}

	// Port 0: a free port, whose URL the console shows and which serves.
	cfg.MetricsAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var url string
	cfg.NumIterations, cfg.AfterIteration = 1, func(int) {
		for _, l := range rfLines(console.String()) {
			if u, ok := strings.CutPrefix(l, "  Metrics: "); ok {
				url = u
			}
		}
		if code, body := runtest.HTTPGet(t, url); code != 200 || !strings.Contains(body, "satrain_iteration 1") {
			t.Errorf("GET %s: %d\n%s", url, code, body)
		}
	}
	if _, err := RunSelectionAware(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0/metrics") {
		t.Errorf("metrics URL %q", url)
	}
}

// TestResumeArchitectureNamed: the trainer's backstop refuses to resume with
// a different architecture and names each differing flag.
func TestResumeArchitectureNamed(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.EpochsPerIteration = 1, 1
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.ResumeFrom = filepath.Join(dir, "checkpoint_iter_1.pt")
	cfg.Model.HiddenDim, cfg.Model.NumHeads, cfg.NumIterations = 32, 4, 2
	_, err := RunSelectionAware(context.Background(), cfg)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "--hidden-dim 32 (the checkpoint has 16)") ||
		!strings.Contains(option.CommandLine(err).Error(), "--num-heads 4 (the checkpoint has 2)") || strings.Contains(option.CommandLine(err).Error(), "--num-layers") {
		t.Fatalf("resume with another architecture: %v", err)
	}
}

// TestNoReporters: a run given an empty reporter list (a non-zero rank)
// prints nothing and writes no metrics.jsonl, but trains and checkpoints.
func TestNoReporters(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.EpochsPerIteration = 1, 1
	cfg.Reporters = []event.Reporter{}
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if console.Len() != 0 || ltExists(filepath.Join(dir, "metrics.jsonl")) || !ltExists(filepath.Join(dir, "checkpoint_iter_1.pt")) {
		t.Errorf("console %q, metrics.jsonl %v, checkpoint %v", console.String(), ltExists(filepath.Join(dir, "metrics.jsonl")), ltExists(filepath.Join(dir, "checkpoint_iter_1.pt")))
	}
}
