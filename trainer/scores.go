package trainer

import (
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/selection"
)

// What the selection-aware loop hands the selection method: the run's numbers
// and one scoring pass, as the method's own plain types.

// selectionConfig is what selection reads of the run's configuration.
func (c RunConfig) selectionConfig() selection.Config {
	return selection.Config{SampleSize: c.SampleSize, TopK: c.TopK, Iterations: c.NumIterations}
}

// rankedScores is what selection reads of inf, the scoring pass over n
// sequences with H horizons, when it ranks on horizon h: the expected
// returns and (when kept) the bin logits of horizon h, the per-sequence
// losses (when computed), the tie tolerance and the cascade's candidates.
func rankedScores(inf model.InferResult, n, H, h int) selection.Scores {
	sc := selection.Scores{Expected: make([]float64, n), Loss: inf.Loss, TieRTol: inf.TieRTol, Candidates: inf.Candidates}
	for i := range sc.Expected {
		sc.Expected[i] = float64(inf.Expected[i*H+h])
	}
	if len(inf.Logits) > 0 && n > 0 {
		B := len(inf.Logits) / (n * H)
		sc.Logits = make([]float32, n*B)
		for i := 0; i < n; i++ {
			copy(sc.Logits[i*B:(i+1)*B], inf.Logits[(i*H+h)*B:(i*H+h+1)*B])
		}
	}
	return sc
}

// testWeights, when set by a test, sees every selection's loss weights and
// the scores they were computed from.
var testWeights func(sel selection.Selection, sc selection.Scores, w []float32)
