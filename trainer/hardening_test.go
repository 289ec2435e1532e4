package trainer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/torch"
)

// Reliability tests (issue 8): numeric faults, simulated out-of-memory,
// non-finite input rows, full or vanished save dirs. Helpers are prefixed
// "hd" so they do not clash with other test files of the package.

// hdLog captures slog output for the duration of a test.
type hdLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *hdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *hdLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func hdCaptureLog(t *testing.T) *hdLog {
	t.Helper()
	l := &hdLog{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return l
}

// hdEngine builds a tiny CPU model (F=4, H=2, B=5) and its engine.
func hdEngine(t *testing.T, step model.StepConfig, inferBatch int) *model.Engine {
	t.Helper()
	mc := model.Config{NumFeatures: 4, HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: 2, NumBins: 5, Dropout: 0, SeqLen: 8}
	m, err := model.New(mc, torch.CPU, 3)
	if err != nil {
		t.Fatal(err)
	}
	e, err := model.NewEngine(m, step, hdCenters, inferBatch)
	if err != nil {
		m.Free()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Free(); m.Free() })
	return e
}

// hdCenters are hdEngine's bin centers.
var hdCenters = [][]float32{{0.9, 0.95, 1, 1.05, 1.1}, {0.8, 0.9, 1, 1.1, 1.2}}

// hdBatch is n random sequences of length 8 with 4 features, and labels.
func hdBatch(seed int64, n int) ([]float32, []int64) {
	r := rand.New(rand.NewSource(seed))
	f := make([]float32, n*8*4)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	l := make([]int64, n*2)
	for i := range l {
		l[i] = int64(r.Intn(5))
	}
	return f, l
}

func hdParams(t *testing.T, e *model.Engine) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, p := range e.Model.Parameters() {
		v, err := p.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func hdSameParams(a, b [][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

var errSimOOM = &torch.Error{Op: "simulated", Msg: "CUDA out of memory. Tried to allocate 2.00 GiB (simulated by the test)", Kind: torch.KindOutOfMemory}

// TestInferHalvesBatchOnOOM: a device that runs out of memory for batches
// above 8 makes Infer halve 32 -> 16 -> 8, log each halving, report it
// (OnOOM, which drives satrain_inference_batch_size), keep 8 for later calls,
// and return the same results as an unconstrained run.
func TestInferHalvesBatchOnOOM(t *testing.T) {
	defer torch.LockThread()()
	logs := hdCaptureLog(t)
	e := hdEngine(t, model.StepConfig{LR: 1e-3}, 32)
	const n = 40
	feats, labels := hdBatch(1, n)
	want, err := e.Infer(feats, labels, n, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	var sizes, reported []int
	e.Fault = func(op string, f []float32, bs int) error {
		sizes = append(sizes, bs)
		if bs > 8 {
			return errSimOOM
		}
		return nil
	}
	e.OnOOM = func(b int) { reported = append(reported, b) }
	got, err := e.Infer(feats, labels, n, 8, true)
	if err != nil {
		t.Fatalf("Infer with simulated OOM: %v", err)
	}
	if fmt.Sprint(sizes) != "[32 16 8 8 8 8 8]" || fmt.Sprint(reported) != "[16 8]" || e.InferenceBatch != 8 {
		t.Errorf("chunk sizes tried %v, OnOOM %v, batch now %d; want [32 16 8 8 8 8 8], [16 8], 8", sizes, reported, e.InferenceBatch)
	}
	if c := strings.Count(logs.String(), "halved --inference-batch-size"); c != 2 {
		t.Errorf("%d halving log lines, want 2:\n%s", c, logs)
	}
	if !strings.Contains(logs.String(), "new=16") || !strings.Contains(logs.String(), "new=8") {
		t.Errorf("log does not give the new sizes:\n%s", logs)
	}
	// Same results (a sequence's outputs do not depend on its batch; allow
	// float rounding of different GEMM shapes).
	for name, pair := range map[string][2][]float32{"expected": {want.Expected, got.Expected}, "logits": {want.Logits, got.Logits}, "loss": {want.Loss, got.Loss}} {
		a, b := pair[0], pair[1]
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("%s: %d values, want %d", name, len(b), len(a))
		}
		dz := modeltest.LogitBound(e.Model.Cfg, modeltest.MaxAbs32(want.Logits))
		tol := map[string]float64{"logits": dz, "expected": modeltest.ScoreBound(dz, hdCenters), "loss": modeltest.LossBound(dz, e.Model.Cfg.NumBins, float64(modeltest.MaxAbs32(want.Loss)))}[name]
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > tol {
				t.Fatalf("%s[%d]: %v after halving, %v without", name, i, b[i], a[i])
			}
		}
	}
	// The smaller size is kept: the next call starts at 8 and never halves.
	sizes = nil
	if _, err := e.Infer(feats, nil, n, 8, false); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[8 8 8 8 8]" || strings.Count(logs.String(), "halved") != 2 {
		t.Errorf("second call tried %v (want [8 8 8 8 8]) and logged:\n%s", sizes, logs)
	}
	// OOM even at batch 1: a clear error, no loop.
	e.Fault = func(string, []float32, int) error { return errSimOOM }
	_, err = e.Infer(feats, nil, n, 8, false)
	if !torch.IsOutOfMemory(err) || e.InferenceBatch != 1 {
		t.Errorf("OOM at every size: err %v, batch %d; want the OOM error at batch 1", err, e.InferenceBatch)
	}
}

// TestTrainOOMNamesFlag: out of memory in a training step is an error that
// names --batch-size, in TrainStep and at the end of a run.
func TestTrainOOMNamesFlag(t *testing.T) {
	defer torch.LockThread()()
	e := hdEngine(t, model.StepConfig{LR: 1e-3, MaxGradNorm: 1}, 8)
	e.Fault = func(op string, _ []float32, _ int) error {
		if op == "train" {
			return errSimOOM
		}
		return nil
	}
	feats, labels := hdBatch(2, 4)
	before := hdParams(t, e)
	_, err := e.TrainStep(feats, labels, nil, 4, 8)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "lower --batch-size") || !torch.IsOutOfMemory(err) {
		t.Fatalf("TrainStep OOM: %v; want an OOM error naming --batch-size", err)
	}
	if !hdSameParams(before, hdParams(t, e)) {
		t.Errorf("a failed step changed the weights")
	}
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), &console)
	cfg.testFault = e.Fault
	_, err = RunSelectionAware(context.Background(), cfg)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "out of device memory in a training step; lower --batch-size") {
		t.Errorf("run with OOM in training: %v", err)
	}
}

// TestTrainStepSkipsNonFinite: NaN or Inf inputs give a non-finite loss; the
// step is skipped and counted, the weights and optimizer state are untouched,
// a good step resets the run of skips, and MaxSkips in a row is
// model.ErrTooManySkips.
func TestTrainStepSkipsNonFinite(t *testing.T) {
	defer torch.LockThread()()
	logs := hdCaptureLog(t)
	e := hdEngine(t, model.StepConfig{LR: 1e-3, MaxGradNorm: 1, MaxSkips: 3}, 8)
	good, labels := hdBatch(3, 4)
	nan := append([]float32(nil), good...)
	nan[5] = float32(math.NaN())
	inf := append([]float32(nil), good...)
	inf[9] = float32(math.Inf(1))

	step := func(f []float32) (model.StepResult, error) { return e.TrainStep(f, labels, nil, 4, 8) }
	if r, err := step(good); err != nil || r.Skipped || !finiteF(r.Loss) {
		t.Fatalf("good step: %+v %v", r, err)
	}
	before := hdParams(t, e)
	for i, f := range [][]float32{nan, inf} {
		r, err := step(f)
		if err != nil || !r.Skipped {
			t.Fatalf("bad step %d: %+v %v; want skipped without error", i, r, err)
		}
	}
	if e.Skipped != 2 || !hdSameParams(before, hdParams(t, e)) {
		t.Fatalf("after 2 skips: Skipped %d, weights changed %v", e.Skipped, !hdSameParams(before, hdParams(t, e)))
	}
	if r, err := step(good); err != nil || r.Skipped {
		t.Fatalf("good step after skips: %+v %v", r, err)
	}
	// Three in a row stop.
	var err error
	for i := 0; i < 3; i++ {
		_, err = step(nan)
		if i < 2 && err != nil {
			t.Fatalf("skip %d of 3: %v", i+1, err)
		}
	}
	if !errors.Is(err, model.ErrTooManySkips) || e.Skipped != 5 {
		t.Errorf("third consecutive skip: %v (Skipped %d); want model.ErrTooManySkips, 5", err, e.Skipped)
	}
	if c := strings.Count(logs.String(), "skipped training step: non-finite loss"); c != 5 {
		t.Errorf("%d skip log lines, want 5:\n%s", c, logs)
	}
}

func finiteF(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// TestTooManySkipsWritesLastGood: from iteration 2 on every training batch
// carries a NaN. After MaxSkips (3) consecutive skips the run stops with an
// error naming checkpoint_last_good.pt, which holds exactly iteration 1's
// weights (no skipped step touched them); the skips are counted in the
// metric, the log and the checkpoint; resuming from it (data fixed) finishes.
func TestTooManySkipsWritesLastGood(t *testing.T) {
	defer torch.LockThread()()
	logs := hdCaptureLog(t)
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.CheckpointEvery, cfg.ValEvery, cfg.NumIterations = 1, 1, 3
	cfg.Step.MaxSkips = 3
	cfg.MetricsAddr = ltFreeAddr(t)
	poison := false
	cfg.AfterIteration = func(it int) { poison = it >= 1 }
	cfg.testFault = func(op string, f []float32, n int) error {
		if op == "train" && poison {
			f[len(f)/2] = float32(math.NaN())
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := RunSelectionAware(ctx, cfg)
	lastGood := checkpoint.RunDir(dir).LastGood()
	var st *StoppedError
	if !errors.Is(err, model.ErrTooManySkips) || !errors.As(err, &st) || st.Resume != lastGood || st.Kind != KindSelectionAware ||
		!slices.Equal(st.Extra, []string{"--lr", "LOWER_LR"}) {
		t.Fatalf("run returned %v; want model.ErrTooManySkips naming %s\n%s", err, lastGood, console.String())
	}
	if res.LastIter != 1 || !strings.Contains(console.String(), "the last good weights are in "+lastGood) {
		t.Errorf("last iteration %d; console:\n%s", res.LastIter, console.String())
	}
	_, body := runtest.HTTPGet(t, "http://"+cfg.MetricsAddr+"/metrics")
	if v := metricValue(t, body, "satrain_steps_skipped_total"); v != 3 {
		t.Errorf("satrain_steps_skipped_total = %v, want 3", v)
	}
	cancel()
	if c := strings.Count(logs.String(), "skipped training step"); c != 3 {
		t.Errorf("%d skip log lines, want 3", c)
	}
	l, err := checkpoint.Load(lastGood)
	if err != nil {
		t.Fatal(err)
	}
	meta := l.Meta
	l.Free()
	if meta.Iteration != 1 || meta.StepsSkipped != 3 {
		t.Errorf("last-good checkpoint: iteration %d, steps skipped %d; want 1, 3", meta.Iteration, meta.StepsSkipped)
	}
	// Its weights are iteration 1's: same logits, bit for bit.
	ids := res.Iterations[0].sample[:16]
	feats, _ := ltWindows(t, cfg, ids)
	a := ltInferCheckpoint(t, lastGood, feats, len(ids), cfg.Model.SeqLen)
	b := ltInferCheckpoint(t, filepath.Join(dir, "checkpoint_iter_1.pt"), feats, len(ids), cfg.Model.SeqLen)
	for i := range a.Logits {
		if math.Float32bits(a.Logits[i]) != math.Float32bits(b.Logits[i]) {
			t.Fatalf("logit %d: last good %v, iteration 1 %v: the skipped steps changed the weights", i, a.Logits[i], b.Logits[i])
		}
	}
	// Data fixed: resume from it to the end.
	cfg.testFault, cfg.MetricsAddr = nil, ""
	ltResumeToEnd(t, cfg, lastGood, 2)
}

// TestNonFiniteRowsNeverReachModel trains on a panel with NaN, +Inf and -Inf
// feature rows and NaN returns: the loader treats those rows as missing, so
// every batch the model sees (inference and training) is finite and every
// loss is finite.
func TestNonFiniteRowsNeverReachModel(t *testing.T) {
	defer torch.LockThread()()
	p, err := loader.SynthPanel(loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	T, D, F, H := len(p.Tickers), len(p.Dates), len(p.FeatureNames), len(p.Horizons)
	poisoned := 0
	for tk := 0; tk < T; tk++ {
		for day := 0; day < D; day++ {
			var v float32
			switch {
			case day%37 == tk%37:
				v = float32(math.NaN())
			case day%41 == (tk+5)%41:
				v = float32(math.Inf(1))
			case day%43 == (tk+9)%43:
				v = float32(math.Inf(-1))
			case day%47 == (tk+3)%47:
				p.Returns[(tk*D+day)*H+1] = float32(math.NaN())
				continue
			default:
				continue
			}
			p.Features[(tk*D+day)*F+(day%F)] = v
			poisoned++
		}
	}
	data := filepath.Join(t.TempDir(), "poisoned.h5")
	if err := loader.WritePanel(data, p); err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	cfg := ltConfig(data, t.TempDir(), &console)
	calls := map[string]int{}
	var bad []string
	cfg.testFault = func(op string, f []float32, n int) error {
		calls[op]++
		for i, x := range f {
			if !finiteF(float64(x)) {
				bad = append(bad, fmt.Sprintf("%s batch %d: value %d is %v", op, calls[op], i, x))
				break
			}
		}
		return nil
	}
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run on a panel with %d non-finite rows: %v\n%s", poisoned, err, console.String())
	}
	if len(bad) > 0 || calls["train"] == 0 || calls["infer"] == 0 {
		t.Fatalf("non-finite input reached the model (%d train, %d infer batches): %v", calls["train"], calls["infer"], bad)
	}
	for _, r := range res.Iterations {
		if !finiteF(r.TrainLoss) || (r.Validated && !finiteF(r.ValLoss)) || r.SkippedTotal != 0 {
			t.Errorf("iteration %d: train loss %v, val loss %v, skipped %d", r.Iteration, r.TrainLoss, r.ValLoss, r.SkippedTotal)
		}
	}
	t.Logf("%d poisoned rows; %d training and %d inference batches, all finite", poisoned, calls["train"], calls["infer"])
}

// hdCheckFailedSave checks a run that stopped because a save failed: a clear
// error naming the checkpoint and saying the previous one is intact, the
// previous checkpoint still loads, and no temporary file is left behind.
func hdCheckFailedSave(t *testing.T, err error, dir, prevDir string, console string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "checkpoint "+dir) || !strings.Contains(err.Error(), "previous checkpoint left intact") {
		t.Fatalf("run returned %v; want a checkpoint error naming %s\n%s", err, dir, console)
	}
	t.Logf("error: %v", err)
	l, lerr := checkpoint.Load(filepath.Join(prevDir, "checkpoint_iter_1.pt"))
	if lerr != nil {
		t.Fatalf("previous checkpoint after the failed save: %v", lerr)
	}
	if l.Meta.Iteration != 1 {
		t.Errorf("previous checkpoint has iteration %d", l.Meta.Iteration)
	}
	l.Free()
	// The best model (the file the failed save was replacing) is intact too.
	if l, lerr := checkpoint.Load(filepath.Join(prevDir, "best_model_selection_aware.pt")); lerr != nil {
		t.Errorf("best model after the failed save: %v", lerr)
	} else {
		l.Free()
	}
	for _, pat := range checkpoint.TempPatterns {
		if m, _ := filepath.Glob(filepath.Join(prevDir, pat)); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}
}

// TestSaveDirReplacedByFile: the save dir turns into a plain file between
// iterations 1 and 2.
func TestSaveDirReplacedByFile(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	root := t.TempDir()
	dir := filepath.Join(root, "ckpt")
	moved := filepath.Join(root, "ckpt-moved")
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.CheckpointEvery, cfg.ValEvery = 1, 1
	cfg.AfterIteration = func(it int) {
		if it == 1 {
			if err := os.Rename(dir, moved); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(dir, []byte("not a folder\n"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	res, err := RunSelectionAware(context.Background(), cfg)
	hdCheckFailedSave(t, err, dir, moved, console.String())
	// Checkpoints are written in the background: a failed write is reported at the next save or at the end of the iteration.
	if res == nil || res.LastIter < 1 || res.LastIter > 2 {
		t.Errorf("result %+v", res)
	}
}

// TestSaveFailsFileSizeLimit: writes fail with EFBIG (RLIMIT_FSIZE, the
// unprivileged stand-in for a full disk) from iteration 2 on. At start-up the
// same limit is caught by CheckSaveDir.
func TestSaveFailsFileSizeLimit(t *testing.T) {
	defer torch.LockThread()()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	limit := func(n uint64) {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: old.Max}); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	var console bytes.Buffer
	dir := filepath.Join(t.TempDir(), "ckpt")
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.CheckpointEvery, cfg.ValEvery = 1, 1
	cfg.AfterIteration = func(it int) {
		if it == 1 {
			limit(2048) // checkpoints are far larger; metrics.jsonl lines fit
		}
	}
	res, err := RunSelectionAware(context.Background(), cfg)
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	hdCheckFailedSave(t, err, dir, dir, console.String())
	// Checkpoints are written in the background: a failed write is reported at the next save or at the end of the iteration.
	if res == nil || res.LastIter < 1 || res.LastIter > 2 {
		t.Errorf("result %+v", res)
	}
	limit(2048)
	serr := checkpoint.CheckSaveDir(filepath.Join(t.TempDir(), "fresh"))
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if serr == nil || !strings.Contains(serr.Error(), "test write failed") {
		t.Errorf("CheckSaveDir under a 2 KiB file size limit: %v", serr)
	}
}

// hdMount mounts a tmpfs (root only; skips otherwise) and unmounts it at the
// end of the test.
func hdMount(t *testing.T, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the file-size-limit test covers write failures", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// TestSaveFailsDiskFull: the save dir is a 4 MiB tmpfs that a filler file
// fills up after iteration 1 (ENOSPC). A read-only or full save dir is
// refused at start-up.
func TestSaveFailsDiskFull(t *testing.T) {
	defer torch.LockThread()()
	root := t.TempDir()
	dir := filepath.Join(root, "full")
	hdMount(t, dir, "size=4m")
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.CheckpointEvery, cfg.ValEvery = 1, 1
	filler := filepath.Join(dir, "filler")
	cfg.AfterIteration = func(it int) {
		if it != 1 {
			return
		}
		f, err := os.Create(filler)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		chunk := make([]byte, 4096)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("filling the tmpfs: %v", err)
				}
				return
			}
		}
	}
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil && !strings.Contains(err.Error(), "no space left") && !strings.Contains(err.Error(), "disk full") {
		t.Errorf("error does not say the disk is full: %v", err)
	}
	hdCheckFailedSave(t, err, dir, dir, console.String())
	// Checkpoints are written in the background: a failed write is reported at the next save or at the end of the iteration.
	if res == nil || res.LastIter < 1 || res.LastIter > 2 {
		t.Errorf("result %+v", res)
	}
	// Still full: a new run is refused at start-up, before any work.
	var c2 bytes.Buffer
	cfg2 := ltConfig(cfg.Data, dir, &c2)
	if _, err := RunSelectionAware(context.Background(), cfg2); err == nil || !strings.Contains(option.CommandLine(err).Error(), "--save-dir "+dir) {
		t.Errorf("run into a full save dir: %v", err)
	}
	if strings.Contains(c2.String(), "Iteration 1/") {
		t.Errorf("run into a full save dir started:\n%s", c2.String())
	}
	// Read-only (root can write to a 0555 folder, not to a read-only mount).
	ro := filepath.Join(root, "ro")
	hdMount(t, ro, "ro,size=1m")
	if err := checkpoint.CheckSaveDir(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("read-only save dir: %v", err)
	}
}

// TestStaleTempsRemovedAtStart: a partial checkpoint left by a killed save is
// removed (and logged) when the next run starts; real checkpoints stay.
func TestStaleTempsRemovedAtStart(t *testing.T) {
	defer torch.LockThread()()
	logs := hdCaptureLog(t)
	dir := t.TempDir()
	stale := []string{".checkpoint_iter_3.pt.tmp-123456", ".best_model_selection_aware.pt.tmp-99", ".satrain-write-test-42"}
	for _, n := range stale {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("PK\x03\x04partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// (A file of another run, such as checkpoint_iter_2.pt, would make the
	// run refuse the save dir: see TestSaveDirHoldsAnotherRun.)
	keep := []string{"export.pt", "notes.tmp-1", ".hidden"}
	for _, n := range keep {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.EpochsPerIteration = 1, 1
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if ltExists(filepath.Join(dir, n)) {
			t.Errorf("stale %s was not removed", n)
		}
		if !strings.Contains(logs.String(), n) {
			t.Errorf("removal of %s not logged:\n%s", n, logs)
		}
	}
	for _, n := range keep {
		if !ltExists(filepath.Join(dir, n)) {
			t.Errorf("%s was removed", n)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "checkpoint_iter_1.pt"))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("checkpoint mode %v (%v), want 0644", st.Mode().Perm(), err)
	}
}
