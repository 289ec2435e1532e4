// Package eval scores a checkpoint's model on a split of a panel and
// backtests its top-k (package backtest): loss, accuracy, IC and rank IC,
// calibration, the portfolio (Evaluator.Evaluate); expected returns and bin
// probabilities per sequence (Evaluator.WritePredictions). It refuses a split
// whose days the checkpoint's run trained or validated on, and a panel
// fitted with other statistics than the checkpoint's. Under a process group
// every rank scores its share and gets every result.
//
// It draws nothing: each scoring pass reports event.Progress to
// Options.Reporter.
package eval
