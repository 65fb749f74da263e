#!/usr/bin/env bash
# setup.sh - set up Kizuna on a Debian 12 machine from this checkout.
#   deploy/setup.sh run    install what is missing, build, initialise ./data (or $KIZUNA_DATA)
#                          with a first admin, and serve on 127.0.0.1:8080 in the foreground
#   deploy/setup.sh test   install what is missing, build with ASan+UBSan, run every test, then
#                          run the integration scenario under valgrind
# Needs root or sudo for apt-get, and only for packages that are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS=(build-essential cmake pkg-config libwebsockets-dev libsqlite3-dev libsodium-dev
            libturbojpeg0-dev libcjson-dev libqrencode-dev libcurl4-openssl-dev)
# clang and its runtime libraries bring libFuzzer, which gcc lacks: the fuzz harnesses
# (tests/fuzz/run.sh, ctest fuzz_smoke) need it, and fuzz_smoke fails rather than skips
# without it. Both are Debian 12 packages; libclang-rt-14-dev is only a recommendation of
# clang, and we install without recommendations.
TEST_PKGS=(libcriterion-dev valgrind curl mosquitto openssl clang libclang-rt-14-dev)
JOBS=$(nproc 2>/dev/null || echo 2)

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

build() { # build DIR cmake-args...
    local dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
run)
    install_missing "${BUILD_PKGS[@]}"
    build build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKIZUNA_TESTS=OFF
    data=${KIZUNA_DATA:-./data}
    ./build/release/kizunad init --data "$data"
    echo "setup: log in with: ./build/release/kizuna login admin   (stop the server with Ctrl-C)"
    exec ./build/release/kizunad serve --data "$data" --listen "${KIZUNA_LISTEN:-127.0.0.1:8080}"
    ;;
test)
    install_missing "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
    build build/asan -DCMAKE_BUILD_TYPE=Debug -DKIZUNA_SANITIZE=ON
    # Criterion forks each test; ASan's leak check runs in every child and in kizunad itself.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    ctest --test-dir build/asan --output-on-failure -j "$JOBS"
    # The same integration scenario, kizunad under valgrind, on the optimised build that
    # `run` uses (it also catches warnings only -O2 reports).
    build build/plain -DCMAKE_BUILD_TYPE=RelWithDebInfo
    KIZUNA_TEST_WRAPPER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
        ctest --test-dir build/plain --output-on-failure -j "$JOBS" -R 'test_server|test_talk|test_notice|test_admin|test_e2ee|test_backup' 
    ;;
*)
    echo "usage: deploy/setup.sh run|test" >&2
    exit 2
    ;;
esac
