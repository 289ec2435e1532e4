package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"al.essio.dev/pkg/shellescape"
	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

func parseDate(flag, s string) (int32, error) {
	if s == "" {
		return 0, nil
	}
	d, err := backtest.ParseDate(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flag, err)
	}
	return int32(d), nil
}

// flagWorded words the library's typed errors about split dates with the
// flags that set them; other errors pass through.
func flagWorded(err error) error {
	if err == nil {
		return nil
	}
	err = option.CommandLine(err) // the library's settings, named as flags
	var stopped *trainer.StoppedError
	if errors.As(err, &stopped) {
		phrased := fmt.Sprintf("%v: %s; %s: %s", stopped.Err, stopped.Detail, stopped.Then, resumeCommand(stopped.Kind, stopped.Resume, stopped.Extra...))
		return reworded{msg: strings.Replace(err.Error(), stopped.Error(), phrased, 1), err: err}
	}
	var inUse *checkpoint.SaveDirInUseError
	if errors.As(err, &inUse) {
		cmd := ""
		switch inUse.Kind {
		case trainer.KindSelectionAware:
			cmd = "satrain selection-aware"
		case trainer.KindStandard:
			cmd = "satrain train"
		}
		return reworded{msg: strings.Replace(err.Error(), inUse.Error(), inUse.Message(cmd), 1), err: err}
	}
	var hr *loader.HorizonRangeError
	if errors.As(err, &hr) {
		return reworded{msg: strings.Replace(err.Error(), hr.Error(), "--horizon-idx"+strings.TrimPrefix(hr.Error(), "horizon index"), 1), err: err}
	}
	var fit *loader.SplitBeforeFitError
	if errors.As(err, &fit) {
		flag := "--train-end"
		if fit.Option == "val end" {
			flag = "--val-end"
		}
		return fmt.Errorf("%s", strings.Replace(err.Error(), fit.Option+" ", flag+" ", 1))
	}
	var seen *eval.SplitOverlapError
	if errors.As(err, &seen) {
		flag := "--val-end"
		if seen.Split == "val" {
			flag = "--train-end"
		}
		return fmt.Errorf("--split %s: %v (%s %s or later; without --train-end and --val-end eval uses the checkpoint's own split)",
			seen.Split, err, flag, loader.FormatDate(seen.SeenBefore))
	}
	return err
}

// runConfig turns flags into a trainer.RunConfig and validates it before any work.
//
// With --resume-from (not for compare, which starts its own runs) the
// checkpoint is read first and its run's settings fill the flags not given
// (see inheritCheckpoint); its architecture is checked by checkArchitecture.
func runConfig(c *cli.Context, selectionAware bool) (trainer.RunConfig, error) {
	var cfg trainer.RunConfig
	var ckpt *checkpoint.Info
	var resumeWarnings []string
	dataOrigin := dataGiven
	if !c.IsSet("data") {
		dataOrigin = dataDefault
	}
	autoFresh := false
	saveDirGiven := c.IsSet("save-dir")
	if c.String("resume-from") == "auto" && c.Command.Name != "compare" {
		path, err := resolveResumeAuto(c.String("save-dir"))
		if err != nil {
			return cfg, err
		}
		if err := c.Set("resume-from", path); err != nil {
			return cfg, err
		}
		autoFresh = path == ""
	}
	if path := c.String("resume-from"); path != "" && c.Command.Name != "compare" {
		if _, err := os.Stat(path); err != nil {
			return cfg, fmt.Errorf("--resume-from %s: %w", path, err)
		}
		info, err := checkpoint.ReadInfo(path)
		if err != nil {
			return cfg, err
		}
		kind := trainer.KindStandard
		if selectionAware {
			kind = trainer.KindSelectionAware
		}
		warns, inherited, err := inheritCheckpoint(c, info, kind)
		if err != nil {
			return cfg, err
		}
		if inherited["data"] {
			dataOrigin = dataCheckpoint
		}
		if info.Meta.Kind == kind && !saveDirGiven {
			// Continuing a run writes into the checkpoint's own folder,
			// wherever it is started from (older checkpoints record the
			// save dir relative to where their run started).
			if err := c.Set("save-dir", filepath.Dir(path)); err != nil {
				return cfg, err
			}
		}
		if own := c.String("log-selected"); inherited["log-selected"] && own != "" && !info.ContinuesIn(absPath(c.String("save-dir"))) {
			// A resume into another save dir is a new run: the checkpoint's
			// run keeps its selected-set log, this one logs in its own save dir.
			name := filepath.Base(own)
			if name == checkpoint.MetricsLog {
				name = "selected.jsonl"
			}
			if err := c.Set("log-selected", filepath.Join(c.String("save-dir"), name)); err != nil {
				return cfg, err
			}
			warns = append(warns, fmt.Sprintf("--log-selected: the checkpoint's run logs its selected sets to %s; this resume into another --save-dir logs to %s (pass --log-selected to choose)",
				own, absPath(c.String("log-selected"))))
		}
		ckpt, resumeWarnings = &info, warns
	}
	dev, err := torch.ParseDevice(c.String("device"))
	if err != nil {
		return cfg, fmt.Errorf("--device: %w", err)
	}
	mc := model.Config{HiddenDim: c.Int("hidden-dim"), NumLayers: c.Int("num-layers"), NumHeads: c.Int("num-heads"),
		Dropout: c.Float64("dropout"), SeqLen: c.Int("seq-len")}
	if name := c.String("preset"); name != "" {
		p, ok := model.Presets[name]
		if !ok {
			return cfg, fmt.Errorf("--preset %q: want one of %s", name, presetList())
		}
		if !c.IsSet("hidden-dim") {
			mc.HiddenDim = p.HiddenDim
		}
		if !c.IsSet("num-layers") {
			mc.NumLayers = p.NumLayers
		}
		if !c.IsSet("num-heads") {
			mc.NumHeads = p.NumHeads
		}
		if !c.IsSet("seq-len") {
			mc.SeqLen = p.SeqLen
		}
	}
	if ckpt != nil {
		if err := checkArchitecture(c, &mc, *ckpt); err != nil {
			return cfg, err
		}
	}
	te, err := parseDate("--train-end", c.String("train-end"))
	if err != nil {
		return cfg, err
	}
	ve, err := parseDate("--val-end", c.String("val-end"))
	if err != nil {
		return cfg, err
	}
	amp := c.String("amp-dtype")
	if amp != "bf16" && amp != "fp16" {
		return cfg, fmt.Errorf("--amp-dtype %q: want bf16 or fp16", amp)
	}
	if amp == "fp16" && !dev.IsCUDA() {
		return cfg, fmt.Errorf("--amp-dtype fp16 needs --device cuda (CPU mixed precision is bf16)")
	}
	if n := c.Int("max-skipped-steps"); n < 1 {
		return cfg, fmt.Errorf("--max-skipped-steps must be >= 1, got %d", n)
	}
	if err := checkRunValues(c, selectionAware); err != nil {
		return cfg, err
	}
	mode := c.String("loader-mode")
	if mode != "auto" && mode != "preload" && mode != "stream" {
		return cfg, fmt.Errorf("--loader-mode %q: want auto, preload or stream", mode)
	}
	run := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if c.IsSet(name) {
			run[name] = fmt.Sprint(c.Value(name))
			if pathFlags[name] {
				// Recorded absolute, so that a resume from any folder finds it.
				run[name] = absPath(run[name])
			}
		}
	}
	cfg = trainer.RunConfig{
		NewReporters: runReporters,
		Data:         c.String("data"),
		DataOpt:      loader.Options{ValSize: c.Int("val-size"), Seed: c.Int64("seed"), TrainEnd: te, ValEnd: ve, Mode: mode},
		Model:        mc,
		Step: model.StepConfig{LR: c.Float64("lr"), WeightDecay: c.Float64("weight-decay"), MaxGradNorm: c.Float64("max-grad-norm"),
			LabelSmoothing: c.Float64("label-smoothing"), UseAMP: c.Bool("use-amp"), AMPDType: amp, MaxSkips: c.Int("max-skipped-steps")},
		BatchSize: c.Int("batch-size"), InferenceBatch: c.Int("inference-batch-size"),
		SaveDir: c.String("save-dir"), ResumeFrom: c.String("resume-from"),
		Device: dev, Seed: c.Int64("seed"), Threads: c.Int("threads"),
		MetricsAddr: c.String("metrics-addr"), Version: version, Progress: c.Bool("progress"), Console: os.Stdout, Run: run, PhaseHook: phaseHook,
		Overwrite: c.Bool("overwrite"),
	}
	// The default address moves aside for a run that holds it; one given does not.
	cfg.MetricsAnyPort = !c.IsSet("metrics-addr")
	if selectionAware {
		cfg.SampleSize, cfg.TopK, cfg.HorizonIdx = c.Int("sample-size"), c.Int("top-k"), c.Int("horizon-idx")
		cfg.EpochsPerIteration, cfg.NumIterations = c.Int("train-epochs-per-iteration"), c.Int("num-iterations")
		cfg.ValEvery, cfg.CheckpointEvery = c.Int("val-every"), c.Int("checkpoint-every")
		cfg.LogSelected = c.String("log-selected")
		cfg.Strategy = selection.Strategy{SelectBy: c.String("select-by"), NegativeK: c.Int("negative-k"), MixRandom: c.Float64("mix-random"),
			Scope: c.String("select-scope"), TopFrac: c.Float64("top-frac"), Stratify: c.String("stratify"),
			TopKSchedule: c.String("top-k-schedule"), ConfidenceWeight: c.Bool("confidence-weight"),
			ConsistencyBonus: c.Float64("consistency-bonus"), RankBy: c.String("rank-by")}
		if h := cfg.HorizonIdx; h < 0 {
			return cfg, fmt.Errorf("--horizon-idx %d out of range: want an index of the panel's horizons (0=1d 1=5d 2=10d 3=20d in satrain's panels)", h)
		}
	} else {
		cfg.Epochs, cfg.MaxSeqsPerEpoch = c.Int("epochs"), c.Int("max-seqs-per-epoch")
	}
	ckptPath := ""
	if ckpt != nil {
		ckptPath = ckpt.Path
	}
	if err := checkDataFile(cfg.Data, dataOrigin, ckptPath); err != nil {
		return cfg, err
	}
	if cfg.LogSelected != "" && !(filepath.Dir(absPath(cfg.LogSelected)) == absPath(cfg.SaveDir) && !fileExists(cfg.SaveDir)) {
		// A log in a save dir the run has yet to create is checked with it:
		// the run makes the save dir and proves it writable before it opens the log.
		if err := checkWritableFile("--log-selected", cfg.LogSelected); err != nil {
			return cfg, err
		}
	}
	// The run records these paths in its checkpoints (Meta.DataPath, Meta.Run):
	// absolute, they hold from any working directory.
	cfg.Data, cfg.SaveDir, cfg.LogSelected = absPath(cfg.Data), absPath(cfg.SaveDir), absPath(cfg.LogSelected)
	if err := applyGPUFlags(c, &cfg, selectionAware); err != nil {
		return cfg, err
	}
	if autoFresh {
		// Nothing to continue: what an attempt without a checkpoint left goes.
		cfg.Overwrite = true
	}
	if err := cfg.Validate(selectionAware); err != nil {
		return cfg, err
	}
	// Notes, not news: at INFO they would precede a start-up error (the
	// console's data block shows the mixed precision in use).
	for _, w := range resumeWarnings {
		slog.Warn(w)
	}
	// --use-wandb is a shorthand for TensorBoard event files in the save dir
	// (W&B syncs those); --tensorboard names the folder or, empty, turns them off.
	if c.IsSet("tensorboard") {
		cfg.TensorBoard = absPath(c.String("tensorboard"))
	} else if c.Bool("use-wandb") {
		cfg.TensorBoard = filepath.Join(cfg.SaveDir, report.TensorBoardDir)
	}
	cfg.WandbHint = c.Bool("use-wandb") && cfg.TensorBoard != ""
	if cfg.Step.UseAMP && !dev.IsCUDA() {
		slog.Debug("--use-amp on CPU: bf16 autocast (CPU matmuls in bfloat16, losses and weights in float32); --use-amp=false for float32")
	}
	return cfg, nil
}

// checkRunValues refuses the training flags whose value is out of range
// (the trainer or libtorch would replace it with a default, ignore it, or
// fail only once the run has started). The ranges are PyTorch's where it has
// one: AdamW's weight_decay >= 0, cross_entropy's 0 <= label_smoothing <= 1.
func checkRunValues(c *cli.Context, selection bool) error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if x := c.Float64("weight-decay"); !(x >= 0) || !finite(x) {
		return fmt.Errorf("--weight-decay must be a number >= 0, got %g", x)
	}
	if x := c.Float64("max-grad-norm"); !(x >= 0) || !finite(x) {
		return fmt.Errorf("--max-grad-norm must be a number >= 0 (0: no clipping), got %g", x)
	}
	if x := c.Float64("label-smoothing"); !(x >= 0 && x <= 1) {
		return fmt.Errorf("--label-smoothing must be between 0 and 1, got %g", x)
	}
	if n := c.Int("val-size"); n < 1 {
		return fmt.Errorf("--val-size must be >= 1, got %d", n)
	}
	if selection {
		for _, name := range []string{"val-every", "checkpoint-every"} {
			if n := c.Int(name); n < 1 {
				return fmt.Errorf("--%s must be >= 1, got %d", name, n)
			}
		}
	}
	return checkThreads(c.Int("threads"))
}

// checkThreads refuses a negative --threads (0 is libtorch's default) and
// warns when n asks for more threads than the CPUs this process may use
// (the default never does; more threads than cores wait on each other).
func checkThreads(n int) error {
	if n < 0 {
		return fmt.Errorf("--threads must be >= 0 (0: libtorch's default), got %d", n)
	}
	if cpus := torch.AffinityCPUs(); n > cpus {
		slog.Warn(fmt.Sprintf("--threads %d exceeds the %d CPUs available to this process; threads beyond them wait on each other", n, cpus))
	}
	return nil
}

// checkWritableFile proves that the file a run will write at path can be
// created (or, when it exists, opened for writing) before the run starts;
// it leaves no file behind. The error is one line naming the flag and path.
func checkWritableFile(flag, path string) error {
	fail := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s %s is a folder; give a file path", flag, path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fail(err)
		}
		return f.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: no such folder %s", flag, path, filepath.Dir(path))
	}
	if err != nil {
		return fail(err)
	}
	f.Close()
	return os.Remove(path)
}

// pathFlags are the flags naming files or folders that a run records.
var pathFlags = map[string]bool{"data": true, "save-dir": true, "log-selected": true, "tensorboard": true}

// absPath is p made absolute against the working directory ("" stays "";
// p as given where the working directory cannot be read).
func absPath(p string) string {
	if p == "" {
		return p
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func runSelectionAware(c *cli.Context) error {
	cfg, err := runConfig(c, true)
	if err != nil {
		return err
	}
	if cfg.Group, err = joinGroup(c, &cfg); err != nil {
		return err
	}
	defer cfg.Group.Close()
	_, err = trainer.RunSelectionAware(c.Context, cfg)
	return err
}

func runStandard(c *cli.Context) error {
	cfg, err := runConfig(c, false)
	if err != nil {
		return err
	}
	if cfg.Group, err = joinGroup(c, &cfg); err != nil {
		return err
	}
	defer cfg.Group.Close()
	_, err = trainer.RunStandard(c.Context, cfg)
	return err
}

// runDemo is the README's main command: a synthetic panel and a short
// selection-aware run of the tiny model on the CPU.
func runDemo(c *cli.Context) error {
	dir := c.String("dir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := filepath.Join(dir, "synthetic.h5")
	if !fileExists(data) {
		cfg := loader.SynthConfig{Tickers: 50, Days: 1500, Features: 8, Bins: 10, Seed: c.Int64("seed")}
		fmt.Printf("Writing synthetic panel %s (%d tickers x %d days, planted signal in ~15%% of days)\n", data, cfg.Tickers, cfg.Days)
		if err := loader.Synth(data, cfg); err != nil {
			return err
		}
	}
	p := model.Presets["tiny"]
	cfg := trainer.RunConfig{
		NewReporters: runReporters,
		Data:         data,
		DataOpt:      loader.Options{ValSize: 1000, Seed: c.Int64("seed")},
		Model:        model.Config{HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, Dropout: 0.1, SeqLen: p.SeqLen},
		Step:         model.StepConfig{LR: 1e-3, WeightDecay: 0.01, MaxGradNorm: 1.0},
		SampleSize:   2000, TopK: 200, HorizonIdx: 1, EpochsPerIteration: 3, NumIterations: c.Int("num-iterations"),
		BatchSize: 32, InferenceBatch: 256, SaveDir: filepath.Join(dir, "checkpoints"), ValEvery: 5, CheckpointEvery: 10,
		Device: torch.CPU, Seed: c.Int64("seed"), MetricsAddr: c.String("metrics-addr"), Version: version, Progress: true,
		Console:   os.Stdout,
		Overwrite: true, // the demo's folder is its own: `make run` twice starts afresh
	}
	cfg.TensorBoard, cfg.WandbHint = filepath.Join(cfg.SaveDir, report.TensorBoardDir), true // the method's --use-wandb default
	// The demo's settings as selection-aware flags, so that
	// `satrain selection-aware --resume-from DIR/checkpoints/checkpoint_iter_10.pt` continues it.
	cfg.Run = map[string]string{"command": "demo", "data": absPath(data), "val-size": strconv.Itoa(cfg.DataOpt.ValSize),
		"lr": strconv.FormatFloat(cfg.Step.LR, 'g', -1, 64), "use-amp": "false", "device": "cpu",
		"sample-size": strconv.Itoa(cfg.SampleSize), "top-k": strconv.Itoa(cfg.TopK), "horizon-idx": strconv.Itoa(cfg.HorizonIdx),
		"train-epochs-per-iteration": strconv.Itoa(cfg.EpochsPerIteration), "num-iterations": strconv.Itoa(cfg.NumIterations),
		"batch-size": strconv.Itoa(cfg.BatchSize), "inference-batch-size": strconv.Itoa(cfg.InferenceBatch),
		"save-dir": absPath(cfg.SaveDir), "val-every": strconv.Itoa(cfg.ValEvery), "checkpoint-every": strconv.Itoa(cfg.CheckpointEvery),
		"seed": strconv.FormatInt(cfg.Seed, 10), "metrics-addr": cfg.MetricsAddr}
	if err := cfg.Validate(true); err != nil {
		return err
	}
	_, err := trainer.RunSelectionAware(c.Context, cfg)
	return err
}

// reworded is err with the message the command line gives it.
type reworded struct {
	msg string
	err error
}

func (r reworded) Error() string { return r.msg }
func (r reworded) Unwrap() error { return r.err }

// resumeCommand is the command that continues a run of kind from the
// checkpoint at path (every other setting comes from the checkpoint), with
// extra arguments after it, each word quoted for a POSIX shell.
func resumeCommand(kind, path string, extra ...string) string {
	cmd := " selection-aware"
	if kind == trainer.KindStandard {
		cmd = " train"
	}
	out := shellescape.Quote(programName) + cmd + " --resume-from " + shellescape.Quote(path)
	for _, a := range extra {
		out += " " + shellescape.Quote(a)
	}
	return out
}

// programName starts the commands the messages give to paste (resume after
// an interrupt or a stop): the path the binary was run as (main sets it
// from os.Args[0]), so that `build/satrain ...` prints a command that runs
// from the same folder.
var programName = "satrain"
