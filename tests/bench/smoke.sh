#!/usr/bin/env bash
# Runs every kzbench scenario once with tiny parameters: proves the tool and the scenarios
# work end to end. It asserts nothing about speed (docs/performance.md has the figures).
set -u
bench=$1 kizunad=$2
mosquitto=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null || true)
fail=0 passed=0
run() {
    local out
    # kzbench dies with this script (ctest's timeout kills it), and its server with kzbench.
    # exec, so that its parent is this script and not a subshell that would outlive it.
    if out=$(exec setpriv --pdeathsig KILL -- "$bench" "$@" 2>&1) && grep -q '"scenario"' <<<"$out" && ! grep -q '"errors":[1-9]' <<<"$out"; then
        passed=$((passed + 1))
        echo "ok   $*"
    else
        fail=$((fail + 1))
        echo "FAIL $*"
        echo "$out" | tail -5
    fi
}
run --kizunad "$kizunad" --scenario fanout --members 3 --messages 20 --window 4
run --kizunad "$kizunad" --scenario rooms --rooms 2 --per-room 2 --rate 5 --duration 1
run --kizunad "$kizunad" --scenario ingest --senders 2 --messages 40 --window 4
run --kizunad "$kizunad" --scenario idle --conns 10
run --kizunad "$kizunad" --scenario resume --messages 50
run --kizunad "$kizunad" --scenario notice-report --recipients 20
run --kizunad "$kizunad" --scenario login-storm --logins 3 --per-room 2 --rate 5
run --kizunad "$kizunad" --scenario notify --recipients 5 --per-room 2 --rate 5 --deadline 60
run --kizunad "$kizunad" --scenario notify --recipients 5 --per-room 2 --rate 5 --service-delay-ms 50 --deadline 60
run --kizunad "$kizunad" --scenario notify --recipients 5 --per-room 2 --rate 5 --channel mail --deadline 60
if [ -n "$mosquitto" ]; then
    run --mosquitto "$mosquitto" --scenario fanout --members 3 --messages 20 --window 4
    run --mosquitto "$mosquitto" --scenario rooms --rooms 2 --per-room 2 --rate 5 --duration 1
    run --mosquitto "$mosquitto" --scenario idle --conns 10
fi
echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]
