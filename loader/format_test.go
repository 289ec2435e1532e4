package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFormatDocSnippet runs the h5py example of docs/FORMAT.md and opens the
// file it writes.
func TestFormatDocSnippet(t *testing.T) {
	doc, err := os.ReadFile("../docs/FORMAT.md")
	if err != nil {
		t.Skipf("docs/FORMAT.md: %v", err)
	}
	s := string(doc)
	i := strings.Index(s, "```python\n")
	if i < 0 {
		t.Fatal("no python block in docs/FORMAT.md")
	}
	code := s[i+len("```python\n"):]
	code = code[:strings.Index(code, "```")]
	dir := t.TempDir()
	pythonH5(t, "import os, sys; os.chdir(sys.argv[1])\n"+code, dir)
	d, err := Open(filepath.Join(dir, "panel.h5"), Options{SeqLen: 32, ValSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.T != 3 || d.D != 300 || d.F != 4 || d.B != 10 || d.Groups()[2] != "Utilities" || d.Dates()[0] != 20200102 {
		t.Errorf("doc panel: T %d D %d F %d B %d groups %v date %d", d.T, d.D, d.F, d.B, d.Groups(), d.Dates()[0])
	}
	// ticker 1 misses day 50: no window of ticker 1 ending in 50..81
	for day := 50; day < 82; day++ {
		if d.isValid(1, day) {
			t.Fatalf("window of ticker 1 ending %d covers the missing day", day)
		}
	}
}
