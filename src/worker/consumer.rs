//! One queue consumer: takes an id, dispatches it, acknowledges it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, instrument, warn};

use super::Worker;
use crate::executor::DispatchError;
use crate::metrics;
use crate::queue::{self, Consumer};
use crate::run::{format_timestamp, RunFields, RunStatus};
use crate::store::RunSpec;

/// Total time spent retrying a dispatch before the run is settled as `error`.
const DISPATCH_RETRY_BUDGET: Duration = Duration::from_secs(120);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(super) async fn run(worker: Arc<Worker>, index: usize, shutdown: CancellationToken) {
    let mut consumer = Consumer::new(&worker.worker_id);
    let mut backoff = BACKOFF_MIN;
    debug!(worker = %worker.worker_id, consumer = index, "consumer started");

    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Not raced against shutdown: a dropped future would leave the blocking
        // move pending on the server, where it could take an id that shutdown
        // just returned to the queue. One block (2 s) bounds the wait instead.
        let taken = consumer.take(&worker.store).await;
        let run_id = match taken {
            Ok(Some(run_id)) => run_id,
            Ok(None) => continue,
            Err(error) => {
                warn!(worker = %worker.worker_id, consumer = index, %error, retry_in_ms = backoff.as_millis() as u64, "taking from the queue failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        handle(&worker, &run_id, &shutdown).await;
    }
    debug!(worker = %worker.worker_id, consumer = index, "consumer stopped");
}

/// Handles one taken id. The id stays in the processing list until handled, so a
/// crash at any point before the acknowledgement returns it to the queue.
#[instrument(skip(worker, shutdown), fields(worker = %worker.worker_id))]
async fn handle(worker: &Arc<Worker>, run_id: &str, shutdown: &CancellationToken) {
    if !worker.dispatch_delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(worker.dispatch_delay) => {}
            // Left in the processing list, so it returns to the queue at shutdown.
            _ = shutdown.cancelled() => return,
        }
    }

    let spec = match with_retries(shutdown, || worker.store.spec(run_id)).await {
        Some(Ok(spec)) => spec,
        Some(Err(error)) => {
            error!(%error, "cannot read the run; dropping it from the queue");
            settle_error(
                worker,
                run_id,
                &format!("the run record is unreadable: {error}"),
            )
            .await;
            acknowledge(worker, run_id).await;
            return;
        }
        // Shutting down: the id goes back to the queue.
        None => return,
    };
    let Some(spec) = spec else {
        debug!("run expired or was deleted before dispatch");
        acknowledge(worker, run_id).await;
        return;
    };

    match spec.status {
        // Taken just as the worker began to stop: the queue gets it back.
        RunStatus::Queued if shutdown.is_cancelled() => {}
        RunStatus::Queued => dispatch(worker, spec, shutdown).await,
        status if status.is_terminal() => {
            // Cancelled while queued: never executed.
            info!(%status, "skipping a run that finished before dispatch");
            acknowledge(worker, run_id).await;
        }
        status => {
            info!(%status, previous_worker = ?spec.worker, "recovering a run dispatched by a worker that stopped");
            if let Err(error) = worker.executor.recover(spec).await {
                warn!(%error, "recovering the run failed; it stays for the next worker");
                return;
            }
            acknowledge(worker, run_id).await;
        }
    }
}

async fn dispatch(worker: &Arc<Worker>, spec: RunSpec, shutdown: &CancellationToken) {
    let run_id = spec.id.clone();
    let language = spec.language;
    let created_at = spec.created_at.clone();
    let started = Instant::now();
    let mut backoff = BACKOFF_MIN;

    let outcome = loop {
        match worker.executor.dispatch(spec.clone()).await {
            Ok(dispatched) => break Ok(dispatched),
            Err(DispatchError::Permanent(message)) => break Err(message),
            Err(DispatchError::Retryable(message)) if started.elapsed() < DISPATCH_RETRY_BUDGET => {
                warn!(run_id, %message, retry_in_ms = backoff.as_millis() as u64, "dispatch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    // Left in the processing list, so it returns to the queue at shutdown.
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(DispatchError::Retryable(message)) => {
                break Err(format!(
                    "dispatch kept failing for {} s: {message}",
                    DISPATCH_RETRY_BUDGET.as_secs()
                ))
            }
        }
    };

    match outcome {
        Ok(dispatched) => {
            metrics::record_dispatched(language.as_str(), &created_at, started.elapsed());
            acknowledge(worker, &run_id).await;
            if let Some(completion) = dispatched.completion {
                completion.await;
            }
        }
        Err(message) => {
            error!(run_id, %message, "dispatch failed for good; settling the run as error");
            settle_error(worker, &run_id, &message).await;
            acknowledge(worker, &run_id).await;
        }
    }
}

async fn settle_error(worker: &Worker, run_id: &str, message: &str) {
    let fields = RunFields {
        finished_at: Some(format_timestamp(Utc::now())),
        reason: Some("DispatchFailed".into()),
        message: Some(message.to_string()),
        ..RunFields::default()
    };
    match worker
        .store
        .transition(run_id, RunStatus::Error, &fields)
        .await
    {
        Ok(transition) if transition.applied => {
            let language = worker
                .store
                .get(run_id)
                .await
                .ok()
                .flatten()
                .map(|run| run.language);
            metrics::record_finished(
                language.as_deref().unwrap_or("unknown"),
                RunStatus::Error,
                None,
                &fields,
            );
        }
        Ok(_) => {}
        Err(error) => warn!(run_id, %error, "settling the run as error failed"),
    }
}

async fn acknowledge(worker: &Worker, run_id: &str) {
    if let Err(error) = queue::acknowledge(&worker.store, &worker.worker_id, run_id).await {
        // The id may be taken again after this worker dies; the forward-only
        // store makes that second dispatch a no-op.
        warn!(run_id, worker = %worker.worker_id, %error, "acknowledging the run failed");
    }
}

/// Retries a store call while Redis is unavailable; `None` when shutdown comes first.
async fn with_retries<T, F, Fut>(
    shutdown: &CancellationToken,
    mut call: F,
) -> Option<Result<T, crate::store::StoreError>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        match call().await {
            Err(error) if error.is_unavailable() => {
                debug!(%error, "redis unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return None,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            other => return Some(other),
        }
    }
}
