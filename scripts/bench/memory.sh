#!/usr/bin/env bash
# Memory: resident set size of `code-runner api` and `code-runner worker`
# when idle, and with 1000 runs in flight against the local test cluster.
#
# The simulated kubelet holds every container in ContainerCreating for
# BENCH_START_DELAY_MS, so all 1000 runs stay unfinished while their Jobs
# and Pods exist: the worker's watch caches then hold 1000 Jobs and 1000
# Pods. RSS is VmRSS from /proc, sampled every second; the peak is VmHWM.
#
# Usage: scripts/bench/memory.sh
#   BENCH_RUNS            runs in flight (default 1000)
#   BENCH_START_DELAY_MS  container start delay (default 300000)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-1000}
START_DELAY_MS=${BENCH_START_DELAY_MS:-300000}

bench_init memory
bench_binary
bench_redis
CLUSTER_START_DELAY_MILLIS=$START_DELAY_MS CLUSTER_NODE_PODS=${CLUSTER_NODE_PODS:-1100} \
    CLUSTER_NODE_CPU=${CLUSTER_NODE_CPU:-64} CLUSTER_NODE_MEMORY=${CLUSTER_NODE_MEMORY:-400Gi} \
    bench_cluster_up cluster
bench_start_api EXECUTOR=kubernetes KUBECONFIG="$KUBECONFIG_API"
bench_start_worker bench-worker-1
WORKER_PID=$BENCH_LAST_PID

rss_line() {
    printf 'api %s, worker %s' "$(bench_rss_kib "$API_PID")" "$(bench_rss_kib "$WORKER_PID")"
}

bench_log "idle for 10 s"
sleep 10
bench_result "idle RSS KiB" "$(rss_line)"

bench_log "submitting $RUNS runs; containers wait ${START_DELAY_MS} ms before they start"
"${BENCH_PY[@]}" submit-burst --url "$API_URL" --count "$RUNS" --threads 8 --timeout-seconds 300 \
    --out "$WORK/runs.ids" | tee -a "$BENCH_REPORT"
bench_result "RSS KiB right after the submissions" "$(rss_line)"

# Samples RSS every second until every run has a Pod (state pending) or
# 180 s pass, then for 5 s more.
: >"$BENCH_RESULTS/rss-samples.txt"
"${BENCH_PY[@]}" wait-status-count --redis-port "$REDIS_PORT" --status pending --count "$RUNS" --timeout 180 \
    >"$WORK/pending.txt" &
waiter=$!
while kill -0 "$waiter" 2>/dev/null; do
    printf '%s %s\n' "$(date -u +%H:%M:%S)" "$(rss_line)" >>"$BENCH_RESULTS/rss-samples.txt"
    sleep 1
done
wait "$waiter" || true
sleep 5
cat "$WORK/pending.txt" | tee -a "$BENCH_REPORT"
bench_result "runs unfinished (LLEN runs:active + LLEN runs:queue)" \
    "$(($(redis-cli -p "$REDIS_PORT" LLEN runs:active) + $(redis-cli -p "$REDIS_PORT" LLEN runs:queue)))"
bench_result "RSS KiB with $RUNS runs in flight" "$(rss_line)"
bench_result "peak RSS KiB (VmHWM)" "api $(bench_peak_rss_kib "$API_PID"), worker $(bench_peak_rss_kib "$WORKER_PID")"
