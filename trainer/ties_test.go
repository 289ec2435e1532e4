package trainer

import (
	"context"
	"encoding/json"
	"math"
	"math/rand"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/internal/reporttest"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

// sameFeaturesPanel writes a synthetic panel in which every ticker has ticker
// 0's features (its own returns are kept): on a date every window is the
// same input, so in exact arithmetic every name has the same score.
func sameFeaturesPanel(t *testing.T) string {
	t.Helper()
	p, err := loader.SynthPanel(loader.SynthConfig{Tickers: 12, Days: 300, Features: 4, Bins: 10, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	per := len(p.Features) / len(p.Tickers)
	for tk := 1; tk < len(p.Tickers); tk++ {
		copy(p.Features[tk*per:(tk+1)*per], p.Features[:per])
	}
	path := filepath.Join(t.TempDir(), "same.h5")
	if err := loader.WritePanel(path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestResultsIndependentOfInferenceBatch: with identical inputs per date,
// evaluation and selection give the same picks, portfolio and backtest
// figures at inference batch sizes 1, 7 and 256 (float noise from a
// sequence's place in a batch is a tie, broken by ticker then date), and IC
// and rank IC equal up to float noise (reporttest.ICNoise): what docs/METRICS.md says.
func TestResultsIndependentOfInferenceBatch(t *testing.T) {
	runtest.Lock(t)
	data := sameFeaturesPanel(t)
	cfg := evRunConfig(data, t.TempDir())
	cfg.NumIterations, cfg.ValEvery, cfg.CheckpointEvery = 2, 2, 2
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("training: %v", err)
	}
	if res.BestPath == "" {
		t.Fatal("training wrote no best checkpoint")
	}

	var reports []*backtest.Report
	var picks [][][]int
	var allScores [][]float64
	var allIDs []loader.SeqID
	for _, bs := range []int{1, 7, 256} {
		ev, err := eval.Open(eval.Options{Checkpoint: res.BestPath, Data: data, Device: torch.CPU, InferenceBatch: bs})
		if err != nil {
			t.Fatal(err)
		}
		r, err := ev.Evaluate(context.Background(), eval.Config{Split: "test", HorizonIdx: 1, Backtest: backtest.Config{TopK: 2, CostBps: 10}})
		if err != nil {
			ev.Close()
			t.Fatal(err)
		}
		reports = append(reports, r.Report)

		// Selection as the loop does it, on a sample that holds every name
		// of each of its dates (in shuffled order), so noise could reorder
		// the names of the best date.
		ids, err := eval.SplitIDs(ev.DS, "test", 0)
		if err != nil {
			ev.Close()
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(1))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		L, F, H := ev.DS.SeqLen(), ev.DS.NumFeatures(), ev.DS.NumHorizons()
		feats := make([]float32, len(ids)*L*F)
		labels := make([]int64, len(ids)*H)
		if err := ev.DS.ReadWindows(ids, feats, labels, nil); err != nil {
			ev.Close()
			t.Fatal(err)
		}
		ev.Engine().InferenceBatch = bs
		inf, err := ev.Engine().Infer(feats, labels, len(ids), L, true)
		ev.Close()
		if err != nil {
			t.Fatal(err)
		}
		scores := make([]float64, len(ids))
		for i := range ids {
			scores[i] = float64(inf.Expected[i*H+1])
		}
		allScores = append(allScores, scores)
		allIDs = ids
		var p [][]int
		for _, st := range []selection.Strategy{{}, {Scope: selection.ScopePerDate}, {SelectBy: "loss"}, {NegativeK: 5}} {
			p = append(p, st.Select(ids, rankedScores(inf, len(ids), H, 1), 10, rand.New(rand.NewSource(2))).Train)
		}
		picks = append(picks, p)
	}

	rtol := reports[0].Config.TieRTol
	if rtol <= 0 || rtol > 1e-4 {
		t.Fatalf("tie tolerance %g: want the model's rounding noise, a small positive number", rtol)
	}
	// The noise is real: some scores of one input differ between batchings
	// (else this test would prove nothing), and all are within the tolerance.
	differ := false
	for i := range allScores[0] {
		for _, s := range allScores[1:] {
			a, b := allScores[0][i], s[i]
			differ = differ || a != b
			if math.Abs(a-b) > rtol*math.Abs(a) {
				t.Fatalf("score %d: %v and %v differ by more than the tie tolerance %g", i, a, b, rtol)
			}
		}
	}
	t.Logf("tie tolerance %.3g; raw scores differ between batch sizes: %v", rtol, differ)

	r0, _ := json.Marshal(reporttest.ScoreFree(*reports[0]))
	if reports[0].IC.Dates != 0 || reports[0].RankIC.Dates != 0 {
		t.Errorf("IC over %d dates, rank IC over %d: every name of a date has the same input, so both are undefined (n/a)",
			reports[0].IC.Dates, reports[0].RankIC.Dates)
	}
	for i, bs := range []int{7, 256} {
		r := reports[i+1]
		if got, _ := json.Marshal(reporttest.ScoreFree(*r)); string(got) != string(r0) {
			t.Errorf("inference batch %d: report differs from batch 1:\n%s\n%s", bs, got, r0)
		}
		if !reporttest.SameIC(r, reports[0]) {
			t.Errorf("inference batch %d: IC %+v rank IC %+v; batch 1 IC %+v rank IC %+v (allowed difference %g)",
				bs, r.IC, r.RankIC, reports[0].IC, reports[0].RankIC, reporttest.ICNoise)
		}
		if d := math.Abs(r.Precision.TopKMeanScore - reports[0].Precision.TopKMeanScore); d > rtol*reports[0].Precision.TopKMeanScore {
			t.Errorf("inference batch %d: top-k mean score %v, batch 1 %v", bs, r.Precision.TopKMeanScore, reports[0].Precision.TopKMeanScore)
		}
		if !reflect.DeepEqual(picks[i+1], picks[0]) {
			t.Errorf("inference batch %d: selection %v, batch 1 %v", bs, picks[i+1], picks[0])
		}
	}
	// Ties go to the lower ticker: the top 10 of the global selection are
	// ten names of one date, tickers 0..9.
	for r, i := range picks[0][0][:10] {
		if got := allIDs[i]; got.Ticker != int32(r) || got.Day != allIDs[picks[0][0][0]].Day {
			t.Fatalf("selected[%d] = %+v, want ticker %d of the best date", r, got, r)
		}
	}
}
