package report

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStudyProgressLog: off a terminal the study logs runs finished, passes
// over all runs and an ETA from the passes trained since it started (a
// reused run's passes do not count towards the rate), at most every LogEvery.
func TestStudyProgressLog(t *testing.T) {
	c := newClock()
	f := false
	var logs bytes.Buffer
	s := NewStudyProgress(ProgressOptions{TTY: &f, Now: c.now, LogEvery: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 4, 100)
	s.Reused(0, 100)
	s.Started(1)
	s.Started(2)
	c.add(5 * time.Second)
	s.Trained(1, 20) // before LogEvery: no line
	if logs.Len() != 0 {
		t.Fatalf("a line before LogEvery: %s", logs.String())
	}
	c.add(5 * time.Second)
	s.Trained(2, 30) // 50 passes in 10 s: 250 left at 5/s is 50 s
	c.add(time.Second)
	s.Ended(1, true, 100) // within LogEvery of the last line: none
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := `msg="study progress" runs_finished=1/4 running=2 passes=150/400 elapsed=0:10 eta=0:50`
	if len(lines) != 1 || !strings.HasSuffix(lines[0], want) {
		t.Fatalf("log:\n%s\nwant one line ending %s", logs.String(), want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished != 2 || s.running != 1 || s.done() != 230 {
		t.Errorf("finished %d, running %d, passes %d; want 2, 1, 230", s.finished, s.running, s.done())
	}
}
