#!/usr/bin/env bash
# Prints satrain's package map: every Go package of the module with its lines
# of code and of tests, its share of the code, and the module packages it
# imports (docs/DESIGN.md shows this table).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mod=$(go list -m)
total=$(git ls-files '*.go' | grep -v '_test.go$' | xargs cat | wc -l)
printf '| package | code | tests | share of code | imports (module) |\n| --- | ---: | ---: | ---: | --- |\n'
for p in $(go list ./...); do
  d=${p#"$mod"}; d=${d#/}; [[ -z "$d" ]] && d=.
  code=$(git ls-files "$d/*.go" | awk -F/ -v n="$(awk -F/ '{print NF}' <<<"$d/x")" 'NF==n' | grep -v '_test.go$' | xargs -r cat | wc -l)
  tests=$(git ls-files "$d/*_test.go" | awk -F/ -v n="$(awk -F/ '{print NF}' <<<"$d/x")" 'NF==n' | xargs -r cat | wc -l)
  imports=$(go list -f '{{join .Imports " "}}' "$p" | tr ' ' '\n' | grep "^$mod/" | sed "s#^$mod/##" | grep -v '^internal/' | tr '\n' ' ' || true)
  printf '| %s | %d | %d | %.0f%% | %s |\n' "$d" "$code" "$tests" "$(echo "100*$code/$total" | bc -l)" "${imports% }"
done
printf '| all | %d | | | |\n' "$total"
