package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

// Kinds of run (and of the checkpoints they write).
const (
	KindSelectionAware = event.KindSelectionAware
	KindStandard       = event.KindStandard
)

// RunConfig is everything a training run needs; the CLI fills it from flags.
type RunConfig struct {
	Data    string
	DataOpt loader.Options
	Model   model.Config // NumFeatures, NumHorizons, NumBins come from the data file
	Step    model.StepConfig

	// Selection-aware
	SampleSize         int
	TopK               int
	HorizonIdx         int
	EpochsPerIteration int
	NumIterations      int
	// Standard
	Epochs           int
	MaxSeqsPerEpoch  int // 0: every training sequence each epoch
	ValEveryStandard int // validate every N steps within an epoch (0: end of epoch only)

	BatchSize       int
	InferenceBatch  int
	SaveDir         string
	ResumeFrom      string
	ValEvery        int
	CheckpointEvery int
	Device          torch.Device
	Seed            int64
	Threads         int
	MetricsAddr     string
	Version         string
	Progress        bool
	Console         io.Writer
	Run             map[string]string     // flags for the checkpoint record
	Strategy        selection.Strategy    // selection variants (zero value: the documented method)
	Score           selection.ScoreConfig // the scoring cascade (--score-precision; zero value: one pass)

	// LogSelected is a JSON-lines file that receives every selected
	// sequence of every iteration (--log-selected; empty: none).
	LogSelected string

	// TensorBoard is the folder of the run's TensorBoard event files
	// (--tensorboard, or <save-dir>/tensorboard under --use-wandb; empty:
	// none). WandbHint: the start-up note says how to sync it to W&B.
	TensorBoard string
	WandbHint   bool

	// MetricsAnyPort: MetricsAddr is the default, not asked for; when its
	// port is busy (a second run on the machine) the next free port serves
	// instead. An address the user gave stays an error when busy.
	MetricsAnyPort bool

	// Overwrite lets a run replace another run in SaveDir (--overwrite): the
	// earlier run's metrics.jsonl and checkpoints are deleted once start-up
	// has succeeded. Without it such a save dir is refused unless the run
	// resumes (see CheckSaveDirFree).
	Overwrite bool

	// Reporters receive the run's events (package event). nil: those
	// NewReporters builds, else none. A non-nil empty slice reports
	// nothing, as the non-zero ranks of a multi-process run do. Reporters
	// implementing io.Closer are closed when the run ends.
	Reporters []event.Reporter
	// NewReporters, when Reporters is nil, builds the run's reporters on
	// rank 0 once the run has checked its data and save dir, from the run's
	// configuration (the command line passes report.ForRun over the output
	// fields above: Console, Progress, MetricsAddr, LogSelected,
	// TensorBoard). The metrics server it may start stops when ctx ends.
	NewReporters func(ctx context.Context, cfg RunConfig) ([]event.Reporter, error)

	// Group is the process group of a data-parallel run (nil: one process).
	// Every rank runs the same RunConfig; rank 0 writes checkpoints and
	// reports, the others report nothing (see dist.go).
	Group *torch.ProcessGroup

	// PhaseHook, when set, is called at the start of each phase of an
	// iteration (PhaseInference and PhaseTraining of a selection-aware
	// iteration; PhaseValidation and PhaseCheckpoint of both loops) with the
	// iteration, on the run's goroutine; the run waits for it. The signal tests of bin/satrain use it
	// to deliver a signal inside a chosen phase.
	PhaseHook func(ctx context.Context, phase string, it int)
	// Hooks for tests: called after each iteration's checkpointing.
	AfterIteration func(it int)
	// testFault is handed to the Engine (see Engine.fault); tests only.
	testFault func(op string, feats []float32, n int) error
}

// IterationRecord is one iteration (epoch) of a RunResult: the
// event.IterationEnded the run emitted for it (what metrics.jsonl, the
// console and Prometheus record: one record type for an iteration), plus the
// sequences the iteration selected and trained on.
type IterationRecord struct {
	event.IterationEnded
	Selected   []loader.SeqID // the top k, best first (selection-aware)
	TrainedIDs []loader.SeqID // what it trained on (selection-aware)

	// For tests: the iteration's scored sample and its ranking scores
	// (selection-aware only).
	sample []loader.SeqID
	scores []float64
}

// RunResult summarises a finished (or interrupted) run.
type RunResult struct {
	Iterations []IterationRecord
	// StartValLoss is the validation loss of the weights a run started
	// from (iteration 0; nil when it started fresh or resumed).
	StartValLoss *float64
	BestValLoss  float64
	BestPath     string
	LastIter     int
	Interrupted  bool
}

// ErrInterrupted is returned when a signal stopped the run after a checkpoint.
var ErrInterrupted = errors.New("interrupted")

// StoppedError is a run that stopped before its end with a checkpoint that
// continues it: interrupted by a signal (Err is ErrInterrupted) or stopped
// after too many consecutive non-finite steps (Err wraps
// model.ErrTooManySkips). The command line turns it into the command to
// paste (bin/satrain); Error gives the same sentence with the flags only.
type StoppedError struct {
	Err    error    // ErrInterrupted, or the model.ErrTooManySkips error
	Detail string   // what happened and where the state is
	Kind   string   // the kind of run that continues from Resume
	Resume string   // the checkpoint to continue from
	Then   string   // how to continue, e.g. "continue with"
	Extra  []string // further arguments after --resume-from, e.g. --lr LOWER_LR
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("%v: %s; %s: --resume-from %s%s", e.Err, e.Detail, e.Then, e.Resume, strings.Join(append([]string{""}, e.Extra...), " "))
}

func (e *StoppedError) Unwrap() error { return e.Err }

// ErrNoFiniteValidation is returned (wrapped) by a run that did every
// iteration but never had a finite validation loss: it wrote no best model.
var ErrNoFiniteValidation = errors.New("no finite validation loss")

type session struct {
	prevTop  map[loader.SeqID]int // the previous iteration's top-k (selection-aware), for the overlap
	cfg      RunConfig
	kind     string
	ds       *loader.Dataset
	eng      *model.Engine
	rep      event.Reporters
	closers  []io.Closer
	meta     checkpoint.Meta
	start    event.Start
	valIDs   []loader.SeqID
	train    *loader.Split
	strat    selection.Strategy
	perEpoch int64 // standard: sequences per epoch
	horizon  int
	it       int  // the iteration (epoch) in progress, for events
	logits   bool // score keeps the logits (the strategy's Weights use them)
	writer   checkpoint.Writer
	lastCkpt string    // the last checkpoint with optimizer state written
	bestPath string    // the best model so far of the run a resume continues (see resumeBest)
	pool     *bufPool  // scoring batch buffers, reused across passes
	trainBuf []float32 // selected windows, reused across iterations
	dist     distState
	lock     *checkpoint.SaveDirLock // rank 0: the save dir's, held for the whole run
	unsaved  bool                    // training steps applied since lastCkpt (or since the start)
}

// stepTaken is set once any run of this process applies a training step.
var stepTaken atomic.Bool

// StepTaken reports whether this process has applied a training step. Until
// then an interrupted run has nothing of its own to save, so a stop request
// can end the process at once (in a rendezvous, a first scoring pass of a
// large model) instead of waiting for a step boundary.
func StepTaken() bool { return stepTaken.Load() }

func (s *session) emit(e event.Event) { s.rep.Report(e) }

// passProgress reports the progress of one pass (scoring, training or
// validation) as event.Progress.
type passProgress struct {
	s           *session
	phase       string
	done, total int
}

func (s *session) startPass(phase string, total int) *passProgress {
	s.emit(event.Progress{Iteration: s.it, Phase: phase, Total: total})
	return &passProgress{s: s, phase: phase, total: total}
}

func (p *passProgress) add(n int) {
	p.done += n
	p.s.emit(event.Progress{Iteration: p.s.it, Phase: p.phase, Done: p.done, Total: p.total})
}

func (c *RunConfig) defaults() {
	if c.Console == nil {
		c.Console = os.Stdout
	}
	if c.ValEvery <= 0 {
		c.ValEvery = 5
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 10
	}
	if c.Run == nil {
		c.Run = map[string]string{}
	}
}

// Validate checks the flags that do not need the data file.
func (c *RunConfig) Validate(selection bool) error {
	if selection {
		switch {
		case c.SampleSize < 1:
			return option.Errorf("{sample-size} must be >= 1, got %d", c.SampleSize)
		case c.TopK < 1:
			return option.Errorf("{top-k} must be >= 1, got %d", c.TopK)
		case c.TopK > c.SampleSize:
			return option.Errorf("{top-k} %d is larger than {sample-size} %d", c.TopK, c.SampleSize)
		case c.EpochsPerIteration < 1:
			return option.Errorf("{train-epochs-per-iteration} must be >= 1, got %d", c.EpochsPerIteration)
		case c.NumIterations < 1:
			return option.Errorf("{num-iterations} must be >= 1, got %d", c.NumIterations)
		case c.HorizonIdx < 0:
			return option.Errorf("{horizon-idx} must be >= 0, got %d", c.HorizonIdx)
		}
	} else if c.Epochs < 1 {
		return option.Errorf("{epochs} must be >= 1, got %d", c.Epochs)
	}
	switch {
	case c.BatchSize < 1:
		return option.Errorf("{batch-size} must be >= 1, got %d", c.BatchSize)
	case c.InferenceBatch < 1:
		return option.Errorf("{inference-batch-size} must be >= 1, got %d", c.InferenceBatch)
	case c.Step.LR <= 0 || math.IsNaN(c.Step.LR) || math.IsInf(c.Step.LR, 0):
		return option.Errorf("{lr} must be a positive number, got %g", c.Step.LR)
	case c.Data == "":
		return option.Errorf("{data} is required")
	}
	if _, err := os.Stat(c.Data); err != nil {
		return option.Errorf("{data} %s: %w", c.Data, err)
	}
	if c.ResumeFrom != "" {
		if _, err := os.Stat(c.ResumeFrom); err != nil {
			return option.Errorf("{resume-from} %s: %w", c.ResumeFrom, err)
		}
	}
	m := c.Model
	m.NumFeatures, m.NumHorizons, m.NumBins = 1, 1, 2
	if err := m.Validate(); err != nil {
		return err
	}
	if err := c.Strategy.Validate(c.selectionConfig()); err != nil {
		return err
	}
	return torch.CheckDevice(c.Device)
}

// architectureDiff names each architecture field where the run's model
// config differs from a checkpoint's (they cannot change on resume).
func architectureDiff(run, ckpt model.Config) []string {
	var d []string
	for _, f := range []struct {
		flag      string
		run, ckpt int
	}{{"{hidden-dim}", run.HiddenDim, ckpt.HiddenDim}, {"{num-layers}", run.NumLayers, ckpt.NumLayers}, {"{num-heads}", run.NumHeads, ckpt.NumHeads}} {
		if f.run != f.ckpt {
			d = append(d, fmt.Sprintf("%s %d (the checkpoint has %d)", f.flag, f.run, f.ckpt))
		}
	}
	return d
}

// stageOf is the lineage stage of a run of kind that starts from a
// checkpoint of fromKind/fromStage ("" when fresh).
func stageOf(kind, fromKind, fromStage string) string {
	if kind == KindStandard {
		return checkpoint.StageStandard
	}
	if fromKind == KindStandard || fromStage == checkpoint.StageTwoStage {
		return checkpoint.StageTwoStage
	}
	return checkpoint.StageSelectionAware
}

// open prepares data, model, optimizer, reporters and the save dir, then
// emits RunStarted. A start-up failure prints nothing, removes the save dir
// folders it created, and returns one error.
func open(ctx context.Context, cfg RunConfig, kind string) (_ *session, err error) {
	cfg.defaults()
	s := &session{cfg: cfg, kind: kind, strat: cfg.Strategy}
	if err := s.initDist(); err != nil {
		return nil, err
	}
	if cfg.Threads > 0 {
		if err := torch.SetNumThreads(cfg.Threads); err != nil {
			return nil, err
		}
	}
	// Only rank 0 touches the save dir.
	created := ""
	if s.rank0() {
		if created, err = checkpoint.RunDir(cfg.SaveDir).Prepare(); err != nil {
			return nil, err
		}
		// One live run per save dir: before anything in it is read for
		// resuming, removed or written.
		if s.lock, err = checkpoint.LockSaveDir(cfg.SaveDir); err != nil {
			checkpoint.RunDir(cfg.SaveDir).RemoveCreated(created)
			if errors.Is(err, checkpoint.ErrSaveDirLocked) {
				return nil, option.Errorf("{save-dir} %w", err)
			}
			return nil, option.Errorf("{save-dir} %s: %w", cfg.SaveDir, err)
		}
		checkpoint.RunDir(cfg.SaveDir).DropEmptyMetricsLog(cfg.ResumeFrom, kind)
	}
	defer func() {
		if err != nil {
			s.close()
			checkpoint.RunDir(cfg.SaveDir).RemoveCreated(created)
		}
	}()
	if cfg.ResumeFrom == "" && !cfg.Overwrite && s.rank0() {
		if err := checkpoint.CheckSaveDirFree(cfg.SaveDir); err != nil {
			return nil, err
		}
	}
	opt := cfg.DataOpt
	opt.SeqLen = cfg.Model.SeqLen
	if opt.Seed == 0 {
		opt.Seed = cfg.Seed
	}
	ds, err := loader.Open(cfg.Data, opt)
	if err != nil {
		return nil, err
	}
	s.ds = ds
	if kind == KindSelectionAware {
		if err := loader.CheckHorizon(cfg.HorizonIdx, cfg.Data, ds.Horizons()); err != nil {
			return nil, err
		}
	}
	s.horizon = cfg.HorizonIdx
	s.train = ds.Split("train")
	if s.train.Len() == 0 {
		return nil, fmt.Errorf("%s: the training split is empty", cfg.Data)
	}
	mc := cfg.Model
	mc.NumFeatures, mc.NumHorizons, mc.NumBins = ds.NumFeatures(), len(ds.Horizons()), ds.NumBins()
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	s.meta = checkpoint.Meta{Kind: kind, BestValLoss: math.Inf(1), Seed: cfg.Seed, DataPath: cfg.Data,
		DataIdentity: ds.Identity(), InferenceBatch: cfg.InferenceBatch, Run: cfg.Run, Stage: stageOf(kind, "", "")}
	s.meta.TrainEnd, s.meta.ValEnd = ds.PeriodStarts()
	s.start = event.Start{Mode: event.StartFresh, BestValLoss: math.Inf(1)}
	var mdl *model.Model
	var loaded *checkpoint.Loaded
	if cfg.ResumeFrom != "" {
		loaded, err = checkpoint.Load(cfg.ResumeFrom)
		if err != nil {
			return nil, err
		}
		defer loaded.Free()
		lc := loaded.Config
		if lc.NumFeatures != mc.NumFeatures || lc.NumHorizons != mc.NumHorizons || lc.NumBins != mc.NumBins {
			return nil, option.Errorf("{resume-from} %s: model has %d features, %d horizons, %d bins; %s has %d, %d, %d",
				cfg.ResumeFrom, lc.NumFeatures, lc.NumHorizons, lc.NumBins, cfg.Data, mc.NumFeatures, mc.NumHorizons, mc.NumBins)
		}
		if d := architectureDiff(mc, lc); len(d) > 0 {
			return nil, option.Errorf("{resume-from} %s: the architecture cannot change: %s; leave these flags out to use the checkpoint's",
				cfg.ResumeFrom, strings.Join(d, ", "))
		}
		lc.Dropout, lc.SeqLen = mc.Dropout, mc.SeqLen
		mc = lc
		if loaded.Meta.DataIdentity != ds.Identity() {
			slog.Warn("checkpoint was trained on a different data file", "checkpoint_data", loaded.Meta.DataPath, "data", cfg.Data)
		}
		s.start = event.Start{Mode: event.StartWeights, From: cfg.ResumeFrom, FromKind: loaded.Meta.Kind,
			Iteration: loaded.Meta.Iteration, BestValLoss: loaded.Meta.BestValLoss}
		if loaded.Meta.Kind == kind && loaded.HasOptim {
			s.start.Mode = event.StartResume
			s.start.Branch = !checkpoint.InPlace(loaded.Meta, cfg.ResumeFrom, cfg.SaveDir)
			if s.start.Branch {
				// A new run from the checkpoint's state: its own save dir
				// gets its own first checkpoint when stopped.
				s.unsaved = true
			} else {
				// Its state is the checkpoint's until the first step.
				s.lastCkpt = cfg.ResumeFrom
			}
			if err := checkLogSelected(cfg, loaded.Meta); err != nil {
				return nil, err
			}
		}
		if (s.start.Mode != event.StartResume || s.start.Branch) && !cfg.Overwrite && s.rank0() {
			// Fine-tuning, or a resume into another save dir, is a new
			// run: its save dir must not hold another.
			if err := checkpoint.CheckSaveDirFree(cfg.SaveDir); err != nil {
				return nil, err
			}
		}
		mdl, err = loaded.NewModel(cfg.Device)
	} else {
		mdl, err = model.New(mc, cfg.Device, uint64(cfg.Seed))
	}
	if err != nil {
		return nil, err
	}
	mdl.Cfg = mc
	eng, err := model.NewEngine(mdl, cfg.Step, ds.BinCenters(), cfg.InferenceBatch)
	if err != nil {
		mdl.Free()
		return nil, err
	}
	s.eng = eng
	eng.Fault = cfg.testFault
	if err := s.broadcastWeights(); err != nil {
		return nil, err
	}
	if loaded != nil {
		m := loaded.Meta
		// Weights that continue others have seen what those saw too.
		s.meta.TrainEnd, s.meta.ValEnd = max(s.meta.TrainEnd, m.TrainEnd), max(s.meta.ValEnd, m.ValEnd)
		if s.start.Mode == event.StartResume {
			if err := loaded.RestoreOptimizer(eng); err != nil {
				return nil, err
			}
			s.meta.Iteration, s.meta.BestValLoss, s.meta.BestIteration = m.Iteration, m.BestValLoss, m.BestIteration
			s.meta.SequencesScored, s.meta.SequencesTrained, s.meta.StepsSkipped = m.SequencesScored, m.SequencesTrained, m.StepsSkipped
			// The same run goes on: its lineage is the one it started with.
			s.meta.StartedFrom, s.meta.StartedFromChecksum = m.StartedFrom, m.StartedFromChecksum
			if m.Stage != "" {
				s.meta.Stage = m.Stage
			}
			if m.InferenceBatch > 0 && m.InferenceBatch < cfg.InferenceBatch {
				eng.InferenceBatch = m.InferenceBatch
			}
			eng.Skipped = m.StepsSkipped
		} else {
			s.meta.StartedFrom, s.meta.StartedFromChecksum = cfg.ResumeFrom, loaded.Checksum
			s.meta.Stage = stageOf(kind, m.Kind, m.Stage)
		}
	}
	if kind == KindSelectionAware {
		if err := s.strat.Prepare(ds, s.train); err != nil {
			return nil, err
		}
		s.logits = s.strat.NeedsLogits() || s.strat.NeedsSigma()
	} else {
		s.perEpoch = s.train.Len()
		if cfg.MaxSeqsPerEpoch > 0 && int64(cfg.MaxSeqsPerEpoch) < s.perEpoch {
			s.perEpoch = int64(cfg.MaxSeqsPerEpoch)
		}
	}
	s.valIDs = ds.ValidationSet()
	rs := cfg.Reporters
	if !s.rank0() {
		rs = []event.Reporter{}
	}
	if rs == nil && cfg.NewReporters != nil {
		if rs, err = cfg.NewReporters(ctx, cfg); err != nil {
			return nil, err
		}
	}
	s.rep = rs
	for _, r := range rs {
		if c, ok := r.(io.Closer); ok {
			s.closers = append(s.closers, c)
		}
	}
	if s.rank0() {
		if cfg.Overwrite && (s.start.Mode != event.StartResume || s.start.Branch) {
			if err := checkpoint.RunDir(cfg.SaveDir).Clear(); err != nil {
				return nil, err
			}
		}
		checkpoint.RunDir(cfg.SaveDir).RemoveStaleTemps()
		if s.start.Mode == event.StartResume {
			s.resumeBest(loaded.Meta)
		}
	}
	eng.OnOOM = func(n int) { s.emit(event.InferenceBatchChanged{Size: n}) }
	s.writer.OnWritten = func(path string, bytes int, sec float64) {
		s.emit(event.CheckpointWritten{Path: path, Bytes: bytes, Seconds: sec})
	}
	s.emit(s.runStarted())
	if s.rank0() {
		// A model too large for its device makes every pass, and every wait
		// for a stop request, take hours: say so before the first one.
		pass, what := int64(cfg.SampleSize), "a scoring pass"
		if kind == KindStandard {
			pass, what = 3*s.perEpoch, "an epoch's training (3 forward passes' worth a sequence)"
		}
		if w := model.SlowModelWarning(eng.Model.Cfg, pass/int64(s.world()), what, eng.InferenceBatch, cfg.Device, cfg.Threads); w != "" {
			slog.Warn(w)
		}
	}
	return s, nil
}

func (s *session) runStarted() event.RunStarted {
	cfg, m := s.cfg, s.eng.Model
	e := event.RunStarted{RunID: newRunID(time.Now()), Kind: s.kind, Strategy: KindStandard, BatchSize: cfg.BatchSize,
		InferenceBatch: s.eng.InferenceBatch, LR: cfg.Step.LR, Seed: cfg.Seed, Version: cfg.Version,
		Data: cfg.Data, Mode: s.ds.Mode(), Tickers: s.ds.Tickers(), Dates: s.ds.Dates(), TrainSequences: s.train.Len(),
		ValSequences: int64(len(s.valIDs)), Params: model.FormatParams(m.NumParams()), ModelDesc: m.Cfg.String(),
		Device: m.Device.String(), TorchVersion: torch.Version(), AMP: s.eng.AMP(), SaveDir: cfg.SaveDir,
		Start: s.start, FirstIteration: s.meta.Iteration + 1, WorldSize: s.world()}
	if s.world() > 1 {
		e.Backend = s.dist.pg.Backend().String()
	}
	if s.kind == KindSelectionAware {
		e.Strategy = s.strat.Name()
		e.SampleSize, e.TopK, e.EpochsPerIteration, e.NumIterations = cfg.SampleSize, cfg.TopK, cfg.EpochsPerIteration, cfg.NumIterations
		e.Horizon = model.HorizonName(s.ds.Horizons()[s.horizon])
		e.SelectBy = "expected_return"
		if s.strat.SelectBy == "loss" || s.strat.SelectBy == "random" {
			e.SelectBy = s.strat.SelectBy
		}
		for _, l := range strings.Split(s.strat.Describe(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				e.StrategyNotes = append(e.StrategyNotes, l)
			}
		}
		if ref := ReferencePrecision(cfg.Step); cfg.Score.Active(ref) {
			e.StrategyNotes = append(e.StrategyNotes, fmt.Sprintf("Score the sample in %s, rescore the best %d in %s (scoring cascade)",
				cfg.Score.Precision, cfg.Score.M(cfg.TopK, cfg.SampleSize), ref))
		}
	} else {
		e.Epochs, e.SequencesPerEpoch = cfg.Epochs, s.perEpoch
	}
	return e
}

func (s *session) close() {
	if err := s.writer.Wait(); err != nil {
		slog.Error("checkpoint write failed", "err", err)
	}
	if s.eng != nil {
		s.eng.Free()
		s.eng.Model.Free()
	}
	if s.ds != nil {
		s.ds.Close()
	}
	for _, c := range s.closers {
		if err := c.Close(); err != nil {
			slog.Error("closing a reporter", "err", err)
		}
	}
	s.closers = nil
	// Last: the run's final checkpoint and logs are written.
	s.lock.Release()
	s.lock = nil
}

// bufPool holds the host feature buffers (pinned on CUDA) the loader reads
// scoring batches into. It is made on the torch thread and kept by the
// session, so pinned memory is allocated once per batch size, not per pass.
type bufPool struct {
	floats int
	bufs   [][]float32
	ch     chan []float32
}

const poolBuffers = 4 // the loader holds at most Depth+1 = 3 batches

// scorePool returns the session's pool for batches of floats values, ready
// for a new stream (every buffer free).
func (s *session) scorePool(floats int) *bufPool {
	if s.pool == nil || s.pool.floats != floats {
		if s.pool != nil {
			for _, b := range s.pool.bufs {
				s.eng.ReleasePinned(b)
			}
		}
		s.pool = &bufPool{floats: floats, ch: make(chan []float32, poolBuffers)}
		for i := 0; i < poolBuffers; i++ {
			s.pool.bufs = append(s.pool.bufs, s.eng.PinnedFeatures(floats))
		}
	}
	for len(s.pool.ch) > 0 {
		<-s.pool.ch
	}
	for _, b := range s.pool.bufs {
		s.pool.ch <- b
	}
	return s.pool
}

// get is the loader's allocator (called on its goroutine).
func (p *bufPool) get(n int) []float32 {
	select {
	case b := <-p.ch:
		if len(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]float32, n)
}

// trainBuffer returns a host buffer of n floats for the selected windows,
// reusing the previous iteration's (pinned on CUDA) when it is large enough.
func (s *session) trainBuffer(n int) []float32 {
	if cap(s.trainBuf) < n {
		if s.trainBuf != nil {
			s.eng.ReleasePinned(s.trainBuf[:cap(s.trainBuf)])
		}
		s.trainBuf = s.eng.PinnedFeatures(n)
	}
	return s.trainBuf[:n]
}

// scoreLocal runs inference over ids in this process, streaming windows from
// the loader with prefetch. It returns expected returns [n][H] and the time
// spent waiting for data versus computing. score (dist.go) shares the ids
// out over the ranks of a data-parallel run.
func (s *session) scoreLocal(ctx context.Context, ids []loader.SeqID, labels bool, phase string) (model.InferResult, time.Duration, time.Duration, []int64, []float32, error) {
	pool := s.scorePool(s.eng.InferenceBatch * s.eng.Model.Cfg.SeqLen * s.ds.NumFeatures())
	var res model.InferResult
	var allLabels []int64
	var allReturns []float32
	prog := s.startPass(phase, len(ids))
	opt := eval.StreamOptions{Labels: labels, Logits: s.logits, NewFeatures: pool.get}
	ioWait, compute, err := eval.Stream(ctx, s.eng, s.ds, ids, opt, func(b *loader.Batch, out model.InferResult) error {
		res.Expected = append(res.Expected, out.Expected...)
		res.Loss = append(res.Loss, out.Loss...)
		res.Logits = append(res.Logits, out.Logits...)
		allLabels = append(allLabels, b.Labels...)
		allReturns = append(allReturns, b.Returns...)
		prog.add(len(b.IDs))
		return nil
	})
	if err != nil {
		return res, ioWait, compute, nil, nil, err
	}
	return res, ioWait, compute, allLabels, allReturns, nil
}

// validate returns the mean loss over the validation set.
func (s *session) validate(ctx context.Context) (float64, error) {
	if len(s.valIDs) == 0 {
		return math.NaN(), nil
	}
	res, _, _, err := s.score(ctx, s.valIDs, true, PhaseValidation)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range res.Loss {
		sum += float64(l)
	}
	return sum / float64(len(res.Loss)), nil
}

// trainPass is what a call of trainOn did.
type trainPass struct {
	Loss    float64 // mean loss of the applied steps (NaN when none)
	Trained int64   // sequence-passes in applied steps (skipped steps train nothing)
	Steps   int64   // optimizer steps attempted, applied or skipped
	Skipped int64   // steps skipped for a non-finite loss or gradient
}

// trainOn reads the windows of ids once and trains epochs passes over them in
// shuffled batches. weights (may be nil) are per id. prog (nil: a new pass of
// n x epochs) is the progress it reports to. On an error the pass holds what
// was done before it.
func (s *session) trainOn(ctx context.Context, ids []loader.SeqID, weights []float32, epochs int, rng *rand.Rand, prog *passProgress) (trainPass, error) {
	seqLen, F, H := s.eng.Model.Cfg.SeqLen, s.ds.NumFeatures(), len(s.ds.Horizons())
	n := len(ids)
	bs := s.cfg.BatchSize
	// The epochs' shuffled orders, drawn up front (the same draws as one
	// epoch at a time). Each batch of bs is split over the ranks (dist.go);
	// this rank reads only the windows of its shares.
	orders := make([][]int, epochs)
	for ep := range orders {
		orders[ep] = rng.Perm(n)
	}
	row := s.localRows(orders, n, bs)
	var mine []loader.SeqID
	for i, r := range row {
		if r >= 0 {
			mine = append(mine, ids[i])
		}
	}
	feats := s.trainBuffer(len(mine) * seqLen * F)
	labels := make([]int64, len(mine)*H)
	var tp trainPass
	if err := s.ds.ReadWindows(mine, feats, labels, nil); err != nil {
		return tp, err
	}
	bf := make([]float32, 0, bs*seqLen*F)
	bl := make([]int64, 0, bs*H)
	var bw []float32
	var lossSum float64
	mean := func() float64 {
		if applied := tp.Steps - tp.Skipped; applied > 0 {
			return lossSum / float64(applied)
		}
		return math.NaN()
	}
	if prog == nil {
		prog = s.startPass(PhaseTraining, n*epochs)
	}
	for _, order := range orders {
		for start := 0; start < n; start += bs {
			end := min(start+bs, n)
			lo, hi := s.share(end - start)
			bf, bl = bf[:0], bl[:0]
			for _, i := range order[start+lo : start+hi] {
				r := row[i]
				bf = append(bf, feats[r*seqLen*F:(r+1)*seqLen*F]...)
				bl = append(bl, labels[r*H:(r+1)*H]...)
			}
			var w []float32
			if weights != nil {
				// Normalised over the global batch, then this rank's share.
				bw = bw[:0]
				for _, i := range order[start:end] {
					bw = append(bw, weights[i])
				}
				w = normalizeWeights(bw)[lo:hi]
			}
			r, err := s.eng.TrainShard(bf, bl, w, hi-lo, seqLen, end-start)
			if r.Skipped {
				s.emit(event.StepSkipped{Iteration: s.it, Total: s.eng.Skipped})
			}
			if err != nil {
				tp.Loss = mean()
				return tp, err
			}
			// Every rank takes the same skip decision (trainStep), and
			// end-start is the global batch, so the counts do not depend
			// on the world size.
			tp.Steps++
			s.unsaved = true
			stepTaken.Store(true)
			if r.Skipped {
				tp.Skipped++
			} else {
				lossSum += r.Loss
				tp.Trained += int64(end - start)
			}
			prog.add(end - start)
			if ctx.Err() != nil {
				tp.Loss = mean()
				return tp, ctx.Err()
			}
		}
	}
	tp.Loss = mean()
	return tp, nil
}

// normalizeWeights scales weights to mean 1 within a batch.
func normalizeWeights(w []float32) []float32 {
	var sum float64
	for _, v := range w {
		sum += float64(v)
	}
	out := make([]float32, len(w))
	if sum <= 0 {
		for i := range out {
			out[i] = 1
		}
		return out
	}
	for i, v := range w {
		out[i] = float32(float64(v) * float64(len(w)) / sum)
	}
	return out
}

// save writes a checkpoint to path (one of s.dir()'s names) in the
// background (the checkpoint writer), and on rank 0 only.
func (s *session) save(path string, withOpt bool) (string, error) {
	s.meta.StepsSkipped = s.eng.Skipped
	s.meta.InferenceBatch = s.eng.InferenceBatch
	if !s.rank0() {
		if withOpt {
			s.lastCkpt, s.unsaved = path, false
		}
		return path, nil
	}
	if err := s.writer.Save(path, s.eng, s.meta, withOpt); err != nil {
		return path, err
	}
	if withOpt {
		s.lastCkpt, s.unsaved = path, false
	}
	return path, nil
}

// saveNow writes a checkpoint and waits until it (and every earlier one) is on disk.
func (s *session) saveNow(path string, withOpt bool) (string, error) {
	path, err := s.save(path, withOpt)
	if err != nil {
		return path, err
	}
	if err := s.writer.Wait(); err != nil {
		return path, err
	}
	return path, s.barrier()
}

// deviceMemory reads the CUDA allocator's figures (ok false on the CPU).
func (s *session) deviceMemory() (allocated, peak int64, ok bool) {
	if !s.eng.Model.Device.IsCUDA() {
		return 0, 0, false
	}
	st, err := torch.DeviceMemory(s.eng.Model.Device)
	if err != nil {
		return 0, 0, false
	}
	return st.Allocated, st.Peak, true
}

func iterSeed(seed int64, it int, salt int64) int64 {
	return seed*1_000_003 + int64(it)*7919 + salt
}

// atPhase calls the run's PhaseHook, if any, at the start of phase.
func (s *session) atPhase(ctx context.Context, phase string, it int) {
	if s.cfg.PhaseHook != nil {
		s.cfg.PhaseHook(ctx, phase, it)
	}
}

// dir is the run's save dir, which names every file the run writes.
func (s *session) dir() checkpoint.RunDir { return checkpoint.RunDir(s.cfg.SaveDir) }

// validateAndKeep validates the current weights as iteration it and, when
// the loss beats the best so far, saves them as the best model. stopErr is an
// error of the validation itself (for stop); fatal one of the save.
func (s *session) validateAndKeep(ctx context.Context, it int, phase map[string]float64, res *RunResult) (vl float64, stopErr, fatal error) {
	s.emit(event.ValidationStarted{Iteration: it, Sequences: len(s.valIDs)})
	t0 := time.Now()
	if it > 0 {
		s.atPhase(ctx, PhaseValidation, it)
	}
	vl, err := s.validate(ctx)
	phase[PhaseValidation] = time.Since(t0).Seconds()
	if err != nil {
		return vl, err, nil
	}
	ev := event.Validated{Iteration: it, Loss: vl}
	if finite(vl) < s.meta.BestValLoss {
		s.meta.BestValLoss, s.meta.BestIteration = vl, it
		t1 := time.Now()
		path, err := s.save(s.dir().Best(s.kind), false)
		phase[PhaseCheckpoint] += time.Since(t1).Seconds()
		if err != nil {
			return vl, nil, err
		}
		res.BestPath = path
		ev.Best, ev.BestPath = true, path
	}
	ev.BestLoss = s.meta.BestValLoss
	s.emit(ev)
	return vl, nil, nil
}

// validateStart is iteration 0 of a run that starts from another run's
// weights: it validates them and keeps them as the best model to beat, so
// fine-tuning never reports a "best" that is worse than where it started.
func (s *session) validateStart(ctx context.Context, res *RunResult, total int) (stopErr, fatal error) {
	if s.start.Mode != event.StartWeights {
		return nil, nil
	}
	t0 := time.Now()
	s.it = 0
	phase := map[string]float64{}
	s.emit(event.IterationStarted{Kind: s.kind, Iteration: 0, Total: total})
	vl, stopErr, fatal := s.validateAndKeep(ctx, 0, phase, res)
	if stopErr != nil || fatal != nil {
		return stopErr, fatal
	}
	res.StartValLoss = &vl
	res.BestValLoss = s.meta.BestValLoss
	s.emit(event.IterationEnded{Kind: s.kind, Strategy: s.strategyName(), Iteration: 0, Time: time.Now().UTC().Format(time.RFC3339),
		TrainLoss: math.NaN(), ValLoss: vl, Validated: true, ERMean: math.NaN(), ERMedian: math.NaN(), TopKERMean: math.NaN(),
		TopKERMin: math.NaN(), Overlap: math.NaN(), ScoredTotal: s.meta.SequencesScored, TrainedTotal: s.meta.SequencesTrained,
		SkippedTotal: s.eng.Skipped, PhaseSeconds: phase, IterationSeconds: time.Since(t0).Seconds()})
	return nil, nil
}

func (s *session) strategyName() string {
	if s.kind == KindStandard {
		return "standard"
	}
	return s.strat.Name()
}

// finish ends a run: it waits for the checkpoint writes, turns a finished
// run without any finite validation loss into ErrNoFiniteValidation, and
// emits RunEnded.
func (s *session) finish(res *RunResult, err error) (*RunResult, error) {
	if werr := s.writer.Wait(); werr != nil && err == nil {
		err = werr
	}
	if err == nil {
		// Every rank ends with rank 0's files on disk.
		err = s.barrier()
	}
	finished := err == nil
	if finished && math.IsInf(s.meta.BestValLoss, 1) {
		why := "every validation loss was NaN or infinite"
		if len(s.valIDs) == 0 {
			why = "the validation set is empty"
		}
		unit := "iterations"
		if s.kind == KindStandard {
			unit = "epochs"
		}
		err = option.Errorf("%w after %d %s (%s): no best model was written; the last checkpoint is %s; lower {lr}, set {max-grad-norm}, or check the data",
			ErrNoFiniteValidation, res.LastIter, unit, why, s.lastCkpt)
	}
	if res != nil {
		res.BestValLoss = s.meta.BestValLoss
		if res.BestPath == "" {
			// No better model since the resume: the best is the one it found.
			res.BestPath = s.bestPath
		}
	}
	e := event.RunEnded{Kind: s.kind, Iterations: s.meta.Iteration, BestValLoss: s.meta.BestValLoss,
		BestIteration: s.meta.BestIteration, Finished: finished, Err: err}
	if res != nil {
		e.BestPath = res.BestPath
	}
	s.emit(e)
	return res, err
}

// stop handles an error in iteration it during phase. On a signal it writes
// a checkpoint and says how to resume. The checkpoint's iteration is the last
// one completed. If the signal came during training, the weights already hold
// part of iteration it's updates: that state goes to its own file
// (checkpoint_interrupted_iter_N.pt) so that no periodic checkpoint is
// overwritten with it, and resuming re-runs iteration it from there.
func (s *session) stop(ctx context.Context, res *RunResult, it int, phase string, err error) (*RunResult, error) {
	if ctx.Err() == nil {
		if errors.Is(err, model.ErrTooManySkips) {
			return s.stopLastGood(res, it, err)
		}
		return res, err
	}
	unit := "iteration"
	if s.kind == KindStandard {
		unit = "epoch"
	}
	completed := s.meta.Iteration
	partial := phase == PhaseTraining && completed < it
	name := s.dir().Periodic(s.kind, completed)
	what := fmt.Sprintf("interrupted during %s of %s %d; %s %d is the last completed", phase, unit, it, unit, completed)
	if partial {
		name = s.dir().Interrupted(s.kind, it)
		what += fmt.Sprintf(" (the weights include part of %s %d's training; resuming re-runs %s %d)", unit, it, unit, it)
	}
	res.Interrupted = true
	if !s.unsaved {
		// Nothing trained since the last checkpoint (or at all): writing
		// one would only cost time, and the user is waiting.
		if err := s.writer.Wait(); err != nil {
			return res, fmt.Errorf("interrupted, and the checkpoint failed: %w", err)
		}
		s.emit(event.Interrupted{Iteration: it, Completed: completed, Phase: phase, Path: s.lastCkpt})
		if s.lastCkpt == "" {
			return res, fmt.Errorf("%w: %s, before any training step: nothing to save; run the same command to start again", ErrInterrupted, what)
		}
		return res, &StoppedError{Err: ErrInterrupted, Detail: fmt.Sprintf("%s; nothing new since %s", what, s.lastCkpt),
			Kind: s.kind, Resume: s.lastCkpt, Then: "continue with"}
	}
	path, serr := s.saveNow(name, true)
	if serr != nil {
		return res, fmt.Errorf("interrupted, and the checkpoint failed: %w", serr)
	}
	s.emit(event.Interrupted{Iteration: it, Completed: completed, Phase: phase, Path: path, Partial: partial})
	return res, &StoppedError{Err: ErrInterrupted, Detail: fmt.Sprintf("%s; state saved to %s", what, path),
		Kind: s.kind, Resume: path, Then: "continue with"}
}

// stopLastGood saves the current weights and optimizer state after
// model.ErrTooManySkips in iteration it: skipped steps never touch them, so they
// are those of the last finite step.
func (s *session) stopLastGood(res *RunResult, it int, err error) (*RunResult, error) {
	path, serr := s.saveNow(s.dir().LastGood(), true)
	if serr != nil {
		return res, fmt.Errorf("%w; saving the last good weights failed too: %v", err, serr)
	}
	s.emit(event.TrainingStopped{Iteration: it, Completed: s.meta.Iteration, Path: path})
	return res, &StoppedError{Err: err, Kind: s.kind, Resume: path, Extra: []string{"--lr", "LOWER_LR"},
		Detail: fmt.Sprintf("training stopped in iteration %d (iteration %d is the last completed); the last good weights are in %s", it, s.meta.Iteration, path),
		Then:   "check the data, then continue with a lower learning rate"}
}

// finite returns v, or +Inf for NaN (for "best so far" comparisons).
func finite(v float64) float64 {
	if math.IsNaN(v) {
		return math.Inf(1)
	}
	return v
}
