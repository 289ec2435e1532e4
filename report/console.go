// Package report turns the events of a training run (package event)
// into output, one reporter per output: the console (Console), the progress
// display (Progress), Prometheus series (Prometheus) and the metrics log
// (JSONL). A reporter formats and counts; it never trains or scores.
package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
)

// Rule is the console's block separator: 80 '=' characters.
var Rule = strings.Repeat("=", 80)

// Console prints the documented console of a run (README, "What a run
// writes"): a title block, the Strategy block, the data block, then one block
// per iteration. Every line is written whole, so slog lines (on stderr)
// never split one; extra lines only follow the documented lines of a block.
type Console struct {
	w          io.Writer
	metricsURL string
	start      event.RunStarted
	scored     event.SampleScored // the iteration's, for the stats block's last line
}

// NewConsole writes to w. metricsURL (may be empty) is shown in the data block.
func NewConsole(w io.Writer, metricsURL string) *Console {
	return &Console{w: w, metricsURL: metricsURL}
}

func (c *Console) p(format string, a ...any) { fmt.Fprintf(c.w, format+"\n", a...) }

// F4 formats a loss or return with 4 decimals ("NaN", "+Inf" as such).
func F4(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

func (c *Console) block(title string) {
	c.p("")
	c.p("%s", Rule)
	c.p("%s", title)
	c.p("%s", Rule)
	c.p("")
}

// Report implements event.Reporter.
func (c *Console) Report(e event.Event) {
	switch e := e.(type) {
	case event.RunStarted:
		c.start = e
		c.runStarted(e)
	case event.IterationStarted:
		switch {
		case e.Iteration == 0:
			c.block(fmt.Sprintf("%s 0/%d (the starting weights)", c.unit(), e.Total))
		case e.Kind == event.KindStandard:
			c.block(fmt.Sprintf("Epoch %d/%d", e.Iteration, e.Total))
		default:
			c.block(fmt.Sprintf("Iteration %d/%d", e.Iteration, e.Total))
			c.p("  🎲 Sampling %d sequences and selecting top %d...", e.SampleSize, e.TopK)
		}
	case event.SampleScored:
		c.scored = e
		c.p("    📊 Expected return stats:")
		c.p("      Mean: %s", F4(e.Mean))
		c.p("      Median: %s", F4(e.Median))
	case event.SubsetSelected:
		c.p("      Top %d mean: %s", e.K, F4(e.TopKMean))
		c.p("      Top %d min: %s", e.K, F4(e.TopKMin))
		if n := c.scored.NonFinite; n > 0 && c.scored.Iteration == e.Iteration {
			c.p("      Non-finite: %d of %d scores (excluded)", n, c.scored.Sampled)
		}
	case event.TrainingStarted:
		if c.start.Kind != event.KindStandard {
			c.p("") // after the stats
		}
		c.p("  🏋️  Training on %s for %d %s...", e.What, e.Epochs, plural(e.Epochs, "epoch", "epochs"))
	case event.Trained:
		if e.StepsSkipped > 0 {
			c.p("  %s Training loss: %s (%d of %d steps skipped, non-finite)", "⚠️ ", F4(e.Loss), e.StepsSkipped, e.Steps)
		} else {
			c.p("  %s Training loss: %s", mark(e.Loss), F4(e.Loss))
		}
	case event.ValidationStarted:
		if e.Iteration > 0 {
			c.p("")
		}
		c.p("  📊 Validating...")
	case event.Validated:
		c.p("  %s Validation loss: %s", mark(e.Loss), F4(e.Loss))
		if e.Best {
			c.p("  ✅ Saved best model (val_loss: %s)", F4(e.Loss))
			c.p("     %s", e.BestPath)
		}
	case event.Interrupted:
		what := fmt.Sprintf("interrupted during %s of iteration %d; iteration %d is the last completed", e.Phase, e.Iteration, e.Completed)
		if c.start.Kind == event.KindStandard {
			what = fmt.Sprintf("interrupted during %s of epoch %d; epoch %d is the last completed", e.Phase, e.Iteration, e.Completed)
		}
		c.p("")
		c.p("  ⏹  Run %s", what)
		if e.Path == "" { // stopped before any training step
			c.p("     Nothing trained yet: nothing to save")
		} else {
			c.p("     State saved to %s", e.Path)
		}
	case event.TrainingStopped:
		c.p("")
		c.p("  ⛔ Training stopped in %s %d: too many consecutive non-finite steps; the last good weights are in %s",
			strings.ToLower(c.unit()), e.Iteration, e.Path)
	case event.RunEnded:
		if !e.Finished {
			return
		}
		units := plural(e.Iterations, "iteration", "iterations")
		if e.Kind == event.KindStandard {
			units = plural(e.Iterations, "epoch", "epochs")
		}
		c.p("")
		c.p("%s", Rule)
		if math.IsInf(e.BestValLoss, 1) {
			c.p("Done: %d %s, no finite validation loss", e.Iterations, units)
		} else {
			c.p("Done: %d %s, best validation loss %s (%s %d)", e.Iterations, units, F4(e.BestValLoss), strings.ToLower(c.unit()), e.BestIteration)
			if e.BestPath != "" {
				c.p("  Best model: %s", e.BestPath)
			} else if c.start.Start.Mode == event.StartResume {
				// Only a resume can end so: its best is from before it, and
				// that file was not found when it started (a warning said so).
				c.p("  Best model: not found (the file of %s %d was missing when the run resumed)", strings.ToLower(c.unit()), e.BestIteration)
			}
		}
		c.p("%s", Rule)
	}
}

// mark is the tick of a loss line: ✅, or ⚠️ for a loss that is not finite.
func mark(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "⚠️ "
	}
	return "✅"
}

func (c *Console) unit() string {
	if c.start.Kind == event.KindStandard {
		return "Epoch"
	}
	return "Iteration"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (c *Console) runStarted(e event.RunStarted) {
	c.p("%s", Rule)
	if e.Kind == event.KindStandard {
		c.p("STANDARD TRAINING")
	} else {
		c.p("SELECTION-AWARE TRAINING")
	}
	c.p("%s", Rule)
	c.p("")
	c.p("Strategy:")
	if e.Kind == event.KindStandard {
		c.p("  Train on %s shuffled sequences per epoch (batch %d, loss on all horizons)", loader.FormatCount(e.SequencesPerEpoch), e.BatchSize)
		c.p("  Repeat %d %s", e.Epochs, plural(e.Epochs, "epoch", "epochs"))
	} else {
		pct := 100 * float64(e.TopK) / float64(max(1, e.SampleSize))
		c.p("  Sample %d sequences", e.SampleSize)
		switch e.SelectBy {
		case "loss":
			c.p("  Select top %d (%.1f%%) by loss (hard-example mining)", e.TopK, pct)
		case "random":
			c.p("  Select %d (%.1f%%) at random (control)", e.TopK, pct)
		default:
			c.p("  Select top %d (%.1f%%) by expected return", e.TopK, pct)
		}
		c.p("  Train on them for %d %s", e.EpochsPerIteration, plural(e.EpochsPerIteration, "epoch", "epochs"))
		c.p("  Repeat %d %s", e.NumIterations, plural(e.NumIterations, "time", "times"))
		for _, n := range e.StrategyNotes {
			c.p("  %s", n)
		}
		c.p("  Ranked horizon: %s", e.Horizon)
	}
	c.p("")
	c.p("📦 Loading data...")
	c.p("  Train: %s sequences", loader.FormatCount(e.TrainSequences))
	c.p("  Val:   %s sequences", loader.FormatCount(e.ValSequences))
	c.p("  Data:  %s (%d tickers, %d days, %s mode)", e.Data, len(e.Tickers), len(e.Dates), e.Mode)
	c.p("  Model: %s parameters (%s) on %s, libtorch %s, mixed precision %s", e.Params, e.ModelDesc, e.Device, e.TorchVersion, e.AMP)
	c.p("  Saving to %s", e.SaveDir)
	if c.metricsURL != "" {
		c.p("  Metrics: %s", c.metricsURL)
	}
	switch e.Start.Mode {
	case event.StartResume:
		best := "best val loss " + F4(e.Start.BestValLoss)
		if math.IsNaN(e.Start.BestValLoss) || math.IsInf(e.Start.BestValLoss, 0) {
			best = "no finite validation loss yet"
		}
		c.p("  Resuming %s run from %s: continuing after %s %d (%s)", e.Kind, e.Start.From,
			strings.ToLower(c.unit()), e.Start.Iteration, best)
		if e.Start.BestCopiedFrom != "" {
			c.p("  Best model so far: %s (copied from %s)", e.Start.BestPath, e.Start.BestCopiedFrom)
		}
	case event.StartWeights:
		if e.Start.FromKind == event.KindStandard && e.Kind == event.KindSelectionAware {
			c.p("  Fine-tuning from standard-training weights %s: selection-aware stage 2 with a fresh optimizer", e.Start.From)
		} else {
			c.p("  Starting from the weights of %s (%s checkpoint, iteration %d) with a fresh optimizer", e.Start.From, e.Start.FromKind, e.Start.Iteration)
		}
	}
	if e.WorldSize > 1 {
		per := strconv.Itoa(e.BatchSize / e.WorldSize)
		if e.BatchSize%e.WorldSize != 0 {
			per = fmt.Sprintf("%d-%d", e.BatchSize/e.WorldSize, e.BatchSize/e.WorldSize+1)
		}
		c.p("  Ranks: %d (%s), global batch %d = %s per rank", e.WorldSize, e.Backend, e.BatchSize, per)
	}
}
