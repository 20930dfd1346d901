#!/usr/bin/env bash
# Checks that every metric the Grafana dashboard queries is exported by the
# real binaries: starts an api and a worker against a private Redis and the
# local test cluster, runs a few programs, scrapes both /metrics endpoints and
# hands the scrapes to check-dashboard-metrics.py.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KUBECONFIG_WORKER:-}" ]; then
  eval "$(scripts/local-cluster.sh env)"
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
api_port=$(free_port)
metrics_port=$(free_port)

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
cargo build --quiet --locked --bin code-runner
kubectl --kubeconfig "$KUBECONFIG_ADMIN" apply -f deploy/base/namespaces.yaml -f deploy/base/rbac.yaml >/dev/null

export REDIS_URL=redis://127.0.0.1:$redis_port
KUBECONFIG=$KUBECONFIG_WORKER WORKER_ID=dashboard-check METRICS_ADDR=127.0.0.1:$metrics_port \
  RUNNER_NODE_SELECTOR=runner=true ./target/debug/code-runner worker >"$work/worker.log" 2>&1 &
pids+=($!)
KUBECONFIG=$KUBECONFIG_API LISTEN_ADDR=127.0.0.1:$api_port ./target/debug/code-runner api >"$work/api.log" 2>&1 &
pids+=($!)

api=http://127.0.0.1:$api_port
for _ in $(seq 1 100); do
  curl -sf "$api/ready" >/dev/null && curl -sf "http://127.0.0.1:$metrics_port/health" >/dev/null && break
  sleep 0.2
done

ids=()
for code in 'print(1)' 'import sys; sys.exit(2)'; do
  body=$(python3 -c 'import json,sys; print(json.dumps({"language":"python","code":sys.argv[1]}))' "$code")
  ids+=("$(curl -sf -X POST "$api/runs" -H 'Content-Type: application/json' -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")
done
body='{"language":"javascript","code":"console.log(1)"}'
ids+=("$(curl -sf -X POST "$api/runs" -H 'Content-Type: application/json' -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')")

for id in "${ids[@]}"; do
  for _ in $(seq 1 300); do
    status=$(curl -sf "$api/runs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $status in succeeded|failed|timed_out|cancelled|error) break ;; esac
    sleep 0.2
  done
  echo "run $id: $status"
done
curl -sf "$api/runs/${ids[0]}/logs" >/dev/null
curl -sf "$api/system/status" >/dev/null

curl -sf "$api/metrics" >"$work/api.prom"
curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work/worker.prom"
mkdir -p tests/artifacts/metrics
cp "$work/api.prom" "$work/worker.prom" tests/artifacts/metrics/
python3 scripts/check-dashboard-metrics.py dashboards/code-runner.json "$work/api.prom" "$work/worker.prom"
