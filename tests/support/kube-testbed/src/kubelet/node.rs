//! Node registration and heartbeats: labels, Ready conditions, addresses,
//! the kubelet port for logs, and removal of the not-ready taints.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::status::timestamp;

/// A node this kubelet simulates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub kubelet_port: u16,
}

/// Resources each node reports as capacity and allocatable, as Kubernetes
/// quantities. The scheduler places Pods by their requests against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
}

/// Taints the node lifecycle controller sets while a node is not Ready.
const NOT_READY_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Creates the Node, or updates the labels of an existing one.
pub async fn register(client: &Client, spec: &NodeSpec) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = spec.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), spec.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());

    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": spec.name, "labels": labels },
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %spec.name, "node registered"),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let patch = json!({ "metadata": { "labels": labels } });
            api.patch(&spec.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %spec.name, "node already registered, labels updated");
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Posts Ready status for `spec` and removes not-ready taints, every
/// `interval`, forever.
pub async fn heartbeat(client: Client, spec: NodeSpec, capacity: NodeCapacity, interval: Duration) {
    let api: Api<Node> = Api::all(client);
    let since = Utc::now();
    let mut failures: u64 = 0;
    loop {
        let result = async {
            api.patch_status(
                &spec.name,
                &PatchParams::default(),
                &Patch::Merge(status_patch(&spec, &capacity, since)),
            )
            .await?;
            remove_not_ready_taints(&api, &spec.name).await
        }
        .await;
        match result {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                // Logs the first failure and then every tenth, so an API
                // server outage does not flood the log.
                if failures == 1 || failures % 10 == 0 {
                    tracing::warn!(node = %spec.name, %error, failures, "node heartbeat failed");
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

async fn remove_not_ready_taints(api: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    let node = api.get(name).await?;
    let taints = node.spec.and_then(|spec| spec.taints).unwrap_or_default();
    let remaining: Vec<_> = taints
        .iter()
        .filter(|taint| !NOT_READY_TAINTS.contains(&taint.key.as_str()))
        .cloned()
        .collect();
    if remaining.len() != taints.len() {
        let patch = json!({ "spec": { "taints": remaining } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(node = name, "not-ready taints removed");
    }
    Ok(())
}

fn status_patch(spec: &NodeSpec, capacity: &NodeCapacity, since: DateTime<Utc>) -> Value {
    let now = timestamp(Utc::now());
    let since = timestamp(since);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since,
        })
    };
    let resources = json!({
        "cpu": capacity.cpu,
        "memory": capacity.memory,
        "pods": capacity.pods,
        "ephemeral-storage": "20Gi",
    });
    json!({
        "status": {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet-sim is posting ready status"),
            ],
            "addresses": [
                { "type": "InternalIP", "address": "127.0.0.1" },
                { "type": "Hostname", "address": spec.name },
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": spec.kubelet_port } },
            "capacity": resources,
            "allocatable": resources,
            "nodeInfo": {
                "machineID": format!("kubelet-sim-{}", spec.name),
                "systemUUID": format!("kubelet-sim-{}", spec.name),
                "bootID": format!("kubelet-sim-{}", spec.name),
                "kernelVersion": "simulated",
                "osImage": "kubelet-sim",
                "containerRuntimeVersion": "kubelet-sim://0.1.0",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
    })
}

/// Parses `name[:key=value[,key=value]]` into a node with `kubelet_port`.
pub fn parse_node(text: &str, kubelet_port: u16) -> Result<NodeSpec, String> {
    let (name, labels_text) = text.split_once(':').unwrap_or((text, ""));
    if name.is_empty() {
        return Err(format!(
            "invalid node {text:?}: the name is empty; expected name[:key=value,...]"
        ));
    }
    let mut labels = BTreeMap::new();
    for pair in labels_text.split(',').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("invalid label {pair:?} of node {name}: expected key=value"))?;
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(NodeSpec {
        name: name.to_string(),
        labels,
        kubelet_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_node_with_labels() {
        let node = parse_node("node-a:runner=true,zone=z1", 16501).unwrap();
        assert_eq!(node.name, "node-a");
        assert_eq!(node.labels.get("runner").map(String::as_str), Some("true"));
        assert_eq!(node.labels.get("zone").map(String::as_str), Some("z1"));
        assert_eq!(node.kubelet_port, 16501);
    }

    #[test]
    fn parse_node_without_labels() {
        let node = parse_node("node-c", 16503).unwrap();
        assert!(node.labels.is_empty());
    }

    #[test]
    fn parse_node_rejects_bad_label() {
        assert!(parse_node("node-a:runner", 1).is_err());
        assert!(parse_node(":a=b", 1).is_err());
    }
}
