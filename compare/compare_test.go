package compare

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/eval"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/trainer"
)

func evCompareConfig(data, out string, arms []string, budget int64) Config {
	base := evRunConfig(data, "")
	return Config{Base: base, Arms: arms, Seeds: 2, Budget: budget, OutDir: out, CurvePoints: 3, CurveMaxDates: 20,
		Eval: eval.Config{Split: "test", HorizonIdx: 1, Backtest: backtest.Config{TopK: 3, CostBps: 10}}}
}

func evDecodePNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Fatalf("%s: %v image", path, b)
	}
}

func TestCompareEqualBudget(t *testing.T) {
	runtest.Lock(t)
	data := runtest.Panel(t, 3)
	out := filepath.Join(t.TempDir(), "cmp")
	// top-k 12 x 2 epochs = 24 passes per iteration: 480 = 20 iterations.
	const budget = 480
	cfg := evCompareConfig(data, out, []string{ArmStandard, ArmSelectionAware, ArmTwoStage, ArmRandom, ArmNegative}, budget)
	var events []Event
	cfg.OnEvent = func(e Event) { events = append(events, e) }
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if len(res.Runs) != 10 {
		t.Fatalf("%d runs, want 5 arms x 2 seeds", len(res.Runs))
	}
	for _, r := range res.Runs {
		name := r.Arm + "/" + filepath.Base(r.Dir)
		// Equal budget: every arm trains exactly the budget here.
		if r.SequencesTrained != budget {
			t.Errorf("%s trained %d sequence-passes, want %d", name, r.SequencesTrained, budget)
		}
		wantIters := map[string]int{ArmStandard: 3, ArmSelectionAware: 20, ArmRandom: 20, ArmNegative: 10, ArmTwoStage: 1 + 10}[r.Arm]
		if r.Iterations != wantIters {
			t.Errorf("%s: %d iterations, want %d", name, r.Iterations, wantIters)
		}
		// Each selection iteration scores the sample of 120.
		if wantScored := 120 * int64(map[string]int{ArmStandard: 0, ArmSelectionAware: 20, ArmRandom: 20, ArmNegative: 10, ArmTwoStage: 10}[r.Arm]); r.SequencesScored != wantScored {
			t.Errorf("%s scored %d, want %d", name, r.SequencesScored, wantScored)
		}
		if !strings.HasPrefix(r.BestCheckpoint, r.Dir) || !fileExists(r.BestCheckpoint) {
			t.Errorf("%s: best checkpoint %q", name, r.BestCheckpoint)
		}
		if len(r.Curve) < 2 || len(r.ValLoss) < 2 {
			t.Errorf("%s: %d curve points, %d validation points", name, len(r.Curve), len(r.ValLoss))
		}
		for i := 1; i < len(r.Curve); i++ {
			if r.Curve[i].Budget <= r.Curve[i-1].Budget {
				t.Errorf("%s: curve budgets not increasing: %+v", name, r.Curve)
			}
		}
		if n := len(r.Curve); n > 0 && r.Curve[n-1].Budget != budget {
			t.Errorf("%s: last curve point at %d passes, want %d", name, r.Curve[n-1].Budget, budget)
		}
		// Two-stage runs carry their stage-1 baseline: half the budget, the stage-1 best model.
		if (r.Stage1 != nil) != (r.Arm == ArmTwoStage) {
			t.Errorf("%s: stage-1 baseline %+v", name, r.Stage1)
		} else if b := r.Stage1; b != nil && (b.Budget != budget/2 || !strings.HasPrefix(b.BestCheckpoint, filepath.Join(r.Dir, "stage1")) || b.BestValLoss <= 0) {
			t.Errorf("%s: stage-1 baseline %+v, want budget %d and a checkpoint under stage1/", name, b, budget/2)
		}
		rep, err := backtest.ReadReport(filepath.Join(r.Dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.NumPredictions == 0 || rep.Config.HorizonDays != 5 || rep.TopK.Count != 3*rep.NumDates {
			t.Errorf("%s: report %d predictions, horizon %d, %d top-k over %d dates", name, rep.NumPredictions, rep.Config.HorizonDays, rep.TopK.Count, rep.NumDates)
		}
	}
	// Two-stage: stage 1 is standard training on half the budget.
	ts := filepath.Join(out, ArmTwoStage, "seed7")
	for _, f := range []string{"stage1/best_model.pt", "stage1/checkpoint_epoch_1.pt", "best_model_selection_aware.pt", "train.log"} {
		if !fileExists(filepath.Join(ts, f)) {
			t.Errorf("two_stage: missing %s", f)
		}
	}
	// Same seed, same arm setup: the paired runs of seed 7 and 8 differ.
	if res.Runs[0].BestValLoss == res.Runs[1].BestValLoss {
		t.Errorf("seeds 7 and 8 of standard gave the same best val loss %v", res.Runs[0].BestValLoss)
	}

	sum, err := backtest.ReadSummary(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Arms) != 5 || sum.Arms[0].Arm != ArmStandard || sum.Arms[2].Arm != ArmTwoStage || len(sum.Arms[1].Seeds) != 2 {
		t.Fatalf("summary arms %+v", sum.Arms)
	}
	for _, a := range sum.Arms {
		m, ok := sum.Metric(a.Arm, "topk.excess")
		if !ok || m.N != 2 || len(a.Curve) < 2 {
			t.Fatalf("summary of %s: %+v, %d curve points", a.Arm, m, len(a.Curve))
		}
	}
	if b := sum.Arms[2].Stage1; b == nil || b.N != 2 || b.Budget != budget/2 {
		t.Errorf("two_stage summary stage-1 baseline %+v", b)
	}
	var runs struct {
		Budget int64       `json:"budget"`
		Runs   []RunRecord `json:"runs"`
	}
	b, err := os.ReadFile(filepath.Join(out, "runs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &runs); err != nil || runs.Budget != budget || len(runs.Runs) != 10 {
		t.Fatalf("runs.json: %v, budget %d, %d runs", err, runs.Budget, len(runs.Runs))
	}
	txt, err := os.ReadFile(filepath.Join(out, "summary.txt"))
	if err != nil || !strings.Contains(string(txt), "topk.excess") || !strings.Contains(string(txt), "two_stage") {
		t.Fatalf("summary.txt: %v\n%s", err, txt)
	}
	evDecodePNG(t, filepath.Join(out, "convergence.png"))
	evDecodePNG(t, filepath.Join(out, "val_loss.png"))
	evCheckEvents(t, events, cfg, res)

	// A second compare into the same folder is refused, not appended.
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Fatalf("compare into a used folder: err %v", err)
	}
}

func TestCompareConfigValidate(t *testing.T) {
	data := runtest.Panel(t, 3)
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Arms = nil }, "--arms: give at least one"},
		{func(c *Config) { c.Arms = []string{"best"} }, `unknown arm "best"`},
		{func(c *Config) { c.Arms = []string{ArmRandom, ArmRandom} }, "given twice"},
		{func(c *Config) { c.Seeds = 0 }, "--seeds"},
		{func(c *Config) { c.Budget = 0 }, "--budget"},
		{func(c *Config) { c.OutDir = "" }, "--out"},
		{func(c *Config) { c.Base.TopK = 500 }, "--top-k 500 is larger than --sample-size"},
		{func(c *Config) { c.Arms = []string{ArmNegative}; c.Base.TopK = 80 }, "at least twice --top-k"},
	} {
		cfg := evCompareConfig(data, t.TempDir(), []string{ArmStandard}, 100)
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(option.CommandLine(err).Error(), c.want) {
			t.Errorf("want an error containing %q, got %v", c.want, err)
		}
	}
	cfg := evCompareConfig(data, t.TempDir(), Arms, 100)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("every arm: %v", err)
	}
}

func TestPassesPerIteration(t *testing.T) {
	rc := trainer.RunConfig{TopK: 10, EpochsPerIteration: 3}
	for arm, want := range map[string]int64{ArmSelectionAware: 30, ArmRandom: 30, ArmOHEM: 30, ArmNegative: 60, ArmMix: 45} {
		if got := passesPerIteration(rc, armStrategy(arm, rc.TopK)); got != want {
			t.Errorf("%s: %d passes per iteration, want %d", arm, got, want)
		}
	}
}

// evCheckEvents checks what a study told OnEvent against its result: the
// plan, the metrics address when served, and per run training, evaluating
// (one checkpoint per curve point) and finished (the run's record and its
// test report, as written to report.json).
func evCheckEvents(t *testing.T, events []Event, cfg Config, res *Result) {
	t.Helper()
	dopt := cfg.Base.DataOpt
	dopt.SeqLen = cfg.Base.Model.SeqLen
	ds, err := loader.Open(cfg.Base.Data, dopt)
	if err != nil {
		t.Fatal(err)
	}
	trainLen := ds.Split("train").Len()
	ds.Close()
	want := []Event{StudyStarted{Arms: cfg.Arms, Seeds: cfg.Seeds, FirstSeed: cfg.Base.Seed, Budget: cfg.Budget, TrainSequences: trainLen}}
	if cfg.Base.MetricsAddr != "" {
		served, _ := events[len(want)].(MetricsServed) // its address is checked by the caller
		want = append(want, served)
	}
	n := len(res.Runs)
	for i, r := range res.Runs {
		rep, err := backtest.ReadReport(filepath.Join(r.Dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		k := len(want) + 2
		if k < len(events) {
			f, ok := events[k].(RunFinished)
			if !ok || f.Test == nil || f.Test.NumPredictions != rep.NumPredictions || f.Test.Precision.Excess != rep.Precision.Excess {
				t.Errorf("event %d: %#v, want RunFinished with the test report of %s", k, events[k], r.Dir)
			}
		}
		want = append(want,
			RunTraining{Run: i + 1, Runs: n, Arm: r.Arm, Seed: r.Seed, Dir: r.Dir, Log: filepath.Join(r.Dir, "train.log")},
			RunEvaluating{Run: i + 1, Runs: n, Arm: r.Arm, Seed: r.Seed, Checkpoints: len(r.Curve)},
			RunFinished{Run: i + 1, Runs: n, Record: r})
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d:\n%#v", len(events), len(want), events)
	}
	for i, e := range events {
		if f, ok := e.(RunFinished); ok {
			f.Test = nil // checked above
			e = f
		}
		if !reflect.DeepEqual(e, want[i]) {
			t.Errorf("event %d:\n%#v\nwant\n%#v", i, e, want[i])
		}
	}
}
