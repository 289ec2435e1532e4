// Package compare runs a study: several training arms (Arms: standard
// training, the selection-aware method from scratch, two-stage, and the
// controls and extensions) x several seeds, every run at one budget, then
// scores each and summarises them (Run).
//
// The budget is counted in sequence-passes: a sequence trained for 3 epochs
// counts 3, whether the arm trains on random sequences or on a selection, so
// the arms are compared at equal training work. Each arm's iteration or epoch
// count is derived from the budget (standard: epochs of at most budget/epochs
// sequences; selection arms: budget / passes per iteration; two-stage: half
// the budget standard, then selection-aware from stage 1's best model). The
// scoring passes of the selection arms are counted apart
// (RunRecord.SequencesScored), not charged to the budget.
//
// Training goes through package trainer, scoring through package eval. Each
// run writes into OutDir/<arm>/seed<k>/: its checkpoints, metrics.jsonl,
// train.log (the run's console), report.json (the test evaluation of its
// best checkpoint) and, last, run.json (its RunRecord). About CurvePoints
// intermediate checkpoints of each run are scored on the validation split for
// the convergence curve. The study writes
// summary.json (per arm, mean ± std over seeds of every test metric, and the
// curves), summary.txt, runs.json (the RunRecords), convergence.png and
// val_loss.png to OutDir.
//
// Run prints nothing. It tells Config.OnEvent how the study goes (Event:
// values, not wording), and the caller supplies the progress displays
// (Config.TrainProgress for each run's training, Config.EvalProgress for the
// evaluations' scoring passes); satrain's compare command words the events
// and draws the bars. Each run's own console goes to its train.log.
//
// With Config.Jobs above 1, Run trains no run itself: it hands up to Jobs
// runs at once to Config.Launch (the CLI: child processes of satrain, each
// calling RunOne, since libtorch's RNG and thread pools are per process),
// reads each finished run's run.json and report.json, and summarises them in
// arm, then seed order whatever order they finished in. Config.Resume reuses
// the runs of OutDir that finished and trains the others afresh.
//
// Every torch call happens on the goroutine that calls Run (or RunOne), which
// must be locked to its OS thread (torch.LockThread).
package compare
