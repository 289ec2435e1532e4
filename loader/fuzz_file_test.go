package loader

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	fuzzFileOnce sync.Once
	fuzzFileRaw  []byte
	fuzzFileErr  error
)

// fuzzFileBase is a small valid panel file (3 tickers x 60 days), as bytes.
func fuzzFileBase(dir string) ([]byte, error) {
	fuzzFileOnce.Do(func() {
		p := filepath.Join(dir, "base.h5")
		if fuzzFileErr = WritePanel(p, knownPanel(3, 60)); fuzzFileErr == nil {
			fuzzFileRaw, fuzzFileErr = os.ReadFile(p)
		}
	})
	return fuzzFileRaw, fuzzFileErr
}

// FuzzOpenFile damages a valid HDF5 panel on disk: cut keeps that many
// bytes (modulo the size; 0 keeps all) and each 3-byte group of flips XORs
// one byte (2 bytes of position, 1 of mask). Open must refuse the file with
// an error or give a dataset whose windows are finite with labels in range:
// never a panic, a crash or a hang.
func FuzzOpenFile(f *testing.F) {
	f.Add(uint32(0), []byte{})           // intact
	f.Add(uint32(1), []byte{})           // one byte
	f.Add(uint32(7), []byte{})           // inside the signature
	f.Add(uint32(512), []byte{})         // superblock and part of the root group
	f.Add(uint32(4096), []byte{})        // metadata, no data
	f.Add(uint32(0xffffff00), []byte{})  // tail cut (modulo the size)
	f.Add(uint32(0), []byte{0, 0, 0xff}) // signature flipped
	f.Add(uint32(0), []byte{0x00, 0x08, 0x01, 0x40, 0x00, 0x80})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, cut uint32, flips []byte) {
		base, err := fuzzFileBase(dir)
		if err != nil {
			t.Fatal(err)
		}
		intact := cut == 0 && len(flips) < 3
		b := append([]byte(nil), base...)
		if cut > 0 {
			b = b[:int(cut)%len(b)]
		}
		for ; len(flips) >= 3 && len(b) > 0; flips = flips[3:] {
			b[int(binary.LittleEndian.Uint16(flips))%len(b)] ^= flips[2]
		}
		path := filepath.Join(t.TempDir(), "damaged.h5")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := Open(path, Options{SeqLen: 5, ValSize: 4})
		if err != nil {
			if intact {
				t.Fatalf("the intact file is refused: %v", err)
			}
			return
		}
		defer d.Close()
		for _, name := range []string{"train", "val", "test"} {
			s := d.Split(name)
			n := min(s.Len(), 20)
			ids := make([]SeqID, n)
			for i := range ids {
				ids[i] = s.At(int64(i))
			}
			feats := make([]float32, len(ids)*5*d.F)
			labels := make([]int64, len(ids)*d.H)
			if err := d.ReadWindows(ids, feats, labels, nil); err != nil {
				continue // a damaged chunk found on read: an error is fine
			}
			for _, x := range feats {
				if x != x || math.IsInf(float64(x), 0) {
					t.Fatal("non-finite feature in a window")
				}
			}
			for _, l := range labels {
				if l < 0 || l >= int64(d.B) {
					t.Fatalf("label %d out of range", l)
				}
			}
		}
	})
}

// TestOpenRefusesShapeBeyondStorage: the byte flip FuzzOpenFile found (it made
// a dataset's shape need 4 TB, and Open allocated it: a fatal out-of-memory)
// is refused at open, in one line naming the dataset and what the file
// stores for it.
func TestOpenRefusesShapeBeyondStorage(t *testing.T) {
	base, err := fuzzFileBase(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), base...)
	flip := []byte("|k\x7f") // testdata/fuzz/FuzzOpenFile/b7be83603c1c1834
	b[int(binary.LittleEndian.Uint16(flip))%len(b)] ^= flip[2]
	path := filepath.Join(t.TempDir(), "damaged.h5")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{SeqLen: 5, ValSize: 4})
	if err == nil || !strings.Contains(err.Error(), "but the file stores") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open of a file with a damaged shape: %v; want one line saying what the file stores", err)
	}
}
