package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/satrain/satrain/checkpoint"
	"github.com/satrain/satrain/torch"
	"github.com/satrain/satrain/trainer"
	"github.com/urfave/cli/v2"
)

// joinGroup joins the data-parallel job the launcher's variables describe
// (torch.LaunchFromEnv): Gloo on the CPU, NCCL on cuda:LOCAL_RANK. Without
// them, or with a world size of 1, it returns the world of one.
// On CUDA the run's device becomes cuda:LOCAL_RANK.
func joinGroup(c *cli.Context, cfg *trainer.RunConfig) (*torch.ProcessGroup, error) {
	return joinGroupOn(c, &cfg.Device)
}

// joinGroupOn is joinGroup for a command whose device is dev.
func joinGroupOn(c *cli.Context, dev *torch.Device) (*torch.ProcessGroup, error) {
	l, err := torch.LaunchFromEnv(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	native := c.Bool("native-world-of-one") && l.WorldSize == 1 && l.MasterPort != 0
	if !l.Distributed() && !native {
		return torch.SingleProcess(), nil
	}
	timeout := c.Duration("dist-timeout")
	if timeout <= 0 {
		return nil, fmt.Errorf("--dist-timeout must be positive, got %s", timeout)
	}
	backend := torch.Gloo
	if !dev.IsCUDA() && c.Int("threads") == 0 && l.LocalWorldSize > 1 {
		// Ranks on one host split its CPUs rather than each taking all of
		// them (oversubscribed OpenMP pools spin against each other).
		n := rankThreads(torch.AffinityCPUs(), l.LocalWorldSize)
		if err := torch.SetThreadPolicy(n); err != nil {
			return nil, err
		}
		slog.Debug("CPU threads split between the ranks on this host", "threads", n, "local_world_size", l.LocalWorldSize)
	}
	if dev.IsCUDA() {
		// Each rank drives the GPU of its local rank (untested: no GPU in CI).
		backend = torch.NCCL
		*dev = torch.CUDA(l.LocalRank)
		if err := torch.CheckDevice(*dev); err != nil {
			return nil, fmt.Errorf("LOCAL_RANK=%d: %w", l.LocalRank, err)
		}
	}
	gc := l.GroupConfig(backend, timeout)
	gc.NativeWorldOfOne = native
	g, err := torch.NewProcessGroup(gc)
	if err != nil {
		return nil, err
	}
	slog.Debug("joined process group", "rank", l.Rank, "world_size", l.WorldSize, "local_rank", l.LocalRank,
		"backend", backend, "store", fmt.Sprintf("%s:%d", l.MasterAddr, l.MasterPort), "agent_store", l.UseAgentStore)
	return g, nil
}

// resolveResumeAuto turns --resume-from auto into the newest valid
// checkpoint of saveDir, or "" (a fresh start) when there is none.
func resolveResumeAuto(saveDir string) (string, error) {
	path, skipped, err := checkpoint.RunDir(saveDir).ResumeAuto()
	if err != nil {
		return "", err
	}
	for _, s := range skipped {
		slog.Warn("--resume-from auto: skipping an unreadable checkpoint", "why", s)
	}
	return path, nil
}

// refuseDistributed stops a command that runs in one process only when the
// launcher's variables ask for several.
func refuseDistributed(command string) error {
	l, err := torch.LaunchFromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	if l.Distributed() {
		return fmt.Errorf("%s runs in one process; start it without the launcher (WORLD_SIZE=%d is set)", command, l.WorldSize)
	}
	return nil
}

// rankThreads is each rank's share of a host's cpus when localWorld ranks
// run there: at least one thread each.
func rankThreads(cpus, localWorld int) int {
	return max(1, cpus/max(1, localWorld))
}
