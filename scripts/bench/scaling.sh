#!/usr/bin/env bash
# Scaling: dispatch throughput of 1, 2 and 4 worker processes against the
# local test cluster, with 5 ms added at the fault proxy to every create
# (POST) request of the workers.
#
# Each round starts a fresh cluster and Redis, queues BENCH_RUNS runs with
# no worker running, then starts the workers together. Throughput is the
# rate of Job create arrivals at the proxy between the 10th and the 90th
# percentile of their times, which leaves out worker start-up and the tail.
# The simulated kubelet keeps containers in ContainerCreating for 10 min, so
# no program runs during a round and the cluster's own work stays small.
#
# Usage: scripts/bench/scaling.sh
#   BENCH_RUNS     runs per round (default 600)
#   BENCH_WORKERS  worker counts (default "1 2 4")
#   BENCH_CREATE_LATENCY_MS  latency added to each create (default 5)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-600}
WORKER_COUNTS=${BENCH_WORKERS:-1 2 4}
LATENCY_MS=${BENCH_CREATE_LATENCY_MS:-5}

bench_init scaling
bench_binary

rate_between() {
    jq -r '.arrivals_unix_nanos | sort | length as $n
        | if $n < 10 then "nan" else
            (($n - 1) * 0.1 | floor) as $a | (($n - 1) * 0.9 | floor) as $b
            | (($b - $a) / ((.[$b] - .[$a]) / 1e9) * 10 | round / 10)
          end' "$1"
}

for workers in $WORKER_COUNTS; do
    bench_log "round with $workers worker process(es)"
    bench_redis
    CLUSTER_START_DELAY_MILLIS=600000 CLUSTER_NODE_PODS=${CLUSTER_NODE_PODS:-1100} \
        CLUSTER_NODE_CPU=${CLUSTER_NODE_CPU:-64} CLUSTER_NODE_MEMORY=${CLUSTER_NODE_MEMORY:-400Gi} \
        bench_cluster_up "cluster-w$workers"
    bench_start_api EXECUTOR=local

    "${BENCH_PY[@]}" submit-burst --url "$API_URL" --count "$RUNS" --threads 4 >/dev/null
    bench_proxy POST /latency "{\"millis\":$LATENCY_MS,\"method\":\"POST\"}" >/dev/null
    bench_proxy POST /recordings '{"name":"job-creates","method":"POST","path_contains":"/jobs"}' >/dev/null

    health_urls=()
    worker_pids=()
    for index in $(seq 1 "$workers"); do
        bench_spawn_worker "bench-worker-$index"
        health_urls+=("$WORKER_HEALTH_URL")
        worker_pids+=("$BENCH_LAST_PID")
    done
    for url in "${health_urls[@]}"; do bench_wait_http "$url" 30; done
    worker_pairs=()
    for index in "${!worker_pids[@]}"; do worker_pairs+=("worker-$((index + 1))=${worker_pids[$index]}"); done
    bench_cpu_start redis-server="$REDIS_PID" "${worker_pairs[@]}"
    "${BENCH_PY[@]}" wait-arrivals --admin-url "$FAULT_PROXY_ADMIN_URL" --name job-creates \
        --count "$RUNS" --timeout 300 --out "$BENCH_RESULTS/arrivals-w$workers.json"
    cpu_split=$(bench_cpu_split)
    for index in "${!health_urls[@]}"; do
        curl -s "${health_urls[$index]%/health}/metrics" >"$BENCH_RESULTS/metrics-w$workers-$((index + 1)).txt"
    done
    # Mean time of one dispatch (Job create, `dispatched` write, ConfigMap
    # create), from the workers' code_runner_dispatch_seconds.
    mean_dispatch=$(cat "$BENCH_RESULTS"/metrics-w"$workers"-*.txt |
        awk '/^code_runner_dispatch_seconds_sum/ { sum += $2 } /^code_runner_dispatch_seconds_count/ { count += $2 }
             END { if (count) printf "%.1f", 1000 * sum / count; else print "n/a" }')
    # The API server's own mean time per create in this round's fresh cluster.
    curl -s --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $KUBE_ADMIN_TOKEN" \
        "$KUBE_APISERVER_URL/metrics" >"$BENCH_RESULTS/apiserver-metrics-w$workers.txt"
    apiserver_create_ms() {
        awk -v resource="$1" '
            $0 ~ "^apiserver_request_duration_seconds_(sum|count)\\{" && $0 ~ "resource=\"" resource "\"" &&
            $0 ~ "verb=\"POST\"" && $0 ~ "subresource=\"\"" {
                if ($0 ~ /_sum\{/) sum += $NF; else count += $NF
            }
            END { if (count) printf "%.1f", 1000 * sum / count; else print "n/a" }' \
            "$BENCH_RESULTS/apiserver-metrics-w$workers.txt"
    }
    first_to_last=$(jq '.arrivals_unix_nanos | sort | (.[-1] - .[0]) / 1e9 * 100 | round / 100' \
        "$BENCH_RESULTS/arrivals-w$workers.json")
    bench_result "$workers worker(s): Job creates per s (10%-90% window)" \
        "$(rate_between "$BENCH_RESULTS/arrivals-w$workers.json") ($RUNS runs, first to last create ${first_to_last} s, mean dispatch ${mean_dispatch} ms with $((workers * 4)) consumers)"
    bench_result "$workers worker(s): API server mean time per create, ms" \
        "Job $(apiserver_create_ms jobs), ConfigMap $(apiserver_create_ms configmaps)"
    bench_result "$workers worker(s): CPU while the workers dispatched" "$cpu_split"

    # Stops this round's processes before the next round starts.
    for ((index = ${#BENCH_PIDS[@]} - 1; index >= 0; index--)); do
        bench_stop_pid "${BENCH_PIDS[$index]}"
    done
    BENCH_PIDS=()
    bench_cluster_down
done
