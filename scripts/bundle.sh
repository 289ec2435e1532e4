#!/usr/bin/env bash
# Builds bundle/: what the GPU machine (no Go, no internet) needs besides the repository tree to run
# bench/device/run.sh. `make bundle` builds what it copies first.
#   bundle/satrain          the Go binary built here (RUNPATH $ORIGIN, so it loads the libsatorch.so beside it)
#   bundle/libsatorch.so    the CUDA build of the shim (build-cuda/, make shim-cuda): compiled here against the
#                           same libtorch 2.11.0+cu130 the GPU machine's PyTorch has; its RUNPATH names this
#                           machine's .venv, so run.sh points the loader at that machine's torch/lib instead
#   bundle/torch.test       the torch package's tests (go test -c ./torch): the CUDA tests and benchmarks run there
#   bundle/lib/             the binaries' shared libraries other than glibc's, libsatorch and libtorch (Debian's
#                           HDF5 and its dependencies, via ldd)
#   bundle/fp8/best_model.pt  trained weights for the FP8 containment step (bench/device/fp8_checkpoint.sh, made
#                           once into build/fp8-ckpt/ and reused)
# The Go binaries are stripped of their symbol tables to fit the device's transfer limit (64 MiB with the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bundle
go=${GO:-go}
for f in build/satrain build-cuda/libsatorch.so; do
  [[ -f $f ]] || { echo "bundle: $f is missing (make all shim-cuda)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/lib" "$out/fp8"
cp build/satrain "$out/satrain"
cp build-cuda/libsatorch.so "$out/libsatorch.so"
CGO_ENABLED=1 "$go" test -c -ldflags '-extldflags=-Wl,-rpath,$ORIGIN' -o "$out/torch.test" ./torch
strip "$out/satrain" "$out/torch.test"
# The binaries' own NEEDED libraries except libsatorch.so and glibc (in practice HDF5), plus everything those
# resolve to. libtorch's libraries are not collected: the GPU machine's PyTorch has them.
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
./bench/device/fp8_checkpoint.sh build/fp8-ckpt
cp build/fp8-ckpt/best_model.pt "$out/fp8/best_model.pt"
# The carried shim must load with every symbol bound (LD_BIND_NOW: a symbol missing from this libtorch would
# otherwise fail only when first called, on the GPU machine) through the loader path run.sh sets.
torchlib=$(./third_party/libtorch.sh)/lib
info=$(LD_BIND_NOW=1 LD_LIBRARY_PATH="$out:$torchlib:$out/lib" "$out/satrain" info 2>&1) || true
info=${info%%$'\n'*}
grep -q 'built with CUDA: true' <<<"$info" || { echo "bundle: $out/satrain with its shim says: $info" >&2; exit 1; }
size=$(du -sm "$out" | cut -f1)
echo "bundle: $out (${size} MiB): satrain, libsatorch.so (CUDA), torch.test, fp8/best_model.pt, lib/: $(ls "$out/lib" | tr '\n' ' ')"
if ((size > 60)); then
  echo "bundle: ${size} MiB is over the device transfer budget (64 MiB with the tree)" >&2
  exit 1
fi
