package trainer

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/satrain/satrain/internal/atomicfile"
	"github.com/satrain/satrain/model"
)

// CheckpointInfo is what a checkpoint records about the run that wrote it:
// its Meta (kind, iteration, data file, seed and the run's flags in Meta.Run)
// and the model's shape. The CLI reads it before a resumed run starts, to
// take the run's settings from the checkpoint.
type CheckpointInfo struct {
	Path     string
	Meta     Meta
	Config   model.Config
	HasOptim bool // the file holds the optimizer state (it can continue its run)
}

// ReadCheckpointInfo reads and verifies the checkpoint at path exactly as
// LoadCheckpoint does (format, version, content checksum: a damaged file is
// refused here, before a run creates anything) and keeps only its record; the
// tensors are released before it returns. Errors name the file.
func ReadCheckpointInfo(path string) (CheckpointInfo, error) {
	l, err := LoadCheckpoint(path)
	if err != nil {
		return CheckpointInfo{}, err
	}
	defer l.Free()
	return CheckpointInfo{Path: path, Meta: l.Meta, Config: l.Config, HasOptim: l.HasOptim}, nil
}

// RunSaveDir is the save dir of the run that wrote the checkpoint: the one
// its record names when that is absolute (checkpoints record it so), else the
// checkpoint's own folder (older checkpoints recorded it as given).
func (i CheckpointInfo) RunSaveDir() string { return runSaveDir(i.Meta, i.Path) }

// ContinuesIn reports whether a resume from the checkpoint into saveDir
// continues the run that wrote it in that run's own save dir. Only then are
// that run's files outside the save dir (its --log-selected file) the resumed
// run's to continue; a resume into another save dir is a new run from the
// checkpoint's state and leaves them alone.
func (i CheckpointInfo) ContinuesIn(saveDir string) bool {
	return SamePath(saveDir, i.RunSaveDir())
}

func runSaveDir(m Meta, ckpt string) string {
	if d := m.Run["save-dir"]; filepath.IsAbs(d) {
		return d
	}
	return filepath.Dir(ckpt)
}

// inPlace reports whether a run resumed from ckpt into saveDir writes where
// that run's files are: its recorded save dir, or the checkpoint's own
// folder (a run folder moved elsewhere). Such a save dir's metrics.jsonl and
// best model belong to the run being continued.
func inPlace(m Meta, ckpt, saveDir string) bool {
	return SamePath(saveDir, filepath.Dir(ckpt)) || SamePath(saveDir, runSaveDir(m, ckpt))
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

// checkLogSelected refuses a resume into another save dir (a new run from
// the checkpoint's state) that would write into the selected-set log of the
// run that wrote the checkpoint: it would drop that run's records after the
// checkpoint, and they are not this run's to drop.
func checkLogSelected(cfg RunConfig, m Meta) error {
	own := m.Run["log-selected"]
	if cfg.LogSelected == "" || own == "" || SamePath(cfg.SaveDir, runSaveDir(m, cfg.ResumeFrom)) || !SamePath(cfg.LogSelected, own) {
		return nil
	}
	return fmt.Errorf("--log-selected %s is the selected-set log of the run in %s that wrote %s; a resume into another --save-dir (%s) leaves that run's files alone: pass --log-selected with another file",
		cfg.LogSelected, runSaveDir(m, cfg.ResumeFrom), cfg.ResumeFrom, cfg.SaveDir)
}

// resumeBest finds the best model of the run a resume continues, the file
// whose record is the checkpoint's best (iteration and validation loss): in
// this run's save dir, else in the checkpoint's folder or in the save dir of
// the run that wrote it, from where it is copied into this run's save dir, so
// that a save dir always holds its run's best model. The run's summary names
// it (s.bestPath) unless a later validation beats it. Not found (the run had
// no finite validation loss yet, or the file was replaced or deleted since),
// the run goes on and says so in a warning.
func (s *session) resumeBest(m Meta) {
	if math.IsNaN(m.BestValLoss) || math.IsInf(m.BestValLoss, 0) {
		return
	}
	name := s.bestName()
	dst := filepath.Join(s.cfg.SaveDir, name)
	var looked []string
	for _, dir := range []string{s.cfg.SaveDir, filepath.Dir(s.cfg.ResumeFrom), runSaveDir(m, s.cfg.ResumeFrom)} {
		src := filepath.Join(dir, name)
		if slices.ContainsFunc(looked, func(p string) bool { return SamePath(p, src) }) {
			continue
		}
		looked = append(looked, src)
		if !isBestOf(src, m) {
			continue
		}
		if SamePath(src, dst) {
			s.bestPath = dst
		} else if err := copyFile(src, dst); err != nil {
			slog.Warn("cannot copy the best model into the save dir; the summary names it where it is", "best_model", src, "save_dir", s.cfg.SaveDir, "err", err)
			s.bestPath = src
		} else {
			s.bestPath, s.start.BestCopiedFrom = dst, src
		}
		s.start.BestPath = s.bestPath
		return
	}
	slog.Warn("the best model so far was not found (deleted, or replaced by a later part of the run that wrote the checkpoint); this run writes its own when a validation beats that loss",
		"best_iteration", m.BestIteration, "best_val_loss", m.BestValLoss, "looked_for", strings.Join(looked, ", "))
}

// isBestOf reports whether the checkpoint at path is the best model the
// record m names: same kind, best iteration and validation loss.
func isBestOf(path string, m Meta) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	info, err := ReadCheckpointInfo(path)
	if err != nil {
		slog.Warn("a best model that does not load is not used", "path", path, "err", err)
		return false
	}
	b := info.Meta
	return b.Kind == m.Kind && b.BestIteration == m.BestIteration && b.BestValLoss == m.BestValLoss
}

// copyFile copies src to dst atomically (see internal/atomicfile).
func copyFile(src, dst string) error {
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

// resumeCommand is the command that continues a run of kind from the
// checkpoint at path; every other setting comes from the checkpoint.
func resumeCommand(kind, path string) string {
	cmd := " selection-aware"
	if kind == KindStandard {
		cmd = " train"
	}
	return shellQuote(ProgramName) + cmd + " --resume-from " + shellQuote(path)
}

// ProgramName starts the commands the run's messages give to paste (resume
// after an interrupt or a stop): "satrain", or the path the binary was run
// as (the command line sets it from os.Args[0], so that `build/satrain ...`
// prints a command that runs from the same folder).
var ProgramName = "satrain"

// shellQuote is s as one POSIX shell word: as it is when it holds only
// characters the shell takes literally, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
