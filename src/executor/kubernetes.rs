//! The Kubernetes executor: a ConfigMap and a Job per run. Later states come
//! from the watcher, not from here.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::Api;
use tracing::{debug, info, instrument, warn};

use super::{DispatchError, Dispatched, Executor};
use crate::k8s::names::object_name;
use crate::k8s::objects::{self, RunnerSettings};
use crate::metrics;
use crate::run::{format_timestamp, RunFields, RunStatus};
use crate::store::{RunSpec, RunStore};

pub struct KubernetesExecutor {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    settings: RunnerSettings,
    store: Arc<RunStore>,
    worker_id: String,
}

/// Sorts a Kubernetes error into a retry or a final rejection.
pub fn classify(error: &kube::Error) -> DispatchError {
    match error {
        kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
            DispatchError::Retryable(format!(
                "the Kubernetes API returned {}: {}",
                status.code, status.message
            ))
        }
        kube::Error::Api(status) => DispatchError::Permanent(format!(
            "the Kubernetes API rejected the run's objects ({} {}): {}",
            status.code, status.reason, status.message
        )),
        other => DispatchError::Retryable(format!("the Kubernetes API is unreachable: {other}")),
    }
}

/// Label value of the `outcome` of a Kubernetes request in metrics.
pub fn outcome<T>(result: &Result<T, kube::Error>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(kube::Error::Api(status)) if status.is_already_exists() => "already_exists",
        Err(kube::Error::Api(status)) if status.is_not_found() => "not_found",
        Err(kube::Error::Api(status)) if status.code == 429 => "throttled",
        Err(kube::Error::Api(status)) if status.code >= 500 => "server_error",
        Err(kube::Error::Api(_)) => "rejected",
        Err(_) => "connection_error",
    }
}

impl KubernetesExecutor {
    pub fn new(
        client: kube::Client,
        settings: RunnerSettings,
        store: Arc<RunStore>,
        worker_id: &str,
    ) -> Self {
        Self {
            jobs: Api::namespaced(client.clone(), &settings.namespace),
            config_maps: Api::namespaced(client, &settings.namespace),
            settings,
            store,
            worker_id: worker_id.to_string(),
        }
    }

    /// Creates the Job, or finds the one an earlier attempt created; returns its uid.
    async fn create_job(&self, run: &RunSpec) -> Result<String, DispatchError> {
        let job = objects::job(&self.settings, run);
        let created = self.jobs.create(&PostParams::default(), &job).await;
        metrics::record_kube_request("create", "jobs", outcome(&created));
        let job = match created {
            Ok(job) => job,
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                debug!(run_id = %run.id, "the Job exists from an earlier attempt");
                let found = self.jobs.get(&object_name(&run.id)).await;
                metrics::record_kube_request("get", "jobs", outcome(&found));
                found.map_err(|error| classify(&error))?
            }
            Err(error) => return Err(classify(&error)),
        };
        job.metadata.uid.ok_or_else(|| {
            DispatchError::Retryable("the API server returned a Job without a uid".into())
        })
    }

    async fn create_config_map(&self, run: &RunSpec, job_uid: &str) -> Result<(), DispatchError> {
        let config_map = objects::config_map(&self.settings, run, job_uid);
        let created = self
            .config_maps
            .create(&PostParams::default(), &config_map)
            .await;
        metrics::record_kube_request("create", "configmaps", outcome(&created));
        match created {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
            Err(error) => Err(classify(&error)),
        }
    }

    /// Creates the Job and then its ConfigMap, or finds them from an earlier
    /// attempt. The Pod waits in ContainerCreating until the ConfigMap exists.
    async fn create_objects(&self, run: &RunSpec) -> Result<(), DispatchError> {
        let job_uid = self.create_job(run).await?;

        // Cancelled while the Job was being created: the API found nothing to delete.
        let current = self
            .store
            .get(&run.id)
            .await
            .ok()
            .flatten()
            .map(|run| run.status);
        if current == Some(RunStatus::Cancelled) {
            info!(run_id = %run.id, "run was cancelled during dispatch; deleting its Job");
            if let Err(error) = self.delete_job(&run.id).await {
                warn!(run_id = %run.id, %error, "deleting the Job of a cancelled run failed; its deadline ends it");
            }
            return Ok(());
        }

        match self.create_config_map(run, &job_uid).await {
            Ok(()) => Ok(()),
            Err(DispatchError::Permanent(message)) => {
                // Without its source the Pod can never start: remove the Job now.
                if let Err(error) = self.delete_job(&run.id).await {
                    warn!(run_id = %run.id, %error, "deleting the Job after a rejected ConfigMap failed");
                }
                Err(DispatchError::Permanent(message))
            }
            Err(retryable) => Err(retryable),
        }
    }

    /// Deletes a run's Job; its Pod and ConfigMap go with it.
    pub async fn delete_job(&self, run_id: &str) -> Result<(), kube::Error> {
        delete_job(&self.jobs, run_id).await
    }
}

/// Deletes a run's Job in the background. Without a propagation policy a
/// batch/v1 Job's Pods would be orphaned and keep running.
pub async fn delete_job(jobs: &Api<Job>, run_id: &str) -> Result<(), kube::Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    let deleted = jobs.delete(&object_name(run_id), &params).await;
    metrics::record_kube_request("delete", "jobs", outcome(&deleted));
    match deleted {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

#[async_trait::async_trait]
impl Executor for KubernetesExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn runs_outlive_worker(&self) -> bool {
        true
    }

    #[instrument(skip_all, fields(run_id = %run.id, worker = %self.worker_id, job = %object_name(&run.id)))]
    async fn dispatch(&self, run: RunSpec) -> Result<Dispatched, DispatchError> {
        // `dispatched` comes first, so that the watcher's `pending` for the new
        // Pod can never arrive before it. A retried dispatch finds it recorded.
        let fields = RunFields {
            dispatched_at: Some(format_timestamp(Utc::now())),
            worker: Some(self.worker_id.clone()),
            job_name: Some(object_name(&run.id)),
            ..RunFields::default()
        };
        let transition = self
            .store
            .transition_with(
                &run.id,
                RunStatus::Dispatched,
                &fields,
                &[("executor", self.name())],
            )
            .await
            .map_err(|error| DispatchError::Retryable(error.to_string()))?;
        if transition.previous.is_some_and(RunStatus::is_terminal) {
            info!(current = ?transition.previous, "run finished before dispatch; creating nothing");
            return Ok(Dispatched { completion: None });
        }

        self.create_objects(&run).await?;
        if transition.applied {
            info!("job created");
        }
        Ok(Dispatched { completion: None })
    }

    async fn recover(&self, run: RunSpec) -> Result<(), DispatchError> {
        // A run still `dispatched` may lack its Job or ConfigMap when the worker
        // stopped halfway. A Job can only have run and been deleted by its TTL
        // after at least that TTL, so an older run is left to reconciliation
        // rather than started a second time.
        if run.status != RunStatus::Dispatched {
            debug!(run_id = %run.id, status = %run.status, "run was dispatched by an earlier worker");
            return Ok(());
        }
        let age = run
            .dispatched_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| Utc::now().signed_duration_since(at).num_seconds());
        if age.is_none_or(|age| age >= i64::from(self.settings.job_ttl_seconds)) {
            debug!(run_id = %run.id, ?age, "not recreating the objects of an old dispatch");
            return Ok(());
        }
        self.create_objects(&run).await?;
        info!(run_id = %run.id, "completed the dispatch of an earlier worker");
        Ok(())
    }

    async fn cancel(&self, run_id: &str) {
        if let Err(error) = self.delete_job(run_id).await {
            warn!(run_id, worker = %self.worker_id, %error, "deleting the Job of a cancelled run failed");
        } else {
            info!(run_id, worker = %self.worker_id, "deleted the Job of a cancelled run");
        }
    }

    async fn shutdown(&self, _grace: Duration) {}
}
