#!/usr/bin/env bash
# Watch to Redis: from a Pod status change made by the simulated kubelet to
# the run's state in Redis, against the local test cluster.
#
# Method: kubelet-sim logs "container started" and "container terminated",
# with microsecond UTC timestamps, just before it sends the matching Pod
# status patch. The run's state change in Redis is the runs:events entry
# that the same Lua script writes with the hash. Its id is the Redis server
# time in milliseconds. Both clocks are this machine's CLOCK_REALTIME. The
# difference covers the status patch, the API server and etcd, the watch
# through the fault proxy, the worker's mapping and the Redis script. For
# final states it also covers the worker's pods/log read. An independent
# watch on the API server (watch-observer in benchlib.py) splits each figure
# into the cluster's part and the worker's part. Its times are those of a
# Python client, so the worker's part can come out a few ms below zero.
# Redis times are truncated to the millisecond, so each figure reads 0 to
# 1 ms low.
#
# Two phases: runs submitted one by one at a light rate, then a burst of
# 1000 runs submitted at once, whose rates show how fast state changes reach
# Redis with that many runs in flight. Every program is `pass`.
#
# Usage: scripts/bench/watch.sh
#   BENCH_LIGHT_RUNS  runs of the light phase (default 200, at 10 per s)
#   BENCH_BURST_RUNS  runs of the burst phase (default 1000)
#   BENCH_PROFILE     1 to record a CPU profile of the worker during the
#                     first 60 s of the burst (perf record with DWARF call
#                     graphs), with reports in target/bench/watch/
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIGHT_RUNS=${BENCH_LIGHT_RUNS:-200}
BURST_RUNS=${BENCH_BURST_RUNS:-1000}

bench_init watch
bench_binary
bench_redis
# Room for every burst Pod at once: each requests 50m CPU and 256Mi memory.
CLUSTER_NODE_PODS=${CLUSTER_NODE_PODS:-1100} CLUSTER_NODE_CPU=${CLUSTER_NODE_CPU:-64} \
    CLUSTER_NODE_MEMORY=${CLUSTER_NODE_MEMORY:-400Gi} bench_cluster_up cluster
KUBELET_LOG=$CODE_RUNNER_CLUSTER_DIR/logs/kubelet-sim.log
bench_start_api EXECUTOR=kubernetes KUBECONFIG="$KUBECONFIG_API"
bench_start_worker bench-worker-1
WORKER_PID=$BENCH_LAST_PID

# An independent watch on the API server, not through the fault proxy,
# splits each latency into the cluster's part and the worker's part.
bench_start observer "${BENCH_PY[@]}" watch-observer --apiserver-url "$KUBE_APISERVER_URL" \
    --ca-file "$KUBE_CA_FILE" --token "$KUBE_ADMIN_TOKEN" --timeout 1100 --out "$BENCH_RESULTS/observer.jsonl"

bench_log "warm-up: 10 runs"
"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count 10 --rate 10 --out "$WORK/warmup.jsonl" >/dev/null
jq -r .id "$WORK/warmup.jsonl" >"$WORK/warmup.ids"
"${BENCH_PY[@]}" wait-finished --redis-port "$REDIS_PORT" --runs "$WORK/warmup.ids" --timeout 60

bench_log "light phase: $LIGHT_RUNS runs at 10 per second"
"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count "$LIGHT_RUNS" --rate 10 \
    --out "$WORK/light.jsonl" | tee -a "$BENCH_REPORT"
jq -r .id "$WORK/light.jsonl" >"$BENCH_RESULTS/light.ids"
"${BENCH_PY[@]}" wait-finished --redis-port "$REDIS_PORT" --runs "$BENCH_RESULTS/light.ids" --timeout 120
"${BENCH_PY[@]}" watch-report --redis-port "$REDIS_PORT" --kubelet-log "$KUBELET_LOG" \
    --runs "$BENCH_RESULTS/light.ids" --observer "$BENCH_RESULTS/observer.jsonl" --label light | tee -a "$BENCH_REPORT"

bench_log "burst phase: $BURST_RUNS runs at once"
burst_started=$(date +%s.%N)
worker_cpu_before=$(bench_cpu_seconds "$WORKER_PID")
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    perf record -F 499 --call-graph dwarf,16384 -p "$WORKER_PID" -o "$BENCH_RESULTS/worker.perf.data" -- sleep 60 \
        >"$WORK/perf-record.log" 2>&1 &
    PERF_PID=$!
fi
entries_before=$(redis-cli -p "$REDIS_PORT" XLEN runs:events)
# The local cluster starts about 5 Pods per second, so the last Pods of the
# burst start minutes later. A 300 s timeout gives a Job deadline of 360 s,
# which they all meet.
"${BENCH_PY[@]}" submit-burst --url "$API_URL" --count "$BURST_RUNS" --threads 8 --timeout-seconds 300 \
    --out "$BENCH_RESULTS/burst.ids" | sed 's/^/burst /' | tee -a "$BENCH_REPORT"
"${BENCH_PY[@]}" wait-finished --redis-port "$REDIS_PORT" --runs "$BENCH_RESULTS/burst.ids" --timeout 600
burst_ended=$(date +%s.%N)
if [ -n "${PERF_PID:-}" ]; then
    wait "$PERF_PID" || bench_log "perf record failed; see $WORK/perf-record.log"
    perf report -i "$BENCH_RESULTS/worker.perf.data" --stdio --no-children --percent-limit 0.5 -g none \
        >"$BENCH_RESULTS/worker.perf-self.txt" 2>/dev/null || true
    perf report -i "$BENCH_RESULTS/worker.perf.data" --stdio --children --percent-limit 1 -g none \
        >"$BENCH_RESULTS/worker.perf-children.txt" 2>/dev/null || true
fi
worker_cpu=$(awk -v a="$worker_cpu_before" -v b="$(bench_cpu_seconds "$WORKER_PID")" 'BEGIN { printf "%.2f", b - a }')
# The api wrote the burst's queued entries, and the worker wrote the rest.
writes=$(($(redis-cli -p "$REDIS_PORT" XLEN runs:events) - entries_before - BURST_RUNS))
# Requests the API server served during the whole run, to compare with
# the controller manager's default client limit (20 per second in v1.20):
# the Job controller creates each Pod and an event for it, and updates the
# Job's status.
curl -s --cacert "$KUBE_CA_FILE" -H "Authorization: Bearer $KUBE_ADMIN_TOKEN" \
    "$KUBE_APISERVER_URL/metrics" >"$BENCH_RESULTS/apiserver-metrics.txt"
requests_of() {
    awk -v verb="$1" -v resource="$2" -v subresource="$3" '
        /^apiserver_request_total\{/ && $0 ~ "verb=\"" verb "\"" && $0 ~ "resource=\"" resource "\"" &&
        $0 ~ "subresource=\"" subresource "\"" { total += $NF }
        END { printf "%d", total }' "$BENCH_RESULTS/apiserver-metrics.txt"
}
bench_result "API server requests over the whole run" \
    "POST pods $(requests_of POST pods ''), POST events $(requests_of POST events ''), PUT jobs/status $(requests_of PUT jobs status), PATCH pods/status $(requests_of PATCH pods status)"
bench_result "burst wall time from the first POST to the last final state, s" \
    "$(awk -v a="$burst_started" -v b="$burst_ended" 'BEGIN { printf "%.1f", b - a }')"
"${BENCH_PY[@]}" watch-report --redis-port "$REDIS_PORT" --kubelet-log "$KUBELET_LOG" \
    --runs "$BENCH_RESULTS/burst.ids" --observer "$BENCH_RESULTS/observer.jsonl" --label burst --rates |
    tee -a "$BENCH_REPORT"
bench_result "burst worker CPU seconds, and CPU ms per runs:events entry it wrote" \
    "$worker_cpu, $(awk -v c="$worker_cpu" -v n="$writes" 'BEGIN { printf "%.2f", 1000 * c / n }')"
bench_result "worker peak RSS KiB (VmHWM)" "$(bench_peak_rss_kib "$WORKER_PID")"
cp "$KUBELET_LOG" "$BENCH_RESULTS/kubelet-sim.log"
