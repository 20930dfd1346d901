#!/usr/bin/env bash
# Dispatch latency: from the 201 of POST /runs, taken by the client with a
# nanosecond clock, to the arrival of the run's Job create request at the
# fault proxy in front of the local test cluster's API server. One idle
# worker dispatches. Runs are submitted one by one at a modest rate, so each dispatch
# ends before the next submission and the creates pair with the runs in order.
#
# Usage: scripts/bench/dispatch.sh
#   BENCH_RUNS  runs to measure (default 1000)
#   BENCH_RATE  submissions per second (default 20)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-1000}
RATE=${BENCH_RATE:-20}

bench_init dispatch
bench_binary
bench_redis
CLUSTER_NODE_PODS=${CLUSTER_NODE_PODS:-1100} CLUSTER_NODE_CPU=${CLUSTER_NODE_CPU:-64} \
    CLUSTER_NODE_MEMORY=${CLUSTER_NODE_MEMORY:-400Gi} bench_cluster_up cluster
bench_start_api EXECUTOR=kubernetes KUBECONFIG="$KUBECONFIG_API"
bench_start_worker bench-worker-1
WORKER_PID=$BENCH_LAST_PID

bench_log "warm-up: 20 runs"
"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count 20 --rate 10 --out "$WORK/warmup.jsonl" >/dev/null
sleep 2

bench_proxy POST /recordings '{"name":"job-creates","method":"POST","path_contains":"/jobs"}' >/dev/null
bench_proxy POST /recordings '{"name":"configmap-creates","method":"POST","path_contains":"/configmaps"}' >/dev/null
bench_log "submitting $RUNS runs at $RATE per second"
bench_cpu_start redis-server="$REDIS_PID" api="$API_PID" worker="$WORKER_PID"
"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count "$RUNS" --rate "$RATE" \
    --out "$BENCH_RESULTS/submissions.jsonl" | tee -a "$BENCH_REPORT"
cpu_split=$(bench_cpu_split)
"${BENCH_PY[@]}" wait-arrivals --admin-url "$FAULT_PROXY_ADMIN_URL" --name job-creates \
    --count "$RUNS" --timeout 60 --out "$BENCH_RESULTS/arrivals.json"
"${BENCH_PY[@]}" wait-arrivals --admin-url "$FAULT_PROXY_ADMIN_URL" --name configmap-creates \
    --count "$RUNS" --timeout 60 --out "$BENCH_RESULTS/configmap-arrivals.json"

{
    echo "worker: 1 process, WORKER_CONCURRENCY 4 (default), Job creates through the fault proxy"
    "${BENCH_PY[@]}" dispatch-report --submissions "$BENCH_RESULTS/submissions.jsonl" \
        --arrivals "$BENCH_RESULTS/arrivals.json" --configmap-arrivals "$BENCH_RESULTS/configmap-arrivals.json"
    echo "CPU during the submissions: $cpu_split"
    echo "worker RSS KiB after the runs: $(bench_rss_kib "$WORKER_PID")"
} | tee -a "$BENCH_REPORT"
