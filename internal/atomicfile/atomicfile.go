// Package atomicfile replaces files so that a reader, a crash or a failed
// write never sees a partial one: the content goes to a temporary file beside
// the target, which is fsynced, given its mode and renamed over the target;
// the folder is then fsynced so the rename itself is durable. On any failure
// the temporary file is removed and the previous file at the path is left as
// it was.
//
// Temporary files are named ".<base>.tmp-<random>" in the target's folder
// (the same file system, so the rename is atomic); they start with a dot and
// do not end in the target's extension, so nothing that lists outputs by
// name takes one for a finished file. The result is a new file: a symlink at
// the path is replaced, not written through.
package atomicfile

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPattern is the os.CreateTemp pattern of the temporary file for path.
func TempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// WriteFile writes data to path atomically with mode perm (not filtered by
// the umask).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write writes path atomically with what fn writes to w, a buffer over the
// temporary file. A write error is kept even when fn ignores it (as
// fmt.Fprintf callers and tabwriter do): Write then fails instead of renaming
// a short file into place. An error from fn is returned as it is; errors of
// the file operations are *fs.PathError naming the temporary file.
func Write(path string, perm fs.FileMode, fn func(w io.Writer) error) error {
	return replace(path, perm, func(f *os.File) (*os.File, error) {
		bw := bufio.NewWriterSize(f, 64<<10)
		if err := fn(bw); err != nil {
			return f, err
		}
		// bufio.Writer keeps its first write error: Flush returns it.
		return f, bw.Flush()
	})
}

// WriteNamed is Write for writers that open the file themselves by name
// (e.g. the HDF5 library): fn creates or truncates the file tmp, writes it
// and closes it. Then tmp is fsynced and renamed over path.
func WriteNamed(path string, perm fs.FileMode, fn func(tmp string) error) error {
	return replace(path, perm, func(f *os.File) (*os.File, error) {
		if err := f.Close(); err != nil {
			return nil, err
		}
		if err := fn(f.Name()); err != nil {
			return nil, err
		}
		return os.OpenFile(f.Name(), os.O_RDWR, 0)
	})
}

// replace creates the temporary file, has fill write it (fill returns the
// open file to fsync), then fsyncs, chmods, renames and fsyncs the folder.
func replace(path string, perm fs.FileMode, fill func(f *os.File) (*os.File, error)) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPattern(path))
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(g *os.File, err error) error {
		f.Close()
		if g != nil {
			g.Close()
		}
		os.Remove(tmp)
		return err
	}
	g, err := fill(f)
	if err != nil {
		return fail(g, err)
	}
	if err := g.Sync(); err != nil {
		return fail(g, err)
	}
	if err := g.Chmod(perm); err != nil {
		return fail(g, err)
	}
	if err := g.Close(); err != nil {
		return fail(nil, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(nil, err)
	}
	// Make the rename durable. A folder that cannot be fsynced (some file
	// systems refuse) does not undo it.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
