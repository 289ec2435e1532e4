package trainer

import (
	"reflect"
	"testing"

	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/selection"
)

// rankedScores hands selection horizon h of the pass: sequence i's expected
// return and bin logits on h, its loss, the tie tolerance and the
// candidates, unchanged.
func TestRankedScores(t *testing.T) {
	// 3 sequences, 2 horizons, 3 bins: logit (i, h, b) = 100i + 10h + b.
	inf := model.InferResult{Expected: []float32{1.0, 1.5, 2.0, 2.5, 3.0, 3.5}, Loss: []float32{0.1, 0.2, 0.3}, TieRTol: 1e-6,
		Candidates: []int{0, 2}}
	for i := 0; i < 3; i++ {
		for h := 0; h < 2; h++ {
			for b := 0; b < 3; b++ {
				inf.Logits = append(inf.Logits, float32(100*i+10*h+b))
			}
		}
	}
	got := rankedScores(inf, 3, 2, 1)
	want := selection.Scores{Expected: []float64{1.5, 2.5, 3.5}, Loss: inf.Loss, Logits: []float32{10, 11, 12, 110, 111, 112, 210, 211, 212},
		TieRTol: 1e-6, Candidates: []int{0, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("horizon 1: %+v, want %+v", got, want)
	}
	inf.Logits, inf.Loss, inf.Candidates = nil, nil, nil
	if got := rankedScores(inf, 3, 2, 0); !reflect.DeepEqual(got, selection.Scores{Expected: []float64{1, 2, 3}, TieRTol: 1e-6}) {
		t.Fatalf("horizon 0 without logits: %+v", got)
	}
	c := RunConfig{SampleSize: 96, TopK: 12, NumIterations: 5, EpochsPerIteration: 3}
	if got := c.selectionConfig(); got != (selection.Config{SampleSize: 96, TopK: 12, Iterations: 5}) {
		t.Fatalf("selection config %+v", got)
	}
}
