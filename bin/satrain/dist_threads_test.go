package main

import "testing"

// TestRankThreads: ranks on one host split its CPUs, never below one thread.
func TestRankThreads(t *testing.T) {
	for _, tc := range []struct{ cpus, local, want int }{
		{16, 8, 2}, {16, 1, 16}, {2, 2, 1}, {2, 4, 1}, {3, 2, 1}, {8, 0, 8},
	} {
		if got := rankThreads(tc.cpus, tc.local); got != tc.want {
			t.Errorf("rankThreads(%d cpus, %d ranks) = %d, want %d", tc.cpus, tc.local, got, tc.want)
		}
	}
}
