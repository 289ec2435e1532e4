#!/usr/bin/env bash
# lock.sh PYVER IN OUT [--from-dir DIR]
# Writes a hash-pinned requirements file (for `pip install --require-hashes`): every wheel that the
# requirements in IN resolve to for CPython PYVER on manylinux x86_64, one line each,
#   name==version --hash=sha256:<digest of the exact file>
# sorted by name. IN holds plain requirement lines (name==version, comments allowed).
#
#   third_party/lock.sh 3.11 third_party/requirements.in third_party/requirements.lock   # make deps' venv
#   third_party/lock.sh 3.12 docker/torch-requirements.in docker/torch-requirements.txt  # Dockerfile.cuda
#
# Wheels come from PyPI (the index every machine of the project reaches, and the one Dockerfile.cuda installs
# from). pip download evaluates environment markers (platform_system == "Linux" on torch's CUDA wheels) on
# the machine it runs on, so the script refuses anything but Linux x86_64. With --from-dir it hashes the
# wheels already in DIR instead of downloading (what the tests use).
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: lock.sh PYVER IN OUT [--from-dir DIR]" >&2; exit 2; }
pyver=$1 in=$2 out=$3
shift 3
dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --from-dir) dir=$2; shift 2 ;;
    *) echo "lock.sh: unknown argument $1 (want --from-dir DIR)" >&2; exit 2 ;;
  esac
done
[[ "$pyver" =~ ^3\.[0-9]+$ ]] || { echo "lock.sh: PYVER $pyver is not 3.N" >&2; exit 2; }
[[ -f "$in" ]] || { echo "lock.sh: $in: no such file" >&2; exit 2; }
mapfile -t reqs < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$in" | grep -v '^$')
[[ ${#reqs[@]} -gt 0 ]] || { echo "lock.sh: $in holds no requirement" >&2; exit 2; }

if [[ -z "$dir" ]]; then
  if [[ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]]; then
    echo "lock.sh: this is $(uname -s)/$(uname -m): pip would evaluate the wheels' platform markers for it," \
         "not for Linux x86_64; run it on Linux x86_64" >&2
    exit 1
  fi
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  abi="cp${pyver/./}"
  plats=(--platform manylinux2014_x86_64 --platform linux_x86_64)
  for v in $(seq 17 28); do plats+=(--platform "manylinux_2_${v}_x86_64"); done
  python3 -m pip download --quiet --no-cache-dir --dest "$dir" --only-binary=:all: \
    --python-version "$pyver" --implementation cp --abi "$abi" "${plats[@]}" \
    --index-url https://pypi.org/simple "${reqs[@]}"
fi

shopt -s nullglob
wheels=("$dir"/*.whl)
[[ ${#wheels[@]} -gt 0 ]] || { echo "lock.sh: no wheels in $dir" >&2; exit 1; }
lines=()
for whl in "${wheels[@]}"; do
  # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl; names normalised as pip compares them.
  IFS=- read -r dist ver _ <<<"$(basename "$whl" .whl)"
  name=$(tr '[:upper:]_.' '[:lower:]--' <<<"$dist")
  lines+=("$name==${ver//%2B/+} --hash=sha256:$(sha256sum "$whl" | cut -d' ' -f1)")
done
# Every requirement asked for must be among the wheels, at the version asked for.
for r in "${reqs[@]}"; do
  want_name=$(tr '[:upper:]_.' '[:lower:]--' <<<"${r%%==*}")
  want_ver=${r#*==}
  printf '%s\n' "${lines[@]}" | grep -q "^$want_name==$want_ver " ||
    { echo "lock.sh: $r is not among the wheels in $dir" >&2; exit 1; }
done
{
  echo "# Written by third_party/lock.sh $pyver $in: every wheel those requirements resolve to on PyPI for"
  echo "# CPython $pyver, manylinux x86_64, each pinned by the sha256 of the exact file. Do not edit; rerun the script."
  printf '%s\n' "${lines[@]}" | sort
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "lock.sh: wrote $out (${#lines[@]} wheels)"
