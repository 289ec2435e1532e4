package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/satrain/satrain/torch"
)

// The CLI tests run the real binary, built once by TestMain (its rpath finds
// build/libsatorch.so), on a small synthetic panel written by `satrain data synth`.
var (
	cliBin  string
	cliData string
)

func TestMain(m *testing.M) {
	os.Exit(cliMain(m))
}

func cliMain(m *testing.M) int {
	if fuzzWorker() {
		return m.Run() // fuzz workers run FuzzFlags only: no binary, no panel
	}
	dir, err := os.MkdirTemp("", "satrain-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cliBin = filepath.Join(dir, "satrain")
	build := exec.Command(goTool, "build", "-tags", "satrain_testhooks", "-o", cliBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building satrain for the CLI tests:", err)
		return 1
	}
	cliData = filepath.Join(dir, "synth.h5")
	synth := exec.Command(cliBin, "data", "synth", "--tickers", "20", "--days", "400", "--features", "4", "--seed", "3", cliData)
	synth.Env = cliEnv()
	if out, err := synth.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "satrain data synth: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// cliEnv is the environment without any SATRAIN_* variable.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SATRAIN_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(cliBin, args...)
	cmd.Env = cliEnv(env...)
	cmd.Dir = t.TempDir()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	res := cliResult{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("satrain %v: %v", args, err)
	}
	return res
}

// cliArgs is a cheap, valid selection-aware command line with overrides
// ("" removes a flag).
func cliArgs(saveDir string, over map[string]string) []string {
	base := [][2]string{
		{"data", cliData}, {"preset", "tiny"}, {"device", "cpu"}, {"save-dir", saveDir}, {"metrics-addr", ""},
		{"sample-size", "50"}, {"top-k", "5"}, {"num-iterations", "1"}, {"val-size", "32"},
	}
	args := []string{"selection-aware"}
	seen := map[string]bool{}
	add := func(k, v string) {
		args = append(args, "--"+k+"="+v)
	}
	for _, kv := range base {
		seen[kv[0]] = true
		v, ok := over[kv[0]]
		if !ok {
			add(kv[0], kv[1])
		} else if v != "" {
			add(kv[0], v)
		}
	}
	for k, v := range over {
		if !seen[k] && v != "" {
			add(k, v)
		}
	}
	return args
}

// TestBadValuesFailBeforeWork: each bad value gives one clear line on stderr
// and a non-zero exit before any work (the save dir is not even created).
func TestBadValuesFailBeforeWork(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.h5")
	cases := []struct {
		name string
		over map[string]string
		want string
	}{
		{"top-k above sample-size", map[string]string{"top-k": "60"}, "--top-k 60 is larger than --sample-size 50"},
		{"horizon-idx 4", map[string]string{"horizon-idx": "4"}, "--horizon-idx 4 out of range"},
		{"hidden-dim not divisible by heads", map[string]string{"hidden-dim": "100", "num-heads": "16"}, "--hidden-dim 100 is not divisible by --num-heads 16"},
		{"missing data file", map[string]string{"data": missing}, "--data " + missing},
		{"unknown preset", map[string]string{"preset": "nope"}, `--preset "nope"`},
		{"fp16 on cpu", map[string]string{"amp-dtype": "fp16"}, "--amp-dtype fp16 needs --device cuda"},
		{"bad device name", map[string]string{"device": "tpu"}, `--device: unknown device "tpu"`},
		{"zero batch size", map[string]string{"batch-size": "0"}, "--batch-size must be >= 1"},
	}
	if !(torch.BuiltWithCUDA() && torch.CUDAIsAvailable()) {
		cases = append(cases, struct {
			name string
			over map[string]string
			want string
		}{"cuda on a CPU build", map[string]string{"device": "cuda"}, "device cuda"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saveDir := filepath.Join(t.TempDir(), "ckpt")
			r := runCLI(t, nil, cliArgs(saveDir, c.over)...)
			checkOneLineError(t, r, c.want)
			if _, err := os.Stat(saveDir); err == nil {
				t.Errorf("the save dir was created: work started before the error")
			}
		})
	}
	// The same checks hold for `train`.
	r := runCLI(t, nil, "train", "--data", missing, "--device", "cpu", "--metrics-addr", "", "--preset", "tiny")
	checkOneLineError(t, r, "--data "+missing)
}

func checkOneLineError(t *testing.T, r cliResult, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want non-zero; stdout:\n%s", r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "satrain: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr should be one line 'satrain: ...%s...', got:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stdout, "Iteration") || strings.Contains(r.stdout, "Epoch") || strings.Contains(r.stdout, "====") {
		t.Errorf("training started:\n%s", r.stdout)
	}
}

// TestEnvVarsAndFlagPrecedence: SATRAIN_TOP_K is read, and a flag beats it.
func TestEnvVarsAndFlagPrecedence(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, []string{"SATRAIN_TOP_K=70"}, cliArgs(filepath.Join(dir, "a"), map[string]string{"top-k": ""})...)
	checkOneLineError(t, r, "--top-k 70 is larger than --sample-size 50")
	r = runCLI(t, []string{"SATRAIN_TOP_K=70"}, cliArgs(filepath.Join(dir, "b"), map[string]string{"top-k": "60"})...)
	checkOneLineError(t, r, "--top-k 60 is larger than --sample-size 50")
	// Another variable of the same family, to show the naming rule.
	r = runCLI(t, []string{"SATRAIN_HORIZON_IDX=9"}, cliArgs(filepath.Join(dir, "c"), nil)...)
	checkOneLineError(t, r, "--horizon-idx 9 out of range")
}

// TestSelectionAwareHelp: the documented headings, flags and defaults.
func TestSelectionAwareHelp(t *testing.T) {
	r := runCLI(t, nil, "selection-aware", "--help")
	if r.code != 0 {
		t.Fatalf("--help exited %d: %s", r.code, r.stderr)
	}
	help := r.stdout
	// Map every flag to the heading it is listed under.
	section := map[string]string{}
	cur := ""
	heading := regexp.MustCompile(`^   ([A-Z][A-Za-z ()]+)$`)
	flagLine := regexp.MustCompile(`^   --([a-z0-9-]+)`)
	for _, line := range strings.Split(help, "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			cur = m[1]
		} else if m := flagLine.FindStringSubmatch(line); m != nil {
			section[m[1]] = cur
		}
	}
	headings := map[string]bool{}
	for _, h := range section {
		headings[h] = true
	}
	for _, h := range []string{"Data", "Selection", "Training", "Model", "Checkpointing", "Other"} {
		if !headings[h] {
			t.Errorf("help has no %q heading:\n%s", h, help)
		}
	}
	flags := []struct{ name, heading, def string }{
		{"data", "Data", `"all_complete_dataset.h5"`},
		{"seq-len", "Data", "2000"},
		{"sample-size", "Selection", "10000"},
		{"top-k", "Selection", "100"},
		{"horizon-idx", "Selection", "1"},
		{"train-epochs-per-iteration", "Training", "3"},
		{"num-iterations", "Training", "100"},
		{"lr", "Training", "4e-05"},
		{"batch-size", "Training", "32"},
		{"inference-batch-size", "Training", "64"},
		{"hidden-dim", "Model", "1024"},
		{"num-layers", "Model", "16"},
		{"num-heads", "Model", "16"},
		{"dropout", "Model", "0.15"},
		{"save-dir", "Checkpointing", `"./checkpoints"`},
		{"val-every", "Checkpointing", "5"},
		{"resume-from", "Checkpointing", ""},
		{"use-amp", "Other", "true"},
		{"use-wandb", "Other", "true"},
		{"device", "Other", `"cuda"`},
	}
	for _, f := range flags {
		if got, ok := section[f.name]; !ok || got != f.heading {
			t.Errorf("--%s is listed under %q, want %q", f.name, got, f.heading)
		}
		line := regexp.MustCompile(`(?m)^   --` + regexp.QuoteMeta(f.name) + `\b.*$`).FindString(help)
		if f.def != "" && !strings.Contains(line, "(default: "+f.def+")") {
			t.Errorf("--%s: want default %s, help line is %q", f.name, f.def, line)
		}
		envName := "$SATRAIN_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
		if !strings.Contains(line, envName) {
			t.Errorf("--%s: help line does not name %s: %q", f.name, envName, line)
		}
	}
}

// TestCLIEndToEnd runs `train` and `selection-aware` with the tiny preset on
// the CPU, then fine-tunes selection-aware from the standard best model.
func TestCLIEndToEnd(t *testing.T) {
	dir := t.TempDir()
	std := filepath.Join(dir, "std")
	r := runCLI(t, nil, "train", "--preset", "tiny", "--device", "cpu", "--data", cliData, "--save-dir", std,
		"--epochs", "1", "--max-seqs-per-epoch", "64", "--val-size", "32", "--metrics-addr", "", "--threads", "1")
	if r.code != 0 {
		t.Fatalf("train exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"STANDARD TRAINING", "Epoch 1/1", "✅ Training loss:", "✅ Validation loss:", "✅ Saved best model (val_loss: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("train output lacks %q:\n%s", want, r.stdout)
		}
	}
	best := filepath.Join(std, "best_model.pt")
	if _, err := os.Stat(best); err != nil {
		t.Fatalf("train wrote no best_model.pt: %v", err)
	}

	sa := filepath.Join(dir, "sa")
	// --top-k comes from the environment here.
	r = runCLI(t, []string{"SATRAIN_TOP_K=12"}, "selection-aware", "--preset", "tiny", "--device", "cpu", "--data", cliData,
		"--save-dir", sa, "--num-iterations", "2", "--sample-size", "64", "--train-epochs-per-iteration", "1",
		"--batch-size", "8", "--inference-batch-size", "32", "--val-size", "32", "--val-every", "1", "--lr", "1e-3",
		"--metrics-addr", "", "--threads", "1")
	if r.code != 0 {
		t.Fatalf("selection-aware exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"SELECTION-AWARE TRAINING", "Iteration 2/2", "🎲 Sampling 64 sequences and selecting top 12...",
		"Top 12 mean", "🏋️  Training on top 12 for 1 epoch...", "✅ Validation loss:", "✅ Saved best model (val_loss: ", "Done: 2 iterations"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("selection-aware output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, f := range []string{"best_model_selection_aware.pt", "checkpoint_iter_2.pt", "metrics.jsonl"} {
		if _, err := os.Stat(filepath.Join(sa, f)); err != nil {
			t.Errorf("selection-aware wrote no %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(sa, "metrics.jsonl")); strings.Count(string(b), "\n") != 2 {
		t.Errorf("metrics.jsonl:\n%s", b)
	}

	// Stage 2 from the standard model, without --data: the checkpoint's file is used.
	r = runCLI(t, nil, "selection-aware", "--preset", "tiny", "--device", "cpu",
		"--save-dir", filepath.Join(dir, "ft"), "--resume-from", best, "--num-iterations", "1", "--sample-size", "32",
		"--top-k", "4", "--train-epochs-per-iteration", "1", "--val-size", "32", "--metrics-addr", "", "--use-amp=false")
	if r.code != 0 {
		t.Fatalf("fine-tune exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Fine-tuning from standard-training weights") || !strings.Contains(r.stdout, "Iteration 1/1") {
		t.Errorf("fine-tune output:\n%s", r.stdout)
	}
}
