//! The worker: queue consumers that dispatch runs to an executor, plus the
//! heartbeat, the recovery of runs held by dead workers and cancellation.

mod consumer;
mod maintenance;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::executor::Executor;
use crate::queue;
use crate::store::RunStore;

/// How long running local programs may continue after SIGTERM before they are stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Worker {
    store: Arc<RunStore>,
    executor: Arc<dyn Executor>,
    worker_id: String,
    concurrency: usize,
    dispatch_delay: Duration,
}

impl Worker {
    pub fn new(config: &Config, store: Arc<RunStore>, executor: Arc<dyn Executor>) -> Self {
        Self {
            store,
            executor,
            worker_id: config.worker_id.clone(),
            concurrency: config.worker_concurrency,
            dispatch_delay: config.worker_dispatch_delay,
        }
    }

    /// Runs until `shutdown` fires, then stops taking runs, lets dispatches in
    /// progress finish, returns the ids it has not dispatched to the queue, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = Arc::new(self);
        info!(worker = %worker.worker_id, concurrency = worker.concurrency, executor = worker.executor.name(), "worker starting");

        // Ids left in this worker's list by an earlier process with the same id.
        match queue::requeue(&worker.store, &worker.worker_id).await {
            Ok(0) => {}
            Ok(moved) => {
                info!(worker = %worker.worker_id, moved, "returned ids from a previous run of this worker")
            }
            Err(error) => {
                warn!(worker = %worker.worker_id, %error, "returning earlier ids failed; the dead-worker recovery will retry")
            }
        }

        if let Err(error) = maintenance::settle_leftovers(&worker).await {
            warn!(worker = %worker.worker_id, %error, "settling runs of an earlier process failed");
        }

        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(maintenance::heartbeat(
            Arc::clone(&worker),
            background.clone(),
        ));
        tasks.spawn(maintenance::recovery(
            Arc::clone(&worker),
            background.clone(),
        ));
        tasks.spawn(maintenance::cancellations(
            Arc::clone(&worker),
            background.clone(),
        ));

        let mut consumers = JoinSet::new();
        for index in 0..worker.concurrency {
            consumers.spawn(consumer::run(Arc::clone(&worker), index, shutdown.clone()));
        }

        shutdown.cancelled().await;
        info!(worker = %worker.worker_id, "worker stopping: no new runs are taken");
        worker.executor.shutdown(SHUTDOWN_GRACE).await;
        while consumers.join_next().await.is_some() {}

        match queue::requeue(&worker.store, &worker.worker_id).await {
            Ok(moved) => {
                info!(worker = %worker.worker_id, moved, "returned undispatched runs to the queue")
            }
            Err(error) => {
                warn!(worker = %worker.worker_id, %error, "returning runs failed; the dead-worker recovery will return them")
            }
        }
        background.cancel();
        while tasks.join_next().await.is_some() {}
        if let Err(error) = queue::remove_heartbeat(&worker.store, &worker.worker_id).await {
            warn!(worker = %worker.worker_id, %error, "removing the heartbeat failed; it expires by itself");
        }
        info!(worker = %worker.worker_id, "worker stopped");
    }
}
