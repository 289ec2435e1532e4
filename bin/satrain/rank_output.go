package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// rankOutput wraps runArgs so that, as PyTorch Lightning's rank-zero helpers
// do, a rank other than 0 of a data-parallel job (the launcher's RANK or
// SLURM_PROCID) writes only errors of its own to stderr: its slog level is
// ERROR, and a run interrupted on every rank (whose checkpoint and
// --resume-from line rank 0 reports) exits 130 without a line. In a single
// process, on rank 0, or with SATRAIN_DEBUG set, it is run itself.
func rankOutput(run func(context.Context, *cli.App, []string) error) func(context.Context, *cli.App, []string) error {
	if !quietRank() {
		return run // a bad launch is reported by the command itself
	}
	return func(ctx context.Context, app *cli.App, args []string) error {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		err := run(ctx, app, args)
		if errors.Is(err, trainer.ErrInterrupted) {
			os.Exit(130)
		}
		return err
	}
}

// quietRank reports whether this process is a rank other than 0 of a
// data-parallel launch (and SATRAIN_DEBUG is unset): its output is errors only.
func quietRank() bool {
	l, err := torch.LaunchFromEnv(os.LookupEnv)
	return err == nil && l.Distributed() && l.Rank != 0 && os.Getenv("SATRAIN_DEBUG") == ""
}
