#!/usr/bin/env bash
# satrain vs PyTorch 2.11 on the CPU, like for like: the same libtorch (the wheel in .venv: MKL, oneDNN), the same
# model and shapes (presets tiny, small, medium; scoring batch 64, training batch 32, float32, no autocast), the
# same thread pools (intra-op = THREADS, inter-op = 1), the same allocator settings (what libsatorch sets at load,
# given to Python through GLIBC_TUNABLES), the same warm-up, and the identical computation (satrain's
# --full-final-layer: the last layer for every position, as the PyTorch module computes it).
#
# Sides, each its own process, run in a rotated order every round (interleaved A/B/C/D, so drifts in machine
# load fall on all of them):
#   satrain           build/satrain bench
#   eager             bench/model_bench.py (python/satrain_model.py, the reference module)
#   compile           the same under torch.compile (inductor, C++ codegen on the CPU); warm-up includes compiling
# Statistics: sequences/s from the median wall time per batch over ITERS timed batches after WARMUP, and
# sequences per CPU-second from the median process CPU time (user + system, all threads) per batch, which a
# busy machine moves far less (with THREADS=1 it is the work done). The tables give the median and range over
# rounds, and ratios of medians.
#
# Usage: bench/model_cpu.sh [ROUNDS]    env: PRESETS ("tiny small medium"), THREADS (nproc), WARMUP (2),
#        SIDES ("satrain eager compile"), RAW (a file to keep the raw JSON lines in).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${THREADS:-$(nproc)}
warmup=${WARMUP:-2}
py=${PYTHON:-.venv/bin/python}
read -r -a presets <<<"${PRESETS:-tiny small medium}"
read -r -a sides <<<"${SIDES:-satrain eager compile}"
keep_tunables=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1
raw=${RAW:-$(mktemp)}
: >"$raw"
[[ -x build/satrain ]] || { echo "model_cpu: build/satrain missing: run make" >&2; exit 1; }

iters_for() { case $1 in tiny) echo 30 ;; small) echo 6 ;; *) echo 3 ;; esac; }

run_side() { # side preset round
  local side=$1 preset=$2 iters
  iters=$(iters_for "$preset")
  case $side in
    satrain)
      build/satrain bench --device cpu --preset "$preset" --use-amp=false --full-final-layer \
        --score-batches 64 --train-batch 32 --warmup "$warmup" --iters "$iters" --threads "$threads" 2>/dev/null |
        "$py" -c 'import sys, json
for l in sys.stdin:
    r = json.loads(l); print(json.dumps({"side": sys.argv[1], "preset": sys.argv[2], "round": int(sys.argv[3]),
        "mode": r["mode"], "seq_per_s": r["seq_per_s"], "cpu_seq_per_s": r["batch"] / (r["cpu_ms_per_batch"] / 1e3)}))' "$side" "$preset" "$3" ;;
    eager | compile)
      local extra=()
      [[ $side == compile ]] && extra=(--compile)
      GLIBC_TUNABLES=$keep_tunables "$py" bench/model_bench.py --preset "$preset" --device cpu --mode both \
        --iters "$iters" --warmup "$warmup" --threads "$threads" --json "${extra[@]}" 2>/dev/null |
        "$py" -c 'import sys, json
for l in sys.stdin:
    r = json.loads(l); print(json.dumps({"side": sys.argv[1], "preset": sys.argv[2], "round": int(sys.argv[3]),
        "mode": r["mode"], "seq_per_s": r["sequences_per_s"], "cpu_seq_per_s": r["batch"] / (r["cpu_ms_per_batch"] / 1e3)}))' "$side" "$preset" "$3" ;;
    *) echo "model_cpu: unknown side $side" >&2; exit 2 ;;
  esac >>"$raw"
}

n=${#sides[@]}
for r in $(seq "$rounds"); do
  for p in "${presets[@]}"; do
    for ((i = 0; i < n; i++)); do run_side "${sides[(i + r - 1) % n]}" "$p" "$r"; done
  done
  echo "model_cpu: round $r/$rounds done (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done

"$py" - "$raw" "$threads" "$rounds" <<'PY'
import json, sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    for key in ("seq_per_s", "cpu_seq_per_s"):
        rows.setdefault((key, r["preset"], r["mode"], r["side"]), []).append(r[key])
sides = ["satrain", "eager", "compile"]
for key, what in (("seq_per_s", "sequences/s (wall clock: batch / median time per batch)"),
                  ("cpu_seq_per_s", "sequences per CPU-second (batch / median process CPU time per batch)")):
    print(f"threads {sys.argv[2]} (intra-op; inter-op 1), float32, identical computation, {sys.argv[3]} rounds: "
          f"median [min-max] of {what}")
    hdr = f"{'preset':7} {'mode':6}" + "".join(f"{s:>24}" for s in sides)
    print(hdr + f" {'sat/eager':>9} {'sat/comp':>9}")
    for preset in ("tiny", "small", "medium"):
        for mode in ("score", "train"):
            med = {}
            line = f"{preset:7} {mode:6}"
            for s in sides:
                v = rows.get((key, preset, mode, s))
                if not v:
                    line += f"{'-':>24}"
                    continue
                med[s] = st.median(v)
                line += f"{f'{med[s]:.1f} [{min(v):.1f}-{max(v):.1f}]':>24}"
            if not med:
                continue
            ratio = lambda a, b: f"{med[a] / med[b]:9.2f}" if a in med and b in med else f"{'-':>9}"
            print(line + f" {ratio('satrain', 'eager')} {ratio('satrain', 'compile')}")
    print()
PY
