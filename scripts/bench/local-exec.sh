#!/usr/bin/env bash
# Local executor overhead: the submit-to-finished time of `print(1)` runs in
# `code-runner dev`, one run at a time, minus the time of the bare
# interpreter start (`python3 -c 'print(1)'` under hyperfine).
#
# Submit-to-finished: the client reads the last runs:events id, takes a
# nanosecond time, sends POST /runs and blocks on XREAD until the run's final
# state arrives, then takes the time again.
#
# Usage: scripts/bench/local-exec.sh
#   BENCH_RUNS  measured runs (default 200, after 10 warm-up runs)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-200}

command -v hyperfine >/dev/null || bench_die "hyperfine is missing; install it with 'apt-get install hyperfine'"

bench_init local-exec
bench_binary
bench_redis
port=$(bench_free_ports 1)
bench_start dev env REDIS_URL="$REDIS_URL" LISTEN_ADDR=127.0.0.1:$port \
    RUST_LOG="${BENCH_RUST_LOG:-info}" "${BENCH_API_ENV[@]}" "$CODE_RUNNER" dev
DEV_PID=$BENCH_LAST_PID
API_URL=http://127.0.0.1:$port
bench_wait_http "$API_URL/ready" 30
sandbox=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/dev.log" |
    grep -o 'local executor runs programs.*\|the kernel denied new namespaces' | head -1 || true)

# The interpreter that the local executor starts: `python3` on its fixed PATH.
PYTHON=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3)

bench_log "dev: $RUNS runs of print(1), one at a time"
"${BENCH_PY[@]}" local-exec --url "$API_URL" --redis-port "$REDIS_PORT" --count "$RUNS" --warmup 10 \
    >"$BENCH_RESULTS/dev.txt"
cat "$BENCH_RESULTS/dev.txt" >>"$BENCH_REPORT"
cat "$BENCH_RESULTS/dev.txt"

bench_log "hyperfine: $PYTHON -c 'print(1)'"
hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$BENCH_RESULTS/hyperfine.json" \
    "$PYTHON -c 'print(1)'" >"$BENCH_RESULTS/hyperfine.txt" 2>&1

dev_p50=$(sed -n 's/.*final state.* p50=\([0-9.]*\).*/\1/p' "$BENCH_RESULTS/dev.txt")
bare_p50=$(jq '.results[0].median * 1000' "$BENCH_RESULTS/hyperfine.json")
bare_mean=$(jq '.results[0].mean * 1000' "$BENCH_RESULTS/hyperfine.json")
bench_result "sandbox" "${sandbox:-unknown}"
bench_result "bare $PYTHON -c 'print(1)' ms (hyperfine)" \
    "$(printf 'median=%.2f mean=%.2f' "$bare_p50" "$bare_mean")"
bench_result "local executor overhead, median ms (target <= 20)" \
    "$(awk -v a="$dev_p50" -v b="$bare_p50" 'BEGIN { printf "%.2f", a - b }')"
"${BENCH_PY[@]}" local-log-report --log "$WORK/dev.log" --skip 10 | tee -a "$BENCH_REPORT"
bench_result "dev RSS KiB after the runs" "$(bench_rss_kib "$DEV_PID")"
