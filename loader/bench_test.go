package loader

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Benchmarks read the same windows as bench/loader_bench.py. Environment:
//
//	LOADER_BENCH_FILE  panel to read; created with Synth (500 tickers x 5000
//	                   days x 16 features, ~200 MB) when it does not exist
//	LOADER_BENCH_IDS   where to write the window ids ("ticker day" per line)
//	                   for the Python reference
//
// Run: go test ./loader -run '^$' -bench Windows  (or bench/loader_bench.sh).
const (
	benchSeqLen  = 64
	benchBatch   = 1024
	benchWindows = 8 * benchBatch
)

var (
	benchOnce sync.Once
	benchFile string
	benchIDs  []SeqID
	benchErr  error
)

func benchSetup(b *testing.B) (string, []SeqID) {
	benchOnce.Do(func() {
		benchFile = os.Getenv("LOADER_BENCH_FILE")
		if benchFile == "" {
			benchFile = filepath.Join(os.TempDir(), "satrain-loader-bench.h5")
		}
		if _, err := os.Stat(benchFile); err != nil {
			if benchErr = Synth(benchFile, SynthConfig{Tickers: 500, Days: 5000, Features: 16, Seed: 1}); benchErr != nil {
				return
			}
		}
		d, err := Open(benchFile, Options{SeqLen: benchSeqLen, Mode: "stream"})
		if err != nil {
			benchErr = err
			return
		}
		benchIDs = d.Split("train").Sample(benchWindows, rand.New(rand.NewSource(1)))
		d.Close()
		if p := os.Getenv("LOADER_BENCH_IDS"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				benchErr = err
				return
			}
			w := bufio.NewWriter(f)
			fmt.Fprintf(w, "# seq_len %d batch %d\n", benchSeqLen, benchBatch)
			for _, id := range benchIDs {
				fmt.Fprintf(w, "%d %d\n", id.Ticker, id.Day)
			}
			w.Flush()
			f.Close()
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFile, benchIDs
}

func BenchmarkWindows(b *testing.B) {
	path, ids := benchSetup(b)
	for _, c := range []struct {
		name string
		opt  Options
	}{
		{"preload", Options{Mode: "preload"}},
		{"stream", Options{Mode: "stream"}},
		{"stream-nocache", Options{Mode: "stream", ChunkCache: -1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.opt.SeqLen = benchSeqLen
			d, err := Open(path, c.opt)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			F, H := d.NumFeatures(), len(d.Horizons())
			feats := make([]float32, benchBatch*benchSeqLen*F)
			labels := make([]int64, benchBatch*H)
			rets := make([]float32, benchBatch*H)
			b.SetBytes(int64(len(feats) * 4))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % (benchWindows / benchBatch)
				if err := d.ReadWindows(ids[k*benchBatch:(k+1)*benchBatch], feats, labels, rets); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "windows/s")
		})
	}
	// The floor: one plain copy of the same number of bytes.
	b.Run("memcopy", func(b *testing.B) {
		n := benchBatch * benchSeqLen * 16
		src := make([]float32, 32*n)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, n)
		b.SetBytes(int64(n * 4))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := i % 32
			copy(dst, src[k*n:(k+1)*n])
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "windows/s")
	})
}

func BenchmarkStreamPrefetch(b *testing.B) {
	path, ids := benchSetup(b)
	d, err := Open(path, Options{SeqLen: benchSeqLen, Mode: "stream"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.SetBytes(int64(len(ids) * benchSeqLen * d.NumFeatures() * 4))
	for i := 0; i < b.N; i++ {
		s := d.Stream(b.Context(), ids, StreamOptions{BatchSize: benchBatch, Depth: 2})
		for {
			bt, err := s.Next()
			if err != nil {
				break
			}
			s.Release(bt)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "windows/s")
}

func BenchmarkSample(b *testing.B) {
	path, _ := benchSetup(b)
	d, err := Open(path, Options{SeqLen: benchSeqLen, Mode: "stream"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < b.N; i++ {
		d.Split("train").Sample(100000, rng)
	}
}
