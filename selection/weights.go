package selection

import (
	"log/slog"
	"math"

	"github.com/satrain/satrain/loader"
)

// Loss-weight extensions: confidence weighting (ConfidenceWeight) and the
// consistency bonus (ConsistencyBonus). The method trains with equal weights.

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
		Softmax(s.Logits[i*B:(i+1)*B], p)
		var ent float64
		for _, q := range p {
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

// consistency is the consistency bonus of the selection top (indices into
// the sample ids): 1 + ConsistencyBonus·s per index, s the sequence's
// earlier consecutive top-k memberships. It then updates the streaks: the
// sequences of top extend theirs, the other scored ones lose theirs, and
// sequences not sampled keep theirs.
func (st *Strategy) consistency(ids []loader.SeqID, top []int) map[int]float64 {
	if st.mem == nil {
		st.mem = &strategyState{}
	}
	if st.mem.streak == nil {
		st.mem.streak = map[loader.SeqID]int{}
	}
	bonus := map[int]float64{}
	in := map[loader.SeqID]bool{}
	for _, i := range top {
		in[ids[i]] = true
		bonus[i] = 1 + st.ConsistencyBonus*float64(st.mem.streak[ids[i]])
	}
	for _, id := range ids {
		if in[id] {
			continue
		}
		delete(st.mem.streak, id)
	}
	for id := range in {
		st.mem.streak[id]++
	}
	return bonus
}

// Softmax writes the bin probabilities of logits ([B]) into dst ([B]):
// dst[b] = exp(z_b - max z) / Σ_c exp(z_c - max z), in float64 (subtracting
// the maximum keeps every exponent <= 0, so no finite logit overflows). The
// expected return E[r] = Σ_b dst[b]·center_b is this distribution's mean.
func Softmax(logits []float32, dst []float64) {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for b, v := range logits {
		dst[b] = math.Exp(float64(v) - mx)
		sum += dst[b]
	}
	for b := range dst[:len(logits)] {
		dst[b] /= sum
	}
}

// PredictedSigma is the standard deviation of the predicted gross-return
// distribution of each of n sequences: √(Σ_b p_b c_b² − (Σ_b p_b c_b)²) with
// p = Softmax(logits row) and c = centers ([B], the ranked horizon's bin
// centers); logits is [n][B] row-major. The variance is floored at 0 (it can
// round below). Used by RankBy RankRiskAdjusted.
func PredictedSigma(logits []float32, centers []float32, n int) []float64 {
	B := len(centers)
	out := make([]float64, n)
	p := make([]float64, B)
	for i := range out {
		Softmax(logits[i*B:(i+1)*B], p)
		var m, m2 float64
		for b, q := range p {
			c := float64(centers[b])
			m += q * c
			m2 += q * c * c
		}
		out[i] = math.Sqrt(math.Max(0, m2-m*m))
	}
	return out
}
