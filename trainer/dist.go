package trainer

// Data-parallel training over a torch.ProcessGroup (c10d), as DDP does it:
// weights broadcast from rank 0 at start, the same collectives in the same
// order on every rank, results that do not depend on the world size beyond
// float reduction order. In a world of one every hook here is a no-op.
//
//   - Scoring (selection-aware sample, validation): every rank holds the same
//     ids (same seed); each scores its contiguous share (torch.Share) and an
//     all-gather gives every rank every score, so all select the same top-k.
//   - Training: --batch-size is the global batch. Each batch of the (same)
//     shuffled order is split into contiguous shares; each rank's mean loss
//     gradient is scaled by its share n_r/N and summed (AllReduceGrads), which
//     is the gradient of the one-process batch mean, also for an uneven last
//     batch. The loss and a stop request ride with the gradients, so the
//     non-finite skip and a signal's stop are decided jointly.
//   - Checkpoints: rank 0 writes; the others skip the write and meet it at a
//     barrier where a run waits for its files. Only rank 0 has reporters.
//
// Dropout: each rank draws the masks of its share from the same seeded
// generator state, so with dropout > 0 the masks (not their distribution)
// depend on the world size.

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/satrain/satrain/loader"
	"github.com/satrain/satrain/model"
	"github.com/satrain/satrain/torch"
)

// distState is a session's view of its process group.
type distState struct {
	pg *torch.ProcessGroup
	// local is the caller's context: a signal cancels it on this rank only.
	local context.Context
	// cancel cancels the run's joint context on every rank at once, when the
	// ranks learn at a collective that one of them was asked to stop.
	cancel context.CancelFunc
}

func (s *session) world() int { return s.dist.pg.WorldSize() }

// native reports whether the run's collectives run through its process
// group: a world of more than one, or a launcher's world of one joined as a
// real group (--native-world-of-one, to measure their cost on one GPU).
func (s *session) native() bool { return s.dist.pg.Native() }

func (s *session) rank0() bool { return s.dist.pg.Rank() == 0 }

// initDist sets up the session's process group (a world of one when cfg has
// none) and, in a larger world, checks that every rank runs the same
// configuration.
func (s *session) initDist() error {
	s.dist.pg = s.cfg.Group
	if s.dist.pg == nil {
		s.dist.pg = torch.SingleProcess()
	}
	if !s.native() {
		return nil
	}
	return s.checkSameConfig()
}

// ConfigHash is a 63-bit FNV-1a hash of what must be equal on every rank of
// a run: the run kind, data path, seed, resume file and the flags set.
func ConfigHash(kind string, cfg RunConfig) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00%d\x00", kind, cfg.Data, cfg.Seed, cfg.ResumeFrom, cfg.BatchSize)
	keys := make([]string, 0, len(cfg.Run))
	for k := range cfg.Run {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if rankLocalFlags[k] {
			continue
		}
		fmt.Fprintf(h, "%s=%s\x00", k, cfg.Run[k])
	}
	return int64(h.Sum64() >> 1)
}

// rankLocalFlags may differ between ranks (each rank serves its own port, or
// none, and picks its own device).
var rankLocalFlags = map[string]bool{"metrics-addr": true, "progress": true, "device": true, "threads": true}

// configEntries is what ConfigHash covers, as sorted "--flag value" lines
// (the run kind as "kind ..."); a flag not given reads "--flag (not given)"
// only on the ranks that gave it, see configDiff.
func configEntries(kind string, cfg RunConfig) map[string]string {
	m := map[string]string{}
	for k, v := range cfg.Run {
		if !rankLocalFlags[k] {
			m["--"+k] = v
		}
	}
	m["kind"] = kind
	m["--data"], m["--seed"], m["--batch-size"] = cfg.Data, strconv.FormatInt(cfg.Seed, 10), strconv.Itoa(cfg.BatchSize)
	m["--resume-from"] = cfg.ResumeFrom
	return m
}

// encodeEntries turns entries into sorted "key\x00value\n" lines, one float32
// a byte (exact), for AllGatherFloat32.
func encodeEntries(m map[string]string) []float32 {
	keys := slices.Sorted(maps.Keys(m))
	var out []float32
	for _, k := range keys {
		for _, b := range []byte(k + "\x00" + m[k] + "\n") {
			out = append(out, float32(b))
		}
	}
	return out
}

func decodeEntries(v []float32) map[string]string {
	b := make([]byte, len(v))
	for i, f := range v {
		b[i] = byte(f)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if k, val, ok := strings.Cut(line, "\x00"); ok {
			m[k] = val
		}
	}
	return m
}

// configDiff names the entries in which rank r's configuration differs from
// rank 0's: "--top-k 5 on rank 1, 100 on rank 0; --lr (not given) on rank 1,
// 0.002 on rank 0".
func configDiff(r int, mine, root map[string]string) string {
	keys := map[string]bool{}
	for k := range mine {
		keys[k] = true
	}
	for k := range root {
		keys[k] = true
	}
	show := func(m map[string]string, k string) string {
		v, ok := m[k]
		switch {
		case !ok:
			return "(not given)"
		case v == "":
			return `""`
		}
		return v
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		a, b := show(mine, k), show(root, k)
		if a != b {
			parts = append(parts, fmt.Sprintf("%s %s on rank %d, %s on rank 0", k, a, r, b))
		}
	}
	return strings.Join(parts, "; ")
}

func (s *session) checkSameConfig() error {
	mine := ConfigHash(s.kind, s.cfg)
	all, err := s.dist.pg.AllGatherInt64([]int64{mine})
	if err != nil {
		return err
	}
	bad := -1
	for r, h := range all {
		if h[0] != all[0][0] {
			bad = r
			break
		}
	}
	if bad < 0 {
		return nil
	}
	// Every rank saw the same hashes, so every rank is here: gather the
	// configurations themselves to name what differs.
	cfgs, err := s.dist.pg.AllGatherFloat32(encodeEntries(configEntries(s.kind, s.cfg)))
	if err != nil {
		return err
	}
	diff := configDiff(bad, decodeEntries(cfgs[bad]), decodeEntries(cfgs[0]))
	return fmt.Errorf("rank %d was started with a different configuration than rank 0 (config hash %016x vs %016x: %s): start every rank with the same flags and data",
		bad, all[bad][0], all[0][0], diff)
}

// broadcastWeights makes every rank start from rank 0's weights.
func (s *session) broadcastWeights() error {
	if !s.native() {
		return nil
	}
	for _, p := range s.eng.Model.Parameters() {
		if err := s.dist.pg.Broadcast(p, 0); err != nil {
			return err
		}
	}
	s.eng.Group = s.dist.pg
	return nil
}

// jointContext returns the context the run's loops watch. In a world of one
// it is ctx. In a larger world it is cancelled only when the ranks agree, at
// a collective, that one of them was asked to stop, so every rank stops at
// the same step boundary.
func (s *session) jointContext(ctx context.Context) context.Context {
	if !s.native() {
		return ctx
	}
	j, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.dist.local, s.dist.cancel = ctx, cancel
	s.eng.StopRequested = func() bool { return ctx.Err() != nil }
	s.eng.OnStop = cancel
	return j
}

func (s *session) localStop() float32 {
	if s.dist.local != nil && s.dist.local.Err() != nil {
		return 1
	}
	return 0
}

// share is this rank's contiguous part [lo, hi) of a global batch of n.
func (s *session) share(n int) (lo, hi int) {
	return torch.Share(n, s.dist.pg.Rank(), s.world())
}

// localRows maps each of n items to its row among the items this rank
// trains on in any of the epochs' orders (batches of bs split by share), -1
// for the others. In a world of one every item is its own row.
func (s *session) localRows(orders [][]int, n, bs int) []int {
	row := make([]int, n)
	if !s.native() {
		for i := range row {
			row[i] = i
		}
		return row
	}
	used := make([]bool, n)
	for _, order := range orders {
		for start := 0; start < n; start += bs {
			lo, hi := s.share(min(start+bs, n) - start)
			for _, i := range order[start+lo : start+hi] {
				used[i] = true
			}
		}
	}
	next := 0
	for i := range row {
		row[i] = -1
		if used[i] {
			row[i] = next
			next++
		}
	}
	return row
}

// score scores ids: in a world of one all of them; otherwise this rank's
// contiguous share, then an all-gather gives every rank the results of all
// ids in order (expected returns, and the losses and logits when computed),
// and the ranks' stop requests.
func (s *session) score(ctx context.Context, ids []loader.SeqID, labels bool, phase string) (model.InferResult, time.Duration, time.Duration, error) {
	if !s.native() {
		res, ioWait, compute, _, _, err := s.scoreLocal(ctx, ids, labels, phase)
		return res, ioWait, compute, err
	}
	var res model.InferResult
	var ioWait, compute time.Duration
	parts, stop, err := s.dist.pg.ShareAndGather(len(ids), func(lo, hi int) ([][]float32, float32, error) {
		var err error
		res, ioWait, compute, _, _, err = s.scoreLocal(ctx, ids[lo:hi], labels, phase)
		return [][]float32{res.Expected, res.Loss, res.Logits}, s.localStop(), err
	})
	if err != nil {
		return res, ioWait, compute, err
	}
	out := model.InferResult{Expected: parts[0], Loss: parts[1], Logits: parts[2]}
	if len(out.Loss) == 0 {
		out.Loss = nil
	}
	if len(out.Logits) == 0 {
		out.Logits = nil
	}
	if stop {
		s.dist.cancel()
		return out, ioWait, compute, ctx.Err()
	}
	return out, ioWait, compute, nil
}

// barrier waits for every rank (rank 0's checkpoint on disk, the end of a run).
func (s *session) barrier() error { return s.dist.pg.Barrier() }
