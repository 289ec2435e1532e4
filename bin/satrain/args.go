package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agnivade/levenshtein"
	"github.com/urfave/cli/v2"
)

// usageError is a mistake on the command line (an unknown command or flag,
// an unexpected argument, a value that does not parse, a setting that cannot
// change on resume). main prints it as one line on stderr and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// isUsageError reports whether err is a command-line mistake (exit status 2).
func isUsageError(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// runArgs runs app on the command line args (args[0] is the program name)
// after normalizeArgs has checked it and put every flag before the
// positional arguments.
func runArgs(ctx context.Context, app *cli.App, args []string) error {
	norm, err := normalizeArgs(app, args)
	if err != nil {
		return err
	}
	return flagWorded(app.RunContext(ctx, norm))
}

// Root flags urfave/cli adds to the app.
var rootFlagNames = []string{"help", "h", "version", "v"}

// normalizeArgs checks a command line against app's command tree and returns
// it with the leaf command's flags first, then "--" and the positional
// arguments. urfave/cli (like Go's flag package) stops reading flags at the
// first positional argument, so without this `import-csv DIR --out X` would
// leave --out unread. Which flags take a value is known from the command's
// flag types (only bool flags do not), so a value that happens to look like a
// positional argument (`--data x.h5`) or a flag (`--lr -1`) stays with its
// flag. Everything after a literal "--" is positional.
//
// A command accepts as many positional arguments as its ArgsUsage names
// words (none when it is empty). Errors (unknown command, unknown flag, flag
// without its value, unexpected argument) are usage errors naming the
// offending word, with the nearest valid name where one is close.
func normalizeArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	i := 1
	// Root flags come before the command.
	for ; i < len(args) && isFlagToken(args[i]); i++ {
		if args[i] == "--" {
			return args, nil
		}
		name, _, _ := splitFlag(args[i])
		if contains(rootFlagNames, name) {
			out = append(out, args[i])
			continue
		}
		if cmds := commandsWithFlag(app.Commands, name); len(cmds) > 0 {
			return nil, usagef("flag %s goes after the command: satrain %s %s ...", dashed(name), cmds[0], dashed(name))
		}
		return nil, usagef("unknown flag %s%s", dashed(name), didYouMean(name, rootFlagNames, "--"))
	}
	if i == len(args) {
		return args, nil // help or version
	}
	cmds := app.Commands
	var path []string
	for {
		name := args[i]
		if name == "help" || name == "h" {
			// urfave's help command; a topic that is no command is a usage error here.
			if i+1 < len(args) && !isFlagToken(args[i+1]) && findCommand(cmds, args[i+1]) == nil {
				names := visibleCommandNames(cmds)
				return nil, usagef("help: unknown command %q%s", args[i+1], didYouMean(args[i+1], names, ""))
			}
			return args, nil
		}
		cmd := findCommand(cmds, name)
		if cmd == nil {
			names := visibleCommandNames(cmds)
			hint := didYouMean(name, names, "")
			if hint == "" {
				hint = " (one of: " + strings.Join(names, ", ") + ")"
			}
			if len(path) > 0 {
				return nil, usagef("%s: unknown subcommand %q%s", strings.Join(path, " "), name, hint)
			}
			return nil, usagef("unknown command %q%s", name, hint)
		}
		path = append(path, cmd.Name)
		out = append(out, name)
		i++
		if len(cmd.Subcommands) == 0 {
			rest, err := normalizeLeaf(cmd, strings.Join(path, " "), args[i:])
			if err != nil {
				return nil, err
			}
			return append(out, rest...), nil
		}
		// A command group: its own help flag, or the subcommand.
		if i == len(args) {
			return args, nil // urfave shows the group's help
		}
		if isFlagToken(args[i]) {
			name, _, _ := splitFlag(args[i])
			if name == "help" || name == "h" || args[i] == "--" {
				return args, nil
			}
			return nil, usagef("%s: flag %s goes after the subcommand (%s)", strings.Join(path, " "), dashed(name),
				strings.Join(visibleCommandNames(cmd.Subcommands), ", "))
		}
		cmds = cmd.Subcommands
	}
}

// normalizeLeaf reorders one command's arguments: flags (with their values)
// first, then "--" and the positional arguments if there are any.
func normalizeLeaf(cmd *cli.Command, name string, args []string) ([]string, error) {
	takesValue := map[string]bool{"help": false, "h": false}
	var names []string
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
			names = append(names, n)
		}
	}
	var flags, pos []string
	lastBool := "" // the bool flag just before, for the `--flag false` hint
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !isFlagToken(a) {
			if len(pos) == 0 && a == "help" {
				return args, nil // urfave's help subcommand of every command
			}
			if lastBool != "" && (a == "true" || a == "false") {
				return nil, usagef("%s: unexpected argument %q: a bool flag takes its value after '=': %s=%s", name, a, dashed(lastBool), a)
			}
			pos = append(pos, a)
			lastBool = ""
			continue
		}
		fname, _, hasValue := splitFlag(a)
		tv, known := takesValue[fname]
		if !known {
			if note, ok := absentFlagNotes[name+" "+fname]; ok {
				return nil, usagef("%s: unknown flag %s: %s", name, dashed(fname), note)
			}
			hint := didYouMean(fname, names, "--")
			if hint == "" {
				hint = fmt.Sprintf(" (see satrain %s --help)", name)
			}
			return nil, usagef("%s: unknown flag %s%s", name, dashed(fname), hint)
		}
		flags = append(flags, a)
		lastBool = ""
		if tv && !hasValue {
			if i+1 == len(args) {
				return nil, usagef("%s: flag %s needs a value", name, dashed(fname))
			}
			i++
			flags = append(flags, args[i])
		} else if !tv && !hasValue {
			lastBool = fname
		}
	}
	if max := len(strings.Fields(cmd.ArgsUsage)); len(pos) > max {
		extra := pos[max]
		if max == 0 {
			return nil, usagef("%s: unexpected argument %q%s", name, extra, positionalHint(cmd, name, extra))
		}
		return nil, usagef("%s: unexpected argument %q after %s (it takes %s; flags may come before or after it)", name, extra, pos[0], cmd.ArgsUsage)
	}
	if len(pos) == 0 {
		return flags, nil
	}
	return append(append(flags, "--"), pos...), nil
}

// absentFlagNotes say why a command lacks a flag of its sibling commands,
// in place of a "did you mean" that would point to an unrelated flag; the
// key is the command path and the flag name.
var absentFlagNotes = map[string]string{
	"train val-every":        "train validates and writes a checkpoint every epoch (--val-every is a selection-aware flag)",
	"train checkpoint-every": "train validates and writes a checkpoint every epoch (--checkpoint-every is a selection-aware flag)",
}

// positionalHint suggests the flag a stray file argument was probably meant
// for: a panel for --data, a checkpoint for --checkpoint, a log for --log.
func positionalHint(cmd *cli.Command, name, arg string) string {
	byExt := map[string][]string{".h5": {"data"}, ".hdf5": {"data"}, ".pt": {"checkpoint", "resume-from"}, ".jsonl": {"log"}}
	for _, flag := range byExt[strings.ToLower(filepath.Ext(arg))] {
		if hasFlag(cmd, flag) {
			return fmt.Sprintf("; did you mean --%s %s?", flag, arg)
		}
	}
	return fmt.Sprintf(" (%s takes no arguments, only flags; see satrain %s --help)", name, name)
}

// isFlagToken: "-x", "--x", "--x=v" and "--" are flag tokens; "-" (stdin by
// convention) and anything else are positional.
func isFlagToken(a string) bool { return len(a) > 1 && a[0] == '-' }

// splitFlag turns "--name=value" into ("name", "value", true) the way Go's
// flag package reads it (one or two leading dashes).
func splitFlag(a string) (name, value string, hasValue bool) {
	s := strings.TrimPrefix(a, "-")
	s = strings.TrimPrefix(s, "-")
	name, value, hasValue = strings.Cut(s, "=")
	return
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func visibleCommandNames(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// commandsWithFlag lists the commands (as "data synth" paths) that have the flag.
func commandsWithFlag(cmds []*cli.Command, name string) []string {
	var out []string
	for _, c := range cmds {
		if hasFlag(c, name) {
			out = append(out, c.Name)
		}
		for _, sub := range commandsWithFlag(c.Subcommands, name) {
			out = append(out, c.Name+" "+sub)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// didYouMean returns "; did you mean PREFIX+NAME?" for the candidate nearest
// to word by Levenshtein distance when it is close (1 for a word of one or
// two letters, else a third of its length but at least 2, so one slip or a
// swap of two letters is caught), else for the only candidate that contains word (`--epochs` on
// selection-aware: --train-epochs-per-iteration), else "".
func didYouMean(word string, candidates []string, prefix string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(word, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1
	if len(word) >= 3 {
		limit = max(2, len(word)/3)
	}
	if bestD >= 0 && bestD <= limit && len(best) > 1 {
		return fmt.Sprintf("; did you mean %s%s?", prefix, best)
	}
	if len(word) >= 3 {
		var hits []string
		for _, c := range candidates {
			if strings.Contains(c, word) {
				hits = append(hits, c)
			}
		}
		if len(hits) == 1 {
			return fmt.Sprintf("; did you mean %s%s?", prefix, hits[0])
		}
	}
	return ""
}

// onUsageError turns the parse errors urfave/cli still finds (a value that
// does not parse, from the command line or a SATRAIN_* variable) into one
// usage line instead of "Incorrect Usage" and the whole help on stdout.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if m := parseErrRe.FindStringSubmatch(msg); m != nil && c != nil && c.Command != nil {
		// Go's flag package says only "parse error": say what the flag wants.
		want := "a value of the flag's type"
		for _, f := range c.Command.Flags {
			if contains(f.Names(), m[1]) {
				switch f.(type) {
				case *cli.IntFlag, *cli.Int64Flag:
					want = "an integer"
				case *cli.Float64Flag:
					want = "a number"
				case *cli.BoolFlag:
					want = "true or false"
				}
			}
		}
		msg = strings.Replace(msg, "parse error", "want "+want, 1)
	}
	msg = flagRefRe.ReplaceAllStringFunc(msg, func(m string) string {
		sub := flagRefRe.FindStringSubmatch(m)
		return strings.TrimSuffix(sub[1], "-") + "--" + sub[2]
	})
	if c != nil && c.Command != nil && c.Command.Name != "" {
		name := c.Command.Name
		if c.App != nil && strings.HasPrefix(c.Command.HelpName, c.App.Name+" ") {
			name = strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ") // "data synth"
		}
		return usagef("%s: %s", name, msg)
	}
	return usagef("%s", msg)
}

var (
	parseErrRe = regexp.MustCompile(`for (?:flag )?-+([A-Za-z0-9-]+): parse error`)
	// "for flag -x", "for flag x", "for -x", "argument: -x" as Go's flag package and urfave/cli write them.
	flagRefRe = regexp.MustCompile(`(for flag |argument: |defined: |for -)-*([A-Za-z0-9][A-Za-z0-9-]*)`)
)

// setUsageHandlers installs onUsageError on the app and every command.
func setUsageHandlers(app *cli.App) {
	app.OnUsageError = onUsageError
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}
