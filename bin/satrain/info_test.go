package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/satrain/satrain/internal/testenv"
)

// TestInfoReportsThreadPoolsAndAllocator: `satrain info` prints the CPU
// thread pools as the policy set them (intra-op to --threads, inter-op 1; by default libtorch's own default, at most the CPUs the process
// may use) and the allocator
// policy, which SATRAIN_MALLOC=system turns off.
func TestInfoReportsThreadPoolsAndAllocator(t *testing.T) {
	line := regexp.MustCompile(`CPU threads: intra-op (\d+), inter-op (\d+) \(CPUs available to this process: (\d+)\); allocator: (\w+)`)
	parse := func(r cliResult) []string {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("satrain info: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		m := line.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("satrain info printed no thread-pool line:\n%s", r.stdout)
		}
		return m
	}
	m := parse(runCLI(t, nil, "info", "--threads", "1"))
	if m[1] != "1" || m[2] != "1" || m[4] != "keep" {
		t.Fatalf("info --threads 1: %q", m[0])
	}
	m = parse(runCLI(t, []string{"SATRAIN_MALLOC=system"}, "info"))
	intra, _ := strconv.Atoi(m[1])
	cpus, _ := strconv.Atoi(m[3])
	if intra < 1 || intra > cpus || m[2] != "1" || m[4] != "system" {
		t.Fatalf("info (defaults, SATRAIN_MALLOC=system): %q, want intra-op in 1..CPUs available, inter-op 1, allocator system", m[0])
	}
	// The default is libtorch's own (PyTorch's torch.get_num_threads() on the
	// same machine and environment), capped by the CPUs available.
	if out, err := exec.Command(testenv.Python(t, "torch"), "-c", "import torch; print(torch.get_num_threads())").Output(); err == nil {
		py, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if want := min(py, cpus); intra != want {
			t.Errorf("default intra-op %d, want min(PyTorch's default %d, CPUs %d) = %d", intra, py, cpus, want)
		}
	}
	// The shim it loaded is named, and exists.
	r := runCLI(t, nil, "info")
	if m := regexp.MustCompile(`(?m)^libsatorch: (\S+/libsatorch\.so)$`).FindStringSubmatch(r.stdout); m == nil {
		t.Errorf("satrain info names no libsatorch.so:\n%s", r.stdout)
	} else if _, err := os.Stat(m[1]); err != nil {
		t.Errorf("satrain info names %s: %v", m[1], err)
	}
	// OMP_NUM_THREADS narrows libtorch's default, as it does PyTorch's.
	m = parse(runCLI(t, []string{"OMP_NUM_THREADS=1"}, "info"))
	if m[1] != "1" {
		t.Fatalf("info under OMP_NUM_THREADS=1: %q, want intra-op 1", m[0])
	}
}
