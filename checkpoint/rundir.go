package checkpoint

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/satrain/satrain/event"
	"github.com/satrain/satrain/option"
)

// RunDir is a run's save dir, and the one place that knows its layout:
//
//	metrics.jsonl                        the run's log (package report writes it)
//	checkpoint_iter_N.pt                 selection-aware, after iteration N (with optimizer state)
//	checkpoint_epoch_N.pt                standard, after epoch N (with optimizer state)
//	checkpoint_interrupted_iter_N.pt     stopped by a signal during iteration N's training (part of N)
//	checkpoint_interrupted_epoch_N.pt    the same for epoch N
//	checkpoint_last_good.pt              stopped after too many non-finite steps: the last finite weights
//	best_model_selection_aware.pt        best validation loss of a selection-aware run (weights only)
//	best_model.pt                        best validation loss of a standard run (weights only)
//	.satrain.lock                        held by the live run (Lock)
//	.*.pt.tmp-*, .satrain-write-test-*   temporary files (TempPatterns)
//
// The loops ask it for file names and for what a folder holds; nothing else
// in satrain spells these names.
type RunDir string

// MetricsLog is the name of a run's metrics log in its save dir (package report writes it).
const MetricsLog = event.MetricsLog

// LastGoodName is the file a run writes when it stops after
// model.StepConfig.MaxSkips consecutive non-finite steps.
const LastGoodName = "checkpoint_last_good.pt"

// unit is the short name of a kind's unit of progress in file names.
func unit(kind string) string {
	if kind == event.KindStandard {
		return "epoch"
	}
	return "iter"
}

// Periodic is the path of the checkpoint a run of kind writes after
// iteration (or epoch) n.
func (d RunDir) Periodic(kind string, n int) string {
	return filepath.Join(string(d), fmt.Sprintf("checkpoint_%s_%d.pt", unit(kind), n))
}

// Interrupted is the path of the checkpoint holding part of iteration (or
// epoch) n, written when a signal stops a run of kind during its training.
func (d RunDir) Interrupted(kind string, n int) string {
	return filepath.Join(string(d), fmt.Sprintf("checkpoint_interrupted_%s_%d.pt", unit(kind), n))
}

// LastGood is the path of the last-good-weights checkpoint.
func (d RunDir) LastGood() string { return filepath.Join(string(d), LastGoodName) }

// BestName is the file name of the best model of a run of kind.
func BestName(kind string) string {
	if kind == event.KindStandard {
		return "best_model.pt"
	}
	return "best_model_selection_aware.pt"
}

// Best is the path of the best model of a run of kind.
func (d RunDir) Best(kind string) string { return filepath.Join(string(d), BestName(kind)) }

// Metrics is the path of the run's metrics log.
func (d RunDir) Metrics() string { return filepath.Join(string(d), MetricsLog) }

// checkpointRE matches the checkpoints with optimizer state a run writes.
var checkpointRE = regexp.MustCompile(`^checkpoint_(iter|epoch|interrupted_iter|interrupted_epoch)_(\d+)\.pt$`)

// Periodics lists the periodic checkpoints of a run of kind in the folder,
// in the order of their iteration (or epoch) number.
func (d RunDir) Periodics(kind string) ([]string, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, err
	}
	type ck struct {
		n    int
		path string
	}
	var cks []ck
	for _, e := range ents {
		m := checkpointRE.FindStringSubmatch(e.Name())
		if m == nil || m[1] != unit(kind) {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		cks = append(cks, ck{n, filepath.Join(string(d), e.Name())})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].n < cks[j].n })
	out := make([]string, len(cks))
	for i, c := range cks {
		out[i] = c.path
	}
	return out, nil
}

// ResumeAuto picks the checkpoint `--resume-from auto` continues from: the
// newest checkpoint with optimizer state in the folder (by iteration, then
// modification time; checkpoint_interrupted_*_N.pt, which holds part of N,
// ranks between N-1 and N) that loads and passes its checksum. "" (start
// fresh) when there is none or the folder does not exist; unreadable files
// are skipped with their reason in skipped.
func (d RunDir) ResumeAuto() (path string, skipped []string, err error) {
	dir := string(d)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, option.Errorf("{resume-from} auto: %w", err)
	}
	type cand struct {
		path string
		it   float64 // an interrupted checkpoint holds part of iteration N: N - 0.5
		mod  time.Time
	}
	var cs []cand
	for _, e := range entries {
		m := checkpointRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		it := float64(n)
		if m[1] == "interrupted_iter" || m[1] == "interrupted_epoch" {
			it -= 0.5
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		cs = append(cs, cand{filepath.Join(dir, e.Name()), it, info.ModTime()})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.it != b.it {
			return cmp.Compare(b.it, a.it)
		}
		return b.mod.Compare(a.mod)
	})
	for _, c := range cs {
		l, err := Load(c.path)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", c.path, err))
			continue
		}
		ok := l.HasOptim
		l.Free()
		if ok {
			return c.path, skipped, nil
		}
	}
	return "", skipped, nil
}

// CheckSaveDir creates dir if needed and proves it is writable, so a run
// fails at start-up rather than at its first checkpoint.
func CheckSaveDir(dir string) error {
	_, err := RunDir(dir).Prepare()
	return err
}

// Prepare is CheckSaveDir that also returns the top-most folder it created
// ("" when the folder existed), so a run that fails at start-up can remove
// what it made (see RemoveCreated).
func (d RunDir) Prepare() (created string, err error) {
	dir := string(d)
	for d := filepath.Clean(dir); ; {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = d
		up := filepath.Dir(d)
		if up == d {
			break
		}
		d = up
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.RemoveCreated(created)
		return "", option.Errorf("{save-dir} %s: %w", dir, err)
	}
	if err := checkWritable(dir); err != nil {
		d.RemoveCreated(created)
		return "", err
	}
	return created, nil
}

// RemoveCreated removes the folder and its parents up to top (inclusive)
// while they are empty: the folders a failed start-up created (Prepare's
// created) and left empty.
func (d RunDir) RemoveCreated(top string) {
	dir := string(d)
	if top == "" {
		return
	}
	top = filepath.Clean(top)
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if os.Remove(d) != nil || d == top || filepath.Dir(d) == d {
			return
		}
	}
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".satrain-write-test-*")
	if err != nil {
		return option.Errorf("{save-dir} %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_, werr := f.Write(make([]byte, 4096))
	serr := f.Sync()
	f.Close()
	os.Remove(name)
	if werr != nil || serr != nil {
		return option.Errorf("{save-dir} %s: test write failed: %v", dir, errors.Join(werr, serr))
	}
	return nil
}

// ErrSaveDirInUse is returned (wrapped) when a run's save dir holds another
// run and the run neither resumes nor overwrites.
var ErrSaveDirInUse = errors.New("save dir holds another run")

// runFilePatterns match the files a run writes in its save dir.
var runFilePatterns = []string{MetricsLog, BestName(event.KindStandard), BestName(event.KindSelectionAware), "checkpoint_iter_*.pt",
	"checkpoint_epoch_*.pt", "checkpoint_interrupted_iter_*.pt", "checkpoint_interrupted_epoch_*.pt", LastGoodName}

// Files lists the files of a run in the folder (by name).
func (d RunDir) Files() []string {
	dir := string(d)
	var out []string
	for _, pat := range runFilePatterns {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
				out = append(out, p)
			}
		}
	}
	return out
}

// CheckSaveDirFree refuses a save dir that already holds a run (its
// metrics.jsonl or checkpoints), so two runs never mix their files; the error
// wraps ErrSaveDirInUse and says how to continue, replace or avoid it.
func CheckSaveDirFree(dir string) error {
	files := RunDir(dir).Files()
	if len(files) == 0 {
		return nil
	}
	var ckpts []string
	hasLog := false
	for _, f := range files {
		if filepath.Base(f) == MetricsLog {
			hasLog = true
		} else {
			ckpts = append(ckpts, f)
		}
	}
	var what []string
	if hasLog {
		what = append(what, "metrics.jsonl")
	}
	if len(ckpts) > 0 {
		what = append(what, fmt.Sprintf("%d checkpoint file(s)", len(ckpts)))
	}
	e := &SaveDirInUseError{Dir: dir, Holds: strings.Join(what, " and "), Newest: newestCheckpoint(ckpts)}
	if e.Newest != "" {
		// The command that continues it is that of the run's kind: the
		// other command would start a new (fine-tuning) run from it.
		base := filepath.Base(e.Newest)
		switch {
		case strings.HasPrefix(base, "checkpoint_iter_") || strings.HasPrefix(base, "checkpoint_interrupted_iter_"):
			e.Kind = event.KindSelectionAware
		case strings.HasPrefix(base, "checkpoint_epoch_") || strings.HasPrefix(base, "checkpoint_interrupted_epoch_"):
			e.Kind = event.KindStandard
		default: // checkpoint_last_good.pt: its record says
			if info, err := ReadInfo(e.Newest); err == nil {
				e.Kind = info.Meta.Kind
			}
		}
	}
	return e
}

// SaveDirInUseError is the error of CheckSaveDirFree; it is ErrSaveDirInUse.
// The command line phrases it with the command that continues the run
// (bin/satrain); Error says the same with the flags only.
type SaveDirInUseError struct {
	Dir    string // the save dir
	Holds  string // what it holds: "metrics.jsonl and 3 checkpoint file(s)"
	Newest string // its newest checkpoint with optimizer state ("": none)
	Kind   string // the kind of run that wrote Newest ("": unknown)
}

func (e *SaveDirInUseError) Error() string { return e.Message("") }

// Message is the error's sentence; command, when given, is the command
// that continues a run of e.Kind (without --resume-from).
func (e *SaveDirInUseError) Message(command string) string {
	hint := "pass --overwrite to replace it"
	switch {
	case e.Newest != "" && command != "":
		hint = fmt.Sprintf("continue it with: %s --resume-from %s; or %s", command, e.Newest, hint)
	case e.Newest != "":
		hint = fmt.Sprintf("continue it with --resume-from %s and the command that wrote it; or %s", e.Newest, hint)
	}
	return fmt.Sprintf("--save-dir %s already holds a run (%s); %s, or choose another --save-dir", e.Dir, e.Holds, hint)
}

func (e *SaveDirInUseError) Is(target error) bool { return target == ErrSaveDirInUse }

// newestCheckpoint is the most recently modified file of paths that holds
// optimizer state by its name (checkpoint_*.pt), or "".
func newestCheckpoint(paths []string) string {
	best, bestT := "", time.Time{}
	for _, p := range paths {
		if !strings.HasPrefix(filepath.Base(p), "checkpoint_") {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.ModTime().After(bestT) {
			best, bestT = p, st.ModTime()
		}
	}
	return best
}

// DropEmptyMetricsLog removes an empty metrics.jsonl from the save dir of a
// run of kind that starts afresh (not one that continues the checkpoint
// resumeFrom): a run that failed or was killed before it recorded its first
// iteration leaves one, and it would otherwise count as "a run" that the
// corrected rerun must --overwrite. Called under the save dir's lock: a live
// run's log, empty until its first iteration, is not another run's to remove.
func (d RunDir) DropEmptyMetricsLog(resumeFrom, kind string) {
	if resumeFrom != "" {
		if info, err := ReadInfo(resumeFrom); err != nil || info.Meta.Kind == kind {
			return // continuing: the run keeps its log
		}
	}
	p := d.Metrics()
	if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && st.Size() == 0 {
		if err := os.Remove(p); err == nil {
			slog.Debug("removed an empty metrics log (a run that recorded no iteration)", "path", p)
		}
	}
}

// Clear deletes the files of an earlier run in the folder (--overwrite).
func (d RunDir) Clear() error {
	for _, p := range d.Files() {
		if err := os.Remove(p); err != nil {
			return option.Errorf("{overwrite}: %w", err)
		}
	}
	return nil
}

// TempPatterns match the temporary files that Save and
// CheckSaveDir create in a save dir. They start with a dot and never end in
// ".pt", so nothing that looks for checkpoints by name lists them.
var TempPatterns = []string{".*.pt.tmp-*", ".satrain-write-test-*"}

// RemoveStaleTemps deletes the temporary files matching TempPatterns in the folder:
// partial checkpoints of an earlier run that was killed while saving. Each is
// logged. Runs call it at start-up, after CheckSaveDir; one run per save dir.
func (d RunDir) RemoveStaleTemps() []string {
	dir := string(d)
	var removed []string
	for _, pat := range TempPatterns {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := os.Remove(p); err != nil {
				slog.Warn("cannot remove a stale temporary checkpoint file", "path", p, "err", err)
				continue
			}
			slog.Warn("removed a partial checkpoint left by a run that stopped while saving", "path", p)
			removed = append(removed, p)
		}
	}
	return removed
}
