package loader

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/atomicfile/atomictest"
)

// checkFailedWrite: err is one line naming path and the OS cause, and
// HDF5 printed nothing.
func checkFailedWrite(t *testing.T, err error, stderr, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("write under a 16 KiB file size limit succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "loader: write "+path+": ") || !strings.Contains(msg, "File too large") ||
		!strings.Contains(msg, "previous file left intact") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s, the cause (File too large) and that the previous file is intact", msg, path)
	}
	if stderr != "" {
		t.Errorf("HDF5 printed to stderr:\n%s", stderr)
	}
}

// TestSynthWriteIsAtomic: `data synth` over an existing panel on a disk that
// fills up (RLIMIT_FSIZE) fails and leaves the old panel byte-identical, with
// no temporary file; a write that succeeds replaces it.
func TestSynthWriteIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.h5")
	if err := Synth(path, SynthConfig{Tickers: 5, Days: 300, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	restore := atomictest.LimitFileSize(t, 16<<10)
	stderr := captureStderrFD(t, func() {
		err = Synth(path, SynthConfig{Tickers: 8, Days: 300, Seed: 2})
	})
	restore()
	checkFailedWrite(t, err, stderr, path)
	atomictest.CheckIntact(t, path, old)
	d, err := Open(path, Options{SeqLen: 10})
	if err != nil {
		t.Fatalf("old panel after the failed write: %v", err)
	}
	d.Close()

	if err := Synth(path, SynthConfig{Tickers: 8, Days: 300, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path, Options{SeqLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.T != 8 {
		t.Errorf("replaced panel has %d tickers, want 8", d.T)
	}
	atomictest.CheckNoTemp(t, filepath.Dir(path))
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("panel mode %v (%v), want 0644", st.Mode(), err)
	}
}

// TestImportCSVWriteIsAtomic: the same for `data import-csv --out`.
func TestImportCSVWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	dates := TradingDays(20190102, 300)
	for k, name := range []string{"AAA", "BBB", "CCC"} {
		var rows []string
		for i, d := range dates {
			c := 50 * math.Pow(1+0.001*float64(k+1), float64(i)) * (1 + 0.01*math.Sin(float64(i*(k+2))))
			rows = append(rows, fmt.Sprintf("%s,%.4f,%.4f,%.4f,%.4f,%.4f,%d", ymd(d), c, c*1.01, c*0.99, c, c, 1000+i*(k+1)))
		}
		writeFile(t, dir, name+".csv", "Date,Open,High,Low,Close,Adj Close,Volume\n"+strings.Join(rows, "\n")+"\n")
	}
	out := filepath.Join(t.TempDir(), "p.h5")
	if _, err := ImportCSV(dir, out, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) <= 16<<10 {
		t.Fatalf("panel of %d bytes fits the 16 KiB limit: the test would prove nothing", len(old))
	}
	restore := atomictest.LimitFileSize(t, 16<<10)
	stderr := captureStderrFD(t, func() {
		_, err = ImportCSV(dir, out, ImportOptions{Bins: 5})
	})
	restore()
	checkFailedWrite(t, err, stderr, out)
	atomictest.CheckIntact(t, out, old)
}
