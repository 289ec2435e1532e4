package compare

import (
	"context"
	"encoding/json"
	"errors"
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

	// Jobs is how many runs train at once. 0 or 1: one after another, in
	// this process (Run's goroutine). Above 1 each run is handed to Launch.
	Jobs int
	// Launch runs one arm x seed of the study elsewhere and returns when it
	// has ended (the CLI starts a child process of itself that calls RunOne
	// with the same Config). It must leave run.json and report.json in
	// spec.Dir, as RunOne does, and stop when ctx ends. It may call progress,
	// from any goroutine, until it returns. Required when Jobs > 1.
	Launch func(ctx context.Context, spec RunSpec, progress func(RunProgress)) error
	// Resume reuses every run of OutDir that finished before (its run.json
	// and report.json exist, at this Budget) and starts the others afresh,
	// clearing their folders. Without it a run folder that holds a run is
	// refused.
	Resume bool
	// Settings are the study's settings that decide a run's numbers, flag
	// name -> value (the CLI: every compare flag but those that only steer
	// the study: --out, --arms, --seeds, --jobs, --resume, --progress,
	// --metrics-addr). Each run.json records them, and Resume refuses a run
	// trained with other values. nil: not checked.
	Settings map[string]string
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
	case c.Jobs < 0:
		return option.Errorf("{jobs} must be >= 1, got %d", c.Jobs)
	case c.Jobs > 1 && c.Launch == nil:
		return errors.New("compare: Jobs > 1 needs a Launch")
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

// Files a run of a study leaves in its folder when it has finished.
const (
	runFile    = "run.json"    // the RunRecord (and the budget it was trained at)
	reportFile = "report.json" // the test evaluation of its best checkpoint
)

// study is a comparison once its settings are checked and its data opened:
// what Run and RunOne share.
type study struct {
	cfg      Config
	base     trainer.RunConfig // Base with the study-wide settings applied
	dopt     loader.Options
	trainLen int64
	planned  int
	metrics  *report.Metrics
	ev       *eval.Evaluator // opened by the first in-process evaluation
	emit     func(Event)
}

func newStudy(cfg Config) (*study, error) {
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
	s := &study{cfg: cfg, base: base, dopt: dopt, trainLen: trainLen, planned: len(cfg.Arms) * cfg.Seeds,
		// One set of series for the whole comparison: each run reports into it in
		// turn (satrain_run_info says which), counters add up over the runs.
		metrics: report.NewMetrics(base.Version, torch.Version(), torch.BuiltWithCUDA())}
	s.emit = func(e Event) {
		if cfg.OnEvent != nil {
			cfg.OnEvent(e)
		}
	}
	return s, nil
}

func (s *study) close() {
	if s.ev != nil {
		s.ev.Close()
		s.ev = nil
	}
}

// plan is every run of the study: arms in order, seeds in order.
func (s *study) plan() []RunSpec {
	var specs []RunSpec
	for _, arm := range s.cfg.Arms {
		for k := 0; k < s.cfg.Seeds; k++ {
			seed := s.base.Seed + int64(k)
			specs = append(specs, RunSpec{Run: len(specs) + 1, Runs: s.planned, Arm: arm, Seed: seed,
				Dir: filepath.Join(s.cfg.OutDir, arm, fmt.Sprintf("seed%d", seed))})
		}
	}
	return specs
}

// Run trains every arm with every seed at the same budget of
// sequence-passes, evaluates each run's best checkpoint on the test split,
// draws the convergence curves from its intermediate checkpoints on the
// validation split, and writes summary.json, summary.txt, runs.json,
// convergence.png and val_loss.png to OutDir.
//
// With Jobs above 1, up to Jobs runs go to Launch at once; otherwise they run
// one after another on the calling goroutine. Either way the outputs list
// the runs arms in order, then seeds in order, whatever order they finished
// in. With Resume, runs that finished before (run.json and report.json in
// their folder) are reused and the others start afresh.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	s, err := newStudy(cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cfg = s.cfg
	s.emit(StudyStarted{Arms: cfg.Arms, Seeds: cfg.Seeds, FirstSeed: s.base.Seed, Budget: cfg.Budget, TrainSequences: s.trainLen})
	if addr := cfg.Base.MetricsAddr; addr != "" {
		served, err := report.ServeMetrics(ctx, s.metrics, addr, cfg.Base.MetricsAnyPort)
		if err != nil {
			return nil, option.Errorf("{metrics-addr} %s: %w", addr, err)
		}
		s.emit(MetricsServed{Addr: served})
	}
	s.metrics.CompareSeries().Planned.Set(float64(s.planned))

	specs := s.plan()
	done := make([]*finished, len(specs))
	// Every folder is checked before any run starts.
	for i, sp := range specs {
		if !cfg.Resume {
			if holdsRun(sp.Dir) {
				return &Result{Budget: cfg.Budget}, option.Errorf("%s already holds a run: give compare a new {out} folder, or {resume} to keep the finished runs of this one and redo the others", sp.Dir)
			}
			continue
		}
		f, err := s.readFinished(sp)
		if err != nil {
			return &Result{Budget: cfg.Budget}, fmt.Errorf("compare: reuse arm %s seed %d: %w", sp.Arm, sp.Seed, err)
		}
		done[i] = f
	}
	for i, sp := range specs {
		if f := done[i]; f != nil {
			s.metrics.CompareSeries().Completed.Inc()
			s.emit(RunReused{Run: sp.Run, Runs: sp.Runs, Record: f.record, Test: f.test})
		} else if cfg.Resume {
			// An unfinished run starts afresh.
			if err := os.RemoveAll(sp.Dir); err != nil {
				return &Result{Budget: cfg.Budget}, fmt.Errorf("compare: clear the unfinished run %s: %w", sp.Dir, err)
			}
		}
	}
	if cfg.Jobs > 1 {
		err = s.runPool(ctx, specs, done)
	} else {
		err = s.runInOrder(ctx, specs, done)
	}
	res := &Result{Budget: cfg.Budget}
	var armResults []backtest.ArmResult
	n := 0
	for _, f := range done {
		if f == nil {
			continue
		}
		n++
		res.Runs = append(res.Runs, f.record)
		ar := backtest.ArmResult{Arm: f.record.Arm, Seed: f.record.Seed, Report: f.test, Curve: f.record.Curve}
		if b := f.record.Stage1; b != nil {
			ar.Stage1 = &backtest.CurvePoint{Budget: b.Budget, TopKReturn: b.CurveExcess}
		}
		armResults = append(armResults, ar)
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, trainer.ErrInterrupted) {
			return res, option.Errorf("%w: compare stopped with %d of %d runs finished (%s); the same command with {resume} keeps them and trains the others afresh",
				trainer.ErrInterrupted, n, s.planned, cfg.OutDir)
		}
		return res, err
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

// runInOrder runs, on the calling goroutine, every run of specs not done
// yet, one after another, filling done; it stops at the first error.
func (s *study) runInOrder(ctx context.Context, specs []RunSpec, done []*finished) error {
	for i, sp := range specs {
		if done[i] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := s.runOne(ctx, sp)
		if err != nil {
			return err
		}
		done[i] = f
		s.metrics.CompareSeries().Completed.Inc()
		s.emit(RunFinished{Run: sp.Run, Runs: sp.Runs, Record: f.record, Test: f.test})
	}
	return ctx.Err()
}

// evaluate loads a checkpoint into the study's evaluator (opening the data
// once) and evaluates it.
func (s *study) evaluate(ctx context.Context, path string, ec eval.Config) (*eval.Result, error) {
	if s.ev == nil {
		ev, err := eval.Open(eval.Options{Checkpoint: path, Data: s.base.Data, DataOpt: s.dopt, Device: s.base.Device,
			InferenceBatch: s.base.InferenceBatch, Reporter: s.cfg.EvalProgress})
		if err != nil {
			return nil, err
		}
		s.ev = ev
	} else if err := s.ev.SwapCheckpoint(path); err != nil {
		return nil, err
	}
	return s.ev.Evaluate(ctx, ec)
}

// runOne trains, scores and test-evaluates one run in this process, writing
// report.json and run.json into its folder.
func (s *study) runOne(ctx context.Context, sp RunSpec) (*finished, error) {
	cfg, arm, seed, dir := s.cfg, sp.Arm, sp.Seed, sp.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	run := RunRecord{Arm: arm, Seed: seed, Dir: dir}
	training := RunTraining{Run: sp.Run, Runs: sp.Runs, Arm: arm, Seed: seed, Dir: dir, Log: filepath.Join(dir, "train.log")}
	s.emit(training)
	t0 := time.Now()
	reporters := func(console io.Writer) []event.Reporter {
		rs := []event.Reporter{report.NewConsole(console, ""), report.NewPrometheus(s.metrics), report.NewJSONL()}
		if cfg.TrainProgress != nil {
			rs = append(rs, cfg.TrainProgress(training))
		}
		return rs
	}
	stages, err := trainArm(ctx, cfg, s.base, arm, seed, dir, s.trainLen, &run, reporters)
	run.TrainSeconds = time.Since(t0).Seconds()
	if err != nil {
		return nil, fmt.Errorf("arm %s seed %d: %w", arm, seed, err)
	}
	t1 := time.Now()
	s.emit(RunEvaluating{Run: sp.Run, Runs: sp.Runs, Arm: arm, Seed: seed, Checkpoints: countCheckpoints(stages)})
	curveEval := eval.Config{Split: "val", HorizonIdx: cfg.Eval.HorizonIdx, MaxDates: cfg.CurveMaxDates, Backtest: cfg.Eval.Backtest}
	// Convergence curve from the intermediate checkpoints.
	for _, st := range stages {
		for _, ck := range st.checkpoints {
			r, err := s.evaluate(ctx, ck, curveEval)
			if err != nil {
				return nil, fmt.Errorf("arm %s seed %d: curve point %s: %w", arm, seed, ck, err)
			}
			run.Curve = append(run.Curve, backtest.CurvePoint{Budget: st.offset + s.ev.Meta.SequencesTrained, TopKReturn: r.Report.Precision.Excess})
		}
	}
	if b := run.Stage1; b != nil {
		r, err := s.evaluate(ctx, b.BestCheckpoint, curveEval)
		if err != nil {
			return nil, fmt.Errorf("arm %s seed %d: stage-1 baseline %s: %w", arm, seed, b.BestCheckpoint, err)
		}
		b.CurveExcess = r.Report.Precision.Excess
	}
	// Test evaluation of the best checkpoint.
	testEval := cfg.Eval
	if arm == ArmRiskAdjusted {
		// The arm's claim is its ranking: its picks are by the same key.
		testEval.RankBy = selection.RankRiskAdjusted
	}
	r, err := s.evaluate(ctx, run.BestCheckpoint, testEval)
	if err != nil {
		return nil, fmt.Errorf("arm %s seed %d: test evaluation of %s: %w", arm, seed, run.BestCheckpoint, err)
	}
	run.EvalSeconds = time.Since(t1).Seconds()
	if err := r.Report.WriteJSON(filepath.Join(dir, reportFile)); err != nil {
		return nil, err
	}
	// run.json last: with report.json it marks the run finished (Resume).
	b, err := json.MarshalIndent(runFileData{RunRecord: run, Budget: cfg.Budget, Settings: cfg.Settings}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, runFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("compare: write %s: %w", filepath.Join(dir, runFile), err)
	}
	return &finished{record: run, test: r.Report}, nil
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
