//! The cluster's part of the status view, cancellation by Job deletion, and
//! live logs of running Pods, as used by the API process.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::Api;
use tracing::{debug, info, warn};

use super::names::{LABEL_RUN_ID, RUNNER_SELECTOR, WORKER_SELECTOR};
use crate::executor::kubernetes::{delete_job, outcome};
use crate::metrics;
use crate::status::{ClusterSnapshot, ClusterView, PodSummary, RunnerPod};

/// Reads and acts on the cluster with the API's own (narrow) permissions.
pub struct ApiCluster {
    deployments: Api<Deployment>,
    worker_pods: Api<Pod>,
    runner_pods: Api<Pod>,
    jobs: Api<Job>,
    nodes: Api<Node>,
    worker_deployment: String,
}

impl ApiCluster {
    pub fn new(
        client: kube::Client,
        runner_namespace: &str,
        worker_namespace: &str,
        worker_deployment: &str,
    ) -> Self {
        Self {
            deployments: Api::namespaced(client.clone(), worker_namespace),
            worker_pods: Api::namespaced(client.clone(), worker_namespace),
            runner_pods: Api::namespaced(client.clone(), runner_namespace),
            jobs: Api::namespaced(client.clone(), runner_namespace),
            nodes: Api::all(client),
            worker_deployment: worker_deployment.to_string(),
        }
    }

    /// Finds the newest Pod of a run.
    pub async fn runner_pod(&self, run_id: &str) -> Result<Option<Pod>, kube::Error> {
        let listed = self
            .runner_pods
            .list(&ListParams::default().labels(&format!("{LABEL_RUN_ID}={run_id}")))
            .await;
        metrics::record_kube_request("list", "pods", outcome(&listed));
        Ok(super::newest_pod(listed?.items))
    }

    pub fn runner_pods(&self) -> &Api<Pod> {
        &self.runner_pods
    }
}

#[async_trait::async_trait]
impl ClusterView for ApiCluster {
    async fn snapshot(&self) -> Result<ClusterSnapshot, String> {
        let unreachable =
            |error: kube::Error| format!("the Kubernetes API is unavailable: {error}");

        let deployment = self.deployments.get_opt(&self.worker_deployment).await;
        metrics::record_kube_request("get", "deployments", outcome(&deployment));
        let deployment = deployment.map_err(unreachable)?;
        let (desired, ready) = match &deployment {
            Some(deployment) => (
                deployment
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.replicas)
                    .or(Some(0)),
                Some(
                    deployment
                        .status
                        .as_ref()
                        .and_then(|status| status.ready_replicas)
                        .unwrap_or(0),
                ),
            ),
            None => (None, None),
        };

        let workers = self
            .worker_pods
            .list(&ListParams::default().labels(WORKER_SELECTOR))
            .await;
        metrics::record_kube_request("list", "pods", outcome(&workers));
        let worker_pods = workers
            .map_err(unreachable)?
            .items
            .into_iter()
            .map(|pod| PodSummary {
                name: pod.metadata.name.unwrap_or_default(),
                node: pod.spec.and_then(|spec| spec.node_name),
                phase: pod.status.and_then(|status| status.phase),
            })
            .collect();

        let runners = self
            .runner_pods
            .list(&ListParams::default().labels(RUNNER_SELECTOR))
            .await;
        metrics::record_kube_request("list", "pods", outcome(&runners));
        let runner_pods = runners
            .map_err(unreachable)?
            .items
            .into_iter()
            .map(|pod| RunnerPod {
                run_id: pod.metadata.labels.as_ref().and_then(
                    |labels: &BTreeMap<String, String>| labels.get(LABEL_RUN_ID).cloned(),
                ),
                pod: pod.metadata.name.unwrap_or_default(),
                node: pod.spec.and_then(|spec| spec.node_name),
                phase: pod.status.and_then(|status| status.phase),
            })
            .collect();

        let nodes = self.nodes.list_metadata(&ListParams::default()).await;
        metrics::record_kube_request("list", "nodes", outcome(&nodes));
        let nodes = match nodes {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|node| node.metadata.name)
                .collect(),
            Err(error) => {
                // The view still works without the node list: nodes with Pods show anyway.
                debug!(%error, "listing nodes failed");
                Vec::new()
            }
        };

        Ok(ClusterSnapshot {
            desired,
            ready,
            worker_pods,
            runner_pods,
            nodes,
        })
    }
}

impl ApiCluster {
    /// Deletes the Job of a cancelled run; a worker also does on the cancel channel.
    pub async fn cancel(&self, run_id: &str) {
        match delete_job(&self.jobs, run_id).await {
            Ok(()) => info!(run_id, "deleted the Job of a cancelled run"),
            Err(error) => {
                warn!(run_id, %error, "deleting the Job of a cancelled run failed; a worker retries")
            }
        }
    }
}
