package main

import (
	"context"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/torch"
)

// evRun runs the satrain app with args (the program name is added).
func evRun(t *testing.T, args ...string) error {
	t.Helper()
	return runArgs(context.Background(), newApp(), append([]string{"satrain"}, args...)) // as main runs it
}

func evPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var evTiny = []string{"--device", "cpu", "--hidden-dim", "16", "--num-layers", "1", "--num-heads", "2", "--seq-len", "16",
	"--val-size", "64", "--lr", "1e-3", "--batch-size", "8", "--inference-batch-size", "64", "--use-amp=false",
	"--threads", "1", "--progress=false", "--sample-size", "120", "--top-k", "12", "--train-epochs-per-iteration", "2"}

// TestEvalCommands trains a tiny model with the CLI, then runs eval,
// predict, plot and compare end to end on a small synthetic panel.
func TestEvalCommands(t *testing.T) {
	defer torch.LockThread()()
	dir := t.TempDir()
	data := filepath.Join(dir, "synth.h5")
	if err := loader.Synth(data, loader.SynthConfig{Tickers: 20, Days: 400, Features: 4, Bins: 10, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	save := filepath.Join(dir, "run")
	args := append([]string{"selection-aware", "--data", data, "--save-dir", save, "--num-iterations", "4", "--val-every", "2",
		"--checkpoint-every", "2", "--metrics-addr", "", "--use-wandb=false"}, evTiny...)
	if err := evRun(t, args...); err != nil {
		t.Fatalf("training: %v", err)
	}
	ckpt := filepath.Join(save, "best_model_selection_aware.pt")

	// eval: --data defaults to the checkpoint's file.
	out := filepath.Join(dir, "eval")
	if err := evRun(t, "eval", "--checkpoint", ckpt, "--device", "cpu", "--top-k", "4", "--rebalance", "staggered", "--out", out, "--progress=false"); err != nil {
		t.Fatalf("eval: %v", err)
	}
	rep, err := backtest.ReadReport(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := loader.Open(data, loader.Options{SeqLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	testLen := ds.Split("test").Len()
	ds.Close()
	c := rep.Config
	if int64(rep.NumPredictions) != testLen || c.TopK != 4 || c.HorizonDays != 5 || c.CostBps != 10 || c.Rebalance != backtest.RebalanceStaggered {
		t.Fatalf("report: %d predictions (test split %d), config %+v", rep.NumPredictions, testLen, c)
	}
	evPNG(t, filepath.Join(out, "equity.png"))
	evPNG(t, filepath.Join(out, "calibration.png"))

	// --top-frac replaces --top-k; --max-dates bounds the days.
	if err := evRun(t, "eval", "--checkpoint", ckpt, "--data", data, "--device", "cpu", "--top-frac", "0.2", "--max-dates", "10",
		"--horizon-idx", "0", "--out", out, "--progress=false"); err != nil {
		t.Fatalf("eval --top-frac: %v", err)
	}
	if rep, err = backtest.ReadReport(filepath.Join(out, "report.json")); err != nil {
		t.Fatal(err)
	}
	if rep.Config.TopK != 0 || rep.Config.TopFrac != 0.2 || rep.NumDates != 10 || rep.Config.HorizonDays != 1 || rep.TopK.Count != 40 {
		t.Fatalf("top-frac report: config %+v, %d dates, %d top-k", rep.Config, rep.NumDates, rep.TopK.Count)
	}

	// predict with probabilities.
	csvPath := filepath.Join(dir, "preds.csv")
	if err := evRun(t, "predict", "--checkpoint", ckpt, "--device", "cpu", "--split", "val", "--out", csvPath, "--probs", "--progress=false"); err != nil {
		t.Fatalf("predict: %v", err)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ds, _ = loader.Open(data, loader.Options{SeqLen: 16})
	valLen := ds.Split("val").Len()
	defer ds.Close()
	if int64(len(recs)) != valLen+1 || len(recs[0]) != 2+3*4+40 || recs[0][53] != "p_20d_b9" ||
		strings.Join(recs[0][:14], ",") != "ticker,date,er_1d,er_5d,er_10d,er_20d,realized_1d,realized_5d,realized_10d,realized_20d,label_1d,label_5d,label_10d,label_20d" {
		t.Fatalf("predictions: %d records for %d val sequences, header %v", len(recs), valLen, recs[0])
	}
	// Each row's label is the bin of its realized return (the file's bin
	// edges), and dates are YYYY-MM-DD.
	edges := ds.BinEdges()
	for _, rec := range recs[1:] {
		if _, err := backtest.ParseDate(rec[1]); err != nil || len(rec[1]) != 10 {
			t.Fatalf("row %v: date %q, want YYYY-MM-DD", rec[:2], rec[1])
		}
		for h := 0; h < 4; h++ {
			r, err1 := strconv.ParseFloat(rec[6+h], 64)
			b, err2 := strconv.Atoi(rec[10+h])
			if err1 != nil || err2 != nil || b < 0 || b >= 10 {
				t.Fatalf("row %v: realized %q, label %q", rec[:2], rec[6+h], rec[10+h])
			}
			// Edges are float32; the realized return went through float32 too.
			e := edges[h]
			if (b > 0 && r < float64(e[b])) || (b < 9 && r > float64(e[b+1])) {
				t.Fatalf("row %v horizon %d: realized %v outside its label bin %d [%v, %v]", rec[:2], h, r, b, e[b], e[b+1])
			}
		}
	}

	// plot.
	png := filepath.Join(dir, "curves.png")
	if err := evRun(t, "plot", "--log", filepath.Join(save, "metrics.jsonl"), "--out", png); err != nil {
		t.Fatalf("plot: %v", err)
	}
	evPNG(t, png)

	// compare: two arms, one seed.
	cmp := filepath.Join(dir, "cmp")
	args = append([]string{"compare", "--data", data, "--arms", "selection_aware,random", "--seeds", "1", "--budget", "240",
		"--curve-points", "2", "--eval-top-k", "3", "--out", cmp, "--metrics-addr", ""}, evTiny...)
	if err := evRun(t, args...); err != nil {
		t.Fatalf("compare: %v", err)
	}
	sum, err := backtest.ReadSummary(filepath.Join(cmp, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Arms) != 2 || sum.Arms[1].Arm != "random" || sum.Arms[0].Seeds[0] != 42 {
		t.Fatalf("summary arms: %+v", sum.Arms)
	}
	evPNG(t, filepath.Join(cmp, "convergence.png"))
	if _, err := backtest.ReadReport(filepath.Join(cmp, "random", "seed42", "report.json")); err != nil {
		t.Fatal(err)
	}

	// Usage errors.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--device", "cpu"}, "--checkpoint is required"},
		{[]string{"eval", "--checkpoint", ckpt, "--device", "cpu", "--top-frac", "1.5"}, "--top-frac must be in (0, 1]"},
		{[]string{"eval", "--checkpoint", ckpt, "--device", "cpu", "--rebalance", "weekly"}, `--rebalance "weekly"`},
		{[]string{"eval", "--checkpoint", ckpt, "--device", "cpu", "--horizon-idx", "7"}, "--horizon-idx 7 out of range"},
		{[]string{"plot"}, "--log is required"},
		{append([]string{"compare", "--data", data, "--arms", "standard,best", "--out", filepath.Join(dir, "x")}, evTiny...), `unknown arm "best"`},
	} {
		if err := evRun(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error containing %q, got %v", c.args, c.want, err)
		}
	}
}

// TestEvalTopKAtUniverse: a --top-k at or above a date's names makes the
// top-k portfolio that date's whole cross-section: eval says so in one
// warning line; above the panel's tickers (so every date's count) it refuses.
func TestEvalTopKAtUniverse(t *testing.T) {
	save := filepath.Join(t.TempDir(), "run")
	r := runCLI(t, nil, cliArgs(save, map[string]string{"checkpoint-every": "1", "use-amp": "false", "threads": "1", "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("training exited %d\n%s", r.code, r.stderr)
	}
	ckpt := filepath.Join(save, "checkpoint_iter_1.pt")
	eval := func(k string) cliResult {
		return runCLI(t, nil, "eval", "--checkpoint", ckpt, "--device", "cpu", "--threads", "1", "--progress=false", "--top-k", k)
	}
	// The panel has 20 tickers (cli_test.go's `data synth --tickers 20`).
	r = eval("4")
	if r.code != 0 || strings.Contains(r.stderr, "level=WARN") {
		t.Errorf("--top-k 4: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = eval("20")
	var warns []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	if r.code != 0 || len(warns) != 1 || !strings.Contains(warns[0], "--top-k 20 holds every name on") || !strings.Contains(warns[0], "the universe") {
		t.Errorf("--top-k 20: exit %d, want one warning line; stderr:\n%s", r.code, r.stderr)
	}
	r = eval("600")
	checkOneLineError(t, r, "--top-k 600 exceeds the 20 tickers of")
}
