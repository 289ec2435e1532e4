package trainer

import (
	"context"
	"math"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
)

// RunStandard trains on all training sequences (or MaxSeqsPerEpoch of them)
// for Epochs epochs, validating after each epoch and keeping best_model.pt:
// stage 1 of the two-stage recipe, and the baseline the method compares to.
// Starting from weights, resuming, and the end of a run without a finite
// validation loss behave as in RunSelectionAware.
func RunStandard(ctx context.Context, cfg RunConfig) (*RunResult, error) {
	s, err := open(ctx, cfg, KindStandard)
	if err != nil {
		return nil, err
	}
	defer s.close()
	res, err := s.runIterations(s.jointContext(ctx), cfg.Epochs, s.standardEpoch)
	return s.finish(res, err)
}

// standardEpoch is one epoch of standard training: the training split (or
// MaxSeqsPerEpoch of it) in a random order, trained on in chunks of 4,096 so
// that memory stays bounded for large splits, with one progress pass for
// the epoch.
func (s *session) standardEpoch(ctx context.Context, it *iteration) error {
	ids := s.train.Sample(int(s.perEpoch), it.rng)
	s.emit(event.TrainingStarted{Iteration: it.n, What: loader.FormatCount(int64(len(ids))) + " shuffled sequences", Sequences: len(ids), Epochs: 1})
	const chunk = 4096
	var lossSum float64
	var nChunks int
	var trainedEpoch, steps, skipped int64
	prog := s.startPass(PhaseTraining, len(ids))
	t0 := time.Now()
	for c := 0; c < len(ids); c += chunk {
		part := ids[c:min(c+chunk, len(ids))]
		tp, err := s.trainOn(ctx, part, nil, 1, it.rng, prog)
		s.meta.SequencesTrained += tp.Trained
		trainedEpoch += tp.Trained
		steps += tp.Steps
		skipped += tp.Skipped
		if err != nil {
			return failedIn(PhaseTraining, err)
		}
		if !math.IsNaN(tp.Loss) {
			lossSum += tp.Loss * float64(len(part))
			nChunks += len(part)
		}
	}
	it.phase[PhaseTraining] = time.Since(t0).Seconds()
	if nChunks > 0 {
		it.loss = lossSum / float64(nChunks)
	}
	s.emit(event.Trained{Iteration: it.n, Loss: it.loss, Sequences: trainedEpoch, TrainedTotal: s.meta.SequencesTrained,
		Steps: steps, StepsSkipped: skipped, SkippedTotal: s.eng.Skipped})
	return nil
}
