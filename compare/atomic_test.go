package compare

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/satrain/satrain/internal/atomicfile/atomictest"
)

// TestValLossPlotWrittenAtomically: compare's val_loss.png, rewritten on a
// disk that fills up (RLIMIT_FSIZE), fails with EFBIG and leaves the previous
// plot byte-identical and no temporary file.
func TestValLossPlotWrittenAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "val_loss.png")
	runs := []RunRecord{
		{Arm: "standard", ValLoss: []ValuePoint{{Budget: 100, Value: 2.30}, {Budget: 200, Value: 2.25}}},
		{Arm: "selection_aware", ValLoss: []ValuePoint{{Budget: 100, Value: 2.31}, {Budget: 200, Value: 2.20}}},
	}
	if err := writeValLossPlot(path, runs); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4 << 10
	if len(old) <= limit {
		t.Fatalf("plot is %d bytes, within the %d-byte limit: the test would prove nothing", len(old), limit)
	}
	runs[0].ValLoss[1].Value = 2.1
	restore := atomictest.LimitFileSize(t, limit)
	err = writeValLossPlot(path, runs)
	restore()
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write under a %d-byte file size limit: %v, want EFBIG", limit, err)
	}
	atomictest.CheckIntact(t, path, old)
}
