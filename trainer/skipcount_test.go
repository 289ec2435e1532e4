package trainer

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/torch"
)

// TestSkippedStepsTrainNothing: a skipped step applies no update, so its
// sequences are not trained, and the console's training line says how many
// of the iteration's steps were skipped. ltConfig trains top 12 for 2 epochs
// in batches of 8: steps of 8, 4, 8, 4 per iteration; nanFault makes the
// third (a batch of 8) non-finite, so iteration 1 trains 24 - 8 = 16.
func TestSkippedStepsTrainNothing(t *testing.T) {
	defer torch.LockThread()()
	prev := slog.Default() // the skip's warning is expected here
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer slog.SetDefault(prev)
	var console bytes.Buffer
	cfg := ltConfig(runtest.Panel(t, 11), filepath.Join(t.TempDir(), "run"), &console)
	cfg.NumIterations = 2
	cfg.testFault = nanFault()
	res, err := RunSelectionAware(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Iterations[0].TrainedTotal; got != 16 {
		t.Errorf("iteration 1: %d sequences trained, want 16 (24 less the skipped batch of 8)", got)
	}
	if got := res.Iterations[1].TrainedTotal; got != 16+24 {
		t.Errorf("after iteration 2: %d sequences trained, want 40", got)
	}
	lines := strings.Split(console.String(), "\n")
	var train []string
	for _, l := range lines {
		if strings.Contains(l, "Training loss:") {
			train = append(train, l)
		}
	}
	if len(train) != 2 {
		t.Fatalf("%d training-loss lines, want 2:\n%s", len(train), console.String())
	}
	if !strings.HasSuffix(train[0], " (1 of 4 steps skipped, non-finite)") {
		t.Errorf("iteration 1's training line %q does not say 1 of 4 steps were skipped", train[0])
	}
	if strings.Contains(train[1], "skipped") {
		t.Errorf("iteration 2's training line %q mentions skipped steps; none were", train[1])
	}
}
