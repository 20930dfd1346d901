#!/usr/bin/env bash
# Browser tests of the UI (ui/tests/*.test.mjs) in headless Chromium.
#
# Sets up what is missing: Debian's chromium package, the Node.js packages in
# ui/ (npm ci) and the code-runner binary (cargo build). Then it starts its
# own Redis server and two `code-runner dev` servers on free loopback ports,
# one open and one with API_TOKENS set, runs the tests and stops everything.
# The last line printed is "N passed, N failed"; the exit status is 1 when a
# test failed or the set-up did.
#
# Usage: scripts/test-ui.sh [substring of test names to run]
#
# Environment:
#   CODE_RUNNER_BIN  binary to test instead of building target/debug/code-runner
#   CHROMIUM_PATH    Chromium to drive (default: /usr/bin/chromium)
#
# Screenshots and server logs go to tests/artifacts/ui/.
set -euo pipefail

REPO_ROOT="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
ARTIFACTS_DIR="$REPO_ROOT/tests/artifacts/ui"
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
# A token for the server started with API_TOKENS; the server requires at least 16 characters.
AUTH_TOKEN="ui-test-token-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/code-runner-ui.XXXXXX")"
REDIS_PORT=""
SERVER_PIDS=()
TESTS_RAN=0

log() {
  echo "test-ui: $*" >&2
}

cleanup() {
  local status=$?
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$REDIS_PORT" ]]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 ||
      { [[ -f "$WORK_DIR/redis.pid" ]] && kill "$(cat "$WORK_DIR/redis.pid")" 2>/dev/null; } || true
  fi
  rm -rf "$WORK_DIR"
  if [[ $TESTS_RAN -eq 0 ]]; then
    # The set-up failed before any test ran; keep the promised last line.
    echo "0 passed, 1 failed"
    [[ $status -eq 0 ]] && status=1
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e 'const server = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(server.address().port); server.close(); });'
}

wait_for_health() {
  local url=$1 pid=$2 log_file=$3
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url/health" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the server for $url exited during start-up; its log:"
      tail -n 30 "$log_file" >&2
      return 1
    fi
    sleep 0.2
  done
  log "the server for $url did not respond on /health within 20 s; its log is $log_file"
  return 1
}

install_chromium() {
  if [[ -x "$CHROMIUM_PATH" ]]; then
    return
  fi
  log "installing Debian's chromium package"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
  fi
  if [[ ! -x "$CHROMIUM_PATH" ]]; then
    log "no Chromium at $CHROMIUM_PATH after installing the chromium package; set CHROMIUM_PATH"
    return 1
  fi
}

install_node_packages() {
  # npm writes node_modules/.package-lock.json on every install; it is older
  # than package-lock.json when the lock file changed since.
  local installed="$REPO_ROOT/ui/node_modules/.package-lock.json"
  if [[ ! -f "$installed" || "$REPO_ROOT/ui/package-lock.json" -nt "$installed" ]]; then
    log "installing the UI test packages (npm ci)"
    (cd "$REPO_ROOT/ui" && npm ci --no-audit --no-fund >&2)
  fi
}

# Copies the binary, because the local executor re-executes its own binary for
# each run, and a rebuild of target/debug during the tests would replace it.
prepare_binary() {
  local binary="${CODE_RUNNER_BIN:-}"
  if [[ -z "$binary" ]]; then
    log "building code-runner"
    (cd "$REPO_ROOT" && cargo build --quiet --bin code-runner >&2)
    binary="$REPO_ROOT/target/debug/code-runner"
  fi
  cp "$binary" "$WORK_DIR/code-runner"
}

start_redis() {
  REDIS_PORT="$(free_port)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --dir "$WORK_DIR" --pidfile "$WORK_DIR/redis.pid" \
    --logfile "$WORK_DIR/redis.log"
  for _ in $(seq 1 50); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  log "redis-server on port $REDIS_PORT did not start; see $WORK_DIR/redis.log"
  return 1
}

# Starts `code-runner dev`; the extra arguments are environment assignments.
start_server() {
  local name=$1 port=$2
  shift 2
  local log_file="$ARTIFACTS_DIR/$name.log"
  (cd "$WORK_DIR" && exec env "$@" LISTEN_ADDR="127.0.0.1:$port" LOG_FORMAT=text \
    "$WORK_DIR/code-runner" dev >"$log_file" 2>&1) &
  SERVER_PIDS+=("$!")
  wait_for_health "http://127.0.0.1:$port" "$!" "$log_file"
}

main() {
  mkdir -p "$ARTIFACTS_DIR"
  install_chromium
  install_node_packages
  prepare_binary
  start_redis

  local port auth_port
  port="$(free_port)"
  auth_port="$(free_port)"
  # Two runs at a time, so that a batch of 5 leaves runs waiting in the queue.
  start_server server "$port" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" WORKER_CONCURRENCY=2
  # The token server uses Redis database 1, so its worker never takes the other server's runs.
  start_server server-auth "$auth_port" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1" \
    API_TOKENS="$AUTH_TOKEN" WORKER_CONCURRENCY=1

  TESTS_RAN=1
  cd "$REPO_ROOT/ui"
  UI_BASE_URL="http://127.0.0.1:$port" \
    UI_AUTH_BASE_URL="http://127.0.0.1:$auth_port" \
    UI_AUTH_TOKEN="$AUTH_TOKEN" \
    UI_REDIS_PORT="$REDIS_PORT" \
    UI_REDIS_DIR="$WORK_DIR" \
    UI_ARTIFACTS_DIR="$ARTIFACTS_DIR" \
    UI_SERVER_LOGS="$ARTIFACTS_DIR/server.log $ARTIFACTS_DIR/server-auth.log" \
    CHROMIUM_PATH="$CHROMIUM_PATH" \
    node tests/run-tests.mjs "$@"
}

main "$@"
