package report

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
)

func nan() float64 { return math.NaN() }

// TestRecordNulls: unmeasured values are null (the key is there) and not
// listed; measured non-finite ones are null and listed in non_finite; finite
// ones are kept. er_non_finite is the count of non-finite scores (null when
// nothing was scored); selected_overlap and device_memory_peak_bytes are null
// when not measured.
func TestRecordNulls(t *testing.T) {
	cases := []struct {
		name string
		e    event.IterationEnded
		want string // the value keys as JSON, then non_finite
	}{
		{"standard epoch", event.IterationEnded{Iteration: 1, TrainLoss: 2.5, ValLoss: 2.25, Validated: true, ERMean: nan(), ERMedian: nan(), TopKERMean: nan(), TopKERMin: nan()},
			`2.5 2.25 null null null null null null null []`},
		{"diverged", event.IterationEnded{Iteration: 3, TrainLoss: nan(), ValLoss: math.Inf(1), Validated: true, Scored: true, ERMean: 1.5, ERMedian: nan(), TopKERMean: 1.75, TopKERMin: math.Inf(-1),
			ERNonFinite: 57, Overlap: 0.5, HasOverlap: true, OnDevice: true, DeviceMemoryPeak: 1024},
			`null null 1.5 null 1.75 null 57 0.5 1024 [train_loss val_loss er_median topk_er_min]`},
		{"not validated", event.IterationEnded{Iteration: 2, TrainLoss: 2, ValLoss: nan(), Scored: true, ERMean: 1, ERMedian: 1, TopKERMean: 1, TopKERMin: 1, Overlap: nan()},
			`2 null 1 1 1 1 0 null null []`},
		{"iteration 0", event.IterationEnded{Iteration: 0, TrainLoss: nan(), ValLoss: 2.5, Validated: true, ERMean: nan(), ERMedian: nan(), TopKERMean: nan(), TopKERMin: nan()},
			`null 2.5 null null null null null null null []`},
	}
	for _, c := range cases {
		b, err := json.Marshal(NewRecord(c.e))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range []string{"train_loss", "val_loss", "er_mean", "er_median", "topk_er_mean", "topk_er_min", "er_non_finite", "selected_overlap", "device_memory_peak_bytes", "non_finite"} {
			v, ok := m[k]
			if !ok {
				t.Fatalf("%s: no key %s in %s", c.name, k, b)
			}
			j, _ := json.Marshal(v)
			got = append(got, strings.ReplaceAll(strings.ReplaceAll(string(j), `"`, ""), ",", " "))
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%s: %s, want %s", c.name, g, c.want)
		}
	}
}

// TestJSONLResumeKeepsEarlierRecords: a resumed run keeps the records up to
// the iteration it continues after (whole lines only) and appends; a fresh
// run starts the file anew.
func TestJSONLResumeKeepsEarlierRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MetricsLog)
	old := `{"iteration":1}` + "\n" + `{"iteration":2}` + "\n" + `{"iteration":3}` + "\n" + `{"iterat` // a torn last line
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	j := NewJSONL()
	j.Report(event.RunStarted{SaveDir: dir, Start: event.Start{Mode: event.StartResume, Iteration: 2}})
	j.Report(event.IterationEnded{Iteration: 3, TrainLoss: 1, ValLoss: nan(), ERMean: nan(), ERMedian: nan(), TopKERMean: nan(), TopKERMin: nan()})
	j.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || lines[0] != `{"iteration":1}` || lines[1] != `{"iteration":2}` || !strings.Contains(lines[2], `"iteration":3,"train_loss":1`) {
		t.Errorf("after resume:\n%s", b)
	}
	// A resume into another save dir (a new run) starts the file anew.
	j = NewJSONL()
	j.Report(event.RunStarted{SaveDir: dir, Start: event.Start{Mode: event.StartResume, Iteration: 2, Branch: true}})
	j.Close()
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("a resume into another save dir kept %q", b)
	}
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	j = NewJSONL()
	j.Report(event.RunStarted{SaveDir: dir, Start: event.Start{Mode: event.StartFresh}})
	j.Close()
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("a fresh run kept %q", b)
	}
}

// TestConsoleStops: the console's lines for an interrupt, a stop after
// non-finite steps and a run without a finite validation loss; the resume
// command is left to the error (said once).
func TestConsoleStops(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, "")
	c.Report(event.RunStarted{Kind: event.KindSelectionAware, SampleSize: 10, TopK: 2, EpochsPerIteration: 1, NumIterations: 3})
	b.Reset()
	c.Report(event.Trained{Loss: nan()})
	c.Report(event.Interrupted{Iteration: 2, Completed: 1, Phase: "training", Path: "d/checkpoint_interrupted_iter_2.pt", Partial: true})
	c.Report(event.TrainingStopped{Iteration: 3, Completed: 2, Path: "d/checkpoint_last_good.pt"})
	c.Report(event.RunEnded{Kind: event.KindSelectionAware, Iterations: 3, BestValLoss: math.Inf(1), Finished: true})
	want := "  ⚠️  Training loss: NaN\n\n  ⏹  Run interrupted during training of iteration 2; iteration 1 is the last completed\n" +
		"     State saved to d/checkpoint_interrupted_iter_2.pt\n\n" +
		"  ⛔ Training stopped in iteration 3: too many consecutive non-finite steps; the last good weights are in d/checkpoint_last_good.pt\n\n" +
		Rule + "\nDone: 3 iterations, no finite validation loss\n" + Rule + "\n"
	if b.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestNextPort(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:9108": "127.0.0.1:9109", "0.0.0.0:80": "0.0.0.0:81", "[::1]:9108": "[::1]:9109", "bad": "127.0.0.1:9109"} {
		if got := nextPort(in); got != want {
			t.Errorf("nextPort(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConsoleNonFiniteScores: the stats block says how many scores were left
// out of its statistics, after its documented lines, and says nothing when
// every score was finite.
func TestConsoleNonFiniteScores(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, "")
	c.Report(event.SampleScored{Iteration: 1, Sampled: 2000, Mean: 1.0041, Median: 1.0042, NonFinite: 57})
	c.Report(event.SubsetSelected{Iteration: 1, K: 200, TopKMean: 1.02, TopKMin: 1.01})
	c.Report(event.SampleScored{Iteration: 2, Sampled: 2000, Mean: 1.0041, Median: 1.0042})
	c.Report(event.SubsetSelected{Iteration: 2, K: 200, TopKMean: 1.02, TopKMin: 1.01})
	stats := "    📊 Expected return stats:\n      Mean: 1.0041\n      Median: 1.0042\n      Top 200 mean: 1.0200\n      Top 200 min: 1.0100\n"
	want := stats + "      Non-finite: 57 of 2000 scores (excluded)\n" + stats
	if b.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestConsoleRanks: the data block names the world size, the backend and the
// per-rank share of the global batch (uneven: both sizes), and says nothing
// in a world of one.
func TestConsoleRanks(t *testing.T) {
	for _, c := range []struct {
		world, batch int
		want         string
	}{
		{1, 32, ""},
		{2, 32, "  Ranks: 2 (gloo), global batch 32 = 16 per rank\n"},
		{3, 32, "  Ranks: 3 (gloo), global batch 32 = 10-11 per rank\n"},
	} {
		var b bytes.Buffer
		NewConsole(&b, "").Report(event.RunStarted{Kind: event.KindStandard, Epochs: 1, BatchSize: c.batch, WorldSize: c.world, Backend: "gloo"})
		got := b.String()[strings.Index(b.String(), "  Saving to")+len("  Saving to \n"):]
		if got != c.want {
			t.Errorf("world %d, batch %d: data block ends %q, want %q", c.world, c.batch, got, c.want)
		}
	}
}

// TestConsoleResume: a resume before any finite validation loss says so in
// words (it printed "best val loss +Inf"); a best model copied from the
// earlier run's save dir is named with its origin; the summary names the
// best model kept since the resume, or says that its file was not found.
func TestConsoleResume(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, "")
	start := event.RunStarted{Kind: event.KindSelectionAware, SampleSize: 10, TopK: 2, EpochsPerIteration: 1, NumIterations: 3,
		SaveDir: "new", Start: event.Start{Mode: event.StartResume, From: "old/checkpoint_iter_1.pt", Iteration: 1, BestValLoss: math.Inf(1)}}
	c.Report(start)
	if want := "  Resuming selection_aware run from old/checkpoint_iter_1.pt: continuing after iteration 1 (no finite validation loss yet)\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("console:\n%s\nwant it to end with:\n%s", b.String(), want)
	}

	b.Reset()
	start.Start.Iteration, start.Start.BestValLoss = 2, 2.4623
	start.Start.BestPath, start.Start.BestCopiedFrom = "new/best_model_selection_aware.pt", "old/best_model_selection_aware.pt"
	c.Report(start)
	c.Report(event.RunEnded{Kind: event.KindSelectionAware, Iterations: 3, BestValLoss: 2.4623, BestIteration: 2,
		BestPath: "new/best_model_selection_aware.pt", Finished: true})
	for _, want := range []string{
		"  Resuming selection_aware run from old/checkpoint_iter_1.pt: continuing after iteration 2 (best val loss 2.4623)\n" +
			"  Best model so far: new/best_model_selection_aware.pt (copied from old/best_model_selection_aware.pt)\n",
		Rule + "\nDone: 3 iterations, best validation loss 2.4623 (iteration 2)\n  Best model: new/best_model_selection_aware.pt\n" + Rule + "\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("console:\n%s\nwant:\n%s", b.String(), want)
		}
	}

	b.Reset()
	start.Start.BestPath, start.Start.BestCopiedFrom = "", ""
	c.Report(start)
	c.Report(event.RunEnded{Kind: event.KindSelectionAware, Iterations: 3, BestValLoss: 2.4623, BestIteration: 2, Finished: true})
	if want := "Done: 3 iterations, best validation loss 2.4623 (iteration 2)\n  Best model: not found (the file of iteration 2 was missing when the run resumed)\n"; !strings.Contains(b.String(), want) ||
		strings.Contains(b.String(), "Best model so far") {
		t.Errorf("console:\n%s\nwant:\n%s", b.String(), want)
	}
}
