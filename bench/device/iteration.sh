#!/usr/bin/env bash
# Short device call: build the CUDA shim, then two default iterations of
# satrain selection-aware with validation and both checkpoints every iteration
# (checkpoint phase = time training waits; files are finished in the background).
set -uo pipefail
OUT=${OUT:-/tmp/satrain-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/iteration.log") 2>&1
B=$(realpath bundle)
SAT=(env "LD_LIBRARY_PATH=$B:$B/lib" "$B/satrain")
echo "=== [$(date +%T)] build"
timeout 200 bash "$B/src/bench/device/build_shim.sh" "$B" || exit 1
"${SAT[@]}" info | head -1
echo "=== [$(date +%T)] synth"
timeout 60 "${SAT[@]}" data synth --tickers 500 --days 5000 --features 16 --bins 10 --seed 7 /tmp/panel.h5
echo "=== [$(date +%T)] two default iterations"
timeout 240 "${SAT[@]}" selection-aware --data /tmp/panel.h5 --device cuda --num-iterations 2 --val-every 1 --checkpoint-every 1 \
  --save-dir /tmp/ckpt --metrics-addr "" --progress=false
cp /tmp/ckpt/metrics.jsonl "$OUT/iterations.jsonl"
ls -la /tmp/ckpt
echo "=== [$(date +%T)] done"
