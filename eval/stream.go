package eval

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
)

// StreamOptions configure Stream.
type StreamOptions struct {
	Labels bool // pass the batch's labels to the model: InferResult.Loss holds per-sequence losses
	Logits bool // keep the logits (InferResult.Logits, [n][H][B] float32)
	// NewFeatures is the loader's allocator for feature buffers (pinned
	// host memory on CUDA); nil: the loader allocates.
	NewFeatures func(n int) []float32
}

// Stream is satrain's one streaming-inference loop: it runs eng over ids
// in batches of eng.InferenceBatch windows of eng's window length, read
// ahead from ds on the loader's goroutine, and calls fn for each batch in
// order with the batch and the model's outputs for it (both valid only
// during the call). The training loop's scoring and validation, the
// evaluator and the cascade's scorers all score through it.
//
// ioWait is the time spent waiting for the loader, compute the time in
// Engine.Infer. It stops at the first error (of the loader, the model or
// fn) and when ctx ends, checked after each batch.
func Stream(ctx context.Context, eng *model.Engine, ds *loader.Dataset, ids []loader.SeqID, opt StreamOptions,
	fn func(b *loader.Batch, out model.InferResult) error) (ioWait, compute time.Duration, err error) {
	seqLen := eng.Model.Cfg.SeqLen
	st := ds.Stream(ctx, ids, loader.StreamOptions{BatchSize: max(1, eng.InferenceBatch), Depth: 2, NewFeatures: opt.NewFeatures})
	defer st.Close()
	for {
		t0 := time.Now()
		b, err := st.Next()
		ioWait += time.Since(t0)
		if errors.Is(err, io.EOF) {
			return ioWait, compute, nil
		}
		if err != nil {
			return ioWait, compute, err
		}
		var labels []int64
		if opt.Labels {
			labels = b.Labels
		}
		t1 := time.Now()
		out, err := eng.Infer(b.Features, labels, len(b.IDs), seqLen, opt.Logits)
		compute += time.Since(t1)
		if err != nil {
			return ioWait, compute, err
		}
		err = fn(b, out)
		st.Release(b)
		if err != nil {
			return ioWait, compute, err
		}
		if err := ctx.Err(); err != nil {
			return ioWait, compute, err
		}
	}
}
