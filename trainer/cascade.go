package trainer

// The model's side of the scoring cascade (package selection holds the
// method: ScoreConfig, Cascade, the checks): the run's reference precision,
// an Engine scorer in a given precision, and the selection-aware loop's
// two-pass scoring of a sample.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/selection"
)

// ReferencePrecision is the precision of the run's own scoring: its autocast
// dtype with --use-amp (bf16, or fp16 with --amp-dtype fp16), else fp32.
func ReferencePrecision(cfg model.StepConfig) string {
	switch {
	case !cfg.UseAMP:
		return selection.PrecisionFP32
	case cfg.AMPDType == "fp16":
		return selection.PrecisionFP16
	}
	return selection.PrecisionBF16
}

// EngineScorer scores sequences of a data set with an Engine in a given
// precision: the expected return on one horizon, as the training loop ranks.
type EngineScorer struct {
	Eng       *model.Engine
	Data      *loader.Dataset
	Horizon   int    // index into the data set's horizons
	Precision string // PrecisionFP32, PrecisionBF16, PrecisionFP16 or PrecisionFP8
}

// Score implements Scorer. It switches the engine to the scorer's precision
// for the call (Engine.ScoreIn) and restores it after.
func (s EngineScorer) Score(ctx context.Context, ids []loader.SeqID) ([]float64, error) {
	e := s.Eng
	restore, err := e.ScoreIn(s.Precision)
	if err != nil {
		return nil, fmt.Errorf("engine scorer: %w", err)
	}
	defer restore()
	H := len(s.Data.Horizons())
	if s.Horizon < 0 || s.Horizon >= H {
		return nil, fmt.Errorf("engine scorer: horizon index %d of %d horizons", s.Horizon, H)
	}
	out := make([]float64, 0, len(ids))
	_, _, err = eval.Stream(ctx, e, s.Data, ids, eval.StreamOptions{}, func(b *loader.Batch, r model.InferResult) error {
		for i := range b.IDs {
			out = append(out, float64(r.Expected[i*H+s.Horizon]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scoreSample scores an iteration's sample for the selection-aware loop: one
// pass in the run's precision (score), or, with the cascade (RunConfig.Score
// active), the whole sample in the cheap precision and then its best M
// (SelectTopKTies on the ranked horizon) again in the run's precision. Both
// passes go through score, so under data parallelism each is sharded over
// the ranks and all-gathered as today's single pass is; the candidates follow
// from the gathered cheap scores, equal on every rank, so every rank issues
// the same collectives in the same order. The result holds the reference
// expected returns of the candidates and the cheap ones elsewhere, with
// Candidates set: Strategy.Select ranks only those (as Cascade does).
func (s *session) scoreSample(ctx context.Context, ids []loader.SeqID, labels bool, k int) (model.InferResult, time.Duration, time.Duration, error) {
	sc := s.cfg.Score
	if !sc.Active(ReferencePrecision(s.eng.Cfg)) {
		return s.score(ctx, ids, labels, PhaseInference)
	}
	restore, err := s.eng.ScoreIn(sc.Precision)
	if err != nil {
		return model.InferResult{}, 0, 0, err
	}
	cheap, ioWait, compute, err := s.score(ctx, ids, labels, PhaseInference)
	restore()
	if err != nil {
		return cheap, ioWait, compute, fmt.Errorf("%s scoring pass: %w", sc.Precision, err)
	}
	H := len(s.ds.Horizons())
	scores := make([]float64, len(ids))
	for i := range ids {
		scores[i] = float64(cheap.Expected[i*H+s.horizon])
	}
	cand := selection.SelectTopKTies(scores, ids, sc.M(k, len(ids)), cheap.TieRTol)
	slices.Sort(cand)
	sub := make([]loader.SeqID, len(cand))
	for i, j := range cand {
		sub[i] = ids[j]
	}
	ref, io2, c2, err := s.score(ctx, sub, labels, PhaseInference)
	ioWait, compute = ioWait+io2, compute+c2
	if err != nil {
		return ref, ioWait, compute, err
	}
	out := cheap
	for i, j := range cand {
		copy(out.Expected[j*H:(j+1)*H], ref.Expected[i*H:(i+1)*H])
	}
	out.Candidates = cand
	return out, ioWait, compute, nil
}
