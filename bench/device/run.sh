#!/usr/bin/env bash
# bench/device/run.sh: issue 26's GPU measurement in one call, on the device machine (no Go, no network).
# Run from the repository root with bundle/ beside it (make bundle, carried):
#
#   bash bench/device/run.sh          the GPU run (default preset, CUDA)
#   bash bench/device/run.sh --cpu    the dry run here (make device-dry-run): tiny preset where the GPU run uses the
#                                     default one, small samples, CUDA-only steps skipped, the same bundle, loader
#                                     set-up and steps otherwise, so the GPU run does not fail on a typo
#
# Steps, in order, each under its own timeout and never stopping the script (a failed step is recorded and the
# next runs); a deadline (DEADLINE seconds, default 420: 7 minutes) shortens or skips the last ones:
#   machine        GPU, PyTorch, satrain info (the CUDA shim must load; nothing else can run otherwise)
#   tests          the CUDA test binary (bundle/torch.test, go test -c ./torch): the CUDA, NCCL and graph tests, then
#                  the benchmarks of the checkpoint copy (per-tensor vs CopyToHost) and of the gradient all-reduce
#                  on an NCCL world of one
#   ceiling        bf16 matmul ceiling (the MFU denominator)
#   satrain-*      satrain bench: scoring (batch 64) and a training step (batch 32) on the same seeded weights:
#                  plain, --fused-kernels, and --cuda-graphs once satrain bench has that flag
#   eager, compile bench/model_bench.py on the weights satrain-plain saved: PyTorch eager and torch.compile
#   agreement      bench/agreement.py: satrain's logits against PyTorch's on one batch
#   panel          satrain data synth, the panel every later step reads (seed 7; the carried FP8 checkpoint was
#                  trained on the same panel)
#   fp8-contain    satrain bench-cascade, FP8 vs bf16, over 100 sampled iterations of 10,000 sequences at k 100 and
#                  the default M: on the carried trained checkpoint (bundle/fp8/, preset medium)
#   iteration      one default selection-aware iteration with validation and both checkpoint files; phase_seconds
#                  .checkpoint in metrics.jsonl is the time training waited for the checkpoints
#   fp8-default    satrain bench-cascade on the default preset (the iteration's best model): the FP8 and bf16 pass
#                  times at a 2,000-sequence sample, k 20 (the default 1% ratio)
#   nccl-iteration the same iteration as a native NCCL world of one, once satrain can be told to use one
#                  (selection-aware --native-world-of-one under torchrun); skipped otherwise
#
# What comes back under $OUT (the device returns at most 8 files, 2 folders deep): run.log (this console),
# summary.txt (the table printed last), raw.tar.gz (every raw file: JSON lines, logs, metrics.jsonl).
# Environment: OUT (/tmp/satrain-out), DEADLINE (420), BUNDLE (bundle), PYTHON (python3 there, .venv/bin/python
# here), WORK (/tmp/satrain-run), ITERATIONS (1, the selection-aware iterations), PEAK_TFLOPS (the MFU
# denominator when the ceiling step does not run), STEPS (only these steps, and machine: for a rerun; name the
# steps whose files a named one reads too: panel for fp8-contain and iteration, satrain-plain for eager,
# agreement and compile, iteration for fp8-default).
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=cuda
[[ ${1:-} == --cpu ]] && MODE=cpu
OUT=${OUT:-/tmp/satrain-out}
WORK=${WORK:-/tmp/satrain-run}
DEADLINE=${DEADLINE:-420}
STEPS=${STEPS:-}
ITERATIONS=${ITERATIONS:-1}
B=$(realpath "${BUNDLE:-bundle}")
RAW=$WORK/raw
rm -rf "$WORK"
mkdir -p "$OUT" "$RAW" "$WORK/agree"
exec > >(tee "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1
T0=$SECONDS

if [[ $MODE == cuda ]]; then
  PY=${PYTHON:-python3}
  DEV=cuda PRESET=default AMP=(--amp) THREADS=()
  PERF_ITERS=5 SAMPLE=10000 TOPK=100 CONTAIN_ITERS=100 CONTAIN_SAMPLE=10000 CONTAIN_TOPK=100
  FP8D_ITERS=3 FP8D_SAMPLE=2000 FP8D_TOPK=20 RUN_FLAGS=()
else
  PY=${PYTHON:-.venv/bin/python}
  DEV=cpu PRESET=tiny AMP=(--amp) THREADS=(--threads 2)
  PERF_ITERS=3 SAMPLE=2000 TOPK=20 CONTAIN_ITERS=2 CONTAIN_SAMPLE=300 CONTAIN_TOPK=10
  FP8D_ITERS=2 FP8D_SAMPLE=400 FP8D_TOPK=4 RUN_FLAGS=(--preset tiny --threads 2)
fi
PY=$(command -v "$PY" || echo "$PY")

# The shim was built on the development machine against the same libtorch (2.11.0+cu130) and finds libtorch by a
# RUNPATH into that machine's .venv. Here the loader gets this machine's own torch/lib instead, the bundle (the
# shim) before it and the bundle's lib/ (Debian's HDF5 and its dependencies) after it. Only satrain and the test
# binary get this; Python keeps its own libraries.
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
LIBS="$B:$TORCH_LIB:$B/lib"
SAT=(env "LD_LIBRARY_PATH=$LIBS" "$B/satrain")
PEAK=${PEAK_TFLOPS:-0}
declare -a RESULTS=()

# step NAME LIMIT FUNCTION: runs FUNCTION (an exported shell function) under timeout LIMIT, or less when the
# deadline is nearer; records its exit status and time; never stops the script.
step() {
  local name=$1 limit=$2 fn=$3 left t rc
  if [[ -n $STEPS && $name != machine && " $STEPS " != *" $name "* ]]; then
    RESULTS+=("$name not-selected 0")
    return
  fi
  left=$((DEADLINE - (SECONDS - T0)))
  if ((left < 15)); then
    echo "=== $name: skipped, $left s left before the ${DEADLINE} s deadline"
    RESULTS+=("$name skipped(deadline) 0")
    return
  fi
  ((limit > left)) && limit=$left
  echo
  echo "=== [$(date -u +%T)] $name (limit ${limit} s)"
  t=$SECONDS
  timeout -k 10 "$limit" bash -o pipefail -c "$fn"
  rc=$?
  ((rc == 124 || rc == 137)) && echo "=== $name: timed out after $limit s"
  echo "=== $name: exit $rc, $((SECONDS - t)) s"
  RESULTS+=("$name $rc $((SECONDS - t))")
}

# finish: the summary and the archive of raw files, also when the script is cut short.
finish() {
  trap - EXIT
  {
    echo "issue 26 device run ($MODE), $(date -u +%FT%TZ), $((SECONDS - T0)) s"
    printf '%-16s %-18s %s\n' step exit seconds
    for r in "${RESULTS[@]}"; do printf '%-16s %-18s %s\n' $r; done
    echo
    "$PY" bench/device/summary.py "$RAW" 2>&1 || echo "(summary.py failed)"
  } >"$OUT/summary.txt"
  tar -czf "$OUT/raw.tar.gz" -C "$WORK" raw 2>/dev/null
  echo
  cat "$OUT/summary.txt"
}
trap finish EXIT

export MODE OUT WORK RAW B PY DEV PRESET PERF_ITERS SAMPLE TOPK CONTAIN_ITERS CONTAIN_SAMPLE CONTAIN_TOPK FP8D_ITERS \
  FP8D_SAMPLE FP8D_TOPK ITERATIONS LIBS TORCH_LIB
export AMP_FLAG="${AMP[*]}" THREADS_FLAGS="${THREADS[*]}" RUN_FLAGS_S="${RUN_FLAGS[*]}"
sat() { env "LD_LIBRARY_PATH=$LIBS" "$B/satrain" "$@"; }
export -f sat

machine() {
  set -e
  uname -a
  nproc
  if [[ $MODE == cuda ]]; then nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv; fi
  "$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  echo "torch lib: $TORCH_LIB"
  readelf -d "$B/libsatorch.so" | grep -E 'NEEDED|RUNPATH' || true
  env "LD_LIBRARY_PATH=$LIBS" ldd "$B/libsatorch.so" | grep -E 'torch|c10|not found' || true
  sat info >"$RAW/info.txt" 2>&1
  head -3 "$RAW/info.txt"
  head -1 "$RAW/info.txt" | grep -q 'built with CUDA: true'
  if [[ $MODE == cuda ]]; then head -1 "$RAW/info.txt" | grep -q 'CUDA available: true'; fi
}
export -f machine
step machine 60 machine
if [[ ${RESULTS[-1]} != "machine 0 "* ]]; then
  echo "satrain cannot run here (see above): nothing else to measure"
  exit 1
fi

tests() {
  local rc rcb
  cd torch  # the tests read testdata/ relative to their package
  export SATRAIN_PYTHON=$PY
  env "LD_LIBRARY_PATH=$LIBS" "$B/torch.test" -test.count=1 -test.v \
    -test.run 'CUDA|NCCL|WorldOfOne|CopyToHost|Graph' >"$RAW/tests.log" 2>&1
  rc=$?
  grep -E '^(--- |PASS|FAIL|ok|panic)' "$RAW/tests.log"
  env "LD_LIBRARY_PATH=$LIBS" "$B/torch.test" -test.count=1 -test.run '^$' \
    -test.bench 'CopyToHostCUDA|AllReduceGradsNCCL' -test.benchtime 3x >"$RAW/benchmarks.log" 2>&1
  rcb=$?
  cat "$RAW/benchmarks.log"
  return $((rc != 0 ? rc : rcb))
}
export -f tests
step tests 150 tests

ceiling() {
  "$PY" bench/matmul_ceiling.py --device cuda | tee "$RAW/ceiling.jsonl"
}
export -f ceiling
if [[ $MODE == cuda ]]; then
  step ceiling 60 ceiling
  if [[ -s $RAW/ceiling.jsonl ]]; then
    PEAK=$("$PY" -c 'import json,sys
r=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(round(max(x.get("tflops",0) for x in r),1))' "$RAW/ceiling.jsonl" 2>/dev/null || echo "$PEAK")
  fi
  echo "peak for MFU: $PEAK TFLOP/s"
fi
export PEAK

# satrain bench with the same seed (1), so every variant runs the same weights and inputs.
satrain_bench() {
  local extra=$1
  sat bench --preset "$PRESET" --device "$DEV" $THREADS_FLAGS --score-batches 64 --train-batch 32 \
    --iters "$PERF_ITERS" --warmup 2 --peak-tflops "$PEAK" $extra | tee -a "$RAW/satrain_bench.jsonl"
}
export -f satrain_bench
step satrain-plain 120 'satrain_bench "--save-checkpoint $WORK/agree/weights.pt --agreement-dir $WORK/agree"'
step satrain-fused 90 'satrain_bench --fused-kernels'
if sat bench --help 2>&1 | grep -q -- '--cuda-graphs'; then
  step satrain-graphs 90 'satrain_bench --cuda-graphs'
  step satrain-fused-graphs 90 'satrain_bench "--fused-kernels --cuda-graphs"'
else
  echo "=== satrain-graphs: skipped: this satrain bench has no --cuda-graphs (the Engine wiring of torch.CaptureForward)"
  RESULTS+=("satrain-graphs not-wired 0")
fi

model_bench() {
  local what=$1 extra=$2
  "$PY" bench/model_bench.py --preset "$PRESET" --device "$DEV" $AMP_FLAG --mode both --iters "$PERF_ITERS" \
    --warmup 2 --checkpoint "$WORK/agree/weights.pt" --peak-tflops "$PEAK" --json $extra | tee "$RAW/pytorch_$what.jsonl"
}
export -f model_bench
step eager 90 'model_bench eager ""'
step agreement 60 '"$PY" bench/agreement.py --dir "$WORK/agree" | tee "$RAW/agreement.jsonl"'
step compile 180 'model_bench compile --compile'

panel() {
  sat data synth --tickers 500 --days 5000 --features 16 --bins 10 --seed 7 "$WORK/panel.h5"
}
export -f panel
step panel 90 panel

# FP8 containment on trained weights: the carried checkpoint (preset medium, trained on this panel).
fp8_contain() {
  sat bench-cascade --checkpoint "$B/fp8/best_model.pt" --data "$WORK/panel.h5" --device "$DEV" $THREADS_FLAGS \
    --score-precision fp8 --reference bf16 --iterations "$CONTAIN_ITERS" --sample-size "$CONTAIN_SAMPLE" \
    --top-k "$CONTAIN_TOPK" --inference-batch-size 256 >"$RAW/fp8_contain.jsonl" 2>"$RAW/fp8_contain.txt"
  local rc=$?
  cat "$RAW/fp8_contain.txt"
  return $rc
}
export -f fp8_contain
step fp8-contain 150 fp8_contain

iteration() {
  local dir=$1
  shift
  sat selection-aware --data "$WORK/panel.h5" --device "$DEV" --num-iterations "$ITERATIONS" --val-every 1 \
    --checkpoint-every 1 --save-dir "$WORK/$dir" --metrics-addr '' --progress=false $RUN_FLAGS_S "$@" \
    2>&1 | tee "$RAW/$dir.log"
  cp "$WORK/$dir/metrics.jsonl" "$RAW/$dir.metrics.jsonl"
  ls -la "$WORK/$dir" | tee -a "$RAW/$dir.log"
}
export -f iteration
if [[ $MODE == cpu ]]; then
  step iteration 150 'iteration iteration --sample-size 2000 --top-k 20'
else
  step iteration 150 'iteration iteration'
fi

# FP8 pass speed on the default model, on the iteration's best model (trained one iteration).
fp8_default() {
  sat bench-cascade --checkpoint "$WORK/iteration/best_model_selection_aware.pt" --data "$WORK/panel.h5" \
    --device "$DEV" $THREADS_FLAGS --score-precision fp8 --reference bf16 --iterations "$FP8D_ITERS" \
    --sample-size "$FP8D_SAMPLE" --top-k "$FP8D_TOPK" --inference-batch-size 64 \
    >"$RAW/fp8_default.jsonl" 2>"$RAW/fp8_default.txt"
  local rc=$?
  cat "$RAW/fp8_default.txt"
  return $rc
}
export -f fp8_default
step fp8-default 90 fp8_default

# The NCCL world of one at the level of a run: needs the trainer wiring (selection-aware --native-world-of-one:
# under a launcher's WORLD_SIZE=1, a real group of one instead of SingleProcess); the torch-level check and
# timing ran in "tests".
if [[ $MODE == cuda ]] && sat selection-aware --help 2>&1 | grep -q -- '--native-world-of-one'; then
  step nccl-iteration 150 '"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 --no-python \
    env "LD_LIBRARY_PATH=$LIBS" "$B/satrain" selection-aware --native-world-of-one --data "$WORK/panel.h5" \
    --device cuda --num-iterations "$ITERATIONS" --val-every 1 --checkpoint-every 1 --save-dir "$WORK/nccl" \
    --metrics-addr "" --progress=false 2>&1 | tee "$RAW/nccl.log"; cp "$WORK/nccl/metrics.jsonl" "$RAW/nccl.metrics.jsonl"'
else
  echo "=== nccl-iteration: skipped (the trainer has no native world of one yet; the torch-level NCCL check ran in tests)"
  RESULTS+=("nccl-iteration not-wired 0")
fi
