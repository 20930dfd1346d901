#!/usr/bin/env bash
# Sets up what is missing (Redis, Python, Node.js), builds code-runner and
# starts `code-runner dev` on http://127.0.0.1:8080/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_runtime
ensure_redis
echo "==> building code-runner (release)"
cargo build --release --locked --bin code-runner
echo "==> starting code-runner dev on http://${LISTEN_ADDR:-127.0.0.1:8080}/ (Ctrl-C stops it)"
exec ./target/release/code-runner dev
