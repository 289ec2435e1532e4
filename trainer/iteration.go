package trainer

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

// The one iteration skeleton of both loops. A run is runIterations over a
// body: selectionAwareIteration (method.go) or standardEpoch (standard.go).
// The skeleton owns what every iteration shares, in this order: seeds,
// the IterationStarted event, the body, validation when due (keeping the
// best model), a periodic checkpoint when due, the IterationEnded event and
// the run's record. Phase timings, events and the phase hook live in the
// small helpers below, so that the bodies read as the algorithm.

// iteration is one iteration (an epoch of standard training) while it runs:
// what the skeleton gives its body and what the body leaves for the record.
type iteration struct {
	n, total int
	k        int        // top-k of this iteration (selection-aware; 0 for standard)
	rng      *rand.Rand // sampling, selection and shuffling of this iteration
	start    time.Time
	phase    map[string]float64 // seconds per phase (see PhaseSeconds)

	loss   float64 // mean training loss (NaN when no step applied)
	scored bool    // the body scored a sample (the fields below are set)
	stats  selection.ScoreStats
	// overlap is the share of this iteration's top-k that was in the
	// previous iteration's (NaN at the first iteration of a process).
	overlap                   float64
	sample, selected, trained []loader.SeqID
	scores                    []float64 // of sample, on the ranked horizon
}

// phaseError is a body's error, with the phase it happened in (for stop).
type phaseError struct {
	phase string
	err   error
}

func (e *phaseError) Error() string { return e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

// failedIn marks err as an error of phase (nil stays nil).
func failedIn(phase string, err error) error {
	if err == nil {
		return nil
	}
	return &phaseError{phase, err}
}

// timed runs f and adds its wall time to the iteration's phase.
func timed[T any](it *iteration, phase string, f func() T) T {
	t := time.Now()
	v := f()
	it.phase[phase] += time.Since(t).Seconds()
	return v
}

// runIterations runs iterations s.meta.Iteration+1 .. total of body after
// iteration 0 (validateStart), and returns the run's record.
func (s *session) runIterations(ctx context.Context, total int, body func(context.Context, *iteration) error) (*RunResult, error) {
	res := &RunResult{BestValLoss: s.meta.BestValLoss}
	if stopErr, fatal := s.validateStart(ctx, res, total); fatal != nil {
		return res, fatal
	} else if stopErr != nil {
		return s.stop(ctx, res, 0, PhaseValidation, stopErr)
	}
	for n := s.meta.Iteration + 1; n <= total; n++ {
		it, err := s.beginIteration(n, total)
		if err != nil {
			return res, err
		}
		if err := body(ctx, it); err != nil {
			var pe *phaseError
			if errors.As(err, &pe) {
				return s.stop(ctx, res, n, pe.phase, pe.err)
			}
			return res, err
		}
		s.meta.Iteration = n
		var valLoss *float64
		if s.validationDue(n, total) {
			vl, stopErr, fatal := s.validateAndKeep(ctx, n, it.phase, res)
			if fatal != nil {
				return res, fatal
			}
			if stopErr != nil {
				return s.stop(ctx, res, n, PhaseValidation, stopErr)
			}
			valLoss = &vl
		}
		if s.checkpointDue(n, total) {
			s.atPhase(ctx, PhaseCheckpoint, n)
			save := func() error { _, err := s.save(s.dir().Periodic(s.kind, n), true); return err }
			if err := timed(it, PhaseCheckpoint, save); err != nil {
				return res, err
			}
		}
		if err := s.endIteration(res, it, valLoss); err != nil {
			return res, err
		}
	}
	return res, nil
}

// validationDue: standard training validates every epoch; selection-aware
// every ValEvery iterations and at the last.
func (s *session) validationDue(n, total int) bool {
	return s.kind == KindStandard || n%s.cfg.ValEvery == 0 || n == total
}

// checkpointDue: standard training writes a checkpoint every epoch;
// selection-aware every CheckpointEvery iterations and at the last.
func (s *session) checkpointDue(n, total int) bool {
	return s.kind == KindStandard || n%s.cfg.CheckpointEvery == 0 || n == total
}

// beginIteration seeds iteration n (libtorch's generator for dropout, a Go
// source for sampling and shuffling, both from --seed and n) and emits
// IterationStarted.
func (s *session) beginIteration(n, total int) (*iteration, error) {
	s.it = n
	it := &iteration{n: n, total: total, start: time.Now(), phase: map[string]float64{}, loss: math.NaN(), overlap: math.NaN()}
	if err := torch.ManualSeed(uint64(iterSeed(s.cfg.Seed, n, 1))); err != nil {
		return nil, err
	}
	it.rng = rand.New(rand.NewSource(iterSeed(s.cfg.Seed, n, 2)))
	started := event.IterationStarted{Kind: s.kind, Iteration: n, Total: total}
	if s.kind == KindSelectionAware {
		it.k = s.strat.K(s.cfg.selectionConfig(), n)
		started.SampleSize, started.TopK = s.cfg.SampleSize, it.k
	}
	s.emit(started)
	return it, nil
}

// endIteration emits IterationEnded, appends the iteration's record to res
// and runs the AfterIteration hook (with the iteration's checkpoints on disk).
func (s *session) endIteration(res *RunResult, it *iteration, valLoss *float64) error {
	sec := time.Since(it.start).Seconds()
	ie := event.IterationEnded{Kind: s.kind, Strategy: s.strategyName(), Iteration: it.n, Time: time.Now().UTC().Format(time.RFC3339),
		TrainLoss: it.loss, ValLoss: math.NaN(), ERMean: math.NaN(), ERMedian: math.NaN(), TopKERMean: math.NaN(), TopKERMin: math.NaN(),
		Overlap: it.overlap, HasOverlap: !math.IsNaN(it.overlap), ScoredTotal: s.meta.SequencesScored, TrainedTotal: s.meta.SequencesTrained,
		SkippedTotal: s.eng.Skipped, PhaseSeconds: it.phase, IterationSeconds: sec}
	if it.scored {
		ie.Scored, ie.ERMean, ie.ERMedian, ie.TopKERMean, ie.TopKERMin, ie.ERNonFinite = true, it.stats.Mean, it.stats.Median,
			it.stats.TopKMean, it.stats.TopKMin, it.stats.NonFinite
	}
	if valLoss != nil {
		ie.ValLoss, ie.Validated = *valLoss, true
	}
	ie.DeviceMemoryAllocated, ie.DeviceMemoryPeak, ie.OnDevice = s.deviceMemory()
	s.emit(ie)
	res.Iterations = append(res.Iterations, IterationRecord{IterationEnded: ie, Selected: it.selected, TrainedIDs: it.trained,
		sample: it.sample, scores: it.scores})
	res.LastIter = it.n
	res.BestValLoss = s.meta.BestValLoss
	if s.cfg.AfterIteration != nil {
		if err := s.writer.Wait(); err != nil {
			return err
		}
		s.cfg.AfterIteration(it.n)
	}
	return nil
}

// scoreIteration scores the iteration's sample on the ranked horizon (the
// cascade when configured; sharded over ranks), counting IO waits as
// sampling and the passes as inference.
func (s *session) scoreIteration(ctx context.Context, it *iteration, ids []loader.SeqID) (selection.Scores, error) {
	s.atPhase(ctx, PhaseInference, it.n)
	inf, ioWait, compute, err := s.scoreSample(ctx, ids, s.strat.NeedsLoss(), it.k)
	it.phase[PhaseSampling] += ioWait.Seconds()
	it.phase[PhaseInference] = compute.Seconds()
	if err != nil {
		return selection.Scores{}, err
	}
	s.meta.SequencesScored += int64(len(ids))
	sc := rankedScores(inf, len(ids), len(s.ds.Horizons()), s.horizon)
	if s.strat.NeedsSigma() && len(sc.Logits) > 0 {
		sc.Sigma = selection.PredictedSigma(sc.Logits, s.ds.BinCenters()[s.horizon], len(ids))
	}
	return sc, nil
}

// recordSelection emits the iteration's SampleScored and SubsetSelected and
// keeps what the record needs: the score statistics, the selected and
// trained sequences, and the overlap with the previous iteration's top-k.
func (s *session) recordSelection(it *iteration, ids []loader.SeqID, sc selection.Scores, sel selection.Selection) {
	it.scored, it.sample, it.scores = true, ids, sc.Expected
	it.stats = selection.Summarize(sc.Expected, sel.Top)
	s.emit(event.SampleScored{Iteration: it.n, Sampled: len(ids), Horizon: s.horizonName(), Mean: it.stats.Mean, Median: it.stats.Median,
		NonFinite: it.stats.NonFinite, ScoredTotal: s.meta.SequencesScored})
	cur := map[loader.SeqID]int{}
	for _, i := range sel.Top {
		cur[ids[i]] = 1
	}
	if s.prevTop != nil {
		same := 0
		for id := range cur {
			if s.prevTop[id] > 0 {
				same++
			}
		}
		it.overlap = float64(same) / math.Max(1, float64(len(cur)))
	}
	s.prevTop = cur
	it.selected = make([]loader.SeqID, len(sel.Top))
	selScores := make([]float64, len(sel.Top))
	for r, j := range sel.Top {
		it.selected[r], selScores[r] = ids[j], sc.Expected[j]
	}
	s.emit(event.SubsetSelected{Iteration: it.n, K: len(sel.Top), TopKMean: it.stats.TopKMean, TopKMin: it.stats.TopKMin,
		Selected: it.selected, Scores: selScores, Overlap: it.overlap, StratumShare: sel.StratumShare})
	it.trained = make([]loader.SeqID, len(sel.Train))
	for i, j := range sel.Train {
		it.trained[i] = ids[j]
	}
}

// lossWeights is the strategy's per-sequence loss weights of sel (nil:
// equal), shown to a test's testWeights.
func (s *session) lossWeights(sel selection.Selection, sc selection.Scores) []float32 {
	w := s.strat.Weights(sel, sc)
	if testWeights != nil {
		testWeights(sel, sc, w)
	}
	return w
}

// trainIteration trains on the iteration's trained sequences (it.trained)
// for the run's epochs per iteration, emitting TrainingStarted and Trained.
func (s *session) trainIteration(ctx context.Context, it *iteration, what string, weights []float32) error {
	t := time.Now()
	s.emit(event.TrainingStarted{Iteration: it.n, What: what, Sequences: len(it.trained), Epochs: s.cfg.EpochsPerIteration})
	s.atPhase(ctx, PhaseTraining, it.n)
	tp, err := s.trainOn(ctx, it.trained, weights, s.cfg.EpochsPerIteration, it.rng, nil)
	it.loss = tp.Loss
	it.phase[PhaseTraining] = time.Since(t).Seconds()
	s.meta.SequencesTrained += tp.Trained
	if err != nil {
		return err
	}
	s.emit(event.Trained{Iteration: it.n, Loss: tp.Loss, Sequences: tp.Trained, TrainedTotal: s.meta.SequencesTrained,
		Steps: tp.Steps, StepsSkipped: tp.Skipped, SkippedTotal: s.eng.Skipped})
	return nil
}

// horizonName is the ranked horizon's name ("5d").
func (s *session) horizonName() string { return model.HorizonName(s.ds.Horizons()[s.horizon]) }
