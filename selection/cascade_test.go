package selection

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
)

// plantedScorer scores sequence i (its Day field) with score[i]; it counts
// the sequences it was asked for.
type plantedScorer struct {
	score []float64
	asked *int
}

func (p plantedScorer) Score(_ context.Context, ids []loader.SeqID) ([]float64, error) {
	out := make([]float64, len(ids))
	for i, id := range ids {
		out[i] = p.score[id.Day]
	}
	*p.asked += len(ids)
	return out, nil
}

// bf16 rounds to the nearest bfloat16 (ties to even), the rounding a bf16
// scoring pass applies to its outputs.
func bf16(v float64) float64 {
	b := math.Float32bits(float32(v))
	b += 0x7fff + (b>>16)&1
	return float64(math.Float32frombits(b &^ 0xffff))
}

func plantedIDs(n int) []loader.SeqID {
	ids := make([]loader.SeqID, n)
	for i := range ids {
		ids[i] = loader.SeqID{Ticker: int32(i % 7), Day: int32(i)}
	}
	return ids
}

// The cascade against the single reference pass on a planted ranking: true
// scores N(0,1) for 10,000 sequences, k = 100, and two cheap stand-ins, the
// true score rounded to bfloat16 and the true score plus Gaussian noise
// (σ = 0.05). For M in {k, 2k, 4k} over 100 samples it checks:
//   - whenever the reference top-k lies inside the cheap top-M, the cascade
//     selects exactly the reference top-k, in order;
//   - containment where the mathematics guarantees it: with δ the largest
//     |cheap − true| of the sample, s_(k) − s_(M) > 2δ leaves at most M−1
//     sequences able to outscore a top-k one in the cheap pass;
//   - containment only grows with M (the cheap top-M sets are nested);
//   - with noise and M = k, containment fails in some samples (the check can fail).
//
// Only M sequences are rescored.
func TestCascadeEqualsReferenceWhenContained(t *testing.T) {
	const n, k, trials = 10000, 100, 100
	ms := []int{k, 2 * k, DefaultRescoreFactor * k}
	ids := plantedIDs(n)
	for _, stand := range []struct {
		name  string
		cheap func(s float64, rng *rand.Rand) float64
	}{
		{"bf16-rounded", func(s float64, _ *rand.Rand) float64 { return bf16(s) }},
		{"noisy", func(s float64, rng *rand.Rand) float64 { return s + 0.05*rng.NormFloat64() }},
	} {
		contained := make([]int, len(ms))
		guaranteed := make([]int, len(ms))
		for trial := 0; trial < trials; trial++ {
			rng := rand.New(rand.NewSource(int64(1000 + trial)))
			truth, cheap := make([]float64, n), make([]float64, n)
			delta := 0.0
			for i := range truth {
				truth[i] = rng.NormFloat64()
				cheap[i] = stand.cheap(truth[i], rng)
				delta = math.Max(delta, math.Abs(cheap[i]-truth[i]))
			}
			sorted := append([]float64(nil), truth...)
			sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
			prev := -1
			for j, m := range ms {
				var cheapAsked, refAsked int
				check, res, err := MeasureCascade(context.Background(), ids,
					plantedScorer{cheap, &cheapAsked}, plantedScorer{truth, &refAsked}, k, m, 0)
				if err != nil {
					t.Fatal(err)
				}
				if cheapAsked != n || refAsked != m+n || len(res.Candidates) != m || len(res.Top) != k {
					t.Fatalf("%s M=%d: cheap scored %d, reference %d (want %d: M rescored + the check's full pass); %d candidates, %d selected",
						stand.name, m, cheapAsked, refAsked, m+n, len(res.Candidates), len(res.Top))
				}
				if check.AllContained() && !check.Equal {
					t.Fatalf("%s M=%d trial %d: reference top-k inside the cheap top-M, but the cascade selected another set", stand.name, m, trial)
				}
				if sorted[k-1]-sorted[m-1] > 2*delta {
					guaranteed[j]++
					if !check.AllContained() {
						t.Fatalf("%s M=%d trial %d: s_(k) - s_(M) = %.4g > 2δ = %.4g, yet only %d of %d contained",
							stand.name, m, trial, sorted[k-1]-sorted[m-1], 2*delta, check.Contained, k)
					}
				}
				if check.Contained < prev {
					t.Fatalf("%s trial %d: containment fell from %d to %d as M grew to %d", stand.name, trial, prev, check.Contained, m)
				}
				prev = check.Contained
				if check.AllContained() {
					contained[j]++
				}
			}
		}
		for j, m := range ms {
			t.Logf("%s: M=%d: reference top-%d inside the cheap top-M in %d of %d samples (guaranteed in %d)",
				stand.name, m, k, contained[j], trials, guaranteed[j])
		}
		if stand.name == "noisy" && contained[0] == trials {
			t.Fatalf("noisy stand-in: the reference top-k was inside the cheap top-k in every sample; the check cannot fail")
		}
		if guaranteed[len(ms)-1] != trials {
			t.Fatalf("%s: containment guaranteed at M=4k in only %d of %d samples; the planted gap is too small for this test", stand.name, guaranteed[len(ms)-1], trials)
		}
	}
}

// Ties break as in the single pass (SelectTopKTies: the lower ticker, then
// the earlier end day), even when the cheap pass orders the tied candidates
// differently: exact ties (rtol 0), and near-ties within the tolerance the
// loop uses (rtol 1e-6, scores 1 + j·1e-8), which the single pass merges.
func TestCascadeTiesBreakLikeSinglePass(t *testing.T) {
	const n, k, m = 60, 5, 20
	ids := plantedIDs(n) // ticker i%7, so the tie-break order is not the sample order
	for _, c := range []struct {
		rtol, step float64
	}{{0, 0}, {1e-6, 1e-8}} {
		truth, cheap := make([]float64, n), make([]float64, n)
		for i := range truth {
			truth[i] = float64(i%3) * 0.1
			if i >= 20 && i < 40 {
				truth[i] = 1 + c.step*float64(i-20) // 20 (near-)tied leaders
			}
			cheap[i] = truth[i] + 1e-3*float64(n-i) // cheap ranks the tied ones in reverse
		}
		var a, b int
		res, err := Cascade(context.Background(), ids, plantedScorer{cheap, &a}, plantedScorer{truth, &b}, k, m, c.rtol)
		if err != nil {
			t.Fatal(err)
		}
		want := SelectTopKTies(truth, ids, k, c.rtol)
		if !slices.Equal(res.Top, want) {
			t.Fatalf("rtol %g: cascade selected %v, single pass %v", c.rtol, res.Top, want)
		}
		// The tied leaders go by ticker, then end day: 21, 28, 35 (ticker 0), 22, 29 (ticker 1).
		if !slices.Equal(want, []int{21, 28, 35, 22, 29}) {
			t.Fatalf("rtol %g: single pass selected %v, want the tied leaders by ticker and day [21 28 35 22 29]", c.rtol, want)
		}
		if !slices.IsSorted(res.Candidates) {
			t.Fatalf("candidates %v not in sample order", res.Candidates)
		}
		// The loop's restriction of the ranking to the candidates selects the same.
		if got := SelectTopKTies(cascadeRank(truth, res.Candidates), ids, k, c.rtol); !slices.Equal(got, want) {
			t.Fatalf("rtol %g: ranking restricted to the candidates selected %v, want %v", c.rtol, got, want)
		}
	}
	var a, b int
	if _, err := Cascade(context.Background(), ids, plantedScorer{make([]float64, n), &a}, plantedScorer{make([]float64, n), &b}, k, k-1, 0); err == nil {
		t.Fatal("m < k must be refused")
	}
}

// cascadeRank, the loop's restriction: the non-candidates never enter the
// top k, even with the best scores of the sample; the candidates' order and
// ties are those of SelectTopKTies over the candidates alone.
func TestCascadeRankRestrictsToCandidates(t *testing.T) {
	const n, k = 40, 4
	ids := plantedIDs(n)
	rank := make([]float64, n)
	for i := range rank {
		rank[i] = float64(n - i) // 0 is the best of the sample
	}
	cand := []int{3, 9, 10, 17, 30, 31}
	got := SelectTopKTies(cascadeRank(rank, cand), ids, k, 1e-6)
	sub := make([]float64, len(cand))
	subIDs := make([]loader.SeqID, len(cand))
	for i, j := range cand {
		sub[i], subIDs[i] = rank[j], ids[j]
	}
	var want []int
	for _, i := range SelectTopKTies(sub, subIDs, k, 1e-6) {
		want = append(want, cand[i])
	}
	if !slices.Equal(got, want) || !slices.Equal(got, []int{3, 9, 10, 17}) {
		t.Fatalf("restricted ranking selected %v, the candidates' own top-%d %v (want [3 9 10 17])", got, k, want)
	}
	if r := cascadeRank(rank, nil); &r[0] != &rank[0] {
		t.Fatal("without candidates the ranking must be passed through")
	}
}

func TestScoreConfigValidate(t *testing.T) {
	cases := []struct {
		cfg     ScoreConfig
		ref     string
		wantErr string
	}{
		{ScoreConfig{}, PrecisionBF16, ""},
		{ScoreConfig{Precision: "bf16"}, PrecisionFP32, ""},
		{ScoreConfig{Precision: "bf16", RescoreTop: 300}, PrecisionFP32, ""},
		{ScoreConfig{Precision: "bf16"}, PrecisionBF16, ""},
		{ScoreConfig{Precision: "fp8"}, PrecisionBF16, ""},
		{ScoreConfig{Precision: "fp8", RescoreTop: 1000}, PrecisionFP32, ""},
		{ScoreConfig{Precision: "fp16"}, PrecisionBF16, `--score-precision "fp16": want fp32, bf16 or fp8`},
		{ScoreConfig{Precision: "fp32"}, PrecisionBF16, "--score-precision fp32 is not cheaper than the reference precision bf16"},
		{ScoreConfig{Precision: "bf16"}, PrecisionFP16, "--score-precision bf16 is not cheaper than the reference precision fp16"},
		{ScoreConfig{Precision: "bf16", RescoreTop: 50}, PrecisionFP32, "--rescore-top 50: want between --top-k 100 and --sample-size 10000"},
		{ScoreConfig{Precision: "bf16", RescoreTop: 20000}, PrecisionFP32, "--rescore-top 20000"},
		{ScoreConfig{RescoreTop: 400}, PrecisionFP32, "--rescore-top 400 needs --score-precision"},
	}
	for _, c := range cases {
		err := c.cfg.Validate(100, 10000, c.ref)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%+v (reference %s): %v", c.cfg, c.ref, err)
		case c.wantErr != "" && (err == nil || !strings.HasPrefix(option.CommandLine(err).Error(), c.wantErr)):
			t.Errorf("%+v (reference %s): error %v, want %q", c.cfg, c.ref, err, c.wantErr)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%+v: error is not one line: %q", c.cfg, err)
		}
	}
	if (ScoreConfig{Precision: "bf16"}).Active(PrecisionBF16) || !(ScoreConfig{Precision: "bf16"}).Active(PrecisionFP32) || (ScoreConfig{}).Active(PrecisionFP32) {
		t.Fatal("the cascade runs only for a cheap precision that differs from the reference")
	}
	for _, c := range []struct {
		st   Strategy
		want string
	}{
		{Strategy{}, ""},
		{Strategy{SelectBy: "expected", MixRandom: 0.5, Stratify: "sector", TopKSchedule: "linear:10:5", ConsistencyBonus: 0.1}, ""},
		{Strategy{SelectBy: "loss"}, "--score-precision fp8: the scoring cascade ranks by expected return over the whole sample and rescores only its top --rescore-top; it cannot be combined with --select-by loss"},
		{Strategy{SelectBy: "random"}, "with --select-by random"},
		{Strategy{Scope: ScopePerDate}, "with --select-scope per-date"},
		{Strategy{NegativeK: 3}, "with --negative-k"},
		{Strategy{ConfidenceWeight: true}, "with --confidence-weight"},
	} {
		err := (ScoreConfig{Precision: PrecisionFP8}).CheckStrategy(c.st, PrecisionFP32)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(option.CommandLine(err).Error(), c.want)) {
			t.Errorf("strategy %+v: %v, want %q", c.st, err, c.want)
		}
		// No cascade (same precision as the reference): every strategy goes.
		if err := (ScoreConfig{Precision: PrecisionFP32}).CheckStrategy(c.st, PrecisionFP32); err != nil {
			t.Errorf("strategy %+v without a cascade: %v", c.st, err)
		}
	}
	for _, c := range []struct{ rescore, k, n, want int }{{0, 100, 10000, 400}, {0, 100, 250, 250}, {150, 100, 10000, 150}, {0, 3, 5, 5}} {
		if got := (ScoreConfig{Precision: "bf16", RescoreTop: c.rescore}).M(c.k, c.n); got != c.want {
			t.Errorf("M(rescore %d, k %d, n %d) = %d, want %d", c.rescore, c.k, c.n, got, c.want)
		}
	}
}
