#!/usr/bin/env bash
# satrain vs PyTorch on the CPU, like for like: the same libtorch (Debian's
# 1.13, OpenBLAS), the same shapes (preset small: d=128, 4 layers, seq_len 128,
# batch 64 scoring / 32 training, float32), the same three thread pools
# (libtorch intra-op and OpenBLAS = THREADS, inter-op = 1), the same allocator
# settings on both sides, one warm-up iteration, then ITERS timed iterations,
# statistic: sequences / total time. Each round runs both allocator settings
# and both sides, alternating the order (A/B/B/A), and the script prints the
# median and the range over rounds.
#
# Allocator settings: "keep" = what libsatorch sets at load (glibc keeps freed
# memory: mmap threshold 32 MiB, trim threshold 1 GiB, one arena), given to Python through
# GLIBC_TUNABLES; "system" = glibc's defaults (SATRAIN_MALLOC=system for
# satrain, no tunables for Python).
#
# Computation: PyTorch's module computes the final layer for every position;
# satrain by default only for the last one (the only output used). The
# "full" rows turn satrain's shortcut off: that is the identical computation.
#
# satrain's CPU scoring kernels (torch/csrc/cpu_kernels.cpp: oneDNN's sgemm,
# the shim's attention products and layer norm) are a different library for
# the same arithmetic; each satrain run is made with them ("kernels") and
# without ("libtorch": SATRAIN_CPU_GEMM=libtorch, the ops PyTorch runs).
# In training the linear layers (oneDNN forward and backward) and the
# attention products (the shim's loops, forward and backward) differ.
#
# Usage: bench/model_cpu.sh [ROUNDS]   env: THREADS (default: nproc), ITERS (5),
# PYTHON (/usr/bin/python3), ALLOCS ("keep system"), KERNELS ("onednn libtorch").
# OPENBLAS_CORETYPE, if set, reaches both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${THREADS:-$(nproc)}
iters=${ITERS:-5}
py=${PYTHON:-/usr/bin/python3}
read -r -a allocs <<<"${ALLOCS:-keep system}"
read -r -a kernels <<<"${KERNELS:-onednn libtorch}"
keep_tunables=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/trainer.test" ./trainer/

run_go() { # alloc kernels
  local m=keep side=satrain
  [[ $1 == system ]] && m=system
  [[ $2 == libtorch ]] && side=satrain-libtorch
  SATRAIN_CPU_GEMM=$2 SATRAIN_MALLOC=$m SATRAIN_THREADS=$threads "$tmp/trainer.test" -test.run '^$' \
    -test.bench '^Benchmark(ForwardSmall|ForwardSmallFull|TrainStepSmall|TrainStepSmallFull)$' \
    -test.benchtime "${iters}x" -test.count 1 |
    awk -v a="$1" -v side="$side" '/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); f=c=s="";
      for (i = 2; i < NF; i++) { if ($(i+1)=="faults/op") f=$i; if ($(i+1)=="cpu-ms/op") c=$i; if ($(i+1)=="seq/s") s=$i }
      print side, a, name, s, f, c }' >>"$tmp/results.txt"
}

run_py() { # alloc
  local env=()
  [[ $1 == keep ]] && env=(GLIBC_TUNABLES=$keep_tunables)
  env "${env[@]}" "$py" bench/model_bench.py --preset small --device cpu --mode both --iters "$iters" --warmup 1 \
    --threads "$threads" --json 2>/dev/null |
    "$py" -c 'import sys, json
for l in sys.stdin:
    r = json.loads(l)
    print("pytorch", sys.argv[1], r["mode"], r["sequences_per_s_mean"], r["minor_faults"] / r["iters"],
          1e3 * r["cpu_s"] / r["iters"])' "$1" >>"$tmp/results.txt"
}

run_gos() { # alloc
  for k in "${kernels[@]}"; do run_go "$1" "$k"; done
}

for r in $(seq "$rounds"); do
  order=("${allocs[@]}")
  if ! ((r % 2)); then order=(); for ((i = ${#allocs[@]} - 1; i >= 0; i--)); do order+=("${allocs[i]}"); done; fi
  for a in "${order[@]}"; do
    if ((r % 2)); then run_gos "$a"; run_py "$a"; else run_py "$a"; run_gos "$a"; fi
  done
  echo "round $r/$rounds done" >&2
done

"$py" - "$tmp/results.txt" "$threads" "$iters" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    side, alloc, name, sps, faults, cpu = line.split()
    mode = {"BenchmarkForwardSmall": "score", "BenchmarkForwardSmallFull": "score-full",
            "BenchmarkTrainStepSmall": "train", "BenchmarkTrainStepSmallFull": "train-full"}.get(name, name)
    rows.setdefault((side, alloc, mode), []).append((float(sps), float(faults), float(cpu)))
def stat(side, alloc, mode, i):
    v = [x[i] for x in rows.get((side, alloc, mode), [])]
    return (st.median(v), min(v), max(v)) if v else (float("nan"),) * 3
n = max(len(v) for v in rows.values())
print(f"threads {sys.argv[2]} (intra-op, OpenBLAS; inter-op 1), {sys.argv[3]} timed iterations after 1 warm-up, "
      f"{n} rounds: median [min-max] of seq/s; faults and CPU ms per batch: medians")
print(f"{'allocator':9} {'satrain mode':33} {'satrain seq/s':>22} {'PyTorch seq/s':>22} {'ratio':>6} "
      f"{'faults S/P':>13} {'cpu-ms S/P':>13}")
for alloc in ("keep", "system"):
    for side, kl in (("satrain", "kernels"), ("satrain-libtorch", "libtorch")):
        for mode, pmode, label in (("score-full", "score", "score, full (identical)"),
                                   ("score", "score", "score, last-query"),
                                   ("train-full", "train", "train, full (identical)"),
                                   ("train", "train", "train, last-query")):
            if (side, alloc, mode) not in rows or ("pytorch", alloc, pmode) not in rows:
                continue
            g, p = stat(side, alloc, mode, 0), stat("pytorch", alloc, pmode, 0)
            gf, pf = stat(side, alloc, mode, 1)[0], stat("pytorch", alloc, pmode, 1)[0]
            gc, pc = stat(side, alloc, mode, 2)[0], stat("pytorch", alloc, pmode, 2)[0]
            fmt = lambda m: f"{m[0]:7.1f} [{m[1]:6.1f}-{m[2]:6.1f}]"
            print(f"{alloc:9} {label + ' ' + kl:33} {fmt(g):>22} {fmt(p):>22} {g[0]/p[0]:6.2f} "
                  f"{gf:6.0f}/{pf:<6.0f} {gc:6.0f}/{pc:<6.0f}")
PY
