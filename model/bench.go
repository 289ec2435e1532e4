package model

import (
	"fmt"
	"math/rand"
	"sort"
	"syscall"
	"time"

	"github.com/satrain/satrain/torch"
)

// BenchConfig describes a throughput measurement of the model on random
// inputs (no data file): the scoring pass and the training step.
type BenchConfig struct {
	Model          Config
	Device         torch.Device
	UseAMP         bool
	ScoreBatches   []int
	TrainBatch     int
	Warmup, Iters  int
	PeakTFLOPs     float64 // for MFU; 0: not reported
	Seed           uint64
	FullFinalLayer bool // disable the last-query shortcut (for comparison)
	FusedKernels   bool // opt-in fused kernels (Engine.UseFusedKernels)
	CUDAGraphs     bool // scoring replayed from a captured CUDA graph (StepConfig.CUDAGraphs)
}

// BenchResult is one measurement.
type BenchResult struct {
	Impl       string  `json:"impl"`
	Mode       string  `json:"mode"`
	Device     string  `json:"device"`
	Batch      int     `json:"batch"`
	SeqLen     int     `json:"seq_len"`
	MsPerBatch float64 `json:"ms_per_batch"`
	SeqPerSec  float64 `json:"seq_per_s"`
	// CPUMsPerBatch is the median of the process's CPU time (user + system, all threads) per batch: on a
	// machine shared with other work it moves far less than the wall clock, and with one thread it is the
	// work done (bench/model_cpu.sh compares it side by side with PyTorch's).
	CPUMsPerBatch float64 `json:"cpu_ms_per_batch"`
	TFLOPs        float64 `json:"tflops"`
	MFU           float64 `json:"mfu"`
	PeakMemBytes  int64   `json:"peak_mem_bytes"`
	Params        int64   `json:"params"`
	AMP           bool    `json:"amp"`
	LastQueryOnly bool    `json:"last_query_only"`
	FusedGelu     bool    `json:"fused_gelu"`  // fused bias+GELU kernel in scoring
	FusedAdamW    bool    `json:"fused_adamw"` // fused AdamW step in training
	CUDAGraphs    bool    `json:"cuda_graphs"` // scoring replayed from a CUDA graph (asked for; CUDA only)
	Note          string  `json:"note,omitempty"`
}

// processCPU is the CPU time of the whole process so far, user + system, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// Bench measures scoring throughput for each batch size and one training step
// at TrainBatch. Inputs come from pinned host memory each batch, as in a run.
func Bench(cfg BenchConfig, emit func(BenchResult)) error {
	m, err := New(cfg.Model, cfg.Device, cfg.Seed)
	if err != nil {
		return err
	}
	defer m.Free()
	m.LastQueryOnly = !cfg.FullFinalLayer
	centers := make([][]float32, cfg.Model.NumHorizons)
	for h := range centers {
		for b := 0; b < cfg.Model.NumBins; b++ {
			centers[h] = append(centers[h], 0.95+0.01*float32(b))
		}
	}
	e, err := NewEngine(m, StepConfig{LR: 4e-5, WeightDecay: 0.01, MaxGradNorm: 1, UseAMP: cfg.UseAMP, CUDAGraphs: cfg.CUDAGraphs}, centers, 0)
	if err != nil {
		return err
	}
	defer e.Free()
	fused, err := e.UseFusedKernels(cfg.FusedKernels)
	if err != nil {
		return err
	}
	S, F, H := cfg.Model.SeqLen, cfg.Model.NumFeatures, cfg.Model.NumHorizons
	rng := rand.New(rand.NewSource(int64(cfg.Seed)))
	fill := func(buf []float32) {
		for i := range buf {
			buf[i] = float32(rng.NormFloat64())
		}
	}
	flops := cfg.Model.ForwardFLOPs(S)
	base := BenchResult{Impl: "satrain", Device: cfg.Device.String(), SeqLen: S, Params: m.NumParams(), AMP: cfg.UseAMP, LastQueryOnly: m.LastQueryOnly,
		FusedGelu: fused.LinearGelu, FusedAdamW: fused.AdamW, CUDAGraphs: cfg.CUDAGraphs && cfg.Device.IsCUDA()}
	finish := func(r BenchResult, times, cpu []float64, perSeqFLOPs float64) BenchResult {
		r.MsPerBatch = median(times) * 1e3
		r.CPUMsPerBatch = median(cpu) * 1e3
		r.SeqPerSec = float64(r.Batch) / median(times)
		r.TFLOPs = r.SeqPerSec * perSeqFLOPs / 1e12
		if cfg.PeakTFLOPs > 0 {
			r.MFU = r.TFLOPs / cfg.PeakTFLOPs
		}
		if cfg.Device.IsCUDA() {
			if st, err := torch.DeviceMemory(cfg.Device); err == nil {
				r.PeakMemBytes = st.Peak
			}
		}
		return r
	}
	for _, bs := range cfg.ScoreBatches {
		feats := e.PinnedFeatures(bs * S * F)
		fill(feats)
		_ = torch.ResetPeakMemory(cfg.Device)
		e.InferenceBatch = bs
		var times, cpu []float64
		var failed error
		for i := 0; i < cfg.Warmup+cfg.Iters; i++ {
			t0, c0 := time.Now(), processCPU()
			if _, err := e.Infer(feats, nil, bs, S, false); err != nil {
				failed = err
				break
			}
			if i >= cfg.Warmup {
				times = append(times, time.Since(t0).Seconds())
				cpu = append(cpu, processCPU()-c0)
			}
		}
		r := base
		r.Mode, r.Batch = "score", bs
		if failed != nil {
			r.Note = failed.Error()
			emit(r)
			continue
		}
		if e.InferenceBatch != bs {
			r.Note = fmt.Sprintf("out of memory: ran at inference batch %d", e.InferenceBatch)
		}
		emit(finish(r, times, cpu, flops))
	}
	if cfg.TrainBatch > 0 {
		bs := cfg.TrainBatch
		feats := e.PinnedFeatures(bs * S * F)
		fill(feats)
		labels := make([]int64, bs*H)
		for i := range labels {
			labels[i] = int64(rng.Intn(cfg.Model.NumBins))
		}
		_ = torch.ResetPeakMemory(cfg.Device)
		var times, cpu []float64
		r := base
		r.Mode, r.Batch = "train", bs
		for i := 0; i < cfg.Warmup+cfg.Iters; i++ {
			t0, c0 := time.Now(), processCPU()
			if _, err := e.TrainStep(feats, labels, nil, bs, S); err != nil {
				r.Note = err.Error()
				break
			}
			if i >= cfg.Warmup {
				times = append(times, time.Since(t0).Seconds())
				cpu = append(cpu, processCPU()-c0)
			}
		}
		if r.Note != "" {
			emit(r)
		} else {
			emit(finish(r, times, cpu, 3*flops))
		}
	}
	return nil
}
