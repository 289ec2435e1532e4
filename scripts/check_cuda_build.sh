#!/usr/bin/env bash
# check_cuda_build.sh DIR: the CUDA build of the shim (DIR/libsatorch.so, make shim-cuda) on a machine without a
# GPU. What it shows: the CUDA and NCCL code compiled against the wheel's libtorch_cuda and the CUDA 13 headers,
# linked (libtorch_cuda and libc10_cuda are NEEDED, every library resolves by RUNPATH except the driver's
# libcuda.so.1, which only a GPU machine has), and loads: the Go binary beside it reports the CUDA build, finds
# no device, and refuses --device cuda in one line. Nothing CUDA runs here.
set -euo pipefail
dir=${1:?usage: check_cuda_build.sh DIR}
shim=$dir/libsatorch.so
needed=$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in libtorch_cuda.so libc10_cuda.so; do
  grep -qx "$lib" <<<"$needed" || { echo "check_cuda_build: $shim does not need $lib" >&2; exit 1; }
done
undefined=$(nm -D --undefined-only "$shim")
grep -q 'ProcessGroupNCCL' <<<"$undefined" ||
  { echo "check_cuda_build: $shim has no NCCL process group (nccl.h not found at build time?)" >&2; exit 1; }
missing=$(ldd "$shim" | awk '/not found/ {print $1}' | grep -vx 'libcuda.so.1' || true)
[[ -z "$missing" ]] || { echo "check_cuda_build: unresolved libraries: $missing" >&2; exit 1; }
info=$("$dir/satrain" info 2>&1)
info=${info%%$'\n'*}
grep -q 'built with CUDA: true' <<<"$info" || { echo "check_cuda_build: $dir/satrain info says: $info" >&2; exit 1; }
if out=$("$dir/satrain" bench --device cuda --preset tiny 2>&1); then
  echo "check_cuda_build: --device cuda ran without a GPU: $out" >&2; exit 1
fi
grep -q 'no CUDA device is visible' <<<"$out" ||
  { echo "check_cuda_build: --device cuda without a GPU said: $out" >&2; exit 1; }
echo "check_cuda_build: $shim compiled and linked with CUDA and NCCL; loads here: ${info#*, }"
