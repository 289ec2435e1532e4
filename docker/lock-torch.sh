#!/usr/bin/env bash
# lock-torch.sh [--from-dir DIR] [--out FILE]
# Writes docker/torch-requirements.txt, the lock file Dockerfile.cuda installs
# with `pip install --require-hashes`: torch==$TORCH_VERSION+$TORCH_CUDA and
# every wheel it depends on, for CPython 3.12 on manylinux x86_64 (the
# builder's Python), one line each: name==version --hash=sha256:<digest>.
#
# Without --from-dir it downloads the wheels with pip (network access needed)
# from the PyTorch CUDA index, with PyPI for the rest, and hashes the files it
# got. With --from-dir it hashes the wheels already in DIR instead.
# Environment: TORCH_VERSION (2.11.0), TORCH_CUDA (cu130), TORCH_INDEX_URL,
# PYTHON (python3). Keep the first two equal to Dockerfile.cuda's ARGs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${TORCH_VERSION:-2.11.0}
cuda=${TORCH_CUDA:-cu130}
index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/$cuda}
python=${PYTHON:-python3}
out="$here/torch-requirements.txt"
dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-dir) dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "lock-torch.sh: unknown argument $1 (want --from-dir DIR, --out FILE)" >&2; exit 2 ;;
  esac
done

if [[ -z "$dir" ]]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  "$python" -m pip download --quiet --dest "$dir" --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform linux_x86_64 \
    --index-url "$index" --extra-index-url https://pypi.org/simple \
    "torch==$version+$cuda"
fi

shopt -s nullglob
wheels=("$dir"/*.whl)
if [[ ${#wheels[@]} -eq 0 ]]; then
  echo "lock-torch.sh: no wheels in $dir" >&2
  exit 1
fi
lines=()
have_torch=0
for whl in "${wheels[@]}"; do
  # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
  base=$(basename "$whl" .whl)
  IFS=- read -r dist ver _ <<<"$base"
  ver=${ver//%2B/+}
  name=$(echo "$dist" | tr '[:upper:]_.' '[:lower:]--')
  if [[ "$name" == torch ]]; then
    [[ "$ver" == "$version+$cuda" ]] || { echo "lock-torch.sh: got torch $ver, want $version+$cuda" >&2; exit 1; }
    have_torch=1
  fi
  lines+=("$name==$ver --hash=sha256:$(sha256sum "$whl" | cut -d' ' -f1)")
done
[[ $have_torch -eq 1 ]] || { echo "lock-torch.sh: no torch wheel among ${#wheels[@]} wheels in $dir" >&2; exit 1; }

{
  echo "# PyTorch $version with CUDA ($cuda) for the builder stage of Dockerfile.cuda:"
  echo "# torch and every wheel it depends on, for CPython 3.12 on manylinux x86_64, each"
  echo "# pinned by the sha256 of the exact file. Written by docker/lock-torch.sh."
  printf '%s\n' "${lines[@]}" | sort
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "lock-torch.sh: wrote $out (${#lines[@]} wheels)"
