package torch

/*
#include <stdlib.h>
#include "satorch.h"
*/
import "C"

import "math"

func paramHandles(op string, params []*Tensor) ([]C.sat_tensor, error) {
	if len(params) == 0 {
		return nil, &Error{Op: op, Msg: "no parameters", Kind: KindValue}
	}
	for _, p := range params {
		if err := p.needValid(op); err != nil {
			return nil, err
		}
	}
	return handles(params), nil
}

// ZeroGrad drops the accumulated gradients of params.
func ZeroGrad(params []*Tensor) error {
	hs, err := paramHandles("zero_grad", params)
	if err != nil {
		return err
	}
	return check("zero_grad", C.sat_zero_grad(&hs[0], C.int(len(hs))))
}

// ClipGradNorm scales the gradients of params so their total 2-norm is at most
// maxNorm (as torch.nn.utils.clip_grad_norm_) and returns the norm before
// clipping. maxNorm <= 0 only measures. A non-finite norm leaves grads alone.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	hs, err := paramHandles("clip_grad_norm", params)
	if err != nil {
		return 0, err
	}
	var total C.double
	err = check("clip_grad_norm", C.sat_clip_grad_norm(&hs[0], C.int(len(hs)), C.double(maxNorm), &total))
	return float64(total), err
}

// ScaleGrads multiplies every gradient of params by f.
func ScaleGrads(params []*Tensor, f float64) error {
	hs, err := paramHandles("scale grads", params)
	if err != nil {
		return err
	}
	return check("scale grads", C.sat_scale_grads(&hs[0], C.int(len(hs)), C.double(f)))
}

// AdamWConfig holds AdamW's hyper-parameters.
type AdamWConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// DefaultAdamW is PyTorch's torch.optim.AdamW default except the learning rate.
func DefaultAdamW(lr float64) AdamWConfig {
	return AdamWConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// AdamW is Adam with decoupled weight decay, computing exactly what
// torch.optim.AdamW computes. Its per-parameter state can be saved and restored.
type AdamW struct {
	c      C.sat_adamw
	params []*Tensor
	cfg    AdamWConfig
}

// NewAdamW makes an optimizer over params (which it references, not owns).
func NewAdamW(params []*Tensor, cfg AdamWConfig) (*AdamW, error) {
	hs, err := paramHandles("adamw", params)
	if err != nil {
		return nil, err
	}
	var o C.sat_adamw
	if err := check("adamw", C.sat_adamw_new(&hs[0], C.int(len(hs)), C.double(cfg.LR), C.double(cfg.Beta1),
		C.double(cfg.Beta2), C.double(cfg.Eps), C.double(cfg.WeightDecay), &o)); err != nil {
		return nil, err
	}
	return &AdamW{c: o, params: params, cfg: cfg}, nil
}

// Step applies one update from the parameters' current gradients.
func (o *AdamW) Step() error { return check("adamw step", C.sat_adamw_step(o.c)) }

// ZeroGrad drops the parameters' gradients.
func (o *AdamW) ZeroGrad() error { return ZeroGrad(o.params) }

// SetLR changes the learning rate.
func (o *AdamW) SetLR(lr float64) { o.cfg.LR = lr; C.sat_adamw_set_lr(o.c, C.double(lr)) }

// Config returns the hyper-parameters.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Free releases the optimizer state.
func (o *AdamW) Free() {
	if o != nil && o.c != nil {
		C.sat_adamw_free(o.c)
		o.c = nil
	}
}

// State returns parameter i's step count and moment estimates (new handles
// the caller frees; nil before the first step).
func (o *AdamW) State(i int) (step int64, expAvg, expAvgSq *Tensor, err error) {
	var st C.int64_t
	var m, v C.sat_tensor
	if err := check("adamw state", C.sat_adamw_get_state(o.c, C.int(i), &st, &m, &v)); err != nil {
		return 0, nil, nil, err
	}
	if m != nil {
		expAvg = newTensor(m)
	}
	if v != nil {
		expAvgSq = newTensor(v)
	}
	return int64(st), expAvg, expAvgSq, nil
}

// SetState restores parameter i's state (copied onto the parameter's device).
func (o *AdamW) SetState(i int, step int64, expAvg, expAvgSq *Tensor) error {
	if err := expAvg.needValid("adamw set state"); err != nil {
		return err
	}
	if err := expAvgSq.needValid("adamw set state"); err != nil {
		return err
	}
	return check("adamw set state", C.sat_adamw_set_state(o.c, C.int(i), C.int64_t(step), expAvg.c, expAvgSq.c))
}

// GradScaler implements dynamic loss scaling for float16 training on CUDA,
// with torch.cuda.amp.GradScaler's defaults: the loss is multiplied by Scale
// before backward; Unscale divides the gradients back and reports whether
// they are finite; Update halves the scale after an overflow and doubles it
// after GrowthInterval clean steps.
type GradScaler struct {
	Scale          float64
	GrowthFactor   float64
	BackoffFactor  float64
	GrowthInterval int
	goodSteps      int
}

// NewGradScaler returns a scaler with PyTorch's defaults (2^16, x2, x0.5, 2000).
func NewGradScaler() *GradScaler {
	return &GradScaler{Scale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

// Unscale divides the gradients by the current scale and returns their total
// norm after unscaling and whether it is finite.
func (g *GradScaler) Unscale(params []*Tensor) (norm float64, finite bool, err error) {
	if err := ScaleGrads(params, 1/g.Scale); err != nil {
		return 0, false, err
	}
	n, err := ClipGradNorm(params, 0)
	if err != nil {
		return 0, false, err
	}
	return n, !math.IsNaN(n) && !math.IsInf(n, 0), nil
}

// Update adapts the scale after a step (foundInf: the step was skipped).
func (g *GradScaler) Update(foundInf bool) {
	if foundInf {
		g.Scale *= g.BackoffFactor
		g.goodSteps = 0
		return
	}
	g.goodSteps++
	if g.goodSteps >= g.GrowthInterval {
		g.Scale *= g.GrowthFactor
		g.goodSteps = 0
	}
}
