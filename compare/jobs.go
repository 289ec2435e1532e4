package compare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/option"
)

// Running a study's runs elsewhere (Config.Jobs, Config.Launch), reading back
// the runs that finished (Config.Resume), and RunOne, what a launched run does.

// RunSpec is one arm x seed of a study, as Config.Launch is asked to run it.
type RunSpec struct {
	Run, Runs int // its place in the study's plan (from 1: arms in order, seeds in order) and the planned runs
	Arm       string
	Seed      int64
	// Dir is OutDir/<arm>/seed<k>: it exists and holds no run.
	Dir string
}

// Phases a launched run reports (RunProgress.Phase).
const (
	PhaseTraining   = "training"
	PhaseEvaluating = "evaluating"
)

// RunProgress is how far a launched run has got, as it tells its study
// (the CLI's child processes send it as JSON lines).
type RunProgress struct {
	Phase   string `json:"phase"`   // PhaseTraining or PhaseEvaluating
	Trained int64  `json:"trained"` // sequence-passes trained so far
	// Checkpoints is, when evaluating, how many checkpoints are scored for
	// the convergence curve before the test evaluation of the best one.
	Checkpoints int `json:"checkpoints,omitempty"`
}

// runFileData is run.json: the run's record and the budget it trained at
// (so that a --resume with another budget does not mix runs).
type runFileData struct {
	RunRecord
	Budget int64 `json:"budget"`
	// Settings are Config.Settings when the run was trained.
	Settings map[string]string `json:"settings,omitempty"`
}

// finished is a run's record and test report.
type finished struct {
	record RunRecord
	test   *backtest.Report
}

// readFinished reads the run.json and report.json a finished run left in
// dir; nil when either is missing (the run did not finish).
func (s *study) readFinished(sp RunSpec) (*finished, error) {
	rp, tp := filepath.Join(sp.Dir, runFile), filepath.Join(sp.Dir, reportFile)
	if !fileExists(rp) || !fileExists(tp) {
		return nil, nil
	}
	b, err := os.ReadFile(rp)
	if err != nil {
		return nil, err
	}
	var rf runFileData
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("%s: %w", rp, err)
	}
	if rf.Arm != sp.Arm || rf.Seed != sp.Seed {
		return nil, fmt.Errorf("%s holds arm %s seed %d, not arm %s seed %d", rp, rf.Arm, rf.Seed, sp.Arm, sp.Seed)
	}
	if rf.Budget != s.cfg.Budget {
		return nil, option.Errorf("%s was trained at a budget of %d sequence-passes, not {budget} %d: give that budget, or a new {out} folder", rp, rf.Budget, s.cfg.Budget)
	}
	if diff := settingsDiff(rf.Settings, s.cfg.Settings); diff != "" {
		return nil, option.Errorf("%s was trained with other settings (%s): give the same flags to --resume, or a new {out} folder", rp, diff)
	}
	test, err := backtest.ReadReport(tp)
	if err != nil {
		return nil, err
	}
	return &finished{record: rf.RunRecord, test: test}, nil
}

// holdsRun reports whether dir holds a run, finished or not.
func holdsRun(dir string) bool {
	return fileExists(checkpoint.RunDir(dir).Metrics()) || fileExists(checkpoint.RunDir(filepath.Join(dir, "stage1")).Metrics()) ||
		fileExists(filepath.Join(dir, runFile)) || fileExists(filepath.Join(dir, reportFile))
}

// runPool hands the runs of specs not done yet to Config.Launch, at most
// Config.Jobs at once, in plan order, and fills done as they finish. Events
// are emitted on the calling goroutine. After a run fails no new run starts;
// those in progress finish (and are kept for a resume), and the failures
// are returned in plan order. When ctx ends no new run starts and Run's
// launcher stops those in progress.
func (s *study) runPool(ctx context.Context, specs []RunSpec, done []*finished) error {
	type update struct {
		i int
		p RunProgress
	}
	type ended struct {
		i   int
		err error
	}
	updates := make(chan update)
	ends := make(chan ended)
	failed := make([]error, len(specs))
	anyFailed := false
	next, running := 0, 0
	for {
		for running < s.cfg.Jobs && !anyFailed && ctx.Err() == nil {
			for next < len(specs) && done[next] != nil {
				next++
			}
			if next == len(specs) {
				break
			}
			i, sp := next, specs[next]
			next++
			if err := os.MkdirAll(sp.Dir, 0o755); err != nil {
				failed[i], anyFailed = err, true
				break
			}
			s.emit(RunTraining{Run: sp.Run, Runs: sp.Runs, Arm: sp.Arm, Seed: sp.Seed, Dir: sp.Dir, Log: filepath.Join(sp.Dir, "train.log")})
			running++
			go func() {
				// The loop below drains updates until every launched run has ended.
				err := s.cfg.Launch(ctx, sp, func(p RunProgress) { updates <- update{i, p} })
				ends <- ended{i, err}
			}()
		}
		if running == 0 {
			break
		}
		select {
		case u := <-updates:
			sp := specs[u.i]
			if u.p.Phase == PhaseEvaluating {
				s.emit(RunEvaluating{Run: sp.Run, Runs: sp.Runs, Arm: sp.Arm, Seed: sp.Seed, Checkpoints: u.p.Checkpoints})
			} else {
				s.emit(RunProgressed{Run: sp.Run, Runs: sp.Runs, Arm: sp.Arm, Seed: sp.Seed, Trained: u.p.Trained})
			}
		case e := <-ends:
			running--
			sp := specs[e.i]
			err := e.err
			var f *finished
			if err == nil {
				if f, err = s.readFinished(sp); err == nil && f == nil {
					err = fmt.Errorf("it ended without writing %s and %s in %s", runFile, reportFile, sp.Dir)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					continue // stopped: Run says so
				}
				failed[e.i], anyFailed = fmt.Errorf("arm %s seed %d: %w", sp.Arm, sp.Seed, err), true
				s.emit(RunFailed{Run: sp.Run, Runs: sp.Runs, Arm: sp.Arm, Seed: sp.Seed, Err: failed[e.i], Running: running})
				continue
			}
			done[e.i] = f
			s.metrics.CompareSeries().Completed.Inc()
			s.emit(RunFinished{Run: sp.Run, Runs: sp.Runs, Record: f.record, Test: f.test})
		}
	}
	if err := errors.Join(failed...); err != nil {
		return err
	}
	return ctx.Err()
}

// RunOne trains and evaluates the one run of the study cfg describes that
// trains arm with seed, into its folder (OutDir/<arm>/seed<k>, which must
// hold no run), as Run does each run: it writes report.json and run.json
// there and tells cfg.OnEvent of RunTraining, RunEvaluating and RunFinished.
// It is what a launched run does (the CLI's child processes call it);
// cfg.Jobs, Launch and Resume are not read, and no metrics are served.
func RunOne(ctx context.Context, cfg Config, arm string, seed int64) (*RunRecord, error) {
	s, err := newStudy(cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	for _, sp := range s.plan() {
		if sp.Arm != arm || sp.Seed != seed {
			continue
		}
		if holdsRun(sp.Dir) {
			return nil, fmt.Errorf("%s already holds a run", sp.Dir)
		}
		f, err := s.runOne(ctx, sp)
		if err != nil {
			return nil, err
		}
		s.emit(RunFinished{Run: sp.Run, Runs: sp.Runs, Record: f.record, Test: f.test})
		return &f.record, nil
	}
	return nil, fmt.Errorf("compare: arm %s seed %d is not a run of this study (arms %s, seeds %d from %d)",
		arm, seed, strings.Join(cfg.Arms, ","), cfg.Seeds, s.base.Seed)
}

// settingsDiff names the settings that differ between a finished run's
// and this study's, "{flag} was X, now Y" (at most three, then a count);
// "" when they agree or either side recorded none.
func settingsDiff(was, now map[string]string) string {
	if was == nil || now == nil {
		return ""
	}
	var keys []string
	for k := range was {
		keys = append(keys, k)
	}
	for k := range now {
		if _, ok := was[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	show := func(m map[string]string, k string) string {
		if v, ok := m[k]; ok {
			return strconv.Quote(v)
		}
		return "(not recorded)"
	}
	var diffs []string
	for _, k := range keys {
		if show(was, k) != show(now, k) {
			diffs = append(diffs, fmt.Sprintf("{%s} was %s, now %s", k, show(was, k), show(now, k)))
		}
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("%d more", len(diffs)-3))
	}
	return strings.Join(diffs, ", ")
}
