package docker

// The hash-pinned lock files: docker/torch-requirements.txt (Dockerfile.cuda's builder) and
// third_party/requirements.lock (make deps' venv, what CI builds and tests against), the script that writes
// both (third_party/lock.sh), and the builder's guard that stops a build on a placeholder.

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

var (
	lockLineRE   = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)==(\S+) --hash=sha256:[0-9a-f]{64}$`)
	makeLockRE   = regexp.MustCompile(`(?m)^LOCK\s*:=\s*(\S+)$`)
	cudaMajorRE  = regexp.MustCompile(`^(\d+)\.`)
	torchInLine  = regexp.MustCompile(`(?m)^torch==(\S+)$`)
	cudaImageVer = regexp.MustCompile(`^nvidia/cuda:(\d+)\.`)
)

// checkLock checks a lock file's requirement lines (each pinned to one version and a sha256, names unique)
// and returns name -> version.
func checkLock(t *testing.T, path string) map[string]string {
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
	return names
}

// guard returns the builder's RUN that refuses a placeholder lock, reading path instead of the copy in the
// image.
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

// The container's lock and make deps' lock agree with each other, with what they were written from (the .in
// files), with Dockerfile.cuda's TORCH_VERSION and with the CUDA major version of its base images; the
// Makefile installs the lock this test reads; the guard lets the real lock through and stops a placeholder.
func TestLockFilesAgree(t *testing.T) {
	docker := checkLock(t, filepath.Join(repoRoot, "docker/torch-requirements.txt"))
	dev := checkLock(t, filepath.Join(repoRoot, "third_party/requirements.lock"))

	mk := makeLockRE.FindStringSubmatch(string(readFile(t, "Makefile")))
	if mk == nil || mk[1] != "third_party/requirements.lock" {
		t.Errorf("Makefile's LOCK is %v, want third_party/requirements.lock (the lock this test checks)", mk)
	}
	df := parseDockerfile(t)
	b, r := builderAndRuntime(t, df)
	want := b.args()["TORCH_VERSION"]
	if want != measuredTorch {
		t.Errorf("Dockerfile.cuda TORCH_VERSION=%q, want %s (the measured build)", want, measuredTorch)
	}
	for _, c := range []struct {
		lock map[string]string
		in   string
	}{{docker, "docker/torch-requirements.in"}, {dev, "third_party/requirements.in"}} {
		if c.lock["torch"] != want {
			t.Errorf("the lock written from %s pins torch %q, Dockerfile.cuda installs %s", c.in, c.lock["torch"], want)
		}
		if m := torchInLine.FindStringSubmatch(string(readFile(t, c.in))); m == nil || m[1] != want {
			t.Errorf("%s asks for torch %v, want %s", c.in, m, want)
		}
	}
	// torch and the CUDA libraries it loads are the same in both: the container runs the libtorch CI built
	// against. (Pure-Python helpers such as networkx may differ with the interpreter: 3.7 needs Python 3.12.)
	for name, v := range docker {
		if name != "torch" && !strings.HasPrefix(name, "nvidia-") && !strings.HasPrefix(name, "cuda-") {
			continue
		}
		if dv := dev[name]; dv != v {
			t.Errorf("%s: the container pins %s, make deps %s", name, v, dv)
		}
	}
	// The CUDA runtime wheel's major version is the images'.
	rt, ok := docker["nvidia-cuda-runtime"]
	if !ok {
		t.Fatal("docker lock has no nvidia-cuda-runtime: the torch wheel is not the CUDA build")
	}
	wheelMajor := cudaMajorRE.FindStringSubmatch(rt)
	for _, img := range []string{expandMeta(df, b.base), expandMeta(df, r.base)} {
		m := cudaImageVer.FindStringSubmatch(img)
		if m == nil || wheelMajor == nil || m[1] != wheelMajor[1] {
			t.Errorf("image %s is not CUDA %v, the major version of the wheels' CUDA runtime %s", img, wheelMajor, rt)
		}
	}

	if out, err := exec.Command("sh", "-c", guard(t, filepath.Join(repoRoot, "docker/torch-requirements.txt"))).CombinedOutput(); err != nil {
		t.Errorf("the placeholder guard refused the real lock file: %v\n%s", err, out)
	}
	ph := filepath.Join(t.TempDir(), "placeholder.txt")
	if err := os.WriteFile(ph, []byte("# "+lockPlaceholder+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", guard(t, ph)).CombinedOutput(); err == nil || !strings.Contains(string(out), "third_party/lock.sh") {
		t.Errorf("the guard should stop on a placeholder and name third_party/lock.sh: err=%v\n%s", err, out)
	}
}

// lock.sh on wheels already downloaded: one line per wheel with the file's sha256, names normalised, sorted;
// a requirement that is not among the wheels is refused and the output is not replaced; on another platform
// than Linux x86_64 it refuses to download at all.
func TestLockScript(t *testing.T) {
	script := filepath.Join(repoRoot, "third_party/lock.sh")
	dir := t.TempDir()
	wheels := map[string]string{
		"torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl":               "torch bytes",
		"nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl":        "cublas bytes",
		"Jinja2-3.1.4-py3-none-any.whl":                                    "jinja bytes",
		"typing_extensions-4.12.2-py3-none-any.whl":                        "typing bytes",
		"nvidia_cudnn_cu13-9.19.0.56-1-py3-none-manylinux_2_27_x86_64.whl": "cudnn bytes",
	}
	digest := map[string]string{}
	for name, body := range wheels {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		digest[name] = hex.EncodeToString(sum[:])
	}
	in := filepath.Join(t.TempDir(), "req.in")
	if err := os.WriteFile(in, []byte("# comment\ntorch==2.11.0  # the one we want\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "req.txt")
	if msg, err := exec.Command("bash", script, "3.12", in, out, "--from-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("lock.sh: %v\n%s", err, msg)
	}
	got := readLines(t, out)
	want := []string{
		"jinja2==3.1.4 --hash=sha256:" + digest["Jinja2-3.1.4-py3-none-any.whl"],
		"nvidia-cublas==13.1.0.3 --hash=sha256:" + digest["nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl"],
		"nvidia-cudnn-cu13==9.19.0.56 --hash=sha256:" + digest["nvidia_cudnn_cu13-9.19.0.56-1-py3-none-manylinux_2_27_x86_64.whl"],
		"torch==2.11.0 --hash=sha256:" + digest["torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl"],
		"typing-extensions==4.12.2 --hash=sha256:" + digest["typing_extensions-4.12.2-py3-none-any.whl"],
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lock.sh wrote\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkLock(t, out)

	// A requirement missing from the wheels is refused, and the lock is left as it was.
	if err := os.WriteFile(in, []byte("torch==2.10.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("bash", script, "3.12", in, out, "--from-dir", dir).CombinedOutput(); err == nil ||
		!strings.Contains(string(msg), "torch==2.10.0 is not among the wheels") {
		t.Errorf("lock.sh accepted torch 2.11.0 wheels for torch==2.10.0: err=%v\n%s", err, msg)
	}
	if again := readLines(t, out); strings.Join(again, "\n") != strings.Join(got, "\n") {
		t.Error("a refused run replaced the lock file")
	}

	// pip would evaluate torch's platform markers for the machine it runs on: another platform is refused
	// before anything is downloaded (uname is faked through PATH).
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "uname"), []byte("#!/bin/sh\ncase \"$1\" in -s) echo Darwin;; -m) echo arm64;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, "3.12", in, filepath.Join(t.TempDir(), "x.txt"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "this is Darwin/arm64") {
		t.Errorf("lock.sh ran on a faked Darwin/arm64: err=%v\n%s", err, msg)
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
