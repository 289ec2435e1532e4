package compare

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/selection"
)

// The selection extensions (docs/STRATEGIES.md) as arms of `satrain compare`;
// their unit tests are in package selection, their runs in the loop in
// package trainer.

// TestCompareExtensionArms runs `satrain compare` with every extension arm
// (one seed): each is accepted, trains the equal budget (the schedule arm's
// k averages --top-k) and runs the strategy it names.
func TestCompareExtensionArms(t *testing.T) {
	runtest.Lock(t)
	arms := []string{ArmPerDate, ArmStratified, ArmTopKSchedule, ArmConfidence, ArmConsistency, ArmRiskAdjusted}
	const budget = 480 // top-k 12 x 2 epochs: 20 iterations
	cfg := evCompareConfig(runtest.Panel(t, 3), filepath.Join(t.TempDir(), "cmp"), arms, budget)
	cfg.Seeds = 1
	want := map[string]string{
		ArmPerDate:      "selection_aware+per_date",
		ArmStratified:   "selection_aware+stratify_sector",
		ArmTopKSchedule: "selection_aware+k_linear:6:18",
		ArmConfidence:   "selection_aware+confidence",
		ArmConsistency:  "selection_aware+consistency1",
		ArmRiskAdjusted: "selection_aware+risk_adjusted",
	}
	for _, arm := range arms {
		st := armStrategy(arm, cfg.Base.TopK)
		if err := st.Validate(selection.Config{SampleSize: cfg.Base.SampleSize, TopK: cfg.Base.TopK, Iterations: cfg.Base.NumIterations}); err != nil {
			t.Fatalf("arm %s: %v", arm, err)
		}
		if st.Name() != want[arm] {
			t.Fatalf("arm %s runs %q, want %q", arm, st.Name(), want[arm])
		}
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if len(res.Runs) != len(arms) {
		t.Fatalf("%d runs for %d arms", len(res.Runs), len(arms))
	}
	for _, r := range res.Runs {
		if r.SequencesTrained != budget || r.Iterations != 20 {
			t.Errorf("%s: %d sequence-passes in %d iterations, want %d in 20", r.Arm, r.SequencesTrained, r.Iterations, budget)
		}
		b, err := os.ReadFile(filepath.Join(r.Dir, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"strategy":"`+want[r.Arm]+`"`) {
			t.Errorf("%s: metrics log does not name strategy %s", r.Arm, want[r.Arm])
		}
	}
}
