package model

import "github.com/satrain/satrain/torch"

// FusedStatus says which opt-in fused kernels an Engine runs.
type FusedStatus struct {
	// LinearGelu: the feed-forward's first linear + GELU as one
	// at::_addmm_activation when scoring (training keeps the plain ops: the
	// fused op has no derivative).
	LinearGelu bool
	// AdamW: the optimizer step as one at::_fused_adamw_ (parameters on
	// CUDA).
	AdamW bool
}

// UseFusedKernels turns the fused kernels on or off and returns the ones that
// will run with this libtorch build and device. The plain paths stay the
// reference: each fused kernel computes the same function up to float
// rounding, except GELU on CUDA, where PyTorch's fused kernel uses GELU's tanh
// approximation (see torch.Scope.LinearGelu).
func (e *Engine) UseFusedKernels(on bool) (FusedStatus, error) {
	e.freeGraph() // captured with the other kernels
	e.Model.FusedKernels = on && torch.Fused().LinearGelu
	adam, err := e.Opt.SetFused(on)
	if err != nil {
		return FusedStatus{}, err
	}
	return FusedStatus{LinearGelu: e.Model.FusedKernels, AdamW: adam}, nil
}
