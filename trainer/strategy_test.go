package trainer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

// The selection extensions (docs/STRATEGIES.md) in the loop; their unit
// tests are in package selection, their compare arms in package compare.
// Helpers are prefixed "st".

// stRefPerDay is the reference: each day's indices ranked by score
// (selection.SelectTopKTies, exact ties only).
func stRefPerDay(ids []loader.SeqID, scores []float64) map[int32][]int {
	by := map[int32][]int{}
	for i, id := range ids {
		by[id.Day] = append(by[id.Day], i)
	}
	for d, m := range by {
		sub := make([]float64, len(m))
		subIDs := make([]loader.SeqID, len(m))
		for j, i := range m {
			sub[j], subIDs[j] = scores[i], ids[i]
		}
		r := selection.SelectTopKTies(sub, subIDs, len(sub), 0)
		out := make([]int, len(r))
		for j, x := range r {
			out[j] = m[x]
		}
		by[d] = out
	}
	return by
}

// The loop scales a batch's weights to mean 1, keeping their order.
func TestNormalizeWeights(t *testing.T) {
	if got := normalizeWeights([]float32{1, 2, 3}); !reflect.DeepEqual(got, []float32{0.5, 1, 1.5}) {
		t.Fatalf("normalized %v, want [0.5 1 1.5]", got)
	}
	nw := normalizeWeights([]float32{0.6, 1e-6, 0.9}) // confidences of a selection
	var sum float64
	for _, v := range nw {
		sum += float64(v)
	}
	if math.Abs(sum-3) > 1e-5 || !(nw[2] > nw[0] && nw[0] > nw[1]) {
		t.Fatalf("batch-normalized %v: want mean 1 and the same order", nw)
	}
	if got := normalizeWeights([]float32{0, 0}); !reflect.DeepEqual(got, []float32{1, 1}) {
		t.Fatalf("all-zero weights normalized to %v, want equal weights", got)
	}
}

// stScrape reads the labelled series name{label="..."} from a text exposition.
func stScrape(body, name string) map[string]float64 {
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[a-z_]+="([^"]*)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// TestStrategyExtensionsRun runs the loop with stratified sampling, a top-k
// schedule, confidence weighting and the consistency bonus, and checks what
// each iteration selected and exported.
func TestStrategyExtensionsRun(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), &console)
	cfg.SampleSize, cfg.NumIterations = 110, 3
	cfg.Strategy = selection.Strategy{Stratify: "sector", TopKSchedule: "linear:5:15", ConfidenceWeight: true, ConsistencyBonus: 0.5}
	cfg.MetricsAddr = ltFreeAddr(t)
	if err := cfg.Validate(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var shares []map[string]float64
	cfg.AfterIteration = func(it int) {
		_, body := runtest.HTTPGet(t, "http://"+cfg.MetricsAddr+"/metrics")
		shares = append(shares, stScrape(body, "satrain_selected_stratum_share"))
	}
	// The loop hands Weights the logits of the scored sample: one confidence
	// per scored sequence, and weights = confidence x consistency bonus
	// 1 + 0.5 s (s: the earlier consecutive selections; the unit tests check
	// the formula, this the wiring).
	weighed := 0
	testWeights = func(sel selection.Selection, sc selection.Scores, w []float32) {
		weighed++
		conf := sc.Confidence()
		if len(conf) != cfg.SampleSize || len(w) != len(sel.Train) {
			t.Errorf("weights: %d confidences for %d scored, %d weights for %d trained", len(conf), cfg.SampleSize, len(w), len(sel.Train))
			return
		}
		distinct := map[float32]bool{}
		for j, i := range sel.Train {
			s := (float64(w[j])/conf[i] - 1) / 0.5
			if math.Abs(s-math.Round(s)) > 1e-5*(1+s) || s < -1e-6 || !(conf[i] > 0 && conf[i] < 1) {
				t.Errorf("weight %v for confidence %v: not confidence x (1 + 0.5 s)", w[j], conf[i])
			}
			distinct[w[j]] = true
		}
		if len(distinct) < len(w)/2 {
			t.Errorf("weights %v: confidence should tell the sequences apart", w)
		}
	}
	defer func() { testWeights = nil }()
	res, err := RunSelectionAware(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, console.String())
	}
	if weighed != cfg.NumIterations {
		t.Fatalf("Weights called %d times", weighed)
	}
	ds, err := loader.Open(cfg.Data, loader.Options{SeqLen: cfg.Model.SeqLen, ValSize: 48, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	groups := ds.Groups()
	for i, rec := range res.Iterations {
		wantK := []int{5, 10, 15}[i]
		if len(rec.Selected) != wantK {
			t.Errorf("iteration %d: %d selected, want the schedule's %d", rec.Iteration, len(rec.Selected), wantK)
		}
		count := map[string]int{}
		for _, id := range rec.sample {
			count[groups[id.Ticker]]++
		}
		for g, n := range count {
			if n != 10 {
				t.Errorf("iteration %d: sector %s has %d of the 110 scored, want 10", rec.Iteration, g, n)
			}
		}
		sel := map[string]float64{}
		for _, id := range rec.Selected {
			sel[groups[id.Ticker]] += 1 / float64(len(rec.Selected))
		}
		var sum float64
		for g, v := range shares[i] {
			sum += v
			if math.Abs(v-sel[g]) > 1e-9 {
				t.Errorf("iteration %d: exported share of %s %v, selected %v", rec.Iteration, g, v, sel[g])
			}
		}
		if len(shares[i]) != 11 || math.Abs(sum-1) > 1e-9 {
			t.Errorf("iteration %d: shares %v (want 11 summing to 1)", rec.Iteration, shares[i])
		}
		if i > 0 && !rec.HasOverlap {
			t.Errorf("iteration %d: no overlap with the previous selection", rec.Iteration)
		}
		if !(rec.TrainLoss > 0) {
			t.Errorf("iteration %d: train loss %v", rec.Iteration, rec.TrainLoss)
		}
	}
	f, err := os.Open(filepath.Join(cfg.SaveDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["strategy"] != "selection_aware+stratify_sector+k_linear:5:15+confidence+consistency0.5" {
			t.Fatalf("metrics log strategy %v", rec["strategy"])
		}
	}
	for _, want := range []string{"stratified sample: equal counts per sector", "top-k schedule linear:5:15", "model confidence", "consistency bonus"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}
}

// TestStrategyPerDateRun runs the loop in the per-date scope: each
// iteration's sample is whole cross-sections and the selection is each
// day's best names by the scores the loop ranked on.
func TestStrategyPerDateRun(t *testing.T) {
	defer torch.LockThread()()
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), &console)
	cfg.SampleSize, cfg.TopK, cfg.NumIterations = 60, 9, 2
	cfg.Strategy = selection.Strategy{Scope: selection.ScopePerDate}
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, console.String())
	}
	for _, rec := range res.Iterations {
		if len(rec.sample) != 60 || len(rec.Selected) != 9 {
			t.Fatalf("iteration %d: %d scored, %d selected", rec.Iteration, len(rec.sample), len(rec.Selected))
		}
		ref := stRefPerDay(rec.sample, rec.scores)
		got := map[int32][]loader.SeqID{}
		for _, id := range rec.Selected {
			got[id.Day] = append(got[id.Day], id)
		}
		if len(got) < 2 {
			t.Fatalf("iteration %d: selection from %d day(s)", rec.Iteration, len(got))
		}
		for d, sel := range got {
			for j, id := range sel {
				if want := rec.sample[ref[d][j]]; id != want {
					t.Errorf("iteration %d day %d: pick %d is %v, want %v (the day's rank %d)", rec.Iteration, d, j, id, want, j)
				}
			}
		}
	}
}

// TestRiskAdjustedRun: with RankBy risk-adjusted the loop computes every
// scored sequence's predicted standard deviation from its logits and the
// ranked horizon's bin centers, and the selected top k are those with the
// largest (E[r] - 1)/σ.
func TestRiskAdjustedRun(t *testing.T) {
	defer torch.LockThread()()
	cfg := ltConfig(runtest.Panel(t, 11), t.TempDir(), nil)
	cfg.Console, cfg.Reporters = nil, []event.Reporter{}
	cfg.NumIterations = 2
	cfg.Strategy = selection.Strategy{RankBy: selection.RankRiskAdjusted}
	seen := 0
	testWeights = func(sel selection.Selection, sc selection.Scores, _ []float32) {
		seen++
		if len(sc.Sigma) != cfg.SampleSize {
			t.Errorf("%d predicted sds for %d scored sequences", len(sc.Sigma), cfg.SampleSize)
			return
		}
		key := make([]float64, len(sc.Expected))
		for i := range key {
			if !(sc.Sigma[i] > 0) {
				t.Errorf("sequence %d: predicted sd %v", i, sc.Sigma[i])
				return
			}
			key[i] = (sc.Expected[i] - 1) / sc.Sigma[i]
		}
		in := map[int]bool{}
		worstIn := math.Inf(1)
		for _, i := range sel.Top {
			in[i], worstIn = true, math.Min(worstIn, key[i])
		}
		for i, k := range key {
			if !in[i] && k > worstIn+1e-6*math.Abs(worstIn)+1e-12 {
				t.Errorf("sequence %d (key %.6g) left out while a selected one has %.6g", i, k, worstIn)
				return
			}
		}
	}
	defer func() { testWeights = nil }()
	if _, err := RunSelectionAware(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if seen != cfg.NumIterations {
		t.Fatalf("saw %d selections, want %d", seen, cfg.NumIterations)
	}
}
