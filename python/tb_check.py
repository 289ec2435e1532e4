"""Reads a satrain run's TensorBoard event files with TensorBoard's own reader
and checks every scalar and step against the run's metrics.jsonl.

    python python/tb_check.py SAVE_DIR [--tensorboard DIR] [--killed] [--json]

The expected TensorBoard value of each metrics.jsonl field, at step =
iteration, is the field rounded to float32 (TensorBoard's simple_value); a
field listed in non_finite must read back as NaN or an infinity. Every
(tag, step) must appear exactly once over all the folder's files (read raw,
before TensorBoard's accumulator could hide a duplicate), and the
accumulator must show the same set.

--killed: the run was killed. Its last metrics.jsonl record may be missing
from the event files (metrics.jsonl is written first), and the last step in
the event files may lack the values of the record the kill cut: those are
listed under "missing_last" instead of failing.

Prints the scalars read back (tag -> [[step, value], ...]) and the findings as
JSON with --json; exits 1 when a check fails.
"""

import argparse
import glob
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected(records):
    """(tag, step) -> float, or None for a value that must not be finite."""
    out = {}
    fields = [
        ("train_loss", "loss/train"),
        ("val_loss", "loss/validation"),
        ("best_val_loss", "loss/best_validation"),
        ("lr", "learning_rate"),
        ("er_mean", "expected_return/mean"),
        ("er_median", "expected_return/median"),
        ("topk_er_mean", "expected_return/topk_mean"),
        ("topk_er_min", "expected_return/topk_min"),
        ("selected_overlap", "selection/overlap"),
        ("iteration_seconds", "iteration_seconds"),
        ("device_memory_peak_bytes", "device_memory/peak_bytes"),
    ]
    for r in records:
        step = r["iteration"]
        non_finite = set(r.get("non_finite") or [])
        for key, tag in fields:
            if key in non_finite:
                out[(tag, step)] = None
            elif r.get(key) is not None:
                out[(tag, step)] = f32(r[key])
        for phase, sec in (r.get("phase_seconds") or {}).items():
            out[("phase_seconds/" + phase, step)] = f32(sec)
        for phase, rate in (r.get("sequences_per_second") or {}).items():
            out[("sequences_per_second/" + phase, step)] = f32(rate)
    return out


def read_raw(tb_dir):
    """Every scalar of every event file in name order, with its file."""
    scalars, hists, files = [], {}, sorted(
        f for f in glob.glob(os.path.join(tb_dir, "*")) if "tfevents" in os.path.basename(f))
    for path in files:
        # The raw loader: the parsed one rewrites simple_value as a tensor.
        for rec in event_file_loader.RawEventFileLoader(path).Load():
            ev = event_pb2.Event.FromString(rec)
            for v in ev.summary.value:
                if v.HasField("histo"):
                    hists.setdefault(ev.step, []).append(v.histo)
                elif v.HasField("simple_value"):
                    scalars.append((v.tag, ev.step, v.simple_value, os.path.basename(path)))
    return scalars, hists, files


def check(save_dir, tb_dir, killed):
    with open(os.path.join(save_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    errors, missing_last = [], []
    raw, hists, files = read_raw(tb_dir)
    if not files:
        errors.append("no event files in %s" % tb_dir)
    seen = {}
    for tag, step, value, fname in raw:
        if (tag, step) in seen:
            errors.append("%s at step %d written twice (%s and %s)" % (tag, step, seen[(tag, step)][1], fname))
        seen[(tag, step)] = (value, fname)

    acc = event_accumulator.EventAccumulator(tb_dir, size_guidance={event_accumulator.SCALARS: 0,
                                                                    event_accumulator.HISTOGRAMS: 0})
    acc.Reload()
    read = {}
    for tag in acc.Tags()["scalars"]:
        for s in acc.Scalars(tag):
            read[(tag, s.step)] = s.value
    if set(read) != set(seen):
        errors.append("the accumulator and the raw files disagree on %s" % sorted(set(read) ^ set(seen))[:10])

    want = expected(records)
    tb_steps = sorted({step for _, step in read})
    last_tb = tb_steps[-1] if tb_steps else None
    if killed and records and (last_tb is None or records[-1]["iteration"] > last_tb):
        # Killed between the metrics.jsonl line and the event records.
        want = {k: v for k, v in want.items() if k[1] != records[-1]["iteration"]}
    for key, w in sorted(want.items()):
        tag, step = key
        if key not in read:
            if killed and step == last_tb:
                missing_last.append("%s@%d" % key)
            else:
                errors.append("%s at step %d: in metrics.jsonl, not in TensorBoard" % key)
            continue
        got = read[key]
        if w is None:
            if math.isfinite(got):
                errors.append("%s at step %d = %r, want a non-finite value" % (tag, step, got))
        elif got != w:
            errors.append("%s at step %d = %r, metrics.jsonl has %r" % (tag, step, got, w))
    for tag, step in sorted(read):
        if (tag, step) in want:
            continue
        # metrics.jsonl records the peak, not the allocated bytes.
        if tag == "device_memory/allocated_bytes" and ("device_memory/peak_bytes", step) in want:
            continue
        errors.append("%s at step %d: in TensorBoard, not in metrics.jsonl" % (tag, step))
    for r in records:
        step = r["iteration"]
        if r.get("er_mean") is None or (killed and step >= (last_tb or 0)):
            continue
        hs = hists.get(step, [])
        if len(hs) != 1 or sum(hs[0].bucket) != hs[0].num or hs[0].num <= 0:
            errors.append("step %d: want one histogram of the selected set, got %r" % (step, hs))
    scalars = {}
    for (tag, step), v in sorted(read.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        scalars.setdefault(tag, []).append([step, v])
    return {"files": [os.path.basename(f) for f in files], "steps": tb_steps, "scalars": scalars,
            "histogram_steps": sorted(hists), "missing_last": missing_last, "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("save_dir")
    ap.add_argument("--tensorboard", help="the event files' folder (default: SAVE_DIR/tensorboard)")
    ap.add_argument("--killed", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = check(a.save_dir, a.tensorboard or os.path.join(a.save_dir, "tensorboard"), a.killed)
    if a.json:
        json.dump(res, sys.stdout)
        print()
    else:
        for tag, pts in res["scalars"].items():
            print("%-36s %s" % (tag, " ".join("%d:%.6g" % (s, v) for s, v in pts)))
        for e in res["errors"]:
            print("ERROR:", e)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
