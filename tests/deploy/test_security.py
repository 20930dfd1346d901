"""Security and contract checks on the rendered manifests in deploy/.

Each assertion message names the object it inspects, so a failure points to
the manifest to fix. Run with pytest from the repository root.
"""

import re

import pytest

SYSTEM_NAMESPACE = "code-runner-system"
RUNNER_NAMESPACE = "code-runner-runs"

# Every rule the service accounts get, as (namespace, role kind, role name) ->
# set of (apiGroup, resource, resourceNames, verbs). These are the calls the
# api and the worker make, and nothing more.
EXPECTED_RULES = {
    (RUNNER_NAMESPACE, "Role", "code-runner-worker"): {
        ("", "configmaps", (), ("create", "delete", "get", "list", "watch")),
        ("batch", "jobs", (), ("create", "delete", "get", "list", "watch")),
        ("", "pods", (), ("create", "delete", "get", "list", "watch")),
        ("", "pods/log", (), ("get",)),
    },
    (RUNNER_NAMESPACE, "Role", "code-runner-api"): {
        ("batch", "jobs", (), ("delete", "get", "list")),
        ("", "pods", (), ("get", "list")),
        ("", "pods/log", (), ("get",)),
    },
    (SYSTEM_NAMESPACE, "Role", "code-runner-api-status"): {
        ("apps", "deployments", ("code-runner-worker",), ("get",)),
        ("", "pods", (), ("list",)),
    },
    (None, "ClusterRole", "code-runner-api-nodes"): {
        ("", "nodes", (), ("list",)),
    },
}

EXPECTED_BINDINGS = {
    (RUNNER_NAMESPACE, "RoleBinding", "code-runner-worker"): ("Role", "code-runner-worker", "code-runner-worker"),
    (RUNNER_NAMESPACE, "RoleBinding", "code-runner-api"): ("Role", "code-runner-api", "code-runner-api"),
    (SYSTEM_NAMESPACE, "RoleBinding", "code-runner-api-status"): ("Role", "code-runner-api-status", "code-runner-api"),
    (None, "ClusterRoleBinding", "code-runner-api-nodes"): ("ClusterRole", "code-runner-api-nodes", "code-runner-api"),
}

# Environment variable names that must never carry a literal value.
SECRET_NAME_PATTERN = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|PRIVATE|API_KEY|AUTH", re.IGNORECASE)

# Settings that the api and the worker read and the manifests must set,
# because a missing one falls back to a default that is wrong in a cluster
# (REDIS_URL, for example, defaults to 127.0.0.1).
REQUIRED_SETTINGS = [
    "REDIS_URL",
    "RUNNER_NAMESPACE",
    "RUNNER_IMAGE_PYTHON",
    "RUNNER_IMAGE_JAVASCRIPT",
    "RUNNER_CPU_LIMIT",
    "RUNNER_MEMORY_LIMIT",
    "RUNNER_START_ALLOWANCE_SECONDS",
    "RUNNER_JOB_TTL_SECONDS",
    "RUN_MAX_CODE_BYTES",
    "RUN_MAX_TIMEOUT_SECONDS",
    "RUN_MAX_LOG_BYTES",
    "RUN_RETENTION",
    "WORKER_CONCURRENCY",
    "QUEUE_MAX_DEPTH",
    "WORKER_NAMESPACE",
    "WORKER_DEPLOYMENT",
    "POD_NAME",
]

REDIS_ADDRESS = "code-runner-redis.code-runner-system.svc.cluster.local:6379"


def find(objects, kind, name, namespace=None):
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind
        and obj["metadata"]["name"] == name
        and obj["metadata"].get("namespace") == namespace
    ]
    assert len(matches) == 1, f"expected one {kind} {namespace}/{name}, found {len(matches)}"
    return matches[0]


def pod_templates(objects):
    """Yield (label, pod spec) for every object that carries a Pod template."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            label = f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
            yield label, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield f"Pod {obj['metadata'].get('namespace')}/{obj['metadata']['name']}", obj["spec"]


def all_containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def config_map_data(objects, pod_spec):
    """Merge the data of every ConfigMap a Pod spec loads with envFrom."""
    data = {}
    for container in pod_spec["containers"]:
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                config_map = find(objects, "ConfigMap", ref["name"], SYSTEM_NAMESPACE)
                data.update(config_map.get("data", {}))
    return data


def container_env(container):
    return {entry["name"]: entry for entry in container.get("env", [])}


def normalized_rules(role):
    rules = set()
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                rules.add((
                    group,
                    resource,
                    tuple(sorted(rule.get("resourceNames", []))),
                    tuple(sorted(rule.get("verbs", []))),
                ))
    return rules


# Namespaces


@pytest.mark.parametrize("namespace", [RUNNER_NAMESPACE, SYSTEM_NAMESPACE])
def test_namespace_enforces_restricted_psa(base_objects, namespace):
    labels = find(base_objects, "Namespace", namespace)["metadata"].get("labels", {})
    for mode in ("enforce", "audit", "warn"):
        key = f"pod-security.kubernetes.io/{mode}"
        assert labels.get(key) == "restricted", f"Namespace {namespace}: {key} is {labels.get(key)!r}"


# RBAC


def test_roles_grant_exact_rules(base_objects):
    roles = [obj for obj in base_objects if obj["kind"] in ("Role", "ClusterRole")]
    found = {(obj["metadata"].get("namespace"), obj["kind"], obj["metadata"]["name"]) for obj in roles}
    assert found == set(EXPECTED_RULES), f"unexpected set of roles: {sorted(found, key=str)}"

    for role in roles:
        key = (role["metadata"].get("namespace"), role["kind"], role["metadata"]["name"])
        assert normalized_rules(role) == EXPECTED_RULES[key], f"{key}: rules differ from the expected list"


def test_roles_use_no_wildcards(base_objects):
    for role in (obj for obj in base_objects if obj["kind"] in ("Role", "ClusterRole")):
        name = role["metadata"]["name"]
        assert "aggregationRule" not in role, f"{name}: aggregated roles can grow without review"
        for rule in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), f"{name}: wildcard in {field}"


def test_roles_grant_no_secret_access(base_objects):
    for role in (obj for obj in base_objects if obj["kind"] in ("Role", "ClusterRole")):
        for rule in role.get("rules", []):
            assert "secrets" not in rule.get("resources", []), f"{role['metadata']['name']}: grants access to secrets"


def test_no_escalating_verbs(base_objects):
    for role in (obj for obj in base_objects if obj["kind"] in ("Role", "ClusterRole")):
        for rule in role.get("rules", []):
            for verb in ("escalate", "bind", "impersonate"):
                assert verb not in rule.get("verbs", []), f"{role['metadata']['name']}: grants {verb}"


def test_bindings_tie_roles_to_service_accounts(base_objects):
    bindings = [obj for obj in base_objects if obj["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    found = {(obj["metadata"].get("namespace"), obj["kind"], obj["metadata"]["name"]) for obj in bindings}
    assert found == set(EXPECTED_BINDINGS), f"unexpected set of bindings: {sorted(found, key=str)}"

    for binding in bindings:
        key = (binding["metadata"].get("namespace"), binding["kind"], binding["metadata"]["name"])
        role_kind, role_name, account = EXPECTED_BINDINGS[key]
        assert binding["roleRef"]["kind"] == role_kind, f"{key}: roleRef kind"
        assert binding["roleRef"]["name"] == role_name, f"{key}: roleRef name"
        subjects = [(s["kind"], s.get("namespace"), s["name"]) for s in binding["subjects"]]
        assert subjects == [("ServiceAccount", SYSTEM_NAMESPACE, account)], f"{key}: subjects {subjects}"


# Workloads


def test_worker_starts_with_zero_replicas(base_objects):
    worker = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)
    assert worker["spec"]["replicas"] == 0


def test_worker_grace_period_covers_dispatches(base_objects):
    worker = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


def test_worker_selects_runner_nodes(base_objects):
    worker = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)
    env = container_env(worker["spec"]["template"]["spec"]["containers"][0])
    assert env["RUNNER_NODE_SELECTOR"].get("value") == "runner=true"


@pytest.mark.parametrize("deployment", ["code-runner-api", "code-runner-worker"])
def test_deployment_sets_every_setting(base_objects, deployment):
    spec = find(base_objects, "Deployment", deployment, SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    configured = set(config_map_data(base_objects, spec)) | set(container_env(spec["containers"][0]))
    missing = [name for name in REQUIRED_SETTINGS if name not in configured]
    assert not missing, f"{deployment}: settings not set: {missing}"


def test_settings_point_at_cluster_services(base_objects):
    spec = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    data = config_map_data(base_objects, spec)
    assert data["REDIS_URL"] == f"redis://{REDIS_ADDRESS}"
    assert data["RUNNER_NAMESPACE"] == RUNNER_NAMESPACE

    env = container_env(spec["containers"][0])
    assert env["WORKER_NAMESPACE"]["value"] == SYSTEM_NAMESPACE
    assert env["WORKER_DEPLOYMENT"]["value"] == "code-runner-worker"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_api_tokens_come_from_optional_secret(base_objects):
    api = find(base_objects, "Deployment", "code-runner-api", SYSTEM_NAMESPACE)
    entry = container_env(api["spec"]["template"]["spec"]["containers"][0])["API_TOKENS"]
    assert "value" not in entry
    reference = entry["valueFrom"]["secretKeyRef"]
    assert reference["optional"] is True
    assert reference["name"] == "code-runner-api-tokens"


def test_no_plain_text_secrets_in_env(base_objects):
    for label, spec in pod_templates(base_objects):
        for container in all_containers(spec):
            for entry in container.get("env", []):
                if SECRET_NAME_PATTERN.search(entry["name"]):
                    assert "value" not in entry, f"{label} {container['name']}: {entry['name']} has a literal value"
                value = entry.get("value", "")
                assert not re.search(r"://[^/@\s]*:[^/@\s]+@", value), (
                    f"{label} {container['name']}: {entry['name']} embeds a password in a URL"
                )

    for config_map in (obj for obj in base_objects if obj["kind"] == "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            name = config_map["metadata"]["name"]
            assert not SECRET_NAME_PATTERN.search(key), f"ConfigMap {name}: {key} looks like a secret"
            assert not re.search(r"://[^/@\s]*:[^/@\s]+@", value), f"ConfigMap {name}: {key} embeds a password"


def test_manifests_contain_no_secret_objects(base_objects, overlay_objects):
    for obj in base_objects + overlay_objects:
        assert obj["kind"] != "Secret", f"Secret {obj['metadata']['name']} belongs to the operator, not the manifests"


def test_probes_use_health_and_ready(base_objects):
    api = find(base_objects, "Deployment", "code-runner-api", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"

    worker = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    assert worker["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["containers"][0]["livenessProbe"]["httpGet"]["port"] == "metrics"
    ports = {port["name"]: port["containerPort"] for port in worker["containers"][0]["ports"]}
    assert ports == {"metrics": 9090}


@pytest.mark.parametrize("deployment, port", [("code-runner-api", "8080"), ("code-runner-worker", "9090")])
def test_pods_carry_scrape_annotations(base_objects, deployment, port):
    template = find(base_objects, "Deployment", deployment, SYSTEM_NAMESPACE)["spec"]["template"]
    annotations = template["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/port") == port
    assert annotations.get("prometheus.io/path") == "/metrics"


def test_one_image_runs_api_and_worker(base_objects):
    images = {}
    for name, command in (("code-runner-api", "api"), ("code-runner-worker", "worker")):
        container = find(base_objects, "Deployment", name, SYSTEM_NAMESPACE)["spec"]["template"]["spec"]["containers"][0]
        images[name] = container["image"]
        assert container["args"] == [command], f"{name}: args {container['args']}"
    assert images["code-runner-api"] == images["code-runner-worker"]
    assert images["code-runner-api"].startswith("code-runner-api:")


def is_pinned(image):
    """Return whether the image names a digest, or a tag other than latest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_images_are_pinned(base_objects):
    for label, spec in pod_templates(base_objects):
        for container in all_containers(spec):
            assert is_pinned(container["image"]), f"{label} {container['name']}: image {container['image']} is not pinned"

    config = find(base_objects, "Deployment", "code-runner-worker", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    data = config_map_data(base_objects, config)
    for key in ("RUNNER_IMAGE_PYTHON", "RUNNER_IMAGE_JAVASCRIPT"):
        image = data[key]
        assert is_pinned(image), f"{key}={image} is not pinned"
        # A minor-version tag such as python:3.12-slim moves with every patch
        # release, so the runner images pin a full patch version.
        assert re.search(r":\d+\.\d+\.\d+", image), f"{key}={image} does not pin a patch version"


def test_containers_are_hardened(base_objects):
    for label, spec in pod_templates(base_objects):
        pod_context = spec.get("securityContext", {})
        assert not spec.get("hostNetwork"), f"{label}: hostNetwork"
        assert not spec.get("hostPID"), f"{label}: hostPID"
        assert not spec.get("hostIPC"), f"{label}: hostIPC"
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, f"{label}: hostPath volume {volume['name']}"

        for container in all_containers(spec):
            where = f"{label} container {container['name']}"
            context = container.get("securityContext", {})
            run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            assert run_as_non_root is True, f"{where}: runAsNonRoot is not true"
            run_as_user = context.get("runAsUser", pod_context.get("runAsUser"))
            assert run_as_user not in (None, 0), f"{where}: runAsUser {run_as_user} (a numeric non-root UID is required)"
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false"
            assert context.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true"
            assert not context.get("privileged"), f"{where}: privileged"
            capabilities = context.get("capabilities", {})
            assert capabilities.get("drop") == ["ALL"], f"{where}: capabilities.drop is {capabilities.get('drop')}"
            assert not capabilities.get("add"), f"{where}: adds capabilities {capabilities.get('add')}"
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccompProfile is {seccomp}"
            limits = container.get("resources", {}).get("limits", {})
            assert "cpu" in limits, f"{where}: a CPU limit is required"
            assert "memory" in limits, f"{where}: a memory limit is required"


def test_only_api_and_worker_get_tokens(base_objects):
    for label, spec in pod_templates(base_objects):
        account = spec.get("serviceAccountName", "default")
        if account in ("code-runner-api", "code-runner-worker"):
            continue
        assert spec.get("automountServiceAccountToken") is False, f"{label}: mounts a token for {account}"


# Redis and KEDA


def test_redis_persists_to_volume(base_objects):
    redis = find(base_objects, "Deployment", "code-runner-redis", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    args = redis["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    claim = redis["volumes"][0]["persistentVolumeClaim"]["claimName"]
    find(base_objects, "PersistentVolumeClaim", claim, SYSTEM_NAMESPACE)
    service = find(base_objects, "Service", "code-runner-redis", SYSTEM_NAMESPACE)
    assert service["spec"]["ports"][0]["port"] == 6379


def test_scaled_object_follows_queue(base_objects):
    scaled = find(base_objects, "ScaledObject", "code-runner-worker-redis-queue", SYSTEM_NAMESPACE)["spec"]
    assert scaled["scaleTargetRef"]["name"] == "code-runner-worker"
    assert scaled["minReplicaCount"] == 0
    assert scaled["maxReplicaCount"] == 10

    triggers = {trigger["metadata"]["listName"]: trigger for trigger in scaled["triggers"]}
    assert set(triggers) == {"runs:queue", "runs:active"}
    for trigger in triggers.values():
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["address"] == REDIS_ADDRESS
        assert trigger["metadata"]["activationListLength"] == "0"
    assert triggers["runs:queue"]["metadata"]["listLength"] == "1"


# Network


def test_runner_namespace_denies_all_traffic(base_objects):
    policies = [
        obj for obj in base_objects
        if obj["kind"] == "NetworkPolicy" and obj["metadata"].get("namespace") == RUNNER_NAMESPACE
    ]
    deny_all = [
        policy for policy in policies
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert deny_all, "no default-deny NetworkPolicy for ingress and egress in the runner namespace"
    # Policies are additive, so any other policy here would open a hole.
    assert len(policies) == 1, f"extra policies in {RUNNER_NAMESPACE}: {[p['metadata']['name'] for p in policies]}"


def test_redis_accepts_only_api_worker_and_keda(base_objects):
    policy = find(base_objects, "NetworkPolicy", "code-runner-redis", SYSTEM_NAMESPACE)["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy.get("egress"), "Redis needs no outgoing connections"

    [rule] = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    sources = []
    for peer in rule["from"]:
        assert "ipBlock" not in peer, "Redis must not accept address ranges"
        namespace = peer.get("namespaceSelector", {}).get("matchLabels")
        pods = peer.get("podSelector", {}).get("matchLabels")
        sources.append((namespace and namespace.get("kubernetes.io/metadata.name"), pods and tuple(sorted(pods.items()))))
    assert sorted(sources, key=str) == sorted([
        (None, (("app.kubernetes.io/component", "api"), ("app.kubernetes.io/name", "code-runner"))),
        (None, (("app.kubernetes.io/component", "worker"), ("app.kubernetes.io/name", "code-runner"))),
        ("keda", (("app", "keda-operator"),)),
    ], key=str)


def test_system_namespace_denies_by_default(base_objects):
    policy = find(base_objects, "NetworkPolicy", "default-deny-all", SYSTEM_NAMESPACE)["spec"]
    assert policy["podSelector"] == {}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy.get("ingress")
    assert not policy.get("egress")


# Exposure


def test_api_service_and_ingress(base_objects):
    service = find(base_objects, "Service", "code-runner-api", SYSTEM_NAMESPACE)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]
    api = find(base_objects, "Deployment", "code-runner-api", SYSTEM_NAMESPACE)["spec"]["template"]["spec"]
    assert api["containers"][0]["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]

    ingress = find(base_objects, "Ingress", "code-runner-api", SYSTEM_NAMESPACE)["spec"]
    assert ingress["ingressClassName"] == "traefik"
    assert ingress["rules"][0]["host"] == "code-runner.local"
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "code-runner-api"


def test_overlay_adds_only_monitors(base_objects, overlay_objects):
    def keys(objects):
        return {(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects}

    added = keys(overlay_objects) - keys(base_objects)
    assert added == {
        ("ServiceMonitor", SYSTEM_NAMESPACE, "code-runner-api"),
        ("PodMonitor", SYSTEM_NAMESPACE, "code-runner-worker"),
    }
    assert keys(base_objects) <= keys(overlay_objects)
