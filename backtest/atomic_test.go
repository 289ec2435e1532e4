package backtest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/satrain/satrain/internal/atomicfile/atomictest"
)

// TestOutputsWrittenAtomically: report.json and the plots, rewritten on a
// disk that fills up (RLIMIT_FSIZE), fail with EFBIG and leave the previous
// file byte-identical and no temporary file.
func TestOutputsWrittenAtomically(t *testing.T) {
	dir := t.TempDir()
	r := evalExample(t, Config{TopK: 2, HorizonDays: 2, CostBps: 5})
	other := evalExample(t, Config{TopK: 3, HorizonDays: 1, Rebalance: RebalanceStaggered})
	for _, c := range []struct {
		file  string
		limit uint64
		write func(r *Report, path string) error
	}{
		{"report.json", 512, (*Report).WriteJSON},
		{"equity.png", 4 << 10, (*Report).WriteEquityPlot},
		{"calibration.png", 4 << 10, (*Report).WriteCalibrationPlot},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(dir, c.file)
			if err := c.write(r, path); err != nil {
				t.Fatal(err)
			}
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(old)) <= c.limit {
				t.Fatalf("%s is %d bytes, within the %d-byte limit: the test would prove nothing", c.file, len(old), c.limit)
			}
			restore := atomictest.LimitFileSize(t, c.limit)
			err = c.write(other, path)
			restore()
			if !errors.Is(err, syscall.EFBIG) {
				t.Fatalf("write under a %d-byte file size limit: %v, want EFBIG", c.limit, err)
			}
			atomictest.CheckIntact(t, path, old)
			// and a write that succeeds replaces it
			if err := c.write(other, path); err != nil {
				t.Fatal(err)
			}
			atomictest.CheckNoTemp(t, dir)
		})
	}
}
