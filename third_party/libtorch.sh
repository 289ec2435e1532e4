#!/usr/bin/env bash
# Prints the CMake prefix under which TorchConfig.cmake lives, for one of three sources:
#   LIBTORCH=<dir>        an unpacked official libtorch zip (dir holds share/cmake/Torch)
#   TORCH_SOURCE=python   the PyTorch install of $PYTHON (default python3): torch.utils.cmake_prefix_path
#   TORCH_SOURCE=debian   Debian's libtorch-dev (default when nothing else is asked for)
# With TORCH_SOURCE=auto (default): $LIBTORCH if set, else Debian's if installed, else python.
set -euo pipefail
source="${TORCH_SOURCE:-auto}"
python="${PYTHON:-python3}"

debian_prefix() {
  local multiarch
  multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
  local d="/usr/lib/${multiarch}/cmake/Torch"
  [[ -f "$d/TorchConfig.cmake" ]] && { echo "/usr/lib/${multiarch}/cmake"; return 0; }
  return 1
}
python_prefix() {
  "$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null
}

case "$source" in
  auto)
    if [[ -n "${LIBTORCH:-}" ]]; then
      [[ -d "$LIBTORCH/share/cmake/Torch" ]] || { echo "third_party/libtorch.sh: LIBTORCH=$LIBTORCH has no share/cmake/Torch" >&2; exit 1; }
      echo "$LIBTORCH/share/cmake"
    elif debian_prefix; then :
    elif p="$(python_prefix)" && [[ -n "$p" ]]; then echo "$p"
    else
      echo "third_party/libtorch.sh: no libtorch found: install libtorch-dev (make deps), PyTorch, or set LIBTORCH" >&2; exit 1
    fi ;;
  debian) debian_prefix || { echo "third_party/libtorch.sh: Debian libtorch-dev is not installed" >&2; exit 1; } ;;
  python) p="$(python_prefix)" && [[ -n "$p" ]] && echo "$p" || { echo "third_party/libtorch.sh: $python cannot import torch" >&2; exit 1; } ;;
  *) echo "third_party/libtorch.sh: unknown TORCH_SOURCE=$source (auto, debian, python)" >&2; exit 1 ;;
esac
