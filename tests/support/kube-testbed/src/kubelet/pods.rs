//! The Pod watch: starts a lifecycle task for each new Pod bound to one of
//! this kubelet's nodes and forwards deletion requests to it.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tracing::Instrument;

use super::lifecycle::{run_pod, Context};
use super::registry::PodHandle;

/// Watches all Pods and runs those bound to `nodes` until the watch fails
/// for good.
pub async fn watch_pods(context: Context, nodes: HashSet<String>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(context.client.clone());
    let mut events = kube::runtime::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen_during_init: HashSet<String> = HashSet::new();

    while let Some(event) = events.try_next().await.transpose() {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "Pod watch failed, retrying with backoff");
                continue;
            }
        };
        match event {
            Event::Init => seen_during_init.clear(),
            Event::InitApply(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    seen_during_init.insert(uid);
                }
                handle_pod(&context, &nodes, pod);
            }
            Event::InitDone => {
                // Pods deleted while the watch was down never send a delete event.
                for uid in context.registry.uids() {
                    if !seen_during_init.contains(&uid) {
                        if let Some(handle) = context.registry.get(&uid) {
                            handle.removed.cancel();
                        }
                    }
                }
            }
            Event::Apply(pod) => handle_pod(&context, &nodes, pod),
            Event::Delete(pod) => {
                if let Some(handle) = pod
                    .metadata
                    .uid
                    .as_deref()
                    .and_then(|uid| context.registry.get(uid))
                {
                    handle.removed.cancel();
                }
            }
        }
    }
    anyhow::bail!("Pod watch stream ended")
}

fn handle_pod(context: &Context, nodes: &HashSet<String>, pod: Pod) {
    let Some(node) = pod.spec.as_ref().and_then(|spec| spec.node_name.clone()) else {
        return;
    };
    if !nodes.contains(&node) {
        return;
    }
    let (Some(uid), Some(name)) = (pod.metadata.uid.clone(), pod.metadata.name.clone()) else {
        return;
    };
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);

    if let Some(handle) = context.registry.get(&uid) {
        if deleting {
            handle.request_deletion(grace);
        }
        return;
    }

    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref());
    let terminal = matches!(phase, Some("Succeeded" | "Failed"));
    if terminal {
        if deleting {
            let span = tracing::info_span!("pod", %namespace, pod = %name, %node);
            tokio::spawn(remove_pod(context.clone(), namespace, name, uid).instrument(span));
        }
        return;
    }

    let handle = Arc::new(PodHandle::new(
        uid,
        namespace.clone(),
        name.clone(),
        node.clone(),
    ));
    if deleting {
        handle.request_deletion(grace);
    }
    context.registry.insert(Arc::clone(&handle));
    tracing::info!(%namespace, pod = %name, %node, "Pod bound to a simulated node, starting it");
    let span = tracing::info_span!("pod", %namespace, pod = %name, %node);
    tokio::spawn(run_pod(context.clone(), handle, pod).instrument(span));
}

/// Completes the deletion of a finished Pod that this process did not run.
async fn remove_pod(context: Context, namespace: String, name: String, uid: String) {
    let api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::info!("finished Pod removed"),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(error) => tracing::warn!(%error, "failed to remove finished Pod"),
    }
}
