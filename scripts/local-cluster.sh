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
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
            die "apt-get install ${missing[*]} failed; run 'apt-get update' and retry"
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
    # signature; built with Go 1.19, every JSON encoding of a map corrupts
    # memory and kube-apiserver dies with 'fatal error: fault'. 1.0.2 fixes it.
    log "replacing vendored reflect2 with Debian's 1.0.2"
    rsync -a --delete /usr/share/gocode/src/github.com/modern-go/reflect2/ "$tree/vendor/github.com/modern-go/reflect2/"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"

    local gopath=$K8S_CACHE/gopath
    mkdir -p "$gopath/src/k8s.io"
    ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
    log "building ${wanted[*]} (about 5 minutes on 2 cores); output in $K8S_CACHE/build.log"
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

main() {
    local command=${1:-}
    case $command in
    build) build_kubernetes ;;
    *) die "usage: $0 up|down|status|env|compact|selftest|build" ;;
    esac
}

main "$@"
