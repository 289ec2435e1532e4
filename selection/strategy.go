package selection

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"

	"github.com/satrain/satrain/loader"
)

// Strategy selects what each iteration trains on. The zero value is the
// documented method: sample uniformly, rank the sample by expected return,
// train on the top k with equal weights. Every other field is an extension
// that is off at its zero value (see docs/STRATEGIES.md).
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

	mem *strategyState // per-run state, made by Prepare
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

type stratum struct {
	label string
	pool  segPool
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
	return strings.Join(parts, "+")
}

// Validate checks the strategy flags against the run's configuration.
func (st Strategy) Validate(c Config) error {
	switch st.SelectBy {
	case "", "expected", "loss", "random":
	default:
		return fmt.Errorf("--select-by %q: want expected, loss or random", st.SelectBy)
	}
	if st.NegativeK < 0 || st.NegativeK > c.SampleSize {
		return fmt.Errorf("--negative-k %d: want 0..--sample-size", st.NegativeK)
	}
	if st.MixRandom < 0 || st.MixRandom > 10 || math.IsNaN(st.MixRandom) {
		return fmt.Errorf("--mix-random %g: want a fraction of top-k in [0, 10]", st.MixRandom)
	}
	switch st.Scope {
	case "", ScopeGlobal, ScopePerDate:
	default:
		return fmt.Errorf("--select-scope %q: want global or per-date", st.Scope)
	}
	if math.IsNaN(st.TopFrac) || st.TopFrac < 0 || st.TopFrac > 1 {
		return fmt.Errorf("--top-frac %g: want a fraction in (0, 1] (0: k/dates per date)", st.TopFrac)
	}
	if st.TopFrac > 0 && !st.perDate() {
		return fmt.Errorf("--top-frac needs --select-scope per-date (in the global scope, --top-k sets the count)")
	}
	if st.TopFrac > 0 && st.TopKSchedule != "" {
		return fmt.Errorf("--top-frac and --top-k-schedule both set the per-date count: give one")
	}
	if st.Stratify != "" {
		if _, _, err := parseStratify(st.Stratify); err != nil {
			return err
		}
		if st.perDate() {
			return fmt.Errorf("--stratify %s and --select-scope per-date both decide how the sample is drawn: give one", st.Stratify)
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
		return fmt.Errorf("--consistency-bonus %g: want 0 (off) .. 100", st.ConsistencyBonus)
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
	return b.String()
}

// NeedsLoss reports whether Select reads the per-sequence losses
// (Scores.Loss), so scoring must compute them.
func (st Strategy) NeedsLoss() bool { return st.SelectBy == "loss" }

// NeedsLogits reports whether Weights reads the logits (Scores.Logits), so
// scoring must keep them.
func (st Strategy) NeedsLogits() bool { return st.ConfidenceWeight }

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
		var count []int32 // sequences per end day (difference array)
		for _, r := range m.runs.segs {
			for int(r.day+r.n) >= len(count) {
				count = append(count, 0)
			}
			count[r.day]++
			count[r.day+r.n]--
		}
		var c int32
		for d := range count {
			if c += count[d]; c > 0 {
				m.days = append(m.days, int32(d))
			}
		}
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

// Selection is what an iteration selected.
type Selection struct {
	Top   []int // the ranked selection (indices into the sample), best first (per-date: by day, best first within a day)
	Train []int // everything trained on (Top plus extras), indices into the sample
	// StratumShare is the share of Top in each stratum (Stratify only;
	// every stratum is listed, zeros included).
	StratumShare map[string]float64
	extra        []string
	bonus        map[int]float64 // consistency weight per index of Top
}

// Describe says what is trained on.
func (s Selection) Describe() string {
	d := fmt.Sprintf("top %d", len(s.Top))
	for _, e := range s.extra {
		d += " + " + e
	}
	return d
}

// Select picks the iteration's training set from the scored sample ids
// (sc aligned with it), k sequences ranked plus the extensions' extras.
func (st *Strategy) Select(ids []loader.SeqID, sc Scores, k int, rng *rand.Rand) Selection {
	var sel Selection
	scores := sc.Expected
	rank := scores
	// Scores within the inference's rounding noise are ties, broken by
	// ticker then end day, so the picks do not depend on the batching.
	rtol := sc.TieRTol
	switch st.SelectBy {
	case "loss":
		rank = make([]float64, len(sc.Loss))
		for i, l := range sc.Loss {
			rank[i] = float64(l)
		}
	case "random":
		if st.perDate() {
			rank = make([]float64, len(ids))
			for i := range rank {
				rank[i] = rng.Float64()
			}
		}
	}
	switch {
	case st.perDate():
		r := rtol
		if st.SelectBy == "random" {
			r = 0
		}
		sel.Top = perDatePick(ids, rank, k, st.TopFrac, false, r)
	case st.SelectBy == "random":
		perm := rng.Perm(len(ids))
		sel.Top = append([]int(nil), perm[:min(k, len(ids))]...)
	default:
		sel.Top = SelectTopKTies(cascadeRank(rank, sc.Candidates), ids, k, rtol)
	}
	sel.Train = append([]int(nil), sel.Top...)
	in := map[int]bool{}
	for _, i := range sel.Train {
		in[i] = true
	}
	if st.NegativeK > 0 {
		var bottom []int
		if st.perDate() {
			bottom = perDatePick(ids, scores, st.NegativeK, 0, true, rtol)
		} else {
			bottom = SelectBottomKTies(scores, ids, st.NegativeK, rtol)
		}
		added := 0
		for _, i := range bottom {
			if !in[i] {
				in[i] = true
				sel.Train = append(sel.Train, i)
				added++
			}
		}
		sel.extra = append(sel.extra, fmt.Sprintf("bottom %d", added))
	}
	if st.MixRandom > 0 {
		want := int(math.Round(st.MixRandom * float64(k)))
		added := 0
		for _, i := range rng.Perm(len(ids)) {
			if added >= want {
				break
			}
			if !in[i] {
				in[i] = true
				sel.Train = append(sel.Train, i)
				added++
			}
		}
		sel.extra = append(sel.extra, fmt.Sprintf("%d random", added))
	}
	if st.Stratify != "" && st.mem != nil && st.mem.stratumOf != nil {
		sel.StratumShare = map[string]float64{}
		for _, l := range st.mem.labels {
			sel.StratumShare[l] = 0
		}
		count := map[string]int{}
		for _, i := range sel.Top {
			count[st.mem.stratumOf(ids[i])]++
		}
		for l, n := range count {
			sel.StratumShare[l] = float64(n) / float64(len(sel.Top))
		}
	}
	if st.ConsistencyBonus > 0 {
		if st.mem == nil {
			st.mem = &strategyState{}
		}
		if st.mem.streak == nil {
			st.mem.streak = map[loader.SeqID]int{}
		}
		sel.bonus = map[int]float64{}
		top := map[loader.SeqID]bool{}
		for _, i := range sel.Top {
			top[ids[i]] = true
			sel.bonus[i] = 1 + st.ConsistencyBonus*float64(st.mem.streak[ids[i]])
		}
		for _, id := range ids {
			if top[id] {
				continue
			}
			delete(st.mem.streak, id)
		}
		for id := range top {
			st.mem.streak[id]++
		}
	}
	return sel
}

// Weights returns per-training-sequence loss weights (aligned with
// sel.Train) from the scores sel was selected on, or nil for equal weights.
// The loop scales them to mean 1 in each batch.
func (st *Strategy) Weights(sel Selection, sc Scores) []float32 {
	if !st.ConfidenceWeight && sel.bonus == nil {
		return nil
	}
	w := make([]float32, len(sel.Train))
	var conf []float64
	if st.ConfidenceWeight {
		conf = sc.Confidence()
	}
	for j, i := range sel.Train {
		v := 1.0
		if conf != nil {
			v *= conf[i]
		}
		if b, ok := sel.bonus[i]; ok {
			v *= b
		}
		w[j] = float32(v)
	}
	if st.ConfidenceWeight && conf == nil {
		slog.Warn("--confidence-weight: scoring returned no logits; confidence weights are 1")
	}
	return w
}

// minConfidence keeps a completely uncertain prediction in the loss with a
// tiny weight rather than none.
const minConfidence = 1e-6

// Confidence is, per sequence of the n scored, 1 minus the entropy of its
// predicted bin distribution on the ranked horizon (softmax of its Logits
// row) divided by log(bins): 0 for a uniform prediction, 1 for a certain
// one (floored at 1e-6). It returns nil when s has no logits.
func (s Scores) Confidence() []float64 {
	n := len(s.Expected)
	if n == 0 || len(s.Logits) == 0 {
		return nil
	}
	B := len(s.Logits) / n
	if B == 0 {
		return nil
	}
	out := make([]float64, n)
	p := make([]float64, B)
	for i := range out {
		row := s.Logits[i*B : (i+1)*B]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var z float64
		for b, v := range row {
			p[b] = math.Exp(float64(v) - mx)
			z += p[b]
		}
		var ent float64
		for b := range p {
			q := p[b] / z
			if q > 0 {
				ent -= q * math.Log(q)
			}
		}
		c := 1.0
		if B > 1 {
			c = 1 - ent/math.Log(float64(B))
		}
		if math.IsNaN(c) || c < minConfidence {
			c = minConfidence
		}
		out[i] = math.Min(c, 1)
	}
	return out
}

// ---- per-date selection ----

// perDatePick ranks each end day's names of the sample against each other
// and keeps the top (or bottom) of every day: k shared equally among the
// days (a day with fewer names gives its shortfall to the others), or
// round(frac x names) per day when frac > 0. Days come in order of first
// appearance in the sample; within a day the best come first. Scores equal
// to within rtol tie and go to the lower ticker (SelectTopKTies).
func perDatePick(ids []loader.SeqID, scores []float64, k int, frac float64, lowest bool, rtol float64) []int {
	var order []int32
	byDay := map[int32][]int{}
	for i, id := range ids {
		if _, ok := byDay[id.Day]; !ok {
			order = append(order, id.Day)
		}
		byDay[id.Day] = append(byDay[id.Day], i)
	}
	quota := make([]int, len(order))
	if frac > 0 {
		for j, d := range order {
			quota[j] = min(len(byDay[d]), max(1, int(math.Round(frac*float64(len(byDay[d]))))))
		}
	} else {
		caps := make([]int, len(order))
		for j, d := range order {
			caps[j] = len(byDay[d])
		}
		quota = allocateEqual(k, caps)
	}
	var out []int
	sub := make([]float64, 0)
	var subIDs []loader.SeqID
	for j, d := range order {
		members := byDay[d]
		sub, subIDs = sub[:0], subIDs[:0]
		for _, i := range members {
			sub = append(sub, scores[i])
			subIDs = append(subIDs, ids[i])
		}
		var pick []int
		if lowest {
			pick = SelectBottomKTies(sub, subIDs, quota[j], rtol)
		} else {
			pick = SelectTopKTies(sub, subIDs, quota[j], rtol)
		}
		for _, p := range pick {
			out = append(out, members[p])
		}
	}
	return out
}

// allocateEqual shares total among len(caps) bins as equally as their
// capacities allow: a bin never gets more than its capacity, a full bin's
// shortfall goes to the others, and the bins below capacity differ by at
// most one (the extra ones go to the bins with the larger capacity). The
// total given is min(total, sum of caps).
func allocateEqual(total int, caps []int) []int {
	out := make([]int, len(caps))
	idx := make([]int, len(caps))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return caps[idx[a]] < caps[idx[b]] })
	left := total
	for j, i := range idx {
		out[i] = min(caps[i], left/(len(idx)-j))
		left -= out[i]
	}
	return out
}

// ---- indexes of the train split ----

// seg is the sequences of one ticker with end days day..day+n-1.
type seg struct {
	ticker, day, n int32
}

// segPool is a list of segments addressed as one index range [0, n).
type segPool struct {
	segs []seg
	cum  []int64
	n    int64
}

func (p *segPool) add(s seg) {
	if s.n <= 0 {
		return
	}
	p.segs = append(p.segs, s)
	p.cum = append(p.cum, p.n)
	p.n += int64(s.n)
}

func (p *segPool) at(i int64) loader.SeqID {
	k := sort.Search(len(p.cum), func(k int) bool { return p.cum[k] > i }) - 1
	s := p.segs[k]
	return loader.SeqID{Ticker: s.ticker, Day: s.day + int32(i-p.cum[k])}
}

// sample draws n of the pool uniformly without replacement (O(n) memory);
// n >= the pool returns all of it.
func (p *segPool) sample(n int, rng *rand.Rand) []loader.SeqID {
	idx := loader.SampleIndices(p.n, n, rng)
	if idx == nil {
		return nil
	}
	out := make([]loader.SeqID, len(idx))
	for i, x := range idx {
		out[i] = p.at(x)
	}
	return out
}

// splitRuns recovers the split's runs of consecutive end days per ticker
// from its index order (ticker, then day) with a binary search per run.
func splitRuns(s *loader.Split) segPool {
	var p segPool
	n := s.Len()
	for i := int64(0); i < n; {
		first := s.At(i)
		// The run is the longest stretch where At(j) = (ticker, day + j - i).
		rest := sort.Search(int(n-i-1), func(x int) bool {
			j := i + 1 + int64(x)
			id := s.At(j)
			return id.Ticker != first.Ticker || int64(id.Day-first.Day) != j-i
		})
		length := int64(rest) + 1
		p.add(seg{ticker: first.Ticker, day: first.Day, n: int32(length)})
		i += length
	}
	return p
}

// crossSection is every train sequence ending on day, by ticker.
func (m *strategyState) crossSection(day int32) []loader.SeqID {
	var out []loader.SeqID
	for _, r := range m.runs.segs {
		if day >= r.day && day < r.day+r.n {
			out = append(out, loader.SeqID{Ticker: r.ticker, Day: day})
		}
	}
	return out
}

// sampleDates draws end days uniformly without replacement and takes their
// whole cross-sections until n sequences; the day that would overshoot is
// subsampled uniformly to make exactly n.
func (m *strategyState) sampleDates(n int, rng *rand.Rand) []loader.SeqID {
	var out []loader.SeqID
	for _, j := range rng.Perm(len(m.days)) {
		if len(out) >= n {
			break
		}
		cs := m.crossSection(m.days[j])
		if need := n - len(out); len(cs) > need {
			rng.Shuffle(len(cs), func(a, b int) { cs[a], cs[b] = cs[b], cs[a] })
			cs = cs[:need]
			sort.Slice(cs, func(a, b int) bool { return cs[a].Ticker < cs[b].Ticker })
		}
		out = append(out, cs...)
	}
	return out
}

// sampleStrata draws n with equal counts per stratum, then shuffles them so
// that the sample's order says nothing about the strata.
func (m *strategyState) sampleStrata(n int, rng *rand.Rand) []loader.SeqID {
	caps := make([]int, len(m.strata))
	for i, s := range m.strata {
		caps[i] = int(min(s.pool.n, int64(math.MaxInt32)))
	}
	quota := allocateEqual(n, caps)
	var out []loader.SeqID
	for i := range m.strata {
		out = append(out, m.strata[i].pool.sample(quota[i], rng)...)
	}
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// parseStratify splits "date-bucket:N" into its kind and N.
func parseStratify(s string) (kind string, buckets int, err error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case "sector", "ticker":
		if hasArg {
			return "", 0, fmt.Errorf("--stratify %q: %s takes no argument", s, kind)
		}
		return kind, 0, nil
	case "date-bucket":
		buckets = 10
		if hasArg {
			buckets, err = strconv.Atoi(arg)
			if err != nil || buckets < 2 || buckets > 1000 {
				return "", 0, fmt.Errorf("--stratify %q: want date-bucket:N with N in 2..1000", s)
			}
		}
		return kind, buckets, nil
	}
	return "", 0, fmt.Errorf("--stratify %q: want sector, ticker or date-bucket[:N]", s)
}

// buildStrata partitions the train split's runs into the strata.
func (m *strategyState) buildStrata(spec string, ds *loader.Dataset) error {
	kind, nb, err := parseStratify(spec)
	if err != nil {
		return err
	}
	tickers := ds.Tickers()
	index := map[string]int{}
	stratumNamed := func(label string) *stratum {
		if i, ok := index[label]; ok {
			return &m.strata[i]
		}
		index[label] = len(m.strata)
		m.strata = append(m.strata, stratum{label: label})
		return &m.strata[len(m.strata)-1]
	}
	switch kind {
	case "ticker":
		for _, r := range m.runs.segs {
			stratumNamed(tickers[r.ticker]).pool.add(r)
		}
		m.stratumOf = func(id loader.SeqID) string { return tickers[id.Ticker] }
	case "sector":
		groups := ds.Groups()
		if groups == nil {
			return fmt.Errorf("--stratify sector: %s has no sector labels (the optional groups dataset; "+
				"`satrain data import-csv --constituents` writes them); use --stratify ticker or date-bucket", ds.Path())
		}
		label := func(t int32) string {
			if g := groups[t]; g != "" {
				return g
			}
			return "unknown"
		}
		for _, r := range m.runs.segs {
			stratumNamed(label(r.ticker)).pool.add(r)
		}
		m.stratumOf = func(id loader.SeqID) string { return label(id.Ticker) }
	case "date-bucket":
		lo, hi := int32(math.MaxInt32), int32(-1)
		for _, r := range m.runs.segs {
			lo, hi = min(lo, r.day), max(hi, r.day+r.n-1)
		}
		if hi < lo {
			return fmt.Errorf("--stratify %s: the training split is empty", spec)
		}
		span := int64(hi-lo) + 1
		nb = int(min(int64(nb), span))
		// Bucket b holds end days [start(b), start(b+1)).
		start := func(b int) int32 { return lo + int32(span*int64(b)/int64(nb)) }
		dates := ds.Dates()
		names := make([]string, nb)
		for b := range names {
			names[b] = fmt.Sprintf("%d-%d", dates[start(b)], dates[start(b+1)-1])
			stratumNamed(names[b])
		}
		for _, r := range m.runs.segs {
			for b := 0; b < nb; b++ {
				a, e := max(r.day, start(b)), min(r.day+r.n, start(b+1))
				if e > a {
					m.strata[b].pool.add(seg{ticker: r.ticker, day: a, n: e - a})
				}
			}
		}
		m.stratumOf = func(id loader.SeqID) string {
			b := int(int64(id.Day-lo) * int64(nb) / span)
			b = max(0, min(nb-1, b))
			for b > 0 && id.Day < start(b) {
				b--
			}
			for b < nb-1 && id.Day >= start(b+1) {
				b++
			}
			return names[b]
		}
	}
	kept := m.strata[:0]
	for _, s := range m.strata {
		m.labels = append(m.labels, s.label)
		if s.pool.n > 0 {
			kept = append(kept, s)
		}
	}
	m.strata = kept
	if len(m.strata) == 0 {
		return fmt.Errorf("--stratify %s: the training split is empty", spec)
	}
	return nil
}

// ---- top-k schedule ----

type kValue struct {
	v   float64
	pct bool
}

func (v kValue) count(sample int) int {
	if v.pct {
		return max(1, int(math.Round(v.v/100*float64(sample))))
	}
	return int(v.v)
}

func (v kValue) String() string {
	if v.pct {
		return fmt.Sprintf("%g%%", v.v)
	}
	return fmt.Sprintf("%d", int(v.v))
}

type kStep struct {
	from int
	k    kValue
}

type kSchedule struct {
	kind  string // linear or step
	a, b  kValue
	steps []kStep
}

func parseKValue(s string) (kValue, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0 && v <= 100) {
			return kValue{}, fmt.Errorf("%q: a percentage of the sample size in (0, 100]", s)
		}
		return kValue{v: v, pct: true}, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return kValue{}, fmt.Errorf("%q: a count >= 1 or a percentage like 2%%", s)
	}
	return kValue{v: float64(v)}, nil
}

// parseKSchedule reads "linear:A:B" or "step:K1@I1,K2@I2,...".
func parseKSchedule(s string) (kSchedule, error) {
	bad := func(err error) (kSchedule, error) {
		return kSchedule{}, fmt.Errorf("--top-k-schedule %q: %v (want linear:A:B or step:K1@I1,K2@I2,...; A, B, K a count or a percentage of --sample-size)", s, err)
	}
	kind, rest, _ := strings.Cut(s, ":")
	sch := kSchedule{kind: kind}
	switch kind {
	case "linear":
		a, b, ok := strings.Cut(rest, ":")
		if !ok || strings.Contains(b, ":") {
			return bad(fmt.Errorf("two values"))
		}
		var err error
		if sch.a, err = parseKValue(a); err != nil {
			return bad(err)
		}
		if sch.b, err = parseKValue(b); err != nil {
			return bad(err)
		}
	case "step":
		if rest == "" {
			return bad(fmt.Errorf("no steps"))
		}
		for _, part := range strings.Split(rest, ",") {
			kv, itS, ok := strings.Cut(part, "@")
			if !ok {
				return bad(fmt.Errorf("%q: want K@ITERATION", part))
			}
			v, err := parseKValue(kv)
			if err != nil {
				return bad(err)
			}
			from, err := strconv.Atoi(strings.TrimSpace(itS))
			if err != nil || from < 1 {
				return bad(fmt.Errorf("%q: the iteration must be >= 1", part))
			}
			if n := len(sch.steps); n > 0 && from <= sch.steps[n-1].from {
				return bad(fmt.Errorf("iterations must increase"))
			}
			sch.steps = append(sch.steps, kStep{from: from, k: v})
		}
	default:
		return bad(fmt.Errorf("unknown kind %q", kind))
	}
	return sch, nil
}

// check rejects counts larger than the sample.
func (sch kSchedule) check(sample int) error {
	vals := []kValue{sch.a, sch.b}
	if sch.kind == "step" {
		vals = vals[:0]
		for _, s := range sch.steps {
			vals = append(vals, s.k)
		}
	}
	for _, v := range vals {
		if !v.pct && int(v.v) > sample {
			return fmt.Errorf("--top-k-schedule: k %s is larger than --sample-size %d", v, sample)
		}
	}
	return nil
}

// k is the schedule's value at iteration it (1-based) of c.Iterations,
// within 1..c.SampleSize.
func (sch kSchedule) k(c Config, it int) int {
	var k int
	switch sch.kind {
	case "linear":
		a, b := float64(sch.a.count(c.SampleSize)), float64(sch.b.count(c.SampleSize))
		t := 0.0
		if c.Iterations > 1 {
			t = math.Min(1, math.Max(0, float64(it-1)/float64(c.Iterations-1)))
		}
		k = int(math.Round(a + (b-a)*t))
	default:
		k = c.TopK
		for _, s := range sch.steps {
			if it >= s.from {
				k = s.k.count(c.SampleSize)
			}
		}
	}
	return max(1, min(k, max(1, c.SampleSize)))
}
