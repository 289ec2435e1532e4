package model

import (
	"fmt"
	"math"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// Assumed sustained throughput for the pass-time estimate, from `satrain
// bench`: about 54 GFLOP/s per thread for the medium preset's float32
// scoring on one core of an AVX2 server; a data-centre GPU sustains three
// orders of magnitude more. The estimate only needs to tell minutes from
// hours.
const (
	cpuFLOPsPerThread = 50e9
	gpuFLOPs          = 50e12
)

// slowPass is the estimated pass time from which a run is warned at start: a
// run that takes hours per pass also makes the user wait that long for a
// stop request at a batch boundary.
const slowPass = time.Hour

// EstimatePass is the estimated time of a forward pass over n sequences of
// model mc on dev with threads CPU threads (0: every CPU this process may
// use), from its matmul FLOPs (Config.ForwardFLOPs).
func EstimatePass(mc Config, n int64, dev torch.Device, threads int) time.Duration {
	rate := gpuFLOPs
	if !dev.IsCUDA() {
		if threads <= 0 {
			threads = torch.AffinityCPUs()
		}
		rate = cpuFLOPsPerThread * float64(max(1, threads))
	}
	sec := mc.ForwardFLOPs(mc.SeqLen) * float64(n) / rate
	return time.Duration(math.Min(sec, 1e9) * float64(time.Second))
}

// SlowModelWarning is one line when the largest pass of a run (scoring the
// sample, or a standard epoch's training at about 3 forward passes a
// sequence) is estimated at slowPass or more on dev, naming the largest preset
// under it at the same settings (or none), and how long a stop request would
// wait for one inference batch; "" otherwise. mc carries the data's feature,
// horizon and bin counts.
func SlowModelWarning(mc Config, passSeqs int64, what string, batch int, dev torch.Device, threads int) string {
	est := EstimatePass(mc, passSeqs, dev, threads)
	if est < slowPass {
		return ""
	}
	fit := "no preset fits at this size; lower it"
	for i := len(PresetNames()) - 1; i >= 0; i-- {
		p := Presets[PresetNames()[i]]
		pc := mc
		pc.HiddenDim, pc.NumLayers, pc.NumHeads, pc.SeqLen = p.HiddenDim, p.NumLayers, p.NumHeads, p.SeqLen
		if e := EstimatePass(pc, passSeqs, dev, threads); e < slowPass {
			fit = fmt.Sprintf("--preset %s (%s parameters, seq_len %d) is estimated at %s", p.Name, FormatParams(pc.NumParams()), p.SeqLen, roundEstimate(e))
			break
		}
	}
	return fmt.Sprintf("the model (%s parameters, seq_len %d) on %s is estimated at %s for %s of %s sequences, and a stop request waits for the current inference batch of %d (about %s); %s, or use a GPU",
		FormatParams(mc.NumParams()), mc.SeqLen, dev, roundEstimate(est), what, loader.FormatCount(passSeqs), batch,
		roundEstimate(EstimatePass(mc, int64(batch), dev, threads)), fit)
}

// roundEstimate prints an estimate to the unit that matters ("3 h", "12 min", "40 s").
func roundEstimate(d time.Duration) string {
	switch {
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.0f h", d.Hours())
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}
