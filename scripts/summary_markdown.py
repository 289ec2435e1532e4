#!/usr/bin/env python3
"""Print a compare folder's summary.json as the Markdown tables of docs/RESULTS.md.

Usage: scripts/summary_markdown.py COMPARE_OUT [REFERENCE_ARM]

Tables: each arm's per-date metrics over seeds and dates with their 95%
intervals (summary.json arms[].intervals); the paired differences of every
arm against REFERENCE_ARM (default standard) and of selection_aware against
random (summary.json paired; * = the interval excludes 0); and the arms'
scalar means ± std over seeds for the exposure figures. Values are printed
in the units of the console (bps for returns).
"""
import json
import sys

METRICS = ["topk.excess", "precision.vol_matched_excess", "precision.group_neutral_excess",
           "ic.mean", "rank_ic.mean", "residual_rank_ic.mean"]
SCALARS = ["exposure.beta", "exposure.rel_vol", "exposure.score_vol_rank_corr",
           "exposure.sigma_matched_excess", "exposure.score_sigma_rank_corr",
           "strategy.sharpe_annualized", "excess.ann_return"]


def fmt(v, unit):
    if unit in ("return",):
        return f"{v * 1e4:+.1f}"
    if unit == "gross":
        return f"{(v - 1) * 1e4:+.1f}"
    if unit == "percent":
        return f"{v * 100:+.2f}"
    if unit == "corr":
        return f"{v:+.4f}"
    return f"{v:+.2f}"


def label(m, unit):
    return m + (" (bps)" if unit in ("return", "gross") else " (%)" if unit == "percent" else "")


def cell(d):
    star = " *" if d.get("distinguished") else ""
    u = d["unit"]
    return f"{fmt(d['mean'], u)} [{fmt(d['ci95']['lo'], u)}, {fmt(d['ci95']['hi'], u)}]{star}"


def main():
    out = sys.argv[1]
    ref = sys.argv[2] if len(sys.argv) > 2 else "standard"
    s = json.load(open(f"{out}/summary.json"))
    arms = [a["arm"] for a in s["arms"]]
    units = {}
    for a in s["arms"]:
        for d in a.get("intervals") or []:
            units[d["metric"]] = d["unit"]
    ms = [m for m in METRICS if m in units]
    print("`*`: the 95% interval excludes 0.\n")
    print("| arm | " + " | ".join(label(m, units[m]) for m in ms) + " | seeds | dates |")
    print("|---" * (len(ms) + 3) + "|")
    for a in s["arms"]:
        iv = {d["metric"]: d for d in a.get("intervals") or []}
        row = [cell(iv[m]) if m in iv else "n/a" for m in ms]
        n = max((d["seeds"] for d in iv.values()), default=0)
        dates = max((d["dates"] for d in iv.values()), default=0)
        print(f"| {a['arm']} | " + " | ".join(row) + f" | {n} | {dates} |")
    print()
    pairs = [(a, ref) for a in arms if a != ref]
    if "selection_aware" in arms and "random" in arms:
        pairs.append(("selection_aware", "random"))
    print("| A − B | " + " | ".join(label(m, units[m]) for m in ms) + " | seeds | dates |")
    print("|---" * (len(ms) + 3) + "|")
    for a, b in pairs:
        row = []
        n = dates = 0
        for m in ms:
            d = next((p for p in s.get("paired") or [] if p["metric"] == m and {p["a"], p.get("b")} == {a, b}), None)
            if d is None:
                row.append("n/a")
                continue
            if d["a"] != a:  # stored as b - a: flip
                d = dict(d, mean=-d["mean"], ci95={"lo": -d["ci95"]["hi"], "hi": -d["ci95"]["lo"]})
            row.append(cell(d))
            n, dates = max(n, d["seeds"]), max(dates, d["dates"])
        print(f"| {a} − {b} | " + " | ".join(row) + f" | {n} | {dates} |")
    print()
    present = [m for m in SCALARS if any(x["name"] == m for a in s["arms"] for x in a["metrics"])]
    unit_of = {x["name"]: x["unit"] for a in s["arms"] for x in a["metrics"]}
    print("| arm | " + " | ".join(label(m, unit_of[m]) for m in present) + " |")
    print("|---" * (len(present) + 1) + "|")
    for a in s["arms"]:
        by = {x["name"]: x for x in a["metrics"]}
        row = []
        for m in present:
            x = by.get(m)
            row.append("n/a" if x is None else f"{fmt(x['mean'], x['unit'])} ± {fmt(x['std'], x['unit']).lstrip('+')}")
        print(f"| {a['arm']} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
