#!/usr/bin/env bash
# The Go binary must link libsatorch.so and nothing of libtorch directly, so the
# same binary runs against a shim built for any libtorch (CPU here, CUDA there).
set -euo pipefail
bin=${1:-build/satrain}
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
grep -qx 'libsatorch.so' <<<"$needed" || { echo "check_links: $bin does not list libsatorch.so" >&2; exit 1; }
if grep -E '^(libtorch|libc10)' <<<"$needed"; then echo "check_links: $bin links libtorch directly" >&2; exit 1; fi
echo "check_links: $bin needs $(tr '\n' ' ' <<<"$needed")"
