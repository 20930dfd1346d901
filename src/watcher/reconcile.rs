//! Periodic reconciliation of active runs with the cluster, so that no run
//! stays unfinished when a watch event was missed or its Job vanished.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::ListParams;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{mapping, Watcher};
use crate::executor::kubernetes::{delete_job, outcome};
use crate::k8s::names::{object_name, LABEL_RUN_ID};
use crate::metrics;
use crate::run::{format_timestamp, RunFields, RunStatus};
use crate::store::RunSpec;

const INTERVAL: Duration = Duration::from_secs(30);
/// Time after dispatch during which a missing Job may still be in creation:
/// longer than a worker retries a failing create.
const CREATION_GRACE: Duration = Duration::from_secs(180);
/// Time past the Job's deadline after which the run is settled without the cluster's word.
const DEADLINE_GRACE: Duration = Duration::from_secs(60);

pub(super) async fn run(watcher: Arc<Watcher>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(error) = reconcile_all(&watcher).await {
            debug!(worker = %watcher.worker_id, %error, "reconciliation failed; retrying next round");
        }
    }
}

async fn reconcile_all(watcher: &Watcher) -> Result<(), crate::store::StoreError> {
    for run_id in watcher.store.active_ids().await? {
        let Some(spec) = watcher.store.spec(&run_id).await? else {
            continue;
        };
        if spec.executor.as_deref() != Some("kubernetes") || spec.status.is_terminal() {
            continue;
        }
        reconcile(watcher, &spec).await;
    }
    Ok(())
}

async fn reconcile(watcher: &Watcher, spec: &RunSpec) {
    let name = object_name(&spec.id);
    let job = watcher.jobs.get_opt(&name).await;
    metrics::record_kube_request("get", "jobs", outcome(&job));
    let job = match job {
        Ok(job) => job,
        Err(error) => {
            debug!(run_id = %spec.id, %error, "reading the Job failed");
            return;
        }
    };
    let dispatched = spec
        .dispatched_at
        .as_deref()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc));
    let since_dispatch = dispatched.map(|at| (Utc::now() - at).to_std().unwrap_or_default());

    let Some(job) = job else {
        if since_dispatch.is_some_and(|elapsed| elapsed > CREATION_GRACE) {
            settle(
                watcher,
                spec,
                RunStatus::Error,
                "JobMissing",
                "the run's Job no longer exists, so its result is unknown",
            )
            .await;
        }
        return;
    };

    let pods = watcher
        .pods
        .list(&ListParams::default().labels(&format!("{LABEL_RUN_ID}={}", spec.id)))
        .await;
    metrics::record_kube_request("list", "pods", outcome(&pods));
    let pod = pods
        .ok()
        .and_then(|list| crate::k8s::newest_pod(list.items));
    if let Some(observation) = mapping::observe(Some(&job), pod.as_ref()) {
        watcher.apply(&spec.id, pod.as_ref(), observation).await;
    }

    let deadline =
        Duration::from_secs(spec.timeout_seconds) + watcher.start_allowance + DEADLINE_GRACE;
    if since_dispatch.is_some_and(|elapsed| elapsed > deadline) {
        let current = watcher.store.get(&spec.id).await.ok().flatten();
        if current.is_some_and(|run| !run.status.is_terminal()) {
            settle(
                watcher,
                spec,
                RunStatus::TimedOut,
                "DeadlineExceeded",
                "no result arrived before the Job's deadline",
            )
            .await;
            if let Err(error) = delete_job(&watcher.jobs, &spec.id).await {
                warn!(run_id = %spec.id, %error, "deleting an overdue Job failed");
            }
        }
    }
}

async fn settle(watcher: &Watcher, spec: &RunSpec, status: RunStatus, reason: &str, message: &str) {
    let fields = RunFields {
        finished_at: Some(format_timestamp(Utc::now())),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        ..RunFields::default()
    };
    match watcher.store.transition(&spec.id, status, &fields).await {
        Ok(transition) if transition.applied => {
            warn!(run_id = %spec.id, worker = %watcher.worker_id, %status, reason, "reconciliation settled a run");
            metrics::record_finished(
                spec.language.as_str(),
                status,
                spec.started_at.as_deref(),
                &fields,
            );
        }
        Ok(_) => {}
        Err(error) => warn!(run_id = %spec.id, %error, "settling a run failed"),
    }
}
