package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// fuzzApp is newApp() with every command's Action replaced: the training
// commands only turn their flags into a config (runConfig) and check it;
// the others do nothing. Nothing is trained, read or written.
func fuzzApp(t *testing.T) *cli.App {
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	app.ExitErrHandler = func(*cli.Context, error) {}
	var replace func(cmds []*cli.Command)
	replace = func(cmds []*cli.Command) {
		for _, c := range cmds {
			replace(c.Subcommands)
			if c.Action == nil {
				continue
			}
			switch c.Name {
			case "selection-aware", "quickstart", "train":
				selection := c.Name != "train"
				c.Action = func(cc *cli.Context) error {
					cfg, err := runConfig(cc, selection)
					if err == nil {
						fuzzCheckConfig(t, cfg, selection)
					}
					return err
				}
			default:
				c.Action = func(*cli.Context) error { return nil }
			}
			c.Before, c.After = nil, nil
		}
	}
	replace(app.Commands)
	return app
}

// fuzzCheckConfig: a config runConfig accepted is one a run can start with.
func fuzzCheckConfig(t *testing.T, cfg trainer.RunConfig, selection bool) {
	if err := cfg.Validate(selection); err != nil {
		t.Fatalf("runConfig returned a config that Validate refuses: %v", err)
	}
	bad := cfg.BatchSize < 1 || cfg.InferenceBatch < 1 || !(cfg.Step.LR > 0) || math.IsInf(cfg.Step.LR, 0) ||
		cfg.Model.SeqLen < 1 || cfg.Model.HiddenDim < 1 || cfg.Model.NumHeads < 1 || cfg.Model.HiddenDim%cfg.Model.NumHeads != 0 ||
		cfg.Model.Dropout < 0 || cfg.Model.Dropout >= 1 || cfg.Data == ""
	if selection {
		bad = bad || cfg.TopK < 1 || cfg.TopK > cfg.SampleSize || cfg.NumIterations < 1 || cfg.HorizonIdx < 0 || cfg.HorizonIdx > 3
	} else {
		bad = bad || cfg.Epochs < 1
	}
	if bad {
		t.Fatalf("runConfig accepted an unusable config: %+v", cfg)
	}
}

var fuzzQuiet sync.Once

// fuzzWorker reports whether this process is a `go test -fuzz` worker,
// which needs neither the binary nor the panel that TestMain prepares.
func fuzzWorker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "test.fuzzworker") {
			return true
		}
	}
	return false
}

// fuzzData is a file for --data: the panel when TestMain made one, else any
// existing file (flag validation only checks that it exists).
func fuzzData() string {
	if cliData != "" {
		return cliData
	}
	return os.Args[0]
}

// FuzzFlags feeds random command lines (arguments separated by NUL; "@DATA"
// stands for a real panel so validation gets past --data) through runArgs
// (argument reordering and checks) to the CLI with its actions replaced: it
// must return an error or a valid config, never panic or start work.
func FuzzFlags(f *testing.F) {
	for _, s := range []string{
		"selection-aware\x00--data\x00@DATA\x00--preset\x00tiny\x00--device\x00cpu",
		"selection-aware\x00--data=@DATA\x00--device=cpu\x00--top-k=0",
		"selection-aware\x00--data=@DATA\x00--device=cpu\x00--top-k=20000",
		"train\x00--data\x00@DATA\x00--device\x00cpu\x00--epochs\x00-1",
		"selection-aware\x00--data=@DATA\x00--device=cpu\x00--lr=NaN",
		"selection-aware\x00--data=@DATA\x00--device=cpu\x00--lr=+Inf\x00--dropout=1",
		"selection-aware\x00--data=@DATA\x00--device=cuda:99",
		"selection-aware\x00--hidden-dim\x0099999999999999999999",
		"selection-aware\x00--train-end\x0020201399\x00--val-end\x00x",
		"quickstart\x00--help",
		"data\x00synth\x00--tickers\x00-5",
		"--version",
		"",
		"selection-aware\x00--seed\x00--seed",
		"selection-aware\x00-\x00--\x00---data",
		"selection-aware\x00@DATA\x00--device\x00cpu",
		"selection-aware\x00--data\x00@DATA\x00--device=cpu\x00--preset\x00tiny\x00--\x00--top-k\x005",
		"data\x00import-csv\x00DIR\x00--out\x00x.h5\x00--bins",
		"selection-aware\x00--use-amp\x00false\x00--topk\x005",
		"selction-aware\x00--data\x00@DATA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fuzzQuiet.Do(func() { slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil))) })
		args := []string{"satrain"}
		if line != "" {
			for _, a := range strings.Split(line, "\x00") {
				args = append(args, strings.ReplaceAll(a, "@DATA", fuzzData()))
			}
		}
		if len(args) > 64 {
			return
		}
		_ = runArgs(context.Background(), fuzzApp(t), args)
	})
}
