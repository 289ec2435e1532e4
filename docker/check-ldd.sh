#!/bin/sh
# check-ldd.sh FILE...
# Exits non-zero when ldd cannot resolve a shared library that one of FILE
# needs (directly or through another library), or when ldd fails on FILE.
# The only libraries allowed to be missing are the NVIDIA driver's user-space
# libraries, which the NVIDIA container runtime mounts at container start and
# which therefore never exist while an image is being built.
set -eu

allowed='libcuda.so.1 libnvidia-ml.so.1'
status=0
for f in "$@"; do
    if ! out=$(ldd "$f" 2>&1); then
        echo "check-ldd: ldd failed on $f:" >&2
        echo "$out" >&2
        status=1
        continue
    fi
    echo "== ldd $f"
    echo "$out"
    for lib in $(echo "$out" | awk '/=> not found/ {print $1}'); do
        case " $allowed " in
        *" $lib "*)
            echo "check-ldd: note: $f needs $lib (NVIDIA driver library, provided at run time)" ;;
        *)
            echo "check-ldd: MISSING: $f needs $lib" >&2
            status=1 ;;
        esac
    done
done
if [ "$status" -ne 0 ]; then
    echo "check-ldd: unresolved libraries; the image would not run" >&2
fi
exit "$status"
