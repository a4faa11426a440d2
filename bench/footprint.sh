#!/usr/bin/env bash
# Master footprint and reload cost on a release build: RSS (total, anonymous, peak), fd count,
# CPU time per reload, wake-ups and system calls while idle. Traffic: none (loopback only).
# Usage: bench/footprint.sh [RELOADS]   (default 1000; bounded: stops after 10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
RELOADS=${1:-1000}
BIN=${BIN:-.build-release/release}
[ -x "$BIN/baton" ] || swift build -c release --scratch-path .build-release >/dev/null
WORK=$(mktemp -d /tmp/baton-bench.XXXXXX)
CTL=$WORK/control.sock
"$BIN/baton" run --control "$CTL" --listen http=tcp://127.0.0.1:0 --workers 1 --drain-timeout 5s \
    -- "$BIN/baton-test-worker" --idle-grace 100 >"$WORK/baton.log" 2>&1 &
MASTER=$!
trap 'kill -TERM $MASTER 2>/dev/null; wait $MASTER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do "$BIN/baton" status --control "$CTL" >/dev/null 2>&1 && break; sleep 0.05; done

field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$MASTER/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$MASTER/stat"; }
report() {
    printf '%-22s VmRSS %6s kB  RssAnon %6s kB  VmHWM %6s kB  fds %3s\n' "$1" \
        "$(field VmRSS)" "$(field RssAnon)" "$(field VmHWM)" "$(ls "/proc/$MASTER/fd" | wc -l)"
}
report "after start"
HZ=$(getconf CLK_TCK)
before=$(ticks)
start=$(date +%s%N)
deadline=$(( $(date +%s) + 600 ))
done_reloads=0
for _ in $(seq "$RELOADS"); do
    "$BIN/baton" reload --wait --control "$CTL" >/dev/null
    done_reloads=$((done_reloads + 1))
    [ "$(date +%s)" -lt "$deadline" ] || break
done
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
after=$(ticks)
report "after $done_reloads reloads"
awk -v t=$((after - before)) -v hz="$HZ" -v n="$done_reloads" -v ms="$elapsed_ms" 'BEGIN {
    printf "master CPU per reload  %.3f ms (user+system, %d reloads)\n", t * 1000 / hz / n, n
    printf "reload --wait round trip  %.1f ms on average (client start included)\n", ms / n }'
# Idle: no reload, no traffic. A process blocked in epoll_wait makes no system call and never
# switches context; count both over 10 s.
v0=$(field voluntary_ctxt_switches); n0=$(field nonvoluntary_ctxt_switches)
timeout 10 strace -c -f -p "$MASTER" -o "$WORK/strace.txt" 2>/dev/null || true
v1=$(field voluntary_ctxt_switches); n1=$(field nonvoluntary_ctxt_switches)
calls=$(awk '/total/ { print $(NF-1) }' "$WORK/strace.txt" 2>/dev/null || echo "?")
echo "idle 10 s: ${calls:-0} system calls (strace), $((v1 - v0 + n1 - n0)) context switches"
