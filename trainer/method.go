package trainer

import (
	"context"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection"
)

// RunSelectionAware trains with the method: each iteration scores a random
// sample of the training split and trains on its top k (see
// selectionAwareIteration), validating every ValEvery iterations, keeping
// the best model and writing a checkpoint every CheckpointEvery.
func RunSelectionAware(ctx context.Context, cfg RunConfig) (*RunResult, error) {
	s, err := open(ctx, cfg, KindSelectionAware)
	if err != nil {
		return nil, err
	}
	defer s.close()
	res, err := s.runIterations(s.jointContext(ctx), cfg.NumIterations, s.selectionAwareIteration)
	return s.finish(res, err)
}

// selectionAwareIteration is one iteration of the method:
//
//  1. draw SampleSize random sequences of the training split (the strategy
//     decides how: uniformly by default; per date or per stratum with the
//     extensions, package selection);
//  2. score them: the model's expected return on the ranked horizon,
//     E[r] = Σ_b softmax(logits)_b · center_b (model.ExpectedReturn), in
//     one pass, or in the scoring cascade's two;
//  3. select the top k by E[r] with a heap (selection.TopK: ties within the
//     model's rounding noise go to the lower ticker, then the earlier day),
//     plus the extensions' extras;
//  4. train on them for EpochsPerIteration epochs: cross-entropy on every
//     horizon, optionally weighted per sequence.
//
// Everything else an iteration does (seeds, validation, checkpoints, events,
// timing, the record) is the skeleton's: runIterations in iteration.go.
func (s *session) selectionAwareIteration(ctx context.Context, it *iteration) error {
	sample := func() []loader.SeqID { return s.strat.Sample(s.ds, s.train, s.cfg.SampleSize, it.rng) }
	ids := timed(it, PhaseSampling, sample)

	scores, err := s.scoreIteration(ctx, it, ids)
	if err != nil {
		return failedIn(PhaseInference, err)
	}

	topK := func() selection.Selection { return s.strat.Select(ids, scores, it.k, it.rng) }
	sel := timed(it, PhaseSelection, topK)
	s.recordSelection(it, ids, scores, sel)

	weights := s.lossWeights(sel, scores)
	return failedIn(PhaseTraining, s.trainIteration(ctx, it, sel.Describe(), weights))
}
