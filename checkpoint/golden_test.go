package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/satrain/satrain/torch"
)

// goldenCheckpoint is today's format, written by Save from the
// weights and optimizer state of legacyCheckpoint with goldenMeta. No
// arithmetic runs between reading the legacy file and writing this one, so
// its bytes depend on the format alone, never on the machine's kernels.
const goldenCheckpoint = "testdata/checkpoint_golden_v1.pt"

var updateGolden = flag.Bool("update-golden", false, "rewrite "+goldenCheckpoint+" (only for a deliberate format change)")

// goldenMeta fills every Meta field, so a field dropped or renamed by a
// refactor changes the bytes.
func goldenMeta(old Meta) Meta {
	m := old
	m.StepsSkipped = 2
	m.StartedFrom = "runs/a/best_model.pt"
	m.StartedFromChecksum = "sha256:0123"
	m.Stage = StageTwoStage
	m.TrainEnd, m.ValEnd = 20100104, 20120103
	m.Run = map[string]string{"top-k": "10", "seed": "9", "data": "synthetic.h5"}
	return m
}

// TestCheckpointBytesGolden: the bytes a checkpoint is written as, and the
// content checksum it records, are those of the committed golden file. A
// change of either is a format change: it needs a new Version
// and a deliberate -update-golden, never a side effect of moving code.
func TestCheckpointBytesGolden(t *testing.T) {
	defer torch.LockThread()()
	old, err := Load(legacyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Free()
	eng := restoredEngine(t, old)
	path := filepath.Join(t.TempDir(), "now.pt")
	if err := Save(path, eng, goldenMeta(old.Meta), true); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *updateGolden {
		if err := os.WriteFile(goldenCheckpoint, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gs, ws := sha256.Sum256(got), sha256.Sum256(want)
		t.Fatalf("checkpoint bytes changed: %d bytes sha256 %s, golden %d bytes sha256 %s",
			len(got), hex.EncodeToString(gs[:8]), len(want), hex.EncodeToString(ws[:8]))
	}
	back, err := Load(goldenCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Free()
	const wantSum = "sha256:873c98a6432c4eb91256cef6a59f100e587c52009bf1523a53c92613942e8161"
	if back.Checksum != wantSum {
		t.Fatalf("content checksum %s, want %s", back.Checksum, wantSum)
	}
}
