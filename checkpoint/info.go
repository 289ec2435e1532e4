package checkpoint

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/model"
)

// Info is what a checkpoint records about the run that wrote it:
// its Meta (kind, iteration, data file, seed and the run's flags in Meta.Run)
// and the model's shape. The CLI reads it before a resumed run starts, to
// take the run's settings from the checkpoint.
type Info struct {
	Path     string
	Meta     Meta
	Config   model.Config
	HasOptim bool // the file holds the optimizer state (it can continue its run)
}

// ReadInfo reads and verifies the checkpoint at path exactly as
// Load does (format, version, content checksum: a damaged file is
// refused here, before a run creates anything) and keeps only its record; the
// tensors are released before it returns. Errors name the file.
func ReadInfo(path string) (Info, error) {
	l, err := Load(path)
	if err != nil {
		return Info{}, err
	}
	defer l.Free()
	return Info{Path: path, Meta: l.Meta, Config: l.Config, HasOptim: l.HasOptim}, nil
}

// RunSaveDir is the save dir of the run that wrote the checkpoint: the one
// its record names when that is absolute (checkpoints record it so), else the
// checkpoint's own folder (older checkpoints recorded it as given).
func (i Info) RunSaveDir() string { return RunSaveDir(i.Meta, i.Path) }

// ContinuesIn reports whether a resume from the checkpoint into saveDir
// continues the run that wrote it in that run's own save dir. Only then are
// that run's files outside the save dir (its --log-selected file) the resumed
// run's to continue; a resume into another save dir is a new run from the
// checkpoint's state and leaves them alone.
func (i Info) ContinuesIn(saveDir string) bool {
	return SamePath(saveDir, i.RunSaveDir())
}

// RunSaveDir is the save dir of the run that wrote the checkpoint ckpt with
// record m (see Info.RunSaveDir).
func RunSaveDir(m Meta, ckpt string) string {
	if d := m.Run["save-dir"]; filepath.IsAbs(d) {
		return d
	}
	return filepath.Dir(ckpt)
}

// InPlace reports whether a run resumed from ckpt into saveDir writes where
// that run's files are: its recorded save dir, or the checkpoint's own
// folder (a run folder moved elsewhere). Such a save dir's metrics.jsonl and
// best model belong to the run being continued.
func InPlace(m Meta, ckpt, saveDir string) bool {
	return SamePath(saveDir, filepath.Dir(ckpt)) || SamePath(saveDir, RunSaveDir(m, ckpt))
}

// SamePath reports whether a and b name the same file or folder: the same
// absolute path, or (both existing) the same file through links. Relative
// paths are taken against the working directory.
func SamePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, err1 := filepath.Abs(a)
	ba, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == ba {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// IsBestOf reports whether the checkpoint at path is the best model the
// record m names: same kind, best iteration and validation loss.
func IsBestOf(path string, m Meta) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	info, err := ReadInfo(path)
	if err != nil {
		slog.Warn("a best model that does not load is not used", "path", path, "err", err)
		return false
	}
	b := info.Meta
	return b.Kind == m.Kind && b.BestIteration == m.BestIteration && b.BestValLoss == m.BestValLoss
}

// CopyFile copies src to dst atomically (see internal/atomicfile).
func CopyFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, f)
		return err
	})
}
