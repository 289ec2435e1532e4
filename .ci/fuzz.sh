#!/usr/bin/env bash
# Short fuzz run for CI: each fuzz target for FUZZTIME (default 5s) beyond its
# seed corpus (testdata/fuzz/<Target>/ and the f.Add seeds). Any panic, crash
# or hang fails the script; the failing input is written under
# <pkg>/testdata/fuzz/<Target>/ by go test -- check it in as a new seed once fixed.
# Run from the repository root (needs build/libsatorch.so: make shim).
# The first run compiles the packages with coverage instrumentation (minutes
# on 2 cores); later runs use the build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-5s}"
GO="${GO:-go}"
targets=(
  "./loader FuzzImportCSVFile"
  "./loader FuzzOpen"
  "./loader FuzzOpenFile"
  "./bin/satrain FuzzFlags"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $name ($pkg) for $FUZZTIME"
  # -fuzzminimizetime bounds the minimisation of each new interesting input,
  # which otherwise stalls a short run for up to a minute.
  timeout 600 "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 50x "$pkg"
done
echo "fuzz: all ${#targets[@]} targets passed"
