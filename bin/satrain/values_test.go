package main

import (
	"strings"
	"testing"
)

// TestTrainRefusesSelectionCadence: train validates and writes a checkpoint
// every epoch, so it has no --val-every or --checkpoint-every: either is a
// usage error (exit 2) saying why, its --help does not list them, and
// selection-aware's still does.
func TestTrainRefusesSelectionCadence(t *testing.T) {
	for _, flag := range []string{"val-every", "checkpoint-every"} {
		args := []string{"train", "--data", cliData, "--device", "cpu", "--metrics-addr", "", "--" + flag, "3"}
		checkUsageLine(t, runCLI(t, nil, args...), args,
			"train: unknown flag --"+flag+": train validates and writes a checkpoint every epoch (--"+flag+" is a selection-aware flag)")
	}
	r := runCLI(t, nil, "train", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--save-dir") {
		t.Fatalf("train --help: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, flag := range []string{"--val-every", "--checkpoint-every"} {
		if strings.Contains(r.stdout, flag) {
			t.Errorf("train --help lists %s:\n%s", flag, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "validates and writes checkpoint_epoch_N.pt every epoch") {
		t.Errorf("train --help does not say when it validates and checkpoints:\n%s", r.stdout)
	}
	r = runCLI(t, nil, "selection-aware", "--help")
	for _, flag := range []string{"--val-every value", "--checkpoint-every value"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("selection-aware --help lacks %s", flag)
		}
	}
}
