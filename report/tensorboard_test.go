package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/report/tfevent"
)

// tbRead reads every event file of dir in name order: the scalars as
// "tag@step" -> value (failing on a tag and step written twice) and the
// histograms by step.
func tbRead(t *testing.T, dir string) (map[string]float64, map[int64]*tfevent.HistogramProto) {
	t.Helper()
	files, err := EventFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	scalars, hists := map[string]float64{}, map[int64]*tfevent.HistogramProto{}
	for _, f := range files {
		evs, err := tfevent.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(evs) == 0 || evs[0].GetFileVersion() != tfevent.FileVersion {
			t.Fatalf("%s does not start with the file_version event", f)
		}
		for _, e := range evs[1:] {
			for _, v := range e.GetSummary().GetValue() {
				key := fmt.Sprintf("%s@%d", v.Tag, e.Step)
				if h := v.GetHisto(); h != nil {
					hists[e.Step] = h
					continue
				}
				if _, dup := scalars[key]; dup {
					t.Errorf("%s written twice", key)
				}
				scalars[key] = float64(v.GetSimpleValue())
			}
		}
	}
	return scalars, hists
}

func tbIteration(r event.Reporter, it int, trainLoss float64, validate bool) {
	r.Report(event.IterationStarted{Kind: event.KindSelectionAware, Iteration: it, Total: 3})
	r.Report(event.SampleScored{Iteration: it, Sampled: 100, Mean: 1.01, Median: 1.02})
	r.Report(event.SubsetSelected{Iteration: it, K: 5, TopKMean: 1.15, TopKMin: 1.0, Scores: []float64{1.3, 1.2, 1.1, 1.0, math.NaN()}, Overlap: math.NaN()})
	r.Report(event.Trained{Iteration: it, Loss: trainLoss, Sequences: 30})
	e := event.IterationEnded{Kind: event.KindSelectionAware, Iteration: it, TrainLoss: trainLoss, ValLoss: math.NaN(), Scored: true,
		ERMean: 1.01, ERMedian: 1.02, TopKERMean: 1.15, TopKERMin: 1.0,
		PhaseSeconds: map[string]float64{event.PhaseSampling: 0.125, event.PhaseInference: 0.5, event.PhaseTraining: 1.5}, IterationSeconds: 2.125}
	if validate {
		r.Report(event.ValidationStarted{Iteration: it, Sequences: 50})
		r.Report(event.Validated{Iteration: it, Loss: 2.25, Best: true, BestLoss: 2.25})
		e.ValLoss, e.Validated, e.PhaseSeconds[event.PhaseValidation] = 2.25, true, 0.25
		e.Overlap, e.HasOverlap = 0.4, true
		e.OnDevice, e.DeviceMemoryAllocated, e.DeviceMemoryPeak = true, 1<<20, 3<<20
	}
	r.Report(e)
}

// TestTensorBoardValues: each iteration's scalars are the event values (the
// rates are sequences over phase seconds: 100/0.5, 30/1.5, 50/0.25), a
// non-finite loss stays non-finite, values a step did not measure are
// absent, and the histogram holds the finite selected scores.
func TestTensorBoardValues(t *testing.T) {
	dir := t.TempDir()
	tb := NewTensorBoard(dir, false, nil)
	tb.Report(event.RunStarted{Kind: event.KindSelectionAware, LR: 0.001, NumIterations: 3, SaveDir: dir})
	tbIteration(tb, 1, 2.5, false)
	tbIteration(tb, 2, math.NaN(), true)
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	got, hists := tbRead(t, dir)
	want := map[string]float64{}
	for _, step := range []int{1, 2} {
		for tag, v := range map[string]float64{TagLR: 0.001, TagERMean: 1.01, TagERMedian: 1.02, TagTopKERMean: 1.15, TagTopKERMin: 1.0,
			TagIterSeconds: 2.125, TagPhaseSeconds + "sampling": 0.125, TagPhaseSeconds + "inference": 0.5, TagPhaseSeconds + "training": 1.5,
			TagPhaseRate + "inference": 200, TagPhaseRate + "training": 20} {
			want[fmt.Sprintf("%s@%d", tag, step)] = v
		}
	}
	want[TagTrainLoss+"@1"] = 2.5
	for tag, v := range map[string]float64{TagValLoss: 2.25, TagBestValLoss: 2.25, TagOverlap: 0.4, TagPhaseSeconds + "validation": 0.25,
		TagPhaseRate + "validation": 200, TagDeviceMemory: 1 << 20, TagDevicePeak: 3 << 20} {
		want[tag+"@2"] = v
	}
	if v, ok := got[TagTrainLoss+"@2"]; !ok || !math.IsNaN(v) {
		t.Errorf("%s@2 = %v (written %v), want NaN", TagTrainLoss, v, ok)
	}
	delete(got, TagTrainLoss+"@2")
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-6*math.Abs(w) {
			t.Errorf("%s = %v (written %v), want %v", k, g, ok, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected scalar %s", k)
		}
	}
	h := hists[2]
	if h == nil || h.Num != 4 || h.Min != 1.0 || h.Max != 1.3 || math.Abs(h.Sum-4.6) > 1e-12 {
		t.Fatalf("histogram of step 2: %v; want 4 values from 1.0 to 1.3 summing to 4.6", h)
	}
	// Four values, four buckets of width 0.075: one value in each.
	if fmt.Sprint(h.Bucket) != "[1 1 1 1]" || len(h.BucketLimit) != 4 || h.BucketLimit[3] != 1.3 {
		t.Errorf("buckets %v with limits %v; want one value in each of 4, the last ending at 1.3", h.Bucket, h.BucketLimit)
	}
}

// TestTensorBoardResume: a run resumed after iteration 1 in its own save dir
// drops the later steps of the run it continues (and a partial record a kill
// left), appends in a file read after the first one (even when started in the
// same second), and no step is written twice. A fresh run afterwards starts
// the folder anew.
func TestTensorBoardResume(t *testing.T) {
	dir := t.TempDir()
	clock := func() time.Time { return time.Unix(1_800_000_000, 0) }
	first := NewTensorBoard(dir, false, nil)
	first.now = clock
	first.Report(event.RunStarted{LR: 0.001, SaveDir: dir})
	for it := 1; it <= 3; it++ {
		tbIteration(first, it, float64(it), it == 2)
	}
	first.Close()
	files, _ := EventFiles(dir)
	if len(files) != 1 {
		t.Fatalf("%d event files after one run, want 1", len(files))
	}
	f, _ := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	rec := tfevent.AppendRecord(nil, []byte("a record the kill cut short"))
	f.Write(rec[:len(rec)-5])
	f.Close()

	second := NewTensorBoard(dir, false, nil)
	second.now = clock
	second.Report(event.RunStarted{LR: 0.001, SaveDir: dir, Start: event.Start{Mode: event.StartResume, Iteration: 1}})
	for it := 2; it <= 3; it++ {
		tbIteration(second, it, 10*float64(it), false)
	}
	second.Close()
	files, _ = EventFiles(dir)
	if len(files) != 2 || filepath.Base(files[1]) <= filepath.Base(files[0]) {
		t.Fatalf("event files after the resume: %v; want the first run's, then one that sorts after it", files)
	}
	if _, err := tfevent.ReadFile(files[0]); err != nil {
		t.Errorf("the first run's file after the resume: %v (the partial record should be gone)", err)
	}
	got, hists := tbRead(t, dir)
	for k, w := range map[string]float64{TagTrainLoss + "@1": 1, TagTrainLoss + "@2": 20, TagTrainLoss + "@3": 30} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	// Step 2 of the first run validated; the resumed one did not.
	if _, ok := got[TagValLoss+"@2"]; ok {
		t.Errorf("the first run's %s@2 survived the resume", TagValLoss)
	}
	if len(hists) != 3 {
		t.Errorf("histograms at %d steps, want 3", len(hists))
	}

	fresh := NewTensorBoard(dir, false, nil)
	fresh.Report(event.RunStarted{LR: 0.001, SaveDir: dir})
	tbIteration(fresh, 1, 7, false)
	fresh.Close()
	got, _ = tbRead(t, dir)
	if files, _ := EventFiles(dir); len(files) != 1 || got[TagTrainLoss+"@1"] != 7 || len(got) != 12 {
		t.Errorf("after a fresh run: %d files, %d scalars, %s@1 = %v; want 1 file with iteration 1's 12 scalars, loss 7",
			len(files), len(got), TagTrainLoss, got[TagTrainLoss+"@1"])
	}
}
