#!/usr/bin/python3
"""Reference reader for the loader benchmark: h5py + numpy reading the same
windows as `go test ./loader -bench Windows` (ids written by the Go benchmark).

usage: /usr/bin/python3 bench/loader_bench.py FILE IDS [--seconds S]

Prints one line per method: name, windows/s, MB/s (window bytes delivered).
  h5py_stream   ds[t, d-L+1:d+1, :] per window (h5py defaults: 1 MiB chunk cache)
  h5py_cached   the same with a chunk cache large enough for the whole dataset
  numpy_gather  the panel in RAM, one fancy-index gather per batch
  numpy_memcopy np.copyto of the same number of bytes (contiguous)
"""
import sys
import time

import h5py
import numpy as np


def load_ids(path):
    seq_len, batch = 64, 1024
    ids = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                parts = line.split()
                seq_len, batch = int(parts[2]), int(parts[4])
                continue
            t, d = line.split()
            ids.append((int(t), int(d)))
    return np.array(ids, dtype=np.int64), seq_len, batch


def timed(fn, nbatches, seconds):
    """Run fn(k) for batch k cyclically until `seconds` pass; return batches run and elapsed."""
    fn(0)  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn(n % nbatches)
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return n, el


def main():
    path, idpath = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 3.0
    ids, L, B = load_ids(idpath)
    nb = len(ids) // B
    results = []
    for name, cache in (("h5py_stream", None), ("h5py_cached", 512 << 20)):
        kw = {} if cache is None else {"rdcc_nbytes": cache, "rdcc_nslots": 52009}
        with h5py.File(path, "r", **kw) as f:
            ds = f["features"]
            F = ds.shape[2]
            out = np.empty((B, L, F), dtype=np.float32)

            def read(k):
                for i, (t, d) in enumerate(ids[k * B:(k + 1) * B]):
                    out[i] = ds[t, d - L + 1:d + 1, :]

            n, el = timed(read, nb, seconds)
            results.append((name, n * B / el, n * out.nbytes / el / 1e6))
    with h5py.File(path, "r") as f:
        panel = f["features"][...]
    F = panel.shape[2]
    offs = np.arange(-L + 1, 1)

    def gather(k):
        b = ids[k * B:(k + 1) * B]
        return panel[b[:, 0:1], b[:, 1:2] + offs]

    n, el = timed(gather, nb, seconds)
    results.append(("numpy_gather", n * B / el, n * B * L * F * 4 / el / 1e6))
    src = np.arange(32 * B * L * F, dtype=np.float32).reshape(32, B * L * F)
    dst = np.empty(B * L * F, dtype=np.float32)
    n, el = timed(lambda k: np.copyto(dst, src[k % 32]), 32, seconds)
    results.append(("numpy_memcopy", n * B / el, n * dst.nbytes / el / 1e6))
    for name, wps, mbs in results:
        print(f"{name:14s} {wps:12.0f} windows/s {mbs:10.1f} MB/s")


if __name__ == "__main__":
    main()
