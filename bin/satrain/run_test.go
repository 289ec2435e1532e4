package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tests of the run commands' output around the trainer: the errors a user
// sees on stderr and what a run leaves on disk (issues 13 and 14).

// TestNoFiniteValidationExitsNonZero: a run whose every validation loss is
// NaN says so on stderr in one line naming its last checkpoint, and exits 1.
// (--lr 1e30 overflows every layer whatever the kernels' summation order; see
// trainer's TestNonFiniteRunRecordsEveryIteration.)
func TestNoFiniteValidationExitsNonZero(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r := runCLI(t, nil, "selection-aware", "--data", cliData, "--preset", "tiny", "--device", "cpu", "--threads", "1",
		"--save-dir", dir, "--metrics-addr", "", "--progress=false", "--use-amp=false", "--sample-size", "64", "--top-k", "8",
		"--train-epochs-per-iteration", "1", "--batch-size", "4", "--inference-batch-size", "16", "--val-size", "32",
		"--val-every", "3", "--checkpoint-every", "3", "--num-iterations", "3", "--lr", "1e30", "--max-grad-norm", "0",
		"--max-skipped-steps", "1000000")
	last := filepath.Join(dir, "checkpoint_iter_3.pt")
	if r.code != 1 || !strings.Contains(r.stderr, "satrain: no finite validation loss after 3 iterations") || !strings.Contains(r.stderr, last) {
		t.Fatalf("exit %d, want 1 with the reason on stderr\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(last); err != nil {
		t.Errorf("the last checkpoint is gone: %v", err)
	}
	if n := strings.Count(string(must(os.ReadFile(filepath.Join(dir, "metrics.jsonl")))), "\n"); n != 3 {
		t.Errorf("metrics.jsonl holds %d records, want 3", n)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestStartupErrorLeavesNothing: a run that fails at start-up prints its
// one-line error and nothing else (no INFO lines before it), and leaves no
// save dir behind; a second run into a save dir that holds a run is refused.
func TestStartupErrorLeavesNothing(t *testing.T) {
	root := t.TempDir()
	bad := filepath.Join(root, "bad.h5")
	if err := os.WriteFile(bad, []byte("not an HDF5 file"), 0o644); err != nil {
		t.Fatal(err)
	}
	save := filepath.Join(root, "runs", "first")
	r := runCLI(t, nil, "selection-aware", "--data", bad, "--preset", "tiny", "--device", "cpu", "--save-dir", save, "--metrics-addr", "")
	checkOneLineError(t, r, bad)
	if _, err := os.Stat(filepath.Join(root, "runs")); err == nil {
		t.Errorf("failed start-up left %s", filepath.Join(root, "runs"))
	}

	args := []string{"train", "--data", cliData, "--preset", "tiny", "--device", "cpu", "--threads", "1", "--save-dir", save,
		"--metrics-addr", "", "--epochs", "1", "--max-seqs-per-epoch", "32", "--val-size", "32", "--progress=false"}
	if r := runCLI(t, nil, args...); r.code != 0 {
		t.Fatalf("train exited %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, nil, args...)
	checkOneLineError(t, r, "--save-dir "+save+" already holds a run")
	// The hint names the command of the run that is there: selection-aware
	// --resume-from a standard checkpoint would start a new fine-tuning run.
	r = runCLI(t, nil, "selection-aware", "--data", cliData, "--preset", "tiny", "--device", "cpu", "--save-dir", save, "--metrics-addr", "")
	checkOneLineError(t, r, "continue it with: satrain train --resume-from "+filepath.Join(save, "checkpoint_epoch_1.pt")+"; or pass --overwrite")

	// eval names the best model's lineage.
	r = runCLI(t, nil, "eval", "--checkpoint", filepath.Join(save, "best_model.pt"), "--data", cliData, "--device", "cpu", "--progress=false")
	if r.code != 0 || !strings.Contains(r.stdout, "\nLineage: standard, trained from random initial weights\n") {
		t.Errorf("eval exited %d; stdout lacks the lineage line:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestDemoTwice: `make run` twice works (the demo replaces its previous
// run), and the second metrics.jsonl holds only the second run.
func TestDemoTwice(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		r := runCLI(t, nil, "demo", "--dir", dir, "--num-iterations", "1", "--metrics-addr", "")
		if r.code != 0 || !strings.Contains(r.stdout, "SELECTION-AWARE TRAINING") {
			t.Fatalf("demo run %d exited %d\nstdout:\n%s\nstderr:\n%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	if n := strings.Count(string(must(os.ReadFile(filepath.Join(dir, "checkpoints", "metrics.jsonl")))), "\n"); n != 1 {
		t.Errorf("metrics.jsonl after two demo runs holds %d records, want 1", n)
	}
}
