package eval

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/selection"
	"github.com/satrain/satrain/torch"
)

// Options says which checkpoint to score on which data.
type Options struct {
	Checkpoint     string
	Data           string
	DataOpt        loader.Options // SeqLen 0: the checkpoint's seq_len
	Device         torch.Device
	InferenceBatch int // default 256
	Threads        int // CPU threads for libtorch's intra-op pool (0: the thread policy already set, by default the CPUs this process may use)
	// Reporter receives the event.Progress of every scoring pass (Phase
	// "score", Done of Total sequences; each pass starts with Done == 0);
	// nil: none. Evaluation draws nothing itself.
	Reporter event.Reporter
	// Group shares Predictions (and so Evaluate) out over the ranks of a
	// data-parallel job (nil: one process); every rank gets every result.
	Group *torch.ProcessGroup
}

// Evaluator is a checkpoint's model on a device together with a data file
// opened with the model's window length. Not safe for concurrent use; every
// call must come from the goroutine (OS thread) that made it.
type Evaluator struct {
	DS     *loader.Dataset
	Meta   checkpoint.Meta // of the current checkpoint
	Config model.Config    // of the current checkpoint
	Path   string          // the current checkpoint
	eng    *model.Engine
	opt    Options
}

// Engine is the engine holding the current checkpoint's model, for callers
// that drive it directly (the scoring-cascade benchmark).
func (e *Evaluator) Engine() *model.Engine { return e.eng }

// Open loads opt.Checkpoint and opens opt.Data with its seq_len
// (or DataOpt.SeqLen when given).
func Open(opt Options) (*Evaluator, error) {
	if opt.InferenceBatch <= 0 {
		opt.InferenceBatch = 256
	}
	if err := torch.CheckDevice(opt.Device); err != nil {
		return nil, err
	}
	if opt.Threads > 0 {
		if err := torch.SetNumThreads(opt.Threads); err != nil {
			return nil, err
		}
	}
	l, err := checkpoint.Load(opt.Checkpoint)
	if err != nil {
		return nil, err
	}
	defer l.Free()
	dopt := opt.DataOpt
	if dopt.SeqLen <= 0 {
		dopt.SeqLen = l.Config.SeqLen
	}
	ds, err := loader.Open(opt.Data, dopt)
	if err != nil {
		return nil, err
	}
	e := &Evaluator{DS: ds, opt: opt}
	if err := e.use(l); err != nil {
		ds.Close()
		return nil, err
	}
	return e, nil
}

// SwapCheckpoint replaces the model by the one in path (same data file).
func (e *Evaluator) SwapCheckpoint(path string) error {
	l, err := checkpoint.Load(path)
	if err != nil {
		return err
	}
	defer l.Free()
	return e.use(l)
}

func (e *Evaluator) use(l *checkpoint.Loaded) error {
	ds := e.DS
	c := l.Config
	if c.NumFeatures != ds.NumFeatures() || c.NumHorizons != ds.NumHorizons() || c.NumBins != ds.NumBins() {
		return fmt.Errorf("checkpoint %s: model has %d features, %d horizons, %d bins; %s has %d, %d, %d",
			l.Path, c.NumFeatures, c.NumHorizons, c.NumBins, ds.Path(), ds.NumFeatures(), ds.NumHorizons(), ds.NumBins())
	}
	if err := sameFit(l, ds); err != nil {
		return err
	}
	if l.Meta.DataIdentity != "" && l.Meta.DataIdentity != ds.Identity() {
		slog.Warn("checkpoint was trained on a different data file", "checkpoint", l.Path, "checkpoint_data", l.Meta.DataPath, "data", ds.Path())
	}
	m, err := l.NewModel(e.opt.Device)
	if err != nil {
		return err
	}
	c.SeqLen = ds.SeqLen()
	m.Cfg = c
	// The optimizer is never stepped; the expected returns use the bin
	// centers the model was trained with.
	eng, err := model.NewEngine(m, model.StepConfig{LR: 1e-4}, l.Centers, e.opt.InferenceBatch)
	if err != nil {
		m.Free()
		return err
	}
	e.free()
	e.eng, e.Meta, e.Config, e.Path = eng, l.Meta, c, l.Path
	return nil
}

func (e *Evaluator) free() {
	if e.eng != nil {
		e.eng.Free()
		e.eng.Model.Free()
		e.eng = nil
	}
}

// Close frees the model and closes the data file.
func (e *Evaluator) Close() {
	e.free()
	if e.DS != nil {
		e.DS.Close()
	}
}

// SplitOverlapError is the error for a held-out split ("val" or "test")
// whose days the checkpoint's model has seen the returns of: a test split
// starting before the checkpoint's ValEnd (its run trained or selected on
// those days), or a val split starting before its TrainEnd. Scores there are
// in-sample, whatever the split is called.
type SplitOverlapError struct {
	Split      string
	First      int32  // first day of the split evaluated
	SeenBefore int32  // the checkpoint's model has seen the returns of the days before
	Period     string // "training" or "training and validation"
	Checkpoint string
}

func (e *SplitOverlapError) Error() string {
	return fmt.Sprintf("the %s split from %s overlaps the %s period of %s (days before %s): its model has seen those returns, so the scores would be in-sample; evaluate from %s on",
		e.Split, loader.FormatDate(e.First), e.Period, e.Checkpoint, loader.FormatDate(e.SeenBefore), loader.FormatDate(e.SeenBefore))
}

// CheckSplit refuses to evaluate a held-out split ("val" or "test") on days
// the current checkpoint's model has seen (see SplitOverlapError). The
// train split is in-sample by its name and is not checked. Checkpoints that
// do not record their periods are checked against their run's recorded
// --train-end/--val-end where given, else not at all.
func (e *Evaluator) CheckSplit(split string) error {
	trainEnd, valEnd := e.Meta.TrainEnd, e.Meta.ValEnd
	if valEnd == 0 {
		for _, f := range []struct {
			flag string
			to   *int32
		}{{"train-end", &trainEnd}, {"val-end", &valEnd}} {
			if d, err := backtest.ParseDate(e.Meta.Run[f.flag]); err == nil && e.Meta.Run[f.flag] != "" {
				*f.to = int32(d)
			}
		}
	}
	valStart, testStart := e.DS.PeriodStarts()
	switch {
	case split == "test" && valEnd != 0 && testStart < valEnd:
		period := "validation"
		if trainEnd == 0 || testStart < trainEnd {
			period = "training and validation"
		}
		return &SplitOverlapError{Split: split, First: testStart, SeenBefore: valEnd, Period: period, Checkpoint: e.Path}
	case split == "val" && trainEnd != 0 && valStart < trainEnd:
		return &SplitOverlapError{Split: split, First: valStart, SeenBefore: trainEnd, Period: "training", Checkpoint: e.Path}
	}
	return nil
}

// SplitIDs lists the sequences of a split ("train", "val" or "test") in
// ticker-then-day order. maxDates > 0 keeps only the sequences whose decision
// day is among the first maxDates trading days of the split (a contiguous
// block, so the backtest's consecutive-day convention still holds).
func SplitIDs(ds *loader.Dataset, split string, maxDates int) ([]loader.SeqID, error) {
	sp := ds.Split(split)
	if sp == nil {
		return nil, option.Errorf("{split} %q: want train, val or test", split)
	}
	n := sp.Len()
	if n == 0 {
		return nil, fmt.Errorf("%s: the %s split has no sequences (seq_len %d)", ds.Path(), split, ds.SeqLen())
	}
	ids := make([]loader.SeqID, 0, n)
	for i := int64(0); i < n; i++ {
		ids = append(ids, sp.At(i))
	}
	if maxDates <= 0 {
		return ids, nil
	}
	seen := map[int32]bool{}
	var days []int32
	for _, id := range ids {
		if !seen[id.Day] {
			seen[id.Day] = true
			days = append(days, id.Day)
		}
	}
	if len(days) <= maxDates {
		return ids, nil
	}
	sort.Slice(days, func(i, j int) bool { return days[i] < days[j] })
	last := days[maxDates-1]
	out := ids[:0]
	for _, id := range ids {
		if id.Day <= last {
			out = append(out, id)
		}
	}
	return out, nil
}

// ScoredBatch is the model's output for one batch of sequences.
type ScoredBatch struct {
	IDs      []loader.SeqID
	Expected []float32 // [n][H] expected gross return
	Argmax   []int32   // [n][H] most probable bin
	Probs    []float32 // [n][H][B] bin probabilities (only when asked for)
	Labels   []int64   // [n][H] label bin
	Returns  []float32 // [n][H] realized gross return
	Loss     []float32 // [n] cross-entropy averaged over horizons
	Logits   []float32 // [n][H][B] the model's logits
}

// Score runs the model over ids, streaming windows in batches of the
// inference batch size, and calls fn for each batch in order (the batch is
// only valid during the call).
func (e *Evaluator) Score(ctx context.Context, ids []loader.SeqID, wantProbs bool, fn func(b *ScoredBatch) error) error {
	H, B := e.DS.NumHorizons(), e.DS.NumBins()
	done := 0
	e.progress(done, len(ids))
	sb := &ScoredBatch{}
	_, _, err := Stream(ctx, e.eng, e.DS, ids, StreamOptions{Labels: true, Logits: true}, func(b *loader.Batch, out model.InferResult) error {
		n := len(b.IDs)
		sb.IDs, sb.Expected, sb.Labels, sb.Returns, sb.Loss, sb.Logits = b.IDs, out.Expected, b.Labels, b.Returns, out.Loss, out.Logits
		sb.Argmax = sb.Argmax[:0]
		if wantProbs {
			sb.Probs = make([]float32, n*H*B)
		} else {
			sb.Probs = nil
		}
		for i := 0; i < n*H; i++ {
			row := out.Logits[i*B : (i+1)*B]
			best := 0
			for j, v := range row {
				if v > row[best] {
					best = j
				}
			}
			sb.Argmax = append(sb.Argmax, int32(best))
			if wantProbs {
				softmax(row, sb.Probs[i*B:(i+1)*B])
			}
		}
		if err := fn(sb); err != nil {
			return err
		}
		done += n
		e.progress(done, len(ids))
		return nil
	})
	return err
}

// progress reports a scoring pass's progress to the options' reporter.
func (e *Evaluator) progress(done, total int) {
	if e.opt.Reporter != nil && total > 0 {
		e.opt.Reporter.Report(event.Progress{Phase: "score", Done: done, Total: total})
	}
}

// softmax writes the probabilities of logits into dst (selection.Softmax,
// computed in float64, rounded to float32).
func softmax(logits, dst []float32) {
	p := make([]float64, len(logits))
	selection.Softmax(logits, p)
	for j, q := range p {
		dst[j] = float32(q)
	}
}

// Predictions scores ids and returns one backtest.Prediction per sequence
// for horizon index h: Score = expected gross return, Realized = realized
// gross return, model.Loss = cross-entropy (horizon average), Correct = argmax bin
// equals the label bin on h, Sigma = the standard deviation of the
// predicted distribution on h (selection.PredictedSigma).
//
// rankBy selection.RankRiskAdjusted makes Score the ranking key
// (E[r] - 1)/σ instead, σ the standard deviation of the predicted
// distribution on h (selection.PredictedSigma; -MaxFloat64 where σ is 0,
// never picked); "" or selection.RankExpected keep E[r].
func (e *Evaluator) Predictions(ctx context.Context, ids []loader.SeqID, h int, rankBy string) ([]backtest.Prediction, error) {
	H, B := e.DS.NumHorizons(), e.DS.NumBins()
	if err := loader.CheckHorizon(h, e.DS.Path(), e.DS.Horizons()); err != nil {
		return nil, err
	}
	riskAdjusted := false
	switch rankBy {
	case "", selection.RankExpected:
	case selection.RankRiskAdjusted:
		riskAdjusted = true
	default:
		return nil, option.Errorf("{rank-by} %q: want %s or %s", rankBy, selection.RankExpected, selection.RankRiskAdjusted)
	}
	if g := e.opt.Group; g != nil && g.WorldSize() > 1 {
		if riskAdjusted {
			return nil, option.Errorf("{rank-by} %s is not available in a data-parallel evaluation: evaluate on one process", rankBy)
		}
		return e.sharedPredictions(ctx, ids, h)
	}
	dates := e.DS.Dates()
	centers := e.DS.BinCenters()[h] // the checkpoint's (sameFit)
	preds := make([]backtest.Prediction, 0, len(ids))
	err := e.Score(ctx, ids, false, func(b *ScoredBatch) error {
		for i, id := range b.IDs {
			score := float64(b.Expected[i*H+h])
			sigma := selection.PredictedSigma(b.Logits[(i*H+h)*B:(i*H+h+1)*B], centers, 1)[0]
			if riskAdjusted {
				score = -math.MaxFloat64 // finite for the backtest, never picked
				if sigma > 0 {
					score = (float64(b.Expected[i*H+h]) - 1) / sigma
				}
			}
			preds = append(preds, backtest.Prediction{
				Ticker:   id.Ticker,
				Date:     dates[id.Day],
				Score:    score,
				Realized: float64(b.Returns[i*H+h]),
				Loss:     float64(b.Loss[i]),
				Correct:  int64(b.Argmax[i*H+h]) == b.Labels[i*H+h],
				Sigma:    float64(float32(sigma)), // float32 as every other value: a data-parallel evaluation gathers it exactly
			})
		}
		return nil
	})
	return preds, err
}

// Config is one evaluation: which split, horizon and backtest settings.
type Config struct {
	Split      string          `json:"split"` // default "test"
	HorizonIdx int             `json:"horizon_idx"`
	MaxDates   int             `json:"max_dates"` // > 0: only the first MaxDates days of the split
	Backtest   backtest.Config `json:"backtest"`  // HorizonDays is set from the data's horizon
	// RankBy is how each date's names are ranked: selection.RankExpected
	// ("" too: by E[r]) or selection.RankRiskAdjusted (by (E[r] - 1)/σ).
	RankBy string `json:"rank_by,omitempty"`
}

// VolWindowDays is the trailing window of the realised volatility that
// Evaluate attaches to every prediction (backtest.Prediction.Vol): 20
// trading days, about a month.
const VolWindowDays = 20

// Result is a finished evaluation.
type Result struct {
	Report      *backtest.Report
	Predictions []backtest.Prediction
	Split       string
	Horizon     int // days
	Seconds     float64
}

// Evaluate scores the split with the evaluator's current model and runs the
// backtest on horizon cfg.HorizonIdx.
func (e *Evaluator) Evaluate(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Split == "" {
		cfg.Split = "test"
	}
	if err := loader.CheckHorizon(cfg.HorizonIdx, e.DS.Path(), e.DS.Horizons()); err != nil {
		return nil, err
	}
	if err := e.CheckSplit(cfg.Split); err != nil {
		return nil, err
	}
	start := time.Now()
	ids, err := SplitIDs(e.DS, cfg.Split, cfg.MaxDates)
	if err != nil {
		return nil, err
	}
	preds, err := e.Predictions(ctx, ids, cfg.HorizonIdx, cfg.RankBy)
	if err != nil {
		return nil, err
	}
	if groups := e.DS.Groups(); len(groups) > 0 {
		for i := range preds {
			preds[i].Group = groups[preds[i].Ticker]
		}
	}
	// Each prediction's trailing realised volatility, known at the close of
	// its decision day (the exposure figures).
	dayOf := make(map[int32]int, len(e.DS.Dates()))
	for d, date := range e.DS.Dates() {
		dayOf[date] = d
	}
	vols := 0
	for i := range preds {
		if v, ok := e.DS.TrailingVolatility(int(preds[i].Ticker), dayOf[preds[i].Date], VolWindowDays); ok {
			preds[i].Vol = v
			vols++
		}
	}
	bt := cfg.Backtest
	bt.HorizonDays = e.DS.Horizons()[cfg.HorizonIdx]
	if bt.TieRTol == 0 {
		// Scores within the model's rounding noise tie (lower ticker first),
		// so picks and rank IC do not depend on --inference-batch-size.
		bt.TieRTol = model.ScoreTieRTol(e.eng.Model.Cfg)
	}
	bt.RankBy = cfg.RankBy
	rep, err := backtest.Evaluate(preds, bt)
	if err != nil {
		return nil, err
	}
	if vols > 0 {
		rep.Exposure.VolWindowDays = VolWindowDays
	}
	return &Result{Report: rep, Predictions: preds, Split: cfg.Split, Horizon: bt.HorizonDays, Seconds: time.Since(start).Seconds()}, nil
}

// EvaluateCheckpoint opens the checkpoint and data of opt and evaluates.
func EvaluateCheckpoint(ctx context.Context, opt Options, cfg Config) (*Result, error) {
	e, err := Open(opt)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return e.Evaluate(ctx, cfg)
}

// PredictionHeader is the CSV header of WritePredictions: ticker, date, one
// expected-return column per horizon (er_1d, er_5d, ...), the realized gross
// return (realized_1d, ...) and label bin (label_1d, ...) per horizon and,
// with probs, one probability column per horizon and bin (p_1d_b0 ...).
func PredictionHeader(horizons []int, bins int, probs bool) []string {
	hdr := []string{"ticker", "date"}
	for _, h := range horizons {
		hdr = append(hdr, "er_"+model.HorizonName(h))
	}
	for _, h := range horizons {
		hdr = append(hdr, "realized_"+model.HorizonName(h))
	}
	for _, h := range horizons {
		hdr = append(hdr, "label_"+model.HorizonName(h))
	}
	if probs {
		for _, h := range horizons {
			for b := 0; b < bins; b++ {
				hdr = append(hdr, fmt.Sprintf("p_%s_b%d", model.HorizonName(h), b))
			}
		}
	}
	return hdr
}

// WritePredictions scores ids and writes one CSV row per sequence (in the
// order of ids): the ticker symbol, the decision date (YYYY-MM-DD), the
// expected gross return per horizon, the realized gross return and the label
// bin per horizon (every sequence of a split has its labels), then the bin
// probabilities with probs.
// It returns the number of data rows.
func (e *Evaluator) WritePredictions(ctx context.Context, ids []loader.SeqID, w io.Writer, probs bool) (int, error) {
	tickers, dates, horizons := e.DS.Tickers(), e.DS.Dates(), e.DS.Horizons()
	H, B := len(horizons), e.DS.NumBins()
	cw := csv.NewWriter(w)
	if err := cw.Write(PredictionHeader(horizons, B, probs)); err != nil {
		return 0, err
	}
	rows := 0
	rec := make([]string, 0, 2+3*H+H*B)
	err := e.Score(ctx, ids, probs, func(b *ScoredBatch) error {
		for i, id := range b.IDs {
			d := dates[id.Day]
			rec = append(rec[:0], tickers[id.Ticker], backtest.FormatDate(d))
			for h := 0; h < H; h++ {
				rec = append(rec, strconv.FormatFloat(float64(b.Expected[i*H+h]), 'g', -1, 32))
			}
			for h := 0; h < H; h++ {
				rec = append(rec, strconv.FormatFloat(float64(b.Returns[i*H+h]), 'g', -1, 32))
			}
			for h := 0; h < H; h++ {
				rec = append(rec, strconv.FormatInt(b.Labels[i*H+h], 10))
			}
			if probs {
				for _, p := range b.Probs[i*H*B : (i+1)*H*B] {
					rec = append(rec, strconv.FormatFloat(float64(p), 'g', -1, 32))
				}
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
			rows++
		}
		return nil
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return rows, err
}

// sameFit refuses a panel whose return bins were cut differently from the
// panel the checkpoint was trained on. An importer fits the features'
// normalisation and the bin edges on the days up to its train end, so two
// imports of the same prices with other split dates differ in both: the model
// would read features scaled by other statistics and its loss would be taken
// against labels binned by other edges. The bin centres, which the checkpoint
// stores, are the fit's fingerprint: equal centres (to float32 rounding) mean
// the same fit.
func sameFit(l *checkpoint.Loaded, ds *loader.Dataset) error {
	want := ds.BinCenters()
	for h := range l.Centers {
		for b := range l.Centers[h] {
			got, w := float64(l.Centers[h][b]), float64(want[h][b])
			if math.Abs(got-w) > 1e-6*math.Max(1, math.Abs(w)) {
				return fmt.Errorf("checkpoint %s was trained on a panel fitted differently from %s (bin centre %d of horizon %d: %.6g there, %.6g here): "+
					"its features were normalised and its labels binned with other statistics, so its scores and losses here would not mean what they say; "+
					"evaluate on the panel it was trained on (%s), or import this one with the same split dates",
					l.Path, ds.Path(), b, h, got, w, l.Meta.DataPath)
			}
		}
	}
	return nil
}
