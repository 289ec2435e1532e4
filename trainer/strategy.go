package trainer

import (
	"fmt"
	"math"
	"math/rand"
	"strings"

	"github.com/satrain/satrain/loader"
)

// Strategy selects what each iteration trains on. The zero value is the
// documented method: rank the sample by expected return, train on the top k.
type Strategy struct {
	// SelectBy: "expected" (default, the method), "loss" (hard-example mining:
	// the k highest-loss sequences) or "random" (a uniform random subset of
	// size k: the control arm of `satrain compare`).
	SelectBy string
	// NegativeK also trains on the k lowest expected returns.
	NegativeK int
	// MixRandom adds round(MixRandom*k) uniformly random sequences of the sample.
	MixRandom float64
}

// Name is the strategy's label in logs and compare tables.
func (st Strategy) Name() string {
	parts := []string{"selection_aware"}
	switch st.SelectBy {
	case "loss":
		parts = []string{"ohem_loss"}
	case "random":
		parts = []string{"random_subset"}
	}
	if st.NegativeK > 0 {
		parts = append(parts, fmt.Sprintf("neg%d", st.NegativeK))
	}
	if st.MixRandom > 0 {
		parts = append(parts, fmt.Sprintf("mix%g", st.MixRandom))
	}
	return strings.Join(parts, "+")
}

// Validate checks the strategy flags.
func (st Strategy) Validate(c *RunConfig) error {
	switch st.SelectBy {
	case "", "expected", "loss", "random":
	default:
		return fmt.Errorf("--select-by %q: want expected, loss or random", st.SelectBy)
	}
	if st.NegativeK < 0 || st.NegativeK > c.SampleSize {
		return fmt.Errorf("--negative-k %d: want 0..--sample-size", st.NegativeK)
	}
	if st.MixRandom < 0 || st.MixRandom > 10 || math.IsNaN(st.MixRandom) {
		return fmt.Errorf("--mix-random %g: want a fraction of top-k in [0, 10]", st.MixRandom)
	}
	return nil
}

// Describe is appended to the banner.
func (st Strategy) Describe() string {
	var b strings.Builder
	switch st.SelectBy {
	case "loss":
		b.WriteString("\n  (selection by highest loss: hard-example mining)")
	case "random":
		b.WriteString("\n  (control: a uniform random subset of the same size instead of the top-k)")
	}
	if st.NegativeK > 0 {
		fmt.Fprintf(&b, "\n  + negative mining: the %d lowest expected returns", st.NegativeK)
	}
	if st.MixRandom > 0 {
		fmt.Fprintf(&b, "\n  + %g x top-k uniformly random sequences", st.MixRandom)
	}
	return b.String()
}

func (st Strategy) needsLabels() bool { return st.SelectBy == "loss" }

// Sample draws the iteration's candidate sequences.
func (st Strategy) Sample(ds *loader.Dataset, train *loader.Split, n int, rng *rand.Rand) []loader.SeqID {
	return train.Sample(n, rng)
}

// K is the number of sequences selected at iteration it.
func (st Strategy) K(c RunConfig, it int) int { return c.TopK }

// Selection is what an iteration selected.
type Selection struct {
	Top   []int // the ranked selection (indices into the sample), best first
	Train []int // everything trained on (Top plus extras), indices into the sample
	extra []string
}

// Describe says what is trained on.
func (s Selection) Describe() string {
	d := fmt.Sprintf("top %d", len(s.Top))
	for _, e := range s.extra {
		d += " + " + e
	}
	return d
}

// Select picks the iteration's training set from the scored sample.
func (st Strategy) Select(ds *loader.Dataset, ids []loader.SeqID, scores []float64, inf InferResult, k int, rng *rand.Rand) Selection {
	var sel Selection
	switch st.SelectBy {
	case "loss":
		losses := make([]float64, len(inf.Loss))
		for i, l := range inf.Loss {
			losses[i] = float64(l)
		}
		sel.Top = SelectTopK(losses, k)
	case "random":
		perm := rng.Perm(len(ids))
		sel.Top = append([]int(nil), perm[:min(k, len(ids))]...)
	default:
		sel.Top = SelectTopK(scores, k)
	}
	sel.Train = append([]int(nil), sel.Top...)
	in := map[int]bool{}
	for _, i := range sel.Train {
		in[i] = true
	}
	if st.NegativeK > 0 {
		bottom := SelectBottomK(scores, st.NegativeK)
		added := 0
		for _, i := range bottom {
			if !in[i] {
				in[i] = true
				sel.Train = append(sel.Train, i)
				added++
			}
		}
		sel.extra = append(sel.extra, fmt.Sprintf("bottom %d", added))
	}
	if st.MixRandom > 0 {
		want := int(math.Round(st.MixRandom * float64(k)))
		added := 0
		for _, i := range rng.Perm(len(ids)) {
			if added >= want {
				break
			}
			if !in[i] {
				in[i] = true
				sel.Train = append(sel.Train, i)
				added++
			}
		}
		sel.extra = append(sel.extra, fmt.Sprintf("%d random", added))
	}
	return sel
}

// Weights returns per-training-sequence loss weights, or nil for equal weights.
func (st Strategy) Weights(sel Selection, ids []loader.SeqID, inf InferResult, it int) []float32 {
	return nil
}
