package trainer

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
)

// distBenchResult is what one rank of the communication benchmark measured.
type distBenchResult struct {
	Params          int64
	AllReduceBytes  int64   // per training step, per rank (the bucketed gradient buffer + loss and stop)
	AllReduceMs     float64 // mean per step
	StepMs          float64 // mean training step (forward, backward, all-reduce, clip, AdamW) of the rank's share
	GatherBytes     int64   // per iteration, per rank: the header and this rank's padded share of expected returns
	GatherMs        float64 // mean all-gather of the scores of one iteration
	ScoreMs         float64 // scoring this rank's share of the sample
	BatchPerRank    int
	SamplePerRank   int
	SeqLen, Horizon int
}

// distBenchRank measures, on one rank of a world joined from the launch
// variables, the gradient all-reduce of one training step and the score
// all-gather of one iteration for a preset (synthetic inputs: 8 features,
// 4 horizons, 10 bins; global batch 32, sample 2,000 as in the demo).
func distBenchRank() int {
	defer torch.LockThread()()
	_ = torch.SetNumThreads(1)
	g, err := joinTestGroup()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer g.Close()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 3 }
	p := model.Presets[os.Getenv("SATRAIN_DIST_BENCH_PRESET")]
	const F, H, B, batch, sample, steps = 8, 4, 10, 32, 2000, 10
	mc := model.Config{HiddenDim: p.HiddenDim, NumLayers: p.NumLayers, NumHeads: p.NumHeads, Dropout: 0.1, SeqLen: p.SeqLen,
		NumFeatures: F, NumHorizons: H, NumBins: B}
	m, err := model.New(mc, torch.CPU, 1)
	if err != nil {
		return fail(err)
	}
	defer m.Free()
	centers := make([][]float32, H)
	for h := range centers {
		centers[h] = make([]float32, B)
		for b := range centers[h] {
			centers[h][b] = float32(b-B/2) * 0.01
		}
	}
	e, err := model.NewEngine(m, model.StepConfig{LR: 1e-4, MaxGradNorm: 1}, centers, 256)
	if err != nil {
		return fail(err)
	}
	defer e.Free()
	e.Group = g
	rng := rand.New(rand.NewSource(int64(g.Rank())))
	lo, hi := torch.Share(batch, g.Rank(), g.WorldSize())
	n := hi - lo
	feats := make([]float32, n*p.SeqLen*F)
	for i := range feats {
		feats[i] = float32(rng.NormFloat64())
	}
	labels := make([]int64, n*H)
	for i := range labels {
		labels[i] = int64(rng.Intn(B))
	}
	res := distBenchResult{Params: m.NumParams(), BatchPerRank: n, SeqLen: p.SeqLen, Horizon: H}
	for i := 0; i < 2; i++ { // warm-up
		if _, err := e.TrainShard(feats, labels, nil, n, p.SeqLen, batch); err != nil {
			return fail(err)
		}
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if _, err := e.TrainShard(feats, labels, nil, n, p.SeqLen, batch); err != nil {
			return fail(err)
		}
	}
	res.StepMs = float64(time.Since(t0).Microseconds()) / 1e3 / steps
	extra := make([]float32, 2)
	if err := g.Barrier(); err != nil { // time the collective, not the other rank's lag
		return fail(err)
	}
	t0 = time.Now()
	for i := 0; i < steps; i++ {
		if err := g.AllReduceGrads(m.Parameters(), 0.5, extra); err != nil {
			return fail(err)
		}
	}
	res.AllReduceMs = float64(time.Since(t0).Microseconds()) / 1e3 / steps
	res.AllReduceBytes = (res.Params + 2) * 4
	if err := e.Opt.ZeroGrad(); err != nil {
		return fail(err)
	}

	slo, shi := torch.Share(sample, g.Rank(), g.WorldSize())
	ns := shi - slo
	res.SamplePerRank = ns
	sf := make([]float32, ns*p.SeqLen*F)
	for i := range sf {
		sf[i] = float32(rng.NormFloat64())
	}
	t0 = time.Now()
	inf, err := e.Infer(sf, nil, ns, p.SeqLen, false)
	if err != nil {
		return fail(err)
	}
	res.ScoreMs = float64(time.Since(t0).Microseconds()) / 1e3
	s := &session{dist: distState{pg: g}}
	if err := g.Barrier(); err != nil {
		return fail(err)
	}
	t0 = time.Now()
	for i := 0; i < steps; i++ {
		if _, _, err := s.dist.pg.AllGatherParts(0, inf.Expected, nil, nil); err != nil {
			return fail(err)
		}
	}
	res.GatherMs = float64(time.Since(t0).Microseconds()) / 1e3 / steps
	res.GatherBytes = 4*8 + int64(len(inf.Expected))*4 // header (3 lengths + stop) + the share
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 3
	}
	return 0
}

// BenchmarkDataParallelComm runs two ranks over Gloo on loopback per preset
// and reports the bytes and milliseconds of the gradient all-reduce per
// training step and of the score all-gather per iteration, with their share
// of the step and of the scoring pass. bench/DISTRIBUTED.md has the figures.
//
//	go test -run '^$' -bench DataParallelComm -benchtime 1x ./trainer/
func BenchmarkDataParallelComm(b *testing.B) {
	if !torch.HasBackend(torch.Gloo) {
		b.Skip("libsatorch built without Gloo")
	}
	for _, preset := range []string{"tiny", "small"} {
		b.Run(preset, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				port := strconv.Itoa(distFreePort(b))
				cmds := make([]*exec.Cmd, 2)
				outs := make([]*strings.Builder, 2)
				for r := range cmds {
					c := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
					c.Env = append(os.Environ(), "SATRAIN_TRAINER_DIST=bench", "SATRAIN_DIST_BENCH_PRESET="+preset,
						"RANK="+strconv.Itoa(r), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port,
						"TORCHELASTIC_USE_AGENT_STORE=")
					outs[r] = &strings.Builder{}
					c.Stdout, c.Stderr = outs[r], os.Stderr
					if err := c.Start(); err != nil {
						b.Fatal(err)
					}
					cmds[r] = c
				}
				for _, c := range cmds {
					if err := c.Wait(); err != nil {
						b.Fatal(err)
					}
				}
				var r distBenchResult
				if err := json.Unmarshal([]byte(outs[0].String()), &r); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(r.Params), "params")
				b.ReportMetric(float64(r.AllReduceBytes), "allreduce_B/step")
				b.ReportMetric(r.AllReduceMs, "allreduce_ms/step")
				b.ReportMetric(r.StepMs, "step_ms")
				b.ReportMetric(100*r.AllReduceMs/r.StepMs, "allreduce_%step")
				b.ReportMetric(float64(r.GatherBytes), "gather_B/iter")
				b.ReportMetric(r.GatherMs, "gather_ms/iter")
				b.ReportMetric(r.ScoreMs, "score_ms/iter")
				b.ReportMetric(100*r.GatherMs/r.ScoreMs, "gather_%score")
			}
		})
	}
}
