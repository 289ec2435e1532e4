package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/model"
	"github.com/urfave/cli/v2"
)

// How --resume-from treats each flag of the training commands.
var (
	// The model's shape: fixed by the checkpoint. A different value on the
	// command line is refused; otherwise the checkpoint's value is used.
	archFlags = []string{"hidden-dim", "num-layers", "num-heads", "seq-len"}
	// Never taken from the checkpoint.
	ownFlags = map[string]bool{"resume-from": true, "overwrite": true, "help": true, "preset": true,
		// Never another run's event folder: a resume into another save dir
		// would start its files anew there (report.TensorBoard).
		"tensorboard": true}
	// The machine, not the run: taken from the checkpoint when not given,
	// and a different value given is used without a warning.
	machineFlags = map[string]bool{"device": true, "threads": true, "metrics-addr": true, "progress": true,
		"loader-mode": true, "inference-batch-size": true, "use-wandb": true}
	// The data and its split: taken from the checkpoint even when it is of
	// the other kind (standard best_model.pt into selection-aware, the
	// two-stage recipe), whose other settings come from the command line.
	dataFlags = map[string]bool{"data": true, "train-end": true, "val-end": true, "val-size": true}
)

// inheritCheckpoint takes the settings of the run that wrote the checkpoint
// for every flag not given (on the command line or as SATRAIN_*), by setting
// it in c, so that the rest of runConfig reads one set of flags. A checkpoint
// of the same kind continues its run: every setting but the architecture
// (see checkArchitecture) comes from it, from its recorded flags (Meta.Run),
// its data path, seed and dropout, or else the flag's default (what the run
// used when the flag was not given). A flag given with a value that differs
// from the checkpoint's is named in one returned warning line. A checkpoint of
// the other kind (fine-tuning) gives only the data, split and machine flags.
// inherited lists the flags whose value came from the checkpoint.
func inheritCheckpoint(c *cli.Context, info checkpoint.Info, kind string) (warnings []string, inherited map[string]bool, err error) {
	continuing := info.Meta.Kind == kind
	inherited = map[string]bool{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if ownFlags[name] || contains(archFlags, name) {
			continue
		}
		if !continuing && !dataFlags[name] && !machineFlags[name] {
			continue
		}
		ck, recorded := checkpointValue(info, name)
		if !c.IsSet(name) {
			if recorded {
				if err := c.Set(name, ck); err != nil {
					return nil, nil, fmt.Errorf("--resume-from %s: the checkpoint's --%s %q: %v", info.Path, name, ck, err)
				}
				inherited[name] = true
			}
			continue
		}
		if machineFlags[name] {
			continue
		}
		if !recorded {
			if !continuing {
				continue
			}
			ck = flagDefault(f)
		}
		if cur := fmt.Sprint(c.Value(name)); !sameValue(f, cur, ck) {
			warnings = append(warnings, fmt.Sprintf("--%s %s differs from the checkpoint's %s; using %s", name, shown(cur), shown(ck), shown(cur)))
		}
	}
	return warnings, inherited, nil
}

// checkpointValue is the value the checkpoint's run had for a flag, where
// the checkpoint records it.
func checkpointValue(info checkpoint.Info, name string) (string, bool) {
	switch name {
	case "data":
		if info.Meta.DataPath != "" {
			return info.Meta.DataPath, true
		}
	case "seed":
		return strconv.FormatInt(info.Meta.Seed, 10), true
	case "dropout":
		return strconv.FormatFloat(info.Config.Dropout, 'g', -1, 64), true
	}
	v, ok := info.Meta.Run[name]
	return v, ok
}

// checkArchitecture sets the model's shape to the checkpoint's and refuses a
// flag (or a preset) that asks for a different one: the weights cannot change
// shape. Features, horizons and bins come from the data file; the trainer
// refuses a file that does not match the checkpoint.
func checkArchitecture(c *cli.Context, mc *model.Config, info checkpoint.Info) error {
	preset := c.String("preset")
	for _, a := range []struct {
		name string
		cur  *int
		ck   int
	}{{"hidden-dim", &mc.HiddenDim, info.Config.HiddenDim}, {"num-layers", &mc.NumLayers, info.Config.NumLayers},
		{"num-heads", &mc.NumHeads, info.Config.NumHeads}, {"seq-len", &mc.SeqLen, info.Config.SeqLen}} {
		given := c.IsSet(a.name)
		if (given || preset != "") && *a.cur != a.ck {
			if given {
				return fmt.Errorf("--%s %d differs from the checkpoint's %d: the architecture cannot change when resuming from %s (drop --%s)",
					a.name, *a.cur, a.ck, info.Path, a.name)
			}
			return fmt.Errorf("--preset %s sets --%s %d, the checkpoint's is %d: the architecture cannot change when resuming from %s (drop --preset)",
				preset, a.name, *a.cur, a.ck, info.Path)
		}
		*a.cur = a.ck
	}
	return nil
}

// flagDefault is a flag's default value as text.
func flagDefault(f cli.Flag) string {
	switch x := f.(type) {
	case *cli.IntFlag:
		return strconv.Itoa(x.Value)
	case *cli.Int64Flag:
		return strconv.FormatInt(x.Value, 10)
	case *cli.Float64Flag:
		return strconv.FormatFloat(x.Value, 'g', -1, 64)
	case *cli.BoolFlag:
		return strconv.FormatBool(x.Value)
	case *cli.StringFlag:
		return x.Value
	}
	return ""
}

// sameValue compares two values of flag f as the flag's type reads them
// (so 4e-05 and 0.00004 are the same learning rate).
func sameValue(f cli.Flag, a, b string) bool {
	if pathFlags[f.Names()[0]] {
		// The checkpoint records paths absolute, the command line usually
		// gives them relative (or through a link): the same file is the
		// same value, or every restart would warn.
		return a == b || checkpoint.SamePath(a, b)
	}
	switch f.(type) {
	case *cli.IntFlag, *cli.Int64Flag:
		x, e1 := strconv.ParseInt(a, 0, 64)
		y, e2 := strconv.ParseInt(b, 0, 64)
		if e1 == nil && e2 == nil {
			return x == y
		}
	case *cli.Float64Flag:
		x, e1 := strconv.ParseFloat(a, 64)
		y, e2 := strconv.ParseFloat(b, 64)
		if e1 == nil && e2 == nil {
			return x == y
		}
	case *cli.BoolFlag:
		x, e1 := strconv.ParseBool(a)
		y, e2 := strconv.ParseBool(b)
		if e1 == nil && e2 == nil {
			return x == y
		}
	}
	return a == b
}

func shown(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// Where a --data value came from, for checkDataFile's message.
const (
	dataGiven      = iota // on the command line or as SATRAIN_DATA
	dataDefault           // the documented default file name
	dataCheckpoint        // the data file recorded in the resumed checkpoint
)

// checkDataFile explains a --data that cannot be a panel before any work: a
// missing file (the default one with how to make it), a folder or a CSV file
// (with the import command). Errors are one line naming the path.
func checkDataFile(path string, origin int, ckpt string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		switch origin {
		case dataDefault:
			return fmt.Errorf("--data %s: no such file; it is the HDF5 market panel training reads (docs/FORMAT.md): "+
				"make one with `satrain data synth panel.h5` (synthetic) or `satrain data import-csv DIR --out panel.h5` (daily CSVs), "+
				"then pass --data panel.h5; `satrain demo` runs all of it on the CPU", path)
		case dataCheckpoint:
			if !filepath.IsAbs(path) {
				return fmt.Errorf("--data %s (the data file recorded in %s, relative to the folder that run started in): no such file from here; pass --data with the panel's path",
					path, ckpt)
			}
			return fmt.Errorf("--data %s (the data file recorded in %s): no such file; pass --data with the panel's path", path, ckpt)
		}
		return fmt.Errorf("--data %s: no such file; make a panel with `satrain data synth` or `satrain data import-csv`", path)
	case err != nil:
		return fmt.Errorf("--data %s: %w", path, err)
	case st.IsDir():
		csvs, _ := filepath.Glob(filepath.Join(path, "*.csv"))
		if len(csvs) > 0 {
			return fmt.Errorf("--data %s is a folder of %d CSV files, not an HDF5 panel: import it with `satrain data import-csv %s --out panel.h5`, then pass --data panel.h5",
				path, len(csvs), path)
		}
		return fmt.Errorf("--data %s is a folder, not an HDF5 panel file (docs/FORMAT.md)", path)
	case strings.EqualFold(filepath.Ext(path), ".csv"):
		return fmt.Errorf("--data %s is a CSV file, not an HDF5 panel: put the per-ticker CSV files in a folder and import it with `satrain data import-csv DIR --out panel.h5`, then pass --data panel.h5",
			path)
	}
	return nil
}
