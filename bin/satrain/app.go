package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
	"github.com/urfave/cli/v2"
)

const (
	catData       = "Data"
	catSelection  = "Selection"
	catTraining   = "Training"
	catModel      = "Model"
	catCheckpoint = "Checkpointing"
	catOther      = "Other"
	catStrategy   = "Selection extensions (off by default)"
)

func env(name string) []string {
	return []string{"SATRAIN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

func intFlag(name string, v int, usage, cat string) *cli.IntFlag {
	return &cli.IntFlag{Name: name, Value: v, Usage: usage, Category: cat, EnvVars: env(name)}
}

func floatFlag(name string, v float64, usage, cat string) *cli.Float64Flag {
	return &cli.Float64Flag{Name: name, Value: v, Usage: usage, Category: cat, EnvVars: env(name)}
}

func stringFlag(name, v, usage, cat string) *cli.StringFlag {
	return &cli.StringFlag{Name: name, Value: v, Usage: usage, Category: cat, EnvVars: env(name)}
}

func boolFlag(name string, v bool, usage, cat string) *cli.BoolFlag {
	return &cli.BoolFlag{Name: name, Value: v, Usage: usage, Category: cat, EnvVars: env(name)}
}

// distTimeoutFlag bounds the collectives of a multi-process run (docs/DISTRIBUTED.md).
func distTimeoutFlag(cat string) cli.Flag {
	return &cli.DurationFlag{Name: "dist-timeout", Value: 5 * time.Minute, Category: cat, EnvVars: env("dist-timeout"),
		Usage: "multi-process runs (WORLD_SIZE > 1): how long a collective or the start-up rendezvous waits for a peer before every rank stops"}
}

// modelFlags and trainFlags are shared by selection-aware, train and compare.
func modelFlags() []cli.Flag {
	return []cli.Flag{
		stringFlag("data", "all_complete_dataset.h5", "HDF5 market panel (see docs/FORMAT.md)", catData),
		intFlag("seq-len", 2000, "days per input window", catData),
		intFlag("val-size", 1000, "sequences in the fixed validation set", catData),
		stringFlag("train-end", "", "first day of the validation period, YYYYMMDD or YYYY-MM-DD (default: the file's attribute, else 70% of dates)", catData),
		stringFlag("val-end", "", "first day of the test period, YYYYMMDD or YYYY-MM-DD (default: the file's attribute, else 85% of dates)", catData),
		stringFlag("loader-mode", "auto", "auto, preload (panel in RAM) or stream (HDF5 hyperslab reads)", catData),
		intFlag("hidden-dim", 1024, "transformer width d", catModel),
		intFlag("num-layers", 16, "encoder layers", catModel),
		intFlag("num-heads", 16, "attention heads", catModel),
		floatFlag("dropout", 0.15, "dropout on embeddings, attention output and feed-forward output", catModel),
		stringFlag("preset", "", "named size: "+presetList()+" (sets hidden-dim, num-layers, num-heads, seq-len unless given)", catModel),
		floatFlag("lr", 4e-5, "AdamW learning rate", catTraining),
		floatFlag("weight-decay", 0.01, "AdamW decoupled weight decay (>= 0)", catTraining),
		floatFlag("max-grad-norm", 1.0, "gradient clipping max norm (0: off)", catTraining),
		floatFlag("label-smoothing", 0, "cross-entropy label smoothing, 0 to 1", catTraining),
		intFlag("batch-size", 32, "training batch size", catTraining),
		intFlag("inference-batch-size", 64, "inference batch size (halved automatically on out-of-memory)", catTraining),
		intFlag("max-skipped-steps", 20, "stop (saving the last good weights) after this many consecutive non-finite steps", catTraining),
		stringFlag("save-dir", "./checkpoints", "where checkpoints and metrics.jsonl go", catCheckpoint),
		stringFlag("resume-from", "", "checkpoint to continue (its run's settings are used unless given) or fine-tune from (standard best_model.pt); auto: the newest valid checkpoint in --save-dir, none: start fresh", catCheckpoint),
		boolFlag("overwrite", false, "start afresh in a --save-dir that holds another run's checkpoints and metrics log", catCheckpoint),
		boolFlag("use-amp", true, "mixed precision: bf16 autocast on CUDA (--amp-dtype fp16 adds a GradScaler); bf16 autocast on CPU", catOther),
		stringFlag("amp-dtype", "bf16", "bf16 or fp16 (CUDA only)", catOther),
		boolFlag("use-wandb", true, "shorthand for --tensorboard <save-dir>/tensorboard: TensorBoard event files, which the start-up note says how to sync to W&B from a machine with network access (=false: no event files unless --tensorboard is given)", catOther),
		stringFlag("tensorboard", "", "folder for this run's TensorBoard event files (default: <save-dir>/tensorboard under --use-wandb; empty: none)", catOther),
		stringFlag("device", "cuda", "cuda, cuda:N or cpu", catOther),
		&cli.Int64Flag{Name: "seed", Value: 42, Usage: "seed for initialisation, sampling, shuffling and dropout", Category: catOther, EnvVars: env("seed")},
		intFlag("threads", 0, "CPU threads for libtorch's intra-op pool (0: libtorch's default, at most the CPUs this process may use)", catOther),
		distTimeoutFlag(catOther),
		stringFlag("metrics-addr", report.DefaultMetricsAddr, "Prometheus /metrics listen address (empty: off)", catOther),
		boolFlag("progress", true, "progress bar on a terminal, periodic log lines otherwise", catOther),
	}
}

func selectionFlags() []cli.Flag {
	return []cli.Flag{
		intFlag("sample-size", 10000, "random training sequences scored per iteration", catSelection),
		intFlag("top-k", 100, "sequences with the highest expected return trained on per iteration", catSelection),
		intFlag("horizon-idx", 1, "horizon ranked on: 0=1d 1=5d 2=10d 3=20d", catSelection),
		intFlag("train-epochs-per-iteration", 3, "epochs over the selected sequences per iteration", catTraining),
		intFlag("num-iterations", 100, "selection-aware iterations", catTraining),
		// train validates and writes checkpoint_epoch_N.pt every epoch: these are selection-aware's.
		intFlag("val-every", 5, "validate every N iterations (>= 1)", catCheckpoint),
		intFlag("checkpoint-every", 10, "write checkpoint_iter_N.pt every N iterations (>= 1)", catCheckpoint),
		stringFlag("select-by", "expected", "expected (the method), loss (hard-example mining) or random (control)", catStrategy),
		intFlag("negative-k", 0, "also train on the k lowest expected returns", catStrategy),
		floatFlag("mix-random", 0, "also train on round(FRACTION x top-k) uniformly random sequences", catStrategy),
		stringFlag("select-scope", "global", "global (one ranking over the sample) or per-date (sample whole cross-sections of random end days; keep the top k/days of each day)", catStrategy),
		floatFlag("top-frac", 0, "per-date scope: keep this fraction of each day's names instead of k/days (0: off)", catStrategy),
		stringFlag("stratify", "", "equal sample counts per stratum: sector (needs the file's groups), ticker or date-bucket[:N] (empty: off)", catStrategy),
		stringFlag("top-k-schedule", "", "k per iteration instead of --top-k: linear:A:B or step:K1@I1,K2@I2,... (A, B, K: a count or a % of --sample-size, e.g. linear:1%:5%)", catStrategy),
		boolFlag("confidence-weight", false, "weight each trained sequence's loss by the model's confidence (1 - normalized entropy of its bins on the ranked horizon)", catStrategy),
		floatFlag("consistency-bonus", 0, "weight a selected sequence by 1 + X x its earlier consecutive top-k memberships (0: off)", catStrategy),
		stringFlag("rank-by", "expected", "expected (the method: E[r]) or risk-adjusted ((E[r] - 1) / sd of the predicted return distribution)", catStrategy),
		stringFlag("log-selected", "", "write every iteration's selected sequences (ticker, end date, expected return, rank) to this file as JSON lines (empty: off)", catOther),
	}
}

func presetList() string {
	return strings.Join(model.PresetNames(), ", ")
}

// newApp is the command tree. main runs it through runArgs, which puts flags
// after positional arguments where urfave/cli reads them and turns mistakes
// into one line (args.go).
func newApp() *cli.App {
	app := &cli.App{
		Name:    "satrain",
		Usage:   "selection-aware training of a stock-return transformer (Go + libtorch)",
		Version: version,
		Commands: []*cli.Command{
			{
				Name:   "selection-aware",
				Usage:  "train on the top-k of each iteration's scored random sample (the method)",
				Flags:  append(append(modelFlags(), selectionFlags()...), gpuFlags()...),
				Action: runSelectionAware,
			},
			{
				Name:  "train",
				Usage: "standard training on all training sequences; validates and writes checkpoint_epoch_N.pt every epoch, saves best_model.pt (stage 1 of the two-stage recipe)",
				Flags: append(modelFlags(),
					intFlag("epochs", 10, "epochs over the training sequences", catTraining),
					intFlag("max-seqs-per-epoch", 0, "cap on sequences per epoch (0: all)", catTraining)),
				Action: runStandard,
			},
			{
				Name:   "quickstart",
				Usage:  "the documented quick start: selection-aware training with every default",
				Flags:  append(append(modelFlags(), selectionFlags()...), gpuFlags()...),
				Action: runSelectionAware,
			},
			{
				Name:  "demo",
				Usage: "write a synthetic panel and run a short selection-aware training on the CPU (tiny model)",
				Flags: []cli.Flag{
					stringFlag("dir", "./demo", "folder for the synthetic file and checkpoints", catOther),
					intFlag("num-iterations", 20, "iterations", catOther),
					&cli.Int64Flag{Name: "seed", Value: 42, Usage: "seed", Category: catOther, EnvVars: env("seed")},
					stringFlag("metrics-addr", "", "Prometheus /metrics listen address, e.g. 127.0.0.1:9108 (default: off)", catOther),
				},
				Action: runDemo,
			},
			dataCommand(),
			infoCommand(),
			benchCommand(), benchCascadeCommand(),
			evalCommand(), predictCommand(), compareCommand(), plotCommand(),
		},
	}
	setUsageHandlers(app)
	return app
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "print the libtorch build, CUDA devices, CPU thread pools, allocator policy and model presets",
		Flags: []cli.Flag{stringFlag("data", "", "size the presets for this panel's features, horizons and bins (default: 16 features, 4 horizons x 10 bins)", ""),
			intFlag("threads", 0, "CPU threads to report the policy for (0: libtorch's default, at most the CPUs this process may use)", "")},
		Action: func(c *cli.Context) error {
			fmt.Printf("satrain %s, libtorch %s, built with CUDA: %v, CUDA available: %v (%d devices)\n",
				version, torch.Version(), torch.BuiltWithCUDA(), torch.CUDAIsAvailable(), torch.CUDADeviceCount())
			if err := checkThreads(c.Int("threads")); err != nil {
				return err
			}
			if n := c.Int("threads"); n > 0 {
				if err := torch.SetThreadPolicy(n); err != nil {
					return err
				}
			}
			th := torch.Threads()
			fmt.Printf("CPU threads: intra-op %d, inter-op %d (CPUs available to this process: %d); allocator: %s\n",
				th.IntraOp, th.InterOp, torch.AffinityCPUs(), torch.MallocPolicy())
			alloc := ""
			if torch.MallocPolicy() == "keep" {
				alloc = "; allocator keep: freed memory stays in the process (SATRAIN_MALLOC=system for glibc's defaults)"
			}
			fmt.Printf("  threads: --threads N sets intra-op, which MKL's matmuls use too (default: libtorch's own)%s\n", alloc)
			if th.IntraOp > 1 && os.Getenv("OMP_WAIT_POLICY") == "" {
				fmt.Println("  on a machine shared with other busy processes, OMP_WAIT_POLICY=passive in the environment keeps",
					"idle OpenMP threads from spinning (or use --threads 1; bench/README.md)")
			}
			fmt.Printf("libsatorch: %s\n", torch.ShimPath())
			names := model.PresetNames()
			sort.Strings(names)
			F, H, B, src := 16, 4, 10, ""
			if path := c.String("data"); path != "" {
				ds, err := loader.Open(path, loader.Options{SeqLen: 1, Mode: "stream"})
				if err != nil {
					return err
				}
				F, H, B, src = ds.NumFeatures(), ds.NumHorizons(), ds.NumBins(), path+": "
				ds.Close()
			}
			hint := ""
			if src == "" {
				hint = " (--data FILE counts for a panel's own)"
			}
			fmt.Printf("model presets, parameter counts for %s%d features, %d horizons x %d bins%s:\n", src, F, H, B, hint)
			for _, n := range model.PresetNames() {
				p := model.Presets[n]
				mc := model.Config{NumFeatures: F, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, NumHorizons: H, NumBins: B, SeqLen: p.SeqLen}
				fmt.Printf("  preset %-8s d=%-5d layers=%-3d heads=%-3d seq_len=%-5d %9s parameters: %s\n",
					n, p.HiddenDim, p.NumLayers, p.NumHeads, p.SeqLen, model.FormatParams(mc.NumParams()), p.Description)
			}
			return nil
		},
	}
}

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "make, import and inspect HDF5 market panels",
		Subcommands: []*cli.Command{
			{
				Name:      "synth",
				Usage:     "write a synthetic panel with a planted signal in a minority of sequences",
				ArgsUsage: "OUT.h5",
				Flags: []cli.Flag{
					intFlag("tickers", 50, "tickers", ""), intFlag("days", 1500, "trading days", ""),
					intFlag("features", 8, "features per day (>= 3)", ""), intFlag("bins", 10, "return bins per horizon", ""),
					&cli.Int64Flag{Name: "seed", Value: 42, Usage: "seed", EnvVars: env("seed")},
					floatFlag("signal-fraction", 0.15, "share of (ticker, day) in the predictable regime", ""),
				},
				Action: func(c *cli.Context) error {
					out, err := onePath(c, "data synth", "OUT.h5")
					if err != nil {
						return err
					}
					if out == "" {
						return fmt.Errorf("data synth: give the output path, e.g. satrain data synth panel.h5")
					}
					// The loader takes 0 as "the default": refuse it here, so the
					// file has the shape asked for and the line below reports it.
					for _, f := range []struct {
						name string
						min  int
						why  string
					}{{"tickers", 1, ""}, {"days", loader.SynthMinDays(nil), fmt.Sprintf(" (4 x the longest horizon, %d days, + 20)", loader.DefaultHorizons[len(loader.DefaultHorizons)-1])}, {"features", 3, " (regime, driver, ret1)"}, {"bins", 2, ""}} {
						if n := c.Int(f.name); n < f.min {
							return fmt.Errorf("data synth: --%s %d: want at least %d%s", f.name, n, f.min, f.why)
						}
					}
					if x := c.Float64("signal-fraction"); !(x > 0 && x < 1) {
						return fmt.Errorf("data synth: --signal-fraction %g: want 0 < f < 1", x)
					}
					cfg := loader.SynthConfig{Tickers: c.Int("tickers"), Days: c.Int("days"), Features: c.Int("features"),
						Bins: c.Int("bins"), Seed: c.Int64("seed"), SignalFraction: c.Float64("signal-fraction")}
					if err := loader.Synth(out, cfg); err != nil {
						return err
					}
					fmt.Printf("wrote %s (%d tickers x %d days x %d features)\n", out, cfg.Tickers, cfg.Days, cfg.Features)
					return nil
				},
			},
			{
				Name:      "import-csv",
				Usage:     "import per-ticker daily OHLCV CSV files into a panel",
				ArgsUsage: "DIR",
				Flags: []cli.Flag{
					stringFlag("out", "panel.h5", "output HDF5 file", ""),
					intFlag("bins", 10, "return bins per horizon (quantiles of the training period)", ""),
					stringFlag("train-end", "", "first day of the validation period, YYYYMMDD or YYYY-MM-DD (default 70% of dates)", ""),
					stringFlag("val-end", "", "first day of the test period, YYYYMMDD or YYYY-MM-DD (default 85% of dates)", ""),
					intFlag("min-rows", 0, "drop tickers with fewer usable rows (0: importer default)", ""),
					stringFlag("constituents", "", "Symbol,Name,Sector CSV for sector labels (default DIR/constituents.csv if present)", ""),
				},
				Action: func(c *cli.Context) error {
					dir, err := onePath(c, "data import-csv", "DIR")
					if err != nil {
						return err
					}
					if dir == "" {
						return fmt.Errorf("data import-csv: give the folder of CSV files")
					}
					te, err := parseDate("--train-end", c.String("train-end"))
					if err != nil {
						return err
					}
					ve, err := parseDate("--val-end", c.String("val-end"))
					if err != nil {
						return err
					}
					cons := c.String("constituents")
					if cons == "" {
						if p := filepath.Join(dir, "constituents.csv"); fileExists(p) {
							cons = p
						}
					}
					rep, err := loader.ImportCSV(dir, c.String("out"), loader.ImportOptions{Bins: c.Int("bins"), TrainEnd: te, ValEnd: ve,
						MinRows: c.Int("min-rows"), Constituents: cons})
					if rep != nil {
						fmt.Print(rep.String())
					}
					return err
				},
			},
			{
				Name:      "inspect",
				Usage:     "schema, sizes, date range, sequence counts per split and label balance",
				ArgsUsage: "FILE.h5",
				Flags:     []cli.Flag{intFlag("seq-len", 2000, "window length for sequence counts", ""), intFlag("val-size", 1000, "validation set size", "")},
				Action: func(c *cli.Context) error {
					f, err := onePath(c, "data inspect", "FILE.h5")
					if err != nil {
						return err
					}
					if f == "" {
						return fmt.Errorf("data inspect: give the HDF5 file")
					}
					if n := c.Int("val-size"); n < 1 {
						return fmt.Errorf("--val-size must be >= 1, got %d", n)
					}
					return loader.Inspect(f, loader.Options{SeqLen: c.Int("seq-len"), ValSize: c.Int("val-size")}, os.Stdout)
				},
			},
		},
	}
}

// onePath returns the single positional argument. runArgs has already
// refused a second one; this guards callers that run the app directly.
func onePath(c *cli.Context, cmd, what string) (string, error) {
	if c.Args().Len() > 1 {
		return "", usagef("%s: unexpected argument %q after %s (it takes one: %s)", cmd, c.Args().Get(1), c.Args().First(), what)
	}
	return c.Args().First(), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
