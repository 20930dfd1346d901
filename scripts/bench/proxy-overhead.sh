#!/usr/bin/env bash
# Fault proxy overhead of a dispatch: the same sequential runs through
# one worker that reaches the API server straight, then through one that
# goes through the fault proxy (no latency added). The figure is the
# worker's own code_runner_dispatch_seconds: Job create, `dispatched`
# write, ConfigMap create.
#
# Usage: scripts/bench/proxy-overhead.sh
#   BENCH_RUNS  runs per route (default 100, at 10 per s)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-100}

bench_init proxy-overhead
bench_binary
bench_redis
bench_cluster_up cluster
bench_start_api EXECUTOR=kubernetes KUBECONFIG="$KUBECONFIG_API"

for route in direct proxy; do
    kubeconfig=$KUBECONFIG_WORKER
    [ "$route" = direct ] || kubeconfig=$KUBECONFIG_WORKER_PROXY
    bench_start_worker "worker-$route" KUBECONFIG="$kubeconfig"
    worker_pid=$BENCH_LAST_PID
    bench_log "$RUNS runs through the $route route"
    "${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count "$RUNS" --rate 10 --out "$WORK/$route.jsonl" >/dev/null
    sleep 2
    curl -s "${WORKER_HEALTH_URL%/health}/metrics" >"$BENCH_RESULTS/metrics-$route.txt"
    bench_stop_pid "$worker_pid"
    bench_result "$route: dispatch time, mean ms, and runs per non-empty histogram bucket (upper bound in ms)" "$(
        awk '/^code_runner_dispatch_seconds_sum/ { sum = $2 }
             /^code_runner_dispatch_seconds_count/ { count = $2 }
             /^code_runner_dispatch_seconds_bucket/ {
                 match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
                 if (le != "+Inf" && $2 > previous) { buckets = buckets sprintf(" <=%g: %d", le * 1000, $2 - previous) }
                 previous = $2
             }
             END { printf "mean %.1f;%s", 1000 * sum / count, buckets }' "$BENCH_RESULTS/metrics-$route.txt"
    )"
done
