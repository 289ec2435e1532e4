//go:build satrain_testhooks

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// TEST-ONLY HOOK, compiled only with the build tag satrain_testhooks (the
// binary the CLI tests build; see cli_test.go). SATRAIN_TEST_PAUSE_PHASE=<phase>[@<iteration>] makes a
// selection-aware run print the marker line
//
//	SATRAIN_TEST_PAUSE phase=<phase> iteration=<n>
//
// to stderr at the start of that phase (inference, training, validation or
// checkpoint; of the given iteration only, when one is given) and wait there
// until the run is cancelled by a signal or 10 seconds pass. The signal tests
// of bin/satrain use it to deliver SIGINT/SIGTERM inside a chosen phase.
// It is read once, here, when the program starts, and installed as the
// runs' trainer.RunConfig.PhaseHook; it is not a user setting and does
// nothing when unset.
var testPauseAt = parseTestPause(os.Getenv("SATRAIN_TEST_PAUSE_PHASE"))

func init() { phaseHook = testPause }

type testPauseSpec struct {
	phase string
	iter  int // 0: every iteration
}

func parseTestPause(v string) testPauseSpec {
	phase, it, _ := strings.Cut(strings.TrimSpace(v), "@")
	n, _ := strconv.Atoi(it)
	return testPauseSpec{phase: phase, iter: n}
}

// testPause is the phase hook (see testPauseAt).
func testPause(ctx context.Context, phase string, it int) {
	p := testPauseAt
	if p.phase == "" || p.phase != phase || (p.iter > 0 && p.iter != it) {
		return
	}
	fmt.Fprintf(os.Stderr, "SATRAIN_TEST_PAUSE phase=%s iteration=%d\n", phase, it)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
