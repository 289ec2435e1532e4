package trainer

import (
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/option"
)

// checkLogSelected refuses a resume into another save dir (a new run from
// the checkpoint's state) that would write into the selected-set log of the
// run that wrote the checkpoint: it would drop that run's records after the
// checkpoint, and they are not this run's to drop.
func checkLogSelected(cfg RunConfig, m checkpoint.Meta) error {
	own := m.Run["log-selected"]
	if cfg.LogSelected == "" || own == "" || checkpoint.SamePath(cfg.SaveDir, checkpoint.RunSaveDir(m, cfg.ResumeFrom)) || !checkpoint.SamePath(cfg.LogSelected, own) {
		return nil
	}
	return option.Errorf("{log-selected} %s is the selected-set log of the run in %s that wrote %s; a resume into another {save-dir} (%s) leaves that run's files alone: pass {log-selected} with another file",
		cfg.LogSelected, checkpoint.RunSaveDir(m, cfg.ResumeFrom), cfg.ResumeFrom, cfg.SaveDir)
}

// resumeBest finds the best model of the run a resume continues, the file
// whose record is the checkpoint's best (iteration and validation loss): in
// this run's save dir, else in the checkpoint's folder or in the save dir of
// the run that wrote it, from where it is copied into this run's save dir, so
// that a save dir always holds its run's best model. The run's summary names
// it (s.bestPath) unless a later validation beats it. Not found (the run had
// no finite validation loss yet, or the file was replaced or deleted since),
// the run goes on and says so in a warning.
func (s *session) resumeBest(m checkpoint.Meta) {
	if math.IsNaN(m.BestValLoss) || math.IsInf(m.BestValLoss, 0) {
		return
	}
	name := checkpoint.BestName(s.kind)
	dst := s.dir().Best(s.kind)
	var looked []string
	for _, dir := range []string{s.cfg.SaveDir, filepath.Dir(s.cfg.ResumeFrom), checkpoint.RunSaveDir(m, s.cfg.ResumeFrom)} {
		src := filepath.Join(dir, name)
		if slices.ContainsFunc(looked, func(p string) bool { return checkpoint.SamePath(p, src) }) {
			continue
		}
		looked = append(looked, src)
		if !checkpoint.IsBestOf(src, m) {
			continue
		}
		if checkpoint.SamePath(src, dst) {
			s.bestPath = dst
		} else if err := checkpoint.CopyFile(src, dst); err != nil {
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
