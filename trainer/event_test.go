package trainer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/torch"
)

// evRecorder is a fake reporter: it keeps every event.
type evRecorder struct{ events []event.Event }

func (r *evRecorder) Report(e event.Event) { r.events = append(r.events, e) }

// evName is an event's type name ("IterationStarted").
func evName(e event.Event) string { return reflect.TypeOf(e).Name() }

// evSequence names the events, leaving out the ones whose number depends on
// batch counts and background writes (Progress, StepSkipped,
// CheckpointWritten), and tags iteration-scoped ones with their iteration.
func evSequence(events []event.Event) []string {
	var out []string
	for _, e := range events {
		switch e := e.(type) {
		case event.Progress, event.StepSkipped, event.CheckpointWritten:
		case event.IterationStarted:
			out = append(out, fmt.Sprintf("IterationStarted(%d)", e.Iteration))
		default:
			out = append(out, evName(e))
		}
	}
	return out
}

// evWant is the documented sequence of a selection-aware run of n
// iterations validating at the iterations in val.
func evWant(n int, val map[int]bool) []string {
	want := []string{"RunStarted"}
	for it := 1; it <= n; it++ {
		want = append(want, fmt.Sprintf("IterationStarted(%d)", it), "SampleScored", "SubsetSelected", "TrainingStarted", "Trained")
		if val[it] {
			want = append(want, "ValidationStarted", "Validated")
		}
		want = append(want, "IterationEnded")
	}
	return append(want, "RunEnded")
}

// TestEventSequence: a fake reporter, as the run's only reporter, sees the
// documented events in order with the run's values: validation every
// ValEvery iterations and at the last, every checkpoint written, progress
// passes from 0 to their total. With no console reporter the run prints
// nothing and writes no metrics.jsonl (the loops only emit).
func TestEventSequence(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	dir := t.TempDir()
	cfg := ltConfig(runtest.Panel(t, 11), dir, &console)
	cfg.NumIterations, cfg.ValEvery, cfg.CheckpointEvery = 5, 2, 2
	rec := &evRecorder{}
	cfg.Reporters = []event.Reporter{rec}
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if console.Len() != 0 || ltExists(filepath.Join(dir, "metrics.jsonl")) {
		t.Errorf("a run without console and metrics-log reporters printed %q / wrote metrics.jsonl (%v)", console.String(), ltExists(filepath.Join(dir, "metrics.jsonl")))
	}
	got, want := evSequence(rec.events), evWant(5, map[int]bool{2: true, 4: true, 5: true})
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}

	start := rec.events[0].(event.RunStarted)
	if start.Kind != KindSelectionAware || start.SampleSize != 96 || start.TopK != 12 || start.NumIterations != 5 ||
		start.EpochsPerIteration != 2 || start.Horizon != "5d" || start.ValSequences != 48 || start.TrainSequences <= 0 ||
		start.FirstIteration != 1 || start.Start.Mode != event.StartFresh || start.SaveDir != dir || len(start.Tickers) != 20 {
		t.Errorf("RunStarted %+v", start)
	}

	// Values match the run's records.
	it := 0
	written := map[string]int{}
	saved := map[string]int{}
	var pass *event.Progress
	for i, e := range rec.events {
		switch e := e.(type) {
		case event.IterationStarted:
			it = e.Iteration
		case event.SampleScored:
			r := res.Iterations[it-1]
			if e.Iteration != it || e.Sampled != 96 || e.Mean != r.ERMean || e.Median != r.ERMedian || e.ScoredTotal != r.ScoredTotal {
				t.Errorf("iteration %d: %+v, record %+v", it, e, r)
			}
		case event.SubsetSelected:
			r := res.Iterations[it-1]
			if e.K != 12 || e.TopKMean != r.TopKERMean || e.TopKMin != r.TopKERMin || !reflect.DeepEqual(e.Selected, r.Selected) ||
				len(e.Scores) != 12 || e.Scores[11] != r.TopKERMin || (it == 1) != math.IsNaN(e.Overlap) {
				t.Errorf("iteration %d: SubsetSelected %+v", it, e)
			}
		case event.Trained:
			r := res.Iterations[it-1]
			if e.Loss != r.TrainLoss || e.Sequences != 24 || e.TrainedTotal != r.TrainedTotal {
				t.Errorf("iteration %d: Trained %+v, record train loss %v", it, e, r.TrainLoss)
			}
		case event.Validated:
			r := res.Iterations[it-1]
			if !r.Validated || e.Loss != r.ValLoss || e.Iteration != it {
				t.Errorf("iteration %d: Validated %+v, record %v", it, e, r.ValLoss)
			}
			if e.Best {
				saved[e.BestPath]++
			}
		case event.Progress:
			if e.Done == 0 {
				if pass != nil && pass.Done != pass.Total {
					t.Errorf("a %s pass ended at %d of %d", pass.Phase, pass.Done, pass.Total)
				}
			} else if pass == nil || e.Phase != pass.Phase || e.Done <= pass.Done || e.Done > e.Total {
				t.Errorf("event %d: progress %+v after %+v", i, e, pass)
			}
			p := e
			pass = &p
		case event.CheckpointWritten:
			written[e.Path]++
			if !ltExists(e.Path) || e.Bytes <= 0 {
				t.Errorf("CheckpointWritten %+v: no such file", e)
			}
		case event.IterationEnded:
			r := res.Iterations[it-1]
			if e.Iteration != it || e.TrainLoss != r.TrainLoss || e.Validated != (r.Validated) || !e.Scored || e.ERMean != r.ERMean {
				t.Errorf("IterationEnded %+v, record %+v", e, r)
			}
		case event.RunEnded:
			if !e.Finished || e.Err != nil || e.Iterations != 5 || e.BestValLoss != res.BestValLoss || e.BestPath != res.BestPath {
				t.Errorf("RunEnded %+v, result best %v at %s", e, res.BestValLoss, res.BestPath)
			}
		}
	}
	for _, n := range []int{2, 4, 5} {
		p := filepath.Join(dir, fmt.Sprintf("checkpoint_iter_%d.pt", n))
		if written[p] != 1 {
			t.Errorf("%s written %d times", p, written[p])
		}
	}
	best := filepath.Join(dir, "best_model_selection_aware.pt")
	if saved[best] == 0 || written[best] != saved[best] {
		t.Errorf("best model saved %d times, written %d times", saved[best], written[best])
	}
}

// TestEventSequenceInterrupted: a signal between iterations 2 and 3 ends the
// events with the interrupt checkpoint written, Interrupted, and RunEnded
// carrying ErrInterrupted; the standard run's epochs follow the same shape.
func TestEventSequenceInterrupted(t *testing.T) {
	defer torch.LockThread()()
	data := runtest.Panel(t, 11)
	dir := t.TempDir()
	cfg := ltConfig(data, dir, nil)
	cfg.NumIterations, cfg.ValEvery, cfg.CheckpointEvery, cfg.EpochsPerIteration = 5, 10, 10, 1
	rec := &evRecorder{}
	cfg.Reporters = []event.Reporter{rec}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.AfterIteration = func(it int) {
		if it == 2 {
			cancel()
		}
	}
	_, err := RunSelectionAware(ctx, cfg)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run returned %v", err)
	}
	got := evSequence(rec.events)
	want := append(evWant(2, nil)[:len(evWant(2, nil))-1], "IterationStarted(3)", "Interrupted", "RunEnded")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	n := len(rec.events)
	ckpt := filepath.Join(dir, "checkpoint_iter_2.pt")
	w, ok1 := rec.events[n-3].(event.CheckpointWritten)
	in, ok2 := rec.events[n-2].(event.Interrupted)
	end := rec.events[n-1].(event.RunEnded)
	if !ok1 || w.Path != ckpt || !ok2 || in.Path != ckpt || in.Iteration != 3 || in.Completed != 2 || in.Phase != PhaseInference || in.Partial {
		t.Errorf("the run ends with %#v, %#v; want checkpoint_iter_2.pt written, then Interrupted in iteration 3's inference", rec.events[n-3], rec.events[n-2])
	}
	if end.Finished || !errors.Is(end.Err, ErrInterrupted) || end.Iterations != 2 {
		t.Errorf("RunEnded %+v", end)
	}

	// Standard training: epochs, each validated.
	rec = &evRecorder{}
	cfg = ltConfig(data, t.TempDir(), nil)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 2, 40
	cfg.Reporters = []event.Reporter{rec}
	if _, err := RunStandard(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	got = evSequence(rec.events)
	want = []string{"RunStarted", "IterationStarted(1)", "TrainingStarted", "Trained", "ValidationStarted", "Validated", "IterationEnded",
		"IterationStarted(2)", "TrainingStarted", "Trained", "ValidationStarted", "Validated", "IterationEnded", "RunEnded"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("standard events:\n got %v\nwant %v", got, want)
	}
	if s := rec.events[0].(event.RunStarted); s.Kind != KindStandard || s.Epochs != 2 || s.SequencesPerEpoch != 40 {
		t.Errorf("standard RunStarted %+v", s)
	}
	passes := 0
	for _, e := range rec.events {
		if p, ok := e.(event.Progress); ok && p.Phase == PhaseTraining && p.Done == 0 {
			passes++
			if p.Total != 40 {
				t.Errorf("standard training pass of %d, want one pass of 40 per epoch", p.Total)
			}
		}
	}
	if passes != 2 {
		t.Errorf("%d training passes for 2 epochs", passes)
	}

	// A standard run interrupted in epoch 2's training saves its partial
	// state under the epoch's name and resumes from it.
	var console bytes.Buffer
	dir = t.TempDir()
	cfg = ltConfig(data, dir, &console)
	cfg.Epochs, cfg.MaxSeqsPerEpoch = 3, 40
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	cfg.AfterIteration = func(ep int) {
		if ep == 1 {
			cancel2()
		}
	}
	_, err = RunStandard(ctx2, cfg)
	ckpt = filepath.Join(dir, "checkpoint_interrupted_epoch_2.pt")
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(option.CommandLine(err).Error(), "--resume-from "+ckpt) ||
		!strings.Contains(console.String(), "Run interrupted during training of epoch 2; epoch 1 is the last completed") {
		t.Fatalf("standard interrupt: %v\n%s", err, console.String())
	}
	cfg.ResumeFrom, cfg.AfterIteration = ckpt, nil
	res, err := RunStandard(context.Background(), cfg)
	if err != nil || res.LastIter != 3 || len(res.Iterations) != 2 || res.Iterations[0].Iteration != 2 {
		t.Fatalf("standard resume: %v, %+v", err, res)
	}
}
