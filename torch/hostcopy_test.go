package torch

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// hostCopyInputs is a mix of what a checkpoint copies and the layouts that
// make a copy easy to get wrong: float32 weights (one requiring grad), a
// transposed (strided) view, bfloat16 and int64 tensors, a 0-dim scalar and
// an empty tensor, all with distinct values.
func hostCopyInputs(t *testing.T, s *Scope, d Device) []*Tensor {
	t.Helper()
	seq := func(n int, off float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = off + float32(i)*0.37 - float32(i*i)*1e-3
		}
		return v
	}
	w := s.To(s.FromFloat32(seq(12, 1), 3, 4), d, Float32, false)
	p := s.To(s.FromFloat32(seq(6, -2), 6), d, Float32, false)
	ok(t, s)
	if err := p.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	ts := []*Tensor{
		w,
		p,
		s.Transpose(s.To(s.FromFloat32(seq(20, 5), 4, 5), d, Float32, false), 0, 1), // [5 4], strided
		s.To(s.FromFloat32(seq(8, 0.5), 2, 2, 2), d, BFloat16, false),
		s.To(s.FromInt64([]int64{-3, 7, 1 << 40}, 3), d, Int64, false),
		s.To(s.Reshape(s.FromFloat32([]float32{42.5}, 1)), d, Float32, false), // 0-dim
		s.To(s.FromFloat32(nil, 0, 3), d, Float32, false),                     // empty
	}
	ok(t, s)
	if ts[2].IsContiguous() {
		t.Fatal("the transposed input must be strided")
	}
	return ts
}

// The reference: the checkpoint writer's per-tensor copy, Contiguous(To(t, CPU, dt)).
func perTensorHostCopy(t *testing.T, s *Scope, x *Tensor, dt DType) []byte {
	t.Helper()
	c := s.Contiguous(s.Detach(s.To(x, CPU, dt, false)))
	ok(t, s)
	b, err := c.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkHostCopies(t *testing.T, s *Scope, ts, out []*Tensor, dt DType) {
	t.Helper()
	if len(out) != len(ts) {
		t.Fatalf("%d copies of %d tensors", len(out), len(ts))
	}
	for i, c := range out {
		want := dt
		if dt < 0 {
			want = ts[i].DType()
		}
		if c.Device() != CPU || c.DType() != want || !slices.Equal(c.Shape(), ts[i].Shape()) || !c.IsContiguous() || c.RequiresGrad() {
			t.Fatalf("copy %d: %v contiguous=%v requires_grad=%v; want a contiguous CPU %s tensor of shape %v without grad",
				i, c, c.IsContiguous(), c.RequiresGrad(), want, ts[i].Shape())
		}
		got, err := c.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if ref := perTensorHostCopy(t, s, ts[i], want); !bytes.Equal(got, ref) {
			t.Fatalf("copy %d (%v): bytes %v, per-tensor copy %v", i, ts[i], got, ref)
		}
	}
	// A checkpoint written from the copies is the file written from per-tensor
	// copies, byte for byte (each copy has a storage of its own).
	ref := make([]*Tensor, len(ts))
	for i, x := range ts {
		want := dt
		if dt < 0 {
			want = x.DType()
		}
		ref[i] = s.Contiguous(s.Detach(s.To(x, CPU, want, false)))
	}
	ok(t, s)
	if a, b := serializeTensors(t, out), serializeTensors(t, ref); !bytes.Equal(a, b) {
		t.Fatalf("the .pt bytes of the copies (%d bytes) differ from those of per-tensor copies (%d bytes)", len(a), len(b))
	}
}

func serializeTensors(t *testing.T, ts []*Tensor) []byte {
	t.Helper()
	d, err := NewDict()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free()
	for i, x := range ts {
		if err := d.SetTensor(fmt.Sprintf("t%03d", i), x); err != nil {
			t.Fatal(err)
		}
	}
	ser, err := d.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	defer ser.Free()
	return bytes.Clone(ser.Bytes())
}

func TestCopyToHostCPU(t *testing.T) {
	s := scope(t)
	ts := hostCopyInputs(t, s, CPU)
	before := make([][]byte, len(ts))
	for i, x := range ts {
		before[i] = perTensorHostCopy(t, s, x, -1)
	}
	for _, dt := range []DType{-1, Float32} {
		out, pinned, err := CopyToHost(ts, dt)
		if err != nil {
			t.Fatal(err)
		}
		if pinned != 0 {
			t.Errorf("dt %v: %d pinned bytes for CPU inputs, want 0", dt, pinned)
		}
		checkHostCopies(t, s, ts, out, dt)
		// Private copies: changing a copy leaves the original as it was, and the other way round.
		if err := out[0].Fill(-1); err != nil {
			t.Fatal(err)
		}
		for i, x := range ts {
			if got := perTensorHostCopy(t, s, x, -1); !bytes.Equal(got, before[i]) {
				t.Fatalf("dt %v: input %d changed by the copy: %v, was %v", dt, i, got, before[i])
			}
		}
		cp := perTensorHostCopy(t, s, out[1], -1)
		NoGrad(func() {
			if err := ts[1].MulScalarInPlace(3); err != nil {
				t.Fatal(err)
			}
		})
		if got := perTensorHostCopy(t, s, out[1], -1); !bytes.Equal(got, cp) {
			t.Fatalf("dt %v: the copy changed with its original", dt)
		}
		NoGrad(func() {
			if err := ts[1].MulScalarInPlace(1.0 / 3); err != nil {
				t.Fatal(err)
			}
		})
		before[1] = perTensorHostCopy(t, s, ts[1], -1)
		// The int64 input converted to float32: 2⁴⁰ is exact in float32.
		if dt == Float32 {
			v, err := out[4].Float32s()
			if err != nil || !slices.Equal(v, []float32{-3, 7, 1 << 40}) {
				t.Fatalf("int64 -> float32 copy: %v %v", v, err)
			}
		}
		for _, c := range out {
			c.Free()
		}
	}
}

func TestCopyToHostErrors(t *testing.T) {
	s := scope(t)
	a := s.FromFloat32([]float32{1, 2}, 2)
	ok(t, s)
	freed, _ := FromFloat32([]float32{3}, 1)
	freed.Free()
	for _, tc := range []struct {
		name string
		in   []*Tensor
		want string
	}{
		{"nil", []*Tensor{a, nil}, "tensor 1 of 2 is nil or freed"},
		{"freed", []*Tensor{freed, a}, "tensor 0 of 2 is nil or freed"},
	} {
		out, _, err := CopyToHost(tc.in, -1)
		var te *Error
		if !errors.As(err, &te) || te.Kind != KindValue || te.Msg != tc.want || out != nil {
			t.Errorf("%s: got %v, %v; want a value error %q and no copies", tc.name, out, err, tc.want)
		}
	}
	out, pinned, err := CopyToHost(nil, Float32)
	if err != nil || len(out) != 0 || pinned != 0 {
		t.Errorf("no tensors: %v %d %v", out, pinned, err)
	}
}

// On CUDA the copies go through pinned memory on a side stream: the same bytes
// as the per-tensor copy, including work queued on the tensors just before
// (the side stream must wait for it).
func TestCopyToHostCUDA(t *testing.T) {
	if !CUDAIsAvailable() {
		t.Skip("needs a CUDA device")
	}
	s := scope(t)
	d := CUDA(0)
	ts := hostCopyInputs(t, s, d)
	big := s.Randn([]int64{4096, 4096}, Float32, d, nil)
	ok(t, s)
	// Queued on the current stream right before the copy; a side stream that
	// did not wait for it would copy the old values.
	if err := big.MulScalarInPlace(-2); err != nil {
		t.Fatal(err)
	}
	ts = append(ts, big, s.To(ts[0], CPU, Float32, false)) // and a CPU tensor in the same call
	ok(t, s)
	for _, dt := range []DType{-1, Float32} {
		out, pinned, err := CopyToHost(ts, dt)
		if err != nil {
			t.Fatal(err)
		}
		if pinned < 4096*4096*4 {
			t.Errorf("dt %v: %d pinned bytes, want at least the large tensor's %d", dt, pinned, 4096*4096*4)
		}
		checkHostCopies(t, s, ts, out, dt)
		for _, c := range out {
			c.Free()
		}
	}
}

// Above 256 MiB the copies are packed into 256 MiB blocks in order, and a
// tensor larger than a block gets one of its own: four tensors of 80 MiB fill
// three, two and (with 40 MiB) one more block, 300 MiB is one block.
func TestCopyToHostBlocksCUDA(t *testing.T) {
	if !CUDAIsAvailable() {
		t.Skip("needs a CUDA device")
	}
	s := scope(t)
	const mib = 1 << 20
	var ts []*Tensor
	for _, m := range []int64{80, 80, 80, 300, 80, 40} {
		ts = append(ts, s.Randn([]int64{m * mib / 4}, Float32, CUDA(0), nil))
	}
	ok(t, s)
	out, pinned, err := CopyToHost(ts, -1)
	if err != nil {
		t.Fatal(err)
	}
	// blocks: [80 80 80] [300] [80 40]
	if want := int64(256+300+256) * mib; pinned != want {
		t.Errorf("pinned %d MiB, want %d MiB", pinned/mib, want/mib)
	}
	checkHostCopies(t, s, ts, out, -1)
	for _, c := range out {
		c.Free()
	}
}

// defaultStateShapes are the shapes of the default model's parameters (d =
// 1024, 16 layers, feed-forward 4d, 16 features, 4 horizons × 10 bins),
// 201.6M values, each three times (weights and AdamW's two moments), as a
// checkpoint copies them.
func defaultStateShapes() [][]int64 {
	const d, ff, layers = 1024, 4096, 16
	var shapes [][]int64
	shapes = append(shapes, []int64{d, 16}, []int64{d})
	for l := 0; l < layers; l++ {
		shapes = append(shapes, []int64{d}, []int64{d}, []int64{3 * d, d}, []int64{3 * d}, []int64{d, d}, []int64{d},
			[]int64{d}, []int64{d}, []int64{ff, d}, []int64{ff}, []int64{d, ff}, []int64{d})
	}
	shapes = append(shapes, []int64{d}, []int64{d}, []int64{40, d}, []int64{40})
	return slices.Concat(shapes, shapes, shapes)
}

var firstCopyToHost time.Duration

// BenchmarkCopyToHostCUDA times the checkpoint's device-to-host copy of the
// default model's state (2.4 GB in 594 tensors): per-tensor To(CPU), the path
// the checkpoint writer takes today, against CopyToHost. first_call_s is the
// process's first CopyToHost, which also pins its host block; the time per op
// is the steady state, with the block in the allocator's cache.
//
//	torch.test -test.run '^$' -test.bench CopyToHostCUDA -test.benchtime 3x
func BenchmarkCopyToHostCUDA(b *testing.B) {
	if !CUDAIsAvailable() {
		b.Skip("needs a CUDA device")
	}
	defer LockThread()()
	s := NewScope()
	defer s.Close()
	var ts []*Tensor
	var total int64
	for _, sh := range defaultStateShapes() {
		x := s.Randn(sh, Float32, CUDA(0), nil)
		ts = append(ts, x)
		total += x.Numel() * 4
	}
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	if err := Synchronize(CUDA(0)); err != nil {
		b.Fatal(err)
	}
	b.Run("per-tensor", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			for _, x := range ts {
				cs := NewScope()
				c := cs.Keep(cs.Contiguous(cs.Detach(cs.To(x, CPU, Float32, false))))
				if err := cs.Err(); err != nil {
					b.Fatal(err)
				}
				cs.Close()
				c.Free()
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		b.SetBytes(total)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			out, _, err := CopyToHost(ts, Float32)
			if err != nil {
				b.Fatal(err)
			}
			if firstCopyToHost == 0 {
				firstCopyToHost = time.Since(t0)
			}
			for _, c := range out {
				c.Free()
			}
		}
		b.ReportMetric(firstCopyToHost.Seconds(), "first_call_s")
	})
	b.Logf("default state: %d tensors, %.2f GB", len(ts), float64(total)/1e9)
}
