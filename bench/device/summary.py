"""summary.py RAW: the table bench/device/run.sh prints last, from the raw files of one run (standard library only).

Per issue 26 goal: scoring seq/s and MFU of every satrain variant against PyTorch eager and torch.compile,
training seq/s, the FP8 cascade (containment, equal sets, pass speed-up), the iteration's phase seconds
(checkpoint: the time training waited), the test binary's verdicts and its benchmarks.
"""
import json
import os
import re
import statistics
import sys


def lines(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def satrain_label(r):
    label = "satrain"
    if r.get("fused_gelu") or r.get("fused_adamw"):
        label += "+fused"
    if r.get("cuda_graphs"):
        label += "+graphs"
    return label


def perf(raw):
    rows = []  # (mode, impl, seq/s, mfu)
    for r in lines(os.path.join(raw, "satrain_bench.jsonl")):
        rows.append((r["mode"], satrain_label(r), r.get("seq_per_s"), r.get("mfu")))
    for name in ("eager", "compile"):
        for r in lines(os.path.join(raw, "pytorch_%s.jsonl" % name)):
            rows.append((r["mode"], "pytorch " + name, r.get("sequences_per_s"), r.get("mfu")))
    if not rows:
        print("scoring and training: no results")
        return
    ref = {(m, i): s for m, i, s, _ in rows}
    print("%-6s %-22s %10s %7s %9s %11s" % ("mode", "implementation", "seq/s", "MFU", "/ eager", "/ compile"))
    for mode, impl, sps, mfu in rows:
        eager, comp = ref.get((mode, "pytorch eager")), ref.get((mode, "pytorch compile"))
        print("%-6s %-22s %10.1f %7s %9s %11s" % (
            mode, impl, sps or 0, "%.1f%%" % (100 * mfu) if mfu else "-",
            "%.3f" % (sps / eager) if sps and eager else "-", "%.3f" % (sps / comp) if sps and comp else "-"))
    print("goals: scoring >= 1.05x compile and >= 62% MFU; training >= 1.0x compile")


def cascade(raw, name, title):
    its = lines(os.path.join(raw, name + ".jsonl"))
    if not its:
        print("%s: no results" % title)
        return
    n = len(its)
    contained = sum(1 for r in its if r["contained"] == r["k"])
    same = sum(1 for r in its if r["same_set"])
    equal = sum(1 for r in its if r["equal"])
    cheap = statistics.median(r["cheap_s"] for r in its)
    ref = statistics.median(r["reference_s"] for r in its)
    resc = statistics.median(r["rescore_s"] for r in its)
    min_m = max(r["min_m"] for r in its)
    print("%s: %d iterations of %d sequences, k %d, M %d" % (title, n, its[-1]["sample"], its[-1]["k"], its[-1]["m"]))
    print("  bf16 top-k inside the FP8 top-M: %d of %d; selected sets equal: %d of %d (in order: %d of %d); worst M needed %d"
          % (contained, n, same, n, equal, n, min_m))
    print("  pass s (median): fp8 %.3f, bf16 %.3f, rescoring %.3f; bf16/fp8 pass %.2fx, cascade %.2fx (goal >= 1.6x, 100%%)"
          % (cheap, ref, resc, ref / cheap if cheap else 0, ref / (cheap + resc) if cheap + resc else 0))


def iteration(raw, name):
    recs = lines(os.path.join(raw, name + ".metrics.jsonl"))
    if not recs:
        print("%s: no metrics.jsonl" % name)
        return
    for r in recs:
        ph = r.get("phase_seconds") or {}
        print("%s %d: %.2f s; %s" % (name, r.get("iteration", 0), r.get("iteration_seconds") or 0,
                                     ", ".join("%s %.3f" % (k, v) for k, v in sorted(ph.items()))))
    print("  goal: checkpoint (the time training waits for both files) < 0.5 s")


def tests(raw):
    path = os.path.join(raw, "tests.log")
    if not os.path.exists(path):
        print("tests: no log")
        return
    text = open(path).read()
    verdicts = re.findall(r"^--- (PASS|FAIL|SKIP): (\S+)", text, re.M)
    count = {v: [n for w, n in verdicts if w == v] for v in ("PASS", "FAIL", "SKIP")}
    print("tests: %d passed, %d failed %s, %d skipped %s" % (
        len(count["PASS"]), len(count["FAIL"]), count["FAIL"] or "", len(count["SKIP"]), count["SKIP"] or ""))
    bpath = os.path.join(raw, "benchmarks.log")
    if os.path.exists(bpath):
        for line in open(bpath):
            if line.startswith("Benchmark"):
                print("  " + " ".join(line.split()))


def main():
    raw = sys.argv[1]
    tests(raw)
    print()
    perf(raw)
    print()
    for r in lines(os.path.join(raw, "agreement.jsonl")):
        print("agreement:", json.dumps(r))
    cascade(raw, "fp8_contain", "FP8 containment (trained medium checkpoint)")
    cascade(raw, "fp8_default", "FP8 pass speed (the iteration's best model: the default preset on the GPU)")
    print()
    iteration(raw, "iteration")
    if os.path.exists(os.path.join(raw, "nccl.metrics.jsonl")):
        iteration(raw, "nccl")


if __name__ == "__main__":
    main()
