#!/bin/sh
# Loader benchmark: Go preload/stream window reads vs a plain memory copy and
# the h5py+numpy reference, on one synthetic file of realistic shape
# (500 tickers x 5000 days x 16 features, seq-len 64, batches of 1024 windows).
#
# usage: bench/loader_bench.sh [benchtime]      (default 3s; file kept in $LOADER_BENCH_DIR or a temp dir)
set -eu
cd "$(dirname "$0")/.."
BT=${1:-3s}
DIR=${LOADER_BENCH_DIR:-$(mktemp -d)}
export LOADER_BENCH_FILE="$DIR/bench.h5" LOADER_BENCH_IDS="$DIR/ids.txt"
PY=${PYTHON:-.venv/bin/python}

echo "== go test ./loader -bench Windows -benchtime $BT  (file $LOADER_BENCH_FILE)"
go test ./loader -run '^$' -bench 'Windows' -benchtime "$BT" | tee "$DIR/go.txt"
echo "== $PY bench/loader_bench.py"
secs=$(echo "$BT" | sed 's/s$//')
$PY bench/loader_bench.py "$LOADER_BENCH_FILE" "$LOADER_BENCH_IDS" --seconds "$secs" | tee "$DIR/py.txt"

# windows/s of one result: go lines carry "<value> windows/s", python lines "<name> <value> windows/s"
go_wps() { awk -v n="BenchmarkWindows/$1-" 'index($1, n) == 1 { for (i = 2; i <= NF; i++) if ($i == "windows/s") print $(i-1) }' "$DIR/go.txt"; }
py_wps() { awk -v n="$1" '$1 == n { print $2 }' "$DIR/py.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

pre=$(go_wps preload); str=$(go_wps stream); nc=$(go_wps stream-nocache); mc=$(go_wps memcopy)
h5=$(py_wps h5py_stream); h5c=$(py_wps h5py_cached); np=$(py_wps numpy_gather); npm=$(py_wps numpy_memcopy)
echo "== ratios (windows/s)"
echo "preload / go memcopy:             $(ratio "$pre" "$mc")   (goal >= 0.50: within 2x of a memory copy)"
echo "preload / numpy gather:           $(ratio "$pre" "$np")"
echo "stream / h5py (default cache):    $(ratio "$str" "$h5")   (goal > 1)"
echo "stream / h5py (whole-file cache): $(ratio "$str" "$h5c")"
echo "stream-nocache / h5py:            $(ratio "$nc" "$h5")"
echo "go memcopy / numpy memcopy:       $(ratio "$mc" "$npm")"
[ -n "${LOADER_BENCH_DIR:-}" ] || rm -rf "$DIR"
