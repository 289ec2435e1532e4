package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
)

// TestReadCheckpointInfo: the record a checkpoint was written with (kind,
// iteration, seed, data path, the run's flags, the model shape) reads back,
// and a damaged file is refused with its name.
func TestReadCheckpointInfo(t *testing.T) {
	defer torch.LockThread()()
	cfg := model.Config{NumFeatures: 3, HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: 2, NumBins: 4, Dropout: 0.25, SeqLen: 8}
	m, err := model.New(cfg, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	centers := [][]float32{{0.9, 1, 1.05, 1.1}, {0.8, 1, 1.1, 1.2}}
	eng, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, centers, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	path := filepath.Join(t.TempDir(), "ck.pt")
	run := map[string]string{"sample-size": "3000", "top-k": "30", "lr": "0.001", "save-dir": "runs/a"}
	meta := checkpoint.Meta{Kind: KindSelectionAware, Iteration: 7, BestValLoss: 1.5, BestIteration: 5, Seed: 9, DataPath: "panel.h5", Run: run}
	if err := checkpoint.Save(path, eng, meta, true); err != nil {
		t.Fatal(err)
	}
	info, err := checkpoint.ReadInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != path || info.Meta.Kind != KindSelectionAware || info.Meta.Iteration != 7 || info.Meta.Seed != 9 ||
		info.Meta.DataPath != "panel.h5" || !info.HasOptim {
		t.Errorf("info %+v", info)
	}
	if info.Config != cfg {
		t.Errorf("config %+v, want %+v", info.Config, cfg)
	}
	for k, v := range run {
		if info.Meta.Run[k] != v {
			t.Errorf("Run[%q] = %q, want %q", k, info.Meta.Run[k], v)
		}
	}
	if len(info.Meta.Run) != len(run) {
		t.Errorf("Run %v, want %v", info.Meta.Run, run)
	}

	b, _ := os.ReadFile(path)
	bad := filepath.Join(t.TempDir(), "bad.pt")
	if err := os.WriteFile(bad, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.ReadInfo(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("truncated checkpoint: err %v, want an error naming %s", err, bad)
	}
}

// rsSnapshot reads every file under the given paths (files or folders).
func rsSnapshot(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			out[path] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// rsIterations lists the "iteration" of each line of a JSON-lines file.
func rsIterations(t *testing.T, path string) string {
	t.Helper()
	var its []int
	for _, l := range ltLines(t, path) {
		var r struct{ Iteration int }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(its) == 0 || its[len(its)-1] != r.Iteration {
			its = append(its, r.Iteration)
		}
	}
	return fmt.Sprint(its)
}

// rsCopy copies a file.
func rsCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startProbe calls fn at RunStarted.
type startProbe func(event.RunStarted)

func (p startProbe) Report(e event.Event) {
	if s, ok := e.(event.RunStarted); ok {
		p(s)
	}
}

// TestResumeIntoAnotherSaveDir: a resume into a save dir other than that of
// the run that wrote the checkpoint is a new run from its state. It leaves
// every file of that run alone (it used to truncate and append to the run's
// --log-selected file); its metrics.jsonl and selected-set log hold its own
// iterations; the checkpoint's own selected-set log given explicitly is
// refused; a second resume into the same save dir is refused as any second
// run is. The best model so far is copied into the new save dir and named by
// the summary (no best model was there and none was named); not found, the
// run says so.
func TestResumeIntoAnotherSaveDir(t *testing.T) {
	defer torch.LockThread()()
	logs := hdCaptureLog(t)
	root := t.TempDir()
	orig, sel := filepath.Join(root, "run"), filepath.Join(root, "sel.jsonl")
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), orig, &console)
	cfg.NumIterations, cfg.CheckpointEvery, cfg.ValEvery, cfg.EpochsPerIteration = 3, 1, 1, 1
	cfg.LogSelected = sel
	cfg.Run = map[string]string{"save-dir": orig, "log-selected": sel} // as the CLI records them
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	before := rsSnapshot(t, orig, sel)
	copy1, copy3 := filepath.Join(root, "copy1.pt"), filepath.Join(root, "copy3.pt")
	rsCopy(t, filepath.Join(orig, "checkpoint_iter_1.pt"), copy1)
	rsCopy(t, filepath.Join(orig, "checkpoint_iter_3.pt"), copy3)
	branch := func(from, dir, logSelected string) (RunConfig, *RunResult, error) {
		console.Reset()
		c := cfg
		c.ResumeFrom, c.SaveDir, c.LogSelected = from, dir, logSelected
		c.Run = map[string]string{"save-dir": dir, "log-selected": logSelected}
		res, err := RunSelectionAware(context.Background(), c)
		return c, res, err
	}

	rr1 := filepath.Join(root, "rr1")
	if _, _, err := branch(copy1, rr1, filepath.Join(rr1, "sel.jsonl")); err != nil {
		t.Fatalf("resume into %s: %v\n%s", rr1, err, console.String())
	}
	if its := rsIterations(t, filepath.Join(rr1, "sel.jsonl")); its != "[2 3]" {
		t.Errorf("%s holds iterations %s, want [2 3]", filepath.Join(rr1, "sel.jsonl"), its)
	}
	if its := rsIterations(t, filepath.Join(rr1, "metrics.jsonl")); its != "[2 3]" {
		t.Errorf("%s holds iterations %s, want [2 3]", filepath.Join(rr1, "metrics.jsonl"), its)
	}
	if strings.Contains(logs.String(), "dropped the records") {
		t.Errorf("a resume into a new save dir dropped records:\n%s", logs.String())
	}

	// The checkpoint's run's selected-set log is not this run's to write.
	rr2 := filepath.Join(root, "rr2")
	_, _, err := branch(copy1, rr2, sel)
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "--log-selected "+sel+" is the selected-set log of the run in "+orig) {
		t.Errorf("resume into %s with the first run's --log-selected: %v", rr2, err)
	}
	if ltExists(rr2) {
		t.Errorf("the refused run left %s", rr2)
	}
	// rr1 now holds a run.
	rr1Files := rsSnapshot(t, rr1)
	var inUse *checkpoint.SaveDirInUseError
	if _, _, err := branch(copy1, rr1, filepath.Join(rr1, "sel.jsonl")); !errors.Is(err, checkpoint.ErrSaveDirInUse) || !errors.As(err, &inUse) ||
		inUse.Kind != KindSelectionAware || !strings.HasPrefix(inUse.Newest, filepath.Join(rr1, "checkpoint_iter_")) {
		t.Errorf("a second resume into %s: %v", rr1, err)
	}
	if !maps.Equal(rr1Files, rsSnapshot(t, rr1)) {
		t.Errorf("the refused resume changed %s", rr1)
	}

	// From the last checkpoint, whose best model is the one in orig; the
	// training batches carry a NaN, so the weights and the best stay.
	origBest := filepath.Join(orig, "best_model_selection_aware.pt")
	rr3 := filepath.Join(root, "rr3")
	rr3Best := filepath.Join(rr3, "best_model_selection_aware.pt")
	cfg.NumIterations = 4
	cfg.testFault = func(op string, f []float32, n int) error {
		if op == "train" {
			f[0] = float32(math.NaN())
		}
		return nil
	}
	var atStart event.Start
	cfg.Reporters = []event.Reporter{report.NewConsole(&console, ""), report.NewJSONL(), startProbe(func(e event.RunStarted) {
		atStart = e.Start
		if b, err := os.ReadFile(rr3Best); err != nil || string(b) != before[origBest] {
			t.Errorf("at start %s is not a copy of %s (%v)", rr3Best, origBest, err)
		}
	})}
	info, err := checkpoint.ReadInfo(copy3)
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := branch(copy3, rr3, "")
	if err != nil {
		t.Fatalf("resume into %s: %v\n%s", rr3, err, console.String())
	}
	if atStart.BestPath != rr3Best || atStart.BestCopiedFrom != origBest || res.BestPath != rr3Best || res.BestValLoss != info.Meta.BestValLoss ||
		!strings.Contains(console.String(), fmt.Sprintf("  Best model so far: %s (copied from %s)\n", rr3Best, origBest)) ||
		!strings.Contains(console.String(), "\n  Best model: "+rr3Best+"\n") {
		t.Errorf("start %+v; result best %s %v (checkpoint's %v); console:\n%s", atStart, res.BestPath, res.BestValLoss, info.Meta.BestValLoss, console.String())
	}
	if !maps.Equal(before, rsSnapshot(t, orig, sel)) {
		t.Errorf("resuming into other save dirs changed the files of the run in %s or %s", orig, sel)
	}

	// The best model gone: the run says so, and the summary too.
	if err := os.Remove(origBest); err != nil {
		t.Fatal(err)
	}
	logs.buf.Reset()
	if _, res, err = branch(copy3, filepath.Join(root, "rr4"), ""); err != nil {
		t.Fatal(err)
	}
	if res.BestPath != "" || !strings.Contains(logs.String(), "the best model so far was not found") ||
		!strings.Contains(console.String(), fmt.Sprintf("  Best model: not found (the file of iteration %d was missing when the run resumed)", info.Meta.BestIteration)) {
		t.Errorf("best model missing: result %q; log:\n%s\nconsole:\n%s", res.BestPath, logs.String(), console.String())
	}
}

// TestResumeInPlaceNamesBest: a run resumed in its own save dir that finds
// no better model names the best one from before the resume in its summary
// (it printed no Best model line).
func TestResumeInPlaceNamesBest(t *testing.T) {
	defer torch.LockThread()()
	hdCaptureLog(t) // the skipped steps' warnings
	dir := t.TempDir()
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.CheckpointEvery, cfg.ValEvery, cfg.EpochsPerIteration = 2, 1, 1, 1
	first, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	console.Reset()
	cfg.ResumeFrom, cfg.NumIterations = filepath.Join(dir, "checkpoint_iter_2.pt"), 3
	cfg.testFault = func(op string, f []float32, n int) error {
		if op == "train" {
			f[0] = float32(math.NaN()) // the weights, and so the best, stay
		}
		return nil
	}
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	best := filepath.Join(dir, "best_model_selection_aware.pt")
	if res.BestPath != best || res.BestValLoss != first.BestValLoss || !strings.Contains(console.String(), "\n  Best model: "+best+"\n") ||
		strings.Contains(console.String(), "Best model so far") {
		t.Errorf("best %s %v, first run's %v; console:\n%s", res.BestPath, res.BestValLoss, first.BestValLoss, console.String())
	}
}
