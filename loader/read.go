package loader

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"gonum.org/v1/hdf5"
)

// ReadWindows fills caller buffers: feats len(ids)*SeqLen*F ([n][SeqLen][F]
// row-major float32), labels len(ids)*H (bin index per horizon), returns
// len(ids)*H (realized gross return; may be nil). Every id must be a valid
// sequence (from a Split or ValidationSet): windows with missing rows or
// unknown labels are refused, so NaN/Inf never reach the caller.
func (d *Dataset) ReadWindows(ids []SeqID, feats []float32, labels []int64, returns []float32) error {
	n := len(ids)
	L, F, H := d.opt.SeqLen, d.F, d.H
	if len(feats) < n*L*F {
		return fmt.Errorf("loader: read %s: feature buffer holds %d floats, need %d for %d windows", d.path, len(feats), n*L*F, n)
	}
	if labels != nil && len(labels) < n*H {
		return fmt.Errorf("loader: read %s: label buffer holds %d values, need %d", d.path, len(labels), n*H)
	}
	if returns != nil && len(returns) < n*H {
		return fmt.Errorf("loader: read %s: returns buffer holds %d values, need %d", d.path, len(returns), n*H)
	}
	for i, id := range ids {
		t, day := int(id.Ticker), int(id.Day)
		if t < 0 || t >= d.T || day < 0 || day >= d.D {
			return fmt.Errorf("loader: read %s: ids[%d] = {ticker %d, day %d}: out of range (%d tickers, %d days)", d.path, i, t, day, d.T, d.D)
		}
		if !d.isValid(t, day) {
			return fmt.Errorf("loader: read %s: ids[%d] = %s %d: not a valid sequence (missing feature rows in the %d-day window or unknown labels)", d.path, i, d.tickers[t], d.dates[day], L)
		}
		r := d.returns[(t*d.D+day)*H : (t*d.D+day+1)*H]
		if returns != nil {
			copy(returns[i*H:(i+1)*H], r)
		}
		if labels != nil {
			for h := 0; h < H; h++ {
				labels[i*H+h] = int64(binIndex(d.edges[h], r[h]))
			}
		}
	}
	if d.mode == "preload" {
		w := L * F
		for i, id := range ids {
			src := (int(id.Ticker)*d.D + int(id.Day) - L + 1) * F
			copy(feats[i*w:(i+1)*w], d.features[src:src+w])
		}
		return nil
	}
	err := h5do(func() error { return d.readStreamH5(ids, feats) })
	if err != nil {
		return fmt.Errorf("loader: read %s: %v", d.path, err)
	}
	return nil
}

// readStreamH5 reads windows with hyperslab selections. Windows are sorted by
// ticker and day; windows of one ticker that overlap or lie within SeqLen days
// of each other are coalesced into one read of [1, span, F] (memory dataspace
// of the same shape as the file selection, the fast path in HDF5), and a lone
// window is read straight into the caller's buffer.
func (d *Dataset) readStreamH5(ids []SeqID, feats []float32) error {
	if d.closed || d.fds == nil {
		return fmt.Errorf("dataset is closed")
	}
	L, F := d.opt.SeqLen, d.F
	order := make([]int32, len(ids))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		x, y := ids[a], ids[b]
		if x.Ticker != y.Ticker {
			return int(x.Ticker) - int(y.Ticker)
		}
		return int(x.Day) - int(y.Day)
	})
	w := L * F
	for g := 0; g < len(order); {
		first := ids[order[g]]
		lo := int(first.Day) - L + 1
		hi := int(first.Day)
		e := g + 1
		for e < len(order) {
			nx := ids[order[e]]
			if nx.Ticker != first.Ticker || int(nx.Day)-L+1 > hi+L {
				break
			}
			hi = int(nx.Day)
			e++
		}
		if e == g+1 {
			i := int(order[g])
			dst := feats[i*w : (i+1)*w]
			if err := d.readRowsH5(int(first.Ticker), lo, L, dst); err != nil {
				return err
			}
		} else {
			span := hi - lo + 1
			if cap(d.scratch) < span*F {
				d.scratch = make([]float32, span*F)
			}
			buf := d.scratch[:span*F]
			if err := d.readRowsH5(int(first.Ticker), lo, span, buf); err != nil {
				return err
			}
			for k := g; k < e; k++ {
				i := int(order[k])
				off := (int(ids[i].Day) - L + 1 - lo) * F
				copy(feats[i*w:(i+1)*w], buf[off:off+w])
			}
		}
		g = e
	}
	return nil
}

// readRowsH5 reads features[t, day0:day0+n, :] into dst (n*F floats).
func (d *Dataset) readRowsH5(t, day0, n int, dst []float32) error {
	if err := d.fspace.SelectHyperslab([]uint{uint(t), uint(day0), 0}, nil, []uint{1, uint(n), uint(d.F)}, nil); err != nil {
		return fmt.Errorf("/features: select ticker %d days %d..%d: %s", t, day0, day0+n-1, h5Cause(err))
	}
	ms, ok := d.mspaces[n]
	if !ok {
		var err error
		ms, err = hdf5.CreateSimpleDataspace([]uint{1, uint(n), uint(d.F)}, nil)
		if err != nil {
			return fmt.Errorf("/features: memory dataspace: %s", h5Cause(err))
		}
		if len(d.mspaces) < 256 {
			d.mspaces[n] = ms
		} else {
			defer ms.Close()
		}
	}
	if err := d.fds.ReadSubset(&dst, ms, d.fspace); err != nil {
		return fmt.Errorf("/features: read ticker %d days %d..%d: %s", t, day0, day0+n-1, h5Cause(err))
	}
	return nil
}

// Batch is one batch of windows from a BatchStream.
type Batch struct {
	IDs      []SeqID
	Features []float32 // len(IDs)*SeqLen*F
	Labels   []int64   // len(IDs)*H
	Returns  []float32 // len(IDs)*H
}

// StreamOptions configure Stream.
type StreamOptions struct {
	BatchSize   int
	Depth       int                   // batches read ahead (default 2)
	NewFeatures func(n int) []float32 // optional allocator for feature buffers (trainer passes pinned memory); n floats
}

// BatchStream reads batches ahead of the consumer on a background goroutine.
type BatchStream struct {
	out    chan streamItem
	pool   chan *Batch
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
	ctx    context.Context
	eof    bool // set by the reader before closing out when every batch was sent
}

type streamItem struct {
	b   *Batch
	err error
}

// Stream reads ids in order, in batches of opt.BatchSize (the last may be
// short), opt.Depth batches ahead. Next returns io.EOF after the last batch.
// Buffers handed back with Release are reused; the stream never holds more
// than Depth+1 batches of its own.
func (d *Dataset) Stream(ctx context.Context, ids []SeqID, opt StreamOptions) *BatchStream {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 256
	}
	if opt.Depth <= 0 {
		opt.Depth = 2
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &BatchStream{
		out:    make(chan streamItem, opt.Depth),
		pool:   make(chan *Batch, opt.Depth+2),
		cancel: cancel,
		done:   make(chan struct{}),
		ctx:    ctx,
	}
	L, F, H := d.opt.SeqLen, d.F, d.H
	bs := opt.BatchSize
	go func() {
		defer close(s.done)
		defer close(s.out)
		for start := 0; start < len(ids); start += bs {
			end := start + bs
			if end > len(ids) {
				end = len(ids)
			}
			n := end - start
			var b *Batch
			select {
			case b = <-s.pool:
			case <-ctx.Done():
				return
			default:
				b = &Batch{}
				if opt.NewFeatures != nil {
					b.Features = opt.NewFeatures(bs * L * F)
				} else {
					b.Features = make([]float32, bs*L*F)
				}
				b.Labels = make([]int64, bs*H)
				b.Returns = make([]float32, bs*H)
			}
			b.IDs = ids[start:end]
			if cap(b.Features) < n*L*F {
				err := fmt.Errorf("loader: stream %s: NewFeatures returned %d floats, need %d", d.path, cap(b.Features), bs*L*F)
				select {
				case s.out <- streamItem{nil, err}:
				case <-ctx.Done():
				}
				return
			}
			b.Features = b.Features[:n*L*F]
			b.Labels = b.Labels[:n*H]
			b.Returns = b.Returns[:n*H]
			err := d.ReadWindows(b.IDs, b.Features, b.Labels, b.Returns)
			select {
			case s.out <- streamItem{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
		s.eof = true
	}()
	return s
}

// Next returns the next batch, io.EOF after the last one, the read error if
// one occurred, or the context's error once it is cancelled.
func (s *BatchStream) Next() (*Batch, error) {
	if s.err != nil {
		return nil, s.err
	}
	it, ok := <-s.out
	if !ok {
		<-s.done
		if s.eof {
			s.err = io.EOF
		} else if err := s.ctx.Err(); err != nil {
			s.err = err
		} else {
			s.err = io.EOF
		}
		return nil, s.err
	}
	if it.err != nil {
		s.err = it.err
		return nil, it.err
	}
	return it.b, nil
}

// Release gives a batch's buffers back for reuse. The batch must not be used
// afterwards.
func (s *BatchStream) Release(b *Batch) {
	if b == nil {
		return
	}
	b.Features = b.Features[:cap(b.Features)]
	b.Labels = b.Labels[:cap(b.Labels)]
	b.Returns = b.Returns[:cap(b.Returns)]
	b.IDs = nil
	select {
	case s.pool <- b:
	default:
	}
}

// Close stops the reader and waits for it to exit.
func (s *BatchStream) Close() {
	s.once.Do(func() {
		s.cancel()
		for range s.out {
		}
		<-s.done
		if s.err == nil {
			s.err = fmt.Errorf("loader: stream closed")
		}
	})
}
