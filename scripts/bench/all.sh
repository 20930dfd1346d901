#!/usr/bin/env bash
# Runs every benchmark in one go and prints their figures, with the machine,
# the commit and the load that other processes put on the machine. The
# benchmarks only print: a slow machine gives slow figures, never a failure
# of this script. One benchmark that fails is reported and the next one runs.
#
# Usage: scripts/bench/all.sh [NAME...]
#   BENCH_SKIP_BUILD=1 uses target/release/code-runner as it is; the other
#   BENCH_* settings of the scripts pass through.
#   NAME is one of submit, dispatch, watch, local-exec, memory, scaling
#   (default: all of them, in that order), or profile-submit (the
#   instruction profile of POST /runs) or proxy-overhead (what the fault
#   proxy adds to a dispatch). Each one's report is in
#   target/bench/NAME/report.txt; this script's output is also saved as
#   target/bench/all.txt.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
OUT=${BENCH_OUT:-$REPO_ROOT/target/bench}
mkdir -p "$OUT"
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(submit dispatch watch local-exec memory scaling)

# Upper bound of each benchmark's wall time, in seconds.
declare -A LIMIT=([submit]=300 [dispatch]=600 [watch]=1200 [local-exec]=300 [memory]=600 [scaling]=1200 [profile-submit]=600 [proxy-overhead]=600)

machine() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$REPO_ROOT" rev-parse --short HEAD)$(git -C "$REPO_ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (src/ has uncommitted changes)')"
    echo "cpus: $(nproc), $(lscpu | sed -n 's/^Model name: *//p' | head -1)," \
        "family $(awk -F': ' '/^cpu family/ { print $2; exit }' /proc/cpuinfo)" \
        "model $(awk -F': ' '/^model\t/ { print $2; exit }' /proc/cpuinfo)," \
        "$(awk -F': ' '/^cpu MHz/ { printf "%.0f MHz", $2; exit }' /proc/cpuinfo)," \
        "hypervisor $(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)"
    echo "memory: $(free -h | awk '/^Mem:/ { print $2 }')"
    echo "kernel: $(uname -r)"
    echo "tools: $(redis-server --version | awk '{ print $3 }'), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'), $(hyperfine --version), $(rustc --version)"
}

# Load average, CPU use over 2 s and the busiest processes in that time.
others() {
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    top -b -n 2 -d 2 -c -w 150 | awk '/^top - /{ frame++ } frame == 2' >"$OUT/top.txt"
    echo "CPU over 2 s: $(sed -n 's/^%Cpu(s): *//p' "$OUT/top.txt" | cut -d, -f1-4)"
    echo "busiest processes over those 2 s (%CPU of one core):"
    awk '/^ *[0-9]+ / && $9 > 0 { print "  " $9 "  " substr($0, index($0, $12)) }' "$OUT/top.txt" | head -5
}

run_all() {
    echo "== machine"
    machine
    if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        echo "== release build"
        (cd "$REPO_ROOT" && cargo build --release -q --bin code-runner) 2>&1 | tail -5
    fi
    # One build for all: each benchmark copies the same binary.
    export BENCH_SKIP_BUILD=1
    local name status
    for name in "${NAMES[@]}"; do
        [ -x "$BENCH_DIR/$name.sh" ] || {
            echo "unknown benchmark $name"
            continue
        }
        echo
        echo "== $name ($(date -u +%H:%M:%S))"
        others
        timeout --kill-after=90 "${LIMIT[$name]:-600}" "$BENCH_DIR/$name.sh" 2>"$OUT/$name.stderr" |
            grep -v '^$' | sed 's/^/  /'
        status=${PIPESTATUS[0]}
        [ "$status" = 0 ] || echo "  $name stopped with exit status $status; see $OUT/$name.stderr"
    done
    echo
    echo "== done ($(date -u +%H:%M:%S))"
}

run_all | tee "$OUT/all.txt"
