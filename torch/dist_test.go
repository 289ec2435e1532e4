package torch

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/satrain/satrain/internal/testenv"
)

// The multi-process tests re-execute this test binary: with
// SATRAIN_DIST_WORKER set, TestMain runs one rank of a scenario instead of
// the tests. Ranks find each other on loopback through RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT, as torchrun sets them.
func TestMain(m *testing.M) {
	if sc := os.Getenv("SATRAIN_DIST_WORKER"); sc != "" {
		os.Exit(distWorker(sc))
	}
	os.Exit(m.Run())
}

// workerTimeout is the collective timeout of the worker ranks.
const workerTimeout = 5 * time.Second

// collectiveResults is what a rank of the "collectives" scenario saw.
type collectiveResults struct {
	Rank      int
	Sum       []float32
	Mean      []float32
	Broadcast []float32
	Gather    [][]float32
	Ragged    [][]float32
	Ints      [][]int64
	GradA     []float32 // AllReduceGrads: a grad every rank has
	GradB     []float32 // one only rank 0 has
	Extra     []float32
}

// gradScale is rank r's share in the AllReduceGrads check (sums to 1).
func gradScale(r int) float64 { return []float64{0.25, 0.75}[r] }

// reduceGrads gives two parameters grads by backward through sum(a*ca) (+
// sum(b*cb) on rank 0 only), then averages them with AllReduceGrads using
// 8-byte buckets, so each parameter and the extra value go separately.
func reduceGrads(g *ProcessGroup) (ga, gb, extra []float32, err error) {
	s := NewScope()
	defer s.Close()
	r := float32(g.Rank() + 1)
	a := s.FromFloat32([]float32{1, 1, 1}, 3)
	b := s.FromFloat32([]float32{1, 1}, 2)
	if err := s.Err(); err != nil {
		return nil, nil, nil, err
	}
	for _, p := range []*Tensor{a, b} {
		if err := p.SetRequiresGrad(true); err != nil {
			return nil, nil, nil, err
		}
	}
	loss := s.Sum(s.Mul(a, s.FromFloat32([]float32{r, 2 * r, 3 * r}, 3)))
	if g.Rank() == 0 {
		loss = s.Add(loss, s.Sum(s.Mul(b, s.FromFloat32([]float32{5, 6}, 2))))
	}
	s.Backward(loss)
	if err := s.Err(); err != nil {
		return nil, nil, nil, err
	}
	g.SetGradBucketBytes(8)
	extra = []float32{r}
	if err := g.AllReduceGrads([]*Tensor{a, b}, gradScale(g.Rank()), extra); err != nil {
		return nil, nil, nil, err
	}
	if ga, err = s.Grad(a).Float32s(); err != nil {
		return nil, nil, nil, err
	}
	gb, err = s.Grad(b).Float32s()
	return ga, gb, extra, err
}

// rankInput is rank r's vector in the collectives scenario: small integers,
// so sums are exact in float32.
func rankInput(r int) []float32 {
	return []float32{float32(r + 1), float32(10 * (r + 1)), -float32(r), 0.5}
}

func distWorker(scenario string) int {
	defer LockThread()()
	l, err := LaunchFromEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	g, err := NewProcessGroup(l.GroupConfig(Gloo, workerTimeout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer g.Close()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	switch scenario {
	case "collectives":
		res := collectiveResults{Rank: g.Rank()}
		run := func(f func(*Tensor) error) ([]float32, error) {
			in := rankInput(g.Rank())
			t, err := FromFloat32(in, int64(len(in)))
			if err != nil {
				return nil, err
			}
			defer t.Free()
			if err := f(t); err != nil {
				return nil, err
			}
			return t.Float32s()
		}
		if res.Sum, err = run(g.AllReduceSum); err != nil {
			return fail(err)
		}
		if res.Mean, err = run(g.AllReduceMean); err != nil {
			return fail(err)
		}
		if res.Broadcast, err = run(func(t *Tensor) error { return g.Broadcast(t, 1) }); err != nil {
			return fail(err)
		}
		if res.Gather, err = g.AllGatherFloat32(rankInput(g.Rank())); err != nil {
			return fail(err)
		}
		ragged := make([]float32, g.Rank()+2) // rank r sends r+2 values r, r+1, ...
		for i := range ragged {
			ragged[i] = float32(g.Rank() + i)
		}
		if res.Ragged, err = g.AllGatherFloat32(ragged); err != nil {
			return fail(err)
		}
		if res.Ints, err = g.AllGatherInt64([]int64{int64(g.Rank()) << 40, -7}); err != nil {
			return fail(err)
		}
		if res.GradA, res.GradB, res.Extra, err = reduceGrads(g); err != nil {
			return fail(err)
		}
		if err := g.Barrier(); err != nil {
			return fail(err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			return fail(err)
		}
		return 0
	case "victim":
		// Joins, says so, then stays out of every collective until the
		// parent kills or stops it; the other ranks block on it.
		if err := g.Barrier(); err != nil {
			return fail(err)
		}
		if g.Rank() == victimRank() {
			fmt.Println("ready")
			time.Sleep(time.Hour)
			return 0
		}
		t, err := FromFloat32(make([]float32, 1024), 1024)
		if err != nil {
			return fail(err)
		}
		for i := 0; i < 1000; i++ {
			if err := g.AllReduceSum(t); err != nil {
				return fail(err)
			}
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
	return 2
}

func victimRank() int {
	r, _ := strconv.Atoi(os.Getenv("SATRAIN_DIST_VICTIM"))
	return r
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func needGloo(t *testing.T) {
	t.Helper()
	if !HasBackend(Gloo) {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: libsatorch built without Gloo (make deps installs libgloo-dev)")
		}
		t.Skip("libsatorch built without Gloo")
	}
}

type rankProc struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *strings.Builder
	done   chan error
}

// startRanks starts world ranks of scenario with torchrun's variables.
func startRanks(t *testing.T, scenario string, world int, extra ...string) []*rankProc {
	t.Helper()
	port := freePort(t)
	procs := make([]*rankProc, world)
	for r := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"SATRAIN_DIST_WORKER="+scenario,
			"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(world), "LOCAL_RANK="+strconv.Itoa(r),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port),
			"TORCHELASTIC_USE_AGENT_STORE=", "TORCHELASTIC_RESTART_COUNT=", "SLURM_NTASKS=", "SLURM_PROCID=")
		cmd.Env = append(cmd.Env, extra...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p := &rankProc{cmd: cmd, stdout: bufio.NewReader(out), stderr: &strings.Builder{}, done: make(chan error, 1)}
		cmd.Stderr = p.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[r] = p
	}
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Kill()
		}
	})
	return procs
}

// hangLimit bounds how long a test waits for a rank that should have exited
// on its own: far above workerTimeout, it only turns a hang into a failure.
const hangLimit = 2 * time.Minute

func (p *rankProc) wait(t *testing.T) (code int) {
	t.Helper()
	go func() { p.done <- p.cmd.Wait() }()
	select {
	case <-p.done:
	case <-time.After(hangLimit):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("rank did not exit within %s (hang); stderr:\n%s", hangLimit, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// TestProcessGroupCollectives: two processes run every collective; each
// result is checked against the values computed here.
func TestProcessGroupCollectives(t *testing.T) {
	needGloo(t)
	const world = 2
	procs := startRanks(t, "collectives", world)
	results := make([]collectiveResults, world)
	for r, p := range procs {
		if err := json.NewDecoder(p.stdout).Decode(&results[r]); err != nil {
			p.wait(t)
			t.Fatalf("rank %d: no result (%v); stderr:\n%s", r, err, p.stderr)
		}
		if code := p.wait(t); code != 0 {
			t.Fatalf("rank %d exited %d; stderr:\n%s", r, code, p.stderr)
		}
	}
	checkCollectives(t, results)
}

// checkCollectives compares what each rank of the collectives scenario saw
// with the values computed here.
func checkCollectives(t *testing.T, results []collectiveResults) {
	t.Helper()
	in0, in1 := rankInput(0), rankInput(1)
	for r, res := range results {
		if res.Rank != r {
			t.Fatalf("rank %d reported rank %d", r, res.Rank)
		}
		for i := range in0 {
			sum := in0[i] + in1[i] // exact: small integers and halves
			if res.Sum[i] != sum {
				t.Errorf("rank %d: all-reduce sum[%d] = %v, want %v", r, i, res.Sum[i], sum)
			}
			if res.Mean[i] != sum/2 {
				t.Errorf("rank %d: all-reduce mean[%d] = %v, want %v", r, i, res.Mean[i], sum/2)
			}
			if res.Broadcast[i] != in1[i] {
				t.Errorf("rank %d: broadcast from 1 [%d] = %v, want %v", r, i, res.Broadcast[i], in1[i])
			}
		}
		want := fmt.Sprint([][]float32{in0, in1})
		if got := fmt.Sprint(res.Gather); got != want {
			t.Errorf("rank %d: all-gather = %s, want %s", r, got, want)
		}
		if got := fmt.Sprint(res.Ragged); got != "[[0 1] [1 2 3]]" {
			t.Errorf("rank %d: ragged all-gather = %s, want [[0 1] [1 2 3]]", r, got)
		}
		// 0.25*[1 2 3] + 0.75*[2 4 6]; 0.25*[5 6] (rank 1 has no grad: zeros); 1 + 2.
		if got := fmt.Sprint(res.GradA, res.GradB, res.Extra); got != "[1.75 3.5 5.25] [1.25 1.5] [3]" {
			t.Errorf("rank %d: AllReduceGrads = %s, want [1.75 3.5 5.25] [1.25 1.5] [3]", r, got)
		}
		if got := fmt.Sprint(res.Ints); got != fmt.Sprint([][]int64{{0, -7}, {1 << 40, -7}}) {
			t.Errorf("rank %d: int64 all-gather = %s", r, got)
		}
	}
}

// TestProcessGroupTorchrun launches the collectives scenario through the
// venv's torchrun (-r 1 -t 1: each output line names its rank): its default
// static rendezvous, where the agent hosts the store and
// rank 0 connects as a client, and --standalone, where rank 0 hosts it.
func TestProcessGroupTorchrun(t *testing.T) {
	needGloo(t)
	torchrun := testenv.Torchrun(t)
	for _, mode := range []string{"static", "standalone"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--no_python", "--nproc_per_node", "2", "-r", "1", "-t", "1"}
			if mode == "standalone" {
				args = append(args, "--standalone")
			} else {
				args = append(args, "--master_addr", "127.0.0.1", "--master_port", strconv.Itoa(freePort(t)))
			}
			args = append(args, os.Args[0], "-test.run=^$")
			cmd := exec.Command(torchrun, args...)
			cmd.Env = append(os.Environ(), "SATRAIN_DIST_WORKER=collectives", "RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("torchrun: %v\n%s", err, out)
			}
			// -t 1 tees each rank's stdout with a "[default<rank>]:" prefix.
			results := make([]collectiveResults, 2)
			seen := 0
			for _, line := range strings.Split(string(out), "\n") {
				for r := range results {
					if j, ok := strings.CutPrefix(line, fmt.Sprintf("[default%d]:{", r)); ok {
						if err := json.Unmarshal([]byte("{"+j), &results[r]); err != nil {
							t.Fatalf("rank %d: %v in %q", r, err, line)
						}
						seen |= 1 << r
					}
				}
			}
			if seen != 3 {
				t.Fatalf("torchrun output lacks a result of each rank:\n%s", out)
			}
			checkCollectives(t, results)
		})
	}
}

// TestProcessGroupPeerFailure: a peer killed (SIGKILL) or stopped (SIGSTOP)
// while the other rank waits in an all-reduce gives that rank a one-line
// error naming the peer and a non-zero exit, not an abort or a hang. Both the
// store's host (rank 0) and a client (rank 1) are tried as the victim.
func TestProcessGroupPeerFailure(t *testing.T) {
	needGloo(t)
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		victim int
	}{
		{"kill-rank1", syscall.SIGKILL, 1},
		{"kill-rank0-store-host", syscall.SIGKILL, 0},
		{"stop-rank1", syscall.SIGSTOP, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := startRanks(t, "victim", 2, "SATRAIN_DIST_VICTIM="+strconv.Itoa(tc.victim))
			victim, survivor := procs[tc.victim], procs[1-tc.victim]
			line, err := victim.stdout.ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "ready" {
				t.Fatalf("victim not ready (%q, %v); stderr:\n%s", line, err, victim.stderr)
			}
			if err := victim.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			code := survivor.wait(t)
			_ = victim.cmd.Process.Kill() // a stopped process dies on SIGKILL too
			victim.wait(t)
			msg := strings.TrimSpace(survivor.stderr.String())
			t.Logf("survivor: %s", msg)
			if code != 3 {
				t.Fatalf("survivor exited %d, want 3 (a Go error); stderr:\n%s", code, msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line:\n%s", msg)
			}
			want := fmt.Sprintf("all-reduce failed on rank %d of 2: peer rank %d", 1-tc.victim, tc.victim)
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not contain %q", msg, want)
			}
		})
	}
}

// TestProcessGroupPortInUse: rank 0 cannot host the store on a taken port.
func TestProcessGroupPortInUse(t *testing.T) {
	needGloo(t)
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = NewProcessGroup(GroupConfig{Rank: 0, WorldSize: 2, StoreAddr: "127.0.0.1", StorePort: port,
		HostStore: true, Backend: Gloo, Timeout: workerTimeout})
	if err == nil {
		t.Fatal("no error hosting the store on a port in use")
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d: port in use", port)) || strings.Contains(msg, "\n") {
		t.Errorf("want one line naming the port in use, got %q", msg)
	}
}

// TestProcessGroupMissingPeer: a world of 2 whose rank 1 never starts fails
// the rendezvous after the timeout with one line.
func TestProcessGroupMissingPeer(t *testing.T) {
	needGloo(t)
	port := freePort(t)
	_, err := NewProcessGroup(GroupConfig{Rank: 0, WorldSize: 2, StoreAddr: "127.0.0.1", StorePort: port,
		HostStore: true, Backend: Gloo, Timeout: time.Second})
	if err == nil {
		t.Fatal("rendezvous without rank 1 succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "not every rank joined") || strings.Contains(msg, "\n") {
		t.Errorf("want one line saying not every rank joined, got %q", msg)
	}
}

// TestSingleProcessGroup: a world of one needs no network and every
// collective leaves its input as it is.
func TestSingleProcessGroup(t *testing.T) {
	defer LockThread()()
	g, err := NewProcessGroup(GroupConfig{Rank: 0, WorldSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	x, _ := FromFloat32([]float32{1, 2, 3}, 3)
	defer x.Free()
	for _, f := range []func(*Tensor) error{g.AllReduceSum, g.AllReduceMean, func(t *Tensor) error { return g.Broadcast(t, 0) }} {
		if err := f(x); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := x.Float32s(); fmt.Sprint(v) != "[1 2 3]" {
		t.Errorf("world of one changed the tensor: %v", v)
	}
	all, err := g.AllGather(x)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Free()
	if s := all.Shape(); fmt.Sprint(s) != "[1 3]" {
		t.Errorf("all-gather shape %v, want [1 3]", s)
	}
	rag, err := g.AllGatherFloat32([]float32{4})
	if err != nil || fmt.Sprint(rag) != "[[4]]" {
		t.Errorf("AllGatherFloat32 = %v, %v", rag, err)
	}
	if err := g.Barrier(); err != nil {
		t.Fatal(err)
	}
	if err := g.Broadcast(x, 1); err == nil {
		t.Error("broadcast from root 1 in a world of one: no error")
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct{ n, world int }{{10, 3}, {2, 4}, {0, 2}, {7, 1}, {8, 2}} {
		next := 0
		for r := 0; r < tc.world; r++ {
			lo, hi := Share(tc.n, r, tc.world)
			if lo != next || hi < lo || hi-lo > tc.n/tc.world+1 || hi-lo < tc.n/tc.world {
				t.Fatalf("Share(%d, %d, %d) = [%d, %d), want start %d and size %d or %d",
					tc.n, r, tc.world, lo, hi, next, tc.n/tc.world, tc.n/tc.world+1)
			}
			next = hi
		}
		if next != tc.n {
			t.Fatalf("shares of %d over %d cover %d", tc.n, tc.world, next)
		}
	}
}

func envOf(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLaunchFromEnv(t *testing.T) {
	torchrun := []string{"RANK", "1", "WORLD_SIZE", "4", "LOCAL_RANK", "1", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500",
		"TORCHELASTIC_USE_AGENT_STORE", "True", "TORCHELASTIC_RESTART_COUNT", "2", "LOCAL_WORLD_SIZE", "2"}
	for _, tc := range []struct {
		name string
		env  []string
		want Launch
	}{
		{"nothing set", nil, Launch{WorldSize: 1}},
		{"world of one", []string{"RANK", "0", "WORLD_SIZE", "1"}, Launch{WorldSize: 1, Source: "env"}},
		{"torchrun, world of one: the store address is kept", []string{"RANK", "0", "WORLD_SIZE", "1", "LOCAL_RANK", "0",
			"MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29400", "TORCHELASTIC_USE_AGENT_STORE", "True", "TORCHELASTIC_RESTART_COUNT", "1"},
			Launch{WorldSize: 1, MasterAddr: "127.0.0.1", MasterPort: 29400, UseAgentStore: true, RestartCount: 1, Source: "env"}},
		{"world of one, malformed port: ignored", []string{"RANK", "0", "WORLD_SIZE", "1", "MASTER_ADDR", "h", "MASTER_PORT", "x"},
			Launch{WorldSize: 1, Source: "env"}},
		{"torchrun static rendezvous", torchrun, Launch{Rank: 1, WorldSize: 4, LocalRank: 1, MasterAddr: "10.0.0.1",
			MasterPort: 29500, UseAgentStore: true, RestartCount: 2, Source: "env", LocalWorldSize: 2}},
		{"standalone (rank 0 hosts)", []string{"RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "4000",
			"TORCHELASTIC_USE_AGENT_STORE", "False"}, Launch{WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: 4000, Source: "env"}},
		{"slurm", []string{"SLURM_PROCID", "3", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", "MASTER_ADDR", "n1", "MASTER_PORT", "29500"},
			Launch{Rank: 3, WorldSize: 8, LocalRank: 1, MasterAddr: "n1", MasterPort: 29500, Source: "slurm"}},
		{"slurm, uneven nodes", []string{"SLURM_PROCID", "3", "SLURM_NTASKS", "7", "SLURM_NTASKS_PER_NODE", "4(x1),3", "MASTER_ADDR", "n1", "MASTER_PORT", "29500"},
			Launch{Rank: 3, WorldSize: 7, MasterAddr: "n1", MasterPort: 29500, Source: "slurm"}},
		{"slurm, even nodes", []string{"SLURM_PROCID", "3", "SLURM_NTASKS", "8", "SLURM_NTASKS_PER_NODE", "4", "MASTER_ADDR", "n1", "MASTER_PORT", "29500"},
			Launch{Rank: 3, WorldSize: 8, MasterAddr: "n1", MasterPort: 29500, Source: "slurm", LocalWorldSize: 4}},
		{"env wins over slurm", []string{"RANK", "0", "WORLD_SIZE", "1", "SLURM_PROCID", "3", "SLURM_NTASKS", "8"},
			Launch{WorldSize: 1, Source: "env"}},
	} {
		got, err := LaunchFromEnv(envOf(tc.env...))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	l, _ := LaunchFromEnv(envOf(torchrun...))
	if c := l.GroupConfig(Gloo, time.Minute); c.HostStore || c.Prefix != "/worker/attempt_2" || c.StorePort != 29500 {
		t.Errorf("agent store: rank 1 config %+v", c)
	}
	l, _ = LaunchFromEnv(envOf("RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1"))
	if c := l.GroupConfig(Gloo, time.Minute); !c.HostStore || c.Prefix != "/worker/attempt_0" {
		t.Errorf("rank 0 without agent store must host the store: %+v", c)
	}
}

func TestLaunchFromEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"WORLD_SIZE", "2"}, "launch: WORLD_SIZE=2 is set but RANK is not"},
		{[]string{"RANK", "1"}, "launch: RANK=1 is set but WORLD_SIZE is not"},
		{[]string{"RANK", "x", "WORLD_SIZE", "2"}, `launch: RANK="x": want an integer >= 0`},
		{[]string{"RANK", "2", "WORLD_SIZE", "2"}, "launch: RANK=2 is outside WORLD_SIZE=2"},
		{[]string{"RANK", "0", "WORLD_SIZE", "0"}, `launch: WORLD_SIZE="0": want an integer >= 1`},
		{[]string{"RANK", "0", "WORLD_SIZE", "2", "MASTER_PORT", "1"}, "launch: WORLD_SIZE=2 but MASTER_ADDR is not set"},
		{[]string{"RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "h"}, "launch: WORLD_SIZE=2 but MASTER_PORT is not set"},
		{[]string{"RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "70000"}, `launch: MASTER_PORT="70000": want a TCP port`},
		{[]string{"SLURM_NTASKS", "4"}, "launch: SLURM_NTASKS=4 is set but SLURM_PROCID is not"},
		{[]string{"RANK", "0", "WORLD_SIZE", "2", "LOCAL_WORLD_SIZE", "two"}, `launch: LOCAL_WORLD_SIZE="two": want an integer >= 1`},
		{[]string{"SLURM_NTASKS", "4", "SLURM_PROCID", "0", "MASTER_PORT", "1"}, "launch: SLURM_NTASKS=4 but MASTER_ADDR is not set"},
	} {
		_, err := LaunchFromEnv(envOf(tc.env...))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v: error %v, want one line starting %q", tc.env, err, tc.want)
		}
	}
}
