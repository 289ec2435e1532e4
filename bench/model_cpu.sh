#!/usr/bin/env bash
# satrain vs PyTorch on the CPU, same libtorch (Debian's 1.13), same shapes
# (preset small: d=128, 4 layers, seq_len 128, batch 64 scoring / 32 training),
# float32, 2 threads. Runs both ROUNDS times, alternating, and prints medians
# and the ratio satrain / PyTorch, for satrain as it runs (last-query shortcut
# in the final layer) and computing the full final layer like the PyTorch
# module. Usage: bench/model_cpu.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
  go test -run '^$' -bench 'BenchmarkForwardSmall|BenchmarkTrainStepSmall' -benchtime 10x -count 1 ./trainer/ \
    | awk '/^Benchmark/ {for (i=1;i<=NF;i++) if ($(i+1)=="seq/s") print $1, $i}' >>"$tmp/go.txt"
  "$py" bench/model_bench.py --preset small --device cpu --mode both --iters 10 --warmup 2 --threads 2 --json 2>/dev/null \
    | "$py" -c 'import sys,json
for l in sys.stdin:
    r=json.loads(l); print(r["mode"], r["sequences_per_s"])' >>"$tmp/py.txt"
done
"$py" - "$tmp" <<'PY'
import sys, statistics as st
d = sys.argv[1]
go = {"score": [], "train": [], "score-full": [], "train-full": []}
for line in open(d + "/go.txt"):
    name, v = line.split()
    key = "score" if "Forward" in name else "train"
    if "Full" in name:
        key += "-full"
    go[key].append(float(v))
py = {"score": [], "train": []}
for line in open(d + "/py.txt"):
    mode, v = line.split()
    py[mode].append(float(v))
print(f"{'mode':6} {'satrain seq/s':>14} {'PyTorch seq/s':>14} {'ratio':>6}  (medians of {len(go['score'])} rounds)")
for m in ("score", "train"):
    for key, label in ((m, m), (m + "-full", m + " (full final layer, as PyTorch)")):
        g, p = st.median(go[key]), st.median(py[m])
        print(f"{label:6} {g:14.1f} {p:14.1f} {g/p:6.2f}")
PY
rm -rf "$tmp"
