package torch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Launch is how the launcher placed this process, read from the variables
// torchrun, Kubernetes' PyTorchJob and Slurm set. The zero value (world size
// 0 or 1) is a single process.
type Launch struct {
	Rank, WorldSize, LocalRank int
	// LocalWorldSize is how many ranks run on this host (LOCAL_WORLD_SIZE,
	// which torchrun sets; Slurm's SLURM_NTASKS_PER_NODE). 0: not known.
	LocalWorldSize int
	MasterAddr     string
	MasterPort     int
	// UseAgentStore: torchrun's agent already hosts the TCPStore at
	// MasterAddr:MasterPort (TORCHELASTIC_USE_AGENT_STORE=True, its static
	// rendezvous); every rank, 0 included, connects as a client.
	UseAgentStore bool
	// RestartCount is TORCHELASTIC_RESTART_COUNT: how often torchrun
	// restarted the worker group. Store keys are prefixed with it so a
	// restarted group never reads its predecessor's keys.
	RestartCount int
	// Source names the variables read: "env" (RANK/WORLD_SIZE), "slurm"
	// (SLURM_PROCID/SLURM_NTASKS) or "" for a single process.
	Source string
}

// Distributed reports whether the launch asks for more than one process.
func (l Launch) Distributed() bool { return l.WorldSize > 1 }

// LaunchFromEnv reads the launch variables through getenv (os.LookupEnv in
// production). RANK and WORLD_SIZE (with LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT) come
// first; without them Slurm's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID
// stand in, with MASTER_ADDR and MASTER_PORT still required. With neither,
// or a world size of 1, the result is a single process. Errors are one line
// naming the variable and its value.
func LaunchFromEnv(getenv func(string) (string, bool)) (Launch, error) {
	get := func(k string) (string, bool) {
		v, ok := getenv(k)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	intVar := func(k string, lo int) (int, error) {
		v, _ := get(k)
		n, err := strconv.Atoi(v)
		if err != nil || n < lo {
			return 0, fmt.Errorf("launch: %s=%q: want an integer >= %d", k, v, lo)
		}
		return n, nil
	}
	var l Launch
	_, hasWorld := get("WORLD_SIZE")
	_, hasRank := get("RANK")
	_, hasSlurm := get("SLURM_NTASKS")
	rankVar, worldVar, localVar := "RANK", "WORLD_SIZE", "LOCAL_RANK"
	switch {
	case hasWorld && !hasRank:
		w, _ := get("WORLD_SIZE")
		return Launch{}, fmt.Errorf("launch: WORLD_SIZE=%s is set but RANK is not (a launcher sets both; set RANK to this process's rank)", w)
	case hasRank && !hasWorld:
		r, _ := get("RANK")
		return Launch{}, fmt.Errorf("launch: RANK=%s is set but WORLD_SIZE is not (a launcher sets both)", r)
	case hasWorld:
		l.Source = "env"
	case hasSlurm:
		l.Source = "slurm"
		rankVar, worldVar, localVar = "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"
		if _, ok := get(rankVar); !ok {
			w, _ := get(worldVar)
			return Launch{}, fmt.Errorf("launch: SLURM_NTASKS=%s is set but SLURM_PROCID is not (start the ranks with srun)", w)
		}
	default:
		return Launch{WorldSize: 1}, nil
	}
	var err error
	if l.WorldSize, err = intVar(worldVar, 1); err != nil {
		return Launch{}, err
	}
	if l.Rank, err = intVar(rankVar, 0); err != nil {
		return Launch{}, err
	}
	if l.Rank >= l.WorldSize {
		return Launch{}, fmt.Errorf("launch: %s=%d is outside %s=%d (ranks are 0..%d)", rankVar, l.Rank, worldVar, l.WorldSize, l.WorldSize-1)
	}
	if _, ok := get(localVar); ok {
		if l.LocalRank, err = intVar(localVar, 0); err != nil {
			return Launch{}, err
		}
	}
	localWorldVar := "LOCAL_WORLD_SIZE"
	if l.Source == "slurm" {
		localWorldVar = "SLURM_NTASKS_PER_NODE"
	}
	if v, ok := get(localWorldVar); ok {
		// Slurm writes "4" or, for uneven nodes, "4(x2),3": only a plain count is used.
		if n, err := strconv.Atoi(v); err == nil && n >= 1 {
			l.LocalWorldSize = n
		} else if l.Source == "env" {
			return Launch{}, fmt.Errorf("launch: %s=%q: want an integer >= 1", localWorldVar, v)
		}
	}
	if l.WorldSize == 1 {
		// No rendezvous is needed. A launcher's store address (torchrun sets
		// one) is kept when it is well formed, for a native world of one
		// (GroupConfig.NativeWorldOfOne); nothing is required.
		addr, okAddr := get("MASTER_ADDR")
		port, okPort := get("MASTER_PORT")
		if p, err := strconv.Atoi(port); okAddr && okPort && err == nil && p >= 1 && p <= 65535 {
			l.MasterAddr, l.MasterPort = addr, p
			l.UseAgentStore, l.RestartCount = agentStore(get)
		}
		return l, nil
	}
	addr, ok := get("MASTER_ADDR")
	if !ok {
		return Launch{}, fmt.Errorf("launch: %s=%d but MASTER_ADDR is not set (the host of rank 0 or of torchrun's store)", worldVar, l.WorldSize)
	}
	l.MasterAddr = addr
	port, ok := get("MASTER_PORT")
	if !ok {
		return Launch{}, fmt.Errorf("launch: %s=%d but MASTER_PORT is not set (a free TCP port on MASTER_ADDR)", worldVar, l.WorldSize)
	}
	if l.MasterPort, err = strconv.Atoi(port); err != nil || l.MasterPort < 1 || l.MasterPort > 65535 {
		return Launch{}, fmt.Errorf("launch: MASTER_PORT=%q: want a TCP port 1..65535", port)
	}
	l.UseAgentStore, _ = agentStore(get)
	if _, ok := get("TORCHELASTIC_RESTART_COUNT"); ok {
		if l.RestartCount, err = intVar("TORCHELASTIC_RESTART_COUNT", 0); err != nil {
			return Launch{}, err
		}
	}
	return l, nil
}

// agentStore reads whether torchrun's agent hosts the store and its restart
// count (0 when unset or malformed; LaunchFromEnv refuses a malformed count
// where a rendezvous needs it).
func agentStore(get func(string) (string, bool)) (useAgent bool, restarts int) {
	// torch.distributed compares with str(True); so do we.
	v, _ := get("TORCHELASTIC_USE_AGENT_STORE")
	if r, ok := get("TORCHELASTIC_RESTART_COUNT"); ok {
		if n, err := strconv.Atoi(r); err == nil && n >= 0 {
			restarts = n
		}
	}
	return v == "True", restarts
}

// GroupConfig is the process-group set-up for this launch: rank 0 hosts the
// store unless torchrun's agent does, and keys live under
// /worker/attempt_<restart count> as torch.distributed names them.
func (l Launch) GroupConfig(b Backend, timeout time.Duration) GroupConfig {
	world := max(l.WorldSize, 1)
	dev := 0
	if b == NCCL {
		dev = l.LocalRank
	}
	return GroupConfig{
		Rank: l.Rank, WorldSize: world,
		StoreAddr: l.MasterAddr, StorePort: l.MasterPort,
		HostStore:   l.Rank == 0 && !l.UseAgentStore,
		Prefix:      fmt.Sprintf("/worker/attempt_%d", l.RestartCount),
		Backend:     b,
		DeviceIndex: dev,
		Timeout:     timeout,
	}
}
