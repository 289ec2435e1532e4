// Package testenv finds the project's Python for tests that compare with PyTorch, read files with h5py or
// TensorBoard's reader, or launch ranks with torchrun: the venv that `make deps` creates at the repository
// root (.venv, PyTorch 2.11.0 and the rest of third_party/requirements.lock), or $SATRAIN_PYTHON.
//
// A test that needs it skips when it is missing, except under CI=true, where a missing install step must fail
// instead of hiding.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RepoRoot is the repository's root directory (this file is internal/testenv/testenv.go).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// PythonPath is $SATRAIN_PYTHON when set, else the project's venv interpreter (which may not exist).
func PythonPath() string {
	if p := os.Getenv("SATRAIN_PYTHON"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), ".venv", "bin", "python")
}

// Python returns the project's Python after checking that it imports every module named (for example
// "torch", "h5py", "numpy"). Without it the test is skipped, or fails under CI=true.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	py := PythonPath()
	script := "pass"
	if len(modules) > 0 {
		script = "import " + strings.Join(modules, ", ")
	}
	if out, err := exec.Command(py, "-c", script).CombinedOutput(); err != nil {
		missing(t, py+" cannot "+script+": "+strings.TrimSpace(lastLine(string(out)))+" ("+err.Error()+"); make deps creates .venv")
	}
	return py
}

// Torchrun returns the torchrun of the project's Python (beside the interpreter in the venv's bin).
func Torchrun(t testing.TB) string {
	t.Helper()
	py := Python(t, "torch")
	tr := filepath.Join(filepath.Dir(py), "torchrun")
	if _, err := os.Stat(tr); err != nil {
		missing(t, "no torchrun beside "+py)
	}
	return tr
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("CI: " + why)
	}
	t.Skip(why)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
