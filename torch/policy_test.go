package torch

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestThreadPolicy: one call sizes libtorch's intra-op pool and leaves the
// inter-op pool at 1; 0 means the CPUs of the
// process's affinity mask.
func TestThreadPolicy(t *testing.T) {
	defer LockThread()()
	defer func() { _ = SetThreadPolicy(0) }()
	n := DefaultThreads()
	if n < 1 || n > runtime.NumCPU() {
		t.Fatalf("DefaultThreads() = %d, want 1..%d", n, runtime.NumCPU())
	}
	for _, want := range []int{1, 2, 0} {
		if err := SetThreadPolicy(want); err != nil {
			t.Fatal(err)
		}
		if want == 0 {
			want = n
		}
		got := Threads()
		if got.IntraOp != want || got.InterOp != 1 {
			t.Fatalf("after SetThreadPolicy(%d): %+v, want intra-op %d, inter-op 1", want, got, want)
		}
		if NumThreads() != want {
			t.Fatalf("NumThreads() = %d after SetThreadPolicy(%d)", NumThreads(), want)
		}
	}
	if err := SetNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if got := Threads(); got.IntraOp != 1 || got.InterOp != 1 {
		t.Fatalf("SetNumThreads(1) must apply the whole policy, got %+v", got)
	}
	if err := SetNumThreads(0); err == nil {
		t.Fatal("SetNumThreads(0) must be refused")
	}
}

// helperEnv runs this test binary's TestPolicyHelper with the given
// environment (and command prefix, e.g. taskset) and returns its one line.
func helperEnv(t *testing.T, mode string, env []string, prefix ...string) string {
	t.Helper()
	args := append(prefix, os.Args[0], "-test.run=^TestPolicyHelper$", "-test.count=1")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), "SATORCH_POLICY_HELPER="+mode), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "policy: ") {
			return strings.TrimPrefix(l, "policy: ")
		}
	}
	t.Fatalf("%v printed no result:\n%s", args, out)
	return ""
}

// TestPolicyHelper is the child process of the tests below; it does nothing
// in a normal run.
func TestPolicyHelper(t *testing.T) {
	switch os.Getenv("SATORCH_POLICY_HELPER") {
	case "threads":
		fmt.Printf("policy: %d %d\n", DefaultThreads(), Threads().IntraOp)
	case "faults":
		// A forward pass's pattern: several 4 MiB activations made, written
		// and freed together. glibc needs a few rounds to settle (a freed
		// 4 MiB block is a little short for the next aligned 4 MiB request
		// until neighbours coalesce), so 10 rounds warm up and the minor page
		// faults of the next 10 are counted.
		defer LockThread()()
		round := func() {
			s := NewScope()
			for i := 0; i < 6; i++ {
				s.Full([]int64{1 << 20}, 1, Float32, CPU)
			}
			if err := s.Err(); err != nil {
				panic(err)
			}
			s.Close()
		}
		for i := 0; i < 10; i++ {
			round()
		}
		var a, b syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &a)
		for i := 0; i < 10; i++ {
			round()
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &b)
		fmt.Printf("policy: %s %d\n", MallocPolicy(), b.Minflt-a.Minflt)
	}
}

// TestDefaultThreadsFollowsAffinity: a process limited to one CPU (taskset)
// defaults to one thread.
func TestDefaultThreadsFollowsAffinity(t *testing.T) {
	ts, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("no taskset")
	}
	if got := helperEnv(t, "threads", nil, ts, "-c", "0"); got != "1 1" {
		t.Fatalf("under taskset -c 0: DefaultThreads, intra-op = %q, want \"1 1\"", got)
	}
}

// TestMallocKeepsMemory: by default the shim tells glibc to keep freed
// memory, so repeated passes that allocate the same activations do not fault
// their pages back in; SATRAIN_MALLOC=system restores glibc's defaults. The 10
// counted rounds write 10 x 24 MiB = 61,440 pages; with memory kept, all of
// them together must fault fewer than one round's 6,144 pages (glibc's defaults
// fault nearly every page, every round).
func TestMallocKeepsMemory(t *testing.T) {
	parse := func(s string) (string, int) {
		f := strings.Fields(s)
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		return f[0], n
	}
	pol, keep := parse(helperEnv(t, "faults", []string{"SATRAIN_MALLOC="}))
	if pol != "keep" {
		t.Fatalf("default malloc policy %q, want keep", pol)
	}
	pol, sys := parse(helperEnv(t, "faults", []string{"SATRAIN_MALLOC=system"}))
	if pol != "system" {
		t.Fatalf("SATRAIN_MALLOC=system: policy %q", pol)
	}
	t.Logf("minor faults over 10 rounds: keep %d, system %d", keep, sys)
	if keep > 6144 {
		t.Fatalf("with the keep policy, 10 rounds faulted %d pages (want < 6144: the memory is reused)", keep)
	}
}
