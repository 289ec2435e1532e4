package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/satrain/satrain/loader"
	"github.com/urfave/cli/v2"
)

// TestNormalizeArgs: flags move before the positional arguments with their
// values, "--" keeps what follows positional, and each kind of mistake is a
// usage error naming the word (with the nearest name where one is close).
func TestNormalizeArgs(t *testing.T) {
	ok := []struct{ in, want string }{
		{"data import-csv DIR --out X", "data import-csv --out X -- DIR"},
		{"data import-csv DIR --out=X --bins 5", "data import-csv --out=X --bins 5 -- DIR"},
		{"data synth --tickers 5 out.h5", "data synth --tickers 5 -- out.h5"},
		{"selection-aware --data x.h5 --top-k 5", "selection-aware --data x.h5 --top-k 5"},
		{"selection-aware --top-k 5 --data x.h5 --use-amp --lr -1", "selection-aware --top-k 5 --data x.h5 --use-amp --lr -1"},
		{"selection-aware --use-amp=false -top-k 5", "selection-aware --use-amp=false -top-k 5"},
		// a value that looks like a flag stays with its flag; after "--" all is positional
		{"data synth --out-of-place -- --tickers", ""}, // unknown flag, see below
		{"data synth -- --tickers", "data synth -- --tickers"},
		{"data synth - --tickers 3", "data synth --tickers 3 -- -"},
		{"selection-aware --help", "selection-aware --help"},
		{"data synth out.h5 --help", "data synth --help -- out.h5"},
		{"selection-aware help", "selection-aware help"},
		{"help selection-aware", "help selection-aware"},
		{"--version", "--version"},
		{"data", "data"},
		{"data --help", "data --help"},
		{"", ""},
	}
	app := newApp()
	for _, c := range ok {
		if c.want == "" && c.in != "" {
			continue
		}
		got, err := normalizeArgs(app, append([]string{"satrain"}, strings.Fields(c.in)...))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if g := strings.Join(got[1:], " "); g != c.want {
			t.Errorf("%q -> %q, want %q", c.in, g, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"selction-aware --top-k 5", `unknown command "selction-aware"; did you mean selection-aware?`},
		{"evall", `unknown command "evall"; did you mean eval?`},
		{"frobnicate", `unknown command "frobnicate" (one of: selection-aware, train,`},
		{"data synthh x.h5", `data: unknown subcommand "synthh"; did you mean synth?`},
		{"selection-aware --topk 5", "selection-aware: unknown flag --topk; did you mean --top-k?"},
		{"selection-aware --sampel-size 5", "selection-aware: unknown flag --sampel-size; did you mean --sample-size?"},
		{"selection-aware --epochs 5", "selection-aware: unknown flag --epochs; did you mean --train-epochs-per-iteration?"},
		{"selection-aware --zzz", "selection-aware: unknown flag --zzz (see satrain selection-aware --help)"},
		{"selection-aware x.h5 --device cpu", `selection-aware: unexpected argument "x.h5"; did you mean --data x.h5?`},
		{"selection-aware --data x.h5 extra --top-k 5", `selection-aware: unexpected argument "extra" (selection-aware takes no arguments`},
		{"selection-aware --use-amp false", `unexpected argument "false": a bool flag takes its value after '=': --use-amp=false`},
		{"selection-aware --top-k", "selection-aware: flag --top-k needs a value"},
		{"eval run/best.pt --split val", `eval: unexpected argument "run/best.pt"; did you mean --checkpoint run/best.pt?`},
		{"plot metrics.jsonl", `plot: unexpected argument "metrics.jsonl"; did you mean --log metrics.jsonl?`},
		{"data synth a.h5 b.h5", `data synth: unexpected argument "b.h5" after a.h5`},
		{"data synth --out-of-place -- --tickers", "data synth: unknown flag --out-of-place"},
		{"--top-k 5 selection-aware", "flag --top-k goes after the command: satrain selection-aware --top-k"},
		{"--verison", "unknown flag --verison; did you mean --version?"},
		{"help selction-aware", `help: unknown command "selction-aware"; did you mean selection-aware?`},
		{"data help synthh", `help: unknown command "synthh"; did you mean synth?`},
		{"data --out x import-csv DIR", "data: flag --out goes after the subcommand (synth, import-csv, inspect)"},
	}
	for _, c := range bad {
		_, err := normalizeArgs(app, append([]string{"satrain"}, strings.Fields(c.in)...))
		if err == nil || !isUsageError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want a usage error containing %q", c.in, err, c.want)
		}
	}
}

// cmdCase is one command of the table every command is tested against.
type cmdCase struct {
	path  string // command path, e.g. "data import-csv"
	pos   string // the positional argument it takes ("" when none)
	flag  string // a flag with a value
	value string
	typo  string // a mistyped --flag
	want  string // the flag the typo suggests
}

// everyCommand lists every leaf command of the app; TestEveryCommandIsInTheTable
// fails when a command is added without a row here.
func everyCommand() []cmdCase {
	return []cmdCase{
		{"selection-aware", "", "top-k", "5", "topk", "top-k"},
		{"train", "", "epochs", "2", "epoch", "epochs"},
		{"quickstart", "", "sample-size", "300", "sample-szie", "sample-size"},
		{"demo", "", "num-iterations", "3", "num-iteration", "num-iterations"},
		{"data synth", "out.h5", "tickers", "7", "ticker", "tickers"},
		{"data import-csv", "csvdir", "out", "x.h5", "ot", "out"},
		{"data inspect", "panel.h5", "seq-len", "50", "seqlen", "seq-len"},
		{"info", "", "", "", "verbose", ""},
		{"bench", "", "iters", "3", "iter", "iters"},
		{"bench-cascade", "", "iterations", "3", "iteration", "iterations"},
		{"eval", "", "split", "val", "splt", "split"},
		{"predict", "", "out", "p.csv", "probz", "probs"},
		{"compare", "", "seeds", "2", "seed-s", "seeds"},
		{"plot", "", "out", "c.png", "lgo", "log"},
	}
}

func leafPaths(prefix string, cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		p := strings.TrimSpace(prefix + " " + c.Name)
		if len(c.Subcommands) == 0 {
			out = append(out, p)
		}
		out = append(out, leafPaths(p, c.Subcommands)...)
	}
	return out
}

func TestEveryCommandIsInTheTable(t *testing.T) {
	var table []string
	for _, c := range everyCommand() {
		table = append(table, c.path)
	}
	leaves := leafPaths("", newApp().Commands)
	sort.Strings(table)
	sort.Strings(leaves)
	if !reflect.DeepEqual(table, leaves) {
		t.Fatalf("commands %v, table %v: add the new command to everyCommand()", leaves, table)
	}
}

// recordingApp is newApp() with every action replaced by one that records
// the flags' values and the positional arguments it was given.
func recordingApp(got *map[string]any, args *[]string) *cli.App {
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	var replace func([]*cli.Command)
	replace = func(cmds []*cli.Command) {
		for _, c := range cmds {
			replace(c.Subcommands)
			if c.Action == nil {
				continue
			}
			c.Before, c.After = nil, nil
			c.Action = func(cc *cli.Context) error {
				m := map[string]any{}
				for _, f := range cc.Command.Flags {
					m[f.Names()[0]] = cc.Value(f.Names()[0])
				}
				*got, *args = m, cc.Args().Slice()
				return nil
			}
		}
	}
	replace(app.Commands)
	return app
}

// TestEveryCommandReadsFlagsAnywhere: on every command a flag after the
// positional argument (or between other flags) is read, and the positional
// argument arrives intact.
func TestEveryCommandReadsFlagsAnywhere(t *testing.T) {
	for _, c := range everyCommand() {
		if c.flag == "" {
			continue
		}
		t.Run(c.path, func(t *testing.T) {
			var got map[string]any
			var pos []string
			args := append([]string{"satrain"}, strings.Fields(c.path)...)
			if c.pos != "" {
				args = append(args, c.pos)
			}
			args = append(args, "--"+c.flag, c.value)
			if err := runArgs(context.Background(), recordingApp(&got, &pos), args); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if g := fmt.Sprint(got[c.flag]); g != c.value {
				t.Errorf("%v: --%s read as %q, want %q", args, c.flag, g, c.value)
			}
			wantPos := []string{}
			if c.pos != "" {
				wantPos = []string{c.pos}
			}
			if !reflect.DeepEqual(append([]string{}, pos...), wantPos) {
				t.Errorf("%v: positional %q, want %q", args, pos, wantPos)
			}
		})
	}
}

// TestEveryCommandUsageErrors: on every command an unexpected positional
// argument and a mistyped flag are usage errors naming the word (the typo
// with its suggestion). The run stops before the command's action.
func TestEveryCommandUsageErrors(t *testing.T) {
	for _, c := range everyCommand() {
		t.Run(c.path, func(t *testing.T) {
			for _, tc := range usageCases(c) {
				var got map[string]any
				var pos []string
				err := runArgs(context.Background(), recordingApp(&got, &pos), append([]string{"satrain"}, tc.args...))
				if err == nil || !isUsageError(err) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%v: error %v, want a usage error containing %q", tc.args, err, tc.want)
				}
				if got != nil {
					t.Errorf("%v: the command ran", tc.args)
				}
			}
		})
	}
}

type usageCase struct {
	args []string
	want string
}

// usageCases: a stray word between the arguments, as in `... extra --top-k 5`,
// and a mistyped flag.
func usageCases(c cmdCase) []usageCase {
	path := strings.Fields(c.path)
	args := append([]string{}, path...)
	if c.pos != "" {
		args = append(args, c.pos)
	}
	args = append(args, "stray")
	if c.flag != "" {
		args = append(args, "--"+c.flag, c.value)
	}
	want := "unknown flag --" + c.typo
	if c.want != "" {
		want += "; did you mean --" + c.want + "?"
	}
	return []usageCase{
		{args, `unexpected argument "stray"`},
		{append(append([]string{}, path...), "--"+c.typo, "1"), want},
	}
}

// TestUsageErrorsExitTwo runs the binary: a usage error is one line on
// stderr, nothing on stdout, exit 2. Every command with a mistyped flag; the
// stray argument on a sample (the exit status is mapped in main, the same
// for all, and TestEveryCommandUsageErrors checks every command's error).
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, c := range everyCommand() {
		cases := usageCases(c)
		if c.path != "selection-aware" && c.path != "data import-csv" && c.path != "eval" {
			cases = cases[1:]
		}
		for _, tc := range cases {
			checkUsageLine(t, runCLI(t, nil, tc.args...), tc.args, tc.want)
		}
	}
	r := runCLI(t, nil, "selction-aware", "--data", "x.h5")
	checkUsageLine(t, r, []string{"selction-aware"}, `unknown command "selction-aware"; did you mean selection-aware?`)
	r = runCLI(t, nil, "selection-aware", "x.h5", "--device", "cpu")
	checkUsageLine(t, r, []string{"selection-aware x.h5"}, `unexpected argument "x.h5"; did you mean --data x.h5?`)
	r = runCLI(t, nil, "selection-aware", "--top-k", "ten")
	checkUsageLine(t, r, []string{"--top-k ten"}, `selection-aware: invalid value "ten" for flag --top-k: want an integer`)
	r = runCLI(t, nil, "data", "synth", "x.h5", "--tickers", "many")
	checkUsageLine(t, r, []string{"--tickers many"}, `data synth: invalid value "many" for flag --tickers: want an integer`)
	r = runCLI(t, []string{"SATRAIN_LR=fast"}, "train")
	checkUsageLine(t, r, []string{"SATRAIN_LR=fast"}, `"SATRAIN_LR" for flag --lr`)
}

func checkUsageLine(t *testing.T, r cliResult, args []string, want string) {
	t.Helper()
	if r.code != 2 {
		t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "satrain: ") || !strings.Contains(lines[0], want) {
		t.Errorf("%v: stderr should be one line 'satrain: ...%s...', got:\n%s", args, want, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("%v: stdout should be empty, got:\n%s", args, r.stdout)
	}
}

// TestDataCommandsFlagsAfterPath runs the data commands the way users type
// them, flags after the file or folder, and checks the flags took effect.
func TestDataCommandsFlagsAfterPath(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "small.h5")
	r := runCLI(t, nil, "data", "synth", out, "--tickers", "6", "--days", "300", "--features", "4")
	if r.code != 0 {
		t.Fatalf("data synth: exit %d: %s", r.code, r.stderr)
	}
	ds, err := loader.Open(out, loader.Options{SeqLen: 20})
	if err != nil {
		t.Fatal(err)
	}
	nt, nd, nf := len(ds.Tickers()), ds.D, ds.NumFeatures()
	ds.Close()
	if nt != 6 || nd != 300 || nf != 4 {
		t.Errorf("data synth %s --tickers 6 --days 300 --features 4 wrote %d tickers x %d days x %d features", out, nt, nd, nf)
	}

	r = runCLI(t, nil, "data", "inspect", out, "--seq-len", "50", "--val-size", "10")
	if r.code != 0 {
		t.Fatalf("data inspect: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "seq-len:   50,") || !strings.Contains(r.stdout, "validation set: 10 sequences") {
		t.Errorf("data inspect FILE --seq-len 50 --val-size 10: the flags were not read:\n%s", r.stdout)
	}

	csvDir := filepath.Join(dir, "csv")
	if err := os.MkdirAll(csvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	days := loader.TradingDays(20190102, 400)
	for k, name := range []string{"AAA", "BBB"} {
		var b strings.Builder
		b.WriteString("Date,Open,High,Low,Close,Adj Close,Volume\n")
		for i, d := range days {
			c := 50 + float64(k) + 0.1*float64(i%7)
			fmt.Fprintf(&b, "%04d-%02d-%02d,%.2f,%.2f,%.2f,%.2f,%.2f,%d\n", d/10000, d/100%100, d%100, c, c+1, c-1, c, c, 1000+i)
		}
		if err := os.WriteFile(filepath.Join(csvDir, name+".csv"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	panel := filepath.Join(dir, "imported.h5")
	r = runCLI(t, nil, "data", "import-csv", csvDir, "--out", panel, "--min-rows", "300", "--bins", "5")
	if r.code != 0 {
		t.Fatalf("data import-csv DIR --out X: exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	ds, err = loader.Open(panel, loader.Options{SeqLen: 20})
	if err != nil {
		t.Fatalf("import-csv did not write --out %s: %v", panel, err)
	}
	defer ds.Close()
	if len(ds.Tickers()) != 2 || ds.NumBins() != 5 {
		t.Errorf("imported %d tickers with %d bins, want 2 and --bins 5", len(ds.Tickers()), ds.NumBins())
	}
}
