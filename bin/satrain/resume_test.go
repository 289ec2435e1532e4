package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// inheritApp runs `selection-aware` or `train` with args and, in place of the
// run, applies the checkpoint record info the way runConfig does; it returns
// the flags' values afterwards, the warnings and the model config.
func inheritApp(t *testing.T, info trainer.CheckpointInfo, args ...string) (vals map[string]string, warns []string, mc trainer.ModelConfig, err error) {
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
			mc = trainer.ModelConfig{HiddenDim: cc.Int("hidden-dim"), NumLayers: cc.Int("num-layers"), NumHeads: cc.Int("num-heads"), SeqLen: cc.Int("seq-len")}
			if p, ok := trainer.Presets[cc.String("preset")]; ok {
				mc = trainer.ModelConfig{HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, SeqLen: p.SeqLen}
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

func fakeCheckpoint(kind string) trainer.CheckpointInfo {
	return trainer.CheckpointInfo{
		Path:   "run/checkpoint_iter_10.pt",
		Config: trainer.ModelConfig{NumFeatures: 4, HiddenDim: 32, NumLayers: 2, NumHeads: 4, NumHorizons: 4, NumBins: 10, Dropout: 0.1, SeqLen: 32},
		Meta: trainer.Meta{Kind: kind, Iteration: 10, Seed: 7, DataPath: "panels/sp500.h5",
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
	info, err := trainer.ReadCheckpointInfo(filepath.Join(save, "checkpoint_iter_2.pt"))
	if err != nil {
		t.Fatalf("the resumed run wrote no checkpoint_iter_2.pt into the first run's --save-dir: %v", err)
	}
	if info.Meta.DataPath != cliData || info.Meta.Run["sample-size"] != "40" || info.Meta.Run["top-k"] != "4" ||
		info.Meta.Run["num-iterations"] != "2" || info.Config.HiddenDim != trainer.Presets["tiny"].HiddenDim {
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
