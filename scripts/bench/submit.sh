#!/usr/bin/env bash
# Submission throughput: POST /runs through `code-runner api` beside the
# store's submit script called straight on Redis with redis-benchmark, at 50
# connections and at 1, against a private redis-server and no worker.
#
# Usage: scripts/bench/submit.sh
#   BENCH_SECONDS      length of each measured load, in seconds (default 10)
#   BENCH_CONNECTIONS  the high concurrency (default 50)
#   BENCH_PROFILE      1 to record a CPU profile of the api during the
#                      50-connection load (perf record with DWARF call
#                      graphs). Reports by self and by inclusive time go to
#                      target/bench/submit/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_LOAD=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
# The queue never fills: nothing consumes it during the loads.
QUEUE_MAX_DEPTH=10000000
CODE='print("hello")'

command -v wrk >/dev/null || bench_die "wrk is missing; install it with 'apt-get install wrk'"

bench_init submit
bench_binary
bench_redis
bench_start_api EXECUTOR=local QUEUE_MAX_DEPTH=$QUEUE_MAX_DEPTH

SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat "$REPO_ROOT/src/store/lua/submit.lua")")

# Runs wrk against POST /runs; prints requests per second and keeps the output.
wrk_runs() {
    local connections=$1 seconds=$2 name=$3
    wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$BENCH_DIR/post-run.lua" "$API_URL/runs" \
        >"$BENCH_RESULTS/$name.txt" 2>&1
    awk '/^Requests\/sec:/ { print $2 }' "$BENCH_RESULTS/$name.txt"
}

# Runs redis-benchmark with the same KEYS and ARGV as RunStore::submit: a
# fresh random run id per call, no idempotency key, a 7-day retention.
redis_submit() {
    local connections=$1 requests=$2 name=$3
    local now_ms created_at
    now_ms=$(date +%s%3N)
    created_at=$(date -u -d "@${now_ms:0:10}" +%Y-%m-%dT%H:%M:%S).${now_ms:10:3}Z
    redis-benchmark -p "$REDIS_PORT" -c "$connections" -n "$requests" -r 100000000 --csv \
        EVALSHA "$SHA" 5 run:__rand_int__ runs:queue runs:recent runs:events idempotency: \
        __rand_int__ "$created_at" "$now_ms" 604800 "$QUEUE_MAX_DEPTH" 100000 0 86400 \
        language python code "$CODE" timeout_seconds 30 logs_truncated 0 \
        >"$BENCH_RESULTS/$name.csv" 2>&1
    # CSV: "test","rps",... with the command as the test name.
    tail -1 "$BENCH_RESULTS/$name.csv" | awk -F'","' '{ print $2 }'
}

# Runs redis-benchmark for about SECONDS: a short run measures the rate first.
redis_submit_timed() {
    local connections=$1 name=$2 rate
    rate=$(redis_submit "$connections" 5000 "$name-calibration")
    redis_submit "$connections" "$(awk -v r="$rate" -v s="$SECONDS_PER_LOAD" 'BEGIN { printf "%d", r * s }')" "$name"
}

flush() { redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null; }

bench_log "warm-up: 3 s of POST /runs"
wrk_runs "$CONNECTIONS" 3 warmup >/dev/null
flush

bench_log "POST /runs at $CONNECTIONS connections for ${SECONDS_PER_LOAD}s"
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    perf record -F 499 --call-graph dwarf,32768 -p "$API_PID" -o "$BENCH_RESULTS/api.perf.data" -- sleep "$((SECONDS_PER_LOAD - 1))" \
        >"$WORK/perf-record.log" 2>&1 &
    PERF_PID=$!
fi
api_cpu_before=$(bench_cpu_seconds "$API_PID")
redis_cpu_before=$(bench_cpu_seconds "$REDIS_PID")
api_high=$(wrk_runs "$CONNECTIONS" "$SECONDS_PER_LOAD" "api-c$CONNECTIONS")
api_cpu=$(awk -v a="$api_cpu_before" -v b="$(bench_cpu_seconds "$API_PID")" 'BEGIN { printf "%.2f", b - a }')
redis_cpu=$(awk -v a="$redis_cpu_before" -v b="$(bench_cpu_seconds "$REDIS_PID")" 'BEGIN { printf "%.2f", b - a }')
if [ -n "${PERF_PID:-}" ]; then
    wait "$PERF_PID" || bench_log "perf record failed; see $WORK/perf-record.log"
    perf report -i "$BENCH_RESULTS/api.perf.data" --stdio --no-children --percent-limit 0.5 -g none \
        >"$BENCH_RESULTS/api.perf-self.txt" 2>/dev/null || true
    perf report -i "$BENCH_RESULTS/api.perf.data" --stdio --children --percent-limit 2 -g none \
        >"$BENCH_RESULTS/api.perf-children.txt" 2>/dev/null || true
fi
flush

bench_log "redis-benchmark EVALSHA submit.lua at $CONNECTIONS connections"
redis_cpu_before=$(bench_cpu_seconds "$REDIS_PID")
redis_high=$(redis_submit_timed "$CONNECTIONS" "redis-c$CONNECTIONS")
redis_only_cpu=$(awk -v a="$redis_cpu_before" -v b="$(bench_cpu_seconds "$REDIS_PID")" 'BEGIN { printf "%.2f", b - a }')
flush

bench_log "POST /runs at 1 connection for ${SECONDS_PER_LOAD}s"
api_one=$(wrk_runs 1 "$SECONDS_PER_LOAD" api-c1)
flush

bench_log "redis-benchmark EVALSHA submit.lua at 1 connection"
redis_one=$(redis_submit_timed 1 redis-c1)
flush

bench_log "GET /health at $CONNECTIONS connections (the HTTP stack alone)"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_LOAD}s" --latency "$API_URL/health" >"$BENCH_RESULTS/health-c$CONNECTIONS.txt" 2>&1
health_high=$(awk '/^Requests\/sec:/ { print $2 }' "$BENCH_RESULTS/health-c$CONNECTIONS.txt")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
latency() { awk '/^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } END { printf "p50 %s, p99 %s", p50, p99 }' "$BENCH_RESULTS/$1.txt"; }
statuses() { grep '^responses 201' "$BENCH_RESULTS/$1.txt" || echo "responses: not counted"; }

bench_result "POST /runs, $CONNECTIONS connections, req/s" "$api_high ($(latency "api-c$CONNECTIONS"); $(statuses "api-c$CONNECTIONS"))"
bench_result "EVALSHA submit.lua, $CONNECTIONS connections, calls/s" "$redis_high"
bench_result "ratio at $CONNECTIONS connections (target >= 50%)" "$(ratio "$api_high" "$redis_high")"
bench_result "POST /runs, 1 connection, req/s" "$api_one ($(latency api-c1); $(statuses api-c1))"
bench_result "EVALSHA submit.lua, 1 connection, calls/s" "$redis_one"
bench_result "ratio at 1 connection" "$(ratio "$api_one" "$redis_one")"
bench_result "GET /health, $CONNECTIONS connections, req/s" "$health_high ($(latency "health-c$CONNECTIONS"))"
bench_result "CPU seconds during POST /runs at $CONNECTIONS connections" "api $api_cpu, redis-server $redis_cpu (wall ${SECONDS_PER_LOAD} s)"
bench_result "CPU seconds of redis-server during redis-benchmark at $CONNECTIONS connections" "$redis_only_cpu (including its calibration run)"
