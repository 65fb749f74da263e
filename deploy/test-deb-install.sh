#!/usr/bin/env bash
# test-deb-install.sh - installs the kizuna .deb on a fresh Debian 12 root (debootstrap
# minbase: nothing but the base system, as a new server has) with apt, which brings its
# dependencies from the Debian archive, and runs tests/package/check-install.sh there: user,
# paths, config, first admin, systemd-analyze verify, the installed server and CLI, backups,
# upgrade, remove, purge. Slower than ctest test_package (an overlay of this machine, whose
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
echo "test-deb-install: ok: $(basename "$deb") on a fresh Debian 12 root in $((SECONDS - start)) s"
