package backtest

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/satrain/satrain/selection/rank"
)

// Prediction is the model's output for one sequence: one ticker on one
// decision day.
type Prediction struct {
	Ticker   int32
	Date     int32   // YYYYMMDD of the decision day (the window's last day)
	Score    float64 // model's expected gross return for the chosen horizon
	Realized float64 // realized forward gross return over the horizon (1.0 = flat)
	Loss     float64 // the model's cross-entropy on this sequence (all horizons averaged), NaN if unknown
	Correct  bool    // argmax bin == label bin for the chosen horizon
	Group    string  // the ticker's sector (the panel's groups), "" when unknown
	// Vol is the ticker's trailing realised volatility known at the close
	// of Date (per day, e.g. loader.Dataset.TrailingVolatility); 0 when
	// unknown. The exposure figures (Exposure, vol-matched excess, residual
	// IC) use it.
	Vol float64
	// Sigma is the standard deviation of the model's predicted return
	// distribution on the horizon (selection.PredictedSigma); 0 when
	// unknown. Exposure's sigma-matched figures use it.
	Sigma float64
}

// Rebalancing schemes accepted in Config.Rebalance.
const (
	RebalanceNonOverlapping = "non-overlapping"
	RebalanceStaggered      = "staggered"
)

// Config controls the selection and the backtest.
type Config struct {
	TopK        int     `json:"top_k"`        // names held per date (if 0, use TopFrac)
	TopFrac     float64 `json:"top_frac"`     // fraction per date for "top-k%" (default 0.1)
	HorizonDays int     `json:"horizon_days"` // holding period h in trading days (0 means 1)
	CostBps     float64 `json:"cost_bps"`     // cost in basis points per unit turnover
	Rebalance   string  `json:"rebalance"`    // "non-overlapping" (default) or "staggered"
	// TieRTol is the relative tolerance within which two scores of one date
	// are the same score (see rank.MergeTies): they then tie, the lower ticker is
	// picked first, and rank IC gives them their average rank. 0 compares
	// scores exactly. Set it to the rounding noise of the model's scores
	// (trainer.ScoreTieRTol) so results do not depend on how they were batched.
	TieRTol float64 `json:"tie_rtol,omitempty"`
	// VolControls is how many unselected names, nearest in trailing
	// volatility, make each pick's control in the vol-matched excess
	// (default DefaultVolControls).
	VolControls int `json:"vol_controls"`
	// RankBy records what Prediction.Score is: "" or "expected" (the
	// expected gross return) or "risk-adjusted" ((E[r] - 1)/σ, a ratio);
	// the table labels the mean score accordingly.
	RankBy string `json:"rank_by,omitempty"`
}

// maxHorizonDays bounds the holding period (40 years of trading days); it
// keeps a corrupt configuration from allocating absurd daily series.
const maxHorizonDays = 10080

// normalize validates cfg and fills defaults.
func (cfg Config) normalize() (Config, error) {
	if cfg.TopK < 0 {
		return cfg, fmt.Errorf("backtest: config: top_k must be >= 0, got %d", cfg.TopK)
	}
	if math.IsNaN(cfg.TopFrac) || cfg.TopFrac < 0 || cfg.TopFrac > 1 {
		return cfg, fmt.Errorf("backtest: config: top_frac must be in (0, 1], got %v", cfg.TopFrac)
	}
	if cfg.TopK == 0 && cfg.TopFrac == 0 {
		cfg.TopFrac = 0.1
	}
	if math.IsNaN(cfg.TieRTol) || cfg.TieRTol < 0 || cfg.TieRTol >= 1 {
		return cfg, fmt.Errorf("backtest: config: tie_rtol must be in [0, 1), got %v", cfg.TieRTol)
	}
	if cfg.VolControls < 0 {
		return cfg, fmt.Errorf("backtest: config: vol_controls must be >= 0, got %d", cfg.VolControls)
	}
	if cfg.VolControls == 0 {
		cfg.VolControls = DefaultVolControls
	}
	if cfg.HorizonDays < 0 {
		return cfg, fmt.Errorf("backtest: config: horizon_days must be >= 0, got %d", cfg.HorizonDays)
	}
	if cfg.HorizonDays > maxHorizonDays {
		return cfg, fmt.Errorf("backtest: config: horizon_days %d exceeds %d", cfg.HorizonDays, maxHorizonDays)
	}
	if cfg.HorizonDays == 0 {
		cfg.HorizonDays = 1
	}
	if math.IsNaN(cfg.CostBps) || math.IsInf(cfg.CostBps, 0) || cfg.CostBps < 0 {
		return cfg, fmt.Errorf("backtest: config: cost_bps must be finite and >= 0, got %v", cfg.CostBps)
	}
	switch cfg.Rebalance {
	case "":
		cfg.Rebalance = RebalanceNonOverlapping
	case RebalanceNonOverlapping, RebalanceStaggered:
	default:
		return cfg, fmt.Errorf("backtest: config: rebalance must be %q or %q, got %q",
			RebalanceNonOverlapping, RebalanceStaggered, cfg.Rebalance)
	}
	return cfg, nil
}

// selectK returns the number of names selected from a cross-section of n.
func (cfg Config) selectK(n int) int {
	k := cfg.TopK
	if k == 0 {
		// The small epsilon keeps e.g. 0.1*30 = 3.0000000000000004 at 3.
		k = int(math.Ceil(cfg.TopFrac*float64(n) - 1e-9))
	}
	return max(1, min(k, n))
}

// LossAcc is loss and accuracy over a set of sequences.
type LossAcc struct {
	Count     int     `json:"count"`      // sequences in the set
	LossCount int     `json:"loss_count"` // sequences with a known (finite) loss
	Loss      float64 `json:"loss"`       // mean loss over the LossCount sequences (0 if none)
	Accuracy  float64 `json:"accuracy"`   // share of Correct over Count sequences
}

// Precision describes the quality of the model's per-date top-k picks.
type Precision struct {
	Picks                int     `json:"picks"`                  // total picks pooled over dates
	BeatMedian           float64 `json:"beat_median"`            // share of picks with Realized > that date's median Realized
	AboveOne             float64 `json:"above_one"`              // share of picks with Realized > 1
	TopKMeanScore        float64 `json:"topk_mean_score"`        // mean over dates of the picks' mean Score
	TopKMeanRealized     float64 `json:"topk_mean_realized"`     // mean over dates of the picks' mean Realized
	UniverseMeanRealized float64 `json:"universe_mean_realized"` // mean over dates of the cross-section mean Realized
	Excess               float64 `json:"excess"`                 // TopKMeanRealized - UniverseMeanRealized
	// ExcessCI95 is the 95% interval of Excess over dates, from the
	// Newey–West standard error at lag h-1 (each date's h-day outcome
	// overlaps the next h-1 dates'; see NeweyWestSE).
	ExcessCI95 Interval `json:"excess_ci95"`
	// GroupNeutralExcess is the excess of each pick over the mean realized
	// return of its own group (sector) that date, averaged over the date's
	// picks with a group, then over dates (Alphalens's group-demeaned
	// return): what is left of Excess once sector bets are taken out.
	// GroupNeutralPicks counts the picks it uses (0: the panel has no
	// groups, and both figures are 0).
	GroupNeutralExcess     float64  `json:"group_neutral_excess"`
	GroupNeutralExcessCI95 Interval `json:"group_neutral_excess_ci95"`
	GroupNeutralPicks      int      `json:"group_neutral_picks"`
	// VolMatchedExcess is the excess of each pick over its control, the
	// mean realized return of the Config.VolControls unselected names
	// nearest to it in trailing volatility that date, averaged over the
	// date's picks, then over dates: what is left of Excess once the
	// picks' volatility is matched. VolMatchedPicks counts the picks with a
	// volatility (0: the predictions carry none, and both figures are 0).
	VolMatchedExcess     float64  `json:"vol_matched_excess"`
	VolMatchedExcessCI95 Interval `json:"vol_matched_excess_ci95"`
	VolMatchedPicks      int      `json:"vol_matched_picks"`
}

// CorrStats summarises a per-date correlation series.
type CorrStats struct {
	Mean    float64 `json:"mean"`
	Std     float64 `json:"std"`   // sample std over dates (n-1)
	IR      float64 `json:"ir"`    // Mean/Std (0 when Std is 0)
	TStat   float64 `json:"tstat"` // IR*sqrt(Dates)
	Dates   int     `json:"dates"` // dates used
	Skipped int     `json:"skipped"`
	// CI95 is the 95% interval of Mean from the Newey–West standard error
	// at lag h-1 over the dates used (TStat assumes independent dates).
	CI95 Interval `json:"ci95"`
}

// CalibrationBucket is one score decile of the pooled predictions.
type CalibrationBucket struct {
	Decile       int     `json:"decile"` // 1 (lowest Score) .. 10 (highest)
	Count        int     `json:"count"`
	MinScore     float64 `json:"min_score"`
	MaxScore     float64 `json:"max_score"`
	MeanScore    float64 `json:"mean_score"`
	MeanRealized float64 `json:"mean_realized"`
}

// DateRow holds the per-date cross-sectional numbers.
type DateRow struct {
	Date             Date    `json:"date"` // the decision date`
	N                int     `json:"n"`    // names that date
	K                int     `json:"k"`    // names selected
	ICValid          bool    `json:"ic_valid"`
	IC               float64 `json:"ic"`
	RankIC           float64 `json:"rank_ic"`
	TopKMeanRealized float64 `json:"topk_mean_realized"`
	MeanRealized     float64 `json:"mean_realized"`
	MedianRealized   float64 `json:"median_realized"`
	// The date's group-neutral and vol-matched excess and its IC and rank
	// IC against residual returns (absent where undefined): the per-date
	// series behind the Report's figures, which compare pairs across arms.
	GroupNeutralExcess *float64 `json:"group_neutral_excess,omitempty"`
	VolMatchedExcess   *float64 `json:"vol_matched_excess,omitempty"`
	ResidualIC         *float64 `json:"residual_ic,omitempty"`
	ResidualRankIC     *float64 `json:"residual_rank_ic,omitempty"`
}

// Report is the complete evaluation of one set of predictions.
type Report struct {
	Config         Config `json:"config"` // effective configuration (defaults filled in)
	NumPredictions int    `json:"num_predictions"`
	NumDates       int    `json:"decision_dates"` // distinct decision dates (cross-sections), T
	NumTickers     int    `json:"num_tickers"`
	FirstDate      Date   `json:"first_date"` // first decision date
	LastDate       Date   `json:"last_date"`  // last decision date
	// TradingDaysPerYear is the annualisation convention of every "ann_"
	// and "_annualized" figure (see docs/METRICS.md).
	TradingDaysPerYear int       `json:"trading_days_per_year"`
	All                LossAcc   `json:"all"`  // every sequence
	TopK               LossAcc   `json:"topk"` // the model's per-date selection, pooled
	Precision          Precision `json:"precision"`
	IC                 CorrStats `json:"ic"`
	RankIC             CorrStats `json:"rank_ic"`
	// ResidualIC and ResidualRankIC are IC and rank IC against the realized
	// returns with their group and volatility components removed (see
	// residualReturns): the ranking's skill apart from sector and volatility.
	ResidualIC     CorrStats           `json:"residual_ic"`
	ResidualRankIC CorrStats           `json:"residual_rank_ic"`
	Exposure       Exposure            `json:"exposure"`
	Strategy       Portfolio           `json:"strategy"`  // long-only top-k
	Benchmark      Portfolio           `json:"benchmark"` // equal-weight universe
	Calibration    []CalibrationBucket `json:"calibration"`
	Dates          []DateRow           `json:"dates"`
}

// crossSection is one date's predictions sorted by ticker, with the model's
// selection.
type crossSection struct {
	date  int32
	preds []Prediction // sorted by ticker
	top   []int        // indices into preds of the selected names, best first
}

func validate(preds []Prediction) error {
	if len(preds) == 0 {
		return errors.New("backtest: no predictions")
	}
	for i, p := range preds {
		if math.IsNaN(p.Score) || math.IsInf(p.Score, 0) {
			return fmt.Errorf("backtest: prediction %d (ticker %d, date %d): non-finite score %v", i, p.Ticker, p.Date, p.Score)
		}
		if math.IsNaN(p.Realized) || math.IsInf(p.Realized, 0) || p.Realized < 0 {
			return fmt.Errorf("backtest: prediction %d (ticker %d, date %d): realized gross return must be finite and >= 0, got %v", i, p.Ticker, p.Date, p.Realized)
		}
		if p.Date <= 0 {
			return fmt.Errorf("backtest: prediction %d (ticker %d): invalid date %d", i, p.Ticker, p.Date)
		}
	}
	return nil
}

// groupByDate sorts a copy of preds by (date, ticker), rejects duplicates,
// merges each date's scores that tie within cfg.TieRTol (rank.MergeTies)
// and builds the per-date cross-sections with their top-k selections
// (rank.TopK, ties to the lower ticker).
func groupByDate(preds []Prediction, cfg Config) ([]crossSection, error) {
	s := append([]Prediction(nil), preds...)
	sort.Slice(s, func(i, j int) bool {
		if s[i].Date != s[j].Date {
			return s[i].Date < s[j].Date
		}
		return s[i].Ticker < s[j].Ticker
	})
	var out []crossSection
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Date == s[i].Date {
			if j > i && s[j].Ticker == s[j-1].Ticker {
				return nil, fmt.Errorf("backtest: duplicate prediction for ticker %d on date %d", s[j].Ticker, s[j].Date)
			}
			j++
		}
		cs := crossSection{date: s[i].Date, preds: s[i:j:j]}
		// Scores equal to within the tolerance become one value, so the
		// pick, IC, rank IC and calibration below treat them as ties.
		merged := rank.MergeTies(scoresOf(cs.preds), cfg.TieRTol)
		for t, v := range merged {
			cs.preds[t].Score = v
		}
		// preds are ticker-sorted, so ties going to the lower index go to
		// the lower ticker.
		cs.top = rank.TopK(merged, cfg.selectK(len(cs.preds)), nil)
		out = append(out, cs)
		i = j
	}
	return out, nil
}

// Evaluate computes every metric of the report for preds under cfg.
// The input slice is not modified.
func Evaluate(preds []Prediction, cfg Config) (*Report, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if err := validate(preds); err != nil {
		return nil, err
	}
	days, err := groupByDate(preds, cfg)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Config:         cfg,
		NumPredictions: len(preds),
		NumDates:       len(days),
		FirstDate:      Date(days[0].date),
		LastDate:       Date(days[len(days)-1].date),

		TradingDaysPerYear: TradingDaysPerYear,
	}
	tickers := map[int32]struct{}{}
	for _, p := range preds {
		tickers[p.Ticker] = struct{}{}
	}
	r.NumTickers = len(tickers)

	r.All, r.TopK = lossAccuracy(days)
	lag := max(1, cfg.HorizonDays) - 1
	var neutral []*float64
	r.Precision, neutral = precision(days, lag)
	r.IC, r.RankIC, r.Dates = informationCoefficients(days, lag)
	for t := range r.Dates {
		r.Dates[t].GroupNeutralExcess = neutral[t]
	}
	var vm volMatched
	r.Exposure, vm, r.ResidualIC, r.ResidualRankIC = exposure(days, r.Dates, cfg.VolControls, lag)
	r.Precision.VolMatchedExcess, r.Precision.VolMatchedExcessCI95, r.Precision.VolMatchedPicks = vm.excess, vm.ci, vm.picks
	if cfg.RankBy != "risk-adjusted" {
		// Calibration buckets compare the score with the realized gross
		// return: meaningless for a risk-adjusted ranking key.
		r.Calibration = calibration(days)
	}
	r.Strategy, r.Benchmark = backtest(days, cfg)
	return r, nil
}

type lossAccAcc struct {
	n, nLoss, nCorrect int
	sumLoss            float64
}

func (a *lossAccAcc) add(p Prediction) {
	a.n++
	if p.Correct {
		a.nCorrect++
	}
	if !math.IsNaN(p.Loss) && !math.IsInf(p.Loss, 0) {
		a.nLoss++
		a.sumLoss += p.Loss
	}
}

func (a lossAccAcc) result() LossAcc {
	la := LossAcc{Count: a.n, LossCount: a.nLoss}
	if a.nLoss > 0 {
		la.Loss = a.sumLoss / float64(a.nLoss)
	}
	if a.n > 0 {
		la.Accuracy = float64(a.nCorrect) / float64(a.n)
	}
	return la
}

func lossAccuracy(days []crossSection) (all, top LossAcc) {
	var a, t lossAccAcc
	for _, d := range days {
		for _, p := range d.preds {
			a.add(p)
		}
		for _, i := range d.top {
			t.add(d.preds[i])
		}
	}
	return a.result(), t.result()
}

func realizedOf(ps []Prediction) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.Realized
	}
	return out
}

func scoresOf(ps []Prediction) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.Score
	}
	return out
}

// precision computes Precision and each date's group-neutral excess (nil
// where the date has no pick with a group).
func precision(days []crossSection, lag int) (Precision, []*float64) {
	var pr Precision
	var beat, above int
	var topScore, topReal, uniReal []float64
	for _, d := range days {
		real := realizedOf(d.preds)
		med := median(real)
		var ss, sr float64
		for _, i := range d.top {
			p := d.preds[i]
			pr.Picks++
			if p.Realized > med {
				beat++
			}
			if p.Realized > 1 {
				above++
			}
			ss += p.Score
			sr += p.Realized
		}
		k := float64(len(d.top))
		topScore = append(topScore, ss/k)
		topReal = append(topReal, sr/k)
		uniReal = append(uniReal, mean(real))
	}
	if pr.Picks > 0 {
		pr.BeatMedian = float64(beat) / float64(pr.Picks)
		pr.AboveOne = float64(above) / float64(pr.Picks)
	}
	pr.TopKMeanScore = mean(topScore)
	pr.TopKMeanRealized = mean(topReal)
	pr.UniverseMeanRealized = mean(uniReal)
	pr.Excess = pr.TopKMeanRealized - pr.UniverseMeanRealized
	excess := make([]float64, len(topReal))
	for i := range excess {
		excess[i] = topReal[i] - uniReal[i]
	}
	pr.ExcessCI95 = meanInterval(excess, lag)
	var neutral []float64
	perDate := make([]*float64, len(days))
	for t, d := range days {
		groupSum, groupN := map[string]float64{}, map[string]int{}
		for _, p := range d.preds {
			if p.Group != "" {
				groupSum[p.Group] += p.Realized
				groupN[p.Group]++
			}
		}
		var s float64
		n := 0
		for _, i := range d.top {
			if g := d.preds[i].Group; g != "" {
				s += d.preds[i].Realized - groupSum[g]/float64(groupN[g])
				n++
			}
		}
		if n > 0 {
			neutral = append(neutral, s/float64(n))
			perDate[t] = ptr(s / float64(n))
			pr.GroupNeutralPicks += n
		}
	}
	if len(neutral) > 0 {
		pr.GroupNeutralExcess = mean(neutral)
	}
	pr.GroupNeutralExcessCI95 = meanInterval(neutral, lag)
	return pr, perDate
}

// minICNames is the smallest cross-section for which IC is computed.
const minICNames = 3

func informationCoefficients(days []crossSection, lag int) (ic, ric CorrStats, rows []DateRow) {
	var ics, rics []float64
	for _, d := range days {
		real := realizedOf(d.preds)
		row := DateRow{
			Date:           Date(d.date),
			N:              len(d.preds),
			K:              len(d.top),
			MeanRealized:   mean(real),
			MedianRealized: median(real),
		}
		for _, i := range d.top {
			row.TopKMeanRealized += d.preds[i].Realized
		}
		row.TopKMeanRealized /= float64(len(d.top))
		if len(d.preds) >= minICNames {
			sc := scoresOf(d.preds)
			c, ok1 := pearson(sc, real)
			rc, ok2 := spearman(sc, real)
			if ok1 && ok2 {
				row.ICValid, row.IC, row.RankIC = true, c, rc
				ics = append(ics, c)
				rics = append(rics, rc)
			}
		}
		rows = append(rows, row)
	}
	skipped := len(days) - len(ics)
	ic.Mean, ic.Std, ic.IR, ic.TStat = meanStdIR(ics)
	ic.Dates, ic.Skipped = len(ics), skipped
	ric.Mean, ric.Std, ric.IR, ric.TStat = meanStdIR(rics)
	ric.Dates, ric.Skipped = len(rics), skipped
	ic.CI95, ric.CI95 = meanInterval(ics, lag), meanInterval(rics, lag)
	return
}

// calibration pools all predictions, sorts them by Score (ties by date then
// ticker) and cuts them into 10 buckets of floor-spaced boundaries:
// bucket i (0-based) holds sorted positions [floor(i*N/10), floor((i+1)*N/10)).
// Empty buckets (N < 10) are omitted.
func calibration(days []crossSection) []CalibrationBucket {
	var all []Prediction
	for _, d := range days {
		all = append(all, d.preds...) // already (date, ticker) ordered
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score < all[j].Score })
	n := len(all)
	var out []CalibrationBucket
	for i := 0; i < 10; i++ {
		lo, hi := i*n/10, (i+1)*n/10
		if hi <= lo {
			continue
		}
		b := CalibrationBucket{Decile: i + 1, Count: hi - lo, MinScore: all[lo].Score, MaxScore: all[hi-1].Score}
		for _, p := range all[lo:hi] {
			b.MeanScore += p.Score
			b.MeanRealized += p.Realized
		}
		b.MeanScore /= float64(b.Count)
		b.MeanRealized /= float64(b.Count)
		out = append(out, b)
	}
	return out
}
