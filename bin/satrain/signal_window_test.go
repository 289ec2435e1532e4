package main

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestSignalWindow: watchSignals, on a fake clock, cancels on the first
// signal, ignores one 1 ms later and exits 130 on one 2 s after the first.
func TestSignalWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name  string
		after []time.Duration // of each signal after the first
		exits int
	}{
		{"1ms", []time.Duration{time.Millisecond}, 0},
		{"1ms then 2s", []time.Duration{time.Millisecond, 2 * time.Second}, 1},
		{"2s", []time.Duration{2 * time.Second}, 1},
		{"just past the window", []time.Duration{sameSignalWindow}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := make(chan os.Signal, 1+len(c.after))
			times := []time.Time{t0}
			ch <- syscall.SIGINT
			for _, d := range c.after {
				times = append(times, t0.Add(d))
				ch <- syscall.SIGINT
			}
			close(ch)
			calls := 0
			now := func() time.Time { calls++; return times[calls-1] }
			cancels, exits := 0, 0
			var said bytes.Buffer
			watchSignals(ch, &said, func() { cancels++ }, func() bool { return false }, now, func(code int) {
				if code != 130 {
					t.Errorf("exit(%d), want 130", code)
				}
				exits++
			})
			if cancels != 1 || exits != c.exits {
				t.Errorf("cancel called %d times, exit %d times; want 1 and %d\n%s", cancels, exits, c.exits, said.String())
			}
		})
	}
}
