#!/usr/bin/env bash
# Short fuzz run for CI: each fuzz target for a fixed number of executions
# beyond its seed corpus (testdata/fuzz/<Target>/ and the f.Add seeds), about
# 5 s each on the 2-core development VM. Any panic, crash or hang fails the
# script; the failing input is written under <pkg>/testdata/fuzz/<Target>/ by
# go test -- check it in as a new seed once fixed.
#
# Budgets are execution counts ("Nx"), not durations: with a duration, Go's
# fuzz coordinator (up to Go 1.26, golang/go#75804) can report a spurious
# "context deadline exceeded" failure, without any failing input, when the
# deadline fires while a worker is mid-call. A count has no deadline to race.
# FUZZTIME (e.g. 30s or 100000x) overrides every target's budget.
#
# Run from the repository root (needs build/libsatorch.so: make shim).
# The first run compiles the packages with coverage instrumentation (minutes
# on 2 cores); later runs use the build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-}"
GO="${GO:-go}"
# package, target, executions (measured rates here: CSV import about
# 30,000/s, HDF5 opens 900-1,600/s, flag parsing 1,600/s).
targets=(
  "./loader FuzzImportCSVFile 150000x"
  "./loader FuzzOpen 5000x"
  "./loader FuzzOpenFile 8000x"
  "./bin/satrain FuzzFlags 8000x"
)
for t in "${targets[@]}"; do
  read -r pkg name budget <<<"$t"
  budget="${FUZZTIME:-$budget}"
  echo "== fuzz $name ($pkg) for $budget"
  # -fuzzminimizetime bounds the minimisation of each new interesting input,
  # which otherwise stalls a short run for up to a minute.
  timeout 600 "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" -fuzzminimizetime 50x "$pkg"
done
echo "fuzz: all ${#targets[@]} targets passed"
