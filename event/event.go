// Package event holds what a training run reports: the typed events the
// loops of package trainer emit, and the Reporter interface that turns them
// into output (console, progress display, Prometheus series, metrics.jsonl;
// see package report). The loops compute and emit; they never print.
//
// A run emits, in order:
//
//	RunStarted
//	iteration 0 of a run that starts from another run's weights:
//	  IterationStarted, ValidationStarted, Progress*, Validated, IterationEnded
//	per iteration (selection-aware):
//	  IterationStarted, Progress*, SampleScored, SubsetSelected,
//	  TrainingStarted, Progress*, StepSkipped*, Trained,
//	  [ValidationStarted, Progress*, Validated]   every ValEvery and the last
//	  CheckpointWritten*                           as background writes finish
//	  IterationEnded
//	per epoch (standard): the same without SampleScored and SubsetSelected,
//	  validating every epoch
//	then RunEnded, or Interrupted then RunEnded.
//
// Events are delivered synchronously on the training goroutine: a reporter
// must not block for long and must not call into torch. Values a run could
// not measure are NaN (never 0); a reporter decides how to show them.
package event

import "github.com/satrain/satrain/loader"

// Kinds of run (the same strings as checkpoint kinds).
const (
	KindSelectionAware = "selection_aware"
	KindStandard       = "standard"
)

// Phases of an iteration, as label values of the phase metrics.
const (
	PhaseSampling   = "sampling"
	PhaseInference  = "inference"
	PhaseSelection  = "selection"
	PhaseTraining   = "training"
	PhaseValidation = "validation"
	PhaseCheckpoint = "checkpoint"
)

// AllPhases in iteration order.
var AllPhases = []string{PhaseSampling, PhaseInference, PhaseSelection, PhaseTraining, PhaseValidation, PhaseCheckpoint}

// Event is one thing a run reports. The set of events is closed: every
// implementation is in this package.
type Event interface{ isEvent() }

// MetricsLog is the name of the metrics log the JSONL reporter writes in a
// run's save dir (checkpoint.RunDir knows it as one of the run's files).
const MetricsLog = "metrics.jsonl"

// Reporter turns events into one kind of output. Report is called on the
// training goroutine, in the order the events happen. A reporter that holds
// resources (files, servers) also implements io.Closer; the run closes it
// after RunEnded (or after a start-up failure).
type Reporter interface {
	Report(Event)
}

// Reporters fans one event out to several reporters, in order.
type Reporters []Reporter

// Report delivers e to every reporter.
func (rs Reporters) Report(e Event) {
	for _, r := range rs {
		r.Report(e)
	}
}

// Start says where a run's weights come from.
type Start struct {
	// Mode is StartFresh, StartResume (same kind of run, optimizer state
	// restored, continuing after Iteration) or StartWeights (another run's
	// weights with a fresh optimizer: fine-tuning).
	Mode        string
	From        string  // the checkpoint file (empty when fresh)
	FromKind    string  // its kind
	Iteration   int     // its last completed iteration or epoch
	BestValLoss float64 // its best validation loss (resume: the best to beat)
	// Branch (StartResume only): the run resumes into a save dir that is
	// neither the checkpoint's folder nor the save dir of the run that wrote
	// it. It is a new run from the checkpoint's state: its metrics.jsonl and
	// selected-set log start anew, and the earlier run's files are left alone.
	Branch bool
	// BestPath (StartResume only) is the best model so far, in this run's
	// save dir; empty when there is none (no finite validation loss yet, or
	// its file was not found). BestCopiedFrom is the file it was copied
	// from, in the save dir of the run that wrote the checkpoint.
	BestPath, BestCopiedFrom string
}

// Start modes.
const (
	StartFresh   = "fresh"
	StartResume  = "resume"
	StartWeights = "weights"
)

// RunStarted is emitted once data, model and save dir are ready, before the
// first iteration. Nothing is emitted for a run that fails at start-up.
type RunStarted struct {
	// RunID tells this run apart from every other (a new one per process,
	// also when it resumes another run): UTC start time and random hex.
	RunID    string
	Kind     string // KindSelectionAware or KindStandard
	Strategy string // strategy name as metrics.jsonl writes it ("standard" for standard training)
	// StrategyNotes are the extension flags' lines (selection-aware only).
	StrategyNotes []string

	// Selection-aware plan.
	SampleSize         int
	TopK               int
	EpochsPerIteration int
	NumIterations      int
	Horizon            string // the ranked horizon, e.g. "5d"
	// SelectBy is how the subset is ranked: "expected_return" (the method),
	// "loss" (hard-example mining) or "random" (the control).
	SelectBy string

	// Standard plan.
	Epochs            int
	SequencesPerEpoch int64

	BatchSize      int
	InferenceBatch int
	LR             float64 // AdamW learning rate (constant over the run)
	Seed           int64
	Version        string // satrain's version

	// Data.
	Data           string
	Mode           string   // loader mode (preload or stream)
	Tickers        []string // index = loader.SeqID.Ticker
	Dates          []int32  // YYYYMMDD; index = loader.SeqID.Day
	TrainSequences int64
	ValSequences   int64

	// Model and device.
	Params       string // parameter count as model.FormatParams writes it ("201.6M")
	ModelDesc    string // model.Config.String()
	Device       string
	TorchVersion string
	AMP          string // mixed precision in words ("off", "bf16 autocast", ...)

	// WorldSize is the number of data-parallel ranks (1: one process) and
	// Backend their collectives' backend ("gloo", "nccl"); BatchSize is the
	// global batch, split over the ranks.
	WorldSize int
	Backend   string

	SaveDir        string
	Start          Start
	FirstIteration int // the first iteration (epoch) this run does
}

// IterationStarted opens iteration Iteration of Total (an epoch of standard
// training, when Kind is KindStandard).
type IterationStarted struct {
	Kind      string
	Iteration int
	Total     int
	// SampleSize and TopK: what this iteration will sample and select
	// (selection-aware; TopK follows a top-k schedule).
	SampleSize int
	TopK       int
}

// Progress reports how far the current pass of Phase (PhaseInference,
// PhaseTraining or PhaseValidation) has got: Done of Total sequences. Each
// pass starts with Done == 0.
type Progress struct {
	Iteration int
	Phase     string
	Done      int
	Total     int
}

// SampleScored: the iteration's random sample was scored.
type SampleScored struct {
	Iteration   int
	Sampled     int
	Horizon     string
	Mean        float64 // mean expected gross return over the sample's finite scores
	Median      float64 // median of the finite scores
	NonFinite   int     // scores that were not finite (NaN, ±Inf), left out of Mean and Median
	ScoredTotal int64   // sequences scored since the start of the run (resumes included)
}

// SubsetSelected: the training subset was chosen from the scored sample.
type SubsetSelected struct {
	Iteration int
	K         int     // size of the selected top set
	TopKMean  float64 // mean expected return of the selected set
	TopKMin   float64
	// Selected are the selected sequences in rank order and Scores their
	// expected gross returns on the ranked horizon. Read-only.
	Selected []loader.SeqID
	Scores   []float64
	// Overlap is the share of the selected set also selected in the
	// previous iteration (NaN in a run's first iteration).
	Overlap float64
	// StratumShare: share of the selected set per stratum (--stratify only).
	StratumShare map[string]float64
}

// TrainingStarted: training on Sequences sequences for Epochs passes begins.
// What describes the set ("top 100", "top 100 + 50 random", "5,000 shuffled
// sequences").
type TrainingStarted struct {
	Iteration int
	What      string
	Sequences int
	Epochs    int
}

// StepSkipped: a training step was skipped for a non-finite loss or gradient.
type StepSkipped struct {
	Iteration int
	Total     int64 // skipped since the start of the run
}

// InferenceBatchChanged: the inference batch was halved after running out of
// device memory.
type InferenceBatchChanged struct {
	Size int
}

// Trained: the iteration's training finished. Loss is the mean loss of its
// non-skipped steps (NaN when every step was skipped).
type Trained struct {
	Iteration    int
	Loss         float64
	Sequences    int64 // sequence-passes of applied steps in this iteration (skipped steps train nothing)
	TrainedTotal int64 // since the start of the run
	Steps        int64 // optimizer steps of this iteration, applied or skipped
	StepsSkipped int64 // steps of this iteration skipped for a non-finite loss or gradient
	SkippedTotal int64 // skipped steps since the start of the run
}

// ValidationStarted: the validation set is about to be scored.
type ValidationStarted struct {
	Iteration int
	Sequences int
}

// Validated: the validation loss of iteration Iteration. When Best, the
// weights were saved as the best model to BestPath (the write finishes in the
// background; CheckpointWritten follows).
type Validated struct {
	Iteration int
	Loss      float64
	Best      bool
	BestPath  string
	BestLoss  float64 // the best finite loss so far (+Inf when none)
}

// CheckpointWritten: a checkpoint file is complete on disk.
type CheckpointWritten struct {
	Path    string
	Bytes   int
	Seconds float64
}

// IterationEnded closes an iteration (epoch) with everything it measured:
// the record metrics.jsonl keeps. Values that were not measured are NaN
// (the expected-return fields of standard training, ValLoss when the
// iteration did not validate); Measured says which ones were.
type IterationEnded struct {
	Kind      string
	Strategy  string
	Iteration int
	Time      string // RFC 3339, UTC

	TrainLoss   float64
	ValLoss     float64
	Validated   bool
	ERMean      float64
	ERMedian    float64
	TopKERMean  float64
	TopKERMin   float64
	ERNonFinite int  // scores of the sample that were not finite (excluded from the ER fields)
	Scored      bool // the ER fields were measured (selection-aware)
	Overlap     float64
	HasOverlap  bool

	ScoredTotal  int64
	TrainedTotal int64
	SkippedTotal int64

	PhaseSeconds     map[string]float64
	IterationSeconds float64

	DeviceMemoryAllocated int64 // CUDA bytes; 0 and !OnDevice on the CPU
	DeviceMemoryPeak      int64
	OnDevice              bool
}

// Interrupted: a signal stopped the run in Phase of Iteration; Completed is
// the last completed iteration, and the state was saved to Path. Partial is
// true when the weights hold part of Iteration's training (resuming re-runs
// it).
type Interrupted struct {
	Iteration int
	Completed int
	Phase     string
	Path      string
	Partial   bool
}

// TrainingStopped: too many consecutive non-finite steps stopped training in
// Iteration; the last good weights were saved to Path.
type TrainingStopped struct {
	Iteration int
	Completed int
	Path      string
}

// RunEnded closes every run that emitted RunStarted. Err is the run's error
// (nil for a run that finished; wraps trainer.ErrInterrupted after a signal).
type RunEnded struct {
	Kind          string
	Iterations    int     // last completed iteration (epoch)
	BestValLoss   float64 // +Inf when no validation loss was finite
	BestIteration int
	BestPath      string
	// Finished: every planned iteration (epoch) was done. A finished run
	// whose BestValLoss is +Inf never had a finite validation loss, and Err
	// says so.
	Finished bool
	Err      error
}

func (RunStarted) isEvent()            {}
func (IterationStarted) isEvent()      {}
func (Progress) isEvent()              {}
func (SampleScored) isEvent()          {}
func (SubsetSelected) isEvent()        {}
func (TrainingStarted) isEvent()       {}
func (StepSkipped) isEvent()           {}
func (InferenceBatchChanged) isEvent() {}
func (Trained) isEvent()               {}
func (ValidationStarted) isEvent()     {}
func (Validated) isEvent()             {}
func (CheckpointWritten) isEvent()     {}
func (IterationEnded) isEvent()        {}
func (Interrupted) isEvent()           {}
func (TrainingStopped) isEvent()       {}
func (RunEnded) isEvent()              {}
