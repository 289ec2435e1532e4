package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
	"github.com/urfave/cli/v2"
)

// TestTrainRefusesSelectionCadence: train validates and writes a checkpoint
// every epoch, so it has no --val-every or --checkpoint-every: either is a
// usage error (exit 2) saying why, its --help does not list them, and
// selection-aware's still does.
func TestTrainRefusesSelectionCadence(t *testing.T) {
	for _, flag := range []string{"val-every", "checkpoint-every"} {
		args := []string{"train", "--data", cliData, "--device", "cpu", "--metrics-addr", "", "--" + flag, "3"}
		checkUsageLine(t, runCLI(t, nil, args...), args,
			"train: unknown flag --"+flag+": train validates and writes a checkpoint every epoch (--"+flag+" is a selection-aware flag)")
	}
	r := runCLI(t, nil, "train", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--save-dir") {
		t.Fatalf("train --help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, flag := range []string{"--val-every", "--checkpoint-every"} {
		if strings.Contains(r.stdout, flag) {
			t.Errorf("train --help lists %s:\n%s", flag, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "validates and writes checkpoint_epoch_N.pt every epoch") {
		t.Errorf("train --help does not say when it validates and checkpoints:\n%s", r.stdout)
	}
	r = runCLI(t, nil, "selection-aware", "--help")
	for _, flag := range []string{"--val-every value", "--checkpoint-every value"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("selection-aware --help lacks %s", flag)
		}
	}
}

// TestOutOfRangeValuesFailBeforeWork: values the trainer would replace with
// a default (--val-every 0, --val-size 0), ignore (--threads -1) or that
// libtorch refuses only once the run has started (--label-smoothing 2, whose
// range is PyTorch's 0 <= x <= 1) are one line and exit 1 before any work.
func TestOutOfRangeValuesFailBeforeWork(t *testing.T) {
	cases := []struct {
		flag, value, want string
	}{
		{"label-smoothing", "2", "--label-smoothing must be between 0 and 1, got 2"},
		{"label-smoothing", "-0.1", "--label-smoothing must be between 0 and 1, got -0.1"},
		{"label-smoothing", "NaN", "--label-smoothing must be between 0 and 1, got NaN"},
		{"weight-decay", "-1", "--weight-decay must be a number >= 0, got -1"},
		{"max-grad-norm", "-1", "--max-grad-norm must be a number >= 0 (0: no clipping), got -1"},
		{"threads", "-1", "--threads must be >= 0 (0: libtorch's default), got -1"},
		{"val-size", "0", "--val-size must be >= 1, got 0"},
		{"val-every", "0", "--val-every must be >= 1, got 0"},
		{"val-every", "-2", "--val-every must be >= 1, got -2"},
		{"checkpoint-every", "0", "--checkpoint-every must be >= 1, got 0"},
		{"checkpoint-every", "-1", "--checkpoint-every must be >= 1, got -1"},
	}
	for _, c := range cases {
		t.Run(c.flag+"="+c.value, func(t *testing.T) {
			saveDir := filepath.Join(t.TempDir(), "ckpt")
			r := runCLI(t, nil, cliArgs(saveDir, map[string]string{c.flag: c.value})...)
			checkOneLineError(t, r, c.want)
			if r.code != 1 {
				t.Errorf("exit %d, want 1 (a bad value)", r.code)
			}
			if _, err := os.Stat(saveDir); err == nil {
				t.Errorf("the save dir was created: work started before the error")
			}
		})
	}
	// train shares the training flags' checks.
	r := runCLI(t, nil, "train", "--data", cliData, "--device", "cpu", "--metrics-addr", "", "--preset", "tiny", "--label-smoothing", "1.5")
	checkOneLineError(t, r, "--label-smoothing must be between 0 and 1, got 1.5")
	// data inspect's --val-size too (the loader reads 0 as its default, 1000).
	r = runCLI(t, nil, "data", "inspect", cliData, "--val-size", "0")
	checkOneLineError(t, r, "--val-size must be >= 1, got 0")
}

// TestRangeEdgesAccepted: the ends of each range are values, not mistakes:
// label smoothing 0 and 1, weight decay 0, --max-grad-norm 0 (no clipping),
// --threads 0 (libtorch's default); they reach the run's config as given.
func TestRangeEdgesAccepted(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(c cfgView) bool
	}{
		{[]string{"--label-smoothing", "1", "--weight-decay", "0", "--max-grad-norm", "0", "--threads", "0"},
			func(c cfgView) bool { return c.ls == 1 && c.wd == 0 && c.mgn == 0 && c.threads == 0 }},
		{[]string{"--label-smoothing", "0", "--val-every", "1", "--checkpoint-every", "1", "--val-size", "1"},
			func(c cfgView) bool { return c.ls == 0 && c.valEvery == 1 && c.ckptEvery == 1 && c.valSize == 1 }},
	} {
		var got *cfgView
		app := newApp()
		for _, c := range app.Commands {
			if c.Name == "selection-aware" {
				c.Action = func(cc *cli.Context) error {
					cfg, err := runConfig(cc, true)
					got = &cfgView{cfg.Step.LabelSmoothing, cfg.Step.WeightDecay, cfg.Step.MaxGradNorm, cfg.Threads,
						cfg.ValEvery, cfg.CheckpointEvery, cfg.DataOpt.ValSize}
					return err
				}
			}
		}
		args := append([]string{"satrain", "selection-aware", "--data", cliData, "--device", "cpu", "--preset", "tiny"}, tc.args...)
		if err := runArgs(context.Background(), app, args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got == nil || !tc.check(*got) {
			t.Errorf("%v: config %+v", tc.args, got)
		}
	}
}

type cfgView struct {
	ls, wd, mgn                           float64
	threads, valEvery, ckptEvery, valSize int
}

// TestInfoThreadsAboveCPUs: `info --threads N` above the CPUs of the process
// prints the policy and one warning line saying so; a negative count is
// refused.
func TestInfoThreadsAboveCPUs(t *testing.T) {
	n := torch.AffinityCPUs() + 1
	r := runCLI(t, nil, "info", "--threads", fmt.Sprint(n))
	warn := fmt.Sprintf("--threads %d exceeds the %d CPUs available to this process", n, n-1)
	if r.code != 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, warn) {
		t.Errorf("info --threads %d: exit %d, want one warning line %q; stderr:\n%s", n, r.code, warn, r.stderr)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("CPU threads: intra-op %d,", n)) {
		t.Errorf("info --threads %d:\n%s", n, r.stdout)
	}
	r = runCLI(t, nil, "info", "--threads", "1")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("info --threads 1: exit %d, stderr %q", r.code, r.stderr)
	}
	checkOneLineError(t, runCLI(t, nil, "info", "--threads", "-1"), "--threads must be >= 0 (0: libtorch's default), got -1")
}

// TestEmptyMetricsLogIsNoRun: a run that failed (or was killed) before it
// recorded its first iteration leaves an empty metrics.jsonl; it does not
// count as a run: the corrected rerun starts without --overwrite. A log with
// a record still does.
func TestEmptyMetricsLogIsNoRun(t *testing.T) {
	save := filepath.Join(t.TempDir(), "ckpt")
	if err := os.MkdirAll(save, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(save, "metrics.jsonl")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, cliArgs(save, map[string]string{"use-amp": "false", "threads": "1", "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("a save dir with an empty metrics.jsonl: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(log); err != nil || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"iteration":1`) {
		t.Errorf("metrics.jsonl after the run (err %v):\n%s", err, b)
	}
	// A log that holds a record is a run.
	other := filepath.Join(t.TempDir(), "ckpt")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "metrics.jsonl"), []byte(`{"iteration":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, cliArgs(other, nil)...)
	checkOneLineError(t, r, "--save-dir "+other+" already holds a run (metrics.jsonl)")
}

// TestLogSelectedUnwritable: a --log-selected the run cannot write is one
// line naming the flag and the path, exit 1 (a bad path, as --save-dir),
// before any work; the check leaves no file behind.
func TestLogSelectedUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ path, want string }{
		{"/nonexistent/dir/x.jsonl", "--log-selected /nonexistent/dir/x.jsonl: no such folder /nonexistent/dir"},
		{dir, "--log-selected " + dir + " is a folder; give a file path"},
	} {
		saveDir := filepath.Join(dir, "ckpt")
		r := runCLI(t, nil, cliArgs(saveDir, map[string]string{"log-selected": c.path})...)
		checkOneLineError(t, r, c.want)
		if r.code != 1 {
			t.Errorf("--log-selected %s: exit %d, want 1", c.path, r.code)
		}
		if _, err := os.Stat(saveDir); err == nil {
			t.Errorf("--log-selected %s: the save dir was created", c.path)
		}
	}
	// A log in the save dir is checked with the save dir, which the run
	// creates: it need not exist yet.
	saveDir := filepath.Join(dir, "new")
	sel := filepath.Join(saveDir, "sel.jsonl")
	r := runCLI(t, nil, cliArgs(saveDir, map[string]string{"log-selected": sel, "use-amp": "false", "threads": "1", "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("--log-selected in a new save dir: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(sel); err != nil || strings.Count(string(b), "\n") != 5 {
		t.Errorf("--log-selected %s (top-k 5, one iteration): err %v\n%s", sel, err, b)
	}
	// A writable path passes the check without a file left there.
	ok := filepath.Join(dir, "sel.jsonl")
	if err := checkWritableFile("--log-selected", ok); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ok); err == nil {
		t.Errorf("the check left %s", ok)
	}
}

// TestDataSynthRefusesZero: 0 tickers, days, features or bins is refused as
// a negative count is (the loader would take 0 as its default), naming the
// flag and the real minimum (days: what the loader needs for the horizons);
// nothing is written. The "wrote" line reports the shape written.
func TestDataSynthRefusesZero(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "z.h5")
	for _, c := range []struct{ flag, want string }{
		{"tickers", "want at least 1"}, {"days", "want at least 100 (4 x the longest horizon, 20 days, + 20)"},
		{"features", "want at least 3 (regime, driver, ret1)"}, {"bins", "want at least 2"},
	} {
		vals := []string{"0", "-1"}
		if c.flag == "days" {
			vals = append(vals, "99") // the loader's minimum, said by the command line in its own terms
		}
		for _, v := range vals {
			r := runCLI(t, nil, "data", "synth", out, "--"+c.flag, v)
			checkOneLineError(t, r, "data synth: --"+c.flag+" "+v+": "+c.want)
			if _, err := os.Stat(out); err == nil {
				t.Fatalf("--%s %s wrote %s", c.flag, v, out)
			}
		}
	}
	r := runCLI(t, nil, "data", "synth", out, "--signal-fraction", "0")
	checkOneLineError(t, r, "data synth: --signal-fraction 0: want 0 < f < 1")
	r = runCLI(t, nil, "data", "synth", out, "--tickers", "3", "--days", "150", "--features", "3", "--bins", "4")
	if r.code != 0 || r.stdout != "wrote "+out+" (3 tickers x 150 days x 3 features)\n" {
		t.Fatalf("data synth: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	ds, err := loader.Open(out, loader.Options{SeqLen: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if len(ds.Tickers()) != 3 || ds.D != 150 || ds.NumFeatures() != 3 || ds.NumBins() != 4 {
		t.Errorf("wrote %d tickers x %d days x %d features, %d bins", len(ds.Tickers()), ds.D, ds.NumFeatures(), ds.NumBins())
	}
}

// TestMallocEnv: SATRAIN_MALLOC is keep or system, as libsatorch.so compares
// it (case-sensitive); anything else is one line naming the variable, the
// value and the allowed values, exit 2, before anything runs (the shim would
// take it as system, silently).
func TestMallocEnv(t *testing.T) {
	for _, v := range []string{"bogus", "KEEP", "System"} {
		r := runCLI(t, []string{"SATRAIN_MALLOC=" + v}, "info")
		checkUsageLine(t, r, []string{"SATRAIN_MALLOC=" + v},
			fmt.Sprintf("SATRAIN_MALLOC=%q: want keep (freed memory stays in the process, the default) or system (glibc's defaults)", v))
	}
	for _, v := range []string{"keep", "system"} {
		r := runCLI(t, []string{"SATRAIN_MALLOC=" + v}, "info")
		if r.code != 0 || !strings.Contains(r.stdout, "allocator: "+v+"\n") {
			t.Errorf("SATRAIN_MALLOC=%s info: exit %d\n%s%s", v, r.code, r.stdout, r.stderr)
		}
	}
}

// TestEveryFlagReadsTheEnvironment: as the README says, every flag of every
// command can come from SATRAIN_<FLAG>; SATRAIN_SEED reaches data synth's
// and demo's --seed, and the synthetic panel it seeds is --seed's.
func TestEveryFlagReadsTheEnvironment(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimSpace(prefix + " " + c.Name)
			walk(path, c.Subcommands)
			for _, f := range c.Flags {
				name := f.Names()[0]
				ev, ok := f.(interface{ GetEnvVars() []string })
				if name == "help" || !ok {
					continue
				}
				if want := env(name); !reflect.DeepEqual(ev.GetEnvVars(), want) {
					t.Errorf("%s --%s: environment %v, want %v", path, name, ev.GetEnvVars(), want)
				}
			}
		}
	}
	walk("", newApp().Commands)

	t.Setenv("SATRAIN_SEED", "7")
	for _, path := range []string{"data synth x.h5", "demo"} {
		var got map[string]any
		var pos []string
		if err := runArgs(context.Background(), recordingApp(&got, &pos), append([]string{"satrain"}, strings.Fields(path)...)); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got["seed"] != int64(7) {
			t.Errorf("%s under SATRAIN_SEED=7: --seed %v", path, got["seed"])
		}
	}

	dir := t.TempDir()
	edges := func(env []string, name string, args ...string) [][]float32 {
		t.Helper()
		p := filepath.Join(dir, name)
		r := runCLI(t, env, append([]string{"data", "synth", p, "--tickers", "4", "--days", "150", "--features", "3"}, args...)...)
		if r.code != 0 {
			t.Fatalf("data synth: exit %d: %s", r.code, r.stderr)
		}
		ds, err := loader.Open(p, loader.Options{SeqLen: 20})
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		return ds.BinEdges()
	}
	byEnv := edges([]string{"SATRAIN_SEED=7"}, "env.h5")
	if byFlag := edges(nil, "flag.h5", "--seed", "7"); !reflect.DeepEqual(byEnv, byFlag) {
		t.Errorf("SATRAIN_SEED=7 and --seed 7 wrote different panels")
	}
	if byDefault := edges(nil, "default.h5"); reflect.DeepEqual(byEnv, byDefault) {
		t.Errorf("SATRAIN_SEED=7 wrote the panel of the default seed")
	}
}

// TestEvalHorizonFromCheckpoint: without --horizon-idx, eval ranks and holds
// on the horizon the checkpoint's selection-aware run ranked on, and says so;
// a --horizon-idx given wins.
func TestEvalHorizonFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	save := filepath.Join(dir, "run")
	r := runCLI(t, nil, cliArgs(save, map[string]string{"horizon-idx": "2", "checkpoint-every": "1", "use-amp": "false",
		"threads": "1", "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("training exited %d\n%s", r.code, r.stderr)
	}
	ckpt := filepath.Join(save, "checkpoint_iter_1.pt")
	out := filepath.Join(dir, "eval")
	eval := func(extra ...string) (cliResult, backtest.Config) {
		t.Helper()
		args := append([]string{"eval", "--checkpoint", ckpt, "--device", "cpu", "--threads", "1", "--progress=false",
			"--top-k", "4", "--out", out}, extra...)
		r := runCLI(t, nil, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
		rep, err := backtest.ReadReport(filepath.Join(out, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		return r, rep.Config
	}
	first := regexp.MustCompile(`(?m)^Evaluating .*$`)
	r, cfg := eval()
	if line := first.FindString(r.stdout); cfg.HorizonDays != 10 || !strings.HasSuffix(line, ", horizon 10d (--horizon-idx 2, the checkpoint's)") {
		t.Errorf("eval without --horizon-idx: horizon %dd, line %q; want 10d from the checkpoint", cfg.HorizonDays, line)
	}
	r, cfg = eval("--horizon-idx", "0")
	if line := first.FindString(r.stdout); cfg.HorizonDays != 1 || !strings.HasSuffix(line, ", horizon 1d") {
		t.Errorf("eval --horizon-idx 0: horizon %dd, line %q", cfg.HorizonDays, line)
	}
}
