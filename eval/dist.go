package eval

import (
	"context"
	"fmt"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/loader"
)

// sharedPredictions is Predictions over a process group: each rank scores
// its contiguous share of ids, and an all-gather of the five values of each
// prediction (all exact in float32: they come from float32 tensors, Sigma
// is rounded to float32 by Predictions) gives
// every rank all of them in the order of ids.
func (e *Evaluator) sharedPredictions(ctx context.Context, ids []loader.SeqID, h int) ([]backtest.Prediction, error) {
	local := *e
	local.opt.Group = nil
	all, _, err := e.opt.Group.ShareAndGather(len(ids), func(lo, hi int) ([][]float32, float32, error) {
		mine, err := local.Predictions(ctx, ids[lo:hi], h, "")
		cols := make([][]float32, 5)
		for _, p := range mine {
			correct := float32(0)
			if p.Correct {
				correct = 1
			}
			cols[0] = append(cols[0], float32(p.Score))
			cols[1] = append(cols[1], float32(p.Realized))
			cols[2] = append(cols[2], float32(p.Loss))
			cols[3] = append(cols[3], correct)
			cols[4] = append(cols[4], float32(p.Sigma))
		}
		return cols, 0, err
	})
	if err != nil {
		return nil, err
	}
	if len(all[0]) != len(ids) {
		return nil, fmt.Errorf("evaluation: gathered %d predictions for %d sequences", len(all[0]), len(ids))
	}
	dates := e.DS.Dates()
	preds := make([]backtest.Prediction, len(ids))
	for i, id := range ids {
		preds[i] = backtest.Prediction{Ticker: id.Ticker, Date: dates[id.Day], Score: float64(all[0][i]),
			Realized: float64(all[1][i]), Loss: float64(all[2][i]), Correct: all[3][i] != 0, Sigma: float64(all[4][i])}
	}
	return preds, nil
}
