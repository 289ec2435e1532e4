package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// RunConfig is everything a training run needs; the CLI fills it from flags.
type RunConfig struct {
	Data    string
	DataOpt loader.Options
	Model   ModelConfig // NumFeatures, NumHorizons, NumBins come from the data file
	Step    StepConfig

	// Selection-aware
	SampleSize         int
	TopK               int
	HorizonIdx         int
	EpochsPerIteration int
	NumIterations      int
	// Standard
	Epochs           int
	MaxSeqsPerEpoch  int // 0: every training sequence each epoch
	ValEveryStandard int // validate every N steps within an epoch (0: end of epoch only)

	BatchSize       int
	InferenceBatch  int
	SaveDir         string
	ResumeFrom      string
	Overwrite       bool // start in a SaveDir that holds another run's files (--overwrite)
	ValEvery        int
	CheckpointEvery int
	Device          torch.Device
	Seed            int64
	Threads         int
	MetricsAddr     string
	Version         string
	Progress        bool
	Console         io.Writer
	Run             map[string]string // flags for the checkpoint record
	Strategy        Strategy          // selection variants (zero value: the documented method)

	// Hooks for tests: called after each iteration's checkpointing.
	AfterIteration func(it int)
	// testFault is handed to the Engine (see Engine.fault); tests only.
	testFault func(op string, feats []float32, n int) error
}

// IterationRecord is one line of the metrics log.
type IterationRecord struct {
	Time                  string             `json:"time"`
	Strategy              string             `json:"strategy"`
	Iteration             int                `json:"iteration"`
	TrainLoss             float64            `json:"train_loss"`
	ValLoss               *float64           `json:"val_loss"`
	ERMean                float64            `json:"er_mean"`
	ERMedian              float64            `json:"er_median"`
	TopKERMean            float64            `json:"topk_er_mean"`
	TopKERMin             float64            `json:"topk_er_min"`
	SequencesScoredTotal  int64              `json:"sequences_scored_total"`
	SequencesTrainedTotal int64              `json:"sequences_trained_total"`
	StepsSkippedTotal     int64              `json:"steps_skipped_total"`
	PhaseSeconds          map[string]float64 `json:"phase_seconds"`
	IterationSeconds      float64            `json:"iteration_seconds"`
	SelectedOverlap       *float64           `json:"selected_overlap,omitempty"`
	Selected              []loader.SeqID     `json:"-"`
	TrainedIDs            []loader.SeqID     `json:"-"`
	DeviceMemoryPeakBytes int64              `json:"device_memory_peak_bytes,omitempty"`

	// For tests: the iteration's scored sample and its ranking scores
	// (selection-aware only; not logged).
	sample []loader.SeqID
	scores []float64
}

// RunResult summarises a finished (or interrupted) run.
type RunResult struct {
	Iterations  []IterationRecord
	BestValLoss float64
	BestPath    string
	LastIter    int
	Interrupted bool
	ResumeHint  string
}

// ErrInterrupted is returned when a signal stopped the run after a checkpoint.
var ErrInterrupted = errors.New("interrupted")

type session struct {
	cfg      RunConfig
	ds       *loader.Dataset
	eng      *Engine
	met      *Metrics
	out      io.Writer
	logF     *os.File
	meta     Meta
	valIDs   []loader.SeqID
	horizon  int
	logits   bool // score keeps the logits (the strategy's Weights use them)
	writer   checkpointWriter
	pool     *bufPool  // scoring batch buffers, reused across passes
	trainBuf []float32 // selected windows, reused across iterations
}

func (c *RunConfig) defaults() {
	if c.Console == nil {
		c.Console = os.Stdout
	}
	if c.ValEvery <= 0 {
		c.ValEvery = 5
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 10
	}
	if c.Run == nil {
		c.Run = map[string]string{}
	}
}

// Validate checks the flags that do not need the data file.
func (c *RunConfig) Validate(selection bool) error {
	if selection {
		switch {
		case c.SampleSize < 1:
			return fmt.Errorf("--sample-size must be >= 1, got %d", c.SampleSize)
		case c.TopK < 1:
			return fmt.Errorf("--top-k must be >= 1, got %d", c.TopK)
		case c.TopK > c.SampleSize:
			return fmt.Errorf("--top-k %d is larger than --sample-size %d", c.TopK, c.SampleSize)
		case c.EpochsPerIteration < 1:
			return fmt.Errorf("--train-epochs-per-iteration must be >= 1, got %d", c.EpochsPerIteration)
		case c.NumIterations < 1:
			return fmt.Errorf("--num-iterations must be >= 1, got %d", c.NumIterations)
		case c.HorizonIdx < 0:
			return fmt.Errorf("--horizon-idx must be >= 0, got %d", c.HorizonIdx)
		}
	} else if c.Epochs < 1 {
		return fmt.Errorf("--epochs must be >= 1, got %d", c.Epochs)
	}
	switch {
	case c.BatchSize < 1:
		return fmt.Errorf("--batch-size must be >= 1, got %d", c.BatchSize)
	case c.InferenceBatch < 1:
		return fmt.Errorf("--inference-batch-size must be >= 1, got %d", c.InferenceBatch)
	case c.Step.LR <= 0 || math.IsNaN(c.Step.LR) || math.IsInf(c.Step.LR, 0):
		return fmt.Errorf("--lr must be a positive number, got %g", c.Step.LR)
	case c.Data == "":
		return errors.New("--data is required")
	}
	if _, err := os.Stat(c.Data); err != nil {
		return fmt.Errorf("--data %s: %w", c.Data, err)
	}
	if c.ResumeFrom != "" {
		if _, err := os.Stat(c.ResumeFrom); err != nil {
			return fmt.Errorf("--resume-from %s: %w", c.ResumeFrom, err)
		}
	}
	m := c.Model
	m.NumFeatures, m.NumHorizons, m.NumBins = 1, 1, 2
	if err := m.Validate(); err != nil {
		return err
	}
	if err := c.Strategy.Validate(c); err != nil {
		return err
	}
	return torch.CheckDevice(c.Device)
}

// open prepares data, model, optimizer, metrics and the save dir.
func open(ctx context.Context, cfg RunConfig, kind string) (*session, error) {
	cfg.defaults()
	s := &session{cfg: cfg, out: cfg.Console}
	if cfg.Threads > 0 {
		if err := torch.SetNumThreads(cfg.Threads); err != nil {
			return nil, err
		}
	}
	if err := CheckSaveDir(cfg.SaveDir); err != nil {
		return nil, err
	}
	RemoveStaleTemps(cfg.SaveDir)
	opt := cfg.DataOpt
	opt.SeqLen = cfg.Model.SeqLen
	if opt.Seed == 0 {
		opt.Seed = cfg.Seed
	}
	ds, err := loader.Open(cfg.Data, opt)
	if err != nil {
		return nil, err
	}
	s.ds = ds
	fail := func(err error) (*session, error) {
		s.close()
		return nil, err
	}
	H := len(ds.Horizons())
	if kind == KindSelectionAware && cfg.HorizonIdx >= H {
		return fail(fmt.Errorf("--horizon-idx %d out of range: %s has %d horizons (%v days; 0..%d)", cfg.HorizonIdx, cfg.Data, H, ds.Horizons(), H-1))
	}
	s.horizon = cfg.HorizonIdx
	mc := cfg.Model
	mc.NumFeatures, mc.NumHorizons, mc.NumBins = ds.NumFeatures(), H, ds.NumBins()
	if err := mc.Validate(); err != nil {
		return fail(err)
	}
	s.meta = Meta{Kind: kind, BestValLoss: math.Inf(1), Seed: cfg.Seed, DataPath: cfg.Data,
		DataIdentity: ds.Identity(), InferenceBatch: cfg.InferenceBatch, Run: cfg.Run}
	var model *Model
	var loaded *Loaded
	if cfg.ResumeFrom != "" {
		loaded, err = LoadCheckpoint(cfg.ResumeFrom)
		if err != nil {
			return fail(err)
		}
		defer loaded.Free()
		lc := loaded.Config
		if lc.NumFeatures != mc.NumFeatures || lc.NumHorizons != mc.NumHorizons || lc.NumBins != mc.NumBins {
			return fail(fmt.Errorf("--resume-from %s: model has %d features, %d horizons, %d bins; %s has %d, %d, %d",
				cfg.ResumeFrom, lc.NumFeatures, lc.NumHorizons, lc.NumBins, cfg.Data, mc.NumFeatures, mc.NumHorizons, mc.NumBins))
		}
		if lc.HiddenDim != mc.HiddenDim || lc.NumLayers != mc.NumLayers || lc.NumHeads != mc.NumHeads {
			slog.Warn("model flags differ from the checkpoint; using the checkpoint's architecture", "checkpoint", lc.String())
		}
		lc.Dropout, lc.SeqLen = mc.Dropout, mc.SeqLen
		mc = lc
		if loaded.Meta.DataIdentity != ds.Identity() {
			slog.Warn("checkpoint was trained on a different data file", "checkpoint_data", loaded.Meta.DataPath, "data", cfg.Data)
		}
		model, err = loaded.NewModel(cfg.Device)
	} else {
		model, err = NewModel(mc, cfg.Device, uint64(cfg.Seed))
	}
	if err != nil {
		return fail(err)
	}
	model.Cfg = mc
	eng, err := NewEngine(model, cfg.Step, ds.BinCenters(), cfg.InferenceBatch)
	if err != nil {
		model.Free()
		return fail(err)
	}
	s.eng = eng
	eng.fault = cfg.testFault
	if loaded != nil {
		switch {
		case loaded.Meta.Kind == kind && loaded.HasOptim:
			if err := loaded.RestoreOptimizer(eng); err != nil {
				return fail(err)
			}
			m := loaded.Meta
			s.meta.Iteration, s.meta.BestValLoss, s.meta.BestIteration = m.Iteration, m.BestValLoss, m.BestIteration
			s.meta.SequencesScored, s.meta.SequencesTrained, s.meta.StepsSkipped = m.SequencesScored, m.SequencesTrained, m.StepsSkipped
			if m.InferenceBatch > 0 && m.InferenceBatch < cfg.InferenceBatch {
				eng.InferenceBatch = m.InferenceBatch
			}
			eng.Skipped = m.StepsSkipped
			fmt.Fprintf(s.out, "Resuming %s run from %s: continuing after iteration %d (best val loss %.4f)\n", kind, cfg.ResumeFrom, m.Iteration, m.BestValLoss)
		case loaded.Meta.Kind == KindStandard && kind == KindSelectionAware:
			fmt.Fprintf(s.out, "Fine-tuning from standard-training weights %s: selection-aware stage 2 starts at iteration 1 with a fresh optimizer\n", cfg.ResumeFrom)
		default:
			fmt.Fprintf(s.out, "Starting from the weights of %s (%s checkpoint, iteration %d) with a fresh optimizer\n", cfg.ResumeFrom, loaded.Meta.Kind, loaded.Meta.Iteration)
		}
	}
	s.met = NewMetrics(cfg.Version, torch.Version(), torch.BuiltWithCUDA())
	s.met.InferenceBatchSize.Set(float64(eng.InferenceBatch))
	eng.OnOOM = func(n int) { s.met.InferenceBatchSize.Set(float64(n)) }
	if cfg.MetricsAddr != "" {
		addr, err := s.met.Serve(ctx, cfg.MetricsAddr)
		if err != nil {
			return fail(fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err))
		}
		slog.Info("serving Prometheus metrics", "url", "http://"+addr+"/metrics")
	}
	s.valIDs = ds.ValidationSet()
	logPath := filepath.Join(cfg.SaveDir, "metrics.jsonl")
	s.logF, err = os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fail(fmt.Errorf("metrics log %s: %w", logPath, err))
	}
	return s, nil
}

func (s *session) close() {
	if err := s.writer.Wait(); err != nil {
		slog.Error("checkpoint write failed", "err", err)
	}
	if s.eng != nil {
		s.eng.Free()
		s.eng.Model.Free()
	}
	if s.ds != nil {
		s.ds.Close()
	}
	if s.logF != nil {
		s.logF.Close()
	}
}

func (s *session) banner(title, detail string) {
	m := s.eng.Model
	line := "============================================================"
	fmt.Fprintln(s.out, line)
	fmt.Fprintln(s.out, title)
	fmt.Fprintln(s.out, detail)
	fmt.Fprintln(s.out, line)
	fmt.Fprintf(s.out, "Model: %s parameters (%s) on %s, libtorch %s, mixed precision %s\n",
		FormatParams(m.NumParams()), m.Cfg.String(), m.Device, torch.Version(), s.ampDesc())
	fmt.Fprintf(s.out, "Data: %s (%d tickers, %d days, %s mode)\n", s.cfg.Data, len(s.ds.Tickers()), len(s.ds.Dates()), s.ds.Mode())
	fmt.Fprintf(s.out, "Train: %s sequences\n", loader.FormatCount(s.ds.Split("train").Len()))
	fmt.Fprintf(s.out, "Val: %s sequences\n", loader.FormatCount(int64(len(s.valIDs))))
}

func (s *session) ampDesc() string {
	switch {
	case !s.eng.ampOn:
		return "off"
	case s.eng.scaler != nil:
		return "fp16 autocast + GradScaler"
	case s.eng.Model.Device.IsCUDA():
		return "bf16 autocast"
	}
	return "bf16 autocast (CPU)"
}

// bufPool holds the host feature buffers (pinned on CUDA) the loader reads
// scoring batches into. It is made on the torch thread and kept by the
// session, so pinned memory is allocated once per batch size, not per pass.
type bufPool struct {
	floats int
	bufs   [][]float32
	ch     chan []float32
}

const poolBuffers = 4 // the loader holds at most Depth+1 = 3 batches

// scorePool returns the session's pool for batches of floats values, ready
// for a new stream (every buffer free).
func (s *session) scorePool(floats int) *bufPool {
	if s.pool == nil || s.pool.floats != floats {
		if s.pool != nil {
			for _, b := range s.pool.bufs {
				s.eng.ReleasePinned(b)
			}
		}
		s.pool = &bufPool{floats: floats, ch: make(chan []float32, poolBuffers)}
		for i := 0; i < poolBuffers; i++ {
			s.pool.bufs = append(s.pool.bufs, s.eng.PinnedFeatures(floats))
		}
	}
	for len(s.pool.ch) > 0 {
		<-s.pool.ch
	}
	for _, b := range s.pool.bufs {
		s.pool.ch <- b
	}
	return s.pool
}

// get is the loader's allocator (called on its goroutine).
func (p *bufPool) get(n int) []float32 {
	select {
	case b := <-p.ch:
		if len(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]float32, n)
}

// trainBuffer returns a host buffer of n floats for the selected windows,
// reusing the previous iteration's (pinned on CUDA) when it is large enough.
func (s *session) trainBuffer(n int) []float32 {
	if cap(s.trainBuf) < n {
		if s.trainBuf != nil {
			s.eng.ReleasePinned(s.trainBuf[:cap(s.trainBuf)])
		}
		s.trainBuf = s.eng.PinnedFeatures(n)
	}
	return s.trainBuf[:n]
}

// score runs inference over ids, streaming windows from the loader with
// prefetch. It returns expected returns [n][H] and the time spent waiting for
// data versus computing.
func (s *session) score(ctx context.Context, ids []loader.SeqID, labels bool, label string) (InferResult, time.Duration, time.Duration, []int64, []float32, error) {
	seqLen, F := s.eng.Model.Cfg.SeqLen, s.ds.NumFeatures()
	bs := s.eng.InferenceBatch
	pool := s.scorePool(bs * seqLen * F)
	st := s.ds.Stream(ctx, ids, loader.StreamOptions{BatchSize: bs, Depth: 2, NewFeatures: pool.get})
	defer st.Close()
	var res InferResult
	var allLabels []int64
	var allReturns []float32
	var ioWait, compute time.Duration
	bar := newProgress(s.cfg.Progress, label, len(ids))
	for {
		t0 := time.Now()
		b, err := st.Next()
		ioWait += time.Since(t0)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, ioWait, compute, nil, nil, err
		}
		n := len(b.IDs)
		t1 := time.Now()
		var lab []int64
		if labels {
			lab = b.Labels
		}
		out, err := s.eng.Infer(b.Features, lab, n, seqLen, s.logits)
		compute += time.Since(t1)
		if err != nil {
			return res, ioWait, compute, nil, nil, err
		}
		res.Expected = append(res.Expected, out.Expected...)
		res.Loss = append(res.Loss, out.Loss...)
		res.Logits = append(res.Logits, out.Logits...)
		allLabels = append(allLabels, b.Labels...)
		allReturns = append(allReturns, b.Returns...)
		st.Release(b)
		bar.add(n)
		if ctx.Err() != nil {
			return res, ioWait, compute, nil, nil, ctx.Err()
		}
	}
	return res, ioWait, compute, allLabels, allReturns, nil
}

// validate returns the mean loss over the validation set.
func (s *session) validate(ctx context.Context) (float64, error) {
	if len(s.valIDs) == 0 {
		return math.NaN(), nil
	}
	res, _, _, _, _, err := s.score(ctx, s.valIDs, true, "validate")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range res.Loss {
		sum += float64(l)
	}
	return sum / float64(len(res.Loss)), nil
}

// trainOn reads the windows of ids once and trains epochs passes over them in
// shuffled batches. weights (may be nil) are per id. Returns mean step loss.
func (s *session) trainOn(ctx context.Context, ids []loader.SeqID, weights []float32, epochs int, rng *rand.Rand) (float64, int64, error) {
	seqLen, F, H := s.eng.Model.Cfg.SeqLen, s.ds.NumFeatures(), len(s.ds.Horizons())
	n := len(ids)
	feats := s.trainBuffer(n * seqLen * F)
	labels := make([]int64, n*H)
	if err := s.ds.ReadWindows(ids, feats, labels, nil); err != nil {
		return 0, 0, err
	}
	bs := s.cfg.BatchSize
	bf := make([]float32, 0, bs*seqLen*F)
	bl := make([]int64, 0, bs*H)
	var bw []float32
	var lossSum float64
	var steps, trained int64
	bar := newProgress(s.cfg.Progress, "train", n*epochs)
	for ep := 0; ep < epochs; ep++ {
		order := rng.Perm(n)
		for start := 0; start < n; start += bs {
			end := min(start+bs, n)
			bf, bl = bf[:0], bl[:0]
			if weights != nil {
				bw = bw[:0]
			}
			for _, i := range order[start:end] {
				bf = append(bf, feats[i*seqLen*F:(i+1)*seqLen*F]...)
				bl = append(bl, labels[i*H:(i+1)*H]...)
				if weights != nil {
					bw = append(bw, weights[i])
				}
			}
			var w []float32
			if weights != nil {
				w = normalizeWeights(bw)
			}
			r, err := s.eng.TrainStep(bf, bl, w, end-start, seqLen)
			if r.Skipped {
				s.met.StepsSkipped.Inc()
			}
			if err != nil {
				return 0, trained, err
			}
			if !r.Skipped {
				lossSum += r.Loss
				steps++
			}
			trained += int64(end - start)
			bar.add(end - start)
			if ctx.Err() != nil {
				return lossSum / math.Max(1, float64(steps)), trained, ctx.Err()
			}
		}
	}
	if steps == 0 {
		return math.NaN(), trained, nil
	}
	return lossSum / float64(steps), trained, nil
}

// normalizeWeights scales weights to mean 1 within a batch.
func normalizeWeights(w []float32) []float32 {
	var sum float64
	for _, v := range w {
		sum += float64(v)
	}
	out := make([]float32, len(w))
	if sum <= 0 {
		for i := range out {
			out[i] = 1
		}
		return out
	}
	for i, v := range w {
		out[i] = float32(float64(v) * float64(len(w)) / sum)
	}
	return out
}

func (s *session) save(name string, withOpt bool) (string, error) {
	path := filepath.Join(s.cfg.SaveDir, name)
	s.meta.StepsSkipped = s.eng.Skipped
	s.meta.InferenceBatch = s.eng.InferenceBatch
	return path, s.writer.Save(path, s.eng, s.meta, withOpt)
}

// saveNow writes a checkpoint and waits until it (and every earlier one) is on disk.
func (s *session) saveNow(name string, withOpt bool) (string, error) {
	path, err := s.save(name, withOpt)
	if err != nil {
		return path, err
	}
	return path, s.writer.Wait()
}

func (s *session) logRecord(r IterationRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		slog.Error("metrics log", "err", err)
		return
	}
	b = append(b, '\n')
	if _, err := s.logF.Write(b); err != nil {
		slog.Error("metrics log write failed", "err", err)
	}
}

func (s *session) deviceMemory() int64 {
	if !s.eng.Model.Device.IsCUDA() {
		return 0
	}
	st, err := torch.DeviceMemory(s.eng.Model.Device)
	if err != nil {
		return 0
	}
	s.met.DeviceMemory.Set(float64(st.Allocated))
	s.met.DeviceMemoryPeak.Set(float64(st.Peak))
	return st.Peak
}

func iterSeed(seed int64, it int, salt int64) int64 {
	return seed*1_000_003 + int64(it)*7919 + salt
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

// RunSelectionAware runs the method: each iteration samples SampleSize
// training sequences, scores them, keeps the TopK by expected return on the
// chosen horizon, trains on them for EpochsPerIteration epochs, validates
// every ValEvery iterations and keeps the best model by validation loss.
func RunSelectionAware(ctx context.Context, cfg RunConfig) (*RunResult, error) {
	s, err := open(ctx, cfg, KindSelectionAware)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cfg = s.cfg
	h := s.horizon
	hname := HorizonName(s.ds.Horizons()[h])
	strat := cfg.Strategy
	s.banner("Selection-Aware Training Strategy",
		fmt.Sprintf("Each iteration: sample %s random sequences -> score expected %s return -> train on top %d for %d epochs%s",
			loader.FormatCount(int64(cfg.SampleSize)), hname, cfg.TopK, cfg.EpochsPerIteration, strat.Describe()))
	train := s.ds.Split("train")
	if train.Len() == 0 {
		return nil, fmt.Errorf("%s: the training split is empty", cfg.Data)
	}
	if err := strat.Prepare(s.ds, train, cfg); err != nil {
		return nil, err
	}
	s.logits = strat.needsLogits()
	res := &RunResult{BestValLoss: s.meta.BestValLoss}
	var prevSelected map[loader.SeqID]int
	for it := s.meta.Iteration + 1; it <= cfg.NumIterations; it++ {
		itStart := time.Now()
		phase := map[string]float64{}
		if err := torch.ManualSeed(uint64(iterSeed(cfg.Seed, it, 1))); err != nil {
			return res, err
		}
		rng := rand.New(rand.NewSource(iterSeed(cfg.Seed, it, 2)))
		s.met.Iteration.Set(float64(it))
		fmt.Fprintf(s.out, "\nIteration %d/%d\n", it, cfg.NumIterations)

		// Sampling and scoring.
		t0 := time.Now()
		ids := strat.Sample(s.ds, train, cfg.SampleSize, rng)
		sampleTime := time.Since(t0)
		fmt.Fprintf(s.out, "  Sampling %s random sequences...\n", loader.FormatCount(int64(len(ids))))
		var inf InferResult
		var ioWait, compute time.Duration
		var labels []int64
		testPause(ctx, PhaseInference, it)
		if strat.needsLabels() {
			inf, ioWait, compute, labels, _, err = s.score(ctx, ids, true, "score")
		} else {
			inf, ioWait, compute, _, _, err = s.score(ctx, ids, false, "score")
		}
		phase[PhaseSampling] = (sampleTime + ioWait).Seconds()
		phase[PhaseInference] = compute.Seconds()
		if err != nil {
			return s.stop(ctx, res, it, PhaseInference, err)
		}
		_ = labels
		H := len(s.ds.Horizons())
		scores := make([]float64, len(ids))
		for i := range ids {
			scores[i] = float64(inf.Expected[i*H+h])
		}

		// Selection.
		t1 := time.Now()
		k := strat.K(cfg, it)
		sel := strat.Select(s.ds, ids, scores, inf, k, rng)
		phase[PhaseSelection] = time.Since(t1).Seconds()
		stats := Summarize(scores, sel.Top)
		fmt.Fprintf(s.out, "  Expected returns (%s): Mean: %s, Median: %s, Top-%d mean: %s, Top-%d min: %s\n",
			hname, fmtF(stats.Mean), fmtF(stats.Median), len(sel.Top), fmtF(stats.TopKMean), len(sel.Top), fmtF(stats.TopKMin))
		s.met.ExpectedMean.Set(stats.Mean)
		s.met.ExpectedMedian.Set(stats.Median)
		s.met.TopKMean.Set(stats.TopKMean)
		s.met.TopKMin.Set(stats.TopKMin)
		s.meta.SequencesScored += int64(len(ids))
		s.met.SequencesScored.Add(float64(len(ids)))
		var overlap *float64
		cur := map[loader.SeqID]int{}
		for _, i := range sel.Top {
			cur[ids[i]] = 1
		}
		if prevSelected != nil {
			same := 0
			for id := range cur {
				if prevSelected[id] > 0 {
					same++
				}
			}
			o := float64(same) / math.Max(1, float64(len(cur)))
			overlap = &o
			s.met.OverlapPrevious.Set(o)
		}
		prevSelected = cur
		for stratum, share := range sel.StratumShare {
			s.met.StratumShare.WithLabelValues(stratum).Set(share)
		}

		// Training.
		t2 := time.Now()
		trainIDs := make([]loader.SeqID, len(sel.Train))
		for i, j := range sel.Train {
			trainIDs[i] = ids[j]
		}
		weights := strat.Weights(sel, ids, inf, it)
		fmt.Fprintf(s.out, "  Training on %s for %d epochs...", sel.Describe(), cfg.EpochsPerIteration)
		testPause(ctx, PhaseTraining, it)
		loss, trained, err := s.trainOn(ctx, trainIDs, weights, cfg.EpochsPerIteration, rng)
		phase[PhaseTraining] = time.Since(t2).Seconds()
		s.meta.SequencesTrained += trained
		s.met.SequencesTrained.Add(float64(trained))
		if err != nil {
			fmt.Fprintln(s.out)
			return s.stop(ctx, res, it, PhaseTraining, err)
		}
		fmt.Fprintf(s.out, " Train loss: %s\n", fmtF(loss))
		s.met.TrainLoss.Set(loss)
		s.meta.Iteration = it

		// Validation and checkpoints.
		var valLoss *float64
		if it%cfg.ValEvery == 0 || it == cfg.NumIterations {
			t3 := time.Now()
			testPause(ctx, PhaseValidation, it)
			vl, err := s.validate(ctx)
			phase[PhaseValidation] = time.Since(t3).Seconds()
			if err != nil {
				return s.stop(ctx, res, it, PhaseValidation, err)
			}
			valLoss = &vl
			s.met.ValidationLoss.Set(vl)
			fmt.Fprintf(s.out, "  Validation loss: %s\n", fmtF(vl))
			if finite(vl) < s.meta.BestValLoss {
				s.meta.BestValLoss, s.meta.BestIteration = vl, it
				t4 := time.Now()
				path, err := s.save("best_model_selection_aware.pt", false)
				phase[PhaseCheckpoint] += time.Since(t4).Seconds()
				if err != nil {
					return res, err
				}
				res.BestPath = path
				fmt.Fprintf(s.out, "  ✓ Saved best model (val loss %s) to %s\n", fmtF(vl), path)
			}
		}
		if it%cfg.CheckpointEvery == 0 || it == cfg.NumIterations {
			testPause(ctx, PhaseCheckpoint, it)
			t4 := time.Now()
			path, err := s.save(fmt.Sprintf("checkpoint_iter_%d.pt", it), true)
			phase[PhaseCheckpoint] += time.Since(t4).Seconds()
			if err != nil {
				return res, err
			}
			slog.Debug("checkpoint started", "path", path)
		}
		for _, p := range AllPhases {
			s.met.PhaseDuration.WithLabelValues(p).Set(phase[p])
			s.met.PhaseSecondsTotal.WithLabelValues(p).Add(phase[p])
		}
		itSec := time.Since(itStart).Seconds()
		s.met.IterationDuration.Observe(itSec)
		rec := IterationRecord{Time: time.Now().UTC().Format(time.RFC3339), Strategy: strat.Name(), Iteration: it,
			TrainLoss: loss, ValLoss: valLoss, ERMean: stats.Mean, ERMedian: stats.Median, TopKERMean: stats.TopKMean,
			TopKERMin: stats.TopKMin, SequencesScoredTotal: s.meta.SequencesScored, SequencesTrainedTotal: s.meta.SequencesTrained,
			StepsSkippedTotal: s.eng.Skipped, PhaseSeconds: phase, IterationSeconds: itSec, SelectedOverlap: overlap,
			DeviceMemoryPeakBytes: s.deviceMemory()}
		s.logRecord(rec)
		rec.Selected = make([]loader.SeqID, len(sel.Top))
		for i, j := range sel.Top {
			rec.Selected[i] = ids[j]
		}
		rec.TrainedIDs = trainIDs
		rec.sample, rec.scores = ids, scores
		res.Iterations = append(res.Iterations, rec)
		res.LastIter = it
		res.BestValLoss = s.meta.BestValLoss
		if cfg.AfterIteration != nil {
			// The hook sees this iteration's checkpoints on disk.
			if err := s.writer.Wait(); err != nil {
				return res, err
			}
			cfg.AfterIteration(it)
		}
	}
	if err := s.writer.Wait(); err != nil {
		return res, err
	}
	fmt.Fprintf(s.out, "\nDone: %d iterations, best validation loss %s (iteration %d)\n", res.LastIter, fmtF(s.meta.BestValLoss), s.meta.BestIteration)
	return res, nil
}

// stop handles an error in iteration it during phase. On a signal it writes
// a checkpoint and says how to resume. The checkpoint's iteration is the last
// one completed. If the signal came during training, the weights already hold
// part of iteration it's updates: that state goes to its own file
// (checkpoint_interrupted_iter_N.pt) so that no periodic checkpoint is
// overwritten with it, and resuming re-runs iteration it from there.
func (s *session) stop(ctx context.Context, res *RunResult, it int, phase string, err error) (*RunResult, error) {
	if ctx.Err() == nil {
		if errors.Is(err, ErrTooManySkips) {
			return s.stopLastGood(res, it, err)
		}
		return res, err
	}
	completed := s.meta.Iteration
	partial := phase == PhaseTraining && completed < it
	name := fmt.Sprintf("checkpoint_iter_%d.pt", completed)
	what := fmt.Sprintf("interrupted during %s of iteration %d; iteration %d is the last completed", phase, it, completed)
	if partial {
		name = fmt.Sprintf("checkpoint_interrupted_iter_%d.pt", it)
		what += fmt.Sprintf(" (the weights include part of iteration %d's training; resuming re-runs iteration %d)", it, it)
	}
	path, serr := s.saveNow(name, true)
	if serr != nil {
		return res, fmt.Errorf("interrupted, and the checkpoint failed: %w", serr)
	}
	res.Interrupted = true
	res.ResumeHint = fmt.Sprintf("%s; state saved to %s; continue with: --resume-from %s", what, path, path)
	fmt.Fprintf(s.out, "\n%s\n", res.ResumeHint)
	return res, fmt.Errorf("%w: %s", ErrInterrupted, res.ResumeHint)
}

// LastGoodCheckpoint is the file a run writes when it stops after
// StepConfig.MaxSkips consecutive non-finite steps.
const LastGoodCheckpoint = "checkpoint_last_good.pt"

// stopLastGood saves the current weights and optimizer state after
// ErrTooManySkips in iteration it: skipped steps never touch them, so they
// are those of the last finite step.
func (s *session) stopLastGood(res *RunResult, it int, err error) (*RunResult, error) {
	path, serr := s.saveNow(LastGoodCheckpoint, true)
	if serr != nil {
		return res, fmt.Errorf("%w; saving the last good weights failed too: %v", err, serr)
	}
	msg := fmt.Sprintf("training stopped in iteration %d (iteration %d is the last completed); the last good weights are in %s; "+
		"lower --lr, check the data, then continue with --resume-from %s", it, s.meta.Iteration, path, path)
	fmt.Fprintf(s.out, "\n%s\n", msg)
	return res, fmt.Errorf("%w: %s", err, msg)
}

// RunStandard trains on all training sequences (or MaxSeqsPerEpoch of them)
// for Epochs epochs, validating after each epoch and keeping best_model.pt:
// stage 1 of the two-stage recipe, and the baseline the method compares to.
func RunStandard(ctx context.Context, cfg RunConfig) (*RunResult, error) {
	s, err := open(ctx, cfg, KindStandard)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cfg = s.cfg
	train := s.ds.Split("train")
	if train.Len() == 0 {
		return nil, fmt.Errorf("%s: the training split is empty", cfg.Data)
	}
	per := train.Len()
	if cfg.MaxSeqsPerEpoch > 0 && int64(cfg.MaxSeqsPerEpoch) < per {
		per = int64(cfg.MaxSeqsPerEpoch)
	}
	s.banner("Standard Training", fmt.Sprintf("Each epoch: %s shuffled training sequences, batch %d, loss on all horizons", loader.FormatCount(per), cfg.BatchSize))
	res := &RunResult{BestValLoss: s.meta.BestValLoss}
	for ep := s.meta.Iteration + 1; ep <= cfg.Epochs; ep++ {
		start := time.Now()
		phase := map[string]float64{}
		if err := torch.ManualSeed(uint64(iterSeed(cfg.Seed, ep, 1))); err != nil {
			return res, err
		}
		rng := rand.New(rand.NewSource(iterSeed(cfg.Seed, ep, 2)))
		s.met.Iteration.Set(float64(ep))
		fmt.Fprintf(s.out, "\nEpoch %d/%d\n", ep, cfg.Epochs)
		ids := train.Sample(int(per), rng)
		// Train in chunks so memory stays bounded for large splits.
		const chunk = 4096
		var lossSum float64
		var nChunks int
		t0 := time.Now()
		for c := 0; c < len(ids); c += chunk {
			part := ids[c:min(c+chunk, len(ids))]
			l, trained, err := s.trainOn(ctx, part, nil, 1, rng)
			s.meta.SequencesTrained += trained
			s.met.SequencesTrained.Add(float64(trained))
			if err != nil {
				return s.stop(ctx, res, ep, PhaseTraining, err)
			}
			if !math.IsNaN(l) {
				lossSum += l * float64(len(part))
				nChunks += len(part)
			}
		}
		phase[PhaseTraining] = time.Since(t0).Seconds()
		loss := lossSum / math.Max(1, float64(nChunks))
		s.met.TrainLoss.Set(loss)
		fmt.Fprintf(s.out, "  Train loss: %s\n", fmtF(loss))
		s.meta.Iteration = ep
		t1 := time.Now()
		vl, err := s.validate(ctx)
		phase[PhaseValidation] = time.Since(t1).Seconds()
		if err != nil {
			return s.stop(ctx, res, ep, PhaseValidation, err)
		}
		s.met.ValidationLoss.Set(vl)
		fmt.Fprintf(s.out, "  Validation loss: %s\n", fmtF(vl))
		if finite(vl) < s.meta.BestValLoss {
			s.meta.BestValLoss, s.meta.BestIteration = vl, ep
			t2 := time.Now()
			path, err := s.save("best_model.pt", false)
			phase[PhaseCheckpoint] += time.Since(t2).Seconds()
			if err != nil {
				return res, err
			}
			res.BestPath = path
			fmt.Fprintf(s.out, "  ✓ Saved best model (val loss %s) to %s\n", fmtF(vl), path)
		}
		t2 := time.Now()
		if _, err := s.save(fmt.Sprintf("checkpoint_epoch_%d.pt", ep), true); err != nil {
			return res, err
		}
		phase[PhaseCheckpoint] += time.Since(t2).Seconds()
		sec := time.Since(start).Seconds()
		s.met.IterationDuration.Observe(sec)
		vlc := vl
		rec := IterationRecord{Time: time.Now().UTC().Format(time.RFC3339), Strategy: "standard", Iteration: ep, TrainLoss: loss,
			ValLoss: &vlc, SequencesTrainedTotal: s.meta.SequencesTrained, StepsSkippedTotal: s.eng.Skipped,
			PhaseSeconds: phase, IterationSeconds: sec, DeviceMemoryPeakBytes: s.deviceMemory()}
		s.logRecord(rec)
		res.Iterations = append(res.Iterations, rec)
		res.LastIter = ep
		res.BestValLoss = s.meta.BestValLoss
		if cfg.AfterIteration != nil {
			// The hook sees this iteration's checkpoints on disk.
			if err := s.writer.Wait(); err != nil {
				return res, err
			}
			cfg.AfterIteration(ep)
		}
	}
	if err := s.writer.Wait(); err != nil {
		return res, err
	}
	fmt.Fprintf(s.out, "\nDone: %d epochs, best validation loss %s (epoch %d)\n", res.LastIter, fmtF(s.meta.BestValLoss), s.meta.BestIteration)
	return res, nil
}

// sortIDs orders ids by ticker then day (for stable output).
func sortIDs(ids []loader.SeqID) {
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].Ticker != ids[j].Ticker {
			return ids[i].Ticker < ids[j].Ticker
		}
		return ids[i].Day < ids[j].Day
	})
}
