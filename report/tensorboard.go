package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"al.essio.dev/pkg/shellescape"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/report/tfevent"
	"google.golang.org/protobuf/proto"
)

// TensorBoardDir is the default TensorBoard folder in a save dir.
const TensorBoardDir = "tensorboard"

// TensorBoard tags, one per scalar a researcher charts (phase tags add the
// phase name: "phase_seconds/training", "sequences_per_second/inference").
const (
	TagTrainLoss      = "loss/train"
	TagValLoss        = "loss/validation"
	TagBestValLoss    = "loss/best_validation"
	TagLR             = "learning_rate"
	TagERMean         = "expected_return/mean"
	TagERMedian       = "expected_return/median"
	TagTopKERMean     = "expected_return/topk_mean"
	TagTopKERMin      = "expected_return/topk_min"
	TagOverlap        = "selection/overlap"
	TagIterSeconds    = "iteration_seconds"
	TagPhaseSeconds   = "phase_seconds/"
	TagPhaseRate      = "sequences_per_second/"
	TagDeviceMemory   = "device_memory/allocated_bytes"
	TagDevicePeak     = "device_memory/peak_bytes"
	TagSelectedERHist = "selected/expected_return"
)

// histogramBuckets is the most buckets of the selected set's histogram: as
// many as TensorBoard draws legibly, fewer for a small set.
const histogramBuckets = 30

// TensorBoard writes a run's scalars, and a histogram of each iteration's
// selected expected returns, as TensorBoard event files in one folder (the
// run's own: point TensorBoard at its parent to compare runs). The values
// are metrics.jsonl's (NewRecord and the same run tracker), one step per
// iteration; an iteration's records are written and synced when it ends, so
// a killed run leaves whole iterations and at most one partial record.
//
// A fresh run removes the event files it finds in the folder, as metrics.jsonl
// starts anew. A run resumed in its own save dir keeps the steps up to the
// iteration it continues after, drops later ones (and a partial last
// record), and appends in a new file whose name sorts after the others:
// TensorBoard reads a folder's files in name order as one run.
type TensorBoard struct {
	dir       string
	wandbHint bool
	console   io.Writer
	w         *tfevent.Writer
	tr        *runTracker
	hist      *tfevent.HistogramProto // the current iteration's selected set
	logged    bool
	now       func() time.Time
}

// NewTensorBoard returns the reporter writing into dir. At the start of the
// run it adds to the console's data block (on console; nil: nothing) where
// the files go and, with wandbHint (--use-wandb), how to make them a W&B run.
func NewTensorBoard(dir string, wandbHint bool, console io.Writer) *TensorBoard {
	return &TensorBoard{dir: dir, wandbHint: wandbHint, console: console, tr: newRunTracker(), now: time.Now}
}

// Report implements event.Reporter.
func (t *TensorBoard) Report(e event.Event) {
	t.tr.observe(e)
	switch e := e.(type) {
	case event.RunStarted:
		if err := t.open(e); err != nil {
			slog.Error("tensorboard", "err", err)
			return
		}
		t.note()
	case event.IterationStarted:
		t.hist = nil
	case event.SubsetSelected:
		t.hist = histogram(e.Scores)
	case event.IterationEnded:
		if t.w == nil {
			return
		}
		t.writeIteration(e)
		t.hist = nil
		if err := t.w.Flush(); err != nil {
			slog.Error("tensorboard write failed", "dir", t.dir, "err", err)
		}
	}
}

// note tells once, under the console's data block, where the event files go
// and how to look at them.
func (t *TensorBoard) note() {
	if t.logged || t.console == nil {
		return
	}
	t.logged = true
	q := shellescape.Quote(t.dir)
	fmt.Fprintf(t.console, "  TensorBoard: %s (tensorboard --logdir %s)\n", t.dir, q)
	if t.wandbHint {
		// W&B's CLI reference: `wandb sync [OPTIONS] [PATH]...` uploads an
		// offline training directory; --sync-tensorboard streams its tfevent
		// files. This process never contacts W&B.
		fmt.Fprintf(t.console, "  W&B (--use-wandb): no W&B run from here; to make one, copy that folder to a machine with network access and run: wandb sync --sync-tensorboard %s\n", q)
	}
}

func (t *TensorBoard) open(e event.RunStarted) error {
	t.Close()
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	files, err := EventFiles(t.dir)
	if err != nil {
		return err
	}
	if e.Start.Mode == event.StartResume && !e.Start.Branch {
		for _, f := range files {
			if err := keepSteps(f, int64(e.Start.Iteration)); err != nil {
				return err
			}
		}
	} else {
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
		if len(files) > 0 {
			slog.Debug("tensorboard: removed the event files of an earlier run", "dir", t.dir, "files", len(files))
		}
	}
	now := t.now()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	// TensorBoard's naming (events.out.tfevents.<unix seconds>.<host>...),
	// with the seconds raised past the last existing file's so that this
	// file is read after the run's earlier ones.
	sec := now.Unix()
	name := func() string { return fmt.Sprintf("events.out.tfevents.%010d.%s.%d.satrain", sec, host, os.Getpid()) }
	files, _ = EventFiles(t.dir)
	for len(files) > 0 && filepath.Base(files[len(files)-1]) >= name() {
		sec++
	}
	w, err := tfevent.Create(filepath.Join(t.dir, name()), wallTime(now))
	if err != nil {
		return err
	}
	t.w = w
	return nil
}

// EventFiles lists the TensorBoard event files in dir, in name order (the
// order TensorBoard reads them).
func EventFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range ents {
		if !d.IsDir() && strings.Contains(d.Name(), "tfevents") && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, filepath.Join(dir, d.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// keepSteps rewrites path without the events after step last and without a
// partial or corrupt tail (what a killed run left); a file left with nothing
// but its file_version event is removed.
func keepSteps(path string, last int64) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	evs, good, rerr := tfevent.Read(bytes.NewReader(raw))
	if rerr != nil && !errors.Is(rerr, tfevent.ErrTruncated) {
		return fmt.Errorf("%s: %w", path, rerr)
	}
	var kept [][]byte
	data := 0
	for _, e := range evs {
		if e.GetFileVersion() == "" && e.Step > last {
			continue
		}
		b, err := proto.Marshal(e)
		if err != nil {
			return err
		}
		kept = append(kept, b)
		if e.GetFileVersion() == "" {
			data++
		}
	}
	if len(kept) == len(evs) && good == int64(len(raw)) {
		return nil
	}
	slog.Debug("tensorboard: dropped the events after the iteration the run resumes from", "file", path,
		"dropped", len(evs)-len(kept), "partial_tail_bytes", int64(len(raw))-good, "kept_through", last)
	if data == 0 {
		return os.Remove(path)
	}
	var out []byte
	for _, b := range kept {
		out = tfevent.AppendRecord(out, b)
	}
	return atomicfile.WriteFile(path, out, 0o644)
}

func wallTime(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// writeIteration buffers the scalars of one iteration (and its histogram).
func (t *TensorBoard) writeIteration(e event.IterationEnded) {
	rec := NewRecord(e)
	var vals []*tfevent.Summary_Value
	add := func(tag string, v float64) {
		vals = append(vals, &tfevent.Summary_Value{Tag: tag, Value: &tfevent.Summary_Value_SimpleValue{SimpleValue: float32(v)}})
	}
	// A measured value that is not finite is written as it is (TensorBoard
	// marks it); metrics.jsonl writes null and names it in non_finite.
	if e.Iteration > 0 {
		add(TagTrainLoss, e.TrainLoss)
	}
	if e.Validated {
		add(TagValLoss, e.ValLoss)
	}
	if b := t.tr.best; !math.IsNaN(b) {
		add(TagBestValLoss, b)
	}
	add(TagLR, t.tr.started.LR)
	if e.Scored {
		add(TagERMean, e.ERMean)
		add(TagERMedian, e.ERMedian)
		add(TagTopKERMean, e.TopKERMean)
		add(TagTopKERMin, e.TopKERMin)
	}
	if e.HasOverlap {
		add(TagOverlap, e.Overlap)
	}
	add(TagIterSeconds, rec.IterationSeconds)
	for _, ph := range sortedKeys(rec.PhaseSeconds) {
		add(TagPhaseSeconds+ph, rec.PhaseSeconds[ph])
	}
	rates := t.tr.rates(e.PhaseSeconds)
	for _, ph := range sortedKeys(rates) {
		add(TagPhaseRate+ph, rates[ph])
	}
	if e.OnDevice {
		add(TagDeviceMemory, float64(e.DeviceMemoryAllocated))
		add(TagDevicePeak, float64(e.DeviceMemoryPeak))
	}
	wall := wallTime(t.now())
	step := int64(e.Iteration)
	if t.hist != nil {
		t.w.Write(&tfevent.Event{WallTime: wall, Step: step, What: &tfevent.Event_Summary{Summary: &tfevent.Summary{
			Value: []*tfevent.Summary_Value{{Tag: TagSelectedERHist, Value: &tfevent.Summary_Value_Histo{Histo: t.hist}}}}}})
	}
	// One event per scalar, as TensorBoard's own writers do, so that a cut
	// record loses one value, not an iteration.
	for _, v := range vals {
		t.w.Write(&tfevent.Event{WallTime: wall, Step: step, What: &tfevent.Event_Summary{Summary: &tfevent.Summary{Value: []*tfevent.Summary_Value{v}}}})
	}
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// histogram buckets the finite values of xs into equal-width buckets between
// their minimum and maximum (nil when none is finite).
func histogram(xs []float64) *tfevent.HistogramProto {
	var fin []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			fin = append(fin, x)
		}
	}
	if len(fin) == 0 {
		return nil
	}
	h := &tfevent.HistogramProto{Min: fin[0], Max: fin[0], Num: float64(len(fin))}
	for _, x := range fin {
		h.Min, h.Max = math.Min(h.Min, x), math.Max(h.Max, x)
		h.Sum += x
		h.SumSquares += x * x
	}
	n := min(histogramBuckets, len(fin))
	width := (h.Max - h.Min) / float64(n)
	if width == 0 {
		n = 1
	}
	h.BucketLimit = make([]float64, n)
	h.Bucket = make([]float64, n)
	for i := range n {
		h.BucketLimit[i] = h.Min + float64(i+1)*width
	}
	h.BucketLimit[n-1] = h.Max // exact, whatever the rounding of the sum above
	for _, x := range fin {
		// Bucket i holds (limit[i-1], limit[i]]; the minimum goes to the first.
		i := sort.SearchFloat64s(h.BucketLimit, x)
		h.Bucket[min(i, n-1)]++
	}
	return h
}

// Close closes the current file (an iteration that did not end writes
// nothing).
func (t *TensorBoard) Close() error {
	if t.w == nil {
		return nil
	}
	err := t.w.Close()
	t.w = nil
	return err
}
