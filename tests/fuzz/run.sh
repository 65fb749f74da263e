#!/usr/bin/env bash
# run.sh - builds the libFuzzer harnesses with clang and runs each for a while.
#   tests/fuzz/run.sh [SECONDS]     SECONDS per harness (default 20); CI runs 10 (ctest
#                                   fuzz_smoke), long runs on demand: tests/fuzz/run.sh 3600
# Environment:
#   KZ_FUZZ_BUILD    build directory (default build/fuzz; ctest passes one inside its own tree)
#   KZ_FUZZ_ONLY     space-separated harness names to run (default: all)
#   KZ_FUZZ_KEEP     a directory to copy the grown corpora into (default: thrown away)
# First replays every file in tests/fuzz/regressions/<harness>/ (crashes found before), then
# fuzzes a copy of tests/fuzz/corpus/<harness>/ in a temporary directory: the corpus in the
# repository never grows by itself. Fails if any harness crashes, leaks, times out (-timeout=10)
# or runs out of memory (-rss_limit_mb=2048), and prints the reproducer's path; replay it with
#   build/fuzz/tests/fuzz/<harness> <reproducer>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-20}
build=${KZ_FUZZ_BUILD:-$root/build/fuzz}
harnesses=${KZ_FUZZ_ONLY:-"fuzz_proto fuzz_import fuzz_jpeg fuzz_blob fuzz_upload_headers fuzz_jma"}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: tests/fuzz/run.sh [SECONDS]" >&2
    exit 2
fi
# libFuzzer comes with clang only. A missing clang is a failure, never a skip: deploy/setup.sh
# installs it (Debian packages clang and libclang-rt-14-dev).
cc=${KZ_FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null; then
    echo "run.sh: FAIL: $cc not found; the fuzz harnesses need clang with libFuzzer" >&2
    echo "run.sh: install it with: deploy/setup.sh test (or apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

echo "run.sh: building the harnesses in $build" >&2
mkdir -p "$build"
CC=$cc cmake -S "$root" -B "$build" -DKIZUNA_FUZZ=ON -DKIZUNA_TESTS=OFF -DKIZUNA_WERROR=ON \
    -DCMAKE_BUILD_TYPE=Debug >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; echo "run.sh: FAIL: configure" >&2; exit 1; }
cmake --build "$build" --target fuzz_all -j "$(nproc 2>/dev/null || echo 2)" >"$build/build.log" 2>&1 ||
    { tail -40 "$build/build.log" >&2; echo "run.sh: FAIL: build" >&2; exit 1; }

tmp=$(mktemp -d /tmp/kizuna-fuzz-run-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
artifacts=$build/artifacts
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1:halt_on_error=1

# A harness dies with this script (Ctrl-C, or ctest's timeout killing it) instead of fuzzing on.
with_us="setpriv --pdeathsig KILL --"
failed=()
summary=()
for h in $harnesses; do
    bin=$build/tests/fuzz/$h
    # 1. The regressions: every crash found so far, replayed once each.
    reg=$here/regressions/$h
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
        if ! $with_us "$bin" -rss_limit_mb=2048 -timeout=10 "$reg"/* >"$tmp/$h.replay.log" 2>&1; then
            tail -60 "$tmp/$h.replay.log" >&2
            echo "run.sh: FAIL: $h: a regression input in $reg crashes again" >&2
            failed+=("$h (regression)")
            continue
        fi
    fi
    # 2. Fuzzing, on a copy of the seed corpus.
    mkdir -p "$tmp/corpus/$h"
    cp "$here/corpus/$h"/* "$tmp/corpus/$h/"
    log=$tmp/$h.log
    echo "run.sh: $h for ${seconds}s" >&2
    dict=()
    [ -f "$here/$h.dict" ] && dict=(-dict="$here/$h.dict") # tokens of the format, if any
    rc=0
    $with_us "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "${dict[@]}" -artifact_prefix="$artifacts/$h-" "$tmp/corpus/$h" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    summary+=("$(printf '%-20s %8s runs %7s exec/s  cov %5s  corpus %-12s rss %s MB' \
        "$h" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${corp:-?}" "${rss:-?}")")
    if [ "$rc" -ne 0 ]; then
        tail -60 "$log" >&2
        repro=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
        echo "run.sh: FAIL: $h (exit $rc); reproducer: ${repro:-none written, see the log above}" >&2
        [ -n "$repro" ] && echo "run.sh: replay: $bin $repro" >&2
        failed+=("$h")
    fi
    if [ -n "${KZ_FUZZ_KEEP:-}" ]; then
        mkdir -p "$KZ_FUZZ_KEEP/$h"
        cp "$tmp/corpus/$h"/* "$KZ_FUZZ_KEEP/$h/"
    fi
done

echo "run.sh: ${seconds}s per harness" >&2
printf '  %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "run.sh: FAIL: ${failed[*]}" >&2
    exit 1
fi
echo "run.sh: ok, no crash, leak or timeout" >&2
