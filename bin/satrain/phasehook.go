package main

import "context"

// phaseHook is every run's trainer.RunConfig.PhaseHook: nil in satrain; the
// CLI tests' build (tag satrain_testhooks, testhook.go) sets it.
var phaseHook func(ctx context.Context, phase string, it int)
