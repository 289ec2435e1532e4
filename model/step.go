package model

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"unsafe"

	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/torch"
)

// StepConfig holds the optimisation settings of a training step.
type StepConfig struct {
	LR             float64
	WeightDecay    float64
	MaxGradNorm    float64 // <= 0: no clipping
	LabelSmoothing float64
	UseAMP         bool   // mixed precision: bf16 autocast on CUDA (fp16 + GradScaler with AMPDType fp16); bf16 autocast on CPU
	AMPDType       string // "bf16" (default) or "fp16" (CUDA only)
	MaxSkips       int    // consecutive non-finite steps before the run stops (0: 20)
	FusedKernels   bool   // opt-in fused kernels where libtorch has them (Engine.UseFusedKernels)
	// CUDAGraphs replays the scoring forward from a captured CUDA graph
	// (torch.CaptureForward) when the model is on CUDA and not in FP8; off
	// CUDA, or where capture is unsupported, scoring runs eagerly.
	CUDAGraphs bool
}

// ErrTooManySkips means MaxSkips consecutive steps had a non-finite loss or gradient.
var ErrTooManySkips = errors.New("too many consecutive non-finite training steps")

// Engine owns a model on its device with its optimizer and runs training
// steps and inference. Not safe for concurrent use.
type Engine struct {
	Model   *Model
	Opt     *torch.AdamW
	Cfg     StepConfig
	Centers *torch.Tensor // [H, B] bin centers on the device
	scaler  *torch.GradScaler
	amp     torch.DType
	ampOn   bool

	Skipped     int64 // non-finite steps skipped in total
	consecutive int
	// InferenceBatch is the current inference batch size; halved on OOM.
	InferenceBatch int
	OnOOM          func(newBatch int)

	pinned map[uintptr]*torch.Tensor
	graph  *torch.GraphedForward // the captured scoring forward (StepConfig.CUDAGraphs)
	graphL int                   // its window length

	// Group, when it holds more than one process, makes every training step
	// all-reduce the gradients over its ranks (see TrainShard);
	// StopRequested and OnStop carry a local stop request to every rank at
	// the step boundary: a rank whose StopRequested reports true makes every
	// rank's OnStop run after that step's all-reduce.
	Group         *torch.ProcessGroup
	StopRequested func() bool
	OnStop        func()

	// Fault, when set (fault-injection tests), runs before each training
	// step (op "train") and inference chunk (op "infer") with that batch's
	// features, which it may alter; an error it returns is handled as if the
	// device had raised it (e.g. a torch.Error of KindOutOfMemory).
	Fault func(op string, feats []float32, n int) error
}

// AMP describes the engine's mixed precision in one phrase: "off",
// "fp16 autocast + GradScaler", "bf16 autocast" or "bf16 autocast (CPU)".
func (e *Engine) AMP() string {
	switch {
	case !e.ampOn:
		return "off"
	case e.scaler != nil:
		return "fp16 autocast + GradScaler"
	case e.Model.Device.IsCUDA():
		return "bf16 autocast"
	}
	return "bf16 autocast (CPU)"
}

// NewEngine wraps a model with an AdamW optimizer. centers is [H][B].
func NewEngine(m *Model, cfg StepConfig, centers [][]float32, inferenceBatch int) (*Engine, error) {
	opt, err := torch.NewAdamW(m.Parameters(), torch.AdamWConfig{LR: cfg.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: cfg.WeightDecay})
	if err != nil {
		return nil, err
	}
	e := &Engine{Model: m, Opt: opt, Cfg: cfg, InferenceBatch: inferenceBatch, pinned: map[uintptr]*torch.Tensor{}}
	if e.Cfg.MaxSkips <= 0 {
		e.Cfg.MaxSkips = 20
	}
	if cfg.FusedKernels {
		if _, err := e.UseFusedKernels(true); err != nil {
			opt.Free()
			return nil, err
		}
	}
	if err := e.SetCenters(centers); err != nil {
		opt.Free()
		return nil, err
	}
	if cfg.UseAMP {
		e.ampOn = true
		e.amp = torch.BFloat16
		if cfg.AMPDType == "fp16" {
			if !m.Device.IsCUDA() {
				return nil, option.Errorf("{amp-dtype} fp16 needs CUDA; on CPU mixed precision is bf16")
			}
			e.amp = torch.Float16
			e.scaler = torch.NewGradScaler()
		}
	}
	return e, nil
}

// SetCenters uploads the bin centers [H][B].
func (e *Engine) SetCenters(centers [][]float32) error {
	H, B := e.Model.Cfg.NumHorizons, e.Model.Cfg.NumBins
	if len(centers) != H {
		return fmt.Errorf("bin centers: %d horizons, model has %d", len(centers), H)
	}
	flat := make([]float32, 0, H*B)
	for h, c := range centers {
		if len(c) != B {
			return fmt.Errorf("bin centers: horizon %d has %d bins, model has %d", h, len(c), B)
		}
		flat = append(flat, c...)
	}
	s := torch.NewScope()
	defer s.Close()
	t := s.To(s.FromFloat32(flat, int64(H), int64(B)), e.Model.Device, torch.Float32, false)
	if err := s.Err(); err != nil {
		return err
	}
	e.freeGraph() // it reads the old centers
	e.Centers.Free()
	e.Centers = s.Keep(t)
	return nil
}

// graphFor is the captured scoring forward for batches of up to
// InferenceBatch windows of seqLen days, captured on first use (nil: score
// eagerly). It is used only with StepConfig.CUDAGraphs on CUDA, outside FP8
// scoring; a capture the build or device cannot do turns the option off.
// It is recaptured when the batch size (halved on out-of-memory) or the
// window length changes; SetCenters and Free release it.
func (e *Engine) graphFor(n, seqLen int) *torch.GraphedForward {
	m := e.Model
	if !e.Cfg.CUDAGraphs || !m.Device.IsCUDA() || m.FP8Active() || n > e.InferenceBatch {
		return nil
	}
	if e.graph != nil && (e.graph.Batch() != int64(e.InferenceBatch) || e.graphL != seqLen) {
		e.freeGraph()
	}
	if e.graph == nil {
		shape := []int64{int64(e.InferenceBatch), int64(seqLen), int64(m.Cfg.NumFeatures)}
		g, err := torch.CaptureForward(shape, torch.Float32, m.Device, 2, func(s *torch.Scope, in *torch.Tensor) []*torch.Tensor {
			exit, err := e.autocast()
			if err != nil {
				s.Fail(err)
				return nil
			}
			logits := m.Forward(s, in, false)
			if err := exit(); err != nil {
				s.Fail(err)
			}
			return []*torch.Tensor{s.ToDType(logits, torch.Float32), ExpectedReturn(s, logits, e.Centers)}
		})
		if err != nil {
			slog.Warn("CUDA graph capture of the scoring forward failed; scoring eagerly", "err", err)
			e.Cfg.CUDAGraphs = false
			return nil
		}
		e.graph, e.graphL = g, seqLen
	}
	return e.graph
}

func (e *Engine) freeGraph() {
	if e.graph != nil {
		e.graph.Free()
		e.graph = nil
	}
}

// Free releases the optimizer, centers, pinned buffers and the captured
// scoring graph (not the model).
func (e *Engine) Free() {
	e.freeGraph()
	e.Opt.Free()
	e.Centers.Free()
	for _, t := range e.pinned {
		t.Free()
	}
	e.pinned = map[uintptr]*torch.Tensor{}
}

// PinnedFeatures allocates a host buffer of n floats in page-locked memory
// when CUDA is in use (so host-to-device copies can run asynchronously) and
// remembers it so batches read into it are uploaded without another copy.
func (e *Engine) PinnedFeatures(n int) []float32 {
	if !e.Model.Device.IsCUDA() {
		return make([]float32, n)
	}
	t, err := torch.Empty([]int64{int64(n)}, torch.Float32, torch.CPU, true)
	if err != nil {
		return make([]float32, n)
	}
	v, err := t.Float32View()
	if err != nil || len(v) == 0 {
		t.Free()
		return make([]float32, n)
	}
	e.pinned[uintptr(unsafe.Pointer(&v[0]))] = t
	return v
}

// ReleasePinned frees a buffer PinnedFeatures returned (a no-op for ordinary
// Go memory, which the garbage collector reclaims).
func (e *Engine) ReleasePinned(v []float32) {
	if len(v) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(&v[0]))
	if t := e.pinned[base]; t != nil {
		t.Free()
		delete(e.pinned, base)
	}
}

// upload puts feats (n sequences) on the device as [n, seqLen, F].
func (e *Engine) upload(s *torch.Scope, feats []float32, n, seqLen int) *torch.Tensor {
	F := e.Model.Cfg.NumFeatures
	need := n * seqLen * F
	if len(feats) < need {
		s.Fail(fmt.Errorf("batch: %d floats for %d sequences of %dx%d", len(feats), n, seqLen, F))
		return nil
	}
	shape := []int64{int64(n), int64(seqLen), int64(F)}
	if len(feats) > 0 {
		// A slice inside one of our pinned buffers: upload from there directly.
		p := uintptr(unsafe.Pointer(&feats[0]))
		for base, pt := range e.pinned {
			if p >= base && p+uintptr(need)*4 <= base+uintptr(pt.Numel())*4 {
				off := int64(p-base) / 4
				host := s.View(s.Narrow(pt, 0, off, int64(need)), shape...)
				return s.To(host, e.Model.Device, torch.Float32, true)
			}
		}
	}
	host := s.FromFloat32(feats[:need], shape...)
	if !e.Model.Device.IsCUDA() {
		return host
	}
	return s.To(host, e.Model.Device, torch.Float32, false)
}

func (e *Engine) autocast() (func() error, error) {
	if !e.ampOn {
		return func() error { return nil }, nil
	}
	return torch.Autocast(e.Model.Device, e.amp)
}

// syncStep sums this rank's gradients scaled by n/total, its loss share and
// its stop request over every rank. res.Loss becomes the global batch mean.
func (e *Engine) syncStep(res StepResult, n, total int) (StepResult, error) {
	share := float64(n) / float64(total)
	stop := float32(0)
	if e.StopRequested != nil && e.StopRequested() {
		stop = 1
	}
	loss := float32(0)
	if n > 0 {
		loss = float32(res.Loss * share)
	}
	extra := []float32{loss, stop}
	if err := e.Group.AllReduceGrads(e.Model.Parameters(), share, extra); err != nil {
		return res, err
	}
	res.Loss = float64(extra[0])
	if extra[1] > 0 && e.OnStop != nil {
		e.OnStop()
	}
	return res, nil
}

// Scoring precisions (Engine.ScoreIn): the reference passes and the cheap
// first pass of the scoring cascade.
const (
	PrecisionFP32 = "fp32" // float32, no autocast
	PrecisionBF16 = "bf16" // bfloat16 autocast
	PrecisionFP16 = "fp16" // float16 autocast (CUDA; a reference only, with --amp-dtype fp16)
	PrecisionFP8  = "fp8"  // the encoder layers' matmuls in FP8 (at::_scaled_mm: CPU, or CUDA sm_89+; Model.UseFP8)
)

// ScoreIn switches the engine's scoring to precision p until restore is
// called: fp32 turns autocast off, bf16 and fp16 turn it on in that dtype,
// fp8 quantises the encoder layers' weights (Model.UseFP8) and leaves the
// rest of the pass in the engine's own precision.
func (e *Engine) ScoreIn(p string) (restore func(), err error) {
	on, dt := e.ampOn, e.amp
	restore = func() { e.ampOn, e.amp = on, dt }
	switch p {
	case PrecisionFP32:
		e.ampOn = false
	case PrecisionBF16:
		e.ampOn, e.amp = true, torch.BFloat16
	case PrecisionFP16:
		e.ampOn, e.amp = true, torch.Float16
	case PrecisionFP8:
		return e.Model.UseFP8()
	default:
		return nil, fmt.Errorf("scoring precision %q: want fp32, bf16, fp16 or fp8", p)
	}
	return restore, nil
}

// StepResult reports one training step.
type StepResult struct {
	Loss     float64
	GradNorm float64
	Skipped  bool
}

// TrainStep runs forward, loss, backward, clipping and one AdamW update on a
// batch of n sequences. weights may be nil. A non-finite loss or gradient
// skips the update (counted in Skipped); MaxSkips in a row is an error.
func (e *Engine) TrainStep(feats []float32, labels []int64, weights []float32, n, seqLen int) (StepResult, error) {
	return e.TrainShard(feats, labels, weights, n, seqLen, n)
}

// TrainShard is TrainStep on this rank's n of a global batch of total
// sequences (n == total in a world of one). In a larger world (Group) the
// gradients, the loss and the stop request are summed over ranks
// (syncStep), so every rank takes the same decision (skip or step) with the
// same values; every rank must call it for every global batch, with n = 0
// for an empty share.
func (e *Engine) TrainShard(feats []float32, labels []int64, weights []float32, n, seqLen, total int) (StepResult, error) {
	dist := e.Group != nil && e.Group.Native()
	if dist && n == 0 {
		// An empty share: nothing to compute, but the collectives are joint.
		return e.afterBackward(StepResult{}, n, total)
	}
	m := e.Model
	H := m.Cfg.NumHorizons
	if len(labels) < n*H {
		return StepResult{}, fmt.Errorf("train step: %d labels for %d sequences x %d horizons", len(labels), n, H)
	}
	if e.Fault != nil {
		if err := e.Fault("train", feats[:min(len(feats), n*seqLen*m.Cfg.NumFeatures)], n); err != nil {
			return StepResult{}, trainErr(err)
		}
	}
	s := torch.NewScope()
	defer s.Close()
	x := e.upload(s, feats, n, seqLen)
	y := s.To(s.FromInt64(labels[:n*H], int64(n), int64(H)), m.Device, torch.Int64, false)
	var w *torch.Tensor
	if weights != nil {
		w = s.To(s.FromFloat32(weights[:n], int64(n)), m.Device, torch.Float32, false)
	}
	if err := s.Err(); err != nil {
		return StepResult{}, err
	}
	exit, err := e.autocast()
	if err != nil {
		return StepResult{}, err
	}
	logits := m.Forward(s, x, true)
	loss := Loss(s, logits, y, w, e.Cfg.LabelSmoothing)
	if err := exit(); err != nil {
		s.Fail(err)
	}
	if err := s.Err(); err != nil {
		return StepResult{}, trainErr(err)
	}
	lv := s.Item(loss)
	res := StepResult{Loss: lv}
	if math.IsNaN(lv) || math.IsInf(lv, 0) {
		if dist {
			// No backward; the non-finite loss, summed over ranks, makes every rank skip.
			return e.afterBackward(res, n, total)
		}
		return e.skip(res, "loss")
	}
	toBackward := loss
	if e.scaler != nil {
		toBackward = s.MulScalar(loss, e.scaler.Scale)
	}
	s.Backward(toBackward)
	if err := s.Err(); err != nil {
		_ = e.Opt.ZeroGrad()
		return res, trainErr(err)
	}
	return e.afterBackward(res, n, total)
}

// afterBackward averages the gradients over ranks (a no-op in a world of
// one), then unscales, clips and steps.
func (e *Engine) afterBackward(res StepResult, n, total int) (StepResult, error) {
	m := e.Model
	if e.Group != nil && e.Group.Native() {
		var err error
		if res, err = e.syncStep(res, n, total); err != nil {
			return res, err
		}
		if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
			return e.skip(res, "loss")
		}
	}
	params := m.Parameters()
	if e.scaler != nil {
		_, finite, err := e.scaler.Unscale(params)
		if err != nil {
			return res, err
		}
		if !finite {
			e.scaler.Update(true)
			return e.skip(res, "gradient (fp16 overflow)")
		}
		e.scaler.Update(false)
	}
	norm, err := torch.ClipGradNorm(params, e.Cfg.MaxGradNorm)
	if err != nil {
		return res, err
	}
	res.GradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return e.skip(res, "gradient")
	}
	if err := e.Opt.Step(); err != nil {
		return res, err
	}
	e.consecutive = 0
	return res, e.Opt.ZeroGrad()
}

func (e *Engine) skip(res StepResult, what string) (StepResult, error) {
	res.Skipped = true
	e.Skipped++
	e.consecutive++
	if err := e.Opt.ZeroGrad(); err != nil {
		return res, err
	}
	slog.Warn("skipped training step: non-finite "+what, "loss", res.Loss, "consecutive", e.consecutive, "skipped_total", e.Skipped)
	if e.consecutive >= e.Cfg.MaxSkips {
		return res, fmt.Errorf("%w (%d in a row; last good weights kept)", ErrTooManySkips, e.consecutive)
	}
	return res, nil
}

func trainErr(err error) error {
	if torch.IsOutOfMemory(err) {
		return option.Errorf("out of device memory in a training step; lower {batch-size} (or {seq-len}): %w", err)
	}
	return err
}

// InferResult holds inference outputs for n sequences.
type InferResult struct {
	Expected []float32 // [n][H] expected gross return per horizon
	Logits   []float32 // [n][H][B], only when asked for
	Loss     []float32 // [n] per-sequence loss (horizon average), only when labels are given
	TieRTol  float64   // relative tolerance within which these scores are equal (ScoreTieRTol)
	// Candidates, set by the scoring cascade (scoreSample), are the indices
	// of the sequences rescored in the run's precision, ascending; only they
	// may be selected. nil: every sequence was scored in the run's precision.
	Candidates []int
}

// Infer scores n sequences (no grad, dropout off, autocast on CUDA) in chunks
// of InferenceBatch. On device out-of-memory it halves the batch, logs it,
// keeps the smaller size, and retries. labels (may be nil) add losses.
func (e *Engine) Infer(feats []float32, labels []int64, n, seqLen int, wantLogits bool) (InferResult, error) {
	m := e.Model
	H, B, F := m.Cfg.NumHorizons, m.Cfg.NumBins, m.Cfg.NumFeatures
	res := InferResult{Expected: make([]float32, 0, n*H), TieRTol: ScoreTieRTol(m.Cfg)}
	if labels != nil {
		res.Loss = make([]float32, 0, n)
	}
	if wantLogits {
		res.Logits = make([]float32, 0, n*H*B)
	}
	exitInf, err := torch.InferenceMode()
	if err != nil {
		return res, err
	}
	defer exitInf()
	for start := 0; start < n; {
		bs := e.InferenceBatch
		if bs < 1 {
			bs = 1
		}
		if start+bs > n {
			bs = n - start
		}
		var chunkLabels []int64
		if labels != nil {
			chunkLabels = labels[start*H : (start+bs)*H]
		}
		out, err := e.inferChunk(feats[start*seqLen*F:], chunkLabels, bs, seqLen, wantLogits)
		if err != nil {
			if torch.IsOutOfMemory(err) && e.InferenceBatch > 1 {
				e.InferenceBatch /= 2
				_ = torch.EmptyCache()
				slog.Warn("out of device memory during inference; halved --inference-batch-size", "new", e.InferenceBatch)
				if e.OnOOM != nil {
					e.OnOOM(e.InferenceBatch)
				}
				continue
			}
			return res, err
		}
		res.Expected = append(res.Expected, out.Expected...)
		res.Logits = append(res.Logits, out.Logits...)
		res.Loss = append(res.Loss, out.Loss...)
		start += bs
	}
	return res, nil
}

func (e *Engine) inferChunk(feats []float32, labels []int64, n, seqLen int, wantLogits bool) (InferResult, error) {
	m := e.Model
	if e.Fault != nil {
		if err := e.Fault("infer", feats[:min(len(feats), n*seqLen*m.Cfg.NumFeatures)], n); err != nil {
			return InferResult{}, err
		}
	}
	s := torch.NewScope()
	defer s.Close()
	x := e.upload(s, feats, n, seqLen)
	if err := s.Err(); err != nil {
		return InferResult{}, err
	}
	exit, err := e.autocast()
	if err != nil {
		return InferResult{}, err
	}
	var logits, er *torch.Tensor
	if g := e.graphFor(n, seqLen); g != nil {
		outs := g.Run(s, x) // [n, H, B] float32 logits and [n, H] expected returns
		logits, er = outs[0], outs[1]
	} else {
		logits = m.Forward(s, x, false)
		er = ExpectedReturn(s, logits, e.Centers)
	}
	if err := exit(); err != nil {
		s.Fail(err)
	}
	var out InferResult
	if labels != nil {
		y := s.To(s.FromInt64(labels, int64(n), int64(m.Cfg.NumHorizons)), m.Device, torch.Int64, false)
		out.Loss = s.Float32s(PerSampleLoss(s, s.ToDType(logits, torch.Float32), y))
	}
	if wantLogits {
		out.Logits = s.Float32s(s.ToDType(logits, torch.Float32))
	}
	out.Expected = s.Float32s(er)
	return out, s.Err()
}
