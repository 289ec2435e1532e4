// Command satrain trains a stock-return transformer with selection-aware
// training through libtorch. See the README for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

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

func logLevel() slog.Level {
	if os.Getenv("SATRAIN_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// signalContext cancels on the first SIGINT/SIGTERM (the run finishes its
// current step, writes a checkpoint and exits); a second signal exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "\nsatrain: %s received: finishing the current step and writing a checkpoint (send again to stop now)\n", sig)
		cancel()
		if _, ok := <-ch; ok {
			fmt.Fprintln(os.Stderr, "satrain: second signal: stopping without a checkpoint")
			os.Exit(130)
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}
