package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/internal/runtest"
	"github.com/satrain/satrain/option"
	"github.com/satrain/satrain/trainer"
)

// fakeRun writes what a launched run leaves in spec.Dir (run.json and
// report.json) with numbers that name the run, as RunOne would.
func fakeRun(spec RunSpec, budget int64) error {
	v := float64(spec.Run)
	rec := RunRecord{Arm: spec.Arm, Seed: spec.Seed, Dir: spec.Dir, Iterations: spec.Run, SequencesTrained: budget, BestValLoss: 2 + v/100,
		Curve:   []backtest.CurvePoint{{Budget: budget / 2, TopKReturn: v / 2000}, {Budget: budget, TopKReturn: v / 1000}},
		ValLoss: []ValuePoint{{Budget: budget / 2, Value: 2.5}, {Budget: budget, Value: 2 + v/100}}}
	rep := &backtest.Report{NumDates: 10, NumPredictions: 200, FirstDate: 20200102, LastDate: 20200115}
	rep.Precision.Excess, rep.RankIC.Mean = v/1000, v/100
	if err := rep.WriteJSON(filepath.Join(spec.Dir, reportFile)); err != nil {
		return err
	}
	b, err := json.Marshal(runFileData{RunRecord: rec, Budget: budget, Settings: map[string]string{"lr": "0.001", "top-k": "12"}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(spec.Dir, runFile), b, 0o644)
}

func jobsConfig(t *testing.T, arms []string, jobs int) Config {
	cfg := evCompareConfig(runtest.Panel(t, 3), filepath.Join(t.TempDir(), "cmp"), arms, 480)
	cfg.Jobs = jobs
	return cfg
}

// TestPoolOrderAndBound: with Jobs 2 at most two runs are in flight, both
// slots are used, runs finish out of plan order (the latest launched first),
// and the record, runs.json and summary still list arms in order, then
// seeds.
func TestPoolOrderAndBound(t *testing.T) {
	cfg := jobsConfig(t, []string{ArmStandard, ArmSelectionAware, ArmRandom}, 2)
	type waiting struct {
		spec    RunSpec
		release chan struct{}
	}
	started := make(chan waiting)
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	cfg.Launch = func(ctx context.Context, spec RunSpec, progress func(RunProgress)) error {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		w := waiting{spec, make(chan struct{})}
		started <- w
		<-w.release
		progress(RunProgress{Phase: PhaseTraining, Trained: cfg.Budget})
		err := fakeRun(spec, cfg.Budget)
		if err != nil {
			panic(err) // the controller would wait for runs that never start
		}
		return nil
	}
	// Release the latest-launched run whenever both slots are taken (or
	// every run has started), so that runs finish out of order.
	go func() {
		var held []waiting
		launched := 0
		for launched < 6 || len(held) > 0 {
			if launched < 6 && len(held) < 2 {
				w := <-started
				launched++
				held = append(held, w)
				continue
			}
			last := held[len(held)-1]
			held = held[:len(held)-1]
			close(last.release)
		}
	}()
	var finishOrder []int
	cfg.OnEvent = func(e Event) {
		if f, ok := e.(RunFinished); ok {
			finishOrder = append(finishOrder, f.Run)
		}
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if maxInFlight != 2 {
		t.Errorf("at most %d runs in flight, want 2 (Jobs)", maxInFlight)
	}
	if reflect.DeepEqual(finishOrder, []int{1, 2, 3, 4, 5, 6}) || len(finishOrder) != 6 {
		t.Fatalf("runs finished in order %v: want all 6, out of plan order", finishOrder)
	}
	var got []string
	for _, r := range res.Runs {
		got = append(got, fmt.Sprintf("%s/%d", r.Arm, r.Seed))
	}
	want := "standard/7 standard/8 selection_aware/7 selection_aware/8 random/7 random/8"
	if strings.Join(got, " ") != want {
		t.Errorf("runs %v, want %s", got, want)
	}
	var runs struct{ Runs []RunRecord }
	b, err := os.ReadFile(filepath.Join(cfg.OutDir, "runs.json"))
	if err != nil || json.Unmarshal(b, &runs) != nil || !reflect.DeepEqual(runs.Runs, res.Runs) {
		t.Fatalf("runs.json (%v) differs from the result", err)
	}
	sum, err := backtest.ReadSummary(filepath.Join(cfg.OutDir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The fake's excess is run/1000: standard runs 1, 2; selection_aware 3, 4; random 5, 6.
	for i, a := range sum.Arms {
		m, ok := sum.Metric(a.Arm, "topk.excess")
		if a.Arm != cfg.Arms[i] || !ok || m.N != 2 || !near(m.Mean, float64(2*i+1)/1000+0.0005) {
			t.Errorf("summary arm %d: %s, topk.excess %+v", i, a.Arm, m)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

// TestPoolFailure: a failing run's error names its arm and seed; no run
// starts after it, and the run in flight finishes and is kept.
func TestPoolFailure(t *testing.T) {
	cfg := jobsConfig(t, []string{ArmStandard, ArmRandom}, 2) // runs: standard 7, 8; random 7, 8
	failedSeen := make(chan struct{})
	var mu sync.Mutex
	var launched []int
	cfg.Launch = func(ctx context.Context, spec RunSpec, progress func(RunProgress)) error {
		mu.Lock()
		launched = append(launched, spec.Run)
		mu.Unlock()
		if spec.Run == 2 {
			return errors.New("exit status 1; its stderr ends: boom")
		}
		<-failedSeen // run 1 finishes after run 2 failed
		return fakeRun(spec, cfg.Budget)
	}
	var failed []RunFailed
	cfg.OnEvent = func(e Event) {
		if f, ok := e.(RunFailed); ok {
			failed = append(failed, f)
			close(failedSeen)
		}
	}
	res, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "arm standard seed 8: exit status 1; its stderr ends: boom") {
		t.Fatalf("err %v, want the failure of arm standard seed 8", err)
	}
	if errors.Is(err, trainer.ErrInterrupted) {
		t.Errorf("a failure reads as a stop: %v", err)
	}
	if len(failed) != 1 || failed[0].Run != 2 || failed[0].Running != 1 {
		t.Errorf("RunFailed events %+v, want run 2 with 1 still running", failed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(launched) != 2 {
		t.Errorf("runs launched %v: want only 1 and 2 (none after the failure)", launched)
	}
	if len(res.Runs) != 1 || res.Runs[0].Seed != 7 || !fileExists(filepath.Join(cfg.OutDir, "standard", "seed7", runFile)) {
		t.Errorf("finished runs %+v: want standard seed 7, kept", res.Runs)
	}
	if fileExists(filepath.Join(cfg.OutDir, "summary.json")) {
		t.Error("summary.json written by a failed study")
	}
}

// TestPoolCancel: when the context ends no new run starts (the runs in
// flight end after it); Run returns the stopped error, which names --resume.
func TestPoolCancel(t *testing.T) {
	cfg := jobsConfig(t, []string{ArmStandard, ArmRandom}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var launched []int
	cfg.Launch = func(ctx context.Context, spec RunSpec, progress func(RunProgress)) error {
		mu.Lock()
		launched = append(launched, spec.Run)
		mu.Unlock()
		if spec.Run == 1 {
			cancel()
		}
		// Every run ends only after the cancel: no slot frees before it.
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := Run(ctx, cfg)
	if !errors.Is(err, trainer.ErrInterrupted) || !strings.Contains(option.CommandLine(err).Error(), "the same command with --resume keeps them") {
		t.Fatalf("err %v, want the stopped error naming --resume", option.CommandLine(err))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range launched {
		if r > 2 {
			t.Errorf("run %d launched after the context ended (launched %v)", r, launched)
		}
	}
}

// TestPoolResume: a second study into the same folder is refused naming
// --resume; with Resume it launches only the run whose report.json is gone,
// clearing its folder first, and summarises all of them.
func TestPoolResume(t *testing.T) {
	cfg := jobsConfig(t, []string{ArmStandard, ArmRandom}, 2)
	var mu sync.Mutex
	var launched []string
	cfg.Launch = func(ctx context.Context, spec RunSpec, progress func(RunProgress)) error {
		mu.Lock()
		launched = append(launched, fmt.Sprintf("%s/%d", spec.Arm, spec.Seed))
		mu.Unlock()
		if fileExists(filepath.Join(spec.Dir, "stale")) {
			return errors.New("the run's folder was not cleared")
		}
		return fakeRun(spec, cfg.Budget)
	}
	first, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(option.CommandLine(err).Error(), "already holds a run: give compare a new --out folder, or --resume") {
		t.Fatalf("second study without Resume: %v", option.CommandLine(err))
	}
	redo := filepath.Join(cfg.OutDir, "random", "seed7")
	if err := os.Remove(filepath.Join(redo, reportFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(redo, "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	launched = nil
	cfg.Resume = true
	var reused []int
	cfg.OnEvent = func(e Event) {
		if r, ok := e.(RunReused); ok {
			reused = append(reused, r.Run)
		}
	}
	second, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(launched, []string{"random/7"}) || !reflect.DeepEqual(reused, []int{1, 2, 4}) {
		t.Errorf("resume launched %v and reused runs %v, want random/7 and runs 1, 2, 4", launched, reused)
	}
	if !reflect.DeepEqual(first.Runs, second.Runs) {
		t.Errorf("runs after the resume differ:\n%+v\n%+v", first.Runs, second.Runs)
	}
	// A resume with other settings would mix runs: refused, naming them.
	cfg.Settings = map[string]string{"lr": "0.002", "top-k": "12", "dropout": "0.1"}
	_, err = Run(context.Background(), cfg)
	if msg := fmt.Sprint(option.CommandLine(err)); !strings.Contains(msg, `(--dropout was (not recorded), now "0.1", --lr was "0.001", now "0.002"): give the same flags to --resume`) {
		t.Fatalf("resume with other settings: %s", msg)
	}
	cfg.Settings = map[string]string{"lr": "0.001", "top-k": "12"}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("resume with the same settings: %v", err)
	}
	// A resume at another budget would mix runs: refused.
	cfg.Budget = 960
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(option.CommandLine(err).Error(), "not --budget 960") {
		t.Fatalf("resume at another budget: %v", option.CommandLine(err))
	}
}
