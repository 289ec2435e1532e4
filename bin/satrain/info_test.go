package main

import (
	"fmt"
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
	// OMP_NUM_THREADS narrows libtorch's default, as it does PyTorch's.
	m = parse(runCLI(t, []string{"OMP_NUM_THREADS=1"}, "info"))
	if m[1] != "1" {
		t.Fatalf("info under OMP_NUM_THREADS=1: %q, want intra-op 1", m[0])
	}
}

// TestInfoCPUKernels: `satrain info` names the CPU kernels and the
// libsatorch.so it loaded; SATRAIN_CPU_GEMM=libtorch (any case) turns the
// kernels off and says so; any other value is refused in one line naming the
// variable, before anything runs (the shim would read it as "on", silently).
func TestInfoCPUKernels(t *testing.T) {
	kernels := regexp.MustCompile(`CPU kernels \(float32, no autocast\): linear layers (\S+)[^;]*; attention products (\S+) \(scoring and training\); layer norm \S+ \(scoring\); ([^\n]*)`)
	shim := regexp.MustCompile(`libsatorch: (\S+)`)
	for _, c := range []struct {
		env     []string
		off     bool
		refused bool
	}{
		{[]string{"SATRAIN_CPU_GEMM="}, false, false}, // unset or empty: on (the suite may run under =libtorch)
		{[]string{"SATRAIN_CPU_GEMM=oneDNN"}, false, false},
		{[]string{"SATRAIN_CPU_GEMM=LibTorch"}, true, false},
		{[]string{"SATRAIN_CPU_GEMM=1"}, false, true},
		{[]string{"SATRAIN_CPU_ISA=avx"}, false, true},
	} {
		r := runCLI(t, c.env, "info")
		if c.refused {
			name, val, _ := strings.Cut(c.env[0], "=")
			if r.code != 2 || !strings.Contains(r.stderr, fmt.Sprintf("%s=%q: want ", name, val)) || strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stdout, "CPU kernels") {
				t.Errorf("%v: exit %d, want 2 with one line naming the variable\nstdout:\n%s\nstderr:\n%s", c.env, r.code, r.stdout, r.stderr)
			}
			continue
		}
		m := kernels.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("%v: exit %d, no kernels line:\n%s%s", c.env, r.code, r.stdout, r.stderr)
		}
		if c.off && (m[1] != "libtorch" || m[2] != "libtorch" || m[3] != "off: SATRAIN_CPU_GEMM=libtorch") {
			t.Errorf("%v: %q, want both libtorch and the reason", c.env, m[0])
		}
		if !c.off && (m[1] == "libtorch" && m[2] == "libtorch" || strings.HasPrefix(m[3], "off")) {
			t.Errorf("%v: %q, want the kernels on", c.env, m[0])
		}
		p := shim.FindStringSubmatch(r.stdout)
		if p == nil || !strings.HasSuffix(p[1], "libsatorch.so") {
			t.Errorf("%v: no libsatorch path in:\n%s", c.env, r.stdout)
		}
	}
}
