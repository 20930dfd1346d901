//! Background duties of a worker: its heartbeat, the recovery of runs held by
//! dead workers, and stopping runs that were cancelled.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Worker;
use crate::queue;
use crate::store::keys;

/// How often dead workers' processing lists and active runs are checked.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(5);

pub(super) async fn heartbeat(worker: Arc<Worker>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(queue::HEARTBEAT_TTL / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(error) = queue::beat(&worker.store, &worker.worker_id).await {
            warn!(worker = %worker.worker_id, %error, "writing the heartbeat failed");
        }
    }
}

pub(super) async fn recovery(worker: Arc<Worker>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RECOVERY_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(error) = queue::recover_dead_workers(&worker.store).await {
            debug!(worker = %worker.worker_id, %error, "recovering runs of dead workers failed");
        }
        if let Err(error) = settle_orphaned_runs(&worker).await {
            debug!(worker = %worker.worker_id, %error, "checking active runs failed");
        }
    }
}

/// Settles active runs of this executor kind whose worker is gone, for
/// executors whose programs die with their worker.
async fn settle_orphaned_runs(worker: &Worker) -> Result<(), crate::store::StoreError> {
    if worker.executor.runs_outlive_worker() {
        // The watcher and its reconciliation follow those runs instead.
        return Ok(());
    }
    for run_id in worker.store.active_ids().await? {
        let Some(spec) = worker.store.spec(&run_id).await? else {
            continue;
        };
        let owned_by_dead_worker = match (&spec.executor, &spec.worker) {
            (Some(executor), Some(owner))
                if executor == worker.executor.name() && *owner != worker.worker_id =>
            {
                !queue::is_alive(&worker.store, owner).await?
            }
            _ => false,
        };
        if owned_by_dead_worker && !spec.status.is_terminal() {
            if let Err(error) = worker.executor.recover(spec).await {
                warn!(run_id, %error, "settling a run of a dead worker failed");
            }
        }
    }
    Ok(())
}

/// Settles active runs that an earlier process with this worker's id left
/// behind: their programs died with that process. Runs before any consumer
/// starts, so none of them can be this process's own.
pub(super) async fn settle_leftovers(worker: &Worker) -> Result<(), crate::store::StoreError> {
    if worker.executor.runs_outlive_worker() {
        return Ok(());
    }
    for run_id in worker.store.active_ids().await? {
        let Some(spec) = worker.store.spec(&run_id).await? else {
            continue;
        };
        let ours = spec.worker.as_deref() == Some(worker.worker_id.as_str())
            && spec.executor.as_deref() == Some(worker.executor.name());
        if ours && !spec.status.is_terminal() {
            info!(run_id, worker = %worker.worker_id, "settling a run left by an earlier process of this worker");
            if let Err(error) = worker.executor.recover(spec).await {
                warn!(run_id, %error, "settling a left-over run failed");
            }
        }
    }
    Ok(())
}

/// Listens on the cancel channel and stops cancelled runs that this worker runs.
pub(super) async fn cancellations(worker: Arc<Worker>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let subscribed = async {
            let mut pubsub = worker.store.redis().pubsub().await?;
            pubsub.subscribe(keys::CANCEL_CHANNEL).await?;
            Ok::<_, crate::store::StoreError>(pubsub)
        };
        let pubsub = tokio::select! {
            result = subscribed => result,
            _ = stop.cancelled() => return,
        };
        let mut pubsub = match pubsub {
            Ok(pubsub) => pubsub,
            Err(error) => {
                debug!(worker = %worker.worker_id, %error, "subscribing to cancellations failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        info!(worker = %worker.worker_id, "listening for cancellations");

        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = stop.cancelled() => return,
            };
            let Some(message) = message else {
                warn!(worker = %worker.worker_id, "cancellation subscription closed; resubscribing");
                break;
            };
            if let Ok(run_id) = message.get_payload::<String>() {
                worker.executor.cancel(&run_id).await;
            }
        }
    }
}
