#!/usr/bin/env bash
# Usage: scripts/same_run.sh BASE [OTHER]
#
# Proves that a refactor changed no behaviour: builds satrain at git revision
# BASE and at OTHER (default: the working tree) with the same shim, runs the
# same fixed-seed jobs with each on this machine, in the same folder, and
# compares what they wrote:
#   - every checkpoint, byte for byte (weights, optimizer state, meta, hash);
#   - metrics.jsonl and the --log-selected file, line for line, with the
#     wall-clock fields (time, *_seconds) removed;
#   - the console, with timings and rates masked;
#   - eval's report.json and predict's CSV.
# Exit status 0 only when all are identical. Both binaries run on the same
# machine and kernels, so identical means identical: no tolerance applies.
set -euo pipefail
base=${1:?usage: scripts/same_run.sh BASE [OTHER]}
other=${2:-}
root=$(git rev-parse --show-toplevel)
cd "$root"
if ! git diff --quiet "$base" ${other:+"$other"} -- torch/csrc; then
  echo "same_run: torch/csrc differs between the revisions; this script compares Go-side changes over one shim" >&2
  exit 2
fi
[[ -f build/libsatorch.so ]] || { echo "same_run: no build/libsatorch.so: run make shim" >&2; exit 2; }
py=python3
work=$(mktemp -d)
[[ -n "${KEEP:-}" ]] && echo "same_run: keeping $work" >&2
trap 'git worktree remove --force "$work/src-base" >/dev/null 2>&1 || true; [[ -n "$other" ]] && git worktree remove --force "$work/src-other" >/dev/null 2>&1; [[ -z "${KEEP:-}" ]] && rm -rf "$work"' EXIT

build() { # rev dir -> binary in dir/build
  local rev=$1 dir=$2
  if [[ -z "$rev" ]]; then
    go build -o "$work/$3" ./bin/satrain
  else
    git worktree add --detach -q "$dir" "$rev"
    mkdir -p "$dir/build" && cp build/libsatorch.so "$dir/build/"
    (cd "$dir" && go build -o "$work/$3" ./bin/satrain)
  fi
}
build "$base" "$work/src-base" satrain-base
build "$other" "$work/src-other" satrain-other

# The jobs: every loop, the extensions, resume, two-stage, eval and predict.
jobs() { # binary, run in $work/run
  local b=$1 common=(--device cpu --threads 1 --metrics-addr "" --progress=false --use-wandb=false --seq-len 16
    --hidden-dim 16 --num-layers 1 --num-heads 2 --val-size 48 --batch-size 8 --inference-batch-size 32 --seed 7)
  cp "$work/synth.h5" synth.h5 # one input for both sides (HDF5 files carry creation times)
  "$b" selection-aware --data synth.h5 "${common[@]}" --save-dir sa --sample-size 96 --top-k 12 --num-iterations 4 \
    --train-epochs-per-iteration 2 --val-every 2 --checkpoint-every 2 --log-selected sa/selected.jsonl
  "$b" selection-aware --data synth.h5 "${common[@]}" --save-dir sa --resume-from auto --num-iterations 6
  "$b" selection-aware --data synth.h5 "${common[@]}" --save-dir ext --sample-size 96 --top-k 12 --num-iterations 3 \
    --train-epochs-per-iteration 1 --val-every 3 --checkpoint-every 3 --negative-k 4 --mix-random 0.25 \
    --confidence-weight --consistency-bonus 0.5 --stratify ticker --top-k-schedule linear:8:16
  "$b" selection-aware --data synth.h5 "${common[@]}" --save-dir pd --sample-size 96 --top-k 12 --num-iterations 2 \
    --train-epochs-per-iteration 1 --val-every 1 --checkpoint-every 2 --select-scope per-date --select-by loss
  "$b" train --data synth.h5 "${common[@]}" --save-dir std --epochs 2
  "$b" selection-aware --data synth.h5 "${common[@]}" --save-dir two --resume-from std/best_model.pt --sample-size 96 \
    --top-k 12 --num-iterations 2 --train-epochs-per-iteration 1 --val-every 2 --checkpoint-every 2
  "$b" eval --data synth.h5 --checkpoint two/best_model_selection_aware.pt --device cpu --threads 1 --progress=false \
    --out two/eval --top-k 5
  "$b" predict --data synth.h5 --checkpoint sa/best_model_selection_aware.pt --device cpu --threads 1 --progress=false \
    --out sa/pred.csv --probs
}

run_side() { # name
  rm -rf "$work/run" && mkdir "$work/run"
  (cd "$work/run" && jobs "$work/satrain-$1") >"$work/console-$1.txt" 2>&1 || { echo "same_run: $1's jobs failed:" >&2; tail -20 "$work/console-$1.txt" >&2; exit 1; }
  mv "$work/run" "$work/out-$1"
}
"$work/satrain-base" data synth --tickers 20 --days 400 --features 4 --seed 11 "$work/synth.h5" >/dev/null
run_side base
run_side other

status=0
( cd "$work/out-base" && find . -type f | sort ) >"$work/files-base"
( cd "$work/out-other" && find . -type f | sort ) >"$work/files-other"
if ! diff -u "$work/files-base" "$work/files-other"; then echo "same_run: the runs wrote different files" >&2; status=1; fi
n=0
while read -r f; do
  a="$work/out-base/$f" b="$work/out-other/$f"
  [[ -f "$b" ]] || continue
  case "$f" in
    ./synth.h5|*.png|*/tensorboard/*) continue ;; # plots embed nothing of the run's numbers that the JSON lacks
    *.jsonl|*.json)
      if ! diff -q <("$py" "$root/scripts/strip_timings.py" <"$a") <("$py" "$root/scripts/strip_timings.py" <"$b") >/dev/null; then
        echo "same_run: $f differs (timings aside)" >&2; status=1; fi ;;
    *)
      if ! cmp -s "$a" "$b"; then echo "same_run: $f differs byte for byte" >&2; status=1; fi ;;
  esac
  n=$((n + 1))
done <"$work/files-base"
mask='s/[0-9]+(\.[0-9]+)?(ms|µs|s|m|h)\b/T/g; s/[0-9.]+ ?(seq|it|MB|GB|KiB|MiB|GiB)\/s/R/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z?/TIME/g; s/ETA [^ ]+/ETA/g'
if ! diff <(sed -E "$mask" "$work/console-base.txt" | grep -v "$work") <(sed -E "$mask" "$work/console-other.txt" | grep -v "$work") >"$work/console.diff"; then
  echo "same_run: the consoles differ (timings masked):" >&2; head -40 "$work/console.diff" >&2; status=1
fi
echo "same_run: $n files compared between $(git rev-parse --short "$base") and ${other:-the working tree}: $([[ $status == 0 ]] && echo identical || echo DIFFERENT)"
exit $status
