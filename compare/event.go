package compare

import "github.com/satrain/satrain/backtest"

// Event is what a study tells Config.OnEvent as it goes: StudyStarted, then
// MetricsServed when it serves metrics, RunReused for each run a resume
// keeps, then for each run RunTraining, RunEvaluating and RunFinished (with
// Config.Jobs > 1, runs overlap: RunProgressed tells how far each has
// trained, and RunFailed of a run that failed). The set is closed; the end of the study is
// Run's return. Events carry values, not wording: the CLI phrases them.
type Event interface{ studyEvent() }

// StudyStarted is the study's plan, once its data is open.
type StudyStarted struct {
	Arms           []string
	Seeds          int   // per arm
	FirstSeed      int64 // seeds FirstSeed, FirstSeed+1, ...
	Budget         int64 // sequence-passes per run
	TrainSequences int64 // in the training split
}

// MetricsServed: the study's Prometheus series are served on Addr
// (host:port, /metrics). Every run reports into them in turn;
// satrain_run_info names the run in progress.
type MetricsServed struct {
	Addr string
}

// RunTraining: run Run of Runs (from 1) starts training arm x seed into Dir;
// the run's console goes to Log.
type RunTraining struct {
	Run, Runs int
	Arm       string
	Seed      int64
	Dir       string
	Log       string
}

// RunEvaluating: run Run has trained; Checkpoints of its checkpoints are
// scored for the convergence curve, then its best model on the test split.
type RunEvaluating struct {
	Run, Runs   int
	Arm         string
	Seed        int64
	Checkpoints int
}

// RunFinished: run Run is trained and evaluated.
type RunFinished struct {
	Run, Runs int
	Record    RunRecord
	// Test is the test evaluation of Record.BestCheckpoint (written to
	// Record.Dir/report.json).
	Test *backtest.Report
}

// RunReused: run Run finished in an earlier compare of the same folder
// (Config.Resume); its record and test report are used as they are.
type RunReused struct {
	Run, Runs int
	Record    RunRecord
	Test      *backtest.Report
}

// RunProgressed: run Run, launched (Config.Jobs > 1), has trained Trained
// sequence-passes so far.
type RunProgressed struct {
	Run, Runs int
	Arm       string
	Seed      int64
	Trained   int64
}

// RunFailed: run Run, launched (Config.Jobs > 1), failed with Err (which
// names its arm and seed). No new run starts; the Running runs still in
// progress finish, and Run returns the failures.
type RunFailed struct {
	Run, Runs int
	Arm       string
	Seed      int64
	Err       error
	Running   int
}

func (StudyStarted) studyEvent()  {}
func (RunReused) studyEvent()     {}
func (RunProgressed) studyEvent() {}
func (RunFailed) studyEvent()     {}
func (MetricsServed) studyEvent() {}
func (RunTraining) studyEvent()   {}
func (RunEvaluating) studyEvent() {}
func (RunFinished) studyEvent()   {}
