package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
)

// Format is the "format" entry of every satrain checkpoint.
const Format = "satrain-checkpoint"

// Version is bumped when the layout changes incompatibly.
const Version = 1

// Training stages a checkpoint records in its lineage (Meta.Stage).
const (
	StageStandard       = "standard"
	StageSelectionAware = "selection-aware"
	StageTwoStage       = "two-stage" // selection-aware fine-tuning of standard-training weights
)

// Meta is what a checkpoint records besides tensors.
type Meta struct {
	Kind             string
	Iteration        int // last completed iteration (selection-aware) or epoch (standard)
	BestValLoss      float64
	BestIteration    int
	Seed             int64
	DataPath         string
	DataIdentity     string
	SequencesScored  int64
	SequencesTrained int64
	StepsSkipped     int64
	InferenceBatch   int
	Run              map[string]string // the run's flags, for the record

	// Lineage. StartedFrom is the checkpoint the run started from (empty
	// for a run from random weights) and StartedFromChecksum that file's
	// content checksum; a resumed run keeps the lineage of the run it
	// continues. Stage is StageStandard, StageSelectionAware or
	// StageTwoStage. Files written before lineage was recorded read "".
	StartedFrom         string
	StartedFromChecksum string
	Stage               string

	// TrainEnd and ValEnd (YYYYMMDD) are the first days of the validation
	// and test periods of the run, and of any run its weights continue: the
	// model has seen the returns of every day before ValEnd (trained before
	// TrainEnd, selected on the days between). Evaluation refuses to call
	// those days a held-out split (see Evaluator.CheckSplit). 0: not recorded
	// (older files).
	TrainEnd, ValEnd int32
}

// Lineage says where a checkpoint's weights come from, in one line: the
// stage, and the file (with its checksum) the run started from.
func (m Meta) Lineage() string {
	switch {
	case m.Stage == "":
		return "not recorded (written before checkpoints kept their lineage)"
	case m.StartedFrom == "":
		return m.Stage + ", trained from random initial weights"
	}
	return fmt.Sprintf("%s, started from %s (%s)", m.Stage, m.StartedFrom, m.StartedFromChecksum)
}

// Save writes the model (and the optimizer state when withOptimizer)
// with meta to path atomically: a temporary file in the same folder, fsync,
// rename, fsync of the folder. A crash leaves either the old file or the new
// one, never a partial file under path. Tensors are saved as CPU float32.
func Save(path string, e *model.Engine, meta Meta, withOptimizer bool) error {
	ser, err := serializeCheckpoint(path, e, meta, withOptimizer)
	if err != nil {
		return err
	}
	defer ser.Free()
	return writeAtomic(path, ser.Bytes())
}

// serializeCheckpoint copies the state to host memory, checksums it and
// renders the .pt bytes. The bytes reference no tensor.
func serializeCheckpoint(path string, e *model.Engine, meta Meta, withOptimizer bool) (*torch.Serialized, error) {
	b, err := buildCheckpoint(e, meta, withOptimizer)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (previous checkpoint left intact)", path, err)
	}
	ser, err := b.finish()
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w (previous checkpoint left intact)", path, err)
	}
	return ser, nil
}

// writeAtomic writes data to path through a dot-prefixed temporary file in
// the same folder (.<name>.tmp-*), fsync, rename, and an fsync of the folder
// (internal/atomicfile). On failure the temporary file is removed and path is
// untouched.
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("checkpoint %s: %w (previous checkpoint left intact)", path, err)
	}
	return nil
}

// Writer writes checkpoints in the background: the state is copied
// to host memory on the torch thread (the only part training waits for), then
// a goroutine checksums and serialises those private copies and writes,
// fsyncs and renames the file. At most
// maxPending writes are in flight; Wait returns the first write error.
// OnWritten (may be nil) is called on the caller's goroutine, from Save or
// Wait, for each file that is complete on disk, in the order of the saves.
type Writer struct {
	pending   []chan writeResult
	err       error
	OnWritten func(path string, bytes int, seconds float64)
}

type writeResult struct {
	path    string
	bytes   int
	seconds float64
	err     error
}

const maxPendingWrites = 2

// Save starts writing a checkpoint; errors of earlier writes are returned here.
func (w *Writer) Save(path string, e *model.Engine, meta Meta, withOptimizer bool) error {
	w.reap(false)
	for len(w.pending) >= maxPendingWrites {
		w.waitOldest()
	}
	if w.err != nil {
		err := w.err
		w.err = nil
		return err
	}
	// On the torch thread: host copies of the state (the only part training waits for).
	b, err := buildCheckpoint(e, meta, withOptimizer)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w (previous checkpoint left intact)", path, err)
	}
	done := make(chan writeResult, 1)
	w.pending = append(w.pending, done)
	go func() {
		t0 := time.Now()
		ser, err := b.finish()
		if err != nil {
			done <- writeResult{err: fmt.Errorf("checkpoint %s: %w (previous checkpoint left intact)", path, err)}
			return
		}
		n := len(ser.Bytes())
		err = writeAtomic(path, ser.Bytes())
		ser.Free()
		sec := time.Since(t0).Seconds()
		if err == nil {
			slog.Debug("checkpoint written", "path", path, "bytes", n, "seconds", math.Round(sec*1000)/1000)
		}
		done <- writeResult{path: path, bytes: n, seconds: sec, err: err}
	}()
	return nil
}

func (w *Writer) finished(r writeResult) {
	if r.err != nil {
		if w.err == nil {
			w.err = r.err
		}
		return
	}
	if w.OnWritten != nil {
		w.OnWritten(r.path, r.bytes, r.seconds)
	}
}

func (w *Writer) waitOldest() {
	r := <-w.pending[0]
	w.pending = w.pending[1:]
	w.finished(r)
}

func (w *Writer) reap(block bool) {
	for len(w.pending) > 0 {
		if !block {
			select {
			case r := <-w.pending[0]:
				w.pending = w.pending[1:]
				w.finished(r)
				continue
			default:
				return
			}
		}
		w.waitOldest()
	}
}

// Wait blocks until every write has finished and returns the first error.
func (w *Writer) Wait() error {
	w.reap(true)
	err := w.err
	w.err = nil
	return err
}

type built struct {
	dict *torch.Dict
	cpu  []*torch.Tensor
	hash *contentHash
}

func (b *built) free() {
	for _, t := range b.cpu {
		t.Free()
	}
}

// hostCopies copies every tensor a checkpoint holds to host memory in one
// batched call (torch.CopyToHost: pinned buffers and one synchronisation on
// CUDA; private contiguous copies on the CPU, since the checkpoint is
// finished in the background while training keeps changing the originals):
// the parameters in order, the bin centers, then (withOptimizer) the AdamW
// moments m and v of every parameter that has them. The copies belong to b.
func (b *built) hostCopies(e *model.Engine, withOptimizer bool) (params []*torch.Tensor, centers *torch.Tensor, moments map[int][2]*torch.Tensor, steps []int64, err error) {
	ps := e.Model.Parameters()
	list := append(append([]*torch.Tensor(nil), ps...), e.Centers)
	var states []int // parameter index of each moment pair in list
	if withOptimizer {
		steps = make([]int64, len(ps))
		for i := range ps {
			step, m, v, err := e.Opt.State(i)
			if err != nil {
				freeAll(list[len(ps)+1:])
				return nil, nil, nil, nil, err
			}
			steps[i] = step
			if m != nil {
				list = append(list, m, v)
				states = append(states, i)
			}
		}
		defer freeAll(list[len(ps)+1:]) // the state handles; the copies are b's
	}
	cpu, _, err := torch.CopyToHost(list, torch.Float32)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	b.cpu = append(b.cpu, cpu...)
	moments = map[int][2]*torch.Tensor{}
	for j, i := range states {
		moments[i] = [2]*torch.Tensor{cpu[len(ps)+1+2*j], cpu[len(ps)+2+2*j]}
	}
	return cpu[:len(ps)], cpu[len(ps)], moments, steps, nil
}

func freeAll(ts []*torch.Tensor) {
	for _, t := range ts {
		t.Free()
	}
}

func buildCheckpoint(e *model.Engine, meta Meta, withOptimizer bool) (*built, error) {
	m := e.Model
	root, err := torch.NewDict()
	if err != nil {
		return nil, err
	}
	b := &built{dict: root}
	cleanup := func(err error) (*built, error) {
		b.free()
		root.Free()
		return nil, err
	}
	h := &contentHash{}
	b.hash = h
	params, centers, moments, steps, err := b.hostCopies(e, withOptimizer)
	if err != nil {
		return cleanup(err)
	}
	model, _ := torch.NewDict()
	defer model.Free()
	for i, name := range m.ParamNames() {
		if err := hashTensor(h, "model."+name, params[i]); err != nil {
			return cleanup(err)
		}
		if err := model.SetTensor(name, params[i]); err != nil {
			return cleanup(err)
		}
	}
	cfg := configDict(m.Cfg)
	defer cfg.Free()
	if err := hashTensor(h, "bin_centers", centers); err != nil {
		return cleanup(err)
	}
	run, _ := torch.NewDict()
	defer run.Free()
	keys := make([]string, 0, len(meta.Run))
	for k := range meta.Run {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		_ = run.SetString(k, meta.Run[k])
	}
	errs := []error{
		root.SetString("format", Format), root.SetInt("version", Version),
		root.SetString("kind", meta.Kind), root.SetDict("model", model), root.SetDict("config", cfg),
		root.SetTensor("bin_centers", centers), root.SetInt("iteration", int64(meta.Iteration)),
		root.SetFloat("best_val_loss", meta.BestValLoss), root.SetInt("best_iteration", int64(meta.BestIteration)),
		root.SetInt("seed", meta.Seed), root.SetString("data_path", meta.DataPath),
		root.SetString("data_identity", meta.DataIdentity), root.SetInt("sequences_scored", meta.SequencesScored),
		root.SetInt("sequences_trained", meta.SequencesTrained), root.SetInt("steps_skipped", meta.StepsSkipped),
		root.SetInt("inference_batch_size", int64(meta.InferenceBatch)), root.SetDict("run", run),
		root.SetString("torch_version", torch.Version()),
	}
	if meta.Stage != "" {
		errs = append(errs, root.SetString("stage", meta.Stage), root.SetString("started_from", meta.StartedFrom),
			root.SetString("started_from_checksum", meta.StartedFromChecksum))
	}
	if meta.ValEnd != 0 {
		errs = append(errs, root.SetInt("split_train_end", int64(meta.TrainEnd)), root.SetInt("split_val_end", int64(meta.ValEnd)))
	}
	if err := errors.Join(errs...); err != nil {
		return cleanup(err)
	}
	if withOptimizer {
		opt, err := optimizerDict(e, h, steps, moments)
		if err != nil {
			return cleanup(err)
		}
		err = root.SetDict("optimizer", opt)
		opt.Free()
		if err != nil {
			return cleanup(err)
		}
	}
	hashMeta(h, meta, withOptimizer)
	b.hash = h
	return b, nil
}

// finish computes the content checksum, stores it and renders the .pt bytes,
// then releases the host copies. It touches only the private copies made by
// buildCheckpoint (no thread-local libtorch state is involved), so it may run
// on a background goroutine while training goes on.
func (b *built) finish() (*torch.Serialized, error) {
	defer b.dict.Free()
	defer b.free()
	if err := b.dict.SetString("checksum", b.hash.sum()); err != nil {
		return nil, err
	}
	return b.dict.Serialize()
}

func optimizerDict(e *model.Engine, h *contentHash, stepOf []int64, moments map[int][2]*torch.Tensor) (*torch.Dict, error) {
	opt, _ := torch.NewDict()
	steps, _ := torch.NewDict()
	avg, _ := torch.NewDict()
	avgSq, _ := torch.NewDict()
	defer steps.Free()
	defer avg.Free()
	defer avgSq.Free()
	for i, name := range e.Model.ParamNames() {
		step := stepOf[i]
		_ = steps.SetInt(name, step)
		fmt.Fprintf(h, "step.%s=%d;", name, step)
		if mv, ok := moments[i]; ok {
			mc, vc := mv[0], mv[1]
			if err := errors.Join(hashTensor(h, "exp_avg."+name, mc), hashTensor(h, "exp_avg_sq."+name, vc),
				avg.SetTensor(name, mc), avgSq.SetTensor(name, vc)); err != nil {
				opt.Free()
				return nil, err
			}
		}
	}
	cfg := e.Opt.Config()
	err := errors.Join(opt.SetString("type", "AdamW"), opt.SetFloat("lr", cfg.LR), opt.SetFloat("beta1", cfg.Beta1),
		opt.SetFloat("beta2", cfg.Beta2), opt.SetFloat("eps", cfg.Eps), opt.SetFloat("weight_decay", cfg.WeightDecay),
		opt.SetDict("step", steps), opt.SetDict("exp_avg", avg), opt.SetDict("exp_avg_sq", avgSq))
	if err != nil {
		opt.Free()
		return nil, err
	}
	return opt, nil
}

func configDict(c model.Config) *torch.Dict {
	d, _ := torch.NewDict()
	_ = d.SetInt("num_features", int64(c.NumFeatures))
	_ = d.SetInt("hidden_dim", int64(c.HiddenDim))
	_ = d.SetInt("num_layers", int64(c.NumLayers))
	_ = d.SetInt("num_heads", int64(c.NumHeads))
	_ = d.SetInt("num_horizons", int64(c.NumHorizons))
	_ = d.SetInt("num_bins", int64(c.NumBins))
	_ = d.SetFloat("dropout", c.Dropout)
	_ = d.SetInt("seq_len", int64(c.SeqLen))
	return d
}

// contentHash is a checkpoint's content checksum: SHA-256 over, in order,
// each tensor's name, dtype, shape and the SHA-256 of its bytes, interleaved
// with the text of the scalar entries. The per-tensor digests are computed in
// parallel (3.2 GB for the default model with optimizer state), so hashing
// does not dominate saving. Tensors must stay alive until sum returns.
type contentHash struct{ parts []hashPart }

type hashPart struct {
	text   string
	data   []byte
	tensor bool
	digest [sha256.Size]byte
}

// Write adds text (so fmt.Fprintf works on a contentHash).
func (c *contentHash) Write(p []byte) (int, error) {
	c.parts = append(c.parts, hashPart{text: string(p)})
	return len(p), nil
}

func (c *contentHash) sum() string {
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c.parts[i].digest = sha256.Sum256(c.parts[i].data)
			}
		}()
	}
	for i, p := range c.parts {
		if p.tensor {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	h := sha256.New()
	for _, p := range c.parts {
		h.Write([]byte(p.text))
		if p.tensor {
			h.Write(p.digest[:])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func hashTensor(h *contentHash, name string, t *torch.Tensor) error {
	raw, err := t.RawBytes()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	h.parts = append(h.parts, hashPart{text: fmt.Sprintf("%s|%s|%v|", name, t.DType(), t.Shape()), data: raw, tensor: true})
	return nil
}

func hashMeta(h *contentHash, m Meta, withOpt bool) {
	fmt.Fprintf(h, "kind=%s;it=%d;best=%s;bestit=%d;seed=%d;data=%s;scored=%d;trained=%d;skipped=%d;ib=%d;opt=%v",
		m.Kind, m.Iteration, strconv.FormatFloat(m.BestValLoss, 'g', -1, 64), m.BestIteration, m.Seed,
		m.DataIdentity, m.SequencesScored, m.SequencesTrained, m.StepsSkipped, m.InferenceBatch, withOpt)
	if m.Stage != "" {
		// Files from before lineage was recorded hash as they always did.
		fmt.Fprintf(h, ";stage=%s;from=%s;fromsum=%s", m.Stage, m.StartedFrom, m.StartedFromChecksum)
	}
	if m.ValEnd != 0 {
		fmt.Fprintf(h, ";split=%d,%d", m.TrainEnd, m.ValEnd)
	}
}

// Loaded is a checkpoint read from disk and verified.
type Loaded struct {
	Path     string
	Meta     Meta
	Config   model.Config
	Centers  [][]float32
	HasOptim bool
	Checksum string // the file's content checksum ("sha256:...")
	dict     *torch.Dict
}

// Free releases the file's tensors.
func (l *Loaded) Free() { l.dict.Free() }

// Load reads and verifies a satrain checkpoint: format, version and
// content checksum. A damaged or truncated file is refused with its name.
func Load(path string) (*Loaded, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	d, err := torch.LoadDict(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s is damaged or not a PyTorch file: %v", path, err)
	}
	l := &Loaded{Path: path, dict: d}
	fail := func(format string, a ...any) (*Loaded, error) {
		d.Free()
		return nil, fmt.Errorf("checkpoint %s: %s", path, fmt.Sprintf(format, a...))
	}
	if f, err := d.Str("format"); err != nil || f != Format {
		return fail("not a satrain checkpoint (no format=%q entry)", Format)
	}
	if v, err := d.Int("version"); err != nil || v != Version {
		return fail("version %d, this satrain reads version %d", v, Version)
	}
	cfg, err := d.Dict("config")
	if err != nil {
		return fail("%v", err)
	}
	geti := func(k string) int {
		v, e := cfg.Int(k)
		if e != nil {
			err = errors.Join(err, e)
		}
		return int(v)
	}
	l.Config = model.Config{NumFeatures: geti("num_features"), HiddenDim: geti("hidden_dim"), NumLayers: geti("num_layers"),
		NumHeads: geti("num_heads"), NumHorizons: geti("num_horizons"), NumBins: geti("num_bins"), SeqLen: geti("seq_len")}
	l.Config.Dropout, _ = cfg.Float("dropout")
	cfg.Free()
	if err != nil {
		return fail("config: %v", err)
	}
	if err := l.Config.Validate(); err != nil {
		return fail("%v", err)
	}
	m := &l.Meta
	var errs []error
	str := func(k string) string { v, e := d.Str(k); errs = append(errs, e); return v }
	num := func(k string) int64 { v, e := d.Int(k); errs = append(errs, e); return v }
	m.Kind = str("kind")
	m.Iteration = int(num("iteration"))
	m.BestValLoss, _ = d.Float("best_val_loss")
	m.BestIteration = int(num("best_iteration"))
	m.Seed = num("seed")
	m.DataPath = str("data_path")
	m.DataIdentity = str("data_identity")
	m.SequencesScored = num("sequences_scored")
	m.SequencesTrained = num("sequences_trained")
	m.StepsSkipped = num("steps_skipped")
	m.InferenceBatch = int(num("inference_batch_size"))
	if err := errors.Join(errs...); err != nil {
		return fail("%v", err)
	}
	if d.Has("stage") {
		m.Stage = str("stage")
		m.StartedFrom = str("started_from")
		m.StartedFromChecksum = str("started_from_checksum")
		if err := errors.Join(errs...); err != nil {
			return fail("lineage: %v", err)
		}
	}
	if d.Has("split_val_end") {
		m.TrainEnd, m.ValEnd = int32(num("split_train_end")), int32(num("split_val_end"))
		if err := errors.Join(errs...); err != nil {
			return fail("split: %v", err)
		}
	}
	if run, err := d.Dict("run"); err == nil {
		m.Run = map[string]string{}
		es, _ := run.Entries()
		for _, e := range es {
			m.Run[e.Key], _ = run.Str(e.Key)
		}
		run.Free()
	}
	l.HasOptim = d.Has("optimizer")
	want, err := d.Str("checksum")
	if err != nil {
		return fail("no checksum entry")
	}
	got, cent, err := l.recomputeChecksum()
	if err != nil {
		return fail("%v", err)
	}
	if got != want {
		return fail("content checksum mismatch (file damaged): stored %s, computed %s", want, got)
	}
	l.Centers = cent
	l.Checksum = want
	return l, nil
}

func (l *Loaded) recomputeChecksum() (string, [][]float32, error) {
	h := &contentHash{}
	// The tensors' bytes are hashed in sum(), after the loop: keep them alive.
	var held []*torch.Tensor
	defer func() {
		for _, t := range held {
			t.Free()
		}
	}()
	model, err := l.dict.Dict("model")
	if err != nil {
		return "", nil, err
	}
	defer model.Free()
	for _, spec := range l.Config.ParamSpecs() {
		t, err := model.Tensor(spec.Name)
		if err != nil {
			return "", nil, fmt.Errorf("model: %v", err)
		}
		if !slices.Equal(t.Shape(), spec.Shape) || t.DType() != torch.Float32 {
			t.Free()
			return "", nil, fmt.Errorf("model.%s: %s, want float32 %v", spec.Name, t, spec.Shape)
		}
		held = append(held, t)
		if err := hashTensor(h, "model."+spec.Name, t); err != nil {
			return "", nil, err
		}
	}
	ct, err := l.dict.Tensor("bin_centers")
	if err != nil {
		return "", nil, err
	}
	defer ct.Free()
	if err := hashTensor(h, "bin_centers", ct); err != nil {
		return "", nil, err
	}
	flat, err := ct.Float32s()
	if err != nil || len(flat) != l.Config.NumHorizons*l.Config.NumBins {
		return "", nil, fmt.Errorf("bin_centers: want float32 [%d, %d]", l.Config.NumHorizons, l.Config.NumBins)
	}
	centers := make([][]float32, l.Config.NumHorizons)
	for i := range centers {
		centers[i] = flat[i*l.Config.NumBins : (i+1)*l.Config.NumBins]
	}
	if l.HasOptim {
		opt, err := l.dict.Dict("optimizer")
		if err != nil {
			return "", nil, err
		}
		defer opt.Free()
		steps, e1 := opt.Dict("step")
		avg, e2 := opt.Dict("exp_avg")
		avgSq, e3 := opt.Dict("exp_avg_sq")
		if err := errors.Join(e1, e2, e3); err != nil {
			return "", nil, fmt.Errorf("optimizer: %v", err)
		}
		defer steps.Free()
		defer avg.Free()
		defer avgSq.Free()
		for _, spec := range l.Config.ParamSpecs() {
			st, err := steps.Int(spec.Name)
			if err != nil {
				return "", nil, fmt.Errorf("optimizer step: %v", err)
			}
			fmt.Fprintf(h, "step.%s=%d;", spec.Name, st)
			if !avg.Has(spec.Name) {
				continue
			}
			for _, pair := range []struct {
				d      *torch.Dict
				prefix string
			}{{avg, "exp_avg."}, {avgSq, "exp_avg_sq."}} {
				t, err := pair.d.Tensor(spec.Name)
				if err != nil {
					return "", nil, err
				}
				held = append(held, t)
				if err := hashTensor(h, pair.prefix+spec.Name, t); err != nil {
					return "", nil, err
				}
			}
		}
	}
	hashMeta(h, l.Meta, l.HasOptim)
	return h.sum(), centers, nil
}

// NewModel builds the checkpoint's model on dev with its weights.
func (l *Loaded) NewModel(dev torch.Device) (*model.Model, error) {
	weights, err := l.dict.Dict("model")
	if err != nil {
		return nil, err
	}
	defer weights.Free()
	return model.FromWeights(l.Config, dev, func(name string) (*torch.Tensor, error) {
		t, err := weights.Tensor(name)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %v", l.Path, err)
		}
		defer t.Free()
		s := torch.NewScope()
		defer s.Close()
		c := s.Keep(s.Contiguous(s.Clone(t)))
		if err := s.Err(); err != nil {
			return nil, err
		}
		return c, nil
	})
}

// RestoreOptimizer loads the AdamW state into e (same parameter order).
func (l *Loaded) RestoreOptimizer(e *model.Engine) error {
	if !l.HasOptim {
		return fmt.Errorf("checkpoint %s has no optimizer state", l.Path)
	}
	opt, err := l.dict.Dict("optimizer")
	if err != nil {
		return err
	}
	defer opt.Free()
	steps, _ := opt.Dict("step")
	avg, _ := opt.Dict("exp_avg")
	avgSq, _ := opt.Dict("exp_avg_sq")
	defer steps.Free()
	defer avg.Free()
	defer avgSq.Free()
	for i, name := range e.Model.ParamNames() {
		st, err := steps.Int(name)
		if err != nil {
			return err
		}
		if !avg.Has(name) {
			continue
		}
		m, err1 := avg.Tensor(name)
		v, err2 := avgSq.Tensor(name)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		err = e.Opt.SetState(i, st, m, v)
		m.Free()
		v.Free()
		if err != nil {
			return fmt.Errorf("optimizer state %s: %w", name, err)
		}
	}
	return nil
}
