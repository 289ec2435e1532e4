#!/usr/bin/env python3
"""Rank IC of the import-csv volume features against a factor only the future knows.

Issue 23, item 1: a vendor's adjusted close is the close times every later
split and dividend factor, so f = log(close / adj_close) on day d is known
only after d. A feature built from it (the old `logvol`, log(1 + volume *
close / adj_close)) carries that future; the new `logdollarvol`,
log(1 + close * volume) from raw prices, is known at the close of d.

For each feature this prints the per-date Spearman rank correlation with f
across tickers, averaged over dates, with its t-statistic (mean / std *
sqrt(dates)); and, as context, the rank IC of f itself against the forward
20-day return (adjusted closes, the panel's label), with a t-statistic from
every 20th date (non-overlapping windows) beside the all-dates one.

Run:  .venv/bin/python scripts/volume_leak_ic.py ../shared/data/sp500-daily
Needs numpy only. The features use the importer's formulas on each file's
rows as given (no day axis, no repairs); the figures are rank statistics,
so the importer's standardisation does not change them.
"""
import csv
import glob
import os
import sys

import numpy as np

MIN_TICKERS = 30  # dates with fewer tickers having both values are skipped


def read_file(path):
    """Date, close, adjusted close, volume of one per-ticker CSV, or None."""
    with open(path, newline="") as f:
        r = csv.reader(f)
        try:
            head = [h.strip().lower() for h in next(r)]
        except StopIteration:
            return None
        col = {}
        for k, h in enumerate(head):
            if h in ("date", "timestamp"):
                col["date"] = k
            elif h == "close":
                col["close"] = k
            elif h in ("adj close", "adjusted_close", "adj_close", "adjclose", "adjusted close"):
                col["adj"] = k
            elif h == "volume":
                col["volume"] = k
        if len(col) < 4:
            return None
        rows = {}
        for rec in r:
            try:
                d = int(rec[col["date"]][:10].replace("-", ""))
                c, a, v = float(rec[col["close"]]), float(rec[col["adj"]]), float(rec[col["volume"]])
            except (ValueError, IndexError):
                continue
            if c > 0 and a > 0 and v >= 0 and d not in rows:
                rows[d] = (c, a, v)
    if len(rows) < 250:
        return None
    days = sorted(rows)
    arr = np.array([rows[d] for d in days])
    return np.array(days), arr[:, 0], arr[:, 1], arr[:, 2]


def rel20(x):
    """x minus its mean over the 20 rows ending at each row (NaN before)."""
    out = np.full_like(x, np.nan)
    cs = np.cumsum(np.insert(x, 0, 0.0))
    out[19:] = x[19:] - (cs[20:] - cs[:-20]) / 20
    return out


def rank_ic(x, y):
    """Per-date Spearman correlation of rows of x and y (dates x tickers)."""
    ics = np.full(x.shape[0], np.nan)
    for i in range(x.shape[0]):
        m = np.isfinite(x[i]) & np.isfinite(y[i])
        if m.sum() < MIN_TICKERS:
            continue
        rx = np.argsort(np.argsort(x[i, m])).astype(float)
        ry = np.argsort(np.argsort(y[i, m])).astype(float)
        ics[i] = np.corrcoef(rx, ry)[0, 1]
    return ics


def summary(ics, step=1):
    v = ics[::step]
    v = v[np.isfinite(v)]
    return v.mean(), v.mean() / v.std(ddof=1) * np.sqrt(len(v)), len(v)


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sp500-daily"
    series = {}
    for p in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        if os.path.basename(p).lower() == "constituents.csv":
            continue
        s = read_file(p)
        if s is not None:
            series[p] = s
    dates = np.unique(np.concatenate([s[0] for s in series.values()]))
    D, T = len(dates), len(series)
    shape = (D, T)
    future, old_v, new_v, old_r, new_r, fwd20 = (np.full(shape, np.nan) for _ in range(6))
    for t, (d, c, a, v) in enumerate(series.values()):
        i = np.searchsorted(dates, d)
        future[i, t] = np.log(c / a)
        lv_old = np.log1p(v * c / a)  # volume divided by adj/close
        lv_new = np.log1p(c * v)      # raw dollar volume
        old_v[i, t], new_v[i, t] = lv_old, lv_new
        old_r[i, t], new_r[i, t] = rel20(lv_old), rel20(lv_new)
        f = np.full(len(a), np.nan)
        f[:-20] = a[20:] / a[:-20] - 1
        fwd20[i, t] = f
    print(f"{folder}: {T} tickers, {D} dates ({dates[0]}..{dates[-1]})")
    print("rank IC against the future-only factor log(close/adj_close), per-date Spearman averaged:")
    for name, x in [("logvol (old: log1p(volume*close/adj))", old_v),
                    ("logdollarvol (new: log1p(close*volume))", new_v),
                    ("logvol_rel20 (old)", old_r),
                    ("logdollarvol_rel20 (new)", new_r)]:
        m, tstat, n = summary(rank_ic(x, future))
        print(f"  {name:42s} IC {m:+.4f}  t {tstat:7.1f}  dates {n}")
    ics = rank_ic(future, fwd20)
    print("rank IC of log(close/adj_close) against the forward 20-day return (t over all dates, overlapping;"
          " t20 over every 20th date):")
    # periods: the panel's default train / val / test split of this folder
    for label, lo, hi in [("all dates", 0, 99999999), ("before 2014-11-11", 0, 20141111),
                          ("2014-11-11..2018-01-30", 20141111, 20180131), ("from 2018-01-31", 20180131, 99999999)]:
        sel = ics.copy()
        sel[(dates < lo) | (dates >= hi)] = np.nan
        sel = sel[np.isfinite(sel)]
        m, tstat, n = summary(sel)
        _, t20, _ = summary(sel, 20)
        print(f"  {label:24s} IC {m:+.4f}  t {tstat:5.1f}  t20 {t20:5.1f}  dates {n}")


if __name__ == "__main__":
    main()
