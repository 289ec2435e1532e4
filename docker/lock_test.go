package docker

// The PyTorch lock file of the builder stage (docker/torch-requirements.txt),
// the script that writes it (docker/lock-torch.sh) and the builder's guard
// that stops a build on the placeholder.

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var lockLineRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)==(\S+) --hash=sha256:[0-9a-f]{64}$`)

// checkLock checks a lock file's requirement lines: each pinned to one
// version and a sha256, names unique, torch at the measured version and CUDA.
func checkLock(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := lockLineRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: %q is not 'name==version --hash=sha256:<64 hex>'", path, i+1, line)
			continue
		}
		if _, dup := names[m[1]]; dup {
			t.Errorf("%s:%d: %s pinned twice", path, i+1, m[1])
		}
		names[m[1]] = m[2]
	}
	if want := measuredTorch + "+" + measuredCUDA; names["torch"] != want {
		t.Errorf("%s pins torch %q, want %s (the GPU measurements' build)", path, names["torch"], want)
	}
}

// guard returns the builder's RUN that refuses the placeholder, reading path
// instead of the copy in the image.
func guard(t *testing.T, path string) string {
	t.Helper()
	b, _ := builderAndRuntime(t, parseDockerfile(t))
	for _, in := range b.all("run") {
		cmd := strings.Join(in.args, " ")
		if strings.Contains(cmd, lockPlaceholder) {
			return strings.ReplaceAll(cmd, "/tmp/torch-requirements.txt", path)
		}
	}
	t.Fatal("builder stage has no RUN that checks the lock file for the placeholder")
	return ""
}

// The committed lock file is either a real lock (every line pinned by hash,
// torch at the measured version) that the guard lets through, or the
// placeholder, which holds no requirement at all (no guessed hash) and which
// the guard refuses with the fix.
func TestTorchLockFile(t *testing.T) {
	path, _ := filepath.Abs(filepath.Join(repoRoot, "docker/torch-requirements.txt"))
	b := readFile(t, "docker/torch-requirements.txt")
	out, err := exec.Command("sh", "-c", guard(t, path)).CombinedOutput()
	if !strings.Contains(string(b), lockPlaceholder) {
		checkLock(t, path)
		if err != nil {
			t.Errorf("the placeholder guard refused a real lock file: %v\n%s", err, out)
		}
		return
	}
	for i, line := range strings.Split(string(b), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("placeholder lock file line %d is a requirement (%q): the placeholder must pin nothing", i+1, l)
		}
	}
	if err == nil || !strings.Contains(string(out), "docker/lock-torch.sh") {
		t.Errorf("the guard should stop on the placeholder and name docker/lock-torch.sh: err=%v\n%s", err, out)
	}
	t.Logf("docker/torch-requirements.txt is the placeholder: a plain docker build stops until docker/lock-torch.sh has written it")
}

// lock-torch.sh on wheels already downloaded: one line per wheel with the
// file's sha256, names normalised, sorted; a torch of another version is refused.
func TestLockTorchScript(t *testing.T) {
	script, _ := filepath.Abs(filepath.Join(repoRoot, "docker/lock-torch.sh"))
	dir := t.TempDir()
	wheels := map[string]string{
		"torch-2.11.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl":         "torch bytes",
		"nvidia_cublas-13.0.0.19-py3-none-manylinux_2_27_x86_64.whl":       "cublas bytes",
		"Jinja2-3.1.4-py3-none-any.whl":                                    "jinja bytes",
		"typing_extensions-4.12.2-py3-none-any.whl":                        "typing bytes",
		"nvidia_cudnn_cu13-9.13.0.50-1-py3-none-manylinux_2_27_x86_64.whl": "cudnn bytes",
	}
	digest := map[string]string{}
	for name, body := range wheels {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		digest[name] = hex.EncodeToString(sum[:])
	}
	out := filepath.Join(t.TempDir(), "req.txt")
	run := exec.Command("bash", script, "--from-dir", dir, "--out", out)
	run.Env = append(os.Environ(), "TORCH_VERSION="+measuredTorch, "TORCH_CUDA="+measuredCUDA)
	if msg, err := run.CombinedOutput(); err != nil {
		t.Fatalf("lock-torch.sh: %v\n%s", err, msg)
	}
	got := readLines(t, out)
	want := []string{
		"jinja2==3.1.4 --hash=sha256:" + digest["Jinja2-3.1.4-py3-none-any.whl"],
		"nvidia-cublas==13.0.0.19 --hash=sha256:" + digest["nvidia_cublas-13.0.0.19-py3-none-manylinux_2_27_x86_64.whl"],
		"nvidia-cudnn-cu13==9.13.0.50 --hash=sha256:" + digest["nvidia_cudnn_cu13-9.13.0.50-1-py3-none-manylinux_2_27_x86_64.whl"],
		"torch==2.11.0+cu130 --hash=sha256:" + digest["torch-2.11.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl"],
		"typing-extensions==4.12.2 --hash=sha256:" + digest["typing_extensions-4.12.2-py3-none-any.whl"],
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lock-torch.sh wrote\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkLock(t, out)
	if msg, err := exec.Command("sh", "-c", guard(t, out)).CombinedOutput(); err != nil {
		t.Errorf("the placeholder guard refused the written lock file: %v\n%s", err, msg)
	}

	// Another torch than the one asked for is refused, and the output is not replaced.
	other := exec.Command("bash", script, "--from-dir", dir, "--out", out)
	other.Env = append(os.Environ(), "TORCH_VERSION=2.10.0", "TORCH_CUDA="+measuredCUDA)
	if msg, err := other.CombinedOutput(); err == nil || !strings.Contains(string(msg), "want 2.10.0+cu130") {
		t.Errorf("lock-torch.sh accepted torch 2.11.0 when asked for 2.10.0: err=%v\n%s", err, msg)
	}
	if again := readLines(t, out); strings.Join(again, "\n") != strings.Join(got, "\n") {
		t.Error("a refused run replaced the lock file")
	}
}

// readLines returns the non-comment, non-empty lines of a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
