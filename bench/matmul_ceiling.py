#!/usr/bin/env python3
"""Achievable dense matmul throughput: the ceiling for the model benchmarks' MFU.

  python3 bench/matmul_ceiling.py                 # cuda if available: bf16 8192^3
  python3 bench/matmul_ceiling.py --device cpu    # float32 2048^3
Prints one JSON line: {"bench": "matmul_ceiling", "tflops": median, ...}.
"""

import argparse
import json
import statistics
import sys
import time

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--size", type=int, help="n for an n x n x n matmul (cuda 8192, cpu 2048)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="default: cuda bf16, cpu fp32")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations (>= 10)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--peak-tflops", type=float, help="datasheet peak, to report the fraction reached")
    args = ap.parse_args(argv)

    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda" and not torch.cuda.is_available():
        print("matmul_ceiling: error: CUDA is not available", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    n = args.size or (8192 if dev == "cuda" else 2048)
    dtype = DTYPES[args.dtype or ("bf16" if dev == "cuda" else "fp32")]
    iters = max(10, args.iters)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    c = torch.empty(n, n, device=dev, dtype=dtype)
    for _ in range(args.warmup):
        torch.matmul(a, b, out=c)
    times = []
    if dev == "cuda":
        torch.cuda.synchronize()
        for _ in range(iters):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            torch.matmul(a, b, out=c)
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / 1e3)
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
    flops = 2.0 * n ** 3
    med = statistics.median(times)
    res = {
        "bench": "matmul_ceiling", "device": dev,
        "device_name": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "torch": torch.__version__, "dtype": str(dtype).replace("torch.", ""), "n": n,
        "iters": iters, "threads": torch.get_num_threads() if dev == "cpu" else None,
        "ms_median": med * 1e3, "ms_min": min(times) * 1e3,
        "tflops": flops / med / 1e12, "tflops_best": flops / min(times) / 1e12,
    }
    if args.peak_tflops:
        res["peak_tflops"] = args.peak_tflops
        res["fraction_of_peak"] = res["tflops"] / args.peak_tflops
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
