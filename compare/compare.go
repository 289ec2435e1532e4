package compare

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
)

// Arms of `satrain compare`.
const (
	ArmStandard       = "standard"        // RunStandard on random training sequences
	ArmSelectionAware = "selection_aware" // the method, from scratch
	ArmTwoStage       = "two_stage"       // half the budget standard, then selection-aware from its best model
	ArmRandom         = "random"          // control: a random subset of the same size instead of the top-k
	ArmOHEM           = "ohem"            // the k highest-loss sequences of the sample
	ArmNegative       = "negative"        // top-k plus the k lowest expected returns
	ArmMix            = "mix"             // top-k plus 0.5 k random sequences
	// Selection extensions (docs/STRATEGIES.md); each trains k sequences an iteration.
	ArmPerDate      = "per_date"      // whole cross-sections of random days, top k/days of each day
	ArmStratified   = "stratified"    // equal sample counts per sector (needs the file's groups)
	ArmTopKSchedule = "topk_schedule" // k from k/2 to 3k/2 over the run (mean k)
	ArmConfidence   = "confidence"    // loss weighted by the model's confidence
	ArmConsistency  = "consistency"   // weight 1 + 1.0 x earlier consecutive top-k memberships
	ArmRiskAdjusted = "risk_adjusted" // top k by (E[r] - 1) / sd of the predicted distribution
)

// Arms lists every arm name in its usual order.
var Arms = []string{ArmStandard, ArmSelectionAware, ArmTwoStage, ArmRandom, ArmOHEM, ArmNegative, ArmMix,
	ArmPerDate, ArmStratified, ArmTopKSchedule, ArmConfidence, ArmConsistency, ArmRiskAdjusted}

// armStrategy is the selection strategy of a selection-style arm.
func armStrategy(arm string, topK int) selection.Strategy {
	switch arm {
	case ArmRandom:
		return selection.Strategy{SelectBy: "random"}
	case ArmOHEM:
		return selection.Strategy{SelectBy: "loss"}
	case ArmNegative:
		return selection.Strategy{NegativeK: topK}
	case ArmMix:
		return selection.Strategy{MixRandom: 0.5}
	case ArmPerDate:
		return selection.Strategy{Scope: selection.ScopePerDate}
	case ArmStratified:
		return selection.Strategy{Stratify: "sector"}
	case ArmTopKSchedule:
		lo := max(1, topK/2)
		return selection.Strategy{TopKSchedule: fmt.Sprintf("linear:%d:%d", lo, 2*topK-lo)}
	case ArmConfidence:
		return selection.Strategy{ConfidenceWeight: true}
	case ArmConsistency:
		return selection.Strategy{ConsistencyBonus: 1}
	case ArmRiskAdjusted:
		return selection.Strategy{RankBy: selection.RankRiskAdjusted}
	}
	return selection.Strategy{}
}

// Config is a comparison of training arms at an equal training
// budget, each with several seeds.
type Config struct {
	// Base holds the data, model, optimisation and selection settings
	// (SampleSize, TopK, HorizonIdx, EpochsPerIteration), batch sizes,
	// device, threads and the first seed. Its SaveDir, ResumeFrom,
	// NumIterations, Epochs, Strategy, ValEvery and CheckpointEvery are set
	// per run.
	Base   trainer.RunConfig
	Arms   []string
	Seeds  int   // seeds Base.Seed, Base.Seed+1, ...
	Budget int64 // sequence-passes trained per run (a sequence trained for 3 epochs counts 3)
	OutDir string
	// CurvePoints is about how many checkpoints of each run are evaluated
	// on the validation split for the convergence curve (default 5).
	CurvePoints int
	// CurveMaxDates bounds each curve evaluation to the first N days of the
	// validation split (0: all of it).
	CurveMaxDates int
	// Eval is the test evaluation of each run's best checkpoint.
	Eval eval.Config

	// OnEvent, when set, is told of the study's progress (Event); nil: the
	// study says nothing. It is called on Run's goroutine.
	OnEvent func(Event)
	// TrainProgress, when set, gives each run one more reporter of its
	// training events (a progress display). Base.Progress is not read.
	TrainProgress func(RunTraining) event.Reporter
	// EvalProgress, when set, is told of every evaluation's scoring passes
	// (eval.Options.Reporter).
	EvalProgress event.Reporter
}

// ValuePoint is a value of a run after Budget sequence-passes.
type ValuePoint struct {
	Budget int64   `json:"budget"`
	Value  float64 `json:"value"`
}

// RunRecord is the record of one arm x seed.
type RunRecord struct {
	Arm              string  `json:"arm"`
	Seed             int64   `json:"seed"`
	Dir              string  `json:"dir"`
	Iterations       int     `json:"iterations"` // iterations (selection arms) or epochs (standard)
	SequencesTrained int64   `json:"sequences_trained"`
	SequencesScored  int64   `json:"sequences_scored"`
	BestCheckpoint   string  `json:"best_checkpoint"`
	BestValLoss      float64 `json:"best_val_loss"`
	TrainSeconds     float64 `json:"train_seconds"`
	EvalSeconds      float64 `json:"eval_seconds"`
	// ValLoss is the validation loss (fixed validation subset) logged by the
	// trainer, against sequence-passes trained.
	ValLoss []ValuePoint `json:"val_loss"`
	// Curve is, per evaluated checkpoint, the top-k excess realized return
	// on the validation split (the convergence curve).
	Curve []backtest.CurvePoint `json:"curve"`
	// Stage1 is, for two_stage, the stage-1 model that stage 2 starts from.
	Stage1 *StageBaseline `json:"stage1,omitempty"`
}

// StageBaseline is the stage-1 result of a two-stage run, drawn as the
// baseline of its curves.
type StageBaseline struct {
	Budget         int64   `json:"budget"`          // sequence-passes trained in stage 1
	BestValLoss    float64 `json:"best_val_loss"`   // the stage-1 model's validation loss
	BestCheckpoint string  `json:"best_checkpoint"` // stage 2's --resume-from
	// CurveExcess is that model's top-k excess realized return on the
	// convergence curve's validation days.
	CurveExcess float64 `json:"curve_excess"`
}

// Result is everything a comparison produced.
type Result struct {
	Runs    []RunRecord       `json:"runs"`
	Summary *backtest.Summary `json:"-"`
	Budget  int64             `json:"budget"`
}

// Validate checks the comparison settings.
func (c *Config) Validate() error {
	if len(c.Arms) == 0 {
		return option.Errorf("{arms}: give at least one of %s", strings.Join(Arms, ","))
	}
	seen := map[string]bool{}
	for _, a := range c.Arms {
		ok := false
		for _, k := range Arms {
			ok = ok || a == k
		}
		if !ok {
			return option.Errorf("{arms}: unknown arm %q (want %s)", a, strings.Join(Arms, ","))
		}
		if seen[a] {
			return option.Errorf("{arms}: %q given twice", a)
		}
		seen[a] = true
	}
	switch {
	case c.Seeds < 1:
		return option.Errorf("{seeds} must be >= 1, got %d", c.Seeds)
	case c.Budget < 1:
		return option.Errorf("{budget} must be >= 1 sequence-pass, got %d", c.Budget)
	case c.OutDir == "":
		return option.Errorf("{out} is required")
	}
	base := c.Base
	base.NumIterations, base.Epochs = 1, 1
	if err := base.Validate(true); err != nil {
		return err
	}
	if seen[ArmNegative] && c.Base.TopK > c.Base.SampleSize/2 {
		return option.Errorf("arm negative trains on the top %d and the bottom %d: {sample-size} %d must be at least twice {top-k}", c.Base.TopK, c.Base.TopK, c.Base.SampleSize)
	}
	return nil
}

// passesPerIteration is what one selection-style iteration trains.
func passesPerIteration(cfg trainer.RunConfig, st selection.Strategy) int64 {
	per := cfg.TopK + st.NegativeK + int(math.Round(st.MixRandom*float64(cfg.TopK)))
	return int64(per * cfg.EpochsPerIteration)
}

// Run trains every arm with every seed at the same budget of
// sequence-passes, evaluates each run's best checkpoint on the test split,
// draws the convergence curves from its intermediate checkpoints on the
// validation split, and writes summary.json, summary.txt, runs.json,
// convergence.png and val_loss.png to OutDir.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	emit := func(e Event) {
		if cfg.OnEvent != nil {
			cfg.OnEvent(e)
		}
	}
	if cfg.CurvePoints <= 0 {
		cfg.CurvePoints = 5
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, option.Errorf("{out} %s: %w", cfg.OutDir, err)
	}
	base := cfg.Base
	metricsAddr := base.MetricsAddr
	base.MetricsAddr = ""
	base.ResumeFrom = ""
	if base.DataOpt.Seed == 0 {
		// One validation subset for every run, so best-model choices are comparable.
		base.DataOpt.Seed = base.Seed
	}
	dopt := base.DataOpt
	dopt.SeqLen = base.Model.SeqLen
	ds, err := loader.Open(base.Data, dopt)
	if err != nil {
		return nil, err
	}
	trainLen := ds.Split("train").Len()
	ds.Close()
	if trainLen == 0 {
		return nil, fmt.Errorf("%s: the training split is empty (seq_len %d)", base.Data, base.Model.SeqLen)
	}
	emit(StudyStarted{Arms: cfg.Arms, Seeds: cfg.Seeds, FirstSeed: base.Seed, Budget: cfg.Budget, TrainSequences: trainLen})
	// One set of series for the whole comparison: each run reports into it in
	// turn (satrain_run_info says which), counters add up over the runs.
	metrics := report.NewMetrics(base.Version, torch.Version(), torch.BuiltWithCUDA())
	if metricsAddr != "" {
		addr, err := report.ServeMetrics(ctx, metrics, metricsAddr, base.MetricsAnyPort)
		if err != nil {
			return nil, option.Errorf("{metrics-addr} %s: %w", metricsAddr, err)
		}
		emit(MetricsServed{Addr: addr})
	}
	planned := len(cfg.Arms) * cfg.Seeds
	metrics.CompareSeries().Planned.Set(float64(planned))

	var ev *eval.Evaluator
	defer func() {
		if ev != nil {
			ev.Close()
		}
	}()
	// evaluate loads a checkpoint (opening the data once) and evaluates it.
	evaluate := func(path string, ec eval.Config) (*eval.Result, error) {
		if ev == nil {
			var err error
			ev, err = eval.Open(eval.Options{Checkpoint: path, Data: base.Data, DataOpt: dopt, Device: base.Device,
				InferenceBatch: base.InferenceBatch, Reporter: cfg.EvalProgress})
			if err != nil {
				return nil, err
			}
		} else if err := ev.SwapCheckpoint(path); err != nil {
			return nil, err
		}
		return ev.Evaluate(ctx, ec)
	}
	curveEval := eval.Config{Split: "val", HorizonIdx: cfg.Eval.HorizonIdx, MaxDates: cfg.CurveMaxDates, Backtest: cfg.Eval.Backtest}

	res := &Result{Budget: cfg.Budget}
	var armResults []backtest.ArmResult
	for _, arm := range cfg.Arms {
		for k := 0; k < cfg.Seeds; k++ {
			seed := base.Seed + int64(k)
			dir := filepath.Join(cfg.OutDir, arm, fmt.Sprintf("seed%d", seed))
			if fileExists(checkpoint.RunDir(dir).Metrics()) || fileExists(checkpoint.RunDir(filepath.Join(dir, "stage1")).Metrics()) {
				return res, option.Errorf("%s already holds a run: give compare a new {out} folder", dir)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return res, err
			}
			run := RunRecord{Arm: arm, Seed: seed, Dir: dir}
			runNo := len(res.Runs) + 1
			training := RunTraining{Run: runNo, Runs: planned, Arm: arm, Seed: seed, Dir: dir, Log: filepath.Join(dir, "train.log")}
			emit(training)
			t0 := time.Now()
			reporters := func(console io.Writer) []event.Reporter {
				rs := []event.Reporter{report.NewConsole(console, ""), report.NewPrometheus(metrics), report.NewJSONL()}
				if cfg.TrainProgress != nil {
					rs = append(rs, cfg.TrainProgress(training))
				}
				return rs
			}
			stages, err := trainArm(ctx, cfg, base, arm, seed, dir, trainLen, &run, reporters)
			run.TrainSeconds = time.Since(t0).Seconds()
			if err != nil {
				return res, fmt.Errorf("arm %s seed %d: %w", arm, seed, err)
			}
			t1 := time.Now()
			emit(RunEvaluating{Run: runNo, Runs: planned, Arm: arm, Seed: seed, Checkpoints: countCheckpoints(stages)})
			// Convergence curve from the intermediate checkpoints.
			for _, st := range stages {
				for _, ck := range st.checkpoints {
					r, err := evaluate(ck, curveEval)
					if err != nil {
						return res, fmt.Errorf("arm %s seed %d: curve point %s: %w", arm, seed, ck, err)
					}
					run.Curve = append(run.Curve, backtest.CurvePoint{Budget: st.offset + ev.Meta.SequencesTrained, TopKReturn: r.Report.Precision.Excess})
				}
			}
			if b := run.Stage1; b != nil {
				r, err := evaluate(b.BestCheckpoint, curveEval)
				if err != nil {
					return res, fmt.Errorf("arm %s seed %d: stage-1 baseline %s: %w", arm, seed, b.BestCheckpoint, err)
				}
				b.CurveExcess = r.Report.Precision.Excess
			}
			// Test evaluation of the best checkpoint.
			testEval := cfg.Eval
			if arm == ArmRiskAdjusted {
				// The arm's claim is its ranking: its picks are by the same key.
				testEval.RankBy = selection.RankRiskAdjusted
			}
			r, err := evaluate(run.BestCheckpoint, testEval)
			if err != nil {
				return res, fmt.Errorf("arm %s seed %d: test evaluation of %s: %w", arm, seed, run.BestCheckpoint, err)
			}
			run.EvalSeconds = time.Since(t1).Seconds()
			if err := r.Report.WriteJSON(filepath.Join(dir, "report.json")); err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, run)
			metrics.CompareSeries().Completed.Inc()
			ar := backtest.ArmResult{Arm: arm, Seed: seed, Report: r.Report, Curve: run.Curve}
			if b := run.Stage1; b != nil {
				ar.Stage1 = &backtest.CurvePoint{Budget: b.Budget, TopKReturn: b.CurveExcess}
			}
			armResults = append(armResults, ar)
			emit(RunFinished{Run: runNo, Runs: planned, Record: run, Test: r.Report})
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
	}
	sum, err := backtest.Summarize(armResults)
	if err != nil {
		return res, err
	}
	res.Summary = sum
	if err := writeOutputs(cfg, res); err != nil {
		return res, err
	}
	return res, nil
}

// stage is one training run of an arm (two-stage has two).
type stage struct {
	offset      int64    // sequence-passes trained before this stage
	checkpoints []string // in training order
}

// trainArm runs the training of one arm x seed into dir and fills run.
func trainArm(ctx context.Context, cfg Config, base trainer.RunConfig, arm string, seed int64, dir string, trainLen int64, run *RunRecord,
	reporters func(console io.Writer) []event.Reporter) ([]stage, error) {
	logF, err := os.Create(filepath.Join(dir, "train.log"))
	if err != nil {
		return nil, err
	}
	defer logF.Close()
	rc := base
	rc.Seed, rc.Console, rc.Progress = seed, logF, false
	rc.Reporters = reporters(logF)
	rc.Run = map[string]string{"command": "compare", "arm": arm, "budget": strconv.FormatInt(cfg.Budget, 10)}
	for k, v := range base.Run {
		rc.Run[k] = v
	}
	points := cfg.CurvePoints
	standard := func(rc trainer.RunConfig, budget int64, points int, dir string) (*trainer.RunResult, error) {
		rc.SaveDir = dir
		epochs := int64(max(1, points))
		if need := (budget + trainLen - 1) / trainLen; need > epochs {
			epochs = need
		}
		rc.Epochs = int(epochs)
		rc.MaxSeqsPerEpoch = int(max(1, budget/epochs))
		if int64(rc.MaxSeqsPerEpoch) >= trainLen {
			rc.MaxSeqsPerEpoch = 0
		}
		if err := rc.Validate(false); err != nil {
			return nil, err
		}
		return trainer.RunStandard(ctx, rc)
	}
	selectionRun := func(rc trainer.RunConfig, budget int64, points int, dir, resume string, st selection.Strategy) (*trainer.RunResult, error) {
		rc.SaveDir, rc.ResumeFrom, rc.Strategy = dir, resume, st
		rc.NumIterations = int(max(1, int64(math.Round(float64(budget)/float64(passesPerIteration(rc, st))))))
		every := max(1, rc.NumIterations/max(1, points))
		rc.ValEvery, rc.CheckpointEvery = every, every
		if err := rc.Validate(true); err != nil {
			return nil, err
		}
		return trainer.RunSelectionAware(ctx, rc)
	}
	var stages []stage
	addStage := func(r *trainer.RunResult, dir string, offset int64, kind string) error {
		cks, err := checkpoint.RunDir(dir).Periodics(kind)
		if err != nil {
			return err
		}
		stages = append(stages, stage{offset: offset, checkpoints: cks})
		run.Iterations += r.LastIter
		if n := len(r.Iterations); n > 0 {
			last := r.Iterations[n-1]
			run.SequencesTrained += last.TrainedTotal
			run.SequencesScored += last.ScoredTotal
		}
		for _, it := range r.Iterations {
			if it.Validated && !math.IsNaN(it.ValLoss) {
				run.ValLoss = append(run.ValLoss, ValuePoint{Budget: offset + it.TrainedTotal, Value: it.ValLoss})
			}
		}
		run.BestValLoss = r.BestValLoss
		run.BestCheckpoint = r.BestPath
		if run.BestCheckpoint == "" && len(cks) > 0 {
			run.BestCheckpoint = cks[len(cks)-1]
		}
		if run.BestCheckpoint == "" {
			return fmt.Errorf("%s: no checkpoint was written", dir)
		}
		return nil
	}
	switch arm {
	case ArmStandard:
		r, err := standard(rc, cfg.Budget, points, dir)
		if err != nil {
			return nil, err
		}
		return stages, addStage(r, dir, 0, trainer.KindStandard)
	case ArmTwoStage:
		s1 := filepath.Join(dir, "stage1")
		r1, err := standard(rc, cfg.Budget/2, max(1, points/2), s1)
		if err != nil {
			return nil, err
		}
		if err := addStage(r1, s1, 0, trainer.KindStandard); err != nil {
			return nil, err
		}
		done := run.SequencesTrained
		run.Stage1 = &StageBaseline{Budget: done, BestValLoss: r1.BestValLoss, BestCheckpoint: r1.BestPath}
		if run.Stage1.BestCheckpoint == "" {
			run.Stage1.BestCheckpoint = run.BestCheckpoint
		}
		r2, err := selectionRun(rc, cfg.Budget-done, max(1, points-points/2), dir, r1.BestPath, selection.Strategy{})
		if err != nil {
			return nil, err
		}
		return stages, addStage(r2, dir, done, trainer.KindSelectionAware)
	default:
		r, err := selectionRun(rc, cfg.Budget, points, dir, "", armStrategy(arm, rc.TopK))
		if err != nil {
			return nil, err
		}
		return stages, addStage(r, dir, 0, trainer.KindSelectionAware)
	}
}

func countCheckpoints(stages []stage) int {
	n := 0
	for _, st := range stages {
		n += len(st.checkpoints)
	}
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// WriteRunsTable writes one line per run: budget, time, best validation
// loss and the test numbers that matter most.
func WriteRunsTable(w io.Writer, runs []RunRecord) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arm\tseed\titerations\tpasses trained\tseqs scored\ttrain s\teval s\tbest val loss\tfinal val-curve excess (bps)\t")
	for _, r := range runs {
		last := math.NaN()
		if n := len(r.Curve); n > 0 {
			last = r.Curve[n-1].TopKReturn
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.1f\t%.1f\t%.4f\t%+.1f\t\n", r.Arm, r.Seed, r.Iterations, loader.FormatCount(r.SequencesTrained),
			loader.FormatCount(r.SequencesScored), r.TrainSeconds, r.EvalSeconds, r.BestValLoss, 1e4*last)
	}
	tw.Flush()
}

func writeOutputs(cfg Config, res *Result) error {
	dir := cfg.OutDir
	if err := res.Summary.WriteJSON(filepath.Join(dir, "summary.json")); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "summary.txt"), 0o644, func(f io.Writer) error {
		WriteRunsTable(f, res.Runs)
		fmt.Fprintln(f)
		res.Summary.WriteTable(f)
		return nil
	}); err != nil {
		return fmt.Errorf("compare: write %s: %w", filepath.Join(dir, "summary.txt"), err)
	}
	b, err := json.MarshalIndent(struct {
		Arms          []string     `json:"arms"`
		Seeds         int          `json:"seeds"`
		Budget        int64        `json:"budget"`
		CurveMaxDates int          `json:"curve_max_dates"`
		Eval          eval.Config  `json:"eval"`
		Model         model.Config `json:"model"`
		Runs          []RunRecord  `json:"runs"`
	}{cfg.Arms, cfg.Seeds, cfg.Budget, cfg.CurveMaxDates, cfg.Eval, cfg.Base.Model, res.Runs}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "runs.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("compare: write %s: %w", filepath.Join(dir, "runs.json"), err)
	}
	if err := res.Summary.WriteConvergencePlot(filepath.Join(dir, "convergence.png")); err != nil {
		return err
	}
	return writeValLossPlot(filepath.Join(dir, "val_loss.png"), res.Runs)
}

// writeValLossPlot draws each run's validation loss against sequence-passes
// trained, one colour per arm, with two-stage runs' stage-1 baseline.
func writeValLossPlot(path string, runs []RunRecord) error {
	return backtest.WriteValLossPlot(path, valLossSeries(runs))
}

func valLossSeries(runs []RunRecord) []backtest.LossSeries {
	var out []backtest.LossSeries
	for _, r := range runs {
		ls := backtest.LossSeries{Arm: r.Arm, Seed: r.Seed}
		for _, v := range r.ValLoss {
			ls.Points = append(ls.Points, backtest.CurvePoint{Budget: v.Budget, TopKReturn: v.Value})
		}
		if b := r.Stage1; b != nil {
			ls.Stage1 = &backtest.CurvePoint{Budget: b.Budget, TopKReturn: b.BestValLoss}
		}
		out = append(out, ls)
	}
	return out
}
