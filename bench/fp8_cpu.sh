#!/usr/bin/env bash
# The FP8 scoring cascade on the CPU, on the real S&P 500 panel with trained
# weights (issue 22, item 6): over ITERATIONS sampled iterations of the
# training split, how often the reference top-k lies inside the FP8 top-M,
# whether the selected sets are equal, and the time of the FP8 pass against
# the reference pass (fp32, and bf16 autocast), the two full passes
# alternating which goes first. Raw JSON lines and the summaries go to OUT.
#
# The panel and the checkpoint are made once if missing: data import-csv of
# DATA_DIR, then a brief standard run (preset PRESET, 1 epoch of 5000
# sequences). FP8 here is libtorch 2.11's at::_scaled_mm CPU kernel: it is
# a correctness path on the CPU, not a speed-up (see bench/README.md).
#
# Usage: bench/fp8_cpu.sh   env: DATA_DIR (../shared/data/sp500-daily),
# WORK (/tmp/fp8-cpu: panel and checkpoint), OUT (bench/results/fp8-cpu),
# PRESET (tiny), ITERATIONS (100), SAMPLE (10000), TOPK (100), THREADS (1),
# REFERENCES ("fp32 bf16"), SATRAIN (build/satrain).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${DATA_DIR:-../shared/data/sp500-daily}
work=${WORK:-/tmp/fp8-cpu}
out=${OUT:-bench/results/fp8-cpu}
preset=${PRESET:-tiny}
iterations=${ITERATIONS:-100}
sample=${SAMPLE:-10000}
topk=${TOPK:-100}
threads=${THREADS:-1}
satrain=${SATRAIN:-build/satrain}
read -r -a refs <<<"${REFERENCES:-fp32 bf16}"
mkdir -p "$work" "$out"
panel=$work/sp500.h5
ckpt=$work/ckpt/best_model.pt
if [[ ! -f $panel ]]; then
  "$satrain" data import-csv "$data_dir" --out "$panel"
fi
if [[ ! -f $ckpt ]]; then
  "$satrain" train --data "$panel" --preset "$preset" --device cpu --epochs 1 --max-seqs-per-epoch 5000 \
    --save-dir "$work/ckpt" --metrics-addr '' --threads "$threads"
fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  "$satrain" --version 2>/dev/null || true
} >"$out/machine.txt"
for ref in "${refs[@]}"; do
  cmd=("$satrain" bench-cascade --checkpoint "$ckpt" --data "$panel" --device cpu --threads "$threads"
    --score-precision fp8 --reference "$ref" --iterations "$iterations" --sample-size "$sample" --top-k "$topk")
  echo "${cmd[*]}" >"$out/fp8-vs-$ref.cmd"
  "${cmd[@]}" >"$out/fp8-vs-$ref.jsonl" 2>"$out/fp8-vs-$ref.txt"
  cat "$out/fp8-vs-$ref.txt"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
