#!/bin/bash
# test_package.sh - ctest test_package: builds the kizuna .deb from this tree with
# deploy/build-deb.sh (lintian errors fail it), then installs it into a throwaway root, an
# overlay of this machine's own root in a mount namespace of the test's own, and runs
# check-install.sh there: user, paths, config, first admin, systemd-analyze verify, the installed
# server and CLI, backups, upgrade, remove, purge. This machine's files, users and dpkg database
# are never changed: every write lands in the overlay's upper directory, a tmpfs.
# deploy/test-deb-install.sh runs the same checks on a fresh Debian 12 root instead (minutes).
#   test_package.sh OUTDIR       (the .deb is left in OUTDIR)
# Needs root (mount namespace, overlay, chroot); CI and deploy/setup.sh test run as root.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$src/build/deb}
fail() {
    echo "test_package: FAIL: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || fail "needs root: the install goes into an overlay root (mount namespace, chroot)"

start=$SECONDS
# One compiler at a time: the other tests share the 2 cores.
deb=$(JOBS=1 "$src/deploy/build-deb.sh" "$out" | tail -n 1)
[ -f "$deb" ] || fail "deploy/build-deb.sh made no package"
echo "test_package: built $deb in $((SECONDS - start)) s (lintian: no errors)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
# The namespace's mounts (the overlay, /proc, /dev, /sys) go when its last process does. The
# overlay's writes go to a tmpfs: they never reach a disk, and they need no file system that
# can hold an overlay's upper directory (/tmp may itself be an overlay in a container).
# shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
install='
    work=$1 deb=$2 check=$3
    root=$work/root
    # Unmounted on every path too (the namespace would take them with it anyway).
    trap "for m in run sys dev proc; do umount -l \"\$1/root/\$m\" 2>/dev/null || true; done
          umount -l \"\$1/root\" 2>/dev/null || true; umount -l \"\$1\" 2>/dev/null || true" EXIT
    mount -t tmpfs -o size=1g,mode=0700 tmpfs "$work"
    mkdir "$work/upper" "$work/work" "$root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root"
    for m in proc dev sys; do mount --bind "/$m" "$root/$m"; done
    # No systemd runs in the root: the maintainer scripts enable the units, start nothing.
    [ ! -d "$root/run/systemd/system" ] || mount -t tmpfs tmpfs "$root/run"
    mkdir -p "$root/tmp/kz-pkg"
    cp "$deb" "$check" "$root/tmp/kz-pkg/"
    chroot "$root" /bin/bash /tmp/kz-pkg/check-install.sh "/tmp/kz-pkg/$(basename "$deb")"
'
if mountpoint -q /; then
    unshare --mount --propagation private /bin/bash -euc "$install" test_package "$work" "$deb" \
        "$src/tests/package/check-install.sh"
else
    # A chroot (the fresh-Debian check runs the suite in one): / is no mount point, so no mount
    # namespace can be made private, and mounts made here would land in the host's mount table
    # (one left behind once let the next run's rm -rf of the chroot reach the host's /dev). So
    # no mount at all: the package's contents are checked, and the install checks are
    # deploy/test-deb-install.sh's on a fresh root (they ran here on a host: see CI).
    listing=$(dpkg-deb -c "$deb")
    for f in ./usr/bin/kizunad ./usr/bin/kizuna ./usr/share/kizuna/web/index.html \
        ./usr/share/kizuna/kizunad.json.example ./lib/systemd/system/kizunad.service \
        ./lib/systemd/system/kizuna-backup.service ./lib/systemd/system/kizuna-backup.timer; do
        grep -q " $f\$" <<<"$listing" || fail "the package lacks $f"
    done
    echo "test_package: in a chroot: built, lintian-clean and complete; the install into an" \
        "overlay needs a mount namespace (deploy/test-deb-install.sh does it on a fresh root)"
    exit 0
fi
echo "test_package: installed and checked in a throwaway root in $((SECONDS - start)) s"
