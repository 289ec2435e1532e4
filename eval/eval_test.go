package eval

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/internal/reporttest"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/model/modeltest"
	"github.com/satrain/satrain/torch"
)

// evCheckpoint writes the checkpoint of a tiny model (seq_len 16, random
// weights from a fixed seed) fitted to a fresh synthetic panel, recording
// the panel's split dates as a training run does, and returns the data file
// and the checkpoint. Evaluation reads only what a checkpoint records, so it
// is tested without a training run.
func evCheckpoint(t *testing.T) (data, ckpt string) {
	t.Helper()
	data = runtest.Panel(t, 3)
	ds, err := loader.Open(data, loader.Options{SeqLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	mc := model.Config{HiddenDim: 16, NumLayers: 1, NumHeads: 2, Dropout: 0.1, SeqLen: 16,
		NumFeatures: ds.NumFeatures(), NumHorizons: ds.NumHorizons(), NumBins: ds.NumBins()}
	m, err := model.New(mc, torch.CPU, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	eng, err := model.NewEngine(m, model.StepConfig{LR: 1e-3}, ds.BinCenters(), 32)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Free()
	meta := checkpoint.Meta{Kind: event.KindSelectionAware, Iteration: 3, BestValLoss: 2.3, BestIteration: 3, Seed: 7,
		DataPath: data, DataIdentity: ds.Identity(), InferenceBatch: 32, Stage: checkpoint.StageSelectionAware,
		Run: map[string]string{"horizon-idx": "1"}}
	meta.TrainEnd, meta.ValEnd = ds.PeriodStarts()
	ckpt = filepath.Join(t.TempDir(), "best_model_selection_aware.pt")
	if err := checkpoint.Save(ckpt, eng, meta, false); err != nil {
		t.Fatal(err)
	}
	return data, ckpt
}

func TestEvaluateMatchesDirectScoring(t *testing.T) {
	runtest.Lock(t)
	data, ckpt := evCheckpoint(t)
	ev, err := Open(Options{Checkpoint: ckpt, Data: data, Device: torch.CPU, InferenceBatch: 37})
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if ev.DS.SeqLen() != 16 || ev.Meta.Kind != event.KindSelectionAware {
		t.Fatalf("evaluator: seq_len %d kind %q, want the checkpoint's 16, selection_aware", ev.DS.SeqLen(), ev.Meta.Kind)
	}
	const h = 1
	bt := backtest.Config{TopK: 3, CostBps: 10}
	res, err := ev.Evaluate(context.Background(), Config{Split: "test", HorizonIdx: h, Backtest: bt})
	if err != nil {
		t.Fatal(err)
	}
	test := ev.DS.Split("test")
	if int64(len(res.Predictions)) != test.Len() || test.Len() == 0 {
		t.Fatalf("%d predictions for %d test sequences", len(res.Predictions), test.Len())
	}
	if res.Horizon != 5 || res.Report.Config.HorizonDays != 5 {
		t.Fatalf("horizon %d days, report %d; want 5 (horizon index 1)", res.Horizon, res.Report.Config.HorizonDays)
	}

	// Recompute every prediction directly: windows, one Infer call with
	// logits, argmax and labels by hand.
	ids, err := SplitIDs(ev.DS, "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	n, L, F, H, B := len(ids), 16, ev.DS.NumFeatures(), ev.DS.NumHorizons(), ev.DS.NumBins()
	feats := make([]float32, n*L*F)
	labels := make([]int64, n*H)
	rets := make([]float32, n*H)
	if err := ev.DS.ReadWindows(ids, feats, labels, rets); err != nil {
		t.Fatal(err)
	}
	out, err := ev.eng.Infer(feats, labels, n, L, true)
	if err != nil {
		t.Fatal(err)
	}
	dates := ev.DS.Dates()
	want := make([]backtest.Prediction, n)
	for i, id := range ids {
		row := out.Logits[(i*H+h)*B : (i*H+h+1)*B]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		want[i] = backtest.Prediction{Ticker: id.Ticker, Date: dates[id.Day], Score: float64(out.Expected[i*H+h]),
			Realized: float64(rets[i*H+h]), Loss: float64(out.Loss[i]), Correct: int64(best) == labels[i*H+h]}
	}
	// Same weights, possibly other batching: scores and losses agree to the
	// rounding bound of the forward pass.
	dz := modeltest.LogitBound(ev.eng.Model.Cfg, modeltest.MaxAbs32(out.Logits))
	scoreTol := modeltest.ScoreBound(dz, ev.DS.BinCenters())
	correct := 0
	for i, p := range res.Predictions {
		w := want[i]
		if p.Ticker != w.Ticker || p.Date != w.Date || p.Realized != w.Realized || p.Correct != w.Correct ||
			math.Abs(p.Score-w.Score) > scoreTol || math.Abs(p.Loss-w.Loss) > modeltest.LossBound(dz, B, w.Loss) {
			t.Fatalf("prediction %d = %+v, direct scoring gives %+v", i, p, w)
		}
		if p.Realized <= 0 || p.Score <= 0 || math.IsNaN(p.Loss) {
			t.Fatalf("prediction %d = %+v: want positive gross returns and a known loss", i, p)
		}
		if p.Correct {
			correct++
		}
	}
	// The report is backtest.Evaluate of the directly scored predictions
	// under the same tie rule: figures that depend on picks and ranks are
	// identical (scores within the tie tolerance tie), means of raw scores and
	// losses agree to their rounding bounds.
	bt.HorizonDays = 5
	bt.TieRTol = res.Report.Config.TieRTol
	groups := ev.DS.Groups() // the report's picks are compared with their sectors too
	if len(groups) == 0 {
		t.Fatal("the synthetic panel has no groups: the group-neutral excess goes untested here")
	}
	dayOf := map[int32]int{}
	for d, date := range ev.DS.Dates() {
		dayOf[date] = d
	}
	for i := range want {
		want[i].Group = groups[want[i].Ticker]
		want[i].Vol, _ = ev.DS.TrailingVolatility(int(want[i].Ticker), dayOf[want[i].Date], VolWindowDays)
		want[i].Sigma = res.Predictions[i].Sigma // checked against the probabilities in TestRiskAdjustedAndVolatility
	}
	if want := model.ScoreTieRTol(ev.eng.Model.Cfg); bt.TieRTol != want || want <= 0 {
		t.Fatalf("report's tie tolerance %g, want the model's %g", bt.TieRTol, want)
	}
	direct, err := backtest.Evaluate(want, bt)
	if err != nil {
		t.Fatal(err)
	}
	direct.Exposure.VolWindowDays = VolWindowDays
	a, _ := json.Marshal(reporttest.ScoreFree(*res.Report))
	b, _ := json.Marshal(reporttest.ScoreFree(*direct))
	if !bytes.Equal(a, b) {
		t.Fatalf("report differs from a direct backtest.Evaluate:\n%s\n%s", a, b)
	}
	if d := math.Abs(res.Report.All.Loss - direct.All.Loss); d > modeltest.LossBound(dz, B, direct.All.Loss) {
		t.Fatalf("mean loss %v, direct %v", res.Report.All.Loss, direct.All.Loss)
	}
	if d := math.Abs(res.Report.Precision.TopKMeanScore - direct.Precision.TopKMeanScore); d > scoreTol {
		t.Fatalf("top-k mean score %v, direct %v", res.Report.Precision.TopKMeanScore, direct.Precision.TopKMeanScore)
	}
	r := res.Report
	if r.NumPredictions != n || r.All.Count != n || r.TopK.Count != 3*r.NumDates || r.NumTickers != 20 {
		t.Fatalf("report counts: %d predictions, %d all, %d top-k over %d dates, %d tickers", r.NumPredictions, r.All.Count, r.TopK.Count, r.NumDates, r.NumTickers)
	}
	if got := r.All.Accuracy; math.Abs(got-float64(correct)/float64(n)) > 1e-12 {
		t.Fatalf("accuracy %v, want %v", got, float64(correct)/float64(n))
	}
	var lossSum float64
	for _, l := range out.Loss {
		lossSum += float64(l)
	}
	if math.Abs(r.All.Loss-lossSum/float64(n)) > modeltest.LossBound(dz, B, r.All.Loss) || r.All.Loss < 1 || r.All.Loss > 4 {
		t.Fatalf("mean loss %v, direct %v (10 bins: expect about ln 10 = 2.3)", r.All.Loss, lossSum/float64(n))
	}

	// --max-dates keeps a contiguous block of the first N days.
	res5, err := ev.Evaluate(context.Background(), Config{Split: "test", HorizonIdx: h, MaxDates: 5, Backtest: bt})
	if err != nil {
		t.Fatal(err)
	}
	if res5.Report.NumDates != 5 || res5.Report.FirstDate != r.FirstDate || res5.Report.LastDate != r.Dates[4].Date {
		t.Fatalf("max-dates 5: %d dates %s..%s, want the first 5 of %s..", res5.Report.NumDates, res5.Report.FirstDate, res5.Report.LastDate, r.FirstDate)
	}
	for _, p := range res5.Predictions {
		if backtest.Date(p.Date) > r.Dates[4].Date {
			t.Fatalf("max-dates 5: prediction dated %d after the 5th day %s", p.Date, r.Dates[4].Date)
		}
	}

	// Errors name the problem.
	if _, err := ev.Evaluate(context.Background(), Config{HorizonIdx: 4}); err == nil || !strings.Contains(err.Error(), "horizon index 4 out of range") {
		t.Fatalf("horizon 4: err %v", err)
	}
	if _, err := ev.Evaluate(context.Background(), Config{Split: "holdout"}); err == nil || !strings.Contains(err.Error(), `split "holdout": want train, val or test`) {
		t.Fatalf("split holdout: err %v", err)
	}
	if _, err := Open(Options{Checkpoint: filepath.Join(t.TempDir(), "none.pt"), Data: data}); err == nil || !strings.Contains(err.Error(), "none.pt") {
		t.Fatalf("missing checkpoint: err %v", err)
	}
}

func TestWritePredictionsCSV(t *testing.T) {
	runtest.Lock(t)
	data, ckpt := evCheckpoint(t)
	ev, err := Open(Options{Checkpoint: ckpt, Data: data, Device: torch.CPU, InferenceBatch: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ids, err := SplitIDs(ev.DS, "val", 0)
	if err != nil {
		t.Fatal(err)
	}
	preds, err := ev.Predictions(context.Background(), ids, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, probs := range []bool{false, true} {
		var buf bytes.Buffer
		n, err := ev.WritePredictions(context.Background(), ids, &buf, probs)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		wantHdr := []string{"ticker", "date", "er_1d", "er_5d", "er_10d", "er_20d", "realized_1d", "realized_5d", "realized_10d", "realized_20d",
			"label_1d", "label_5d", "label_10d", "label_20d"}
		if probs {
			wantHdr = append(wantHdr, "p_1d_b0", "p_1d_b1")
		}
		if n != len(ids) || len(recs) != len(ids)+1 || !reflect.DeepEqual(recs[0][:len(wantHdr)], wantHdr) {
			t.Fatalf("probs=%v: %d rows (%d records), header %v; want %d rows, header %v...", probs, n, len(recs), recs[0], len(ids), wantHdr)
		}
		cols := 14
		if probs {
			cols += 4 * 10
		}
		tickers, dates := ev.DS.Tickers(), ev.DS.Dates()
		for i, rec := range recs[1:] {
			if len(rec) != cols {
				t.Fatalf("row %d has %d columns, want %d", i, len(rec), cols)
			}
			d := dates[ids[i].Day]
			wantDate := time.Date(int(d/10000), time.Month(d/100%100), int(d%100), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
			if rec[0] != tickers[ids[i].Ticker] || rec[1] != wantDate {
				t.Fatalf("row %d: %s %s, want %s %d", i, rec[0], rec[1], tickers[ids[i].Ticker], d)
			}
			// er_10d equals the Score of the horizon-2 prediction.
			er, err := strconv.ParseFloat(rec[4], 32)
			if err != nil || float32(er) != float32(preds[i].Score) {
				t.Fatalf("row %d: er_10d %q, prediction score %v", i, rec[4], preds[i].Score)
			}
			// realized_10d is the realized return the evaluation uses.
			re, err := strconv.ParseFloat(rec[8], 32)
			if err != nil || float32(re) != float32(preds[i].Realized) {
				t.Fatalf("row %d: realized_10d %q, prediction realized %v", i, rec[8], preds[i].Realized)
			}
			for h := 0; h < 4; h++ {
				if b, err := strconv.Atoi(rec[10+h]); err != nil || b < 0 || b >= 10 {
					t.Fatalf("row %d: label %q", i, rec[10+h])
				}
			}
			if probs {
				for h := 0; h < 4; h++ {
					var sum float64
					for b := 0; b < 10; b++ {
						p, err := strconv.ParseFloat(rec[14+h*10+b], 64)
						if err != nil || p < 0 || p > 1 {
							t.Fatalf("row %d: probability %q", i, rec[14+h*10+b])
						}
						sum += p
					}
					if math.Abs(sum-1) > 1e-5 {
						t.Fatalf("row %d horizon %d: probabilities sum to %v", i, h, sum)
					}
				}
			}
		}
	}
}

func TestSoftmax(t *testing.T) {
	dst := make([]float32, 3)
	softmax([]float32{0, float32(math.Log(2)), float32(math.Log(5))}, dst)
	for i, w := range []float64{0.125, 0.25, 0.625} {
		if math.Abs(float64(dst[i])-w) > 1e-6 {
			t.Fatalf("softmax = %v, want [0.125 0.25 0.625]", dst)
		}
	}
	softmax([]float32{1000, 1000}, dst[:2]) // no overflow
	if dst[0] != 0.5 || dst[1] != 0.5 {
		t.Fatalf("softmax of large equal logits = %v", dst[:2])
	}
}

// TestRiskAdjustedAndVolatility: with RankBy risk-adjusted each score is
// (E[r] - 1)/σ, σ computed here from the bin probabilities that predict
// writes and the panel's bin centers; and Evaluate attaches to every
// prediction the panel's trailing volatility of its ticker at its decision
// day, which the report's exposure figures use.
func TestRiskAdjustedAndVolatility(t *testing.T) {
	runtest.Lock(t)
	data, ckpt := evCheckpoint(t)
	ev, err := Open(Options{Checkpoint: ckpt, Data: data, Device: torch.CPU, InferenceBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ids, err := SplitIDs(ev.DS, "test", 5)
	if err != nil {
		t.Fatal(err)
	}
	const h = 1
	preds, err := ev.Predictions(context.Background(), ids, h, "risk-adjusted")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := ev.WritePredictions(context.Background(), ids, &buf, true); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	centers := ev.DS.BinCenters()[h]
	B := len(centers)
	for i, rec := range recs[1:] {
		er, _ := strconv.ParseFloat(rec[2+h], 64)
		var m, m2, spread float64
		for b := 0; b < B; b++ {
			p, _ := strconv.ParseFloat(rec[14+h*B+b], 64)
			c := float64(centers[b])
			m += p * c
			m2 += p * c * c
			spread += p * (c*c + 2*math.Abs(c))
		}
		sd := math.Sqrt(m2 - m*m)
		want := (er - 1) / sd
		// The CSV's probabilities are the float64 softmax rounded to float32
		// (relative error u = 2^-24 each, |m| ≈ 1): the variance from them is
		// off by at most u·Σp(c² + 2|m||c|), sd by that over 2·sd, plus the
		// float32 rounding of the evaluator's Sigma.
		u := math.Ldexp(1, -24)
		sdTol := 2*u*spread/(2*sd) + u*sd
		if math.Abs(preds[i].Score-want) > 1e-4*math.Max(1, math.Abs(want)) || math.Abs(preds[i].Sigma-sd) > sdTol {
			t.Fatalf("row %d: risk-adjusted score %v, sd %v; want (E[r]-1)/sd = %v, sd %v", i, preds[i].Score, preds[i].Sigma, want, sd)
		}
	}
	if _, err := ev.Predictions(context.Background(), ids, h, "sharpe"); err == nil || !strings.Contains(err.Error(), "sharpe") {
		t.Errorf("rank-by sharpe: err %v", err)
	}

	res, err := ev.Evaluate(context.Background(), Config{Split: "test", HorizonIdx: h, MaxDates: 5, RankBy: "risk-adjusted",
		Backtest: backtest.Config{TopK: 3}})
	if err != nil {
		t.Fatal(err)
	}
	dayOf := map[int32]int{}
	for d, date := range ev.DS.Dates() {
		dayOf[date] = d
	}
	known := 0
	for _, p := range res.Predictions {
		want, ok := ev.DS.TrailingVolatility(int(p.Ticker), dayOf[p.Date], VolWindowDays)
		if !ok {
			want = 0
		} else {
			known++
		}
		if p.Vol != want {
			t.Fatalf("ticker %d date %d: vol %v, want the trailing %d-day volatility %v", p.Ticker, p.Date, p.Vol, VolWindowDays, want)
		}
	}
	if known == 0 || res.Report.Exposure.VolNames != known || res.Report.Exposure.VolWindowDays != VolWindowDays {
		t.Errorf("%d predictions with a volatility; report exposure %+v", known, res.Report.Exposure)
	}
	if res.Report.Config.RankBy != "risk-adjusted" || res.Report.Precision.VolMatchedPicks == 0 {
		t.Errorf("report config rank_by %q, vol-matched picks %d", res.Report.Config.RankBy, res.Report.Precision.VolMatchedPicks)
	}
}
