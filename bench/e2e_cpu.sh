#!/usr/bin/env bash
# End-to-end CPU figures users feel, two satrain builds side by side on one
# data file: `satrain eval` (scoring the test split) and one `selection-aware`
# iteration (sample, score, select, train, validate), tiny and small presets.
# Each round runs every workload with both builds, alternating which goes
# first (A/B then B/A), and the script prints the median and the range over
# rounds, with the new/old ratio of the medians.
#
# Usage: bench/e2e_cpu.sh OLD_DIR NEW_DIR DATA.h5 [ROUNDS]
#   OLD_DIR, NEW_DIR: folders holding satrain and libsatorch.so (e.g. a build
#   of main's commit copied aside, and build/).
#   env: ARGS   extra flags for every command, e.g. "--threads 1" (default: none);
#        ARGS_OLD, ARGS_NEW  the same for one build only (default: ARGS)
#        ENV_OLD, ENV_NEW    environment for one build's commands, e.g.
#                            ENV_OLD="..." with OLD_DIR = NEW_DIR compares one build under two environments
#        PRESETS "tiny small" (default), CKPT_DIR (reuse checkpoints made before)
#   The checkpoints are made with NEW_DIR's build. A build older than the
#   safe-loader format (issue 13 item 8) cannot read those: make them with the
#   old build instead (its selection-aware run below, --save-dir CKPT_DIR/tiny)
#   and pass CKPT_DIR; the new build reads old checkpoints.
# Workloads (the sizes keep each command under ~2 minutes on a loaded 2-core VM):
#   eval-tiny   eval --max-dates 200 (about 99k windows on the S&P 500 panel), batch 256
#               (eval prints its time to 0.1 s: 200 dates keep that under 3% of it)
#   eval-small  eval --max-dates 2 (about 1,000 windows), batch 256
#   sa-tiny     selection-aware, 1 iteration, --sample-size 10000, top-k 100, 3 epochs
#   sa-small    selection-aware, 1 iteration, --sample-size 1000, top-k 32, 1 epoch
# Scoring seq/s: eval's "Scored N sequences in T"; for selection-aware, the
# sample size over the iteration's inference phase (metrics.jsonl), and
# training seq/s the trained sequences over its training phase. Faults, CPU
# seconds (user + system) and peak RSS come from /usr/bin/time for the whole
# command (including reading the panel).
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); data=$3; rounds=${4:-3}
presets=${PRESETS:-tiny small}
read -r -a extra_old <<<"${ARGS_OLD-${ARGS:-}}"
read -r -a extra_new <<<"${ARGS_NEW-${ARGS:-}}"
read -r -a env_old <<<"${ENV_OLD:-}"
read -r -a env_new <<<"${ENV_NEW:-}"
# Each build must run with its own libsatorch.so. A binary's RUNPATH may name
# the build folder it was made in before its own folder (binaries before this
# script's fix did: an old binary copied aside then loaded the current shim),
# so each command runs with LD_LIBRARY_PATH, which the loader searches first,
# set to the build's folder; the loader's choice is checked here.
for d in "$old" "$new"; do
  got=$(LD_LIBRARY_PATH="$d" ldd "$d/satrain" | awk '$1 == "libsatorch.so" { print $3 }')
  if [[ $(cd "$(dirname "$got")" && pwd)/$(basename "$got") != "$d/libsatorch.so" ]]; then
    echo "e2e_cpu.sh: $d/satrain loads $got, not $d/libsatorch.so" >&2
    exit 1
  fi
  echo "$d/satrain uses $got" >&2
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ck=${CKPT_DIR:-$tmp/ck}
mkdir -p "$ck"

sa_flags() { # preset
  if [[ $1 == tiny ]]; then echo "--sample-size 10000 --top-k 100 --train-epochs-per-iteration 3"
  else echo "--sample-size 1000 --top-k 32 --train-epochs-per-iteration 1"; fi
}
common=(--device cpu --use-amp=false --progress=false --metrics-addr "" --val-size 256 --val-every 1 --checkpoint-every 1000)

for p in $presets; do
  if [[ ! -f $ck/$p/best_model_selection_aware.pt ]]; then
    # shellcheck disable=SC2046
    LD_LIBRARY_PATH="$new" "$new/satrain" selection-aware --data "$data" --preset "$p" --num-iterations 1 $(sa_flags "$p") "${common[@]}" \
      --save-dir "$ck/$p" >/dev/null 2>&1
  fi
done

run() { # label bin workload preset
  local label=$1 bin=$2 w=$3 p=$4 out=$tmp/out.txt extra=("${extra_old[@]}") envs=("${env_old[@]}")
  [[ $label == new ]] && extra=("${extra_new[@]}") && envs=("${env_new[@]}")
  local t=(env LD_LIBRARY_PATH="$bin" "${envs[@]}" /usr/bin/time -o "$tmp/time.txt" -f "%e %U %S %R %M")
  case $w in
    eval)
      local dates=200
      [[ $p == small ]] && dates=2
      "${t[@]}" "$bin/satrain" eval --checkpoint "$ck/$p/best_model_selection_aware.pt" --data "$data" --device cpu \
        --max-dates $dates --progress=false "${extra[@]}" >"$out" 2>&1
      # "Scored 19,760 sequences in 3.1s" (Go duration: 3.1s, 850ms, 1m5s)
      sed -n 's/^Scored \([0-9,]*\) sequences in \(.*\)$/\1 \2/p' "$out" | tr -d , |
        awk '{ d=$2; s=0; if (d ~ /m[0-9]/) { split(d, a, "m"); s=a[1]*60; d=a[2] }
               if (d ~ /ms$/) s+=d/1000; else { sub(/s$/, "", d); s+=d }; printf "%s %.1f -", $1, $1/s }' >"$tmp/rate.txt"
      ;;
    sa)
      rm -rf "$tmp/run"
      # shellcheck disable=SC2046
      "${t[@]}" "$bin/satrain" selection-aware --data "$data" --preset "$p" --num-iterations 1 $(sa_flags "$p") \
        "${common[@]}" "${extra[@]}" --save-dir "$tmp/run" >"$out" 2>&1
      python3 -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
ph = r["phase_seconds"]
print(r["sequences_scored_total"], "%.1f" % (r["sequences_scored_total"] / ph["inference"]),
      "%.1f" % (r["sequences_trained_total"] / ph["training"]))' "$tmp/run/metrics.jsonl" >"$tmp/rate.txt"
      ;;
  esac
  echo "$w-$p $label $(cat "$tmp/rate.txt") $(cat "$tmp/time.txt")" >>"$tmp/results.txt"
}

for r in $(seq "$rounds"); do
  for p in $presets; do
    for w in eval sa; do
      if ((r % 2)); then run old "$old" $w "$p"; run new "$new" $w "$p"
      else run new "$new" $w "$p"; run old "$old" $w "$p"; fi
    done
  done
  echo "round $r/$rounds done" >&2
done

python3 - "$tmp/results.txt" "old: ${ENV_OLD:-}${ENV_OLD:+ }${ARGS_OLD-${ARGS:-defaults}}; new: ${ENV_NEW:-}${ENV_NEW:+ }${ARGS_NEW-${ARGS:-defaults}}" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    w, label, n, score, train, wall, user, sys_, faults, rss = line.split()
    rows.setdefault((w, label), []).append(
        (float(score), float(train) if train != "-" else float("nan"), float(user) + float(sys_), int(faults), int(rss)))
def med(w, label, i):
    v = [x[i] for x in rows[(w, label)]]
    return st.median(v), min(v), max(v)
print(f"flags {sys.argv[2]}; {len(next(iter(rows.values())))} rounds; median [min-max]")
print(f"{'workload':11} {'build':5} {'scoring seq/s':>24} {'training seq/s':>22} {'CPU s':>6} {'faults':>8} {'RSS MB':>7}")
for w in sorted({k[0] for k in rows}, key=lambda s: (s.split("-")[1], s)):
    for label in ("old", "new"):
        s, t, c, f, m = (med(w, label, i) for i in range(5))
        ts = "-" if t[0] != t[0] else f"{t[0]:7.1f} [{t[1]:.0f}-{t[2]:.0f}]"
        print(f"{w:11} {label:5} {s[0]:8.1f} [{s[1]:6.1f}-{s[2]:6.1f}] {ts:>22} {c[0]:6.2f} {f[0]:8.0f} {m[0]/1024:7.0f}")
    so, sn = med(w, "old", 0)[0], med(w, "new", 0)[0]
    co, cn = med(w, "old", 2)[0], med(w, "new", 2)[0]
    fo, fn = med(w, "old", 3)[0], med(w, "new", 3)[0]
    print(f"{w:11} new/old scoring {sn/so:.2f}x, CPU {cn/co:.2f}x, faults {fn/fo:.2f}x")
PY
