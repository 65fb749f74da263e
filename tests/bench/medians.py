#!/usr/bin/env python3
"""Medians of kzbench runs: reads JSON lines (tests/bench/run-all.sh) and prints a Markdown
table row per scenario, server and parameters."""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    key = (d["scenario"], d["server"], json.dumps(d["params"], ensure_ascii=False, sort_keys=True))
    runs[key].append(d)

def med(rows, *path):
    vals = []
    for r in rows:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None

def fmt(v, digits=1):
    return "" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}")

print("| scenario | server | params | runs | delivered/s | acked/s | p50 ms | p99 ms | CPU µs/msg | KiB/conn | report ms | peak RSS KiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (scen, server, params), rows in sorted(runs.items()):
    print(f"| {scen} | {server} | `{params}` | {len(rows)} | {fmt(med(rows, 'delivered_per_s'), 0)} "
          f"| {fmt(med(rows, 'acked_per_s'), 0)} | {fmt(med(rows, 'latency_ms', 'p50'), 2)} "
          f"| {fmt(med(rows, 'latency_ms', 'p99'), 2)} | {fmt(med(rows, 'server_cpu_us_per_msg'), 2)} "
          f"| {fmt(med(rows, 'server_kib_per_conn'), 2)} | {fmt(med(rows, 'report_ms', 'median'), 1)} "
          f"| {fmt(med(rows, 'server_peak_rss_kib'), 0)} |")
