package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var iterCkpt = regexp.MustCompile(`^checkpoint_iter_(\d+)\.pt$`)

// rlCheckpoints returns the iteration numbers of dir's checkpoint_iter_N.pt
// files, ascending.
func rlCheckpoints(t *testing.T, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var its []int
	for _, e := range ents {
		if m := iterCkpt.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			its = append(its, n)
		}
	}
	sort.Ints(its)
	return its
}

// TestKillAtRandomMoments SIGKILLs a training run 24 times: a third of the
// kills land the moment a temporary checkpoint file appears (a save in
// progress), a sixth during start-up, the rest at a random moment during
// the iterations. Each run resumes from the newest checkpoint of the one
// before. After every kill: every checkpoint file (checkpoint_iter_N.pt,
// best model) loads, the newest one is iteration N and no older than the
// newest before, partial files exist only under their temporary dot-names
// and the next run removes them (with a log line), and metrics.jsonl holds
// only whole JSON lines. At the end a run resumes to completion.
func TestKillAtRandomMoments(t *testing.T) {
	const kills = 24
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := filepath.Join(t.TempDir(), "ckpt")
	const many = 100000 // never reached before the kill
	loaded := map[string]time.Time{}
	newest := 0
	var stale []string
	stats := map[string]int{}
	for k := 0; k < kills; k++ {
		args := rlArgs(dir, many)
		if newest > 0 {
			args = append(args, "--resume-from", filepath.Join(dir, fmt.Sprintf("checkpoint_iter_%d.pt", newest)))
		} else {
			// Killed before its first periodic checkpoint, a run may leave
			// its best model and metrics.jsonl, and a fresh run refuses a
			// save dir that holds another run: clear them as a user would
			// (--overwrite), leaving the temporary files to the next run.
			for _, f := range []string{"best_model_selection_aware.pt", "metrics.jsonl"} {
				os.Remove(filepath.Join(dir, f))
			}
		}
		p := rlStart(t, nil, args...)
		mode := []string{"mid-save", "iterating", "startup", "mid-save", "iterating", "iterating"}[k%6]
		var killedAt string
		switch mode {
		case "startup":
			time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		case "iterating":
			// After the first iteration starts, a random 0-800 ms later.
			rlWaitFor(p, "Iteration ", 60*time.Second)
			time.Sleep(time.Duration(rng.Intn(800)) * time.Millisecond)
		case "mid-save":
			rlWaitFor(p, "Iteration ", 60*time.Second)
			// Skip a random number (0-2) of saves, then kill inside the next.
			skip := rng.Intn(3)
			deadline := time.Now().Add(30 * time.Second)
			seen := false
			for time.Now().Before(deadline) {
				if len(rlTemps(dir)) > 0 {
					if !seen && skip == 0 {
						break
					}
					if !seen {
						skip--
					}
					seen = true
				} else {
					seen = false
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		select {
		case <-p.done:
			t.Fatalf("kill %d: satrain exited (code %d) before the kill\nstdout:\n%s\nstderr:\n%s", k, p.code, p.out(), p.errOut())
		default:
		}
		if len(rlTemps(dir)) > 0 {
			killedAt = " (temporary file present)"
		}
		p.cmd.Process.Kill()
		if code := p.wait(t, 30*time.Second); code != 137 {
			t.Fatalf("kill %d: exit code %d, want 137 (SIGKILL)", k, code)
		}
		stats[mode]++
		out, errOut := p.out(), p.errOut()

		// The previous run's stale temporary files were removed by this one
		// once it got past start-up (the banner is printed after it).
		if strings.Contains(out, "=====") {
			for _, s := range stale {
				if _, err := os.Stat(s); err == nil {
					t.Errorf("kill %d: stale %s survived a start-up", k, s)
				}
				if !strings.Contains(errOut, "removed a partial checkpoint") || !strings.Contains(errOut, filepath.Base(s)) {
					t.Errorf("kill %d: removal of %s not logged:\n%s", k, s, errOut)
				}
			}
			if newest > 0 && !strings.Contains(out, fmt.Sprintf("continuing after iteration %d", newest)) && strings.Contains(out, "Iteration ") {
				t.Errorf("kill %d: did not resume after iteration %d:\n%s", k, newest, out)
			}
		}
		stale = rlTemps(dir)
		if len(stale) > 0 {
			stats["temporary file left"]++
		}

		// Every checkpoint file loads; the newest is complete.
		its := rlCheckpoints(t, dir)
		names := []string{"best_model_selection_aware.pt"}
		for _, n := range its {
			names = append(names, fmt.Sprintf("checkpoint_iter_%d.pt", n))
		}
		for _, name := range names {
			path := filepath.Join(dir, name)
			st, err := os.Stat(path)
			if err != nil {
				continue
			}
			if loaded[name].Equal(st.ModTime()) {
				continue
			}
			meta, err := rlLoad(path)
			if err != nil {
				t.Fatalf("kill %d%s: %s does not load: %v", k, killedAt, name, err)
			}
			if m := iterCkpt.FindStringSubmatch(name); m != nil && fmt.Sprint(meta.Iteration) != m[1] {
				t.Fatalf("kill %d: %s holds iteration %d", k, name, meta.Iteration)
			}
			loaded[name] = st.ModTime()
		}
		if len(its) > 0 {
			if its[len(its)-1] < newest {
				t.Fatalf("kill %d: newest checkpoint went back from %d to %d", k, newest, its[len(its)-1])
			}
			newest = its[len(its)-1]
		}
		rlCheckLog(t, dir, k, true)
		t.Logf("kill %2d (%s)%s: newest checkpoint iteration %d", k, mode, killedAt, newest)
	}
	if newest == 0 {
		t.Fatalf("no checkpoint in %d runs", kills)
	}
	// Resume to the end: two more iterations.
	final := newest + 2
	ck := filepath.Join(dir, fmt.Sprintf("checkpoint_iter_%d.pt", newest))
	p := rlStart(t, nil, rlArgs(dir, final, "--resume-from", ck)...)
	if code := p.wait(t, 120*time.Second); code != 0 {
		t.Fatalf("final resume exited %d\nstdout:\n%s\nstderr:\n%s", code, p.out(), p.errOut())
	}
	if !strings.Contains(p.out(), fmt.Sprintf("continuing after iteration %d", newest)) || !strings.Contains(p.out(), fmt.Sprintf("Done: %d iterations", final)) {
		t.Errorf("final resume output:\n%s", p.out())
	}
	if meta, err := rlLoad(filepath.Join(dir, fmt.Sprintf("checkpoint_iter_%d.pt", final))); err != nil || meta.Iteration != final {
		t.Errorf("final checkpoint: iteration %d, %v", meta.Iteration, err)
	}
	if tmp := rlTemps(dir); len(tmp) > 0 {
		t.Errorf("temporary files after a clean finish: %v", tmp)
	}
	rlCheckLog(t, dir, kills, false)
	t.Logf("kills survived: %d/%d; by moment: %v; newest before the final run: iteration %d", kills, kills, stats, newest)
}

// rlWaitFor waits for a line of stdout containing s (polling), or limit.
func rlWaitFor(p *rlProc, s string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && !strings.Contains(p.out(), s) {
		select {
		case <-p.done:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// rlCheckLog: metrics.jsonl is whole JSON lines, except that right after a
// kill (killed) its last line may be cut short. Each record is one write(2),
// but Linux stops a write to a file at a page boundary when a SIGKILL is
// pending (it checks for fatal signals page by page), so a record that straddles
// a 4 KiB boundary can be left half written; the next run drops it when it
// resumes (truncateRecords keeps only whole records), which the next check
// (and the final one, after a clean finish) sees.
func rlCheckLog(t *testing.T, dir string, k int, killed bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		if !killed {
			t.Errorf("kill %d: metrics.jsonl ends in a partial line after a clean finish", k)
		}
		b = b[:bytes.LastIndexByte(b, '\n')+1] // the cut record
	}
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var v map[string]any
		if l != "" && json.Unmarshal([]byte(l), &v) != nil {
			t.Errorf("kill %d: metrics.jsonl line %d is not JSON: %q", k, i+1, l)
		}
	}
}
