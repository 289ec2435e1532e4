#!/usr/bin/env bash
# Prints the libtorch root the shim builds against: a directory with include/ and lib/libtorch_cpu.so.
#   LIBTORCH=<dir>   an unpacked official libtorch zip, used as it is
#   otherwise        the torch package of $PYTHON: by default the project's venv (.venv/bin/python), where
#                    `make deps` installs PyTorch 2.11.0 from third_party/requirements.lock
# With --cuda-root it prints instead where the CUDA wheels torch depends on keep their headers
# (site-packages/nvidia: cu13/include, nccl/include), for the CUDA build of the shim.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python="${PYTHON:-$here/.venv/bin/python}"
want=root
[[ "${1:-}" == --cuda-root ]] && want=cuda

if [[ -n "${LIBTORCH:-}" ]]; then
  [[ -f "$LIBTORCH/lib/libtorch_cpu.so" ]] || { echo "third_party/libtorch.sh: LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so" >&2; exit 1; }
  [[ $want == root ]] && { echo "$LIBTORCH"; exit 0; }
  echo "${CUDA_ROOT:-/usr/local/cuda}"; exit 0
fi
if ! root=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
  echo "third_party/libtorch.sh: $python cannot import torch: run make deps (it creates .venv), or set PYTHON or LIBTORCH" >&2
  exit 1
fi
if [[ $want == root ]]; then echo "$root"; else echo "$(dirname "$root")/nvidia"; fi
