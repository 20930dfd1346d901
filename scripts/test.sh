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

stage "cargo test (unit and black-box tests)"
cargo test --workspace --locked

if [ -x scripts/check-deploy.sh ]; then
  stage "deployment checks"
  scripts/check-deploy.sh
fi

if [ -x scripts/test-ui.sh ]; then
  stage "browser tests"
  scripts/test-ui.sh
fi

stage "all checks passed"
