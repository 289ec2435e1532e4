package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/compare"
)

// TestCompareConsole: the lines `satrain compare` prints for each event of a
// study, its tables and the files it wrote, checked against the wording by
// hand (numbers rounded as printed: 12.4 s -> 12s, 0.00123 -> +12.3 bps).
func TestCompareConsole(t *testing.T) {
	var buf bytes.Buffer
	c := compareConsole{&buf}
	run := compare.RunRecord{Arm: "standard", Seed: 42, Dir: "out/standard/seed42", Iterations: 5, SequencesTrained: 60000,
		BestValLoss: 2.34567, TrainSeconds: 12.4, EvalSeconds: 3.6, Curve: []backtest.CurvePoint{{Budget: 60000, TopKReturn: -0.0045}}}
	for _, e := range []compare.Event{
		compare.StudyStarted{Arms: []string{"standard", "two_stage"}, Seeds: 2, FirstSeed: 42, Budget: 60000, TrainSequences: 1234567},
		compare.MetricsServed{Addr: "127.0.0.1:9108"},
		compare.RunTraining{Run: 1, Runs: 4, Arm: "standard", Seed: 42, Dir: run.Dir, Log: run.Dir + "/train.log"},
		compare.RunEvaluating{Run: 1, Runs: 4, Arm: "standard", Seed: 42, Checkpoints: 5},
		compare.RunFinished{Run: 1, Runs: 4, Record: run,
			Test: &backtest.Report{Precision: backtest.Precision{Excess: 0.00123}, RankIC: backtest.CorrStats{Mean: 0.0123}}},
		compare.RunReused{Run: 2, Runs: 4, Record: compare.RunRecord{Arm: "standard", Seed: 43, Dir: "out/standard/seed43"},
			Test: &backtest.Report{Precision: backtest.Precision{Excess: -0.0005}, RankIC: backtest.CorrStats{Mean: 0.02}}},
		compare.RunProgressed{Run: 3, Runs: 4, Arm: "two_stage", Seed: 42, Trained: 100},
		compare.RunFailed{Run: 3, Runs: 4, Arm: "two_stage", Seed: 42, Err: errors.New("arm two_stage seed 42: exit status 1\n  satrain: boom"), Running: 1},
	} {
		c.event(e)
	}
	c.tables(&compare.Result{Runs: []compare.RunRecord{run}, Budget: 60000, Summary: &backtest.Summary{Arms: []backtest.ArmSummary{
		{Arm: "standard", Seeds: []int64{42}, Metrics: []backtest.MetricSummary{{Name: "ic.mean", Unit: backtest.UnitCorr, Mean: 0.0123, N: 1}}}}}})
	c.wrote("out", 75*time.Second)
	want := []string{
		"Compare standard, two_stage: 2 seed(s) from 42, budget 60,000 sequence-passes per run, 1,234,567 training sequences",
		"Metrics: http://127.0.0.1:9108/metrics (satrain_run_info names the run in progress)",
		"  run 1/4: standard seed 42 training (log out/standard/seed42/train.log)",
		"  run 1/4: standard seed 42 evaluating 5 checkpoint(s) and the best model",
		"  standard         seed 42   trained 60,000 passes in 12s (eval 4s): best val loss 2.3457; test top-k excess +12.3 bps, rank IC +0.0123",
		"  run 2/4: standard seed 43 finished before (out/standard/seed43, kept): test top-k excess -5.0 bps, rank IC +0.0200",
		"  run 3/4: two_stage seed 42 failed (arm two_stage seed 42: exit status 1); no new run starts, 1 still running",
		"",
		"       arm  seed  iterations  passes trained  seqs scored  train s  eval s  best val loss  final val-curve excess (bps)",
		"  standard    42           5          60,000            0     12.4     3.6         2.3457                         -45.0",
		"",
		"metric (mean ± std over seeds)  standard (n=1)",
		"ic.mean                                 0.0123",
		"",
		"wrote out/summary.json, summary.txt, runs.json, convergence.png, val_loss.png (75s)",
		"",
	}
	if got := buf.String(); got != strings.Join(want, "\n") {
		t.Errorf("console:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
