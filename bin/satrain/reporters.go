package main

import (
	"context"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
)

// runReporters is every training command's RunConfig.NewReporters: the
// console, progress, Prometheus, metrics.jsonl, selected-set and TensorBoard
// reporters of report.ForRun, from the run's output settings.
func runReporters(ctx context.Context, cfg trainer.RunConfig) ([]event.Reporter, error) {
	return report.ForRun(ctx, runOutputs(cfg))
}

// runOutputs is what report.ForRun needs of a run's configuration.
func runOutputs(cfg trainer.RunConfig) report.RunOutputs {
	return report.RunOutputs{Version: cfg.Version, TorchVersion: torch.Version(), CUDA: torch.BuiltWithCUDA(), Console: cfg.Console,
		Progress: cfg.Progress, MetricsAddr: cfg.MetricsAddr, MetricsAnyPort: cfg.MetricsAnyPort, LogSelected: cfg.LogSelected,
		TensorBoard: cfg.TensorBoard, WandbHint: cfg.WandbHint}
}
