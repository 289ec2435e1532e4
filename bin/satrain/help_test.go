package main

import (
	"bytes"
	"strings"
	"testing"
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
