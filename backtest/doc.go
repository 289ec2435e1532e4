// Package backtest turns per-sequence model predictions into the evaluation
// metrics of satrain: loss and accuracy (overall and on the model's top
// selection), top-k precision, information coefficients (Pearson IC and
// Spearman rank IC), a long-only top-k backtest against an equal-weight
// universe benchmark, and score calibration by decile. It also summarises
// several training arms x seeds for `satrain compare` and draws PNG plots
// with gonum.org/v1/plot.
//
// The package is pure Go: it does not depend on torch, loader or trainer, so
// it can be tested and used on any machine. Its per-date picks and tie
// merging are the selection method's own ranker, selection/rank (standard
// library only).
//
// Conventions (see docs/METRICS.md for the formulas):
//   - A Prediction is one (ticker, decision date) pair. Score and Realized are
//     gross returns over the same forward horizon (1.0 = flat).
//   - The cross-section of a date is all predictions with that Date. Distinct
//     dates, sorted, are treated as consecutive trading days.
//   - The model's selection on a date is the k names with the highest Score
//     (ties broken by ascending ticker), k = Config.TopK, or
//     ceil(Config.TopFrac * n) when TopK is 0, clamped to [1, n].
//   - Quantities that are undefined (no valid dates, zero variance, fewer
//     than two returns) are reported as 0 together with a count that shows
//     how many observations they are based on, so reports never contain
//     NaN and always round-trip through JSON.
//   - Output ordering is deterministic: by date, then ticker.
package backtest
