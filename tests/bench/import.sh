#!/bin/bash
# import.sh BUILD_DIR [USERS] [RUNS]: how long a CSV import of USERS new users (1000) takes, RUNS
# times (3), each on a fresh data directory at the default settings (argon2id cost included).
# Timed with two independent clients: the real CLI (`kizuna admin import`, wall time from
# process start to exit: connect, auth, upload, check, hash, apply, reply, passwords file) and
# curl (`POST /api/v1/user.import` with USERS other users); and the server's own `slow_op`
# log line for the op. Figures: docs/performance.md, "CSV import".
set -euo pipefail
B=$(cd "${1:?usage: import.sh BUILD_DIR [USERS] [RUNS]}" && pwd)
USERS=${2:-1000}
RUNS=${3:-3}
work=$(mktemp -d /tmp/kizuna-import-XXXXXX)
server=
cleanup() {
    [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ms() { echo $(($(date +%s%N) / 1000000)); }

# login,name,department,role,groups; PREFIX0000..; every 50th hq, two groups on two thirds.
make_csv() { # make_csv PREFIX
    echo "login,name,department,role,groups"
    local depts=(総務課 建設課 福祉課 危機管理課 税務課) i
    for ((i = 0; i < USERS; i++)); do
        printf '%s%05d,職員 %d,%s,%s,%s\n' "$1" $i $i "${depts[i % 5]}" \
            "$([ $((i % 50)) -eq 0 ] && echo hq || echo staff)" \
            "$([ $((i % 3)) -ne 0 ] && echo '消防団;避難所')"
    done
}

for ((run = 1; run <= RUNS; run++)); do
    d=$work/data$run
    KIZUNA_ADMIN_PASSWORD=bench-admin-pass "$B/kizunad" init --data "$d" >/dev/null
    "$B/kizunad" serve --data "$d" --listen 127.0.0.1:0 >"$d.out" 2>"$d.log" &
    server=$!
    for _ in $(seq 100); do grep -q '^listening on' "$d.out" 2>/dev/null && break; sleep 0.1; done
    url="http://$(sed -n 's/^listening on //p' "$d.out")"
    export KIZUNA_CONFIG_DIR=$d.cli KIZUNA_SERVER=$url KIZUNA_PASSWORD=bench-admin-pass
    "$B/kizuna" login admin >/dev/null
    make_csv u >"$d.csv"
    t0=$(ms)
    "$B/kizuna" admin import "$d.csv" >/dev/null
    cli=$(($(ms) - t0))
    make_csv h | base64 -w0 | sed 's/^/{"csv_base64":"/; s/$/"}/' >"$d.body"
    token=$(sed -n 's/.*"token":[[:space:]]*"\([^"]*\)".*/\1/p' "$d.cli/session.json")
    t0=$(ms)
    added=$(curl -sf -X POST "$url/api/v1/user.import" -H "Authorization: Bearer $token" \
        --data-binary @"$d.body" | sed -n 's/.*"added":\([0-9]*\).*/\1/p' || true)
    http=$(($(ms) - t0))
    [ "$added" = "$USERS" ] || { echo "import.sh: curl's import added '$added'" >&2; exit 1; }
    kill -TERM "$server" && wait "$server" || true
    server=
    op=$(sed -n 's/.*slow_op op=user.import ms=\([0-9]*\).*/\1/p' "$d.log" | paste -sd/)
    echo "run $run: $USERS users: kizuna admin import ${cli} ms, curl ${http} ms," \
        "server op ${op:-<20} ms (CLI/curl)"
done
