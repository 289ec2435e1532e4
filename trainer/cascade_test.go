package trainer

import (
	"context"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
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
					plantedScorer{cheap, &cheapAsked}, plantedScorer{truth, &refAsked}, k, m)
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

// Ties break as in the single pass (to the lower sample index), even when the
// cheap pass orders the tied candidates differently.
func TestCascadeTiesBreakLikeSinglePass(t *testing.T) {
	const n, k, m = 60, 5, 20
	truth, cheap := make([]float64, n), make([]float64, n)
	for i := range truth {
		truth[i] = float64(i%3) * 0.1
		if i >= 20 && i < 40 {
			truth[i] = 1 // 20 tied leaders
		}
		cheap[i] = truth[i] + 1e-3*float64(n-i) // cheap ranks the tied ones in reverse
	}
	var a, b int
	res, err := Cascade(context.Background(), plantedIDs(n), plantedScorer{cheap, &a}, plantedScorer{truth, &b}, k, m)
	if err != nil {
		t.Fatal(err)
	}
	if want := SelectTopK(truth, k); !slices.Equal(res.Top, want) {
		t.Fatalf("cascade selected %v, single pass %v", res.Top, want)
	}
	if !slices.IsSorted(res.Candidates) {
		t.Fatalf("candidates %v not in sample order", res.Candidates)
	}
	if _, err := Cascade(context.Background(), plantedIDs(n), plantedScorer{cheap, &a}, plantedScorer{truth, &b}, k, k-1); err == nil {
		t.Fatal("m < k must be refused")
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
		{ScoreConfig{Precision: "fp8"}, PrecisionBF16, "--score-precision fp8: this build has no FP8 scoring path"},
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
		case c.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), c.wantErr)):
			t.Errorf("%+v (reference %s): error %v, want %q", c.cfg, c.ref, err, c.wantErr)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%+v: error is not one line: %q", c.cfg, err)
		}
	}
	if ReferencePrecision(StepConfig{UseAMP: true}) != PrecisionBF16 || ReferencePrecision(StepConfig{}) != PrecisionFP32 ||
		ReferencePrecision(StepConfig{UseAMP: true, AMPDType: "fp16"}) != PrecisionFP16 {
		t.Fatal("reference precision: --use-amp is bf16 (fp16 with --amp-dtype fp16), otherwise fp32")
	}
	if (ScoreConfig{Precision: "bf16"}).Active(PrecisionBF16) || !(ScoreConfig{Precision: "bf16"}).Active(PrecisionFP32) || (ScoreConfig{}).Active(PrecisionFP32) {
		t.Fatal("the cascade runs only for a cheap precision that differs from the reference")
	}
	for _, c := range []struct{ rescore, k, n, want int }{{0, 100, 10000, 400}, {0, 100, 250, 250}, {150, 100, 10000, 150}, {0, 3, 5, 5}} {
		if got := (ScoreConfig{Precision: "bf16", RescoreTop: c.rescore}).M(c.k, c.n); got != c.want {
			t.Errorf("M(rescore %d, k %d, n %d) = %d, want %d", c.rescore, c.k, c.n, got, c.want)
		}
	}
}

// The cascade with the model itself: bf16 autocast (the cheap pass) against
// float32 (the reference) on a synthetic panel, a tiny model, 8 samples of
// 240 sequences, k = 8, M = 4k. The engine scores one sequence per call, so a
// sequence's score does not depend on its batch. Whenever the float32 top-k
// lies inside the bf16 top-M, the selections are equal; the rate is logged.
func TestCascadeEngineScorersBF16VsFP32(t *testing.T) {
	defer torch.LockThread()()
	ds, err := loader.Open(ltData(t), loader.Options{SeqLen: 16, ValSize: 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cfg := ModelConfig{NumFeatures: ds.NumFeatures(), HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: len(ds.Horizons()),
		NumBins: 10, SeqLen: 16}
	m, err := NewModel(cfg, torch.CPU, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	e, err := NewEngine(m, StepConfig{LR: 1e-3}, ds.BinCenters(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	cheap := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: PrecisionBF16}
	ref := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: PrecisionFP32}
	const samples, n, k = 8, 240, 8
	contained := 0
	for i := 0; i < samples; i++ {
		ids := ds.Split("train").Sample(n, rand.New(rand.NewSource(int64(i))))
		check, res, err := MeasureCascade(context.Background(), ids, cheap, ref, k, DefaultRescoreFactor*k)
		if err != nil {
			t.Fatal(err)
		}
		cand := make([]float64, len(res.Candidates))
		for j, c := range res.Candidates {
			cand[j] = res.Cheap[c]
		}
		if slices.Equal(cand, res.Rescored) {
			t.Fatal("the bf16 pass gave float32's scores: autocast did not take effect")
		}
		if check.AllContained() {
			contained++
			if !check.Equal {
				t.Fatalf("sample %d: float32 top-%d inside the bf16 top-%d, but the cascade selected another set", i, k, check.M)
			}
		}
	}
	if e.ampOn {
		t.Fatal("the scorer left autocast switched on")
	}
	// The loop's hook: the engine's own precision (float32 here) as the reference.
	ids := ds.Split("train").Sample(n, rand.New(rand.NewSource(99)))
	want, err := Cascade(context.Background(), ids, cheap, ref, k, DefaultRescoreFactor*k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.ScoreCascade(context.Background(), ds, ids, 1, ScoreConfig{Precision: PrecisionBF16}, k)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Top, want.Top) || !slices.Equal(got.Candidates, want.Candidates) || !slices.Equal(got.Rescored, want.Rescored) {
		t.Fatalf("ScoreCascade selected %v from %d candidates, the explicit cascade %v from %d", got.Top, len(got.Candidates), want.Top, len(want.Candidates))
	}
	t.Logf("float32 top-%d inside the bf16 top-%d in %d of %d samples", k, DefaultRescoreFactor*k, contained, samples)
}
