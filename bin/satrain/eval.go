package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/compare"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

const catEval = "Evaluation"

// evalDataFlags are shared by eval and predict.
func evalDataFlags() []cli.Flag {
	return []cli.Flag{
		stringFlag("checkpoint", "", "satrain checkpoint (.pt) to evaluate (required)", catEval),
		stringFlag("data", "", "HDF5 market panel (default: the file the checkpoint was trained on)", catData),
		stringFlag("split", "test", "train, val or test", catData),
		intFlag("seq-len", 0, "window length (0: the checkpoint's seq_len)", catData),
		stringFlag("train-end", "", "first day of the validation period, YYYYMMDD or YYYY-MM-DD (default: the checkpoint run's --train-end, else the file's)", catData),
		stringFlag("val-end", "", "first day of the test period, YYYYMMDD or YYYY-MM-DD (default: the checkpoint run's --val-end, else the file's)", catData),
		stringFlag("loader-mode", "auto", "auto, preload or stream", catData),
		intFlag("max-dates", 0, "score only the first N trading days of the split (0: all)", catData),
		stringFlag("device", "auto", "auto (cuda when available, else cpu), cpu, cuda or cuda:N", catOther),
		intFlag("inference-batch-size", 256, "inference batch size (halved automatically on out-of-memory)", catOther),
		intFlag("threads", 0, "CPU threads for libtorch's intra-op pool (0: libtorch's default, at most the CPUs this process may use)", catOther),
		boolFlag("progress", true, "progress bar on a terminal", catOther),
	}
}

// backtestFlags are eval's (and compare's) portfolio settings; prefix
// avoids clashing with the training flags of compare.
func backtestFlags(prefix string) []cli.Flag {
	return []cli.Flag{
		intFlag(prefix+"top-k", 10, "names held per date (ignored when --"+prefix+"top-frac is given)", catEval),
		floatFlag(prefix+"top-frac", 0, "fraction of each date's cross-section held instead of a fixed top-k", catEval),
		floatFlag("cost-bps", 10, "trading cost in basis points per unit of turnover", catEval),
		stringFlag("rebalance", backtest.RebalanceNonOverlapping, "non-overlapping or staggered", catEval),
	}
}

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a split with a checkpoint and backtest its top-k: loss, accuracy, IC, portfolio (report.json, equity.png, calibration.png)",
		Flags: append(append(evalDataFlags(),
			func() cli.Flag {
				f := intFlag("horizon-idx", 1, "horizon ranked and held: 0=1d 1=5d 2=10d 3=20d", catEval)
				f.DefaultText = "the --horizon-idx the checkpoint was trained with, else 1"
				return f
			}(),
			stringFlag("out", "", "folder for report.json, equity.png and calibration.png (empty: table only)", catEval),
			stringFlag("rank-by", "expected", "rank each date's names by expected (E[r]) or risk-adjusted ((E[r] - 1) / sd of the predicted return distribution)", catEval),
			distTimeoutFlag(catEval)),
			backtestFlags("")...),
		Action: runEval,
	}
}

func predictCommand() *cli.Command {
	return &cli.Command{
		Name:  "predict",
		Usage: "write expected returns per horizon (and optionally bin probabilities) for every sequence of a split as CSV",
		Flags: append(evalDataFlags(),
			stringFlag("out", "predictions.csv", "output CSV: ticker,date,er_1d,er_5d,...", catEval),
			boolFlag("probs", false, "add the bin probabilities, columns p_<horizon>_b<bin>", catEval)),
		Action: runPredict,
	}
}

func compareCommand() *cli.Command {
	return &cli.Command{
		Name: "compare",
		Usage: "train several arms (standard, selection_aware, two_stage, random, ohem, negative, mix) x seeds at an equal budget " +
			"of sequence-passes, evaluate each on the test split, and summarise (summary.json, convergence.png)",
		Flags:  compareFlags(),
		Action: runCompare,
	}
}

func plotCommand() *cli.Command {
	return &cli.Command{
		Name:  "plot",
		Usage: "draw train/validation loss and expected-return curves from one or more metrics.jsonl (several runs are overlaid)",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "log", Usage: "metrics.jsonl written by a training run (required; repeat --log to overlay runs)",
				Category: catOther, EnvVars: env("log")},
			stringFlag("out", "curves.png", "output PNG", catOther),
		},
		Action: func(c *cli.Context) error {
			logs := c.StringSlice("log")
			if len(logs) == 0 {
				return fmt.Errorf("plot: --log is required")
			}
			if err := backtest.PlotTrainingCurves(logs, c.String("out")); err != nil {
				return err
			}
			fmt.Printf("wrote %s (%d run(s))\n", c.String("out"), len(logs))
			return nil
		},
	}
}

func evalDevice(s string) (torch.Device, error) {
	if s == "auto" {
		if torch.BuiltWithCUDA() && torch.CUDAIsAvailable() {
			return torch.CUDA(0), nil
		}
		return torch.CPU, nil
	}
	d, err := torch.ParseDevice(s)
	if err != nil {
		return d, fmt.Errorf("--device: %w", err)
	}
	return d, torch.CheckDevice(d)
}

// evalOptions reads the shared flags. Data and split boundaries default to
// what the checkpoint was trained with.
func evalOptions(c *cli.Context) (eval.Options, error) {
	var opt eval.Options
	ck := c.String("checkpoint")
	if ck == "" {
		return opt, fmt.Errorf("--checkpoint is required")
	}
	dev, err := evalDevice(c.String("device"))
	if err != nil {
		return opt, err
	}
	mode := c.String("loader-mode")
	if mode != "auto" && mode != "preload" && mode != "stream" {
		return opt, fmt.Errorf("--loader-mode %q: want auto, preload or stream", mode)
	}
	data, trainEnd, valEnd := c.String("data"), c.String("train-end"), c.String("val-end")
	if data != "" {
		if err := checkDataFile(data, dataGiven, ""); err != nil {
			return opt, err
		}
	}
	if data == "" || trainEnd == "" || valEnd == "" {
		l, err := checkpoint.Load(ck)
		if err != nil {
			return opt, err
		}
		meta := l.Meta
		l.Free()
		if data == "" {
			data = meta.DataPath
			if data == "" {
				return opt, fmt.Errorf("--data: the checkpoint does not record its data file; give --data")
			}
		}
		if trainEnd == "" {
			trainEnd = meta.Run["train-end"]
		}
		if valEnd == "" {
			valEnd = meta.Run["val-end"]
		}
	}
	if c.String("data") == "" {
		if err := checkDataFile(data, dataCheckpoint, ck); err != nil {
			return opt, err
		}
	}
	te, err := parseDate("--train-end", trainEnd)
	if err != nil {
		return opt, err
	}
	ve, err := parseDate("--val-end", valEnd)
	if err != nil {
		return opt, err
	}
	if c.Int("seq-len") < 0 {
		return opt, fmt.Errorf("--seq-len must be >= 0, got %d", c.Int("seq-len"))
	}
	if c.Int("inference-batch-size") < 1 {
		return opt, fmt.Errorf("--inference-batch-size must be >= 1, got %d", c.Int("inference-batch-size"))
	}
	if err := checkThreads(c.Int("threads")); err != nil {
		return opt, err
	}
	return eval.Options{Checkpoint: ck, Data: data, Device: dev, InferenceBatch: c.Int("inference-batch-size"),
		Threads: c.Int("threads"),
		DataOpt: loader.Options{SeqLen: c.Int("seq-len"), TrainEnd: te, ValEnd: ve, Mode: mode}}, nil
}

// topKUniverseWarning is one line when --top-k is at or above the names of
// some dates, where the top-k portfolio is then the whole cross-section (the
// universe), or "".
func topKUniverseWarning(bt backtest.Config, dates []backtest.DateRow) string {
	if bt.TopK == 0 {
		return ""
	}
	all, minN := 0, -1
	for _, d := range dates {
		if bt.TopK >= d.N {
			all++
		}
		if minN < 0 || d.N < minN {
			minN = d.N
		}
	}
	if all == 0 {
		return ""
	}
	return fmt.Sprintf("--top-k %d holds every name on %d of %d dates (dates have %d or more names): there the top-k portfolio is the universe",
		bt.TopK, all, len(dates), minN)
}

func backtestConfig(c *cli.Context, prefix string) (backtest.Config, error) {
	cfg := backtest.Config{TopK: c.Int(prefix + "top-k"), CostBps: c.Float64("cost-bps"), Rebalance: c.String("rebalance")}
	if c.IsSet(prefix + "top-frac") {
		cfg.TopK, cfg.TopFrac = 0, c.Float64(prefix+"top-frac")
		if cfg.TopFrac <= 0 || cfg.TopFrac > 1 {
			return cfg, fmt.Errorf("--%stop-frac must be in (0, 1], got %g", prefix, cfg.TopFrac)
		}
	} else if cfg.TopK < 1 {
		return cfg, fmt.Errorf("--%stop-k must be >= 1, got %d", prefix, cfg.TopK)
	}
	if r := cfg.Rebalance; r != backtest.RebalanceNonOverlapping && r != backtest.RebalanceStaggered {
		return cfg, fmt.Errorf("--rebalance %q: want %s or %s", r, backtest.RebalanceNonOverlapping, backtest.RebalanceStaggered)
	}
	if cfg.CostBps < 0 {
		return cfg, fmt.Errorf("--cost-bps must be >= 0, got %g", cfg.CostBps)
	}
	return cfg, nil
}

func runEval(c *cli.Context) error {
	opt, err := evalOptions(c)
	if err != nil {
		return err
	}
	bt, err := backtestConfig(c, "")
	if err != nil {
		return err
	}
	if c.Int("max-dates") < 0 {
		return fmt.Errorf("--max-dates must be >= 0")
	}
	if rb := c.String("rank-by"); rb != selection.RankExpected && rb != selection.RankRiskAdjusted {
		return fmt.Errorf("--rank-by %q: want %s or %s", rb, selection.RankExpected, selection.RankRiskAdjusted)
	}
	out := c.String("out")
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("--out %s: %w", out, err)
		}
	}
	if opt.Group, err = joinGroupOn(c, &opt.Device); err != nil {
		return err
	}
	defer opt.Group.Close()
	// Every rank scores its share; rank 0 prints and writes the outputs.
	rank0 := opt.Group.Rank() == 0
	var closeProgress func()
	opt.Reporter, closeProgress = scoreProgress(c)
	defer closeProgress()
	ev, err := eval.Open(opt)
	if err != nil {
		return err
	}
	defer ev.Close()
	if n := len(ev.DS.Tickers()); bt.TopK > n {
		return fmt.Errorf("--top-k %d exceeds the %d tickers of %s: every date's top-k would be its whole cross-section (the universe); give a smaller --top-k or --top-frac",
			bt.TopK, n, opt.Data)
	}
	h, hFrom := c.Int("horizon-idx"), ""
	if !c.IsSet("horizon-idx") {
		h, hFrom = checkpointHorizon(ev.Meta, h)
	}
	ecfg := eval.Config{Split: c.String("split"), HorizonIdx: h, MaxDates: c.Int("max-dates"), Backtest: bt, RankBy: c.String("rank-by")}
	// Before the Evaluating line, which names the split.
	if err := ev.CheckSplit(ecfg.Split); err != nil {
		return err
	}
	if rank0 {
		fmt.Printf("Evaluating %s (%s, iteration %d, %s) on the %s split of %s, horizon %s%s\n", opt.Checkpoint, ev.Meta.Kind,
			ev.Meta.Iteration, ev.Config.String(), ecfg.Split, opt.Data, horizonLabel(ev.DS, h), hFrom)
		fmt.Printf("Lineage: %s\n", ev.Meta.Lineage())
	}
	res, err := ev.Evaluate(c.Context, ecfg)
	if err != nil {
		return err
	}
	if !rank0 {
		return nil
	}
	if w := topKUniverseWarning(bt, res.Report.Dates); w != "" {
		slog.Warn(w)
	}
	fmt.Printf("Scored %s sequences in %.1fs\n\n", loader.FormatCount(int64(len(res.Predictions))), res.Seconds)
	res.Report.WriteTable(os.Stdout)
	if out == "" {
		return nil
	}
	outputs := []struct {
		name  string
		write func(string) error
	}{{"report.json", res.Report.WriteJSON}, {"equity.png", res.Report.WriteEquityPlot}}
	if len(res.Report.Calibration) > 0 { // none under --rank-by risk-adjusted
		outputs = append(outputs, struct {
			name  string
			write func(string) error
		}{"calibration.png", res.Report.WriteCalibrationPlot})
	}
	var wrote []string
	for _, w := range outputs {
		if err := w.write(filepath.Join(out, w.name)); err != nil {
			return err
		}
		wrote = append(wrote, filepath.Join(out, w.name))
	}
	fmt.Printf("\nwrote %s\n", strings.Join(wrote, ", "))
	return nil
}

// checkpointHorizon is eval's horizon when --horizon-idx is not given: the
// one the checkpoint's selection-aware run ranked on (its recorded
// --horizon-idx, else that flag's default, which it used), with a note for
// the console line saying where it came from. A standard run trains on every
// horizon and ranks on none: def, with no note.
func checkpointHorizon(meta checkpoint.Meta, def int) (int, string) {
	if meta.Kind != trainer.KindSelectionAware {
		return def, ""
	}
	if v, ok := meta.Run["horizon-idx"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n, fmt.Sprintf(" (--horizon-idx %d, the checkpoint's)", n)
		}
	}
	return def, fmt.Sprintf(" (--horizon-idx %d, the checkpoint's)", def)
}

func horizonLabel(ds *loader.Dataset, h int) string {
	hs := ds.Horizons()
	if h < 0 || h >= len(hs) {
		return fmt.Sprintf("index %d", h)
	}
	return model.HorizonName(hs[h])
}

func runPredict(c *cli.Context) error {
	if err := refuseDistributed("predict"); err != nil {
		return err
	}
	opt, err := evalOptions(c)
	if err != nil {
		return err
	}
	var closeProgress func()
	opt.Reporter, closeProgress = scoreProgress(c)
	defer closeProgress()
	ev, err := eval.Open(opt)
	if err != nil {
		return err
	}
	defer ev.Close()
	if err := ev.CheckSplit(c.String("split")); err != nil {
		return err
	}
	ids, err := eval.SplitIDs(ev.DS, c.String("split"), c.Int("max-dates"))
	if err != nil {
		return err
	}
	path := c.String("out")
	start := time.Now()
	var n int
	// Written atomically: a failed run leaves an earlier file at --out intact.
	err = atomicfile.Write(path, 0o644, func(w io.Writer) error {
		var err error
		n, err = ev.WritePredictions(c.Context, ids, w, c.Bool("probs"))
		return err
	})
	if err != nil {
		return fmt.Errorf("predict %s: %w", path, err)
	}
	fmt.Printf("wrote %s: %s rows (%s split) in %.1fs\n", path, loader.FormatCount(int64(n)), c.String("split"), time.Since(start).Seconds())
	return nil
}

// compareFlags are the training flags (less those compare sets per run) plus
// the budget, arms and evaluation settings.
func compareFlags() []cli.Flag {
	hide := map[string]bool{"save-dir": true, "resume-from": true, "val-every": true, "checkpoint-every": true,
		"use-wandb": true, "num-iterations": true, "overwrite": true,
		"log-selected": true,
		// compare's runs report through compare's own reporters: no event files
		"tensorboard": true}
	var flags []cli.Flag
	for _, f := range append(modelFlags(), selectionFlags()...) {
		name := f.Names()[0]
		// Each arm sets its own strategy: every selection extension is hidden,
		// including one added later (by its category).
		if hide[name] || flagCategory(f) == catStrategy {
			// runConfig reads them; keep them out of --help with neutral values.
			switch x := f.(type) {
			case *cli.StringFlag:
				x.Hidden = true
				if name == "metrics-addr" || name == "resume-from" {
					x.Value = ""
				}
			case *cli.IntFlag:
				x.Hidden = true
			case *cli.BoolFlag:
				x.Hidden, x.Value = true, false
			case *cli.Float64Flag:
				x.Hidden = true
			}
		}
		flags = append(flags, f)
	}
	return append(append(flags,
		stringFlag("arms", "standard,selection_aware,two_stage,random", "comma-separated arms: "+strings.Join(compare.Arms, ", "), catEval),
		intFlag("seeds", 3, "seeds per arm (--seed, --seed+1, ...)", catEval),
		&cli.Int64Flag{Name: "budget", Value: 60000, Usage: "sequence-passes trained per run (a sequence trained for 3 epochs counts 3)", Category: catEval, EnvVars: env("budget")},
		stringFlag("out", "compare", "output folder: <arm>/seed<k>/ runs, summary.json, summary.txt, runs.json, convergence.png, val_loss.png", catEval),
		intFlag("curve-points", 5, "checkpoints per run evaluated on the validation split for the convergence curve", catEval),
		intFlag("curve-max-dates", 0, "validation days per curve point (first N days; 0: the whole validation split)", catEval),
		intFlag("max-dates", 0, "test days evaluated (first N days of the test split; 0: all)", catEval),
		intFlag("eval-horizon-idx", -1, "horizon of the test backtest (-1: --horizon-idx)", catEval),
		intFlag("jobs", 1, "runs trained at once, each in a child process (1: one after another, in this process); --jobs x --threads must fit the CPUs", catEval),
		boolFlag("resume", false, "reuse the runs of --out that finished (run.json and report.json) and train the others afresh", catEval),
		func() cli.Flag {
			f := stringFlag(childRunFlag, "", "ARM:SEED: train only this run (how compare --jobs starts its runs)", catEval)
			f.Hidden = true
			return f
		}()),
		backtestFlags("eval-")...)
}

func runCompare(c *cli.Context) error {
	if err := refuseDistributed("compare"); err != nil {
		return err
	}
	jobs, child := c.Int("jobs"), c.String(childRunFlag)
	if jobs < 1 {
		return fmt.Errorf("--jobs must be >= 1, got %d", jobs)
	}
	var launcher childLauncher
	if jobs > 1 && child == "" {
		// The flags as given, before runConfig settles defaults: the child
		// settles them the same way.
		args, err := childArgs(c)
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("compare --jobs: this program's path, to start its runs: %w", err)
		}
		launcher = childLauncher{exe: exe, args: args}
	}
	base, err := runConfig(c, true)
	if err != nil {
		return err
	}
	bt, err := backtestConfig(c, "eval-")
	if err != nil {
		return err
	}
	eh := c.Int("eval-horizon-idx")
	if eh < 0 {
		eh = base.HorizonIdx
	}
	var arms []string
	for _, a := range strings.Split(c.String("arms"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			arms = append(arms, a)
		}
	}
	cfg := compare.Config{Base: base, Arms: arms, Seeds: c.Int("seeds"), Budget: c.Int64("budget"), OutDir: c.String("out"),
		CurvePoints: c.Int("curve-points"), CurveMaxDates: c.Int("curve-max-dates"),
		Eval:   eval.Config{Split: "test", HorizonIdx: eh, MaxDates: c.Int("max-dates"), Backtest: bt},
		Resume: c.Bool("resume")}
	if cfg.Settings, err = studySettings(c); err != nil {
		return err
	}
	if child != "" {
		return runCompareChild(c.Context, cfg, child)
	}
	console := &compareConsole{os.Stdout}
	if cfg.Resume {
		if done, _ := filepath.Glob(filepath.Join(cfg.OutDir, "*", "seed*", "run.json")); len(done) == 0 {
			fmt.Fprintf(console.w, "--resume: %s holds no finished run; every run starts afresh (check --out if you meant another study)\n", cfg.OutDir)
		}
	}
	closeProgress := func() {}
	if jobs > 1 {
		if err := checkJobsThreads(jobs, c.Int("threads"), torch.AffinityCPUs()); err != nil {
			return err
		}
		display := &compareStudyDisplay{console: console, progress: c.Bool("progress")}
		defer display.close()
		cfg.Jobs, cfg.Launch, cfg.OnEvent, closeProgress = jobs, launcher.launch, display.event, display.close
	} else {
		var evalProgress event.Reporter
		evalProgress, closeProgress = scoreProgress(c)
		defer closeProgress()
		cfg.OnEvent, cfg.EvalProgress = console.event, evalProgress
		if c.Bool("progress") {
			cfg.TrainProgress = compareTrainProgress
		}
	}
	start := time.Now()
	res, err := compare.Run(c.Context, cfg)
	if err != nil {
		return err
	}
	if jobs > 1 {
		closeProgress() // the study's display ends above its tables
	}
	console.tables(res)
	closeProgress()
	console.wrote(cfg.OutDir, time.Since(start))
	return nil
}

// scoreProgress is the progress display of evaluation's scoring passes
// under --progress (a bar on a terminal, log lines otherwise), drawn from
// the evaluator's events; closeProgress ends it.
func scoreProgress(c *cli.Context) (r event.Reporter, closeProgress func()) {
	p := &report.PassBars{Enabled: c.Bool("progress")}
	return p, p.Close
}

// flagCategory is the help category of f ("" when it has none).
func flagCategory(f cli.Flag) string {
	if c, ok := f.(cli.CategorizableFlag); ok {
		return c.GetCategory()
	}
	return ""
}
