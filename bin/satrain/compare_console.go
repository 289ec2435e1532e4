package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/satrain/satrain/compare"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/report"
)

// compareConsole is what `satrain compare` prints on w: a line per event of
// the study (compare.Config.OnEvent), then its tables and the files written.
type compareConsole struct{ w io.Writer }

// event writes the line of one of the study's events.
func (c compareConsole) event(e compare.Event) {
	switch e := e.(type) {
	case compare.StudyStarted:
		fmt.Fprintf(c.w, "Compare %s: %d seed(s) from %d, budget %s sequence-passes per run, %s training sequences\n",
			strings.Join(e.Arms, ", "), e.Seeds, e.FirstSeed, loader.FormatCount(e.Budget), loader.FormatCount(e.TrainSequences))
	case compare.MetricsServed:
		fmt.Fprintf(c.w, "Metrics: http://%s/metrics (satrain_run_info names the run in progress)\n", e.Addr)
	case compare.RunTraining:
		fmt.Fprintf(c.w, "  run %d/%d: %s seed %d training (log %s)\n", e.Run, e.Runs, e.Arm, e.Seed, e.Log)
	case compare.RunEvaluating:
		fmt.Fprintf(c.w, "  run %d/%d: %s seed %d evaluating %d checkpoint(s) and the best model\n", e.Run, e.Runs, e.Arm, e.Seed, e.Checkpoints)
	case compare.RunReused:
		r := e.Record
		fmt.Fprintf(c.w, "  run %d/%d: %s seed %d finished before (%s, kept): test top-k excess %+.1f bps, rank IC %+.4f\n",
			e.Run, e.Runs, r.Arm, r.Seed, r.Dir, 1e4*e.Test.Precision.Excess, e.Test.RankIC.Mean)
	case compare.RunFailed:
		first, _, _ := strings.Cut(e.Err.Error(), "\n")
		fmt.Fprintf(c.w, "  run %d/%d: %s seed %d failed (%s); no new run starts, %d still running\n", e.Run, e.Runs, e.Arm, e.Seed, first, e.Running)
	case compare.RunFinished:
		r := e.Record
		vm := ""
		if e.Test.Precision.VolMatchedPicks > 0 {
			vm = fmt.Sprintf(" (vol-matched %+.1f)", 1e4*e.Test.Precision.VolMatchedExcess)
		}
		fmt.Fprintf(c.w, "  %-16s seed %-4d trained %s passes in %.0fs (eval %.0fs): best val loss %.4f; test top-k excess %+.1f bps%s, rank IC %+.4f\n",
			r.Arm, r.Seed, loader.FormatCount(r.SequencesTrained), r.TrainSeconds, r.EvalSeconds, r.BestValLoss,
			1e4*e.Test.Precision.Excess, vm, e.Test.RankIC.Mean)
	}
}

// tables writes the study's runs table and its summary over seeds.
func (c compareConsole) tables(res *compare.Result) {
	fmt.Fprintln(c.w)
	compare.WriteRunsTable(c.w, res.Runs)
	fmt.Fprintln(c.w)
	res.Summary.WriteTable(c.w)
}

// wrote names the study's files in out and its wall time.
func (c compareConsole) wrote(out string, elapsed time.Duration) {
	fmt.Fprintf(c.w, "\nwrote %s/summary.json, summary.txt, runs.json, convergence.png, val_loss.png (%.0fs)\n", out, elapsed.Seconds())
}

// compareTrainProgress is each run's progress display under --progress (a
// bar on a terminal, log lines otherwise), titled with the run.
func compareTrainProgress(r compare.RunTraining) event.Reporter {
	return report.NewProgress(report.ProgressOptions{Title: fmt.Sprintf("%s seed %d (run %d/%d)", r.Arm, r.Seed, r.Run, r.Runs)})
}
