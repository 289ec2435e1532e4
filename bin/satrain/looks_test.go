package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/satrain/satrain/model"
)

func TestParseDateFlagBothForms(t *testing.T) {
	for _, s := range []string{"20180131", "2018-01-31", " 2018-01-31 "} {
		d, err := parseDate("--val-end", s)
		if err != nil || d != 20180131 {
			t.Errorf("parseDate(%q) = %d, %v; want 20180131", s, d, err)
		}
	}
	if d, err := parseDate("--val-end", ""); d != 0 || err != nil {
		t.Errorf("empty: %d, %v", d, err)
	}
	for _, s := range []string{"2018-02-30", "20180230", "2018/01/31", "18-01-31", "201801", "x"} {
		if _, err := parseDate("--val-end", s); err == nil || !strings.Contains(err.Error(), "--val-end") {
			t.Errorf("parseDate(%q): want an error naming the flag, got %v", s, err)
		}
	}
}

func TestInfoDataCountsForThePanel(t *testing.T) {
	r := runCLI(t, nil, "info", "--data", cliData)
	if r.code != 0 {
		t.Fatalf("info --data: exit %d: %s", r.code, r.stderr)
	}
	// cliData has 4 features, 4 horizons and 10 bins.
	if !strings.Contains(r.stdout, "4 features, 4 horizons x 10 bins") {
		t.Errorf("info --data does not say what it counts for:\n%s", r.stdout)
	}
	p := model.Presets["tiny"]
	mc := model.Config{NumFeatures: 4, HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, NumHorizons: 4, NumBins: 10}
	if want := model.FormatParams(mc.NumParams()) + " parameters"; !strings.Contains(r.stdout, want) {
		t.Errorf("info --data: no %q for the tiny preset:\n%s", want, r.stdout)
	}
	r = runCLI(t, nil, "info")
	if r.code != 0 || !strings.Contains(r.stdout, "16 features, 4 horizons x 10 bins") {
		t.Errorf("info: exit %d, does not say what it counts for:\n%s", r.code, r.stdout)
	}
}

func TestPlotOverlaysEveryLog(t *testing.T) {
	dir := t.TempDir()
	var logs []string
	for _, run := range []string{"a", "b"} {
		p := filepath.Join(dir, run, "metrics.jsonl")
		os.MkdirAll(filepath.Dir(p), 0o755)
		var sb strings.Builder
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(&sb, `{"strategy":"standard","iteration":%d,"train_loss":%d.5,"val_loss":2.%d,"sequences_scored_total":0,"sequences_trained_total":%d}`+"\n", i, 3-i, 9-i, 100*i)
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, p)
	}
	out := filepath.Join(dir, "curves.png")
	r := runCLI(t, nil, "plot", "--log", logs[0], "--log", logs[1], "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "(2 run(s))") {
		t.Fatalf("plot of two logs: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Standard runs score nothing: the loss panel only.
	if b := img.Bounds(); b.Dx() != 768 || b.Dy() != 480 {
		t.Errorf("curves.png is %dx%d, want 768x480", b.Dx(), b.Dy())
	}
}

func TestLogSelectedWritesTheSelectedSet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "selected.jsonl")
	r := runCLI(t, nil, cliArgs(filepath.Join(dir, "run"), map[string]string{"num-iterations": "2", "log-selected": path, "progress": "false"})...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// top-k 5, 2 iterations: 10 lines, ranks 1..5 each iteration, scores descending.
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10:\n%s", len(lines), b)
	}
	var prev float64
	for i, l := range lines {
		var rec struct {
			RunID          string   `json:"run_id"`
			Iteration      int      `json:"iteration"`
			Rank           int      `json:"rank"`
			Ticker         string   `json:"ticker"`
			EndDate        string   `json:"end_date"`
			ExpectedReturn *float64 `json:"expected_return"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if rec.Iteration != 1+i/5 || rec.Rank != 1+i%5 || rec.Ticker == "" || rec.RunID == "" || rec.ExpectedReturn == nil {
			t.Fatalf("line %d: %+v", i, rec)
		}
		if _, err := time.Parse("2006-01-02", rec.EndDate); err != nil {
			t.Fatalf("line %d: end date %q", i, rec.EndDate)
		}
		if rec.Rank > 1 && *rec.ExpectedReturn > prev {
			t.Fatalf("line %d: expected return %v above the rank before (%v): not in rank order", i, *rec.ExpectedReturn, prev)
		}
		prev = *rec.ExpectedReturn
	}
}
