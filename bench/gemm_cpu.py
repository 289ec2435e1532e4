#!/usr/bin/env python3
"""oneDNN's sgemm against libtorch's float32 linear on the CPU, per layer shape.

Why satrain's shim calls dnnl_sgemm for linear layers (torch/csrc/cpu_kernels.cpp): libtorch 1.13 sends a
float32 linear layer to its BLAS (Debian: OpenBLAS, whose kernel family depends on the CPU model it
recognises; `satrain info` names it), while oneDNN, which the same libtorch loads, picks its kernels from
the CPU's instruction set. This script times both on the model's layer shapes in one process, with the
same thread count, interleaved, and checks that they agree to float32 rounding.

Shapes [M, K] x [N, K]^T: M = batch x seq_len rows (tiny: 256 x 32; small: 64 x 128), K and N the layer's
in and out features (in-projection 12 -> d, qkv d -> 3d, out-projection d -> d, FFN d -> 4d -> d).

Usage: /usr/bin/python3 bench/gemm_cpu.py [--threads 1] [--reps 5]
OPENBLAS_CORETYPE in the environment changes OpenBLAS's kernels (read when OpenBLAS loads).
"""
import argparse
import ctypes
import os
import statistics
import time

import torch

SHAPES = [  # name, M, K, N
    ("tiny in-proj", 8192, 12, 32),
    ("tiny qkv", 8192, 32, 96),
    ("tiny out-proj", 8192, 32, 32),
    ("tiny fc1", 8192, 32, 128),
    ("tiny fc2", 8192, 128, 32),
    ("small qkv", 8192, 128, 384),
    ("small fc1", 8192, 128, 512),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5, help="timed rounds per shape (each: 20 calls per path)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dnnl = ctypes.CDLL("libdnnl.so.2")
    sgemm = dnnl.dnnl_sgemm
    sgemm.argtypes = [ctypes.c_char, ctypes.c_char] + [ctypes.c_int64] * 3 + [ctypes.c_float, ctypes.c_void_p,
                      ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p,
                      ctypes.c_int64]
    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]
    dnnl.dnnl_version.restype = ctypes.POINTER(Version)
    v = dnnl.dnnl_version().contents
    core = ""
    try:
        ob = ctypes.CDLL("libopenblas.so.0")
        ob.openblas_get_corename.restype = ctypes.c_char_p
        core = ob.openblas_get_corename().decode()
    except OSError:
        pass
    print(f"torch {torch.__version__}, oneDNN {v.major}.{v.minor}.{v.patch}, OpenBLAS kernels {core or 'n/a'}"
          f" (OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}), {a.threads} thread(s)")
    print(f"wall ms per call, median [min-max] of {a.reps} rounds; ratio = libtorch / oneDNN (above 1: oneDNN faster);")
    print("error = max over outputs of |path - float64| / sum |x||w|, worse of the two paths")
    print(f"{'shape':14} {'M,K,N':>14} {'libtorch linear':>24} {'oneDNN sgemm':>24} {'ratio':>6} {'error':>9}")
    for name, M, K, N in SHAPES:
        g = torch.Generator().manual_seed(1)
        x, w, b = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g), torch.randn(N, generator=g)
        out = torch.empty(M, N)

        def onednn():
            out.copy_(b.expand(M, N))
            st = sgemm(b"N", b"T", M, N, K, 1.0, x.data_ptr(), K, w.data_ptr(), K, 1.0, out.data_ptr(), N)
            assert st == 0, st
            return out

        def lib():
            return torch.nn.functional.linear(x, w, b)

        ref = (x.double() @ w.double().T + b.double())
        scale = (x.double().abs() @ w.double().abs().T + b.double().abs())
        diff = max(((f().double() - ref).abs() / scale).max().item() for f in (lib, onednn))
        t = {"lib": [], "onednn": []}
        for r in range(a.reps + 1):
            order = (("lib", lib), ("onednn", onednn)) if r % 2 else (("onednn", onednn), ("lib", lib))
            for k, f in order:
                s = time.perf_counter()
                for _ in range(20):
                    f()
                if r:  # round 0 warms up
                    t[k].append((time.perf_counter() - s) / 20 * 1e3)
        ml, mo = statistics.median(t["lib"]), statistics.median(t["onednn"])
        fmt = lambda v: f"{statistics.median(v):7.3f} [{min(v):.3f}-{max(v):.3f}]"
        print(f"{name:14} {f'{M},{K},{N}':>14} {fmt(t['lib']):>24} {fmt(t['onednn']):>24} {ml / mo:6.2f} {diff:9.1e}")


if __name__ == "__main__":
    main()
