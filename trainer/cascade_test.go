package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
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
		case c.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), c.wantErr)):
			t.Errorf("%+v (reference %s): error %v, want %q", c.cfg, c.ref, err, c.wantErr)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%+v: error is not one line: %q", c.cfg, err)
		}
	}
	if ReferencePrecision(model.StepConfig{UseAMP: true}) != PrecisionBF16 || ReferencePrecision(model.StepConfig{}) != PrecisionFP32 ||
		ReferencePrecision(model.StepConfig{UseAMP: true, AMPDType: "fp16"}) != PrecisionFP16 {
		t.Fatal("reference precision: --use-amp is bf16 (fp16 with --amp-dtype fp16), otherwise fp32")
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
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
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

// The cascade with the model itself: a cheap pass in bf16 autocast or in FP8
// (the encoder layers' matmuls through at::_scaled_mm) against float32 (the
// reference) on a synthetic panel, a tiny model, 8 samples of 240 sequences,
// k = 8, M = 4k. The engine scores one sequence per call, so a sequence's
// score does not depend on its batch (FP8 scales activations per call).
// Whenever the float32 top-k lies inside the cheap top-M, the selections are
// equal; the rate is logged. The scorer leaves the engine as it found it.
func TestCascadeEngineScorersVsFP32(t *testing.T) {
	defer torch.LockThread()()
	ds, err := loader.Open(ltData(t), loader.Options{SeqLen: 16, ValSize: 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cfg := model.Config{NumFeatures: ds.NumFeatures(), HiddenDim: 16, NumLayers: 1, NumHeads: 2, NumHorizons: len(ds.Horizons()),
		NumBins: 10, SeqLen: 16}
	m, err := model.New(cfg, torch.CPU, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	e, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, ds.BinCenters(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Free()
	ref := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: PrecisionFP32}
	for _, p := range []string{PrecisionBF16, PrecisionFP8} {
		cheap := EngineScorer{Eng: e, Data: ds, Horizon: 1, Precision: p}
		const samples, n, k = 8, 240, 8
		contained := 0
		for i := 0; i < samples; i++ {
			ids := ds.Split("train").Sample(n, rand.New(rand.NewSource(int64(i))))
			check, res, err := MeasureCascade(context.Background(), ids, cheap, ref, k, DefaultRescoreFactor*k, model.ScoreTieRTol(cfg))
			if err != nil {
				t.Fatal(err)
			}
			cand := make([]float64, len(res.Candidates))
			worst := 0.0
			for j, c := range res.Candidates {
				cand[j] = res.Cheap[c]
				worst = math.Max(worst, math.Abs(cand[j]-res.Rescored[j])/math.Abs(res.Rescored[j]))
			}
			if slices.Equal(cand, res.Rescored) {
				t.Fatalf("%s: the cheap pass gave float32's scores: it did not take effect", p)
			}
			// Expected gross returns near 1: a cheap pass off by more than
			// 1% would be broken, not coarse.
			if worst > 0.01 {
				t.Fatalf("%s: a candidate's cheap score is %.3g off its float32 score relatively", p, worst)
			}
			if check.AllContained() {
				contained++
				if !check.Equal {
					t.Fatalf("%s sample %d: float32 top-%d inside the cheap top-%d, but the cascade selected another set", p, i, k, check.M)
				}
			}
		}
		if e.AMP() != "off" || m.FP8Active() {
			t.Fatalf("%s: the scorer left autocast (%s) or the FP8 weights (%v) switched on", p, e.AMP(), m.FP8Active())
		}
		t.Logf("float32 top-%d inside the %s top-%d in %d of %d samples", k, p, DefaultRescoreFactor*k, contained, samples)
	}
}

// The cascade in the selection-aware loop (RunConfig.Score), one process:
//   - with M = the sample size every sequence is rescored in the run's
//     precision, so the run must equal the plain run bit for bit (selections
//     and losses): the hook rescored, restricted and selected like the
//     single pass, and left the engine in its own precision for training;
//   - with the default M = 4k (48 of 96) the run completes and selects k
//     distinct sequences each iteration.
func TestCascadeInSelectionAwareLoop(t *testing.T) {
	defer torch.LockThread()()
	data := ltData(t)
	run := func(sc ScoreConfig) *RunResult {
		cfg := ltConfig(data, filepath.Join(t.TempDir(), "ckpt"), nil)
		cfg.Console, cfg.Reporters = nil, []event.Reporter{}
		cfg.Score = sc
		res, err := RunSelectionAware(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%+v: %v", sc, err)
		}
		return res
	}
	plain := run(ScoreConfig{})
	calls := torch.FP8LinearCalls()
	full := run(ScoreConfig{Precision: PrecisionFP8, RescoreTop: 96})
	part := run(ScoreConfig{Precision: PrecisionFP8})
	// 3 iterations, 96 sequences in batches of 32: 9 cheap forward passes per
	// run, each with 4 FP8 linears in the one layer.
	if got := torch.FP8LinearCalls() - calls; got != 2*9*4 {
		t.Fatalf("the runs made %d FP8 linear calls, want %d: the cheap pass did not run in FP8", got, 2*9*4)
	}
	if len(plain.Iterations) != 3 || len(full.Iterations) != 3 || len(part.Iterations) != 3 {
		t.Fatalf("iterations: plain %d, cascade M=n %d, cascade M=4k %d, want 3", len(plain.Iterations), len(full.Iterations), len(part.Iterations))
	}
	for i := range plain.Iterations {
		a, b := plain.Iterations[i], full.Iterations[i]
		if !slices.Equal(a.Selected, b.Selected) || a.TrainLoss != b.TrainLoss {
			t.Fatalf("iteration %d: cascade with M = n selected %v (train loss %v), the single pass %v (%v)", i+1, b.Selected, b.TrainLoss, a.Selected, a.TrainLoss)
		}
		sel := part.Iterations[i].Selected
		if len(sel) != 12 || len(idSet(sel)) != 12 {
			t.Fatalf("iteration %d: cascade with M = 4k selected %d sequences (%d distinct), want 12", i+1, len(sel), len(idSet(sel)))
		}
	}
}

// The cascade under data parallelism: two ranks (Gloo), each scoring its
// share of the cheap pass and of the rescoring and all-gathering both, give
// the one-process run's selections and losses on every rank (M = n, so the
// selections must also equal the plain single pass). A rank issuing the
// collectives in another order would hang or fail the run.
func TestCascadeDataParallel(t *testing.T) {
	if !torch.HasBackend(torch.Gloo) {
		ltNeed(t, false, "libsatorch built without Gloo")
	}
	defer torch.LockThread()()
	data := ltData(t)
	dir := t.TempDir()
	res1, err := runKind(context.Background(), "selection-fp8", distTestConfig("selection-fp8", data, filepath.Join(dir, "world1")))
	if err != nil {
		t.Fatal(err)
	}
	want := resultOf(res1)
	plain, err := runKind(context.Background(), "selection", distTestConfig("selection", data, filepath.Join(dir, "plain")))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resultOf(plain).Selected) != fmt.Sprint(want.Selected) {
		t.Fatalf("cascade (M = n) selected %v, the plain single pass %v", want.Selected, resultOf(plain).Selected)
	}
	outs := runRanks(t, "SATRAIN_TRAINER_DIST=selection-fp8", "SATRAIN_TRAINER_DIST_DATA="+data, "SATRAIN_TRAINER_DIST_SAVE="+filepath.Join(dir, "world2"))
	for r := range outs {
		var got distRankResult
		if err := json.Unmarshal([]byte(outs[r]), &got); err != nil {
			t.Fatalf("rank %d: %v in %q", r, err, outs[r])
		}
		if fmt.Sprint(got.Selected) != fmt.Sprint(want.Selected) {
			t.Errorf("rank %d selected %v, one process %v", r, got.Selected, want.Selected)
		}
		for i := range want.TrainLoss {
			if math.Abs(got.TrainLoss[i]-want.TrainLoss[i]) > 1e-5*math.Abs(want.TrainLoss[i]) {
				t.Errorf("rank %d iteration %d train loss %.8f, one process %.8f", r, i+1, got.TrainLoss[i], want.TrainLoss[i])
			}
		}
	}
}

// BenchCascade (satrain bench-cascade) on a checkpoint of a tiny run: one
// record per iteration, the full passes alternating, and figures that agree
// with each other: MinM (the worst cheap rank of a reference top-k sequence)
// is at least k, at most M exactly when the top-k is contained; equal
// selections are equal sets; one thread scores a sequence the same in any
// batch, so the rescored scores equal the full pass's.
func TestBenchCascade(t *testing.T) {
	defer torch.LockThread()()
	data := ltData(t)
	cfg := ltConfig(data, filepath.Join(t.TempDir(), "ckpt"), nil)
	cfg.Console, cfg.Reporters = nil, []event.Reporter{}
	cfg.NumIterations = 1
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bc := CascadeBenchConfig{Eval: eval.Options{Checkpoint: res.BestPath, Data: data, Device: torch.CPU, InferenceBatch: 32, Threads: 1,
		DataOpt: cfg.DataOpt}, Cheap: PrecisionFP8, Reference: PrecisionFP32, Horizon: 1, SampleSize: 200, TopK: 10, Iterations: 3, Seed: 1}
	var its []CascadeBenchIteration
	if err := BenchCascade(context.Background(), bc, func(r CascadeBenchIteration) { its = append(its, r) }); err != nil {
		t.Fatal(err)
	}
	if len(its) != 3 {
		t.Fatalf("%d records, want 3", len(its))
	}
	for i, r := range its {
		if r.Iteration != i+1 || r.Sample != 200 || r.K != 10 || r.M != 40 || r.CheapFirst != (i%2 == 0) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if r.MinM < r.K || (r.MinM <= r.M) != (r.Contained == r.K) || (r.Equal && !r.SameSet) {
			t.Fatalf("record %d: min M %d, contained %d of %d at M %d, equal %v, same set %v", i, r.MinM, r.Contained, r.K, r.M, r.Equal, r.SameSet)
		}
		if r.RescoreDiff != 0 || r.CheapSec <= 0 || r.RefSec <= 0 || r.RescoreSec <= 0 {
			t.Fatalf("record %d: rescored scores differ from the full pass by %g; times %g %g %g", i, r.RescoreDiff, r.CheapSec, r.RefSec, r.RescoreSec)
		}
	}
	bc.Reference = PrecisionFP16
	if err := BenchCascade(context.Background(), bc, func(CascadeBenchIteration) {}); err == nil || !strings.Contains(err.Error(), `--reference "fp16": want fp32 or bf16`) {
		t.Fatalf("fp16 reference: %v", err)
	}
}
