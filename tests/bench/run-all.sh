#!/usr/bin/env bash
# Runs every scenario three times against kizunad and, where one exists, the mosquitto
# reference, printing one JSON line per run. docs/performance.md has the medians.
#   tests/bench/run-all.sh BUILD_DIR > results.jsonl
set -u
build=${1:-build/release}
bench=$build/kzbench kizunad=$build/kizunad mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
both() { # scenario args: run against both servers
    "$bench" --kizunad "$kizunad" "$@"
    [ -x "$mosquitto" ] && "$bench" --mosquitto "$mosquitto" "$@"
}
for run in 1 2 3; do
    both --scenario fanout --members 100 --messages 3000 --window 8
    both --scenario fanout --members 1000 --messages 300 --window 8
    both --scenario rooms --rooms 100 --per-room 10 --rates 0.2,1,5,20,50 --duration 5
    both --scenario idle --conns 1000
    both --scenario idle --conns 10000
    "$bench" --kizunad "$kizunad" --scenario ingest --senders 50 --messages 100000 --window 32
    "$bench" --kizunad "$kizunad" --scenario resume --messages 100000
    "$bench" --kizunad "$kizunad" --scenario notice-report --recipients 10000
    "$bench" --kizunad "$kizunad" --scenario login-storm --logins 1000 --per-room 10 --rate 5
    for delay in 0 300; do # a push service that answers at once, and a slow one
        "$bench" --kizunad "$kizunad" --scenario notify --recipients 1000 --service-delay-ms $delay --per-room 10 --rate 5
        "$bench" --kizunad "$kizunad" --scenario notify --recipients 5000 --service-delay-ms $delay --push-concurrency 64 --per-room 10 --rate 5
        "$bench" --kizunad "$kizunad" --scenario notify --channel mail --recipients 1000 --service-delay-ms $delay --mail-concurrency 16 --per-room 10 --rate 5
    done
done
