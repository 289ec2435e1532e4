#!/usr/bin/env bash
# Builds libsatorch.so with CUDA on against the local PyTorch install's libtorch
# (the GPU machine: PyTorch 2.x + CUDA, no Go). Usage: build_shim.sh OUTDIR
# CMake with find_package(Torch) first; if that configure fails (TorchConfig
# wants CUDA pieces the machine lacks), a direct g++ line with the same flags.
set -euo pipefail
out=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
py=${PYTHON:-python3}
prefix=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
torchdir=$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
abi=$("$py" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
build=${SHIM_BUILD_DIR:-/tmp/satorch-build}
mkdir -p "$out"
for std in 17 20; do
  if cmake -S "$src/torch/csrc" -B "$build-$std" -DCMAKE_PREFIX_PATH="$prefix" -DSATORCH_CUDA=ON \
       -DSATORCH_OUTPUT_DIR="$out" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=$std >"$build-$std.log" 2>&1 &&
     cmake --build "$build-$std" -j "$(nproc)" >>"$build-$std.log" 2>&1; then
    echo "build_shim: cmake (C++$std) ok"; exit 0
  fi
  echo "build_shim: cmake (C++$std) failed; last lines:"; tail -n 15 "$build-$std.log"
done
cuda_inc=""
if command -v nvcc >/dev/null; then cuda_inc="-I$(dirname "$(dirname "$(command -v nvcc)")")/include"; fi
for d in "$torchdir"/../nvidia/*/include; do [[ -d "$d" ]] && cuda_inc="$cuda_inc -I$d"; done
for std in 17 20; do
  if g++ -O2 -std=c++$std -shared -fPIC -DSATORCH_CUDA=1 -D_GLIBCXX_USE_CXX11_ABI="$abi" \
       -I"$torchdir/include" -I"$torchdir/include/torch/csrc/api/include" $cuda_inc \
       "$src/torch/csrc/satorch.cpp" -o "$out/libsatorch.so" \
       -L"$torchdir/lib" -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed -ltorch -ltorch_cpu -lc10 \
       -Wl,-rpath,"$torchdir/lib" 2>"$build-gxx.log"; then
    echo "build_shim: g++ (C++$std) ok"; exit 0
  fi
  echo "build_shim: g++ (C++$std) failed:"; grep -m 20 -E "error" "$build-gxx.log" || tail -n 20 "$build-gxx.log"
done
exit 1
