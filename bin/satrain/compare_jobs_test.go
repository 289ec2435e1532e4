package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/satrain/satrain/backtest"
	"github.com/satrain/satrain/compare"
	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/torch"
)

// TestCompareJobs runs a tiny study (2 arms x 1 seed) with --jobs 2 (two
// child processes of the binary) and with --jobs 1 (in process): every
// run's test numbers and the summary are identical. Then --resume after one
// run's report.json is removed redoes that run only, and a rerun without
// --resume is refused naming the flag.
func TestCompareJobs(t *testing.T) {
	if torch.AffinityCPUs() < 2 {
		t.Skip("--jobs 2 --threads 1 needs 2 CPUs")
	}
	dir := t.TempDir()
	cmd := func(out string, extra ...string) []string {
		return append(append([]string{"compare", "--data", cliData, "--arms", "standard,selection_aware", "--seeds", "1", "--budget", "240",
			"--curve-points", "2", "--eval-top-k", "3", "--out", out, "--metrics-addr", ""}, evTiny...), extra...)
	}
	out1, out2 := filepath.Join(dir, "jobs1"), filepath.Join(dir, "jobs2")
	r2 := runCLI(t, nil, cmd(out2, "--jobs", "2")...)
	if r2.code != 0 {
		t.Fatalf("--jobs 2: exit %d\n%s\n%s", r2.code, r2.stdout, r2.stderr)
	}
	r1 := runCLI(t, nil, cmd(out1)...)
	if r1.code != 0 {
		t.Fatalf("--jobs 1: exit %d\n%s\n%s", r1.code, r1.stdout, r1.stderr)
	}
	runs := []string{"standard/seed42", "selection_aware/seed42"}
	for _, run := range runs {
		a, err1 := backtest.ReadReport(filepath.Join(out1, run, "report.json"))
		b, err2 := backtest.ReadReport(filepath.Join(out2, run, "report.json"))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", run, err1, err2)
		}
		if a.Precision.Excess != b.Precision.Excess || a.RankIC.Mean != b.RankIC.Mean || a.NumPredictions == 0 {
			t.Errorf("%s: --jobs 1 excess %v rank IC %v, --jobs 2 excess %v rank IC %v", run, a.Precision.Excess, a.RankIC.Mean, b.Precision.Excess, b.RankIC.Mean)
		}
		// A child's stderr is kept in its run folder; it wrote run.json.
		if _, err := os.Stat(filepath.Join(out2, run, "child.log")); err != nil {
			t.Error(err)
		}
		var rec compare.RunRecord
		if b, err := os.ReadFile(filepath.Join(out2, run, "run.json")); err != nil || json.Unmarshal(b, &rec) != nil || rec.SequencesTrained != 240 {
			t.Errorf("%s/run.json: %v, %+v", run, err, rec)
		}
	}
	s1, err1 := os.ReadFile(filepath.Join(out1, "summary.json"))
	s2, err2 := os.ReadFile(filepath.Join(out2, "summary.json"))
	if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
		t.Errorf("summary.json differs between --jobs 1 and --jobs 2 (%v, %v)", err1, err2)
	}
	if !strings.Contains(r2.stdout, "run 2/2: selection_aware seed 42 training") || !strings.Contains(r2.stdout, "selection_aware  seed 42   trained 240 passes") {
		t.Errorf("--jobs 2 console:\n%s", r2.stdout)
	}

	// Again into a used folder: refused, naming --resume.
	checkOneLineError(t, runCLI(t, nil, cmd(out2, "--jobs", "2")...), "already holds a run: give compare a new --out folder, or --resume")

	// --resume redoes only the run without its report.json, from a cleared folder.
	redo, keep := filepath.Join(out2, runs[1]), filepath.Join(out2, runs[0])
	for _, f := range []string{filepath.Join(redo, "report.json")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{redo, keep} {
		if err := os.WriteFile(filepath.Join(d, "marker"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, nil, cmd(out2, "--jobs", "2", "--resume")...)
	if r.code != 0 {
		t.Fatalf("--resume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(keep, "marker")); err != nil {
		t.Errorf("the finished run's folder was touched: %v", err)
	}
	if _, err := os.Stat(filepath.Join(redo, "marker")); err == nil {
		t.Errorf("the unfinished run's folder was not cleared")
	}
	if !strings.Contains(r.stdout, "run 1/2: standard seed 42 finished before") || strings.Contains(r.stdout, "standard seed 42 training") ||
		!strings.Contains(r.stdout, "run 2/2: selection_aware seed 42 training") {
		t.Errorf("--resume console:\n%s", r.stdout)
	}
	if s, err := os.ReadFile(filepath.Join(out2, "summary.json")); err != nil || !bytes.Equal(s, s1) {
		t.Errorf("summary.json after --resume differs (%v)", err)
	}
}

// TestCheckJobsThreads: --jobs x --threads (0: every CPU) must fit the CPUs.
func TestCheckJobsThreads(t *testing.T) {
	for _, c := range []struct {
		jobs, threads, cpus int
		want                string
	}{
		{1, 0, 2, ""},
		{2, 1, 2, ""},
		{4, 2, 8, ""},
		{2, 0, 2, "--jobs 2 x --threads 0 (all 2 CPUs) is 4 threads, more than the 2 CPUs this process may use (their runs would wait on each other): give --threads 1"},
		{2, 3, 4, "--jobs 2 x --threads 3 is 6 threads, more than the 4 CPUs this process may use (their runs would wait on each other): give --threads 2"},
		{3, 1, 2, "give --threads 1 and at most --jobs 2"},
	} {
		err := checkJobsThreads(c.jobs, c.threads, c.cpus)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("jobs %d threads %d cpus %d: %v, want %q", c.jobs, c.threads, c.cpus, err, c.want)
		}
	}
}

// TestChildProgressPipe: a child counts the sequence-passes of its training
// passes (two-stage runs have several), and the parent reads its JSON lines
// back, sending anything else to the log.
func TestChildProgressPipe(t *testing.T) {
	var pipe bytes.Buffer
	p := &childProgress{w: &pipe}
	for _, total := range []int{24, 30} {
		p.Report(event.Progress{Phase: event.PhaseTraining, Total: total})
		p.Report(event.Progress{Phase: event.PhaseInference, Done: 5, Total: 100}) // scoring trains nothing
		for done := 8; done <= total; done += 8 {
			p.Report(event.Progress{Phase: event.PhaseTraining, Done: min(done, total), Total: total})
		}
		p.Report(event.Progress{Phase: event.PhaseTraining, Done: total, Total: total})
	}
	p.evaluating(3)
	pipe.WriteString("a stray line\n")
	var got []compare.RunProgress
	var log bytes.Buffer
	readChildProgress(&pipe, &log, func(rp compare.RunProgress) { got = append(got, rp) })
	if n := len(got); n < 2 || got[n-2] != (compare.RunProgress{Phase: compare.PhaseTraining, Trained: 54}) ||
		!reflect.DeepEqual(got[n-1], compare.RunProgress{Phase: compare.PhaseEvaluating, Trained: 54, Checkpoints: 3}) {
		t.Errorf("progress read back: %+v, want training up to 24+30 then evaluating 3 checkpoints", got)
	}
	if log.String() != "a stray line\n" {
		t.Errorf("log %q", log.String())
	}
}
