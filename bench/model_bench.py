#!/usr/bin/env python3
"""PyTorch reference speed of the satrain model (scoring and training).

Examples:
  python3 bench/model_bench.py --preset tiny --mode both
  python3 bench/model_bench.py --preset default --device cuda --amp --mode both --json
  python3 bench/model_bench.py --preset default --device cuda --amp --compile --mode score --batch 128
  python3 bench/model_bench.py --checkpoint best_model_selection_aware.pt --device cuda --amp

Score: model.eval(), inference_mode, forward + expected_return.
Train: forward, loss (contract loss), backward, clip_grad_norm_(1.0), AdamW step.
Times are medians over --iters after --warmup (CUDA events on GPU); sequences_per_s_mean is
batch * iters / total time (the statistic the Go benchmarks report), minor_faults and cpu_s are the
process's minor page faults and CPU seconds over the timed iterations (getrusage).
CPU threads (--threads): libtorch's intra-op pool to n, the inter-op pool to 1, as satrain's thread
policy sets them. The allocator is the process's: run under
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1 for the
settings libsatorch applies at load (bench/model_cpu.sh does).
FLOPs (analytic): forward per sequence = 2*N_matmul*s + 4*s^2*d*L, where
N_matmul = weights of input_proj, qkv, out, fc1, fc2, head; training = 3x forward.
With --json, one JSON object per measurement goes to stdout and the table to stderr.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from satrain_model import (SatrainModel, count_matmul_parameters,  # noqa: E402
                           count_parameters, expected_return, forward_flops_per_sequence,
                           load_checkpoint, loss_fn)

PRESETS = {
    "tiny": dict(hidden_dim=32, num_layers=2, num_heads=4, seq_len=32),
    "small": dict(hidden_dim=128, num_layers=4, num_heads=4, seq_len=128),
    "medium": dict(hidden_dim=256, num_layers=4, num_heads=8, seq_len=256),
    "default": dict(hidden_dim=1024, num_layers=16, num_heads=16, seq_len=2000),
}

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) used when --peak-tflops is not given.
KNOWN_PEAKS_BF16 = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4),
                    ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.0)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="satrain model benchmark (PyTorch reference)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--hidden-dim", type=int)
    ap.add_argument("--num-layers", type=int)
    ap.add_argument("--num-heads", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--num-features", type=int, default=16)
    ap.add_argument("--num-horizons", type=int, default=4)
    ap.add_argument("--num-bins", type=int, default=10)
    ap.add_argument("--dropout", type=float, default=0.15, help="dropout used in train mode")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--mode", choices=["score", "train", "both"], default="both")
    ap.add_argument("--batch", type=int, help="batch size (default: score 64, train 32)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (meant for cuda)")
    ap.add_argument("--compile", action="store_true", help="torch.compile (PyTorch 2.x only)")
    ap.add_argument("--attn", choices=["auto", "sdpa", "math"], default="auto",
                    help="attention kernel: auto = SDPA where available")
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default",
                    help="AdamW implementation (fused: cuda + torch 2.x)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2,
                    help="CPU threads: libtorch intra-op; inter-op is set to 1")
    ap.add_argument("--checkpoint", help="satrain .pt: use its weights and config")
    ap.add_argument("--peak-tflops", type=float, help="peak for MFU (default: known bf16 peak of the GPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement on stdout")
    return ap.parse_args(argv)


def set_thread_policy(n):
    """libtorch's intra-op pool to n, inter-op to 1: satrain's thread policy. The wheel's BLAS is MKL, which
    runs on the intra-op (OpenMP) threads, so there is no third pool to size."""
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already started; reported in the results
    torch.set_num_threads(n)


def resolve_peak(args):
    if args.peak_tflops:
        return args.peak_tflops, "user"
    if args.device == "cuda" and args.amp:
        name = torch.cuda.get_device_name()
        for key, val in KNOWN_PEAKS_BF16:
            if key in name:
                return val, "bf16 dense peak of %s" % key
    return None, None


def build_model(args):
    """-> (model, cfg dict, bin_centers) on args.device."""
    dev = torch.device(args.device)
    if args.checkpoint:
        model, ckpt = load_checkpoint(args.checkpoint, map_location="cpu")
        cfg = dict(model.config)
        ck_cfg = ckpt.get("config") or {}
        seq = args.seq_len or int(ck_cfg.get("seq_len", PRESETS[args.preset]["seq_len"]))
        cfg["seq_len"] = seq
        centers = ckpt.get("bin_centers")
        if centers is None:
            centers = torch.linspace(-0.1, 0.1, cfg["num_bins"]).repeat(cfg["num_horizons"], 1)
        # keep the weights, apply the requested train-time dropout
        for mod in model.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = args.dropout
        cfg["dropout"] = args.dropout
    else:
        cfg = dict(PRESETS[args.preset])
        for k in ("hidden_dim", "num_layers", "num_heads", "seq_len"):
            v = getattr(args, k)
            if v is not None:
                cfg[k] = v
        cfg.update(num_features=args.num_features, num_horizons=args.num_horizons,
                   num_bins=args.num_bins, dropout=args.dropout)
        torch.manual_seed(args.seed)
        model = SatrainModel(cfg["num_features"], cfg["hidden_dim"], cfg["num_layers"], cfg["num_heads"],
                             cfg["num_horizons"], cfg["num_bins"], cfg["dropout"],
                             max_seq_len=cfg["seq_len"])
        centers = torch.linspace(-0.1, 0.1, cfg["num_bins"]).repeat(cfg["num_horizons"], 1)
    if model.pe.shape[0] < cfg["seq_len"]:
        model(torch.zeros(1, cfg["seq_len"], cfg["num_features"]))  # grow the position table once
    if args.attn != "auto":
        model.set_attention_impl(args.attn == "sdpa")
    return model.to(dev), cfg, centers.to(dev)


class Timer:
    """Per-iteration wall times in ms (CUDA events on GPU)."""

    def __init__(self, device):
        self.cuda = device == "cuda"

    def run(self, fn, iters, warmup):
        for _ in range(warmup):
            fn()
        self.sync()
        times, self.cpu = [], []
        for _ in range(iters):
            c0 = time.process_time()
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            self.cpu.append((time.process_time() - c0) * 1e3)
        return times

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


def autocast_ctx(args):
    if not args.amp:
        return torch.autocast(args.device, enabled=False)
    return torch.autocast(args.device, dtype=torch.bfloat16)


def bench_one(mode, args, model, cfg, centers, peak):
    dev = torch.device(args.device)
    batch = args.batch or (64 if mode == "score" else 32)
    s, nf, nh_, nb = cfg["seq_len"], cfg["num_features"], cfg["num_horizons"], cfg["num_bins"]
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(batch, s, nf, generator=g).to(dev)
    y = torch.randint(0, nb, (batch, nh_), generator=g).to(dev)
    w = (torch.rand(batch, generator=g) + 0.5).to(dev)
    fwd = torch.compile(model) if args.compile else model
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    if mode == "score":
        model.eval()
        out = {}

        def step():
            with torch.inference_mode(), autocast_ctx(args):
                out["er"] = expected_return(fwd(x), centers)
    else:
        model.train()
        kw = {}
        if args.adamw != "default":
            kw[args.adamw] = True
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.01, **kw)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast_ctx(args):
                logits = fwd(x)
            loss = loss_fn(logits.float(), y, w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    timer = Timer(args.device)
    timer.run(step, 0, args.warmup)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    times = timer.run(step, args.iters, 0)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    med = statistics.median(times)
    n_mm = count_matmul_parameters(model)
    flops_seq = forward_flops_per_sequence(n_mm, s, cfg["hidden_dim"], cfg["num_layers"])
    if mode == "train":
        flops_seq *= 3
    seq_per_s = batch / (med / 1e3)
    tflops = flops_seq * seq_per_s / 1e12
    res = {
        "bench": "model", "impl": "pytorch", "mode": mode, "preset": args.preset,
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__, "precision": "bf16-autocast" if args.amp else "fp32",
        "compile": bool(args.compile), "attn": "sdpa" if model.layers[0].attn.use_sdpa else "math",
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "sequences_per_s_mean": batch * len(times) / (sum(times) / 1e3),
        "minor_faults": ru1.ru_minflt - ru0.ru_minflt,
        "cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "batch": batch, "seq_len": s, "hidden_dim": cfg["hidden_dim"], "num_layers": cfg["num_layers"],
        "num_heads": cfg["num_heads"], "num_features": nf, "num_horizons": nh_, "num_bins": nb,
        "params": count_parameters(model), "matmul_params": n_mm,
        "iters": args.iters, "warmup": args.warmup,
        "ms_per_batch": med, "ms_min": min(times), "ms_max": max(times),
        "cpu_ms_per_batch": statistics.median(timer.cpu),
        "sequences_per_s": seq_per_s, "flops_per_sequence": flops_seq, "tflops": tflops,
        "peak_tflops": peak, "mfu": (tflops / peak) if peak else None,
        "peak_mem_bytes": torch.cuda.max_memory_allocated() if args.device == "cuda" else None,
        "checkpoint": bool(args.checkpoint),
    }
    return res


def fmt_table(rows):
    cols = [("mode", "%s"), ("device", "%s"), ("precision", "%s"), ("compile", "%s"), ("batch", "%d"),
            ("seq_len", "%d"), ("hidden_dim", "%d"), ("num_layers", "%d"), ("ms_per_batch", "%.2f"),
            ("sequences_per_s", "%.1f"), ("tflops", "%.3f"), ("mfu", "%.3f"), ("peak_mem_gib", "%.2f")]
    lines = []
    body = []
    for r in rows:
        r = dict(r)
        r["peak_mem_gib"] = r["peak_mem_bytes"] / 2 ** 30 if r.get("peak_mem_bytes") else None
        if "error" in r:
            body.append([str(r.get(c, "")) for c, _ in cols[:2]] + ["ERROR: " + r["error"]])
            continue
        body.append([("-" if r.get(c) is None else f % r[c]) for c, f in cols])
    heads = [c for c, _ in cols]
    widths = [max([len(h)] + [len(b[i]) for b in body if i < len(b)]) for i, h in enumerate(heads)]
    lines.append("  ".join(h.rjust(wd) for h, wd in zip(heads, widths)))
    for b in body:
        lines.append("  ".join(v.rjust(wd) for v, wd in zip(b, widths)) if len(b) == len(heads) else "  ".join(b))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("model_bench: error: CUDA is not available", file=sys.stderr)
        return 2
    set_thread_policy(args.threads)
    if args.adamw == "fused" and args.device != "cuda":
        print("model_bench: fused AdamW needs cuda; using default", file=sys.stderr)
        args.adamw = "default"
    peak, peak_src = resolve_peak(args)
    model, cfg, centers = build_model(args)
    modes = ["score", "train"] if args.mode == "both" else [args.mode]
    rows = []
    for mode in modes:
        try:
            res = bench_one(mode, args, model, cfg, centers, peak)
        except RuntimeError as e:   # includes torch.cuda.OutOfMemoryError
            msg = str(e).split("\n")[0]
            res = {"bench": "model", "mode": mode, "device": args.device, "error": msg[:300]}
            if args.device == "cuda":
                torch.cuda.empty_cache()
        res["peak_source"] = peak_src
        rows.append(res)
        if args.json:
            print(json.dumps(res), flush=True)
    table = fmt_table(rows)
    print(table, file=sys.stderr if args.json else sys.stdout)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
