#!/usr/bin/env bash
# Fuzzes the HTTP API with Schemathesis, driven by the service's own
# /openapi.json: every operation with generated valid and invalid input,
# then stateful sequences along the document's links (create a run, then
# get, logs, events and delete it). It starts its own redis-server and
# `code-runner dev` on free loopback ports and stops them when it ends.
#
# Checks: no 5xx, every status code documented, every response body valid
# against its schema, every content type documented. Prints a final
# "N passed, N failed" line and exits non-zero on any failure, or when the
# service is down afterwards.
#
# Environment: CODE_RUNNER_CACHE (default ~/.cache/code-runner) is where
# the virtualenv goes. FUZZ_SEED and FUZZ_MAX_EXAMPLES set the seed and the
# number of generated cases per operation, and FUZZ_CHECKS the Schemathesis
# checks. CODE_RUNNER_BIN runs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
CACHE="${CODE_RUNNER_CACHE:-$HOME/.cache/code-runner}"
VENV="$CACHE/venv-fuzz"
SEED="${FUZZ_SEED:-20261204}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-1500}"

log() { printf '==> %s\n' "$*"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a command succeeds, for at most $1 tenths of a second.
wait_for() {
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

ensure_runtime
command -v curl >/dev/null || ensure_packages curl
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  ensure_packages python3-venv
fi

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

if [ -n "${CODE_RUNNER_BIN:-}" ]; then
  BIN="$CODE_RUNNER_BIN"
else
  log "building code-runner"
  cargo build --locked --bin code-runner
  BIN="$PWD/target/debug/code-runner"
fi

# The service log and the JUnit report stay here after the run.
REPORT_DIR="$PWD/target/fuzz-api"
rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/code-runner-fuzz.XXXXXX")"
REDIS_PID=""
SERVICE_PID=""
stop_all() {
  if [ -n "$SERVICE_PID" ]; then
    kill "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_all EXIT

REDIS_PORT="$(free_port)"
log "starting redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
wait_for 100 redis-cli -p "$REDIS_PORT" ping || { echo "error: redis-server did not start; see its log:" >&2; cat "$WORK/redis.log" >&2; exit 1; }

PORT="$(free_port)"
API="http://127.0.0.1:$PORT"
mkdir -p "$WORK/tmp"
log "starting code-runner dev on $API"
# The rate limit is off so that its 429s do not hide other responses, and
# the short maximum timeout bounds how long a streamed request can wait for
# a generated program to end. A token makes the documented security real.
TOKEN="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" LISTEN_ADDR="127.0.0.1:$PORT" API_TOKENS="$TOKEN" \
  METRICS_ADDR="127.0.0.1:$(free_port)" RATE_LIMIT_PER_SECOND=0 RUN_MAX_TIMEOUT_SECONDS=5 \
  TMPDIR="$WORK/tmp" NO_COLOR=1 RUST_LOG=info \
  "$BIN" dev >"$REPORT_DIR/service.log" 2>&1 &
SERVICE_PID=$!
wait_for 300 curl -sf "$API/health" || { echo "error: code-runner dev did not start; see its log:" >&2; tail -30 "$REPORT_DIR/service.log" >&2; exit 1; }

log "validating $API/openapi.json as OpenAPI 3.1"
curl -sf "$API/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

# Counts the failed checks (<failure>) and the tool's own errors (<error>) in a JUnit report.
count_outcomes() {
  python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError):
    print(0, 0)
    sys.exit()
failures = sum(1 for case in cases if case.find("failure") is not None)
errors = sum(1 for case in cases if case.find("error") is not None)
print(failures, errors)
PY
}

run_schemathesis() {
  "$VENV/bin/st" --no-color run "$API/openapi.json" \
  --checks "${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
  --phases examples,coverage,fuzzing,stateful \
  --header "Authorization: Bearer $TOKEN" \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --workers 2 \
  --request-timeout 30 \
  --suppress-health-check all \
  --generation-database none \
  --report junit --report-junit-path "$REPORT_DIR/junit.xml"
}

log "running schemathesis (seed $SEED, $MAX_EXAMPLES examples per operation)"
started=$SECONDS
status=0
run_schemathesis || status=$?
log "schemathesis finished in $((SECONDS - started)) s with exit status $status"
if [ "$status" -ne 0 ]; then
  read -r check_failures tool_errors < <(count_outcomes "$REPORT_DIR/junit.xml")
  if [ "$check_failures" -eq 0 ] && [ "$tool_errors" -gt 0 ]; then
    # NOTE: Schemathesis 4.32 on CPython 3.11.7 sometimes stops a phase with its
    # own "Runtime Error" (SystemError: AST constructor recursion depth
    # mismatch, inside Hypothesis), which is no finding about the API. One
    # more run separates that from a real failure.
    log "schemathesis failed inside itself ($tool_errors runtime errors, no failed checks); running it once more"
    started=$SECONDS
    status=0
    run_schemathesis || status=$?
    log "schemathesis finished in $((SECONDS - started)) s with exit status $status"
  fi
fi

service_up=0
if curl -sf "$API/health" >/dev/null; then
  service_up=1
else
  echo "error: code-runner dev no longer responds to /health after the fuzzing; the end of its log:" >&2
  tail -30 "$REPORT_DIR/service.log" >&2
fi
if grep -qE "panicked| ERROR " "$REPORT_DIR/service.log"; then
  echo "code-runner logged errors or panics during the fuzzing:" >&2
  grep -E "panicked| ERROR " "$REPORT_DIR/service.log" | head -20 >&2
fi

# One test case per operation and phase in the JUnit report.
read -r passed failed < <(python3 - "$REPORT_DIR/junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError):
    print(0, 1)
    sys.exit()
passed = failed = 0
for case in cases:
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is None:
        passed += 1
print(passed, failed)
PY
)
[ "$service_up" -eq 1 ] || failed=$((failed + 1))
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "fuzz-api: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
