#!/usr/bin/env bash
# Instruction profile of POST /runs: `code-runner api` under
# `valgrind --tool=callgrind`, against a private redis-server. Instruction
# counts do not depend on what else the machine runs, so this profile
# compares across runs where the wall-clock figures of submit.sh do not.
#
# The api starts with instrumentation off. After 200 warm-up requests,
# callgrind_control turns it on, BENCH_RUNS requests go out one after
# another from one connection, and the counts are dumped.
#
# Usage: scripts/bench/profile-submit.sh
#   BENCH_RUNS  measured requests (default 2000)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-2000}

command -v valgrind >/dev/null || bench_die "valgrind is missing; install it with 'apt-get install valgrind'"

bench_init profile-submit
bench_binary
bench_redis
port=$(bench_free_ports 1)
API_URL=http://127.0.0.1:$port
bench_start api env REDIS_URL="$REDIS_URL" LISTEN_ADDR=127.0.0.1:$port EXECUTOR=local \
    QUEUE_MAX_DEPTH=10000000 RUST_LOG="${BENCH_RUST_LOG:-info}" "${BENCH_API_ENV[@]}" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$BENCH_RESULTS/callgrind.out" \
    "$CODE_RUNNER" api
API_PID=$BENCH_LAST_PID
bench_wait_http "$API_URL/ready" 120

"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count 200 --rate 0 --code 'print("hello")' \
    --out "$WORK/warmup.jsonl" >/dev/null
callgrind_control -i on "$API_PID" >/dev/null
"${BENCH_PY[@]}" submit-sequential --url "$API_URL" --count "$RUNS" --rate 0 --code 'print("hello")' \
    --out "$WORK/runs.jsonl" | tee -a "$BENCH_REPORT"
callgrind_control -i off "$API_PID" >/dev/null
# SIGTERM ends the api cleanly, and callgrind writes its counts at exit.
bench_stop_pid "$API_PID"

callgrind_annotate --inclusive=yes "$BENCH_RESULTS/callgrind.out" >"$BENCH_RESULTS/inclusive.txt" 2>/dev/null
callgrind_annotate "$BENCH_RESULTS/callgrind.out" >"$BENCH_RESULTS/self.txt" 2>/dev/null
total=$(sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' "$BENCH_RESULTS/self.txt" | tr -d ,)
bench_result "instructions per POST /runs (api process, all threads)" \
    "$(awk -v t="$total" -v n="$RUNS" 'BEGIN { printf "%.0f", t / n }')"
bench_result "reports" "$BENCH_RESULTS/inclusive.txt, $BENCH_RESULTS/self.txt"
