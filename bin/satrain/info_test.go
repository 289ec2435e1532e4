package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestInfoReportsThreadPoolsAndAllocator: `satrain info` prints the three CPU
// thread pools as the policy set them (intra-op and OpenBLAS to --threads,
// inter-op 1; by default the CPUs the process may use) and the allocator
// policy, which SATRAIN_MALLOC=system turns off.
func TestInfoReportsThreadPoolsAndAllocator(t *testing.T) {
	line := regexp.MustCompile(`CPU threads: intra-op (\d+), inter-op (\d+), OpenBLAS (\d+|n/a[^(]*) \(CPUs available to this process: (\d+)\); allocator: (\w+)`)
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
	if m[1] != "1" || m[2] != "1" || (m[3] != "1" && !strings.HasPrefix(m[3], "n/a")) || m[5] != "keep" {
		t.Fatalf("info --threads 1: %q", m[0])
	}
	m = parse(runCLI(t, []string{"SATRAIN_MALLOC=system"}, "info"))
	if m[1] != m[4] || m[2] != "1" || (m[3] != m[4] && !strings.HasPrefix(m[3], "n/a")) || m[5] != "system" {
		t.Fatalf("info (defaults, SATRAIN_MALLOC=system): %q, want intra-op and OpenBLAS = CPUs available, inter-op 1, allocator system", m[0])
	}
}
