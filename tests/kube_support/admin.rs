//! The admin identity's view of runner Jobs and Pods, for checks that the
//! product's own narrow identities cannot make.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Api;

use super::{Cluster, RUNNER_NAMESPACE};

/// Label that carries the run id on every runner object.
pub const LABEL_RUN_ID: &str = "runner.example.com/run-id";

/// Interval of the polling loops below.
const POLL: Duration = Duration::from_millis(200);

/// Jobs and Pods of the runner namespace, read with the admin kubeconfig.
///
/// A kube client belongs to the tokio runtime that built it, and every test
/// has its own runtime, so each test connects its own `Admin`.
pub struct Admin {
    jobs: Api<Job>,
    pods: Api<Pod>,
}

impl Admin {
    pub async fn connect(cluster: &Cluster) -> Self {
        let path = &cluster.admin_kubeconfig;
        let kubeconfig = Kubeconfig::read_from(path)
            .unwrap_or_else(|error| panic!("the admin kubeconfig {path:?} is invalid: {error}"));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap_or_else(|error| {
                    panic!("the admin kubeconfig {path:?} is unusable: {error}")
                });
        let client =
            kube::Client::try_from(config).expect("a kube client builds from the admin kubeconfig");
        Self {
            jobs: Api::namespaced(client.clone(), RUNNER_NAMESPACE),
            pods: Api::namespaced(client, RUNNER_NAMESPACE),
        }
    }

    /// Reads the Job `run-{id}`; `None` when the API server returns 404.
    pub async fn job(&self, run_id: &str) -> Option<Job> {
        let name = format!("run-{run_id}");
        self.jobs
            .get_opt(&name)
            .await
            .unwrap_or_else(|error| panic!("GET job {name} as admin failed: {error}"))
    }

    /// Lists the Jobs labelled with the run id.
    pub async fn jobs_of(&self, run_id: &str) -> Vec<Job> {
        self.jobs
            .list(&by_run(run_id))
            .await
            .unwrap_or_else(|error| {
                panic!("listing the Jobs of run {run_id} as admin failed: {error}")
            })
            .items
    }

    /// Lists the Pods labelled with the run id.
    pub async fn pods_of(&self, run_id: &str) -> Vec<Pod> {
        self.pods
            .list(&by_run(run_id))
            .await
            .unwrap_or_else(|error| {
                panic!("listing the Pods of run {run_id} as admin failed: {error}")
            })
            .items
    }

    /// Waits until the run's single Pod exists and returns it. Panics after `limit`.
    pub async fn wait_pod(&self, run_id: &str, limit: Duration) -> Pod {
        let started = Instant::now();
        loop {
            let mut pods = self.pods_of(run_id).await;
            if let Some(pod) = pods.pop() {
                assert!(pods.is_empty(), "run {run_id} has more than one Pod");
                return pod;
            }
            assert!(
                started.elapsed() < limit,
                "run {run_id} has no Pod after {limit:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the Job `run-{id}` returns 404 and returns how long that
    /// took. Panics after `limit`.
    pub async fn wait_job_gone(&self, run_id: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        while self.job(run_id).await.is_some() {
            assert!(
                started.elapsed() < limit,
                "the Job run-{run_id} still exists after {limit:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        started.elapsed()
    }

    /// Waits until the run has no Pods left. Panics after `limit`.
    pub async fn wait_pods_gone(&self, run_id: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let pods = self.pods_of(run_id).await;
            if pods.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "run {run_id} still has Pods after {limit:?}: {:?}",
                pods.iter()
                    .map(|pod| pod.metadata.name.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deletes the Jobs (and so the Pods and ConfigMaps) of finished tests'
    /// runs, so that the shared namespace does not fill up. Best effort:
    /// whatever is left ends at its Job deadline and TTL.
    pub async fn remove_runs(&self, run_ids: &[String]) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        for run_id in run_ids {
            let _ = self.jobs.delete(&format!("run-{run_id}"), &params).await;
        }
    }
}

fn by_run(run_id: &str) -> ListParams {
    ListParams::default().labels(&format!("{LABEL_RUN_ID}={run_id}"))
}

/// Returns the node a Pod was bound to, if any.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}
