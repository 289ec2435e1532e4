package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// TestDataHints: a missing default panel says what the file is and how to
// make one; a folder of CSV files or a CSV file given to --data points to
// `satrain data import-csv`. Each is one line and a non-zero exit before work.
func TestDataHints(t *testing.T) {
	r := runCLI(t, nil, "quickstart", "--device", "cpu", "--metrics-addr", "")
	checkOneLineError(t, r, "--data all_complete_dataset.h5: no such file; it is the HDF5 market panel")
	for _, want := range []string{"satrain data synth", "satrain data import-csv", "satrain demo"} {
		checkOneLineError(t, r, want)
	}

	dir := t.TempDir()
	csvDir := filepath.Join(dir, "prices")
	if err := os.MkdirAll(csvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(csvDir, "AAA.csv")
	if err := os.WriteFile(csv, []byte("Date,Open,High,Low,Close,Adj Close,Volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, cliArgs(filepath.Join(dir, "a"), map[string]string{"data": csvDir})...)
	checkOneLineError(t, r, "--data "+csvDir+" is a folder of 1 CSV files, not an HDF5 panel: import it with `satrain data import-csv "+csvDir+" --out panel.h5`")
	r = runCLI(t, nil, cliArgs(filepath.Join(dir, "b"), map[string]string{"data": csv})...)
	checkOneLineError(t, r, "--data "+csv+" is a CSV file, not an HDF5 panel")
	checkOneLineError(t, r, "satrain data import-csv DIR --out panel.h5")
	r = runCLI(t, nil, "eval", "--checkpoint", "x.pt", "--data", csv, "--device", "cpu")
	checkOneLineError(t, r, "--data "+csv+" is a CSV file")
	// A missing file given on the command line is named as given.
	r = runCLI(t, nil, cliArgs(filepath.Join(dir, "c"), map[string]string{"data": filepath.Join(dir, "nope.h5")})...)
	checkOneLineError(t, r, "--data "+filepath.Join(dir, "nope.h5")+": no such file; make a panel with `satrain data synth`")
}

// TestOverwriteFlag: --overwrite reaches the run's config on every training
// command that has it, and is off by default.
func TestOverwriteFlag(t *testing.T) {
	for _, cmd := range []string{"selection-aware", "train", "quickstart"} {
		for _, over := range []bool{false, true} {
			var got *trainer.RunConfig
			app := newApp()
			app.Writer, app.ErrWriter = io.Discard, io.Discard
			for _, c := range app.Commands {
				if c.Name == cmd {
					selection := cmd != "train"
					c.Action = func(cc *cli.Context) error {
						cfg, err := runConfig(cc, selection)
						got = &cfg
						return err
					}
				}
			}
			args := []string{"satrain", cmd, "--data", cliData, "--device", "cpu", "--preset", "tiny", "--use-wandb=false", "--use-amp=false"}
			if over {
				args = append(args, "--overwrite")
			}
			if err := runArgs(context.Background(), app, args); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if got == nil || got.Overwrite != over {
				t.Errorf("%v: config Overwrite %v, want %v", args, got != nil && got.Overwrite, over)
			}
		}
	}
}
