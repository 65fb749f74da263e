#!/usr/bin/env bash
# build-deb.sh - builds the kizuna Debian package (debian/) from this checkout: Release
# binaries, the web client, the systemd units and the backup timer; checks it with lintian.
#   deploy/build-deb.sh [OUTDIR]     the .deb lands in OUTDIR (default build/deb)
# Installs what the build needs when it is missing (root or sudo). The build runs in a copy
# of the tracked and new files, so build/, data/ and node_modules/ stay out of it, and
# dpkg-buildpackage's files land in OUTDIR, not beside the checkout, with its log (build.log).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-build/deb}" && cd "${1:-build/deb}" && pwd)

# debhelper and dpkg-dev build the package; lintian checks it; fakeroot gives the files
# root's ownership without root; the rest are debian/control's Build-Depends.
PKGS=(debhelper dpkg-dev fakeroot lintian build-essential cmake pkg-config libcjson-dev
      libcurl4-openssl-dev libqrencode-dev libsodium-dev libsqlite3-dev libturbojpeg0-dev
      libwebsockets-dev zlib1g-dev)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "build-deb: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The package's version is the project's: debian/changelog follows CMakeLists.txt.
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
project=$(sed -n 's/^project(kizuna VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ "$version" = "$project" ] || {
    echo "build-deb: debian/changelog says $version, CMakeLists.txt $project: add a changelog" \
        "entry (dch -v $project)" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/kizuna"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf - | tar -C "$work/kizuna" -xf -
else
    tar --exclude=./build --exclude=./data --exclude=node_modules --exclude=.git -cf - . |
        tar -C "$work/kizuna" -xf -
fi

# -b: binary only (a native package's source is this repository); -us -uc: unsigned.
(cd "$work/kizuna" && DEB_BUILD_OPTIONS="parallel=${JOBS:-$(nproc)}" \
    dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1 || {
    tail -n 60 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (last lines above)" >&2
    exit 1
}
arch=$(dpkg --print-architecture)
deb=kizuna_${version}_${arch}.deb
cp "$work/$deb" "$out/"
# The debug symbols, for a crash's backtrace (apt install ./kizuna-dbgsym_*.deb beside it).
dbgsym=kizuna-dbgsym_${version}_${arch}.deb
if [ -e "$work/$dbgsym" ]; then cp "$work/$dbgsym" "$out/"; fi

# Errors fail the build; warnings are printed for whoever reads them.
lintian --fail-on error "$out/$deb" | sed 's/^/build-deb: lintian: /' >&2 || {
    echo "build-deb: lintian reports errors in $out/$deb" >&2
    exit 1
}
echo "$out/$deb"
