#!/usr/bin/env python3
"""Tabulates what bench.sh measured: python3 comparisons/rwlock-rooms/summary.py [OUT_DIR]."""

import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cmp-bench")


def load(name):
    path = out / name
    if not path.exists() or not path.read_text().strip():
        return None
    try:
        return json.loads(path.read_text().strip().splitlines()[-1])
    except json.JSONDecodeError:
        return {"unreadable": path.read_text()[:200]}


def uptime(name):
    path = out / f"{name}.uptime"
    return path.read_text().split("load average:")[-1].strip() if path.exists() else "?"


def row(run, name):
    r = load(f"{run}-{name}.json")
    if r is None:
        return f"| {run} | {name} | (no report) |"
    cores = lambda v: "?" if v is None else f"{v:.2f}"
    return (
        f"| {run} | {name} | {r['connected']}/{r['clients']} | {r['deliveries_per_sec'] / 1e6:.3f} M "
        f"| {r['lost']} | {r['p50_us'] / 1000:.2f} / {r['p99_us'] / 1000:.2f} ms "
        f"| {r['disconnects']} | {cores(r.get('server_cpu'))} | {cores(r.get('other_cpu'))} "
        f"| {r['bound']} | {uptime(f'{run}-{name}')} |"
    )


print("| run | server | connected | deliveries/s | lost | p50 / p99 | disconnects "
      "| server cores | other cores | bound | load avg before |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---|---|")
for run in ["s1", "s2", "s3"]:
    for name in ["ch09", "cmp", "cmp-batch"]:
        print(row(run, name))
for name in ["ch09", "cmp"]:
    print(row("churn-s1", name))
for name in ["ch09", "cmp", "cmp-hold"]:
    print(row("hold", name))
print()
print("stats after s3:")
for name in ["ch09", "cmp", "cmp-batch"]:
    print(f"  {name}: {load(f's3-{name}.stats.json')}")
print()
print("churn (4 clients renaming and changing rooms, one command at a time each):")
for label, file in [
    ("ch09 alone", "churn-ch09.json"),
    ("cmp alone", "churn-cmp.json"),
    ("ch09 during s1", "churn-s1-ch09.churn.json"),
    ("cmp during s1", "churn-s1-cmp.churn.json"),
    ("ch09 with a stalled /who client", "hold-ch09.churn.json"),
    ("cmp with a stalled /who client", "hold-cmp.churn.json"),
    ("cmp --hold-lock-across-await, stalled /who client", "hold-cmp-hold.churn.json"),
]:
    print(f"  {label}: {load(file)}")
print()
print("stats after churn:")
for name in ["churn-ch09", "churn-cmp", "churn-s1-ch09", "churn-s1-cmp"]:
    print(f"  {name}: {load(f'{name}.stats.json')}")
print()
print("stats around the stalled /who client:")
for name in ["ch09", "cmp", "cmp-hold"]:
    print(f"  {name}: before {load(f'hold-{name}.before.stats.json')}, "
          f"after {load(f'hold-{name}.after.stats.json')}, "
          f"stall client {load(f'hold-{name}.stall.json')}")
