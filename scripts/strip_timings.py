"""Reads JSON or JSON lines on stdin, writes them with wall-clock fields
removed (keys named time, *_time, *_seconds, *seconds*, started/finished
stamps, rates, the run id), keys sorted: what scripts/same_run.sh compares between two builds."""
import json
import sys


def timing(key):
    k = key.lower()
    return k in ("time", "started", "finished", "elapsed", "wall_s", "run_id", "sequences_per_second") or k.endswith("_time") or "seconds" in k or k.endswith("_s")


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if not timing(k)}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


text = sys.stdin.read()
try:
    docs = [json.loads(text)]
except json.JSONDecodeError:
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
for d in docs:
    print(json.dumps(strip(d), sort_keys=True))
