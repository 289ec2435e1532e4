package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/satrain/satrain/internal/atomicfile/atomictest"
)

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new content"), 0o644); err != nil {
		t.Fatal(err)
	}
	atomictest.CheckIntact(t, path, []byte("new content"))
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", st.Mode(), err)
	}
}

// A write that fails part-way (file size limit) leaves the previous file
// byte-identical and no temporary file.
func TestWriteFailsKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "panel.bin")
	old := bytes.Repeat([]byte("previous "), 1000)
	if err := WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	restore := atomictest.LimitFileSize(t, 4096)
	err := WriteFile(path, make([]byte, 64<<10), 0o644)
	restore()
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("error %v, want EFBIG", err)
	}
	atomictest.CheckIntact(t, path, old)

	// a writer that ignores its write errors (fmt.Fprintf, tabwriter)
	restore = atomictest.LimitFileSize(t, 4096)
	err = Write(path, 0o644, func(w io.Writer) error {
		for i := 0; i < 10000; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		return nil
	})
	restore()
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("error %v, want EFBIG", err)
	}
	atomictest.CheckIntact(t, path, old)

	// an error of the writer itself
	boom := errors.New("encoder failed")
	err = Write(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if err != boom {
		t.Fatalf("error %v, want the writer's", err)
	}
	atomictest.CheckIntact(t, path, old)

	// a writer that opens the file by name
	err = WriteNamed(path, 0o644, func(tmp string) error {
		if filepath.Dir(tmp) != dir || filepath.Base(tmp)[0] != '.' {
			t.Errorf("temporary file %s not a dot file beside %s", tmp, path)
		}
		if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("error %v, want the writer's", err)
	}
	atomictest.CheckIntact(t, path, old)
	if err := WriteNamed(path, 0o644, func(tmp string) error { return os.WriteFile(tmp, []byte("by name"), 0o600) }); err != nil {
		t.Fatal(err)
	}
	atomictest.CheckIntact(t, path, []byte("by name"))
}

func TestWriteMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "x.csv")
	if err := WriteFile(path, []byte("x"), 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want not-exist", err)
	}
}
