#!/usr/bin/env bash
# Builds bundle/: what the GPU machine (no Go, no internet) needs to run satrain.
#   bundle/satrain        the Go binary built here (RUNPATH $ORIGIN)
#   bundle/lib/           its shared libraries other than glibc's and libsatorch.so (HDF5 and dependencies, via ldd)
#   bundle/src/           the shim sources and build files, python/, bench/, third_party/
# libsatorch.so is compiled there against the local PyTorch's libtorch (bench/device/build_shim.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bundle
rm -rf "$out"
mkdir -p "$out/lib" "$out/src"
cp build/satrain "$out/satrain"
# The binary's own NEEDED libraries except libsatorch.so and glibc (in practice
# HDF5), plus everything those resolve to. libtorch's libraries are not
# collected: the shim built there brings its own.
skip='^(libsatorch\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|ld-linux|linux-vdso|libresolv\.so)'
direct=$(readelf -d build/satrain | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -Ev "$skip" || true)
for lib in $direct; do
  path=$(ldd build/satrain | awk -v n="$lib" '$1 == n {print $3}')
  [[ -f "$path" ]] || { echo "bundle: cannot resolve $lib" >&2; exit 1; }
  cp -L "$path" "$out/lib/$lib"
  ldd "$path" | awk '/=>/ {print $1, $3}' | while read -r name dep; do
    [[ "$name" =~ $skip ]] && continue
    if [[ -f "$dep" && ! -f "$out/lib/$name" ]]; then cp -L "$dep" "$out/lib/$name"; fi
  done
done
mkdir -p "$out/src/torch"
cp -r torch/csrc "$out/src/torch/"
cp -r python bench third_party "$out/src/"
find "$out" -name __pycache__ -prune -exec rm -rf {} +
size=$(du -sm "$out" | cut -f1)
echo "bundle: $out (${size} MiB): $(ls "$out/lib" | tr '\n' ' ')"
if (( size > 60 )); then
  echo "bundle: ${size} MiB is over the device transfer budget (64 MiB with the tree)" >&2
  exit 1
fi
