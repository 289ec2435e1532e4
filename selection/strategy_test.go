package selection

import (
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/selection/rank"
)

// Tests of the selection extensions (docs/STRATEGIES.md), pure Go on a small
// synthetic panel; trainer's tests run them in the loop. Helpers are
// prefixed "st".

const stSeqLen = 16

// stOpen opens the loop tests' synthetic panel (20 tickers in 11 sectors,
// 400 days; about 10% of tickers list late; trainer's ltData) with 16-day
// windows.
func stOpen(t *testing.T) (*loader.Dataset, *loader.Split) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "synth.h5")
	if err := loader.Synth(path, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 11}); err != nil {
		t.Fatalf("synthetic data: %v", err)
	}
	ds, err := loader.Open(path, loader.Options{SeqLen: stSeqLen, ValSize: 48, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds, ds.Split("train")
}

// stAll lists the split through its own index (the reference).
func stAll(train *loader.Split) []loader.SeqID {
	out := make([]loader.SeqID, train.Len())
	for i := range out {
		out[i] = train.At(int64(i))
	}
	return out
}

func stPrepared(t *testing.T, st Strategy, ds *loader.Dataset, train *loader.Split, c Config) *Strategy {
	t.Helper()
	if err := st.Validate(c); err != nil {
		t.Fatalf("%+v: %v", st, err)
	}
	if err := st.Prepare(ds, train); err != nil {
		t.Fatalf("%+v: %v", st, err)
	}
	return &st
}

func stCheckDistinctValid(t *testing.T, ids []loader.SeqID, train *loader.Split) {
	t.Helper()
	valid := map[loader.SeqID]bool{}
	for _, id := range stAll(train) {
		valid[id] = true
	}
	seen := map[loader.SeqID]bool{}
	for _, id := range ids {
		if !valid[id] {
			t.Fatalf("%v is not a sequence of the train split", id)
		}
		if seen[id] {
			t.Fatalf("%v drawn twice", id)
		}
		seen[id] = true
	}
}

func TestStrategyDefaultIsUniformSample(t *testing.T) {
	ds, train := stOpen(t)
	var st Strategy
	got := st.Sample(ds, train, 200, rand.New(rand.NewSource(3)))
	want := train.Sample(200, rand.New(rand.NewSource(3)))
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the zero Strategy must draw exactly what Split.Sample draws")
	}
	c := Config{TopK: 17, SampleSize: 200}
	for it := 1; it <= 3; it++ {
		if k := st.K(c, it); k != 17 {
			t.Fatalf("K = %d without a schedule, want --top-k 17", k)
		}
	}
	if w := st.Weights(Selection{Train: []int{0, 1}}, Scores{Expected: make([]float64, len(got))}); w != nil {
		t.Fatalf("default weights %v, want nil (equal)", w)
	}
	if st.Name() != "selection_aware" {
		t.Fatalf("name %q", st.Name())
	}
}

func TestStrategySplitRuns(t *testing.T) {
	_, train := stOpen(t)
	p := splitRuns(train)
	if p.n != train.Len() {
		t.Fatalf("runs hold %d sequences, split %d", p.n, train.Len())
	}
	for i, id := range stAll(train) {
		if got := p.at(int64(i)); got != id {
			t.Fatalf("runs[%d] = %v, split %v", i, got, id)
		}
	}
	// Runs are maximal: neighbouring runs of a ticker leave a gap.
	for k := 1; k < len(p.segs); k++ {
		a, b := p.segs[k-1], p.segs[k]
		if a.ticker == b.ticker && a.day+a.n == b.day {
			t.Fatalf("runs %v and %v should be one", a, b)
		}
	}
}

func TestAllocateEqual(t *testing.T) {
	for _, tc := range []struct {
		total int
		caps  []int
		want  []int
	}{
		{10, []int{100, 100, 100}, []int{3, 3, 4}},
		{12, []int{1, 100, 100, 2}, []int{1, 5, 4, 2}},
		{9, []int{2, 2, 2}, []int{2, 2, 2}},
		{0, []int{5, 5}, []int{0, 0}},
		{2, []int{5, 5, 5}, []int{0, 1, 1}},
	} {
		got := allocateEqual(tc.total, tc.caps)
		sum, wantSum := 0, 0
		for i := range got {
			sum += got[i]
			wantSum += tc.caps[i]
		}
		wantSum = min(wantSum, tc.total)
		if sum != wantSum {
			t.Errorf("allocateEqual(%d, %v) = %v: sum %d, want %d", tc.total, tc.caps, got, sum, wantSum)
		}
		sort.Ints(got)
		w := append([]int(nil), tc.want...)
		sort.Ints(w)
		if !reflect.DeepEqual(got, w) {
			t.Errorf("allocateEqual(%d, %v) = %v, want %v (as multisets)", tc.total, tc.caps, got, tc.want)
		}
	}
}

func TestStrategyStratifiedCounts(t *testing.T) {
	ds, train := stOpen(t)
	c := Config{SampleSize: 1100, TopK: 10}
	groups, tickers := ds.Groups(), ds.Tickers()
	if len(groups) != len(tickers) {
		t.Fatalf("synthetic panel has %d groups for %d tickers", len(groups), len(tickers))
	}
	for _, tc := range []struct {
		spec    string
		n       int
		strata  int
		stratum func(loader.SeqID) string
	}{
		// 20 tickers in 11 sectors (Sector00..10, round robin): 2 tickers in
		// 9 sectors and 1 in two; equal counts anyway.
		{"sector", 1100, 11, func(id loader.SeqID) string { return groups[id.Ticker] }},
		{"ticker", 400, 20, func(id loader.SeqID) string { return tickers[id.Ticker] }},
		{"date-bucket:4", 400, 4, nil},
	} {
		st := stPrepared(t, Strategy{Stratify: tc.spec}, ds, train, c)
		ids := st.Sample(ds, train, tc.n, rand.New(rand.NewSource(9)))
		if len(ids) != tc.n {
			t.Fatalf("%s: %d drawn, want %d", tc.spec, len(ids), tc.n)
		}
		stCheckDistinctValid(t, ids, train)
		of := tc.stratum
		if of == nil {
			of = st.mem.stratumOf
		}
		count := map[string]int{}
		for _, id := range ids {
			count[of(id)]++
			if got := st.mem.stratumOf(id); got != of(id) {
				t.Fatalf("%s: stratumOf(%v) = %q, want %q", tc.spec, id, got, of(id))
			}
		}
		if len(count) != tc.strata {
			t.Fatalf("%s: %d strata drawn from, want %d: %v", tc.spec, len(count), tc.strata, count)
		}
		for s, n := range count {
			if n != tc.n/tc.strata {
				t.Errorf("%s: stratum %s has %d, want %d (equal counts): %v", tc.spec, s, n, tc.n/tc.strata, count)
			}
		}
		// The sample's order does not group the strata: the first quarter
		// already holds most of them.
		head := map[string]bool{}
		for _, id := range ids[:tc.n/4] {
			head[of(id)] = true
		}
		if len(head) < tc.strata/2 {
			t.Errorf("%s: the first quarter of the sample holds only %d strata: not shuffled", tc.spec, len(head))
		}
	}
	// Date buckets are contiguous, equal spans of end days, in order.
	st := stPrepared(t, Strategy{Stratify: "date-bucket:4"}, ds, train, c)
	prevEnd := int32(-1)
	for _, s := range st.mem.strata {
		lo, hi := int32(math.MaxInt32), int32(-1)
		for _, r := range s.pool.segs {
			lo, hi = min(lo, r.day), max(hi, r.day+r.n-1)
		}
		if lo <= prevEnd {
			t.Fatalf("bucket %s starts at day %d, the previous one ended at %d", s.label, lo, prevEnd)
		}
		prevEnd = hi
		d := ds.Dates()
		if want := fmt.Sprintf("%d-%d", d[lo], d[hi]); s.label != want {
			t.Errorf("bucket label %s, want %s", s.label, want)
		}
	}
	// A stratum too small for its share gives the shortfall to the others.
	st = stPrepared(t, Strategy{Stratify: "ticker"}, ds, train, c)
	smallest := st.mem.strata[0]
	for _, s := range st.mem.strata {
		if s.pool.n < smallest.pool.n {
			smallest = s
		}
	}
	n := min(int(smallest.pool.n+10)*20, int(train.Len())-3)
	if n <= int(smallest.pool.n)*20 {
		t.Fatalf("test data: the smallest ticker has %d of %d sequences", smallest.pool.n, train.Len())
	}
	ids := st.Sample(ds, train, n, rand.New(rand.NewSource(2)))
	count := map[string]int{}
	for _, id := range ids {
		count[tickers[id.Ticker]]++
	}
	if len(ids) != n || int64(count[smallest.label]) != smallest.pool.n {
		t.Fatalf("%d drawn (want %d); smallest stratum %s: %d of %d", len(ids), n, smallest.label, count[smallest.label], smallest.pool.n)
	}
}

func TestStrategyStratifyNeedsGroups(t *testing.T) {
	p, err := loader.SynthPanel(loader.SynthConfig{Tickers: 6, Days: 300, Features: 3, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	p.Groups = nil
	path := filepath.Join(t.TempDir(), "nogroups.h5")
	if err := loader.WritePanel(path, p); err != nil {
		t.Fatal(err)
	}
	ds, err := loader.Open(path, loader.Options{SeqLen: stSeqLen, ValSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	st := Strategy{Stratify: "sector"}
	err = st.Prepare(ds, ds.Split("train"))
	if err == nil || !strings.Contains(option.CommandLine(err).Error(), "has no sector labels") || !strings.Contains(option.CommandLine(err).Error(), "--stratify ticker") {
		t.Fatalf("stratify sector without groups: %v", err)
	}
	st = Strategy{Stratify: "ticker"}
	if err := st.Prepare(ds, ds.Split("train")); err != nil {
		t.Fatalf("stratify ticker needs no groups: %v", err)
	}
}

func TestStrategyStratumShare(t *testing.T) {
	ds, train := stOpen(t)
	st := stPrepared(t, Strategy{Stratify: "sector"}, ds, train, Config{SampleSize: 220, TopK: 20})
	ids := st.Sample(ds, train, 220, rand.New(rand.NewSource(1)))
	// Score: sector index, so the top 20 are the Sector10 sequences (20 of them).
	groups := ds.Groups()
	scores := make([]float64, len(ids))
	for i, id := range ids {
		g, _ := strconv.Atoi(strings.TrimPrefix(groups[id.Ticker], "Sector"))
		scores[i] = float64(g) + 0.001*float64(i)
	}
	sel := st.Select(ids, Scores{Expected: scores}, 20, rand.New(rand.NewSource(1)))
	if len(sel.StratumShare) != 11 {
		t.Fatalf("shares for %d strata, want all 11: %v", len(sel.StratumShare), sel.StratumShare)
	}
	if sel.StratumShare["Sector10"] != 1 || sel.StratumShare["Sector00"] != 0 {
		t.Fatalf("shares %v: want Sector10 = 1, the rest 0", sel.StratumShare)
	}
}

func TestStrategyTopKSchedule(t *testing.T) {
	c := Config{SampleSize: 1000, TopK: 7, Iterations: 5}
	for _, tc := range []struct {
		spec string
		want []int
	}{
		{"linear:1%:5%", []int{10, 20, 30, 40, 50}},
		{"linear:50:10", []int{50, 40, 30, 20, 10}},
		{"linear:1%:2%", []int{10, 13, 15, 18, 20}},
		{"step:10@1,30@3", []int{10, 10, 30, 30, 30}},
		{"step:2.5%@4", []int{7, 7, 7, 25, 25}},
		{"linear:100%:100%", []int{1000, 1000, 1000, 1000, 1000}},
	} {
		st := Strategy{TopKSchedule: tc.spec}
		if err := st.Validate(c); err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		var got []int
		for it := 1; it <= c.Iterations; it++ {
			got = append(got, st.K(c, it))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: k per iteration %v, want %v", tc.spec, got, tc.want)
		}
	}
	one := c
	one.Iterations = 1
	if k := (Strategy{TopKSchedule: "linear:3:9"}).K(one, 1); k != 3 {
		t.Errorf("one iteration: k %d, want the start value 3", k)
	}
	for _, bad := range []string{"linear:0%:5%", "linear:5", "linear:1:2:3", "step:", "step:5@3,6@2", "step:5", "linear:1:2000", "cosine:1:2", "linear:101%:2%"} {
		if err := (Strategy{TopKSchedule: bad}).Validate(c); err == nil || !strings.Contains(option.CommandLine(err).Error(), "--top-k-schedule") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestStrategyValidateCombinations(t *testing.T) {
	c := Config{SampleSize: 100, TopK: 10}
	for _, tc := range []struct {
		st   Strategy
		want string
	}{
		{Strategy{Scope: "daily"}, "--select-scope"},
		{Strategy{TopFrac: 0.1}, "--top-frac needs --select-scope per-date"},
		{Strategy{Scope: ScopePerDate, TopFrac: 1.5}, "--top-frac"},
		{Strategy{Scope: ScopePerDate, Stratify: "sector"}, "give one"},
		{Strategy{Scope: ScopePerDate, TopFrac: 0.1, TopKSchedule: "linear:1:2"}, "give one"},
		{Strategy{Stratify: "industry"}, "--stratify"},
		{Strategy{Stratify: "date-bucket:1"}, "--stratify"},
		{Strategy{ConsistencyBonus: -1}, "--consistency-bonus"},
		{Strategy{ConsistencyBonus: math.NaN()}, "--consistency-bonus"},
	} {
		if err := tc.st.Validate(c); err == nil || !strings.Contains(option.CommandLine(err).Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.st, err, tc.want)
		}
	}
	ok := Strategy{Scope: ScopePerDate, TopFrac: 0.2, NegativeK: 5, ConfidenceWeight: true, ConsistencyBonus: 0.5}
	if err := ok.Validate(c); err != nil {
		t.Fatal(err)
	}
	if n := ok.Name(); n != "selection_aware+per_date0.2+neg5+confidence+consistency0.5" {
		t.Errorf("name %q", n)
	}
}

func TestStrategyBottomKIncluded(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	scores := make([]float64, 50)
	ids := make([]loader.SeqID, 50)
	for i := range scores {
		scores[i] = rng.NormFloat64()
		ids[i] = loader.SeqID{Ticker: int32(i), Day: 100}
	}
	st := Strategy{NegativeK: 4}
	sel := st.Select(ids, Scores{Expected: scores}, 6, rng)
	if !reflect.DeepEqual(sel.Top, rank.TopK(scores, 6, nil)) {
		t.Fatalf("top %v, want %v", sel.Top, rank.TopK(scores, 6, nil))
	}
	want := append(append([]int(nil), rank.TopK(scores, 6, nil)...), rank.BottomK(scores, 4, nil)...)
	if !reflect.DeepEqual(sel.Train, want) {
		t.Fatalf("trained %v, want top 6 then bottom 4 %v", sel.Train, want)
	}
	if sel.Describe() != "top 6 + bottom 4" {
		t.Fatalf("describe %q", sel.Describe())
	}
}

// stDays builds a sample of several days' cross-sections with known scores.
func stDays(sizes []int, rng *rand.Rand) ([]loader.SeqID, []float64) {
	var ids []loader.SeqID
	var scores []float64
	for d, n := range sizes {
		for _, t := range rng.Perm(n) {
			ids = append(ids, loader.SeqID{Ticker: int32(t), Day: int32(10 * (d + 1))})
			scores = append(scores, rng.NormFloat64()+float64(d)) // later days score higher overall
		}
	}
	perm := rng.Perm(len(ids))
	outI, outS := make([]loader.SeqID, len(ids)), make([]float64, len(ids))
	for i, j := range perm {
		outI[i], outS[i] = ids[j], scores[j]
	}
	return outI, outS
}

// stRefPerDay is the reference: each day's indices ranked by score (rank.TopK,
// itself checked against a full sort).
func stRefPerDay(ids []loader.SeqID, scores []float64, lowest bool) map[int32][]int {
	by := map[int32][]int{}
	for i, id := range ids {
		by[id.Day] = append(by[id.Day], i)
	}
	for d, m := range by {
		sub := make([]float64, len(m))
		for j, i := range m {
			sub[j] = scores[i]
		}
		r := rank.TopK(sub, len(sub), nil)
		if lowest {
			r = rank.BottomK(sub, len(sub), nil)
		}
		out := make([]int, len(r))
		for j, x := range r {
			out[j] = m[x]
		}
		by[d] = out
	}
	return by
}

func TestStrategyPerDateSelection(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	ids, scores := stDays([]int{30, 30, 3, 30}, rng)
	ref := stRefPerDay(ids, scores, false)
	check := func(name string, sel []int, quota map[int32]int) {
		t.Helper()
		got := map[int32][]int{}
		for _, i := range sel {
			got[ids[i].Day] = append(got[ids[i].Day], i)
		}
		for d, q := range quota {
			if !reflect.DeepEqual(got[d], ref[d][:q]) {
				t.Errorf("%s: day %d picked %v, want its top %d %v", name, d, got[d], q, ref[d][:q])
			}
		}
	}
	// k = 20 over 4 days: 5 each, but day 30 has 3 names: its shortfall of 2
	// goes to the others (6, 6, 5 in some order -> total 20).
	st := &Strategy{Scope: ScopePerDate}
	sel := st.Select(ids, Scores{Expected: scores}, 20, rng)
	if len(sel.Top) != 20 {
		t.Fatalf("per-date top: %d selected, want 20", len(sel.Top))
	}
	quota := map[int32]int{}
	for _, i := range sel.Top {
		quota[ids[i].Day]++
	}
	if quota[30] != 3 || quota[10] < 5 || quota[10] > 6 || quota[20] < 5 || quota[40] < 5 {
		t.Fatalf("per-day counts %v", quota)
	}
	check("k/dates", sel.Top, quota)
	// A global ranking would take mostly day 40 (it scores highest overall).
	if g := rank.TopK(scores, 20, nil); len(g) == 20 {
		n40 := 0
		for _, i := range g {
			if ids[i].Day == 40 {
				n40++
			}
		}
		if n40 <= 6 {
			t.Fatalf("test data: global top-20 has only %d of day 40; per-date would not differ", n40)
		}
	}
	// --top-frac 0.2: round(0.2 x 30) = 6 per full day, max(1, round(0.6)) = 1 of day 30.
	st = &Strategy{Scope: ScopePerDate, TopFrac: 0.2}
	sel = st.Select(ids, Scores{Expected: scores}, 999, rng)
	check("top-frac", sel.Top, map[int32]int{10: 6, 20: 6, 30: 1, 40: 6})
	if len(sel.Top) != 19 {
		t.Fatalf("top-frac: %d selected, want 19", len(sel.Top))
	}
	// Negative mining per date: the bottom of each day.
	st = &Strategy{Scope: ScopePerDate, NegativeK: 8}
	sel = st.Select(ids, Scores{Expected: scores}, 8, rng)
	// 2 per day each way; day 30 has 3 names, so its top 2 and bottom 2 share one.
	refLow := stRefPerDay(ids, scores, true)
	inTop := map[int]bool{}
	for _, i := range sel.Top {
		inTop[i] = true
	}
	want := map[int]bool{}
	for _, low := range refLow {
		for _, i := range low[:2] {
			if !inTop[i] {
				want[i] = true
			}
		}
	}
	got := map[int]bool{}
	for _, i := range sel.Train[len(sel.Top):] {
		got[i] = true
	}
	if len(sel.Top) != 8 || len(want) != 7 || !reflect.DeepEqual(got, want) {
		t.Fatalf("negative per date: added %v, want each day's bottom 2 not already in the top %v", got, want)
	}
}

func TestStrategyPerDateSample(t *testing.T) {
	ds, train := stOpen(t)
	crossSection := map[int32]int{}
	for _, id := range stAll(train) {
		crossSection[id.Day]++
	}
	st := stPrepared(t, Strategy{Scope: ScopePerDate}, ds, train, Config{SampleSize: 130, TopK: 10})
	if len(st.mem.days) != len(crossSection) {
		t.Fatalf("%d end days indexed, the split has %d", len(st.mem.days), len(crossSection))
	}
	ids := st.Sample(ds, train, 130, rand.New(rand.NewSource(4)))
	if len(ids) != 130 {
		t.Fatalf("%d drawn, want 130", len(ids))
	}
	stCheckDistinctValid(t, ids, train)
	got := map[int32]int{}
	var order []int32
	for _, id := range ids {
		if got[id.Day] == 0 {
			order = append(order, id.Day)
		}
		got[id.Day]++
	}
	// Every day but the last drawn is a whole cross-section; days are contiguous blocks.
	for j, d := range order {
		if j < len(order)-1 && got[d] != crossSection[d] {
			t.Errorf("day %d: %d of its %d names drawn", d, got[d], crossSection[d])
		}
	}
	if len(order) < 6 || len(order) > 8 {
		t.Fatalf("%d days for 130 sequences of ~20 names a day", len(order))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i].Day != ids[i-1].Day && got[ids[i-1].Day] == 0 {
			t.Fatal("days not in blocks")
		}
	}
	// Different iterations draw different days.
	again := st.Sample(ds, train, 130, rand.New(rand.NewSource(5)))
	if again[0].Day == ids[0].Day && again[len(again)-1].Day == ids[len(ids)-1].Day {
		t.Error("two seeds drew the same days")
	}
}

// stLogits is scores whose sequence i has the bin logits rows[i] on the
// ranked horizon (expected returns: zero).
func stLogits(rows [][]float32) Scores {
	sc := Scores{Expected: make([]float64, len(rows))}
	for _, r := range rows {
		sc.Logits = append(sc.Logits, r...)
	}
	return sc
}

func TestStrategyConfidenceWeights(t *testing.T) {
	ln3 := float32(math.Log(3))
	rows := [][]float32{
		{0, 0, 0, 0},      // uniform: confidence 0 (floored)
		{0, 0, 0, 20},     // nearly certain
		{0, 0, ln3, ln3},  // two bins at 3/8, two at 1/8
		{5, 5, 5, 5 + 20}, // shift-invariant: as row 1
	}
	sc := stLogits(rows)
	conf := sc.Confidence()
	p := []float64{1.0 / 8, 1.0 / 8, 3.0 / 8, 3.0 / 8}
	var ent float64
	for _, q := range p {
		ent -= q * math.Log(q)
	}
	want2 := 1 - ent/math.Log(4)
	if conf[0] != minConfidence || math.Abs(conf[1]-1) > 1e-6 || math.Abs(conf[2]-want2) > 1e-6 || math.Abs(conf[3]-conf[1]) > 1e-12 {
		t.Fatalf("confidence %v, want [1e-6, ~1, %.6f, ~1]", conf, want2)
	}
	if c := (Scores{Expected: make([]float64, 4)}).Confidence(); c != nil {
		t.Fatalf("no logits: confidence %v, want nil", c)
	}
	st := &Strategy{ConfidenceWeight: true}
	sel := Selection{Top: []int{2, 0, 1}, Train: []int{2, 0, 1}}
	w := st.Weights(sel, sc)
	if len(w) != 3 || !(w[2] > w[0] && w[0] > w[1]) {
		t.Fatalf("weights %v for confidences %v: more confident must weigh more", w, []float64{conf[2], conf[0], conf[1]})
	}
}

func TestStrategyConsistencyBonus(t *testing.T) {
	ids := make([]loader.SeqID, 10)
	for i := range ids {
		ids[i] = loader.SeqID{Ticker: int32(i), Day: 7}
	}
	score := func(top ...int) []float64 {
		s := make([]float64, len(ids))
		for r, i := range top {
			s[i] = float64(10 - r)
		}
		return s
	}
	st := &Strategy{ConsistencyBonus: 0.5}
	rng := rand.New(rand.NewSource(1))
	weights := func(sample []loader.SeqID, scores []float64) map[int32]float32 {
		sc := Scores{Expected: scores}
		sel := st.Select(sample, sc, 3, rng)
		w := st.Weights(sel, sc)
		out := map[int32]float32{}
		for j, i := range sel.Train {
			out[sample[i].Ticker] = w[j]
		}
		return out
	}
	// Iteration 1: {0,1,2} selected, all new: weight 1.
	if w := weights(ids, score(0, 1, 2)); !reflect.DeepEqual(w, map[int32]float32{0: 1, 1: 1, 2: 1}) {
		t.Fatalf("iteration 1: %v", w)
	}
	// Iteration 2: {0,1,3}: 0 and 1 repeat (1 + 0.5), 3 is new.
	if w := weights(ids, score(0, 1, 3)); !reflect.DeepEqual(w, map[int32]float32{0: 1.5, 1: 1.5, 3: 1}) {
		t.Fatalf("iteration 2: %v", w)
	}
	// Iteration 3: sequence 1 is not sampled (its streak is kept); 0 repeats
	// again (1 + 2 x 0.5); 2 was scored and not selected at iteration 2: reset.
	sample := append(append([]loader.SeqID(nil), ids[:1]...), ids[2:]...)
	s3 := score(0, 2, 3)
	s3 = append(s3[:1], s3[2:]...)
	if w := weights(sample, s3); !reflect.DeepEqual(w, map[int32]float32{0: 2, 2: 1, 3: 1.5}) {
		t.Fatalf("iteration 3: %v", w)
	}
	// Iteration 4: 1 is back and selected: its streak of 2 continues.
	if w := weights(ids, score(1, 0, 9)); !reflect.DeepEqual(w, map[int32]float32{1: 2, 0: 2.5, 9: 1}) {
		t.Fatalf("iteration 4: %v", w)
	}
	// Memory holds only current streaks.
	if len(st.mem.streak) != 3 {
		t.Fatalf("streak map holds %d entries: %v", len(st.mem.streak), st.mem.streak)
	}
	// Extras (here: mix-random) train at the base weight 1; combined with
	// confidence the weights multiply.
	st2 := &Strategy{ConsistencyBonus: 1, ConfidenceWeight: true}
	sc := stLogits([][]float32{{0, 9}, {0, 9}, {0, 0}})
	sc.Expected = []float64{3, 2, 1}
	three := ids[:3]
	st2.Select(three, sc, 2, rng)
	sel := st2.Select(three, sc, 1, rng)
	w := st2.Weights(sel, sc)
	conf := sc.Confidence()
	if len(w) != 1 || math.Abs(float64(w[0])-2*conf[0]) > 1e-6 {
		t.Fatalf("combined weight %v, want 2 x confidence %v", w, conf[0])
	}
}

// TestRiskAdjustedRanking: RankBy risk-adjusted ranks by (E[r] - 1)/σ. Four
// names: the largest E[r] has the widest distribution and loses to a smaller,
// surer forecast; a name without a σ is never preferred; the plain method
// ranks by E[r]. PredictedSigma is the standard deviation of the softmax
// over the bin centers, by hand for two bins.
func TestRiskAdjustedRanking(t *testing.T) {
	ids := []loader.SeqID{{Ticker: 0, Day: 5}, {Ticker: 1, Day: 5}, {Ticker: 2, Day: 5}, {Ticker: 3, Day: 5}}
	sc := Scores{Expected: []float64{1.030, 1.010, 1.012, 1.050}, Sigma: []float64{0.06, 0.004, 0.008, 0}}
	// keys: 0.5, 2.5, 1.5, -Inf (σ 0)
	st := Strategy{RankBy: RankRiskAdjusted}
	if err := st.Validate(Config{SampleSize: 4, TopK: 2}); err != nil {
		t.Fatal(err)
	}
	if got := st.Select(ids, sc, 2, rand.New(rand.NewSource(1))).Top; !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("risk-adjusted top 2 = %v, want [1 2]", got)
	}
	var plain Strategy
	if got := plain.Select(ids, sc, 2, rand.New(rand.NewSource(1))).Top; !reflect.DeepEqual(got, []int{3, 0}) {
		t.Errorf("expected-return top 2 = %v, want [3 0]", got)
	}
	if !st.NeedsSigma() || plain.NeedsSigma() || st.Name() != "selection_aware+risk_adjusted" {
		t.Errorf("NeedsSigma %v/%v, name %q", st.NeedsSigma(), plain.NeedsSigma(), st.Name())
	}
	if err := (Strategy{RankBy: RankRiskAdjusted, SelectBy: "loss"}).Validate(Config{SampleSize: 4, TopK: 2}); err == nil {
		t.Error("risk-adjusted ranking with select-by loss must be refused")
	}
	if err := (Strategy{RankBy: "sharpe"}).Validate(Config{SampleSize: 4, TopK: 2}); err == nil {
		t.Error("an unknown rank-by must be refused")
	}
	// Two bins, centers 0.9 and 1.1, logits 0 and ln 3: p = (1/4, 3/4),
	// E = 1.05, E[c²] = (0.81 + 3·1.21)/4 = 1.11, σ = √(1.11 − 1.1025) = √0.0075.
	got := PredictedSigma([]float32{0, float32(math.Log(3))}, []float32{0.9, 1.1}, 1)
	if want := math.Sqrt(0.0075); math.Abs(got[0]-want) > 1e-6 {
		t.Errorf("PredictedSigma = %.8f, want %.8f", got[0], want)
	}
}
