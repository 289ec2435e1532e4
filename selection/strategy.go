package selection

import (
	"fmt"
	"math"
	"math/rand"
	"strings"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
)

// Strategy selects what each iteration trains on. The zero value is the
// documented method: sample uniformly (Sample), keep the top k of the sample
// by expected return (TopK, through Select), train on them with equal
// weights (Weights: nil). Every other field is an extension that is off at
// its zero value (see the package doc and docs/STRATEGIES.md).
type Strategy struct {
	// SelectBy: "expected" (default, the method), "loss" (hard-example mining:
	// the k highest-loss sequences) or "random" (a uniform random subset of
	// size k: the control arm of `satrain compare`).
	SelectBy string
	// NegativeK also trains on the k lowest expected returns.
	NegativeK int
	// MixRandom adds round(MixRandom*k) uniformly random sequences of the sample.
	MixRandom float64

	// Scope is "global" (default: one ranking over the whole sample) or
	// "per-date": the sample is whole cross-sections of randomly drawn end
	// days and each day's names are ranked against each other; k is shared
	// equally among the sampled days (or TopFrac of each day is kept).
	Scope string
	// TopFrac (per-date scope only): keep round(TopFrac x names) of each
	// sampled day (at least 1) instead of k/days.
	TopFrac float64
	// Stratify: "" (off), "sector", "ticker" or "date-bucket[:N]" (N equal
	// spans of the train split's end days, default 10). The sample holds
	// equal counts per stratum (a stratum with too few sequences gives its
	// shortfall to the others). Selection is then global on that sample.
	Stratify string
	// TopKSchedule makes k depend on the iteration (the K hook):
	// "linear:A:B" goes from A at iteration 1 to B at the last iteration;
	// "step:K1@I1,K2@I2,..." uses Kj from iteration Ij on (--top-k before I1).
	// Values are counts ("100") or percentages of the sample size ("1%").
	TopKSchedule string
	// ConfidenceWeight weights each trained sequence's loss by the model's
	// confidence on the ranked horizon: 1 - entropy(p)/log(bins) of its
	// predicted bin distribution p at scoring time.
	ConfidenceWeight bool
	// ConsistencyBonus X > 0 weights a selected sequence by 1 + X*s, s its
	// earlier consecutive top-k memberships: the number of times in a row it
	// was selected whenever it was scored (being scored and not selected
	// resets s; iterations in which it is not sampled leave s as it is).
	ConsistencyBonus float64
	// RankBy is what the top k is ranked by: RankExpected (the method:
	// E[r]) or RankRiskAdjusted, (E[r] - 1)/σ with σ the standard deviation
	// of the predicted gross-return distribution on the ranked horizon
	// (Scores.Sigma): a return forecast per unit of the model's own
	// uncertainty, so a name is not picked for a wide distribution alone.
	RankBy string

	mem *strategyState // per-run state, made by Prepare
}

// RankBy values.
const (
	RankExpected     = "expected"
	RankRiskAdjusted = "risk-adjusted"
)

func (st Strategy) riskAdjusted() bool { return st.RankBy == RankRiskAdjusted }

// rankingScores is sc as the top k is ranked: unchanged for RankExpected;
// for RankRiskAdjusted, Expected holds (E[r] - 1)/σ (σ <= 0 or unknown:
// -Inf, never preferred), the tie tolerance applying to those values.
func (st Strategy) rankingScores(sc Scores) Scores {
	if !st.riskAdjusted() {
		return sc
	}
	key := make([]float64, len(sc.Expected))
	for i, e := range sc.Expected {
		key[i] = math.Inf(-1)
		if i < len(sc.Sigma) && sc.Sigma[i] > 0 {
			key[i] = (e - 1) / sc.Sigma[i]
		}
	}
	sc.Expected = key
	return sc
}

// Config is what selection reads of a run's configuration.
type Config struct {
	SampleSize int // sequences scored per iteration
	TopK       int // k: sequences selected per iteration (unless a TopKSchedule sets it)
	Iterations int // iterations in the run; a TopKSchedule spans them
}

// Scores is what selection reads of one scoring pass over a sample of n
// sequences. Every slice is aligned with the sample.
type Scores struct {
	// Expected is each sequence's expected gross return on the ranked
	// horizon (1.0 = flat), E[r] = Σ_b softmax(logits)_b · center_b: [n].
	Expected []float64
	// Loss is each sequence's cross-entropy in nats, averaged over the
	// horizons: [n]. Only SelectBy "loss" reads it.
	Loss []float32
	// Logits are the ranked horizon's bin logits: [n][B], row-major. Only
	// ConfidenceWeight reads them.
	Logits []float32
	// Sigma is each sequence's standard deviation of the predicted gross
	// return on the ranked horizon, √(Σ_b p_b c_b² − E[r]²) with p the
	// softmax of its logits and c the bin centers: [n]. Only RankBy
	// RankRiskAdjusted reads it (PredictedSigma computes it).
	Sigma []float64
	// TieRTol is the relative tolerance within which two scores of this
	// pass are equal (their rounding noise): such scores tie.
	TieRTol float64
	// Candidates, set by the scoring cascade, are the indices of the
	// sequences rescored in the reference precision, ascending; only they
	// may be selected. nil: every sequence may be.
	Candidates []int
}

// strategyState is what a strategy keeps across the iterations of one run.
type strategyState struct {
	runs segPool // every sequence of the train split, as runs of end days
	// per-date scope
	days []int32 // end days with at least one valid sequence
	// stratified sampling
	strata    []stratum
	stratumOf func(loader.SeqID) string
	labels    []string // every stratum label, for the share metric
	// consistency bonus: earlier consecutive top-k memberships
	streak map[loader.SeqID]int
}

// Scope values.
const (
	ScopeGlobal  = "global"
	ScopePerDate = "per-date"
)

func (st Strategy) perDate() bool { return st.Scope == ScopePerDate }

// Name is the strategy's label in logs and compare tables.
func (st Strategy) Name() string {
	parts := []string{"selection_aware"}
	switch st.SelectBy {
	case "loss":
		parts = []string{"ohem_loss"}
	case "random":
		parts = []string{"random_subset"}
	}
	if st.perDate() {
		if st.TopFrac > 0 {
			parts = append(parts, fmt.Sprintf("per_date%g", st.TopFrac))
		} else {
			parts = append(parts, "per_date")
		}
	}
	if st.Stratify != "" {
		parts = append(parts, "stratify_"+st.Stratify)
	}
	if st.TopKSchedule != "" {
		parts = append(parts, "k_"+st.TopKSchedule)
	}
	if st.NegativeK > 0 {
		parts = append(parts, fmt.Sprintf("neg%d", st.NegativeK))
	}
	if st.MixRandom > 0 {
		parts = append(parts, fmt.Sprintf("mix%g", st.MixRandom))
	}
	if st.ConfidenceWeight {
		parts = append(parts, "confidence")
	}
	if st.ConsistencyBonus > 0 {
		parts = append(parts, fmt.Sprintf("consistency%g", st.ConsistencyBonus))
	}
	if st.riskAdjusted() {
		parts = append(parts, "risk_adjusted")
	}
	return strings.Join(parts, "+")
}

// Validate checks the strategy flags against the run's configuration.
func (st Strategy) Validate(c Config) error {
	switch st.SelectBy {
	case "", "expected", "loss", "random":
	default:
		return option.Errorf("{select-by} %q: want expected, loss or random", st.SelectBy)
	}
	if st.NegativeK < 0 || st.NegativeK > c.SampleSize {
		return option.Errorf("{negative-k} %d: want 0..{sample-size}", st.NegativeK)
	}
	if st.MixRandom < 0 || st.MixRandom > 10 || math.IsNaN(st.MixRandom) {
		return option.Errorf("{mix-random} %g: want a fraction of top-k in [0, 10]", st.MixRandom)
	}
	switch st.Scope {
	case "", ScopeGlobal, ScopePerDate:
	default:
		return option.Errorf("{select-scope} %q: want global or per-date", st.Scope)
	}
	if math.IsNaN(st.TopFrac) || st.TopFrac < 0 || st.TopFrac > 1 {
		return option.Errorf("{top-frac} %g: want a fraction in (0, 1] (0: k/dates per date)", st.TopFrac)
	}
	if st.TopFrac > 0 && !st.perDate() {
		return option.Errorf("{top-frac} needs {select-scope} per-date (in the global scope, {top-k} sets the count)")
	}
	if st.TopFrac > 0 && st.TopKSchedule != "" {
		return option.Errorf("{top-frac} and {top-k-schedule} both set the per-date count: give one")
	}
	if st.Stratify != "" {
		if _, _, err := parseStratify(st.Stratify); err != nil {
			return err
		}
		if st.perDate() {
			return option.Errorf("{stratify} %s and {select-scope} per-date both decide how the sample is drawn: give one", st.Stratify)
		}
	}
	if st.TopKSchedule != "" {
		sch, err := parseKSchedule(st.TopKSchedule)
		if err != nil {
			return err
		}
		if err := sch.check(c.SampleSize); err != nil {
			return err
		}
	}
	if math.IsNaN(st.ConsistencyBonus) || st.ConsistencyBonus < 0 || st.ConsistencyBonus > 100 {
		return option.Errorf("{consistency-bonus} %g: want 0 (off) .. 100", st.ConsistencyBonus)
	}
	switch st.RankBy {
	case "", RankExpected:
	case RankRiskAdjusted:
		if st.SelectBy == "loss" || st.SelectBy == "random" {
			return option.Errorf("{rank-by} %s and {select-by} %s both decide the ranking: give one", st.RankBy, st.SelectBy)
		}
	default:
		return option.Errorf("{rank-by} %q: want expected or risk-adjusted", st.RankBy)
	}
	return nil
}

// Describe is appended to the banner.
func (st Strategy) Describe() string {
	var b strings.Builder
	switch st.SelectBy {
	case "loss":
		b.WriteString("\n  (selection by highest loss: hard-example mining)")
	case "random":
		b.WriteString("\n  (control: a uniform random subset of the same size instead of the top-k)")
	}
	if st.perDate() {
		if st.TopFrac > 0 {
			fmt.Fprintf(&b, "\n  + per-date scope: whole cross-sections of random days, the top %g of each day's names", st.TopFrac)
		} else {
			b.WriteString("\n  + per-date scope: whole cross-sections of random days, top-k shared equally among the days")
		}
	}
	if st.Stratify != "" {
		fmt.Fprintf(&b, "\n  + stratified sample: equal counts per %s", st.Stratify)
	}
	if st.TopKSchedule != "" {
		fmt.Fprintf(&b, "\n  + top-k schedule %s (instead of --top-k)", st.TopKSchedule)
	}
	if st.NegativeK > 0 {
		fmt.Fprintf(&b, "\n  + negative mining: the %d lowest expected returns", st.NegativeK)
	}
	if st.MixRandom > 0 {
		fmt.Fprintf(&b, "\n  + %g x top-k uniformly random sequences", st.MixRandom)
	}
	if st.ConfidenceWeight {
		b.WriteString("\n  + loss weighted by model confidence (1 - normalized entropy on the ranked horizon)")
	}
	if st.ConsistencyBonus > 0 {
		fmt.Fprintf(&b, "\n  + consistency bonus: weight 1 + %g x earlier consecutive top-k memberships", st.ConsistencyBonus)
	}
	if st.riskAdjusted() {
		b.WriteString("\n  + ranked by risk-adjusted expected return: (E[r] - 1) / sd of the predicted distribution")
	}
	return b.String()
}

// NeedsLoss reports whether Select reads the per-sequence losses
// (Scores.Loss), so scoring must compute them.
func (st Strategy) NeedsLoss() bool { return st.SelectBy == "loss" }

// NeedsLogits reports whether Weights reads the logits (Scores.Logits), so
// scoring must keep them.
func (st Strategy) NeedsLogits() bool { return st.ConfidenceWeight }

// NeedsSigma reports whether Select reads the predicted standard deviations
// (Scores.Sigma), so scoring must compute them.
func (st Strategy) NeedsSigma() bool { return st.riskAdjusted() }

// Prepare readies the strategy for one run on ds's training split: it
// indexes the split where the sampling needs it and resets the state kept
// across iterations. The training loop calls it once before the first
// iteration; a strategy that is not prepared prepares itself on first use.
func (st *Strategy) Prepare(ds *loader.Dataset, train *loader.Split) error {
	m := &strategyState{}
	if st.ConsistencyBonus > 0 {
		m.streak = map[loader.SeqID]int{}
	}
	if st.perDate() || st.Stratify != "" {
		m.runs = splitRuns(train)
	}
	if st.perDate() {
		m.days = endDays(m.runs)
	}
	if st.Stratify != "" {
		if err := m.buildStrata(st.Stratify, ds); err != nil {
			return err
		}
	}
	st.mem = m
	return nil
}

func (st *Strategy) state(ds *loader.Dataset, train *loader.Split) *strategyState {
	if st.mem == nil {
		if err := st.Prepare(ds, train); err != nil {
			panic(fmt.Sprintf("selection: strategy used without Prepare: %v", err))
		}
	}
	return st.mem
}

// Sample draws the iteration's candidate sequences: n uniformly (the
// method), n in equal shares per stratum (Stratify), or whole cross-sections
// of random end days until n sequences (per-date scope; the last day drawn
// is subsampled to make exactly n).
func (st *Strategy) Sample(ds *loader.Dataset, train *loader.Split, n int, rng *rand.Rand) []loader.SeqID {
	if !st.perDate() && st.Stratify == "" {
		return train.Sample(n, rng)
	}
	m := st.state(ds, train)
	if st.perDate() {
		return m.sampleDates(n, rng)
	}
	return m.sampleStrata(n, rng)
}

// K is the number of sequences selected at iteration it (1-based): c.TopK,
// or the schedule's value.
func (st Strategy) K(c Config, it int) int {
	if st.TopKSchedule == "" {
		return c.TopK
	}
	sch, err := parseKSchedule(st.TopKSchedule)
	if err != nil { // Validate rejects it before a run
		return c.TopK
	}
	return sch.k(c, it)
}
