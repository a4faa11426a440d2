#!/usr/bin/env bash
# baton's benchmark suite (`make bench`): release builds, the load client, then Benchmarks/bench.py,
# which prints the summary table and writes docs/BENCHMARKS.md and docs/benchmarks-latency.svg.
# Options go to bench.py (`bench/run.sh --help`). Environment:
#   BENCH_SCRATCH=.build-bench            scratch path of the release build
#   BENCH_STATIC_SCRATCH=.build-bench-static   scratch path of the --static-swift-stdlib build
#   BENCH_STATIC=0                        skip the --static-swift-stdlib build and comparison
#   BENCH_NIO=0                           skip the SwiftNIO example worker
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    exec python3 Benchmarks/bench.py --help
fi
SCRATCH=${BENCH_SCRATCH:-.build-bench}
STATIC_SCRATCH=${BENCH_STATIC_SCRATCH:-.build-bench-static}

missing=()
command -v start_server >/dev/null || missing+=(libserver-starter-perl)
command -v strace >/dev/null || missing+=(strace)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build() { # scratch, extra flags...
    local scratch=$1; shift
    for product in baton baton-master baton-config baton-test-worker; do
        swift build -c release --scratch-path "$scratch" --product "$product" "$@" >&2
    done
}
echo "bench: release build in $SCRATCH" >&2
build "$SCRATCH"
if [ "${BENCH_NIO:-1}" != 0 ] && grep -q '"swift-nio-server"' Package.swift; then
    swift build -c release --scratch-path "$SCRATCH" --product swift-nio-server >&2 \
        || echo "bench: the SwiftNIO example did not build; measuring without it" >&2
fi
static_args=()
if [ "${BENCH_STATIC:-1}" != 0 ]; then
    echo "bench: --static-swift-stdlib release build in $STATIC_SCRATCH" >&2
    if build "$STATIC_SCRATCH" --static-swift-stdlib; then
        static_args=(--static-bin "$STATIC_SCRATCH/release")
    else
        echo "bench: the static build failed; comparing without it" >&2
    fi
fi
mkdir -p "$SCRATCH/bench"
cc -O2 -Wall -Wextra -std=gnu11 -o "$SCRATCH/bench/baton-bench-load" Benchmarks/load/*.c
exec python3 Benchmarks/bench.py --bin "$SCRATCH/release" --load-tool "$SCRATCH/bench/baton-bench-load" \
    "${static_args[@]}" "$@"
