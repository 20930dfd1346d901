# Shared helpers of the benchmark scripts, sourced by each of them.
#
# Every script gets a private work directory, free loopback ports, its own
# redis-server, a copy of the release binary and, where it needs one, its own
# local test cluster. Everything it started is stopped on exit, and the work
# directory is removed unless BENCH_KEEP=1.
#
# Settings:
#   BENCH_OUT         where each script leaves its report and raw data
#                     (default target/bench)
#   BENCH_SKIP_BUILD  1 to use target/release/code-runner as it is
#   BENCH_KEEP        1 to keep the work directory (logs of every process)
#   BENCH_RUST_LOG    RUST_LOG of the code-runner processes (default info,
#                     the shipped default)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
BENCH_PY=(python3 "$BENCH_DIR/benchlib.py")

bench_log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${BENCH_NAME:-bench}" "$*" >&2; }
bench_die() {
    bench_log "error: $*"
    exit 1
}

# Prints one result line, "name: value", on stdout and into the report file.
bench_result() {
    printf '%s: %s\n' "$1" "$2" | tee -a "$BENCH_REPORT"
}

# Creates the work and output directories and installs the cleanup trap.
bench_init() {
    BENCH_NAME=$1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/code-runner-bench-$BENCH_NAME.XXXXXX")
    # Runner Pods of the simulated kubelet run as a non-root user from
    # directories below this one.
    chmod 755 "$WORK"
    BENCH_RESULTS=${BENCH_OUT:-$REPO_ROOT/target/bench}/$BENCH_NAME
    mkdir -p "$BENCH_RESULTS"
    BENCH_REPORT=$BENCH_RESULTS/report.txt
    : >"$BENCH_REPORT"
    BENCH_PIDS=()
    BENCH_CLUSTERS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    bench_log "work directory $WORK, results in $BENCH_RESULTS"
}

bench_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    local index pid
    for ((index = ${#BENCH_PIDS[@]} - 1; index >= 0; index--)); do
        bench_stop_pid "${BENCH_PIDS[$index]}"
    done
    local dir
    for dir in "${BENCH_CLUSTERS[@]}"; do
        bench_log "stopping the local cluster in $dir"
        CODE_RUNNER_CLUSTER_DIR=$dir "$REPO_ROOT/scripts/local-cluster.sh" down >>"$WORK/cluster-down.log" 2>&1
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        bench_log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}

# Stops one process started by bench_start: SIGTERM, then SIGKILL after 15 s.
bench_stop_pid() {
    local pid=$1 waited=0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 150 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        bench_log "pid $pid did not stop within 15 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# Prints N free TCP ports on 127.0.0.1, one per line.
bench_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
for s in sockets:
    print(s.getsockname()[1])
PY
}

# Prints the first of three consecutive free ports (the simulated kubelets).
bench_free_port_run() {
    python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 30000)
    bound = []
    try:
        for port in range(base, base + 3):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            bound.append(s)
    except OSError:
        continue
    finally:
        for s in bound:
            s.close()
    print(base)
    break
else:
    raise SystemExit("no three consecutive free ports found")
PY
}

# Starts a background process whose output goes to $WORK/NAME.log and
# records its pid for cleanup; the pid is in BENCH_LAST_PID.
bench_start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    BENCH_LAST_PID=$!
    BENCH_PIDS+=("$BENCH_LAST_PID")
}

# Builds the release binary (unless BENCH_SKIP_BUILD=1) and copies it into
# the work directory, so a rebuild by someone else cannot swap it mid-run.
bench_binary() {
    local target_dir
    target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        bench_log "cargo build --release"
        (cd "$REPO_ROOT" && cargo build --release -q --bin code-runner) >&2 ||
            bench_die "cargo build --release failed"
    fi
    [ -x "$target_dir/release/code-runner" ] || bench_die "no $target_dir/release/code-runner; run without BENCH_SKIP_BUILD"
    cp "$target_dir/release/code-runner" "$WORK/code-runner"
    CODE_RUNNER=$WORK/code-runner
}

# Starts a private redis-server on a free port; sets REDIS_PORT and REDIS_URL.
bench_redis() {
    REDIS_PORT=$(bench_free_ports 1)
    bench_start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" --logfile "$WORK/redis-server.log"
    REDIS_PID=$BENCH_LAST_PID
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    local tries=0
    until [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ]; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || bench_die "redis-server did not answer within 10 s; see $WORK/redis-server.log"
        sleep 0.1
    done
}

# Waits until URL returns 200, at most SECONDS.
bench_wait_http() {
    local url=$1 limit=$2 started
    started=$(date +%s)
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url")" = 200 ]; do
        [ $(($(date +%s) - started)) -lt "$limit" ] || bench_die "$url did not return 200 within ${limit}s; see $WORK/*.log"
        sleep 0.2
    done
}

# Starts a local test cluster of its own in $WORK/$1 on free ports, applies
# the namespaces and RBAC of deploy/base and exports its settings
# (KUBECONFIG_*, FAULT_PROXY_ADMIN_URL). CLUSTER_NODE_* and
# CLUSTER_START_DELAY_MILLIS pass through to scripts/local-cluster.sh.
bench_cluster_up() {
    # scripts/check-deploy.sh caches a kubectl here when none is on PATH.
    KUBECTL=$(command -v kubectl || echo "${CODE_RUNNER_CACHE:-$HOME/.cache/code-runner}/kubectl/kubectl")
    [ -x "$KUBECTL" ] || bench_die "kubectl is missing; put one on PATH or run scripts/check-deploy.sh once, which installs one"
    local dir=$WORK/$1
    export CODE_RUNNER_CLUSTER_DIR=$dir
    local ports
    mapfile -t ports < <(bench_free_ports 7)
    export CLUSTER_ETCD_PORT=${ports[0]} CLUSTER_ETCD_PEER_PORT=${ports[1]}
    export CLUSTER_APISERVER_PORT=${ports[2]} CLUSTER_CONTROLLER_MANAGER_PORT=${ports[3]}
    export CLUSTER_SCHEDULER_PORT=${ports[4]} CLUSTER_PROXY_PORT=${ports[5]}
    export CLUSTER_PROXY_ADMIN_PORT=${ports[6]}
    CLUSTER_KUBELET_PORT_BASE=$(bench_free_port_run)
    export CLUSTER_KUBELET_PORT_BASE
    BENCH_CLUSTERS+=("$dir")
    bench_log "starting a local cluster in $dir (API server port $CLUSTER_APISERVER_PORT)"
    "$REPO_ROOT/scripts/local-cluster.sh" up >"$WORK/$1-up.log" 2>&1 || {
        tail -20 "$WORK/$1-up.log" >&2
        bench_die "scripts/local-cluster.sh up failed"
    }
    eval "$("$REPO_ROOT/scripts/local-cluster.sh" env)"
    "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" apply \
        -f "$REPO_ROOT/deploy/base/namespaces.yaml" -f "$REPO_ROOT/deploy/base/rbac.yaml" >"$WORK/$1-apply.log" 2>&1 ||
        bench_die "applying deploy/base/namespaces.yaml and rbac.yaml failed; see $WORK/$1-apply.log"
    # The namespace's default ServiceAccount appears a moment after the namespace.
    local tries=0
    until "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" -n code-runner-runs get serviceaccount default >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 60 ] || bench_die "no default ServiceAccount in code-runner-runs after 30 s"
        sleep 0.5
    done
}

# Stops the cluster started last by bench_cluster_up.
bench_cluster_down() {
    local last=$((${#BENCH_CLUSTERS[@]} - 1))
    [ $last -ge 0 ] || return 0
    CODE_RUNNER_CLUSTER_DIR=${BENCH_CLUSTERS[$last]} "$REPO_ROOT/scripts/local-cluster.sh" down >>"$WORK/cluster-down.log" 2>&1 || true
    unset "BENCH_CLUSTERS[$last]"
}

# Sends a JSON body to the fault proxy's admin API: bench_proxy METHOD PATH [JSON].
bench_proxy() {
    local args=(-sS --fail -X "$1" -H 'content-type: application/json')
    [ -z "${3:-}" ] || args+=(-d "$3")
    curl "${args[@]}" "$FAULT_PROXY_ADMIN_URL$2"
}

# Prints the resident set size of a pid in KiB (VmRSS), or 0 when it is gone.
bench_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# Prints the CPU time (user + system) that a pid has used, in seconds.
bench_cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Prints the machine's total and idle CPU time so far, in clock ticks.
bench_cpu_ticks() {
    awk '/^cpu / { idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print total, idle }' /proc/stat
}

# Prints the share of the machine's CPU time that was busy between two
# bench_cpu_ticks readings, as a percentage.
bench_cpu_busy() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, before, " "); split(b, after, " ")
        total = after[1] - before[1]; idle = after[2] - before[2]
        if (total > 0) printf "%.0f%%", 100 * (total - idle) / total; else print "n/a"
    }'
}

# Starts counting CPU time by process: the NAME=PID arguments, plus every
# component of the cluster started last. bench_cpu_split prints the result.
bench_cpu_start() {
    declare -gA BENCH_CPU_PIDS=() BENCH_CPU_BEFORE=()
    local pair file name
    for pair in "$@"; do BENCH_CPU_PIDS[${pair%%=*}]=${pair#*=}; done
    if [ -n "${CODE_RUNNER_CLUSTER_DIR:-}" ]; then
        for file in "$CODE_RUNNER_CLUSTER_DIR"/pids/*.pid; do
            [ -f "$file" ] && BENCH_CPU_PIDS[$(basename "$file" .pid)]=$(cat "$file")
        done
    fi
    for name in "${!BENCH_CPU_PIDS[@]}"; do
        BENCH_CPU_BEFORE[$name]=$(bench_cpu_seconds "${BENCH_CPU_PIDS[$name]}")
    done
    BENCH_CPU_TICKS=$(bench_cpu_ticks)
}

# Prints the machine's busy share and each process's CPU seconds since
# bench_cpu_start, busiest first.
bench_cpu_split() {
    local name split
    split=$(for name in "${!BENCH_CPU_PIDS[@]}"; do
        printf '%s %s\n' "$(awk -v a="${BENCH_CPU_BEFORE[$name]}" -v b="$(bench_cpu_seconds "${BENCH_CPU_PIDS[$name]}")" \
            'BEGIN { printf "%.1f", b - a }')" "$name"
    done | sort -rn | awk '{ printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1 }')
    printf 'machine CPU %s busy; %s' "$(bench_cpu_busy "$BENCH_CPU_TICKS" "$(bench_cpu_ticks)")" "$split"
}

# Prints the peak resident set size of a pid in KiB (VmHWM).
bench_peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# Starts `code-runner worker` with the Kubernetes executor through the fault
# proxy without waiting for it; extra VAR=value arguments go into its
# environment. Sets BENCH_LAST_PID and WORKER_HEALTH_URL.
bench_spawn_worker() {
    local name=$1
    shift
    local metrics_port
    metrics_port=$(bench_free_ports 1)
    bench_start "$name" env REDIS_URL="$REDIS_URL" EXECUTOR=kubernetes \
        KUBECONFIG="$KUBECONFIG_WORKER_PROXY" RUNNER_NODE_SELECTOR=runner=true \
        METRICS_ADDR=127.0.0.1:$metrics_port WORKER_ID="$name" \
        RUST_LOG="${BENCH_RUST_LOG:-info}" "$@" "$CODE_RUNNER" worker
    WORKER_HEALTH_URL=http://127.0.0.1:$metrics_port/health
}

# Starts a worker as bench_spawn_worker does and waits until it serves /health.
bench_start_worker() {
    bench_spawn_worker "$@"
    bench_wait_http "$WORKER_HEALTH_URL" 30
}

# Environment of every API process. All benchmark traffic comes from
# 127.0.0.1, one client to the per-client rate limit, so the limit is set as
# high as it goes: the limiter still runs, and its cost is measured.
BENCH_API_ENV=(RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000)

# Starts `code-runner api` on a free port; extra VAR=value arguments go into
# its environment. Sets API_URL and API_PID.
bench_start_api() {
    local port
    port=$(bench_free_ports 1)
    bench_start api env REDIS_URL="$REDIS_URL" LISTEN_ADDR=127.0.0.1:$port \
        RUST_LOG="${BENCH_RUST_LOG:-info}" "${BENCH_API_ENV[@]}" "$@" "$CODE_RUNNER" api
    API_PID=$BENCH_LAST_PID
    API_URL=http://127.0.0.1:$port
    bench_wait_http "$API_URL/ready" 30
}
