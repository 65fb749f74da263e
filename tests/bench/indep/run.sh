#!/usr/bin/env bash
# Starts the server under test the way kzbench does (kizunad on a temporary data directory and
# an ephemeral port, with the same settings; or mosquitto with the same configuration), runs
# the independent generator rooms.js against it, and stops the server it started by its PID
# on every path (trap). One JSON line per rate on stdout, like kzbench.
#
#   tests/bench/indep/run.sh --kizunad build/release/kizunad [rooms.js options]
#   tests/bench/indep/run.sh --mosquitto /usr/sbin/mosquitto [rooms.js options]
#   rooms.js options: --rooms 100 --per-room 10 --rates 0.2,1,5 --duration 5 --drain 10
#
# Needs `npm ci` in this directory first (README.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
usage() {
    echo "usage: $0 (--kizunad PATH | --mosquitto PATH) [rooms.js options]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
mode=$1 bin=$2
shift 2
case $mode in --kizunad | --mosquitto) ;; *) usage ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not executable" >&2; exit 2; }
if [ ! -d "$here/node_modules/ws" ] || [ ! -d "$here/node_modules/mqtt" ]; then
    echo "run.sh: run 'npm ci' in $here first" >&2
    exit 2
fi

password=bench-password-1 # kzbench's
dir=$(mktemp -d /tmp/kzindep-XXXXXX)
pid='' gen='' watcher=''
stop_server() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do # up to 5 s, then SIGKILL: a stuck server ignores SIGTERM
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=
    fi
}
# shellcheck disable=SC2317 # the trap calls it
cleanup() {
    if [ -n "$watcher" ]; then
        kill -KILL "$watcher" 2>/dev/null
        wait "$watcher" 2>/dev/null
    fi
    if [ -n "$gen" ]; then
        kill -KILL "$gen" 2>/dev/null
        wait "$gen" 2>/dev/null
    fi
    stop_server
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The server is this script's child, and dies with it even if this script is killed with
# SIGKILL (setpriv --pdeathsig, as kzbench's prctl). But mosquitto started as root drops to
# its own user, and a change of credentials clears the parent-death signal; so a watcher
# covers the one path no trap can: it ends when the script or the server ends, and if the
# script went first, it kills the server and removes the temporary directory.
watch_server() {
    local me=$$
    (
        trap - EXIT INT TERM HUP
        while kill -0 "$me" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
        if ! kill -0 "$me" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
            sleep 0.2
            rm -rf "$dir"
        fi
    ) &
    watcher=$!
}
if [ "$mode" = --kizunad ]; then
    KIZUNA_ADMIN_PASSWORD=$password "$bin" init --data "$dir/data" --set argon2_opslimit=1 \
        --set argon2_memlimit_kib=8 >/dev/null || { echo "run.sh: kizunad init failed" >&2; exit 1; }
    # All load comes from one address, at rates no person makes: the per-address and
    # per-connection limits are lifted, as kzbench does.
    setpriv --pdeathsig KILL -- "$bin" serve --data "$dir/data" --listen 127.0.0.1:0 \
        --log-level warn --set max_connections=20000 --set room_max_members=20000 \
        --set max_connections_per_address=20000 --set requests_per_second=100000 \
        --set request_burst=1000000 --set argon2_opslimit=1 --set argon2_memlimit_kib=8 \
        >"$dir/stdout" 2>"$dir/kizunad.log" &
    pid=$!
    watch_server
    port=
    deadline=$((SECONDS + 20))
    while [ -z "$port" ]; do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/stdout")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "run.sh: kizunad exited:" >&2; cat "$dir/kizunad.log" >&2; pid=; exit 1; }
        [ $SECONDS -lt $deadline ] || { echo "run.sh: no port line from kizunad in 20 s" >&2; exit 1; }
        sleep 0.02
    done
    target=(--kizuna "ws://127.0.0.1:$port" --admin-password "$password")
else
    # mosquitto prints no port line: take a free one from the kernel, and if mosquitto loses
    # it to someone else, try another (kzbench does the same).
    for _ in 1 2 3 4 5; do
        port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
            console.log(s.address().port); s.close(); });')
        printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\npersistence false\n' \
            "$port" >"$dir/mosquitto.conf"
        setpriv --pdeathsig KILL -- "$bin" -c "$dir/mosquitto.conf" >/dev/null 2>&1 &
        pid=$!
        ready=
        deadline=$((SECONDS + 5))
        while [ $SECONDS -lt $deadline ]; do
            kill -0 "$pid" 2>/dev/null || break # it exited: the port was taken
            if (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                ready=1
                break
            fi
            sleep 0.02
        done
        [ -n "$ready" ] && break
        stop_server
    done
    [ -n "$ready" ] || { echo "run.sh: mosquitto did not start (last port $port)" >&2; exit 1; }
    watch_server
    target=(--mqtt "mqtt://127.0.0.1:$port")
fi

# In the background and waited for, so that a signal to this script runs the trap at once
# (bash defers traps while a foreground child runs); the generator goes with the script.
setpriv --pdeathsig KILL -- node "$here/rooms.js" "${target[@]}" --server-pid "$pid" \
    --clk-tck "$(getconf CLK_TCK)" "$@" &
gen=$!
wait "$gen"
status=$?
gen=
exit $status
