#!/usr/bin/env bash
# test-deb-install.sh - installs the kizuna .deb on a fresh Debian 12 root (debootstrap
# minbase: nothing but the base system, as a new server has) with apt, which brings its
# dependencies from the Debian archive, and runs tests/package/check-install.sh there: user,
# paths, config, first admin, systemd-analyze verify, the installed server and CLI, backups,
# upgrade, remove, purge; then installs it again and boots the root's systemd, which must start
# kizunad.service in its sandbox and run the backup service. Slower than ctest test_package (an overlay of this machine, whose
# packages are already there): a few minutes, most of them debootstrap's first run and apt.
#   deploy/test-deb-install.sh [DEB]     (default: build one with deploy/build-deb.sh)
# Needs root and the Debian archive. The base system is cached in
# /var/tmp/kizuna-debian12-base.tar; every run starts from a pristine copy of it, in a mount
# namespace of its own, and deletes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || {
    echo "test-deb-install: needs root (debootstrap, chroot)" >&2
    exit 1
}
deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(deploy/build-deb.sh | tail -n 1)
fi
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
[ -f "$deb" ] || {
    echo "test-deb-install: no package $deb" >&2
    exit 1
}

base=/var/tmp/kizuna-debian12-base.tar
if [ ! -s "$base" ]; then
    command -v debootstrap >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    boot=$(mktemp -d)
    echo "test-deb-install: debootstrap bookworm (once; cached in $base)"
    debootstrap --variant=minbase bookworm "$boot" "${mirror:-http://deb.debian.org/debian}" \
        >"$boot.log" 2>&1 || {
        tail -n 20 "$boot.log" >&2
        rm -rf "$boot"
        exit 1
    }
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        cp /etc/apt/sources.list.d/debian.sources "$boot/etc/apt/sources.list.d/"
        rm -f "$boot/etc/apt/sources.list"
    fi
    tar -C "$boot" -cf "$base.new" . && mv "$base.new" "$base"
    rm -rf "$boot" "$boot.log"
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$base"
chmod 0755 "$root" # it is /: the kizuna user and apt's _apt must reach what is under it
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$root/tmp/kz-pkg"
cp "$deb" tests/package/check-install.sh "$root/tmp/kz-pkg/"
start=$SECONDS
# The mounts go with the namespace. A real server has systemd; minbase does not: it comes
# first, as on any machine, for systemd-analyze. --reinstall: the upgrade step installs the
# same version again, which apt would otherwise call done.
# shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
unshare --mount --propagation private /bin/bash -euc '
    root=$1 deb=$2
    for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
    chroot "$root" /bin/bash -euc "
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends systemd >/dev/null
        KZ_INSTALL=\"apt-get install -y --reinstall --no-install-recommends\" \
            bash /tmp/kz-pkg/check-install.sh /tmp/kz-pkg/$deb"
' test-deb-install "$root" "$(basename "$deb")"
echo "test-deb-install: install checks ok in $((SECONDS - start)) s"

# Then the package as a real server runs it: installed again (after the purge above), and
# systemd booted as the root's init, in pid, mount and network namespaces of its own (so its
# kizunad's 127.0.0.1:8080 is the root's alone). What systemd does with the units is checked:
# kizunad started in its sandbox, active once it says it is ready, serving, stopped cleanly;
# the backup service run in its own sandbox; the timer scheduled. No getty: nobody logs in.
start=$SECONDS
# shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
unshare --mount --propagation private /bin/bash -euc '
    root=$1 deb=$2
    for m in proc sys dev dev/pts; do mount --bind "/$m" "$root/$m"; done
    chroot "$root" /bin/bash -euc "
        dpkg -i /tmp/kz-pkg/$deb >/dev/null
        systemctl mask getty.target console-getty.service >/dev/null 2>&1"
' test-deb-install "$root" "$(basename "$deb")"
boot_log=$(mktemp)
# shellcheck disable=SC2016
unshare --pid --fork --mount --net --propagation private /bin/bash -euc '
    root=$1
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --bind /sys "$root/sys"
    mount --bind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    cd "$root"
    mkdir -p .oldroot
    pivot_root . .oldroot
    umount -l /.oldroot
    rmdir /.oldroot
    exec env container=kizuna-test /lib/systemd/systemd --system
' test-deb-install-boot "$root" >"$boot_log" 2>&1 &
ns=$!
init=""
trap 'kill -KILL "${init:-$ns}" 2>/dev/null || true; wait "$ns" 2>/dev/null || true; rm -rf "$root" "$boot_log"' EXIT
boot_fail() {
    echo "test-deb-install: FAIL: $*" >&2
    [ -n "$init" ] && in_root journalctl --no-pager -n 40 -u kizunad -u kizuna-backup >&2
    exit 1
}
in_root() { nsenter -t "$init" -m -p -n -r -w "$@"; }
deadline=$((SECONDS + 30))
while [ -z "$init" ] && [ $SECONDS -lt $deadline ]; do
    init=$(tr -d ' ' <"/proc/$ns/task/$ns/children" 2>/dev/null) || true
    [ -n "$init" ] || sleep 0.2
done
[ -n "$init" ] || boot_fail "systemd did not start: $(cat "$boot_log")"
# Up once systemd answers: "starting" lasts until kizunad.service is started, which is checked
# below.
state=""
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
    state=$(in_root systemctl is-system-running 2>/dev/null) || true
    case $state in starting | running | degraded) break ;; esac
    sleep 0.5
done
case $state in starting | running | degraded) ;; *) boot_fail "systemd did not come up: '$state'" ;; esac
echo "test-deb-install: systemd is up (system $state) in $((SECONDS - start)) s"

# Serving, as kizuna, whether or not systemd yet counts it started.
page=""
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
    page=$(in_root timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 &&
        printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3 &&
        cat <&3' 2>/dev/null) && break
    sleep 0.5
done
grep -q '^HTTP/1.1 200' <<<"$page" || boot_fail "kizunad.service does not serve GET / on 127.0.0.1:8080"
pid=$(in_root systemctl show -P MainPID kizunad)
[ "$(in_root stat -c %U "/proc/$pid")" = kizuna ] || boot_fail "kizunad does not run as kizuna"
echo "test-deb-install: kizunad.service serves the web client, as kizuna, in its sandbox"

in_root systemctl start kizuna-backup || boot_fail "kizuna-backup.service failed"
in_root grep -q ' ok: /var/backups/kizuna/kizuna-' /var/backups/kizuna/last-backup ||
    boot_fail "last-backup says: $(in_root cat /var/backups/kizuna/last-backup)"
in_root journalctl -u kizuna-backup --no-pager | grep -q 'kizuna-backup: ok: ' ||
    boot_fail "the backup's result is not in the journal"
next=$(in_root systemctl show -P NextElapseUSecRealtime kizuna-backup.timer)
[ -n "$next" ] || boot_fail "kizuna-backup.timer is not scheduled"
echo "test-deb-install: kizuna-backup.service made a verified backup; the timer's next run: $next"

# Type=notify: active only once kizunad told systemd it is ready (else it times out, 90 s).
active=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
    active=$(in_root systemctl is-active kizunad) && break
    sleep 0.5
done
[ "$active" = active ] || boot_fail "kizunad.service is '$active', not active, 30 s after boot" \
    "(Type=notify: has kizunad sent READY=1?)"
echo "test-deb-install: kizunad.service active (READY=1)"

# What a new administrator does next (issue 23's "Done when"): readiness and metrics from the
# machine itself, a lost admin password recovered on the server, the status screen showing the
# server ready and the night's backup verified, a reload that keeps the service up.
get() { # get PATH: the reply (headers and body) of GET PATH on 127.0.0.1:8080, in the root
    in_root timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 &&
        printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3 &&
        cat <&3' get "$1" 2>/dev/null
}
grep -q '^HTTP/1.1 200' <<<"$(get /readyz)" || boot_fail "GET /readyz: $(get /readyz | tail -n 1)"
metrics=$(get /metrics)
grep -q '^kizuna_connections{' <<<"$metrics" ||
    boot_fail "GET /metrics has no kizuna_connections: $(head -n 3 <<<"$metrics")"
otp=$(in_root runuser -u kizuna -- kizunad reset-admin --data /var/lib/kizuna/data 2>&1 |
    sed -n 's/^one-time password: //p') || true
[ -n "$otp" ] || boot_fail "kizunad reset-admin printed no one-time password"
newpw="recovered-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
in_root env KIZUNA_CONFIG_DIR=/root/.kz KIZUNA_SERVER=http://127.0.0.1:8080 KIZUNA_PASSWORD="$otp" \
    kizuna login admin >/dev/null || boot_fail "kizuna login admin with reset-admin's password failed"
in_root env KIZUNA_CONFIG_DIR=/root/.kz KIZUNA_SERVER=http://127.0.0.1:8080 KIZUNA_PASSWORD="$otp" \
    KIZUNA_NEW_PASSWORD="$newpw" kizuna passwd >/dev/null || boot_fail "kizuna passwd failed"
status=$(in_root env KIZUNA_CONFIG_DIR=/root/.kz KIZUNA_SERVER=http://127.0.0.1:8080 kizuna admin status) ||
    boot_fail "kizuna admin status failed: $status"
grep -q '^ready  *yes' <<<"$status" || boot_fail "admin status does not say ready: $status"
grep -q 'verified .*whole (/var/backups/kizuna/kizuna-' <<<"$status" ||
    boot_fail "admin status shows no verified backup under its final name: $status"
in_root journalctl --no-pager -u kizunad | grep -qF "$otp" && boot_fail "the one-time password is in the journal"
in_root systemctl reload kizunad || boot_fail "systemctl reload kizunad failed"
[ "$(in_root systemctl is-active kizunad)" = active ] || boot_fail "kizunad is not active after a reload"
echo "test-deb-install: readyz 200, metrics served, reset-admin recovered the admin, admin status:"
sed 's/^/    /' <<<"$status"

in_root systemctl stop kizunad || boot_fail "systemctl stop kizunad failed"
[ "$(in_root systemctl show -P Result kizunad)" = success ] ||
    boot_fail "kizunad did not stop cleanly: $(in_root systemctl show -P Result kizunad)"
echo "test-deb-install: kizunad.service stopped cleanly"
echo "test-deb-install: ok: $(basename "$deb") on a fresh Debian 12 root, booted, in $((SECONDS - start)) s"
