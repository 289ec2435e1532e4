package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// launcherGrace is how long a rank whose launcher died may take to stop at
// a step boundary (and write its checkpoint) before it exits regardless: a
// collective with a peer that already left could otherwise hold it until
// --dist-timeout.
const launcherGrace = 30 * time.Second

// launcherPoll is how often the parent is checked, as a backstop for the
// parent-death signal (which a parent that died before it was armed, or a
// launcher that forked from a thread that has since exited, gets wrong).
const launcherPoll = time.Second

// launchedByTorchrun reports whether the environment is one torchrun's agent
// gives its workers (TORCHELASTIC_RUN_ID, _RESTART_COUNT, ... ). Ranks
// started by hand (WORLD_SIZE and RANK only, say under nohup) keep running
// when the shell that started them ends.
func launchedByTorchrun(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "TORCHELASTIC_") {
			return true
		}
	}
	return false
}

// watchLauncher makes a rank that torchrun started stop when torchrun's agent
// dies (SIGKILL, OOM killer): orphans would train on beside a relaunch and
// write checkpoints. The kernel's parent-death signal (SIGUSR2, armed here on
// the main thread, where main runs locked) and a poll of getppid both compare
// the parent with the one at start; when it has changed, the rank says so on
// w and calls stop (the same request as SIGTERM: stop at the next step
// boundary; with nothing to save yet, idle, it exits 130 at once); if it is
// still running launcherGrace later it exits 1.
// Must be called from the main goroutine.
func watchLauncher(w io.Writer, stop func(), idle func() bool, exit func(int)) {
	if !launchedByTorchrun(os.Environ()) {
		return
	}
	parent := os.Getppid()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGUSR2), 0, 0, 0); err != nil {
		slog.Debug("parent-death signal not armed; polling the parent only", "err", err)
	}
	go func() {
		tick := time.NewTicker(launcherPoll)
		defer tick.Stop()
		for os.Getppid() == parent {
			select {
			case <-ch:
			case <-tick.C:
			}
		}
		if idle() {
			fmt.Fprintf(w, "\nsatrain: the launcher (pid %d) is gone, before any training step: nothing to save; stopping now\n", parent)
			exit(130)
			return
		}
		fmt.Fprintf(w, "\nsatrain: the launcher (pid %d) is gone: stopping this rank at the next step boundary\n", parent)
		stop()
		time.Sleep(launcherGrace)
		fmt.Fprintf(w, "satrain: still running %v after the launcher died: exiting\n", launcherGrace)
		exit(1)
	}()
}
