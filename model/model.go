package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/satrain/satrain/torch"
)

// LayerNormEps is the epsilon of every LayerNorm (PyTorch's default).
const LayerNormEps = 1e-5

type layer struct {
	norm1W, norm1B, qkvW, qkvB, outW, outB *torch.Tensor
	norm2W, norm2B, fc1W, fc1B, fc2W, fc2B *torch.Tensor
}

// Model is the return-bin transformer: a linear input projection plus a fixed
// sinusoidal position table, pre-LayerNorm encoder layers (fused-QKV
// self-attention, GELU feed-forward), a final LayerNorm, and a head that maps
// the last step's representation to [horizons, bins] logits. Parameter names
// equal the state_dict keys of python/satrain_model.py.
type Model struct {
	Cfg    Config
	Device torch.Device
	// Attention selects the attention kernel (auto: SDPA where available).
	Attention torch.AttentionImpl
	// LastQueryOnly computes the final layer only for the last position, the
	// only one the head reads. The logits are the same; it saves the final
	// layer's query, output and feed-forward work for the other positions.
	LastQueryOnly bool
	// FusedKernels runs the feed-forward's first linear and its GELU as one
	// fused kernel where it can (inference; see torch.Scope.LinearGelu). Off:
	// the plain ops, the reference.
	FusedKernels bool

	// fp8 holds the encoder layers' linear weights quantised to FP8 while an
	// FP8 scoring pass runs (UseFP8); nil otherwise.
	fp8 map[*torch.Tensor]*torch.FP8Weight

	names  []string
	params []*torch.Tensor
	byName map[string]*torch.Tensor
	inW    *torch.Tensor
	inB    *torch.Tensor
	layers []layer
	normW  *torch.Tensor
	normB  *torch.Tensor
	headW  *torch.Tensor
	headB  *torch.Tensor
	pos    map[int]*torch.Tensor
}

// ParamSpec is one parameter's name and shape.
type ParamSpec struct {
	Name  string
	Shape []int64
}

// ParamSpecs lists the parameters in state_dict order.
func (c Config) ParamSpecs() []ParamSpec {
	d, f := int64(c.HiddenDim), int64(c.NumFeatures)
	out := int64(c.NumHorizons * c.NumBins)
	specs := []ParamSpec{{"input_proj.weight", []int64{d, f}}, {"input_proj.bias", []int64{d}}}
	for i := 0; i < c.NumLayers; i++ {
		p := fmt.Sprintf("layers.%d.", i)
		specs = append(specs,
			ParamSpec{p + "norm1.weight", []int64{d}}, ParamSpec{p + "norm1.bias", []int64{d}},
			ParamSpec{p + "attn.qkv.weight", []int64{3 * d, d}}, ParamSpec{p + "attn.qkv.bias", []int64{3 * d}},
			ParamSpec{p + "attn.out.weight", []int64{d, d}}, ParamSpec{p + "attn.out.bias", []int64{d}},
			ParamSpec{p + "norm2.weight", []int64{d}}, ParamSpec{p + "norm2.bias", []int64{d}},
			ParamSpec{p + "ffn.fc1.weight", []int64{4 * d, d}}, ParamSpec{p + "ffn.fc1.bias", []int64{4 * d}},
			ParamSpec{p + "ffn.fc2.weight", []int64{d, 4 * d}}, ParamSpec{p + "ffn.fc2.bias", []int64{d}},
		)
	}
	specs = append(specs,
		ParamSpec{"final_norm.weight", []int64{d}}, ParamSpec{"final_norm.bias", []int64{d}},
		ParamSpec{"head.weight", []int64{out, d}}, ParamSpec{"head.bias", []int64{out}})
	return specs
}

// NewModel builds a model with PyTorch's default initialisation, drawn on the
// CPU from seed (so the weights do not depend on the device), then moved.
func New(cfg Config, dev torch.Device, seed uint64) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := torch.NewGenerator(seed)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	m := newEmpty(cfg, dev)
	var fanIn int64 // of the last weight matrix: a bias follows its weight
	for _, spec := range cfg.ParamSpecs() {
		t, err := torch.Empty(spec.Shape, torch.Float32, torch.CPU, false)
		if err != nil {
			m.Free()
			return nil, err
		}
		if len(spec.Shape) == 2 {
			fanIn = spec.Shape[1]
		}
		if err := initParam(spec, t, g, fanIn); err != nil {
			t.Free()
			m.Free()
			return nil, fmt.Errorf("init %s: %w", spec.Name, err)
		}
		if err := m.adopt(spec.Name, t); err != nil {
			m.Free()
			return nil, err
		}
	}
	return m, m.bind()
}

// initParam: nn.Linear's default is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
// weight and bias (kaiming_uniform with a=sqrt(5)); LayerNorm is ones/zeros.
func initParam(spec ParamSpec, t *torch.Tensor, g *torch.Generator, fanIn int64) error {
	n := spec.Name
	switch {
	case hasSuffix(n, "norm1.weight", "norm2.weight", "final_norm.weight"):
		return t.Fill(1)
	case hasSuffix(n, "norm1.bias", "norm2.bias", "final_norm.bias"):
		return t.Fill(0)
	}
	bound := 1 / math.Sqrt(float64(fanIn))
	return t.Uniform(-bound, bound, g)
}

func hasSuffix(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if len(s) >= len(x) && s[len(s)-len(x):] == x {
			return true
		}
	}
	return false
}

// FromWeights builds a model of cfg on dev from stored weights: for each
// parameter of cfg.ParamSpecs(), in that order, weight(name) returns a CPU
// float32 contiguous tensor of the spec's shape, which FromWeights takes
// over (it frees or keeps it). A checkpoint reader supplies weight; the
// first error it returns stops the build and is returned as is.
func FromWeights(cfg Config, dev torch.Device, weight func(name string) (*torch.Tensor, error)) (*Model, error) {
	m := newEmpty(cfg, dev)
	for _, spec := range cfg.ParamSpecs() {
		t, err := weight(spec.Name)
		if err != nil {
			m.Free()
			return nil, err
		}
		if err := m.adopt(spec.Name, t); err != nil {
			m.Free()
			return nil, err
		}
	}
	if err := m.bind(); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

func newEmpty(cfg Config, dev torch.Device) *Model {
	return &Model{Cfg: cfg, Device: dev, LastQueryOnly: true, byName: map[string]*torch.Tensor{}, pos: map[int]*torch.Tensor{}}
}

// adopt moves a CPU float32 tensor to the model's device as parameter name.
func (m *Model) adopt(name string, cpu *torch.Tensor) error {
	t := cpu
	if m.Device.IsCUDA() {
		s := torch.NewScope()
		moved := s.Keep(s.To(cpu, m.Device, torch.Float32, false))
		err := s.Err()
		s.Close()
		cpu.Free()
		if err != nil {
			return fmt.Errorf("move %s to %s: %w", name, m.Device, err)
		}
		t = moved
	}
	if err := t.SetRequiresGrad(true); err != nil {
		t.Free()
		return err
	}
	m.names = append(m.names, name)
	m.params = append(m.params, t)
	m.byName[name] = t
	return nil
}

func (m *Model) bind() error {
	get := func(n string) *torch.Tensor { return m.byName[n] }
	m.inW, m.inB = get("input_proj.weight"), get("input_proj.bias")
	m.layers = make([]layer, m.Cfg.NumLayers)
	for i := range m.layers {
		p := fmt.Sprintf("layers.%d.", i)
		m.layers[i] = layer{
			norm1W: get(p + "norm1.weight"), norm1B: get(p + "norm1.bias"),
			qkvW: get(p + "attn.qkv.weight"), qkvB: get(p + "attn.qkv.bias"),
			outW: get(p + "attn.out.weight"), outB: get(p + "attn.out.bias"),
			norm2W: get(p + "norm2.weight"), norm2B: get(p + "norm2.bias"),
			fc1W: get(p + "ffn.fc1.weight"), fc1B: get(p + "ffn.fc1.bias"),
			fc2W: get(p + "ffn.fc2.weight"), fc2B: get(p + "ffn.fc2.bias"),
		}
	}
	m.normW, m.normB = get("final_norm.weight"), get("final_norm.bias")
	m.headW, m.headB = get("head.weight"), get("head.bias")
	for _, spec := range m.Cfg.ParamSpecs() {
		t := m.byName[spec.Name]
		if t == nil {
			return fmt.Errorf("model: parameter %s missing", spec.Name)
		}
		if !slices.Equal(t.Shape(), spec.Shape) {
			return fmt.Errorf("model: parameter %s has shape %v, want %v", spec.Name, t.Shape(), spec.Shape)
		}
	}
	return nil
}

// Parameters returns the parameters in state_dict order.
func (m *Model) Parameters() []*torch.Tensor { return m.params }

// ParamNames returns the parameter names in state_dict order.
func (m *Model) ParamNames() []string { return m.names }

// Param returns the parameter called name, or nil.
func (m *Model) Param(name string) *torch.Tensor { return m.byName[name] }

// NumParams counts the elements of every parameter.
func (m *Model) NumParams() int64 {
	var n int64
	for _, p := range m.params {
		n += p.Numel()
	}
	return n
}

// Free releases the parameters and cached tables.
func (m *Model) Free() {
	for _, p := range m.params {
		p.Free()
	}
	for _, p := range m.pos {
		p.Free()
	}
	m.params, m.byName, m.pos = nil, map[string]*torch.Tensor{}, map[int]*torch.Tensor{}
}

// PositionTable returns pe[pos, 2i] = sin(pos·10000^(-2i/d)),
// pe[pos, 2i+1] = cos(...), computed in float64 and rounded to float32.
func PositionTable(seqLen, d int) []float32 {
	pe := make([]float32, seqLen*d)
	for pos := 0; pos < seqLen; pos++ {
		for i := 0; i < d; i += 2 {
			freq := math.Pow(10000, -float64(i)/float64(d))
			pe[pos*d+i] = float32(math.Sin(float64(pos) * freq))
			if i+1 < d {
				pe[pos*d+i+1] = float32(math.Cos(float64(pos) * freq))
			}
		}
	}
	return pe
}

func (m *Model) positions(seqLen int) (*torch.Tensor, error) {
	if t := m.pos[seqLen]; t != nil {
		return t, nil
	}
	cpu, err := torch.FromFloat32(PositionTable(seqLen, m.Cfg.HiddenDim), int64(seqLen), int64(m.Cfg.HiddenDim))
	if err != nil {
		return nil, err
	}
	t := cpu
	if m.Device.IsCUDA() {
		s := torch.NewScope()
		t = s.Keep(s.To(cpu, m.Device, torch.Float32, false))
		err = s.Err()
		s.Close()
		cpu.Free()
		if err != nil {
			return nil, err
		}
	}
	m.pos[seqLen] = t
	return t, nil
}

// Forward maps x [b, s, F] (on the model's device) to logits [b, H, B].
// train turns dropout on. Errors are recorded in the scope.
func (m *Model) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	if s.Err() != nil {
		return nil
	}
	shape := x.Shape()
	if len(shape) != 3 || shape[2] != int64(m.Cfg.NumFeatures) {
		s.Fail(fmt.Errorf("model: input shape %v, want [batch, seq_len, %d]", shape, m.Cfg.NumFeatures))
		return nil
	}
	b, S := shape[0], shape[1]
	d := int64(m.Cfg.HiddenDim)
	nh := int64(m.Cfg.NumHeads)
	hd := d / nh
	p := m.Cfg.Dropout
	pe, err := m.positions(int(S))
	if err != nil {
		s.Fail(err)
		return nil
	}
	// Each block runs in its own scope, closed as soon as its output exists, so
	// a layer's intermediates are released before the next layer runs (autograd
	// keeps what backward needs by itself). Without this, inference of the
	// default model at batch 64 held every layer's activations: 90 GB, not 5.
	block := func(f func(bs *torch.Scope) *torch.Tensor) *torch.Tensor {
		bs := torch.NewScope()
		defer bs.Close()
		out := f(bs)
		if err := bs.Err(); err != nil {
			s.Fail(err)
			return nil
		}
		return bs.Keep(out)
	}
	h := block(func(bs *torch.Scope) *torch.Tensor {
		return bs.Dropout(bs.Add(bs.Linear(x, m.inW, m.inB), pe), p, train)
	})
	for i, l := range m.layers {
		if h == nil {
			return nil
		}
		last := m.LastQueryOnly && i == len(m.layers)-1
		prev := h
		h = block(func(bs *torch.Scope) *torch.Tensor {
			h := prev
			a := bs.LayerNorm(h, d, l.norm1W, l.norm1B, LayerNormEps)
			qkv := bs.Permute(bs.View(m.linear(bs, a, l.qkvW, l.qkvB), b, S, 3, nh, hd), 2, 0, 3, 1, 4)
			parts := bs.Unbind(qkv, 0, 3)
			q, k, v := parts[0], parts[1], parts[2]
			sq := S
			if last {
				q = bs.Narrow(q, 2, S-1, 1)
				h = bs.Narrow(h, 1, S-1, 1)
				sq = 1
			}
			o := bs.Attention(q, k, v, 0, false, m.Attention)
			o = bs.Reshape(bs.Transpose(o, 1, 2), b, sq, d)
			h = bs.Add(h, bs.Dropout(m.linear(bs, o, l.outW, l.outB), p, train))
			f := bs.LayerNorm(h, d, l.norm2W, l.norm2B, LayerNormEps)
			if m.fp8 != nil {
				f = bs.Gelu(m.linear(bs, f, l.fc1W, l.fc1B))
			} else {
				f = bs.LinearGelu(f, l.fc1W, l.fc1B, m.FusedKernels)
			}
			f = m.linear(bs, f, l.fc2W, l.fc2B)
			return bs.Add(h, bs.Dropout(f, p, train))
		})
		prev.Free()
	}
	if h == nil {
		return nil
	}
	s.Own(h)
	z := s.Select(h, 1, -1)
	z = s.LayerNorm(z, d, m.normW, m.normB, LayerNormEps)
	logits := s.Linear(z, m.headW, m.headB)
	return s.View(logits, b, int64(m.Cfg.NumHorizons), int64(m.Cfg.NumBins))
}

// FP8Active reports whether the encoder layers currently compute with FP8
// weights (between UseFP8 and its release).
func (m *Model) FP8Active() bool { return m.fp8 != nil }

// UseFP8 quantises the encoder layers' linear weights (qkv, out, fc1, fc2)
// to float8_e4m3fn with one scale per weight, so that Forward runs those
// matmuls in FP8 (torch.Scope.LinearFP8; inference only: no autograd) until
// the returned release is called. The input projection (its few raw
// features) and the head stay in the pass's own precision, as FP8 recipes
// keep the first and last layers; so do LayerNorm, attention and softmax.
// Call it once per scoring pass: the weights change with every training step.
func (m *Model) UseFP8() (release func(), err error) {
	if m.fp8 != nil {
		return nil, fmt.Errorf("model: FP8 weights already in use")
	}
	q := map[*torch.Tensor]*torch.FP8Weight{}
	free := func() {
		for _, w := range q {
			w.Free()
		}
	}
	for _, l := range m.layers {
		for _, w := range []*torch.Tensor{l.qkvW, l.outW, l.fc1W, l.fc2W} {
			w8, err := torch.QuantizeFP8(w)
			if err != nil {
				free()
				return nil, fmt.Errorf("model: FP8 weights: %w", err)
			}
			q[w] = w8
		}
	}
	m.fp8 = q
	return func() {
		m.fp8 = nil
		free()
	}, nil
}

// linear is x wᵀ + b: in FP8 where UseFP8 quantised w, else Scope.Linear.
func (m *Model) linear(s *torch.Scope, x, w, b *torch.Tensor) *torch.Tensor {
	if w8 := m.fp8[w]; w8 != nil {
		return s.LinearFP8(x, w8, b)
	}
	return s.Linear(x, w, b)
}

// ExpectedReturn is sum_b softmax(logits[:, h])_b · centers[h][b] for every
// horizon, in float32: [b, H]. centers is [H, B] on the model's device.
func ExpectedReturn(s *torch.Scope, logits, centers *torch.Tensor) *torch.Tensor {
	probs := s.Softmax(s.ToDType(logits, torch.Float32), 2)
	return s.SumDim(s.Mul(probs, centers), 2, false)
}

// Loss is the method's standard loss: cross-entropy over bins for every
// horizon, averaged over horizons, then averaged over samples weighted by
// weights (nil: equal weights). labels is int64 [b, H].
func Loss(s *torch.Scope, logits, labels, weights *torch.Tensor, labelSmoothing float64) *torch.Tensor {
	if s.Err() != nil {
		return nil
	}
	sh := logits.Shape()
	b, H, B := sh[0], sh[1], sh[2]
	ce := s.CrossEntropy(s.Reshape(logits, b*H, B), s.Reshape(labels, b*H), torch.ReduceNone, labelSmoothing)
	perSample := s.MeanDim(s.View(ce, b, H), 1, false)
	if weights == nil {
		return s.Mean(perSample)
	}
	return s.Div(s.Sum(s.Mul(perSample, weights)), s.Sum(weights))
}

// PerSampleLoss returns each sample's loss averaged over horizons, [b].
func PerSampleLoss(s *torch.Scope, logits, labels *torch.Tensor) *torch.Tensor {
	sh := logits.Shape()
	if len(sh) != 3 {
		s.Fail(fmt.Errorf("loss: logits shape %v, want [b, H, B]", sh))
		return nil
	}
	b, H, B := sh[0], sh[1], sh[2]
	ce := s.CrossEntropy(s.Reshape(logits, b*H, B), s.Reshape(labels, b*H), torch.ReduceNone, 0)
	return s.MeanDim(s.View(ce, b, H), 1, false)
}
