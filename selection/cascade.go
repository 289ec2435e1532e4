package selection

// The scoring cascade (opt-in, --score-precision): score the whole sample in a
// cheap precision, rescore only the best M candidates in the reference
// precision, and select the top k among those by their reference scores. The
// method needs only the order of the scores, and only at the top, so the cheap
// pass may be coarse as long as the reference top-k lies inside its top M.

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
)

// Scoring precisions (--score-precision).
const (
	PrecisionFP32 = "fp32" // float32, no autocast
	PrecisionBF16 = "bf16" // bfloat16 autocast
	PrecisionFP16 = "fp16" // float16 autocast (CUDA; a reference only, with --amp-dtype fp16)
	PrecisionFP8  = "fp8"  // the encoder layers' matmuls in FP8 (at::_scaled_mm: CPU, or CUDA sm_89+; trainer.Model.UseFP8)
)

// DefaultRescoreFactor sets the default M of the cascade: M = 4·k, capped at
// the sample size.
const DefaultRescoreFactor = 4

// ScoreConfig is the cascade's configuration. The zero value is today's
// behaviour: one scoring pass in the run's own precision.
type ScoreConfig struct {
	// Precision of the cheap pass: "" (no cascade), fp32, bf16 or fp8.
	Precision string
	// RescoreTop is M, the candidates rescored in the reference precision
	// (0: DefaultRescoreFactor·k, capped at the sample size).
	RescoreTop int
}

// precisionRank orders precisions by cost (higher: dearer and closer to the truth).
var precisionRank = map[string]int{PrecisionFP8: 0, PrecisionBF16: 1, PrecisionFP16: 1, PrecisionFP32: 2}

// Validate checks the configuration against k, the sample size and the
// reference precision (the run's own, trainer.ReferencePrecision). It
// refuses a cheap precision that is not cheaper than the reference and an M
// outside [k, sample size].
func (c ScoreConfig) Validate(topK, sampleSize int, reference string) error {
	switch c.Precision {
	case "":
		if c.RescoreTop != 0 {
			return option.Errorf("{rescore-top} %d needs {score-precision} (fp32, bf16 or fp8)", c.RescoreTop)
		}
		return nil
	case PrecisionFP32, PrecisionBF16, PrecisionFP8:
	default:
		return option.Errorf("{score-precision} %q: want fp32, bf16 or fp8", c.Precision)
	}
	if c.Precision != reference && precisionRank[c.Precision] >= precisionRank[reference] {
		return option.Errorf("{score-precision} %s is not cheaper than the reference precision %s ({use-amp}, {amp-dtype}); the cheap pass must be", c.Precision, reference)
	}
	if c.RescoreTop != 0 && (c.RescoreTop < topK || c.RescoreTop > sampleSize) {
		return option.Errorf("{rescore-top} %d: want between {top-k} %d and {sample-size} %d", c.RescoreTop, topK, sampleSize)
	}
	return nil
}

// CheckStrategy refuses the selection variants the cascade cannot serve: it
// rescores only the cheap pass's best M by expected return, so the ranking
// must be the method's own (select by expected return over the whole
// sample), and nothing may read scores or logits of the other sequences
// (--negative-k ranks the bottom, --confidence-weight reads logits).
func (c ScoreConfig) CheckStrategy(st Strategy, reference string) error {
	if !c.Active(reference) {
		return nil
	}
	var what string
	switch {
	case st.SelectBy == "loss" || st.SelectBy == "random":
		what = "{select-by} " + st.SelectBy
	case st.perDate():
		what = "{select-scope} per-date"
	case st.NegativeK > 0:
		what = "{negative-k}"
	case st.ConfidenceWeight:
		what = "{confidence-weight}"
	case st.riskAdjusted():
		what = "{rank-by} " + st.RankBy
	default:
		return nil
	}
	return option.Errorf("{score-precision} %s: the scoring cascade ranks by expected return over the whole sample and rescores only its top {rescore-top}; it cannot be combined with %s", c.Precision, what)
}

// Active reports whether the cascade runs: a cheap precision that differs
// from the reference. The same precision is one pass, today's behaviour.
func (c ScoreConfig) Active(reference string) bool {
	return c.Precision != "" && c.Precision != reference
}

// M returns the number of candidates to rescore for k of n.
func (c ScoreConfig) M(k, n int) int {
	m := c.RescoreTop
	if m == 0 {
		m = DefaultRescoreFactor * k
	}
	return max(k, min(m, n))
}

// Scorer scores sequences for ranking: one score per id, higher is better
// (the expected return on the ranked horizon). It must score a sequence the
// same whatever else is in the call, so that a rescored candidate gets the
// score the full pass would give it.
type Scorer interface {
	Score(ctx context.Context, ids []loader.SeqID) ([]float64, error)
}

// CascadeResult is one cascade selection. Indices point into the sample.
type CascadeResult struct {
	Top        []int     // the selected k, best first by reference score (SelectTopKTies's order and ties)
	Candidates []int     // the cheap pass's top M, in ascending sample order
	Cheap      []float64 // the cheap score of every sequence of the sample
	Rescored   []float64 // the reference score of each candidate (aligned with Candidates)
}

// Cascade selects the top k of ids: cheap scores the whole sample, the best m
// by cheap score are rescored with ref, and the top k of those by reference
// score are returned. Both selections are the single pass's tie-aware one,
// SelectTopKTies with relative tolerance rtol (scores within it tie and go to
// the lower ticker, then end day, then sample index).
//
// When the reference top-k of the whole sample lies within the cheap top-m,
// Top equals SelectTopKTies(reference scores of the whole sample, ids, k,
// rtol): the tie-break keys are the sequences' own, so they rank the same in
// the candidates as in the sample. (The one exception is a chain of scores
// within rtol of each other that crosses the k-th place and runs through a
// sequence outside the candidates: rank.MergeTies then groups differently.
// Its width is rtol, a few float32 roundings.) MeasureCascade checks
// containment and equality.
func Cascade(ctx context.Context, ids []loader.SeqID, cheap, ref Scorer, k, m int, rtol float64) (CascadeResult, error) {
	var r CascadeResult
	if k < 1 || m < k {
		return r, fmt.Errorf("cascade: want 1 <= k <= m, got k %d, m %d", k, m)
	}
	var err error
	if r.Cheap, err = cheap.Score(ctx, ids); err != nil {
		return r, fmt.Errorf("cascade: cheap pass: %w", err)
	}
	if len(r.Cheap) != len(ids) {
		return r, fmt.Errorf("cascade: cheap pass gave %d scores for %d sequences", len(r.Cheap), len(ids))
	}
	r.Candidates = SelectTopKTies(r.Cheap, ids, m, rtol)
	slices.Sort(r.Candidates)
	sub := make([]loader.SeqID, len(r.Candidates))
	for i, j := range r.Candidates {
		sub[i] = ids[j]
	}
	if r.Rescored, err = ref.Score(ctx, sub); err != nil {
		return r, fmt.Errorf("cascade: rescoring %d candidates: %w", len(sub), err)
	}
	if len(r.Rescored) != len(sub) {
		return r, fmt.Errorf("cascade: rescoring gave %d scores for %d candidates", len(r.Rescored), len(sub))
	}
	for _, i := range SelectTopKTies(r.Rescored, sub, k, rtol) {
		r.Top = append(r.Top, r.Candidates[i])
	}
	return r, nil
}

// CascadeCheck compares one cascade selection with the single reference pass
// over the whole sample.
type CascadeCheck struct {
	K, M      int
	Contained int  // how many of the reference top-k lie within the cheap top-m
	Equal     bool // the cascade selected exactly the reference top-k, in the same order
	SameSet   bool // the cascade selected the same k sequences (in any order)
}

// AllContained reports whether the whole reference top-k lay within the cheap top-m.
func (c CascadeCheck) AllContained() bool { return c.Contained == c.K }

// MeasureCascade runs the cascade and, for comparison, the reference scorer
// over the whole sample (the cost the cascade avoids), and reports the
// containment of the reference top-k in the cheap top-m and whether the
// selections agree (SelectTopKTies with rtol on both sides).
func MeasureCascade(ctx context.Context, ids []loader.SeqID, cheap, ref Scorer, k, m int, rtol float64) (CascadeCheck, CascadeResult, error) {
	c := CascadeCheck{K: k, M: m}
	r, err := Cascade(ctx, ids, cheap, ref, k, m, rtol)
	if err != nil {
		return c, r, err
	}
	full, err := ref.Score(ctx, ids)
	if err != nil {
		return c, r, fmt.Errorf("cascade check: reference pass: %w", err)
	}
	c, err = CheckCascade(ids, r, full, k, rtol)
	return c, r, err
}

// CheckCascade compares the cascade's selection r with the reference scores
// full of the whole sample ids: containment of the reference top-k
// (SelectTopKTies with rtol) in r's candidates, and equality of the selections.
func CheckCascade(ids []loader.SeqID, r CascadeResult, full []float64, k int, rtol float64) (CascadeCheck, error) {
	c := CascadeCheck{K: k, M: len(r.Candidates)}
	if len(full) != len(ids) {
		return c, fmt.Errorf("cascade check: reference pass gave %d scores for %d sequences", len(full), len(ids))
	}
	want := SelectTopKTies(full, ids, k, rtol)
	for _, i := range want {
		if _, found := slices.BinarySearch(r.Candidates, i); found {
			c.Contained++
		}
	}
	c.K = len(want)
	c.Equal = slices.Equal(want, r.Top)
	a, b := slices.Clone(want), slices.Clone(r.Top)
	slices.Sort(a)
	slices.Sort(b)
	c.SameSet = slices.Equal(a, b)
	return c, nil
}

// cascadeRank restricts a ranking to the cascade's candidates: the others
// become NaN, which SelectTopKTies ranks last and rank.MergeTies leaves out,
// so with at least k candidates the top k are the candidates' top k, ranked
// and tie-broken exactly as Cascade ranks them. nil candidates: rank
// unchanged.
func cascadeRank(rank []float64, candidates []int) []float64 {
	if candidates == nil {
		return rank
	}
	out := make([]float64, len(rank))
	for i := range out {
		out[i] = math.NaN()
	}
	for _, j := range candidates {
		out[j] = rank[j]
	}
	return out
}
