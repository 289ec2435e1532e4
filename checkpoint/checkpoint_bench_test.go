package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/torch"
)

// BenchmarkCheckpointDefault measures, for the default 201.6M-parameter model
// with AdamW state (a 2.4 GB checkpoint), how long a checkpoint blocks
// training: "blocking-s" is the time Save takes on the torch thread (copy to
// host, checksum, serialise) and "total-s" adds the background write, fsync
// and rename. Run: go test -run '^$' -bench CheckpointDefault -benchtime 2x ./trainer/
func BenchmarkCheckpointDefault(b *testing.B) {
	defer torch.LockThread()()
	p := model.Presets["default"]
	cfg := model.Config{NumFeatures: 16, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads,
		NumHorizons: 4, NumBins: 10, SeqLen: 4}
	m, err := model.New(cfg, torch.CPU, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Free()
	centers := make([][]float32, 4)
	for h := range centers {
		for i := 0; i < 10; i++ {
			centers[h] = append(centers[h], 0.95+0.01*float32(i))
		}
	}
	e, err := model.NewEngine(m, model.StepConfig{LR: 4e-5, WeightDecay: 0.01, MaxGradNorm: 1}, centers, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Free()
	x, y := modeltest.RandomBatch(1, cfg)
	if _, err := e.TrainStep(x, y, nil, 1, cfg.SeqLen); err != nil { // creates the AdamW state
		b.Fatal(err)
	}
	dir := b.TempDir()
	var blocking, total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var w Writer
		path := filepath.Join(dir, "checkpoint.pt")
		t0 := time.Now()
		if err := w.Save(path, e, Meta{Kind: event.KindSelectionAware, Iteration: i}, true); err != nil {
			b.Fatal(err)
		}
		blocking += time.Since(t0)
		if err := w.Wait(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
	}
	b.StopTimer()
	if st, err := os.Stat(filepath.Join(dir, "checkpoint.pt")); err == nil {
		b.ReportMetric(float64(st.Size())/1e9, "GB")
	}
	b.ReportMetric(blocking.Seconds()/float64(b.N), "blocking-s")
	b.ReportMetric(total.Seconds()/float64(b.N), "total-s")
}
