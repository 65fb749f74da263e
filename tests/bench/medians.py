#!/usr/bin/env python3
"""Medians of kzbench runs: reads JSON lines (tests/bench/run-all.sh) and prints a Markdown
table row per scenario, server and parameters. Lines of the independent client
(tests/bench/indep/, "client": "node-indep") are kept apart from kzbench's, and `rooms` gets a
second table that sets the two clients side by side."""
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
    server = d["server"] + ("" if d.get("client", "kzbench") == "kzbench" else f" ({d['client']})")
    key = (d["scenario"], server, json.dumps(d["params"], ensure_ascii=False, sort_keys=True))
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

# rooms: both clients side by side, per rate. Latency runs from each message's scheduled send
# time; "lag p99" is how late the generator's own sends left (already inside the latency).
rooms = sorted(((server, params, rows) for (scen, server, params), rows in runs.items()
                if scen == "rooms"),
               key=lambda t: (json.loads(t[1]).get("rate_per_member", 0), t[0]))
if rooms:
    print()
    print("| rate/member | server (client) | runs | offered/s | delivered/s | delivered | p50 ms | p95 ms "
          "| p99 ms | max ms | CPU µs/delivered | generator lag p99 ms | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for server, params, rows in rooms:
        frac = med(rows, "delivered_fraction")
        loads = [r["loadavg"][0] for r in rows if isinstance(r.get("loadavg"), list)]
        load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else ""
        print(f"| {json.loads(params).get('rate_per_member')} | {server} | {len(rows)} "
              f"| {fmt(med(rows, 'offered_per_s'), 0)} | {fmt(med(rows, 'delivered_per_s'), 0)} "
              f"| {'' if frac is None else f'{frac * 100:.2f}%'} "
              f"| {fmt(med(rows, 'latency_ms', 'p50'), 1)} | {fmt(med(rows, 'latency_ms', 'p95'), 1)} "
              f"| {fmt(med(rows, 'latency_ms', 'p99'), 1)} | {fmt(med(rows, 'latency_ms', 'max'), 1)} "
              f"| {fmt(med(rows, 'server_cpu_us_per_msg'), 1)} | {fmt(med(rows, 'send_lag_ms', 'p99'), 1)} "
              f"| {load} |")

# notify: the roll-call flood (pushes to a stand-in), and the talk of a small room through it.
notify = sorted(((params, rows) for (scen, server, params), rows in runs.items() if scen == "notify"),
                key=lambda t: tuple(json.loads(t[0]).get(k, 0) for k in
                                    ("channel", "kind", "service_delay_ms", "push_concurrency",
                                              "mail_concurrency", "recipients")))
if notify:
    print()
    print("| channel | kind | recipients | service delay ms | concurrency | runs | notice.post ms | all pushes in, s "
          "| pushes/s | talk p50 / p99 / max ms, before | ... during | CPU µs/push | RSS before → after KiB "
          "| peak RSS KiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for params, rows in notify:
        p = json.loads(params)
        mail = p.get("channel") == "mail"
        conc = p.get("mail_concurrency") if mail else p["push_concurrency"]
        print(f"| {p.get('channel', 'push')} | {p.get('kind', 'rollcall')} | {p['recipients']:,} "
              f"| {p['service_delay_ms']} | {conc or 'default'} "
              f"| {len(rows)} | {fmt(med(rows, 'post_ms'), 1)} | {fmt(med(rows, 'all_pushes_ms') / 1000, 2)} "
              f"| {fmt(med(rows, 'pushes_per_s'), 0)} "
              f"| {fmt(med(rows, 'talk_ms_before', 'p50'), 1)} / {fmt(med(rows, 'talk_ms_before', 'p99'), 1)} "
              f"/ {fmt(med(rows, 'talk_ms_before', 'max'), 1)} "
              f"| {fmt(med(rows, 'talk_ms_during', 'p50'), 1)} / {fmt(med(rows, 'talk_ms_during', 'p99'), 1)} "
              f"/ {fmt(med(rows, 'talk_ms_during', 'max'), 1)} "
              f"| {fmt(med(rows, 'server_cpu_us_per_push'), 0)} "
              f"| {fmt(med(rows, 'server_rss_before_kib'), 0)} → {fmt(med(rows, 'server_rss_after_kib'), 0)} "
              f"| {fmt(med(rows, 'server_peak_rss_kib'), 0)} |")
