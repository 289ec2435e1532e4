// Command satrain trains a stock-return transformer with selection-aware
// training through libtorch. See the README for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/satrain/satrain/trainer"
)

// version is set at build time (-X main.version=...).
var version = "dev"

func init() {
	// libtorch keeps grad mode and autocast per OS thread: every torch call of
	// satrain runs on the main goroutine, pinned to the main thread.
	runtime.LockOSThread()
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})))
	if err := mallocEnv(); err != nil {
		fmt.Fprintln(os.Stderr, "satrain:", err)
		os.Exit(2)
	}
	if len(os.Args) > 0 && os.Args[0] != "" {
		programName = os.Args[0] // the resume commands it prints run as it was run
	}
	trainingCommand.Store(len(os.Args) > 1 && trainingCommands[commandName(os.Args[1:])])
	ctx, stop := signalContext()
	defer stop()
	err := rankOutput(runArgs)(ctx, newApp(), os.Args)
	if err != nil {
		if errors.Is(err, trainer.ErrInterrupted) {
			fmt.Fprintln(os.Stderr, "satrain:", err)
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "satrain:", err)
		if isUsageError(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// mallocEnv checks SATRAIN_MALLOC, which libsatorch.so reads when it loads
// (torch.MallocPolicy): unset, "keep" or "system", as the shim compares it
// (case-sensitive). The shim takes any other value as "system", silently.
func mallocEnv() error {
	if v := os.Getenv("SATRAIN_MALLOC"); v != "" && v != "keep" && v != "system" {
		return fmt.Errorf("SATRAIN_MALLOC=%q: want keep (freed memory stays in the process, the default) or system (glibc's defaults)", v)
	}
	return nil
}

func logLevel() slog.Level {
	if os.Getenv("SATRAIN_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// sameSignalWindow is how long after the first SIGINT/SIGTERM another one
// counts as the same request: GNU timeout -s INT signals the child and then
// its process group, so one Ctrl-C can arrive twice microseconds apart.
const sameSignalWindow = time.Second

// signalContext cancels on the first SIGINT/SIGTERM (the run finishes its
// current step, writes a checkpoint and exits); a signal within
// sameSignalWindow of the first is the same request and is ignored; a
// signal after it exits at once (see watchSignals).
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var w io.Writer = os.Stderr
	if quietRank() {
		w = io.Discard // rank 0 says what the job does with the signal
	}
	go watchSignals(ch, w, cancel, nothingToSave, time.Now, os.Exit)
	watchLauncher(os.Stderr, cancel, nothingToSave, os.Exit)
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}

// trainingCommand is set when the command line names a command that trains
// (selection-aware, quickstart, train, compare), read from the arguments at
// start so that a signal during flag checks or the rendezvous finds it: see
// nothingToSave.
var trainingCommand atomic.Bool

// trainingCommands are the commands that train.
var trainingCommands = map[string]bool{"selection-aware": true, "quickstart": true, "train": true, "compare": true}

// commandName is the first argument that is not a flag ("" when none).
func commandName(args []string) string {
	for _, a := range args {
		if a == "--" {
			return ""
		}
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// nothingToSave reports whether a stop request can end the process at once:
// a training command that has applied no training step yet (it may be
// waiting for its peers in the rendezvous, or scoring a first sample with a
// large model) has nothing of its own to save. Other commands stop through
// their context, which lets them remove their partial output files.
// A compare with child processes in flight (--jobs) stops through its
// context, which stops them.
func nothingToSave() bool {
	return trainingCommand.Load() && !trainer.StepTaken() && childRuns.Load() == 0
}

// watchSignals reads ch until it is closed, saying what it does on w: the
// first signal exits at once (exit(130)) when idle says there is nothing to
// save, else calls cancel; a later one within sameSignalWindow of the first
// (by the clock now) is ignored; one after that calls exit(130) and returns.
func watchSignals(ch <-chan os.Signal, w io.Writer, cancel func(), idle func() bool, now func() time.Time, exit func(int)) {
	sig, ok := <-ch
	if !ok {
		return
	}
	if idle() {
		fmt.Fprintf(w, "\nsatrain: %s received before any training step: nothing to save; stopping now\n", sig)
		exit(130)
		return
	}
	first := now()
	fmt.Fprintf(w, "\nsatrain: %s received: finishing the current step and writing a checkpoint (send again after %v to stop now)\n",
		sig, sameSignalWindow)
	cancel()
	for range ch {
		if now().Sub(first) < sameSignalWindow {
			continue
		}
		fmt.Fprintln(w, "satrain: second signal: stopping without a checkpoint")
		exit(130)
		return
	}
}
