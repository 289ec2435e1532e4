package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/satrain/satrain/internal/testenv"

	"github.com/satrain/satrain/report"
	"github.com/satrain/satrain/report/tfevent"
)

type tbResult struct {
	Files       []string                `json:"files"`
	Steps       []int                   `json:"steps"`
	Scalars     map[string][][2]float64 `json:"scalars"`
	HistSteps   []int                   `json:"histogram_steps"`
	MissingLast []string                `json:"missing_last"`
	Errors      []string                `json:"errors"`
}

// tbCheck runs python/tb_check.py: TensorBoard's own reader on the save
// dir's event files against its metrics.jsonl.
func tbCheck(t *testing.T, py, saveDir string, killed bool) tbResult {
	t.Helper()
	args := []string{filepath.Join("..", "..", "python", "tb_check.py"), "--json", saveDir}
	if killed {
		args = append(args, "--killed")
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var res tbResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("tb_check.py %s: %v (%v)\n%s", saveDir, err, jerr, out)
	}
	if (err != nil) != (len(res.Errors) > 0) {
		t.Fatalf("tb_check.py %s: exit %v with errors %q", saveDir, err, res.Errors)
	}
	return res
}

func iterations(n int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		out = append(out, i)
	}
	return out
}

// TestTensorBoardReadBack: TensorBoard's reader finds every metrics.jsonl
// value at its iteration in the event files of a finished run, of that run
// resumed from an earlier checkpoint (no step twice), and of a run killed
// mid-way whose last record is then cut short (that record alone is lost)
// and which is then resumed to the end. --use-wandb=false writes none, and
// the checker fails when metrics.jsonl and the event files disagree.
func TestTensorBoardReadBack(t *testing.T) {
	py := testenv.Python(t, "tensorboard")
	save := filepath.Join(t.TempDir(), "run")
	over := map[string]string{"num-iterations": "6", "val-every": "2", "checkpoint-every": "3", "progress": "false"}
	r := runCLI(t, nil, cliArgs(save, over)...)
	if r.code != 0 {
		t.Fatalf("run exited %d\n%s", r.code, r.stderr)
	}
	tbDir := filepath.Join(save, report.TensorBoardDir)
	if !strings.Contains(r.stdout, "  TensorBoard: "+tbDir+" (tensorboard --logdir "+tbDir+")\n") ||
		!strings.Contains(r.stdout, "wandb sync --sync-tensorboard "+tbDir+"\n") {
		t.Errorf("the data block does not say where the event files go and how to sync %s to W&B:\n%s", tbDir, r.stdout)
	}
	res := tbCheck(t, py, save, false)
	if len(res.Errors) > 0 || fmt.Sprint(res.Steps) != fmt.Sprint(iterations(6)) || fmt.Sprint(res.HistSteps) != fmt.Sprint(iterations(6)) {
		t.Fatalf("finished run: steps %v, histograms at %v, errors:\n%s", res.Steps, res.HistSteps, strings.Join(res.Errors, "\n"))
	}
	var tags []string
	for tag, pts := range res.Scalars {
		tags = append(tags, fmt.Sprintf("%-34s steps %v", tag, stepsOf(pts)))
	}
	sort.Strings(tags)
	t.Logf("scalars read back by TensorBoard's reader:\n%s", strings.Join(tags, "\n"))
	for _, want := range []string{report.TagTrainLoss, report.TagValLoss, report.TagLR, report.TagERMean, report.TagERMedian,
		report.TagTopKERMean, report.TagTopKERMin, report.TagOverlap, report.TagPhaseRate + "training", report.TagPhaseSeconds + "inference"} {
		if _, ok := res.Scalars[want]; !ok {
			t.Errorf("no %s scalar", want)
		}
	}

	// The checker is not blind: a changed metrics.jsonl value is an error.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.CopyFS(bad, os.DirFS(save)); err != nil {
		t.Fatal(err)
	}
	mj := filepath.Join(bad, report.MetricsLog)
	b, _ := os.ReadFile(mj)
	first := strings.Index(string(b), `"lr":`) // in iteration 1's record
	os.WriteFile(mj, []byte(string(b[:first])+`"lr":0.5,`+string(b[first+strings.Index(string(b[first:]), ",")+1:])), 0o644)
	if res := tbCheck(t, py, bad, false); len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "learning_rate at step 1") {
		t.Errorf("a changed learning rate at iteration 1: errors %q, want one naming it", res.Errors)
	}

	// Resumed from iteration 3 (as after a crash past it): steps 4-6 are
	// written again, in a second file, and TensorBoard sees each once.
	r = runCLI(t, nil, "selection-aware", "--resume-from", filepath.Join(save, "checkpoint_iter_3.pt"), "--progress=false")
	if r.code != 0 {
		t.Fatalf("resume exited %d\n%s", r.code, r.stderr)
	}
	res = tbCheck(t, py, save, false)
	if len(res.Errors) > 0 || len(res.Files) != 2 || fmt.Sprint(res.Steps) != fmt.Sprint(iterations(6)) {
		t.Fatalf("resumed run: files %v, steps %v, errors:\n%s", res.Files, res.Steps, strings.Join(res.Errors, "\n"))
	}

	// Killed mid-run, then its last record cut in two as a kill inside a
	// write(2) would: TensorBoard reads everything but that record.
	killed := filepath.Join(t.TempDir(), "killed")
	p := rlStart(t, nil, rlArgs(killed, 100000)...)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join(killed, report.MetricsLog)); strings.Count(string(b), "\n") >= 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.wait(t, 30*time.Second)
	files, _ := report.EventFiles(filepath.Join(killed, report.TensorBoardDir))
	if len(files) != 1 {
		t.Fatalf("killed run: event files %v, want 1", files)
	}
	evs, err := tfevent.ReadFile(files[0])
	cut := ""
	if err == nil {
		// The kill left whole records: cut the last one 3 bytes short.
		last := evs[len(evs)-1]
		cut = fmt.Sprintf("%s@%d", last.GetSummary().GetValue()[0].GetTag(), last.Step)
		st, _ := os.Stat(files[0])
		if err := os.Truncate(files[0], st.Size()-3); err != nil {
			t.Fatal(err)
		}
	}
	res = tbCheck(t, py, killed, true)
	if len(res.Errors) > 0 || len(res.Steps) < 2 {
		t.Fatalf("killed run: steps %v, errors:\n%s", res.Steps, strings.Join(res.Errors, "\n"))
	}
	if cut != "" && fmt.Sprint(res.MissingLast) != "["+cut+"]" {
		t.Errorf("killed run with its last record (%s) cut: missing %v, want only that one", cut, res.MissingLast)
	}
	t.Logf("killed after iteration %d; lost %v", res.Steps[len(res.Steps)-1], res.MissingLast)

	// Resumed from its newest checkpoint before the iteration whose record
	// was cut (resuming after it would keep that iteration, less the lost
	// record), to two iterations past the kill: the steps after the
	// checkpoint are written again, once each.
	lastStep := res.Steps[len(res.Steps)-1]
	from := 0
	for _, it := range rlCheckpoints(t, killed) {
		if it < lastStep {
			from = max(from, it)
		}
	}
	if from == 0 {
		t.Fatalf("no checkpoint before iteration %d: %v", lastStep, rlCheckpoints(t, killed))
	}
	end := lastStep + 2
	r = runCLI(t, nil, "selection-aware", "--resume-from", filepath.Join(killed, fmt.Sprintf("checkpoint_iter_%d.pt", from)),
		"--num-iterations", fmt.Sprint(end))
	if r.code != 0 {
		t.Fatalf("resume after the kill exited %d\n%s", r.code, r.stderr)
	}
	res = tbCheck(t, py, killed, false)
	if len(res.Errors) > 0 || fmt.Sprint(res.Steps) != fmt.Sprint(iterations(end)) {
		t.Fatalf("killed run resumed to %d: steps %v, errors:\n%s", end, res.Steps, strings.Join(res.Errors, "\n"))
	}

	// --use-wandb=false without --tensorboard: no event files; an explicit
	// --tensorboard still writes them.
	off := filepath.Join(t.TempDir(), "off")
	over["num-iterations"], over["use-wandb"] = "1", "false"
	if r := runCLI(t, nil, cliArgs(off, over)...); r.code != 0 || strings.Contains(r.stdout, "  TensorBoard: ") {
		t.Fatalf("--use-wandb=false: exit %d, stdout:\n%s", r.code, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(off, report.TensorBoardDir)); !os.IsNotExist(err) {
		t.Errorf("--use-wandb=false wrote %s (stat: %v)", report.TensorBoardDir, err)
	}
	own := filepath.Join(t.TempDir(), "tb")
	over["tensorboard"], over["overwrite"] = own, "true"
	if r := runCLI(t, nil, cliArgs(off, over)...); r.code != 0 || strings.Contains(r.stdout, "wandb sync") || !strings.Contains(r.stdout, "  TensorBoard: "+own) {
		t.Fatalf("--use-wandb=false --tensorboard %s: exit %d, stdout (want the folder, no W&B note):\n%s", own, r.code, r.stdout)
	}
	if files, _ := report.EventFiles(own); len(files) != 1 {
		t.Errorf("--tensorboard %s: event files %v, want 1", own, files)
	}
}

func stepsOf(pts [][2]float64) []int {
	var s []int
	for _, p := range pts {
		s = append(s, int(p[0]))
	}
	return s
}
