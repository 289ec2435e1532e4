package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/satrain/satrain/checkpoint"
)

// cliData (20 tickers x 400 days from 2000-01-03) was fitted on the days
// before its train_end attribute, 2001-01-29; its val_end is 2001-04-23.

// TestSplitBeforeFitCLI (issue 23, item 3): split dates before the panel's
// fit end are refused in one line naming the flag, the date and the fit end,
// before any training; the same for eval.
func TestSplitBeforeFitCLI(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		over map[string]string
		want string
	}{
		{map[string]string{"train-end": "2000-06-01"}, "--train-end 2000-06-01 falls before the panel's fit end 2001-01-29: its normalisation and bin edges were fitted on the days before 2001-01-29"},
		{map[string]string{"train-end": "2000-06-01", "val-end": "2000-12-01"}, "--val-end 2000-12-01 falls before the panel's fit end 2001-01-29 (the train end too)"},
		{map[string]string{"val-end": "20001201", "train-end": "20000901"}, "the test period from 2000-12-01 would be scored with statistics of its own days"},
	} {
		r := runCLI(t, nil, cliArgs(filepath.Join(dir, "run"), c.over)...)
		checkOneLineError(t, r, c.want)
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); !os.IsNotExist(err) {
		t.Errorf("a refused run left its save dir: %v", err)
	}
	// On the fit end itself: accepted (the run goes on to train).
	r := runCLI(t, nil, cliArgs(filepath.Join(dir, "ok"), map[string]string{"train-end": "2001-01-29"})...)
	if r.code != 0 {
		t.Errorf("--train-end on the fit end: exit %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, nil, "eval", "--checkpoint", filepath.Join(dir, "ok", "best_model_selection_aware.pt"), "--device", "cpu",
		"--train-end", "2000-06-01", "--progress=false")
	checkOneLineError(t, r, "--train-end 2000-06-01 falls before the panel's fit end 2001-01-29")
}

// TestEvalRefusesSeenDays (issue 23, item 4): a checkpoint trained through
// 2001-03-01 and selected through 2001-06-01 is not evaluated, by eval or
// predict, on a "test" split that starts before 2001-06-01, nor on a "val"
// split that starts before 2001-03-01; its own split passes.
func TestEvalRefusesSeenDays(t *testing.T) {
	dir := t.TempDir()
	save := filepath.Join(dir, "run")
	r := runCLI(t, nil, cliArgs(save, map[string]string{"train-end": "2001-03-01", "val-end": "2001-06-01"})...)
	if r.code != 0 {
		t.Fatalf("training: exit %d\n%s", r.code, r.stderr)
	}
	ckpt := filepath.Join(save, "best_model_selection_aware.pt")
	info, err := checkpoint.ReadInfo(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if info.Meta.TrainEnd != 20010301 || info.Meta.ValEnd != 20010601 {
		t.Errorf("checkpoint periods %d, %d; want 20010301, 20010601", info.Meta.TrainEnd, info.Meta.ValEnd)
	}
	base := []string{"--checkpoint", ckpt, "--device", "cpu", "--progress=false"}
	for _, c := range []struct {
		args []string
		want string
	}{
		// The file's own split: test from 2001-04-23, inside the checkpoint's validation period.
		{[]string{"eval", "--train-end", "2001-01-29", "--val-end", "2001-04-23"},
			"--split test: the test split from 2001-04-23 overlaps the validation period of " + ckpt + " (days before 2001-06-01): its model has seen those returns"},
		{[]string{"eval", "--train-end", "2001-01-29", "--val-end", "2001-02-28"},
			"the test split from 2001-02-28 overlaps the training and validation period"},
		{[]string{"predict", "--train-end", "2001-01-29", "--val-end", "2001-04-23", "--out", filepath.Join(dir, "p.csv")},
			"--split test: the test split from 2001-04-23"},
		{[]string{"predict", "--split", "val", "--train-end", "2001-01-29", "--out", filepath.Join(dir, "p.csv")},
			"--split val: the val split from 2001-01-29 overlaps the training period"},
	} {
		r := runCLI(t, nil, append(c.args, base...)...)
		checkOneLineError(t, r, c.want)
		if strings.Contains(r.stdout, "split") {
			t.Errorf("%v: stdout names a split it refused:\n%s", c.args, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "p.csv")); !os.IsNotExist(err) {
		t.Errorf("a refused predict wrote its file: %v", err)
	}
	// Without dates eval takes the checkpoint's own split: held out.
	r = runCLI(t, nil, append([]string{"eval", "--top-k", "3"}, base...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "on the test split") {
		t.Errorf("eval on the checkpoint's own split: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestEvalRefusesAnotherFit: a checkpoint scored on a panel whose bins (and
// normalisation) were fitted on other data is refused in one line naming both
// files and the checkpoint's own panel, before anything is scored (eval and
// predict); it used to run with a log warning and print figures that meant
// nothing.
func TestEvalRefusesAnotherFit(t *testing.T) {
	dir := t.TempDir()
	save := filepath.Join(dir, "run")
	if r := runCLI(t, nil, cliArgs(save, nil)...); r.code != 0 {
		t.Fatalf("training: exit %d\n%s", r.code, r.stderr)
	}
	other := filepath.Join(dir, "other.h5")
	if r := runCLI(t, nil, "data", "synth", "--tickers", "20", "--days", "400", "--features", "4", "--seed", "4", other); r.code != 0 {
		t.Fatalf("data synth: exit %d\n%s", r.code, r.stderr)
	}
	ckpt := filepath.Join(save, "best_model_selection_aware.pt")
	base := []string{"--checkpoint", ckpt, "--device", "cpu", "--progress=false", "--data", other}
	for _, args := range [][]string{{"eval"}, {"predict", "--out", filepath.Join(dir, "p.csv")}} {
		r := runCLI(t, nil, append(args, base...)...)
		checkOneLineError(t, r, "was trained on a panel fitted differently from "+other)
		if !strings.Contains(r.stderr, "evaluate on the panel it was trained on ("+cliData+")") {
			t.Errorf("%v: the refusal does not name the checkpoint's own panel:\n%s", args, r.stderr)
		}
	}
	// The panel it was trained on still evaluates.
	if r := runCLI(t, nil, "eval", "--checkpoint", ckpt, "--device", "cpu", "--progress=false", "--top-k", "3"); r.code != 0 {
		t.Fatalf("eval on its own panel: exit %d\n%s", r.code, r.stderr)
	}
}
