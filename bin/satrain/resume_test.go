package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// inheritApp runs `selection-aware` or `train` with args and, in place of the
// run, applies the checkpoint record info the way runConfig does; it returns
// the flags' values afterwards, the warnings and the model config.
func inheritApp(t *testing.T, info checkpoint.Info, args ...string) (vals map[string]string, warns []string, mc model.Config, err error) {
	t.Helper()
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	for _, c := range app.Commands {
		selection := c.Name != "train"
		c.Action = func(cc *cli.Context) error {
			kind := trainer.KindStandard
			if selection {
				kind = trainer.KindSelectionAware
			}
			w, _, err := inheritCheckpoint(cc, info, kind)
			if err != nil {
				return err
			}
			warns = w
			mc = model.Config{HiddenDim: cc.Int("hidden-dim"), NumLayers: cc.Int("num-layers"), NumHeads: cc.Int("num-heads"), SeqLen: cc.Int("seq-len")}
			if p, ok := model.Presets[cc.String("preset")]; ok {
				mc = model.Config{HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, SeqLen: p.SeqLen}
			}
			if err := checkArchitecture(cc, &mc, info); err != nil {
				return err
			}
			vals = map[string]string{}
			for _, f := range cc.Command.Flags {
				vals[f.Names()[0]] = fmt.Sprint(cc.Value(f.Names()[0]))
			}
			return nil
		}
	}
	err = runArgs(context.Background(), app, append([]string{"satrain"}, args...))
	return
}

func fakeCheckpoint(kind string) checkpoint.Info {
	return checkpoint.Info{
		Path:   "run/checkpoint_iter_10.pt",
		Config: model.Config{NumFeatures: 4, HiddenDim: 32, NumLayers: 2, NumHeads: 4, NumHorizons: 4, NumBins: 10, Dropout: 0.1, SeqLen: 32},
		Meta: checkpoint.Meta{Kind: kind, Iteration: 10, Seed: 7, DataPath: "panels/sp500.h5",
			Run: map[string]string{"sample-size": "3000", "top-k": "30", "lr": "0.001", "save-dir": "run", "device": "cpu",
				"metrics-addr": "", "train-end": "20150101", "epochs": "4", "use-amp": "false"}},
		HasOptim: true,
	}
}

// TestResumeInheritsSettings: a continued run takes every setting from the
// checkpoint; a given flag that differs is named in one warning line, a
// machine flag silently; the architecture is the checkpoint's.
func TestResumeInheritsSettings(t *testing.T) {
	info := fakeCheckpoint(trainer.KindSelectionAware)
	vals, warns, mc, err := inheritApp(t, info, "selection-aware", "--resume-from", info.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"data": "panels/sp500.h5", "sample-size": "3000", "top-k": "30", "lr": "0.001", "save-dir": "run",
		"device": "cpu", "metrics-addr": "", "train-end": "20150101", "seed": "7", "dropout": "0.1", "use-amp": "false",
		"num-iterations": "100", "batch-size": "32"} // the last two: defaults, as the checkpoint's run had them
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("--%s = %q, want the checkpoint's %q", k, vals[k], v)
		}
	}
	if len(warns) != 0 {
		t.Errorf("warnings without any flag given: %q", warns)
	}
	if mc.HiddenDim != 32 || mc.NumLayers != 2 || mc.NumHeads != 4 || mc.SeqLen != 32 {
		t.Errorf("model %+v, want the checkpoint's 32/2/4/32", mc)
	}

	vals, warns, _, err = inheritApp(t, info, "selection-aware", "--resume-from", info.Path, "--sample-size", "10000",
		"--top-k", "30", "--lr", "1e-3", "--num-iterations", "200", "--device", "cuda", "--batch-size", "32")
	if err != nil {
		t.Fatal(err)
	}
	wantWarns := []string{
		"--sample-size 10000 differs from the checkpoint's 3000; using 10000",
		"--num-iterations 200 differs from the checkpoint's 100; using 200",
	}
	if strings.Join(warns, "\n") != strings.Join(wantWarns, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(wantWarns, "\n"))
	}
	if vals["sample-size"] != "10000" || vals["device"] != "cuda" || vals["top-k"] != "30" {
		t.Errorf("given flags not used: %v", vals)
	}
}

// TestResumeRefusesArchitectureChange: a model flag or preset that differs
// from the checkpoint is refused with the flag and both values named.
func TestResumeRefusesArchitectureChange(t *testing.T) {
	info := fakeCheckpoint(trainer.KindSelectionAware)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--hidden-dim", "64"}, "--hidden-dim 64 differs from the checkpoint's 32: the architecture cannot change when resuming from run/checkpoint_iter_10.pt"},
		{[]string{"--num-heads", "8"}, "--num-heads 8 differs from the checkpoint's 4"},
		{[]string{"--seq-len", "2000"}, "--seq-len 2000 differs from the checkpoint's 32"},
		{[]string{"--preset", "small"}, "--preset small sets --hidden-dim 128, the checkpoint's is 32"},
	} {
		_, _, _, err := inheritApp(t, info, append([]string{"selection-aware", "--resume-from", info.Path}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	// The same values as the checkpoint's are fine.
	if _, _, _, err := inheritApp(t, info, "selection-aware", "--resume-from", info.Path, "--preset", "tiny", "--hidden-dim", "32"); err != nil {
		t.Errorf("matching architecture refused: %v", err)
	}
}

// TestFineTuneTakesOnlyData: a standard checkpoint into selection-aware
// (two-stage) gives the data and split; the training and selection settings
// come from the command line or the defaults, without warnings.
func TestFineTuneTakesOnlyData(t *testing.T) {
	info := fakeCheckpoint(trainer.KindStandard)
	vals, warns, _, err := inheritApp(t, info, "selection-aware", "--resume-from", info.Path, "--lr", "5e-5")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"data": "panels/sp500.h5", "train-end": "20150101", "device": "cpu",
		"sample-size": "10000", "top-k": "100", "lr": "5e-05", "save-dir": "./checkpoints", "seed": "42"} {
		if vals[k] != v {
			t.Errorf("--%s = %q, want %q", k, vals[k], v)
		}
	}
	if len(warns) != 0 {
		t.Errorf("fine-tune warned: %q", warns)
	}
}

// TestResumeFromCheckpointCLI runs the binary: a one-iteration run, then
// `--resume-from` its checkpoint with no --data and no other setting but a
// longer --num-iterations. The continued run uses the first run's data,
// sample size, top-k, device and save dir (the scored total shows the sample
// size), and names the one differing flag in one warning.
func TestResumeFromCheckpointCLI(t *testing.T) {
	dir := t.TempDir()
	save := filepath.Join(dir, "run")
	r := runCLI(t, nil, cliArgs(save, map[string]string{"sample-size": "40", "top-k": "4", "checkpoint-every": "1",
		"train-epochs-per-iteration": "1", "val-every": "1", "use-amp": "false", "threads": "1"})...)
	if r.code != 0 {
		t.Fatalf("first run exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	ckpt := filepath.Join(save, "checkpoint_iter_1.pt")
	// The resumed run starts in another folder, with no flag but these.
	r = runCLI(t, nil, "selection-aware", "--resume-from", ckpt, "--num-iterations", "2")
	if r.code != 0 {
		t.Fatalf("resumed run exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var warns []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "--num-iterations 2 differs from the checkpoint's 1; using 2") {
		t.Errorf("want one warning naming --num-iterations, stderr:\n%s", r.stderr)
	}
	info, err := checkpoint.ReadInfo(filepath.Join(save, "checkpoint_iter_2.pt"))
	if err != nil {
		t.Fatalf("the resumed run wrote no checkpoint_iter_2.pt into the first run's --save-dir: %v", err)
	}
	if info.Meta.DataPath != cliData || info.Meta.Run["sample-size"] != "40" || info.Meta.Run["top-k"] != "4" ||
		info.Meta.Run["num-iterations"] != "2" || info.Config.HiddenDim != model.Presets["tiny"].HiddenDim {
		t.Errorf("resumed run's record: data %s run %v config %+v", info.Meta.DataPath, info.Meta.Run, info.Config)
	}
	// Two iterations of 40 scored sequences in all (the default would score 10,000 an iteration).
	b, err := os.ReadFile(filepath.Join(save, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last struct {
		Iteration int   `json:"iteration"`
		Scored    int64 `json:"sequences_scored_total"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Iteration != 2 || last.Scored != 80 {
		t.Errorf("last metrics record: iteration %d, %d sequences scored; want 2 and 80 (--sample-size 40 from the checkpoint)", last.Iteration, last.Scored)
	}

	// A different architecture is refused before any work.
	r = runCLI(t, nil, "selection-aware", "--resume-from", ckpt, "--hidden-dim", "64", "--save-dir", filepath.Join(dir, "other"))
	checkOneLineError(t, r, "--hidden-dim 64 differs from the checkpoint's 32")
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Errorf("the refused run created its save dir")
	}
}

// runCLIIn runs the binary with dir as its working directory.
func runCLIIn(t *testing.T, dir string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	cmd.Env = cliEnv()
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	res := cliResult{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("satrain %v: %v", args, err)
	}
	return res
}

// TestResumeFromAnotherFolder: a run started in work/ with relative
// --data and --save-dir, resumed from work/runs/ with the checkpoint's
// relative path and no --save-dir, goes on in the checkpoint's own folder
// (it used to write a second folder runs/runs/p1 holding only the new
// iteration); its checkpoints record absolute paths; an old checkpoint whose
// relative data path does not resolve from here is one line naming it.
func TestResumeFromAnotherFolder(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(root, "work")
	if err := os.MkdirAll(filepath.Join(work, "runs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cliData, filepath.Join(root, "sp.h5")); err != nil {
		t.Fatal(err)
	}
	r := runCLIIn(t, work, cliArgs("runs/p1", map[string]string{"data": "../sp.h5", "sample-size": "40", "top-k": "4",
		"checkpoint-every": "1", "train-epochs-per-iteration": "1", "val-every": "1", "use-amp": "false", "threads": "1",
		"num-iterations": "2", "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("first run exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	p1 := filepath.Join(work, "runs", "p1")
	r = runCLIIn(t, filepath.Join(work, "runs"), "selection-aware", "--resume-from", "p1/checkpoint_iter_2.pt", "--num-iterations", "3")
	if r.code != 0 {
		t.Fatalf("resumed run exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(work, "runs", "runs")); err == nil {
		t.Errorf("the resumed run made a second folder runs/runs\n%s", r.stdout)
	}
	b, err := os.ReadFile(filepath.Join(p1, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var its []int
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct {
			Iteration int `json:"iteration"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		its = append(its, rec.Iteration)
	}
	if fmt.Sprint(its) != "[1 2 3]" {
		t.Errorf("%s holds iterations %v, want [1 2 3]", filepath.Join(p1, "metrics.jsonl"), its)
	}
	info, err := checkpoint.ReadInfo(filepath.Join(p1, "checkpoint_iter_3.pt"))
	if err != nil {
		t.Fatalf("no checkpoint_iter_3.pt in the checkpoint's folder: %v", err)
	}
	if info.Meta.DataPath != filepath.Join(root, "sp.h5") || info.Meta.Run["save-dir"] != p1 || info.Meta.Run["data"] != filepath.Join(root, "sp.h5") {
		t.Errorf("recorded data %q, run data %q, save-dir %q; want the absolute %s and %s",
			info.Meta.DataPath, info.Meta.Run["data"], info.Meta.Run["save-dir"], filepath.Join(root, "sp.h5"), p1)
	}

	// An older checkpoint recorded the paths as given ("../sp.h5" from work/):
	// from work/runs/ that names nothing; the error says so in one line.
	old := filepath.Join(root, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	oldCkpt := filepath.Join(old, "checkpoint_iter_3.pt")
	rewriteMeta(t, filepath.Join(p1, "checkpoint_iter_3.pt"), oldCkpt, func(m *checkpoint.Meta) {
		m.DataPath, m.Run["data"], m.Run["save-dir"] = "../sp.h5", "../sp.h5", "runs/p1"
	})
	r = runCLIIn(t, filepath.Join(work, "runs"), "selection-aware", "--resume-from", oldCkpt, "--num-iterations", "4")
	checkOneLineError(t, r, "--data ../sp.h5 (the data file recorded in "+oldCkpt)
	if !strings.Contains(r.stderr, "pass --data") {
		t.Errorf("the error does not suggest --data: %s", r.stderr)
	}
	// With --data it continues in the checkpoint's folder, not in the
	// recorded relative save dir (work/runs/runs/p1 from here).
	r = runCLIIn(t, filepath.Join(work, "runs"), "selection-aware", "--resume-from", oldCkpt, "--num-iterations", "4", "--data", "../../sp.h5")
	if r.code != 0 {
		t.Fatalf("resuming the older checkpoint exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(old, "checkpoint_iter_4.pt")); err != nil {
		t.Errorf("no checkpoint_iter_4.pt beside the resumed checkpoint: %v\n%s", err, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(work, "runs", "runs")); err == nil {
		t.Errorf("resuming the older checkpoint made work/runs/runs\n%s", r.stdout)
	}
}

// rewriteMeta writes the checkpoint at from to to with its record changed by edit.
func rewriteMeta(t *testing.T, from, to string, edit func(*checkpoint.Meta)) {
	t.Helper()
	defer torch.LockThread()()
	l, err := checkpoint.Load(from)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Free()
	m, err := l.NewModel(torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	e, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, l.Centers, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	if err := l.RestoreOptimizer(e); err != nil {
		t.Fatal(err)
	}
	meta := l.Meta
	edit(&meta)
	if err := checkpoint.Save(to, e, meta, true); err != nil {
		t.Fatal(err)
	}
}

// TestResumeIntoAnotherSaveDirCLI follows a user's trial: a run logging its
// selected sets outside its save dir (--log-selected), one of its checkpoints
// copied and resumed with only --resume-from and --save-dir into rr1, then
// into rr2. Each resume used to truncate and append to the first run's log
// (the second dropping the first's rows) under a warning naming the "metrics
// log", and ended without naming a best model. Now the first run's files stay
// byte for byte; each resume logs to its own save dir, says so, and its
// summary names the best model in its save dir. The first run's log given
// explicitly is refused.
func TestResumeIntoAnotherSaveDirCLI(t *testing.T) {
	root := t.TempDir()
	run, sel := filepath.Join(root, "run"), filepath.Join(root, "sel.jsonl")
	r := runCLI(t, nil, cliArgs(run, map[string]string{"sample-size": "40", "top-k": "4", "checkpoint-every": "1", "num-iterations": "3",
		"train-epochs-per-iteration": "1", "val-every": "1", "use-amp": "false", "threads": "1", "log-selected": sel})...)
	if r.code != 0 {
		t.Fatalf("first run exited %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	snapshot := func() map[string]string {
		out := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(run, "*"))
		tb, _ := filepath.Glob(filepath.Join(run, "tensorboard", "*")) // its event files, not the folder
		files = slices.DeleteFunc(append(files, tb...), func(p string) bool { return p == filepath.Join(run, "tensorboard") })
		for _, p := range append(files, sel) {
			out[p] = string(must(os.ReadFile(p)))
		}
		return out
	}
	before := snapshot()
	cp := filepath.Join(root, "copy.pt")
	if err := os.WriteFile(cp, must(os.ReadFile(filepath.Join(run, "checkpoint_iter_1.pt"))), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"rr1", "rr2"} {
		dir := filepath.Join(root, d)
		r = runCLI(t, nil, "selection-aware", "--resume-from", cp, "--save-dir", dir)
		if r.code != 0 {
			t.Fatalf("resume into %s exited %d\n%s\n%s", dir, r.code, r.stdout, r.stderr)
		}
		own := filepath.Join(dir, "sel.jsonl")
		if !strings.Contains(r.stderr, "the checkpoint's run logs its selected sets to "+sel+"; this resume into another --save-dir logs to "+own) ||
			strings.Contains(r.stderr, "dropped the records") {
			t.Errorf("resume into %s: stderr\n%s", dir, r.stderr)
		}
		var its []string
		for _, l := range strings.Split(strings.TrimSpace(string(must(os.ReadFile(own)))), "\n") {
			var rec struct{ Iteration int }
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(rec.Iteration); len(its) == 0 || its[len(its)-1] != s {
				its = append(its, s)
			}
		}
		if fmt.Sprint(its) != "[2 3]" {
			t.Errorf("%s holds iterations %v, want [2 3]", own, its)
		}
		// Its best so far copied in, or a better one found: either way here.
		if best := filepath.Join(dir, "best_model_selection_aware.pt"); !strings.Contains(r.stdout, "\n  Best model: "+best+"\n") {
			t.Errorf("the summary does not name %s:\n%s", best, r.stdout)
		}
	}
	if after := snapshot(); !maps.Equal(before, after) {
		t.Errorf("resuming into other save dirs changed the first run's files (%d files before, %d after)", len(before), len(after))
	}

	rr3 := filepath.Join(root, "rr3")
	r = runCLI(t, nil, "selection-aware", "--resume-from", cp, "--save-dir", rr3, "--log-selected", sel)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if want := "satrain: --log-selected " + sel + " is the selected-set log of the run in " + run; r.code != 1 || !strings.HasPrefix(lines[len(lines)-1], want) || r.stdout != "" {
		t.Errorf("resume into %s with the first run's --log-selected: exit %d, stdout %q, stderr\n%s\nwant the last line to start %q", rr3, r.code, r.stdout, r.stderr, want)
	}
	if _, err := os.Stat(rr3); err == nil {
		t.Errorf("the refused resume left %s", rr3)
	}
	if after := snapshot(); !maps.Equal(before, after) {
		t.Errorf("the refused resume changed the first run's files")
	}
}

// TestResumeSamePathNoWarning (issue 23, item 9): --data and --save-dir given
// relative, or through a link, name the same files as the checkpoint's
// absolute record: no "differs" warning. Another file still warns.
func TestResumeSamePathNoWarning(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("sp500.h5", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("run", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("run", "run-link"); err != nil {
		t.Fatal(err)
	}
	info := fakeCheckpoint(trainer.KindSelectionAware)
	info.Meta.DataPath = filepath.Join(dir, "sp500.h5")
	info.Meta.Run = maps.Clone(info.Meta.Run)
	info.Meta.Run["save-dir"] = filepath.Join(dir, "run")
	for _, args := range [][]string{
		{"--data", "sp500.h5", "--save-dir", "run"},
		{"--data", "./sp500.h5", "--save-dir", "run-link"},
		{"--data", filepath.Join(dir, "sp500.h5"), "--save-dir", "run/"},
	} {
		_, warns, _, err := inheritApp(t, info, append([]string{"selection-aware", "--resume-from", info.Path}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if len(warns) != 0 {
			t.Errorf("%v: warnings for the checkpoint's own files: %q", args, warns)
		}
	}
	_, warns, _, err := inheritApp(t, info, "selection-aware", "--resume-from", info.Path, "--data", "other.h5")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "--data other.h5 differs from the checkpoint's "+filepath.Join(dir, "sp500.h5")) {
		t.Errorf("another data file: warnings %q, want one naming both", warns)
	}
}

// TestResumeCommand: the command a message tells the user to run quotes a
// path the shell would split or expand.
func TestResumeCommand(t *testing.T) {
	for _, c := range []struct{ kind, path, want string }{
		{trainer.KindSelectionAware, "/runs/a-1/checkpoint_iter_14.pt", "satrain selection-aware --resume-from /runs/a-1/checkpoint_iter_14.pt"},
		{trainer.KindStandard, "runs/checkpoint_epoch_2.pt", "satrain train --resume-from runs/checkpoint_epoch_2.pt"},
		{trainer.KindSelectionAware, "/my runs/it's.pt", `satrain selection-aware --resume-from '/my runs/it'"'"'s.pt'`},
	} {
		if got := resumeCommand(c.kind, c.path); got != c.want {
			t.Errorf("resumeCommand(%s, %q) = %s, want %s", c.kind, c.path, got, c.want)
		}
	}
}

// TestStoppedErrorPhrased: the library's StoppedError becomes, on the
// command line, the sentence with the command to paste, and keeps what it
// wraps.
func TestStoppedErrorPhrased(t *testing.T) {
	skips := fmt.Errorf("%w (3 in a row)", model.ErrTooManySkips)
	err := fmt.Errorf("run: %w", &trainer.StoppedError{Err: skips, Detail: "training stopped in epoch 2", Kind: trainer.KindStandard,
		Resume: "/r/checkpoint_last_good.pt", Then: "check the data, then continue with a lower learning rate", Extra: []string{"--lr", "LOWER_LR"}})
	got := flagWorded(err)
	want := "run: too many consecutive non-finite training steps (3 in a row): training stopped in epoch 2; " +
		"check the data, then continue with a lower learning rate: satrain train --resume-from /r/checkpoint_last_good.pt --lr LOWER_LR"
	if got.Error() != want || !errors.Is(got, model.ErrTooManySkips) {
		t.Fatalf("got %q (wraps ErrTooManySkips: %v), want %q", got, errors.Is(got, model.ErrTooManySkips), want)
	}
	stop := &trainer.StoppedError{Err: trainer.ErrInterrupted, Detail: "interrupted during training of iteration 2", Kind: trainer.KindSelectionAware,
		Resume: "/my runs/a.pt", Then: "continue with"}
	if got := flagWorded(stop); got.Error() != "interrupted: interrupted during training of iteration 2; continue with: satrain selection-aware --resume-from '/my runs/a.pt'" ||
		!errors.Is(got, trainer.ErrInterrupted) {
		t.Fatalf("got %q", got)
	}
}
