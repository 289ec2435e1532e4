package trainer

// The scoring cascade (opt-in, --score-precision): score the whole sample in a
// cheap precision, rescore only the best M candidates in the reference
// precision, and select the top k among those by their reference scores. The
// method needs only the order of the scores, and only at the top, so the cheap
// pass may be coarse as long as the reference top-k lies inside its top M.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
)

// Scoring precisions (--score-precision).
const (
	PrecisionFP32 = model.PrecisionFP32
	PrecisionBF16 = model.PrecisionBF16
	PrecisionFP16 = model.PrecisionFP16
	PrecisionFP8  = model.PrecisionFP8
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

// ReferencePrecision is the precision of the run's own scoring: its autocast
// dtype with --use-amp (bf16, or fp16 with --amp-dtype fp16), else fp32.
func ReferencePrecision(cfg model.StepConfig) string {
	switch {
	case !cfg.UseAMP:
		return PrecisionFP32
	case cfg.AMPDType == "fp16":
		return PrecisionFP16
	}
	return PrecisionBF16
}

// precisionRank orders precisions by cost (higher: dearer and closer to the truth).
var precisionRank = map[string]int{PrecisionFP8: 0, PrecisionBF16: 1, PrecisionFP16: 1, PrecisionFP32: 2}

// Validate checks the configuration against k, the sample size and the
// reference precision (ReferencePrecision). It refuses a cheap precision that
// is not cheaper than the reference and an M outside [k, sample size].
func (c ScoreConfig) Validate(topK, sampleSize int, reference string) error {
	switch c.Precision {
	case "":
		if c.RescoreTop != 0 {
			return fmt.Errorf("--rescore-top %d needs --score-precision (fp32, bf16 or fp8)", c.RescoreTop)
		}
		return nil
	case PrecisionFP32, PrecisionBF16, PrecisionFP8:
	default:
		return fmt.Errorf("--score-precision %q: want fp32, bf16 or fp8", c.Precision)
	}
	if c.Precision != reference && precisionRank[c.Precision] >= precisionRank[reference] {
		return fmt.Errorf("--score-precision %s is not cheaper than the reference precision %s (--use-amp, --amp-dtype); the cheap pass must be", c.Precision, reference)
	}
	if c.RescoreTop != 0 && (c.RescoreTop < topK || c.RescoreTop > sampleSize) {
		return fmt.Errorf("--rescore-top %d: want between --top-k %d and --sample-size %d", c.RescoreTop, topK, sampleSize)
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
		what = "--select-by " + st.SelectBy
	case st.perDate():
		what = "--select-scope per-date"
	case st.NegativeK > 0:
		what = "--negative-k"
	case st.ConfidenceWeight:
		what = "--confidence-weight"
	default:
		return nil
	}
	return fmt.Errorf("--score-precision %s: the scoring cascade ranks by expected return over the whole sample and rescores only its top --rescore-top; it cannot be combined with %s", c.Precision, what)
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
// sequence outside the candidates: MergeTies then groups differently. Its
// width is rtol, a few float32 roundings.) MeasureCascade checks containment
// and equality.
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

// EngineScorer scores sequences of a data set with an Engine in a given
// precision: the expected return on one horizon, as the training loop ranks.
type EngineScorer struct {
	Eng       *model.Engine
	Data      *loader.Dataset
	Horizon   int    // index into the data set's horizons
	Precision string // PrecisionFP32, PrecisionBF16, PrecisionFP16 or PrecisionFP8
}

// Score implements Scorer. It switches the engine to the scorer's precision
// for the call (Engine.ScoreIn) and restores it after.
func (s EngineScorer) Score(ctx context.Context, ids []loader.SeqID) ([]float64, error) {
	e := s.Eng
	restore, err := e.ScoreIn(s.Precision)
	if err != nil {
		return nil, fmt.Errorf("engine scorer: %w", err)
	}
	defer restore()
	H := len(s.Data.Horizons())
	if s.Horizon < 0 || s.Horizon >= H {
		return nil, fmt.Errorf("engine scorer: horizon index %d of %d horizons", s.Horizon, H)
	}
	seqLen := e.Model.Cfg.SeqLen
	st := s.Data.Stream(ctx, ids, loader.StreamOptions{BatchSize: max(1, e.InferenceBatch)})
	defer st.Close()
	out := make([]float64, 0, len(ids))
	for {
		b, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n := len(b.IDs)
		r, err := e.Infer(b.Features, nil, n, seqLen, false)
		st.Release(b)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			out = append(out, float64(r.Expected[i*H+s.Horizon]))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scoreSample scores an iteration's sample for the selection-aware loop: one
// pass in the run's precision (score), or, with the cascade (RunConfig.Score
// active), the whole sample in the cheap precision and then its best M
// (SelectTopKTies on the ranked horizon) again in the run's precision. Both
// passes go through score, so under data parallelism each is sharded over
// the ranks and all-gathered as today's single pass is; the candidates follow
// from the gathered cheap scores, equal on every rank, so every rank issues
// the same collectives in the same order. The result holds the reference
// expected returns of the candidates and the cheap ones elsewhere, with
// Candidates set: Strategy.Select ranks only those (as Cascade does).
func (s *session) scoreSample(ctx context.Context, ids []loader.SeqID, labels bool, k int) (model.InferResult, time.Duration, time.Duration, error) {
	sc := s.cfg.Score
	if !sc.Active(ReferencePrecision(s.eng.Cfg)) {
		return s.score(ctx, ids, labels, PhaseInference)
	}
	restore, err := s.eng.ScoreIn(sc.Precision)
	if err != nil {
		return model.InferResult{}, 0, 0, err
	}
	cheap, ioWait, compute, err := s.score(ctx, ids, labels, PhaseInference)
	restore()
	if err != nil {
		return cheap, ioWait, compute, fmt.Errorf("%s scoring pass: %w", sc.Precision, err)
	}
	H := len(s.ds.Horizons())
	scores := make([]float64, len(ids))
	for i := range ids {
		scores[i] = float64(cheap.Expected[i*H+s.horizon])
	}
	cand := SelectTopKTies(scores, ids, sc.M(k, len(ids)), cheap.TieRTol)
	slices.Sort(cand)
	sub := make([]loader.SeqID, len(cand))
	for i, j := range cand {
		sub[i] = ids[j]
	}
	ref, io2, c2, err := s.score(ctx, sub, labels, PhaseInference)
	ioWait, compute = ioWait+io2, compute+c2
	if err != nil {
		return ref, ioWait, compute, err
	}
	out := cheap
	for i, j := range cand {
		copy(out.Expected[j*H:(j+1)*H], ref.Expected[i*H:(i+1)*H])
	}
	out.Candidates = cand
	return out, ioWait, compute, nil
}

// cascadeRank restricts a ranking to the cascade's candidates: the others
// become NaN, which SelectTopKTies ranks last and MergeTies leaves out, so
// with at least k candidates the top k are the candidates' top k, ranked and
// tie-broken exactly as Cascade ranks them. nil candidates: rank unchanged.
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
