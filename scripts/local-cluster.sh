#!/usr/bin/env bash
# Local Kubernetes control plane on 127.0.0.1 for testing code-runner's
# Kubernetes executor: real etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler (built from Debian 12's kubernetes source package), a
# simulated kubelet and a fault-injecting proxy (crate kube-testbed).
#
# Usage: scripts/local-cluster.sh up|down|status|env|compact|selftest|build
# See docs/local-cluster.md.
set -euo pipefail

K8S_VERSION=1.20.2
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${CODE_RUNNER_CACHE:-$HOME/.cache/code-runner}
K8S_CACHE=$CACHE_DIR/kubernetes-v$K8S_VERSION
BIN_DIR=$K8S_CACHE/bin
STATE_DIR=${CODE_RUNNER_CLUSTER_DIR:-/tmp/code-runner-cluster}

# Ports on 127.0.0.1, away from the components' defaults (2379, 6443, 10257,
# 10259, 10250) so that a real cluster on the same machine does not collide.
ETCD_PORT=${CLUSTER_ETCD_PORT:-23790}
ETCD_PEER_PORT=${CLUSTER_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${CLUSTER_APISERVER_PORT:-16443}
CONTROLLER_MANAGER_PORT=${CLUSTER_CONTROLLER_MANAGER_PORT:-16444}
SCHEDULER_PORT=${CLUSTER_SCHEDULER_PORT:-16445}
PROXY_PORT=${CLUSTER_PROXY_PORT:-16480}
PROXY_ADMIN_PORT=${CLUSTER_PROXY_ADMIN_PORT:-16481}
KUBELET_PORT_BASE=${CLUSTER_KUBELET_PORT_BASE:-16501}
# Simulated nodes: name[:label=value[,label=value]] separated by spaces.
NODES=${CLUSTER_NODES:-"node-a:runner=true node-b:runner=true node-c"}
# Capacity of each simulated node, as Kubernetes quantities.
NODE_CPU=${CLUSTER_NODE_CPU:-4}
NODE_MEMORY=${CLUSTER_NODE_MEMORY:-8Gi}
NODE_PODS=${CLUSTER_NODE_PODS:-110}
# Milliseconds each container waits in ContainerCreating (image pull time).
START_DELAY_MILLIS=${CLUSTER_START_DELAY_MILLIS:-0}

APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
PROXY_URL=https://127.0.0.1:$PROXY_PORT
ETCD_URL=http://127.0.0.1:$ETCD_PORT
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler fault-proxy kubelet-sim)

log() { printf '%s local-cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Tools and the Kubernetes build

ensure_packages() {
    local missing=()
    command -v go >/dev/null || missing+=(golang-go)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v etcdctl >/dev/null || missing+=(etcd-client)
    command -v rsync >/dev/null || missing+=(rsync)
    command -v jq >/dev/null || missing+=(jq)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
    [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || missing+=(golang-github-modern-go-reflect2-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; then
            # A fresh machine may have no package lists yet.
            log "apt-get install failed, updating package lists and retrying"
            apt-get update -q >&2 || die "apt-get update failed"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
                die "apt-get install ${missing[*]} failed"
        fi
    fi
}

# Writes deb-src entries mirroring the machine's own deb entries into a private
# apt directory, so 'apt-get source' works without touching /etc/apt.
write_private_apt_config() {
    local apt_dir=$1
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
    : >"$apt_dir/sources.list"
    if [ -f /etc/apt/sources.list ]; then
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >>"$apt_dir/sources.list"
    fi
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        sed 's/^Types:.*/Types: deb-src/' "$file" >"$apt_dir/parts/$(basename "$file")"
    done
    for file in /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$file" >>"$apt_dir/sources.list"
    done
}

fetch_kubernetes_source() {
    local src_root=$K8S_CACHE/src
    if [ -n "$(find "$src_root" -maxdepth 2 -name Makefile -path '*/kubernetes-*' 2>/dev/null | head -1)" ]; then
        return
    fi
    local apt_dir=$K8S_CACHE/apt
    write_private_apt_config "$apt_dir"
    local apt_opts=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
        -o "Debug::NoLocking=1"
        -o "APT::Sandbox::User=root"
    )
    log "fetching source indexes into $apt_dir"
    apt-get "${apt_opts[@]}" update -q >&2 || die "apt-get update with private deb-src sources failed"
    mkdir -p "$src_root"
    log "downloading and unpacking the kubernetes source package into $src_root"
    (cd "$src_root" && apt-get "${apt_opts[@]}" source -q kubernetes >&2) ||
        die "apt-get source kubernetes failed"
    [ -n "$(find "$src_root" -maxdepth 1 -type d -name "kubernetes-*$K8S_VERSION*")" ] ||
        die "the kubernetes source package is not version $K8S_VERSION: $(ls "$src_root")"
}

build_kubernetes() {
    local wanted=(kube-apiserver kube-controller-manager kube-scheduler)
    local name have_all=1
    for name in "${wanted[@]}"; do [ -x "$BIN_DIR/$name" ] || have_all=0; done
    [ $have_all = 1 ] && return

    ensure_packages
    fetch_kubernetes_source
    local tree
    tree=$(find "$K8S_CACHE/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
    [ -n "$tree" ] || die "no unpacked kubernetes-* directory under $K8S_CACHE/src"

    # Vendored reflect2 1.0.1 calls reflect.mapiterinit with its pre-Go-1.18
    # signature. Built with Go 1.19, every JSON encoding of a map then
    # corrupts memory and kube-apiserver dies with 'fatal error: fault'.
    # Version 1.0.2 fixes it.
    log "replacing vendored reflect2 with Debian's 1.0.2"
    rsync -a --delete /usr/share/gocode/src/github.com/modern-go/reflect2/ "$tree/vendor/github.com/modern-go/reflect2/"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"

    local gopath=$K8S_CACHE/gopath
    mkdir -p "$gopath/src/k8s.io"
    ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
    log "building ${wanted[*]} (several minutes); output in $K8S_CACHE/build.log"
    (
        cd "$gopath/src/k8s.io/kubernetes"
        export GOPATH=$gopath GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE=$K8S_CACHE/gocache
        export KUBE_GIT_VERSION=v$K8S_VERSION KUBE_GIT_TREE_STATE=clean
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
    ) >"$K8S_CACHE/build.log" 2>&1 || die "kubernetes build failed; see $K8S_CACHE/build.log"

    mkdir -p "$BIN_DIR"
    for name in "${wanted[@]}"; do
        local built
        built=$(find "$tree/_output" -type f -name "$name" -perm -u+x | head -1)
        [ -n "$built" ] || die "build produced no $name; see $K8S_CACHE/build.log"
        install -m 0755 "$built" "$BIN_DIR/$name"
    done
    log "binaries installed in $BIN_DIR"
}

# ---------------------------------------------------------------------------
# Files in the state directory

PKI=$STATE_DIR/pki
PIDS=$STATE_DIR/pids
LOGS=$STATE_DIR/logs

write_pki() {
    mkdir -p "$PKI"
    [ -f "$PKI/apiserver.crt" ] && return
    log "writing CA, serving certificates and service-account keys into $PKI"
    (
        cd "$PKI"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
            -subj "/CN=code-runner-local-cluster-ca" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        local name
        for name in apiserver proxy kubelet; do
            openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" \
                -subj "/CN=code-runner-local-$name" 2>/dev/null
            printf '%s\n' "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth" \
                "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc" >"$name.ext"
            openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile "$name.ext" -out "$name.crt" 2>/dev/null
            rm -f "$name.csr" "$name.ext"
        done
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 600 ./*.key
    )
}

# Static tokens: one cluster admin and two that authenticate as the
# ServiceAccounts that deploy/ binds its Roles to.
write_tokens() {
    [ -f "$PKI/tokens.csv" ] && return
    local admin api worker
    admin=$(openssl rand -hex 24)
    api=$(openssl rand -hex 24)
    worker=$(openssl rand -hex 24)
    local sa_groups="system:serviceaccounts,system:serviceaccounts:code-runner-system,system:authenticated"
    {
        printf '%s,admin,admin,"system:masters,system:authenticated"\n' "$admin"
        printf '%s,system:serviceaccount:code-runner-system:code-runner-api,code-runner-api,"%s"\n' "$api" "$sa_groups"
        printf '%s,system:serviceaccount:code-runner-system:code-runner-worker,code-runner-worker,"%s"\n' "$worker" "$sa_groups"
    } >"$PKI/tokens.csv"
    chmod 600 "$PKI/tokens.csv"
}

token_of() {
    awk -F, -v uid="$1" '$3 == uid { print $1 }' "$PKI/tokens.csv"
}

write_kubeconfig() {
    local file=$1 server=$2 user=$3 token=$4
    local ca_data
    ca_data=$(base64 -w0 <"$PKI/ca.crt")
    cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: code-runner-local
  cluster:
    server: $server
    certificate-authority-data: $ca_data
users:
- name: $user
  user:
    token: $token
contexts:
- name: code-runner-local
  context:
    cluster: code-runner-local
    user: $user
current-context: code-runner-local
KUBECONFIG
    chmod 600 "$file"
}

write_kubeconfigs() {
    local identity
    for identity in admin api worker; do
        local uid=$identity
        [ "$identity" = admin ] || uid=code-runner-$identity
        local token
        token=$(token_of "$uid")
        write_kubeconfig "$STATE_DIR/$identity.kubeconfig" "$APISERVER_URL" "$identity" "$token"
        write_kubeconfig "$STATE_DIR/$identity-proxy.kubeconfig" "$PROXY_URL" "$identity" "$token"
    done
}

# ---------------------------------------------------------------------------
# Processes

pid_of() {
    local file=$PIDS/$1.pid
    [ -f "$file" ] || return 1
    local pid
    pid=$(cat "$file")
    # The command line check guards against a recycled pid.
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1"; then
        echo "$pid"
        return 0
    fi
    return 1
}

start_component() {
    local name=$1
    shift
    if pid_of "$name" >/dev/null; then
        return
    fi
    mkdir -p "$PIDS" "$LOGS"
    log "starting $name (log: $LOGS/$name.log)"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}

# True while $1 runs; a zombie waiting for its parent to reap it counts as
# stopped.
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

stop_component() {
    local name=$1 pid
    pid=$(pid_of "$name") || {
        rm -f "$PIDS/$name.pid"
        return 0
    }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while alive "$pid"; do
        if [ $waited -ge 100 ]; then
            log "$name did not stop within 10s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    rm -f "$PIDS/$name.pid"
}

# Stops the script if component $1 has exited, showing the end of its log.
require_running() {
    pid_of "$1" >/dev/null && return
    tail -n 15 "$LOGS/$1.log" >&2 || true
    die "$1 exited during start; see $LOGS/$1.log (is one of its ports in use?)"
}

# Waits until `curl` of $2 with the admin token returns 'ok', at most $3
# seconds, while component $1 runs.
wait_for_ok() {
    local what=$1 url=$2 limit=$3 started
    started=$(date +%s)
    until [ "$(curl -s --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" "$url" 2>/dev/null)" = ok ]; do
        require_running "$what"
        if [ $(($(date +%s) - started)) -ge "$limit" ]; then
            die "$what not ready after ${limit}s; see $LOGS/"
        fi
        sleep 0.5
    done
}

testbed_binaries() {
    local target_dir
    target_dir=$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    echo "$target_dir/debug"
}

# ---------------------------------------------------------------------------
# Commands

start_etcd() {
    mkdir -p "$STATE_DIR/etcd"
    start_component etcd etcd --name code-runner-local --data-dir "$STATE_DIR/etcd" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "code-runner-local=http://127.0.0.1:$ETCD_PEER_PORT" \
        --listen-metrics-urls "" --log-level warn
    local tries=0
    until ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" endpoint health >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ $tries -lt 60 ] || die "etcd not healthy after 30s; see $LOGS/etcd.log"
        sleep 0.5
    done
}

start_control_plane() {
    # The watch cache is off so that watches read etcd directly: after
    # `compact`, a watch resumed from an older resourceVersion gets 410 Gone.
    start_component kube-apiserver "$BIN_DIR/kube-apiserver" \
        --etcd-servers "$ETCD_URL" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
        --insecure-port 0 \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --token-auth-file "$PKI/tokens.csv" \
        --authorization-mode RBAC \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range 10.96.0.0/16 \
        --kubelet-preferred-address-types InternalIP \
        --feature-gates TTLAfterFinished=true \
        --watch-cache=false \
        --profiling=false \
        --v 1
    wait_for_ok kube-apiserver "$APISERVER_URL/readyz" 90

    local kubeconfig=$STATE_DIR/admin.kubeconfig
    start_component kube-controller-manager "$BIN_DIR/kube-controller-manager" \
        --kubeconfig "$kubeconfig" \
        --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --port 0 \
        --controllers '*' \
        --feature-gates TTLAfterFinished=true \
        --use-service-account-credentials \
        --service-account-private-key-file "$PKI/sa.key" \
        --root-ca-file "$PKI/ca.crt" \
        --leader-elect=false \
        --profiling=false \
        --v 1
    start_component kube-scheduler "$BIN_DIR/kube-scheduler" \
        --kubeconfig "$kubeconfig" \
        --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --port 0 \
        --leader-elect=false \
        --profiling=false \
        --v 1
}

start_testbed() {
    local bin
    bin=$(testbed_binaries)
    # Cargo waits for the workspace build lock, which other builds may hold
    # for minutes, so it runs only when a source is newer than a binary.
    local crate=$REPO_ROOT/tests/support/kube-testbed
    if [ ! -x "$bin/kubelet-sim" ] || [ ! -x "$bin/fault-proxy" ] ||
        [ -n "$(find "$crate" "$REPO_ROOT/Cargo.lock" -newer "$bin/kubelet-sim" -print -quit 2>/dev/null)" ] ||
        [ -n "$(find "$crate" "$REPO_ROOT/Cargo.lock" -newer "$bin/fault-proxy" -print -quit 2>/dev/null)" ]; then
        log "building kube-testbed"
        (cd "$REPO_ROOT" && cargo build -q -p kube-testbed) || die "cargo build -p kube-testbed failed"
        touch "$bin/kubelet-sim" "$bin/fault-proxy"
    fi
    start_component fault-proxy "$bin/fault-proxy" \
        --listen "127.0.0.1:$PROXY_PORT" --admin-listen "127.0.0.1:$PROXY_ADMIN_PORT" \
        --upstream "$APISERVER_URL" --upstream-ca "$PKI/ca.crt" \
        --tls-cert "$PKI/proxy.crt" --tls-key "$PKI/proxy.key"

    local node_args=() node
    for node in $NODES; do node_args+=(--node "$node"); done
    local python=/usr/bin/python3
    [ -x "$python" ] || python=$(command -v python3)
    start_component kubelet-sim "$bin/kubelet-sim" \
        --kubeconfig "$STATE_DIR/admin.kubeconfig" \
        "${node_args[@]}" --kubelet-port-base "$KUBELET_PORT_BASE" \
        --node-cpu "$NODE_CPU" --node-memory "$NODE_MEMORY" --node-pods "$NODE_PODS" \
        --start-delay-millis "$START_DELAY_MILLIS" \
        --work-dir "$STATE_DIR/kubelet" \
        --tls-cert "$PKI/kubelet.crt" --tls-key "$PKI/kubelet.key" \
        --python "$python" --node-binary "$(command -v node || echo node)"
}

wait_for_nodes() {
    local expected started
    expected=$(wc -w <<<"$NODES")
    started=$(date +%s)
    while true; do
        local ready
        ready=$(api_get /api/v1/nodes |
            jq '[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))
                 | select(all(.spec.taints[]?; .key != "node.kubernetes.io/not-ready"))] | length' 2>/dev/null || echo 0)
        [ "$ready" -ge "$expected" ] && return
        require_running kubelet-sim
        if [ $(($(date +%s) - started)) -ge 60 ]; then
            die "only $ready of $expected nodes Ready after 60s; see $LOGS/kubelet-sim.log"
        fi
        sleep 1
    done
}

api_get() {
    curl -sS --fail --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" "$APISERVER_URL$1"
}

cmd_up() {
    ensure_packages
    build_kubernetes
    mkdir -p "$STATE_DIR" "$PIDS" "$LOGS"
    write_pki
    write_tokens
    write_kubeconfigs
    start_etcd
    start_control_plane
    start_testbed
    wait_for_ok fault-proxy "$PROXY_URL/readyz" 30
    wait_for_nodes
    log "cluster ready; run '$0 env' for its settings"
}

cmd_down() {
    local index
    for ((index = ${#COMPONENTS[@]} - 1; index >= 0; index--)); do
        stop_component "${COMPONENTS[$index]}"
    done
}

cmd_status() {
    local name pid running=0
    for name in "${COMPONENTS[@]}"; do
        if pid=$(pid_of "$name"); then
            printf '%-24s running (pid %s)\n' "$name" "$pid"
            running=$((running + 1))
        else
            printf '%-24s stopped\n' "$name"
        fi
    done
    if pid_of kube-apiserver >/dev/null; then
        printf '%-24s %s\n' readyz "$(curl -s --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" "$APISERVER_URL/readyz" || echo unreachable)"
        api_get /api/v1/nodes 2>/dev/null | jq -r '.items[] | "node \(.metadata.name) ready=\(.status.conditions[]? | select(.type == "Ready") | .status) labels=\(.metadata.labels | to_entries | map(select(.key | startswith("kubernetes.io/") | not)) | map("\(.key)=\(.value)") | join(","))"' || true
    fi
    [ $running = ${#COMPONENTS[@]} ]
}

cmd_env() {
    [ -f "$PKI/tokens.csv" ] || die "no cluster state in $STATE_DIR; run '$0 up' first"
    cat <<ENV
export CODE_RUNNER_CLUSTER_DIR=$STATE_DIR
export KUBE_APISERVER_URL=$APISERVER_URL
export KUBE_PROXY_URL=$PROXY_URL
export KUBE_CA_FILE=$PKI/ca.crt
export KUBE_ADMIN_TOKEN=$(token_of admin)
export KUBECONFIG_ADMIN=$STATE_DIR/admin.kubeconfig
export KUBECONFIG_API=$STATE_DIR/api.kubeconfig
export KUBECONFIG_WORKER=$STATE_DIR/worker.kubeconfig
export KUBECONFIG_ADMIN_PROXY=$STATE_DIR/admin-proxy.kubeconfig
export KUBECONFIG_API_PROXY=$STATE_DIR/api-proxy.kubeconfig
export KUBECONFIG_WORKER_PROXY=$STATE_DIR/worker-proxy.kubeconfig
export FAULT_PROXY_ADMIN_URL=http://127.0.0.1:$PROXY_ADMIN_PORT
export ETCD_ENDPOINTS=$ETCD_URL
ENV
}

# Forces 410 Gone on resumed watches: two writes move etcd's revision past
# every resourceVersion a client has seen, compaction to that revision
# removes the history, and the proxy drops open watches so they resume.
cmd_compact() {
    pid_of etcd >/dev/null || die "etcd is not running; run '$0 up' first"
    local etcdctl=(env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL")
    "${etcdctl[@]}" put /code-runner-testbed/compact-marker "$(date +%s%N)" >/dev/null
    "${etcdctl[@]}" put /code-runner-testbed/compact-marker "$(date +%s%N)" >/dev/null
    local revision
    revision=$("${etcdctl[@]}" endpoint status -w json | jq '.[0].Status.header.revision')
    "${etcdctl[@]}" compact "$revision" >/dev/null
    local dropped
    dropped=$(curl -sS --fail -X POST -H 'content-type: application/json' -d '{}' \
        "http://127.0.0.1:$PROXY_ADMIN_PORT/watches/drop" | jq .dropped) ||
        die "etcd compacted to revision $revision, but the fault proxy did not drop its watches; is it running?"
    printf '{"compacted_revision": %s, "dropped_watches": %s}\n' "$revision" "$dropped"
}

# ---------------------------------------------------------------------------
# Self test

# Sends an admin-token request to the API server: api METHOD PATH [JSON].
api() {
    local method=$1 path=$2 body=${3:-}
    local args=(-sS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" -X "$method")
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' -d "$body")
    curl "${args[@]}" "$APISERVER_URL$path"
}

# Polls `$2` (a shell command) every 0.5s until it succeeds, at most $3 seconds.
wait_until() {
    local what=$1 check=$2 limit=$3 started
    started=$(date +%s)
    until eval "$check"; do
        [ $(($(date +%s) - started)) -lt "$limit" ] || die "selftest: $what did not happen within ${limit}s"
        sleep 0.5
    done
}

cmd_selftest() {
    pid_of kube-apiserver >/dev/null || die "the cluster is not running; run '$0 up' first"
    local namespace=code-runner-selftest job
    job=selftest-$(date +%s)
    api POST /api/v1/namespaces "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$namespace\"}}" >/dev/null

    log "selftest: creating Job $namespace/$job (python3 -c 'print(42)' on a runner=true node)"
    local manifest
    manifest=$(jq -n --arg name "$job" '{
        apiVersion: "batch/v1", kind: "Job",
        metadata: {name: $name},
        spec: {
            backoffLimit: 0, ttlSecondsAfterFinished: 3, activeDeadlineSeconds: 60,
            template: {spec: {
                restartPolicy: "Never", automountServiceAccountToken: false,
                nodeSelector: {runner: "true"},
                containers: [{name: "runner", image: "python:3.12-slim",
                              command: ["python3", "-c", "print(42)"]}]
            }}
        }}')
    local created
    created=$(api POST "/apis/batch/v1/namespaces/$namespace/jobs" "$manifest" | jq -r '.metadata.uid // .message')
    [[ $created =~ ^[0-9a-f-]{36}$ ]] || die "selftest: Job creation failed: $created"

    local pods_path="/api/v1/namespaces/$namespace/pods?labelSelector=job-name%3D$job"
    wait_until "Pod of $job succeeded" \
        "[ \"\$(api GET '$pods_path' | jq -r '.items[0].status.phase')\" = Succeeded ]" 60
    local pod node
    pod=$(api GET "$pods_path" | jq -r '.items[0].metadata.name')
    node=$(api GET "$pods_path" | jq -r '.items[0].spec.nodeName')
    case $node in
    node-a | node-b) ;;
    *) die "selftest: Pod $pod ran on $node, not on a runner=true node" ;;
    esac
    log "selftest: Pod $pod succeeded on $node"

    local output
    output=$(api GET "/api/v1/namespaces/$namespace/pods/$pod/log")
    [ "$output" = 42 ] || die "selftest: pods/log returned '$output', expected '42'"
    log "selftest: pods/log returned '42'"

    wait_until "TTL deletion of Job $job" \
        "[ \"\$(api GET '/apis/batch/v1/namespaces/$namespace/jobs/$job' | jq -r .code)\" = 404 ]" 60
    wait_until "garbage collection of Pod $pod" \
        "[ \"\$(api GET '/api/v1/namespaces/$namespace/pods/$pod' | jq -r .code)\" = 404 ]" 60
    log "selftest: the TTL controller deleted the Job and its Pod is gone"

    local admin_url=http://127.0.0.1:$PROXY_ADMIN_PORT
    curl -sS --fail -X POST -H 'content-type: application/json' \
        -d '{"status":500,"count":1,"method":"GET","path_contains":"/api/v1/namespaces/code-runner-selftest"}' \
        "$admin_url/faults" >/dev/null
    local through_proxy
    through_proxy=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" \
        -H "Authorization: Bearer $(token_of admin)" "$PROXY_URL/api/v1/namespaces/$namespace")
    [ "$through_proxy" = 500 ] || die "selftest: fault proxy returned $through_proxy, expected the injected 500"
    through_proxy=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" \
        -H "Authorization: Bearer $(token_of admin)" "$PROXY_URL/api/v1/namespaces/$namespace")
    [ "$through_proxy" = 200 ] || die "selftest: fault proxy returned $through_proxy after the burst, expected 200"
    log "selftest: fault proxy injected one 500, then forwarded"
    log "selftest: passed"
}

main() {
    local command=${1:-}
    case $command in
    build) build_kubernetes ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    compact) cmd_compact ;;
    selftest) cmd_selftest ;;
    *) die "usage: $0 up|down|status|env|compact|selftest|build" ;;
    esac
}

main "$@"
