package trainer

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/selection"
)

// CascadeBenchConfig is a measurement of the scoring cascade on a trained
// checkpoint and a data file (satrain bench-cascade): over Iterations samples
// of the training split, the cascade's selection against the single
// reference pass, and the time of the cheap and the reference pass.
type CascadeBenchConfig struct {
	Eval       eval.Options
	Cheap      string // the cheap precision (fp8 or bf16)
	Reference  string // the reference precision (fp32 or bf16): the run's own
	Horizon    int    // horizon index ranked on
	SampleSize int
	TopK       int
	RescoreTop int // M (0: DefaultRescoreFactor·k)
	Iterations int
	Seed       int64
}

// CascadeBenchIteration is one sample's measurement.
type CascadeBenchIteration struct {
	Iteration int  `json:"iteration"`
	Sample    int  `json:"sample"`
	K         int  `json:"k"`
	M         int  `json:"m"`
	Contained int  `json:"contained"` // of the reference top-k, inside the cheap top-M
	Equal     bool `json:"equal"`     // the cascade selected exactly the reference top-k, in its order
	SameSet   bool `json:"same_set"`  // the cascade selected the reference top-k's sequences
	// MinM is the smallest M whose cheap top-M holds the whole reference
	// top-k (the worst cheap rank of a reference top-k sequence, from 1):
	// the headroom of the M used.
	MinM       int     `json:"min_m"`
	CheapSec   float64 `json:"cheap_s"`     // the cheap pass over the whole sample
	RefSec     float64 `json:"reference_s"` // the reference pass over the whole sample
	RescoreSec float64 `json:"rescore_s"`   // the reference pass over the M candidates
	CheapFirst bool    `json:"cheap_first"` // which full pass ran first (they alternate)
	// RescoreDiff is the largest relative difference between a candidate's
	// rescored score and its score in the full reference pass (other
	// batches: 0 when a sequence scores the same in any batch); against
	// TieRTol, the tie tolerance of the selection.
	RescoreDiff float64 `json:"rescore_rel_diff"`
	TieRTol     float64 `json:"tie_rtol"`
	Reference   string  `json:"reference"` // the reference precision
	Cheap       string  `json:"cheap"`     // the cheap precision
}

// timedScorer records the duration of each Score call.
type timedScorer struct {
	s     selection.Scorer
	times *[]time.Duration
}

func (t timedScorer) Score(ctx context.Context, ids []loader.SeqID) ([]float64, error) {
	t0 := time.Now()
	out, err := t.s.Score(ctx, ids)
	*t.times = append(*t.times, time.Since(t0))
	return out, err
}

// BenchCascade measures the cascade: each iteration draws a sample of the
// training split (seeded by Seed and the iteration), runs the cascade (the
// cheap pass, then the rescoring of its top M) and the reference pass over
// the whole sample, alternating which full pass goes first so that neither
// profits from warm caches or a quieter machine, and compares the selections
// (CheckCascade). The engine's own precision is the reference: with a bf16
// reference the engine runs under bf16 autocast, so an fp8 cheap pass keeps
// bf16 for everything but its FP8 matmuls, as in a run.
func BenchCascade(ctx context.Context, cfg CascadeBenchConfig, emit func(CascadeBenchIteration)) error {
	switch cfg.Reference {
	case selection.PrecisionFP32, selection.PrecisionBF16:
	default:
		return option.Errorf("{reference} %q: want fp32 or bf16", cfg.Reference)
	}
	sc := selection.ScoreConfig{Precision: cfg.Cheap, RescoreTop: cfg.RescoreTop}
	if err := sc.Validate(cfg.TopK, cfg.SampleSize, cfg.Reference); err != nil {
		return err
	}
	if !sc.Active(cfg.Reference) {
		return option.Errorf("{score-precision} %s: the same as the reference; nothing to compare", cfg.Cheap)
	}
	if cfg.Iterations < 1 || cfg.TopK < 1 || cfg.SampleSize < cfg.TopK {
		return fmt.Errorf("bench-cascade: want iterations >= 1 and 1 <= top-k <= sample size, got %d, %d, %d", cfg.Iterations, cfg.TopK, cfg.SampleSize)
	}
	ev, err := eval.Open(cfg.Eval)
	if err != nil {
		return err
	}
	defer ev.Close()
	if err := loader.CheckHorizon(cfg.Horizon, ev.DS.Path(), ev.DS.Horizons()); err != nil {
		return err
	}
	e := ev.Engine()
	restore, err := e.ScoreIn(cfg.Reference) // the engine's own precision is the reference
	if err != nil {
		return err
	}
	defer restore()
	train := ev.DS.Split("train")
	if train.Len() < int64(cfg.SampleSize) {
		return option.Errorf("{sample-size} %d: the training split of %s has %d sequences", cfg.SampleSize, ev.DS.Path(), train.Len())
	}
	var cheapT, refT []time.Duration
	cheap := timedScorer{EngineScorer{Eng: e, Data: ev.DS, Horizon: cfg.Horizon, Precision: cfg.Cheap}, &cheapT}
	ref := timedScorer{EngineScorer{Eng: e, Data: ev.DS, Horizon: cfg.Horizon, Precision: cfg.Reference}, &refT}
	rtol := model.ScoreTieRTol(ev.Config)
	k := cfg.TopK
	m := sc.M(k, cfg.SampleSize)
	for it := 1; it <= cfg.Iterations; it++ {
		ids := train.Sample(cfg.SampleSize, rand.New(rand.NewSource(iterSeed(cfg.Seed, it, 2))))
		cheapT, refT = cheapT[:0], refT[:0]
		var full []float64
		var r selection.CascadeResult
		cheapFirst := it%2 == 1
		if !cheapFirst {
			if full, err = ref.Score(ctx, ids); err != nil {
				return err
			}
		}
		if r, err = selection.Cascade(ctx, ids, cheap, ref, k, m, rtol); err != nil {
			return err
		}
		if cheapFirst {
			if full, err = ref.Score(ctx, ids); err != nil {
				return err
			}
		}
		c, err := selection.CheckCascade(ids, r, full, k, rtol)
		if err != nil {
			return err
		}
		// refT holds the full pass and the rescoring, in the order they ran.
		fullT, rescoreT := refT[0], refT[1]
		if cheapFirst {
			rescoreT, fullT = refT[0], refT[1]
		}
		pos := make([]int, len(ids))
		for p, i := range selection.SelectTopKTies(r.Cheap, ids, len(ids), rtol) {
			pos[i] = p
		}
		minM := 0
		for _, i := range selection.SelectTopKTies(full, ids, k, rtol) {
			minM = max(minM, pos[i]+1)
		}
		diff := 0.0
		for i, j := range r.Candidates {
			diff = math.Max(diff, math.Abs(r.Rescored[i]-full[j])/math.Abs(full[j]))
		}
		emit(CascadeBenchIteration{RescoreDiff: diff, TieRTol: rtol, Iteration: it, Sample: len(ids), K: c.K, M: c.M, Contained: c.Contained, Equal: c.Equal, SameSet: c.SameSet, MinM: minM,
			CheapSec: cheapT[0].Seconds(), RefSec: fullT.Seconds(), RescoreSec: rescoreT.Seconds(), CheapFirst: cheapFirst,
			Reference: cfg.Reference, Cheap: cfg.Cheap})
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
