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
	"syscall"
	"time"

	"github.com/satrain/satrain/torch"
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
	for _, check := range []func() error{torch.CPUKernelsEnv, mallocEnv} {
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, "satrain:", err)
			os.Exit(2)
		}
	}
	if len(os.Args) > 0 && os.Args[0] != "" {
		trainer.ProgramName = os.Args[0] // the resume commands it prints run as it was run
	}
	ctx, stop := signalContext()
	defer stop()
	err := rankOutput(runArgs)(ctx, newApp(), os.Args)
	if err != nil {
		err = flagWorded(err)
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
	go watchSignals(ch, w, cancel, time.Now, os.Exit)
	watchLauncher(os.Stderr, cancel, os.Exit)
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}

// watchSignals reads ch until it is closed, saying what it does on w: the
// first signal calls cancel; a later one within sameSignalWindow of the first
// (by the clock now) is ignored; one after that calls exit(130) and returns.
func watchSignals(ch <-chan os.Signal, w io.Writer, cancel func(), now func() time.Time, exit func(int)) {
	sig, ok := <-ch
	if !ok {
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
