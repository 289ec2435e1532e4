package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The flag headings of `selection-aware --help` come in the documented order.
func TestHelpHeadingsInDocumentedOrder(t *testing.T) {
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"satrain", "selection-aware", "--help"}); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	last := -1
	for _, h := range []string{"Data", "Selection", "Training", "Model", "Checkpointing", "Other", "Selection extensions (off by default)"} {
		i := strings.Index(help, "\n   "+h+"\n")
		if i < 0 {
			t.Fatalf("heading %q missing:\n%s", h, help)
		}
		if i < last {
			t.Fatalf("heading %q out of the documented order:\n%s", h, help)
		}
		last = i
	}
}

// TestCompareHidesStrategyFlags: compare sets each arm's strategy, so no
// selection-extension flag (the category, including one added later) shows
// in its help, while every one of them shows in selection-aware's.
func TestCompareHidesStrategyFlags(t *testing.T) {
	var ext []string
	for _, f := range selectionFlags() {
		if flagCategory(f) == catStrategy {
			ext = append(ext, f.Names()[0])
		}
	}
	if len(ext) < 9 {
		t.Fatalf("found %d selection-extension flags (%v); the category is not what this test expects", len(ext), ext)
	}
	shown := map[string]bool{}
	for _, f := range compareFlags() {
		if v, ok := f.(cli.VisibleFlag); !ok || v.IsVisible() {
			shown[f.Names()[0]] = true
		}
	}
	for _, name := range ext {
		if shown[name] {
			t.Errorf("compare --help shows --%s, which compare ignores (each arm sets its strategy)", name)
		}
	}
}
