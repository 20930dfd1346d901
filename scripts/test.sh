#!/usr/bin/env bash
# Sets up what the tests need and runs all of them: formatting, lints, unit
# and black-box tests against real Redis servers, the offline deployment
# checks and the browser tests. Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

stage() { printf '\n==> %s\n' "$*"; }

ensure_runtime
ensure_redis

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "local test cluster (etcd, kube-apiserver, controller manager, scheduler, simulated kubelet)"
cluster_was_up=0
scripts/local-cluster.sh status >/dev/null 2>&1 && cluster_was_up=1
scripts/local-cluster.sh up
if [ "$cluster_was_up" -eq 0 ]; then
  # Stop only a cluster this script started, so a developer's own one stays up.
  trap 'scripts/local-cluster.sh down >/dev/null 2>&1 || true' EXIT
fi
eval "$(scripts/local-cluster.sh env)"
# Kubernetes tests fail instead of skipping when the cluster is missing.
export CODE_RUNNER_REQUIRE_CLUSTER=1

stage "cargo test (unit, black-box and Kubernetes tests)"
cargo test --workspace --locked --no-fail-fast

stage "API fuzzing from /openapi.json (Schemathesis)"
scripts/fuzz-api.sh

stage "dashboard queries against real /metrics output"
scripts/check-dashboard-live.sh

if [ -x scripts/check-deploy.sh ]; then
  stage "deployment checks"
  scripts/check-deploy.sh
fi

if [ -x scripts/test-ui.sh ]; then
  stage "browser tests"
  scripts/test-ui.sh
fi

stage "all checks passed"
