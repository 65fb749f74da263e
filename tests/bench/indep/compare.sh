#!/usr/bin/env bash
# kzbench and the independent client side by side on the `rooms` scenario, against kizunad and
# mosquitto, interleaved run by run so that a change in the machine's load touches all four
# alike. Every line carries the load average at its end ("loadavg").
#   tests/bench/indep/compare.sh BUILD_DIR [RUNS] > rooms.jsonl
#   tests/bench/medians.py < rooms.jsonl
# RATES (default 0.2,1,5), KZBENCH, KIZUNAD and MOSQUITTO override the defaults.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: $0 BUILD_DIR [RUNS]}
runs=${2:-3}
bench=${KZBENCH:-$build/kzbench} kizunad=${KIZUNAD:-$build/kizunad}
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
args=(--rooms 100 --per-room 10 --rates "${RATES:-0.2,1,5}" --duration 5)
for _ in $(seq "$runs"); do
    "$bench" --kizunad "$kizunad" --scenario rooms "${args[@]}"
    "$here/run.sh" --kizunad "$kizunad" "${args[@]}"
    if [ -x "$mosquitto" ]; then
        "$bench" --mosquitto "$mosquitto" --scenario rooms "${args[@]}"
        "$here/run.sh" --mosquitto "$mosquitto" "${args[@]}"
    fi
done
