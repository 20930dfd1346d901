//! The [`Executor`] trait that runs a dispatched run, and its implementations.

pub mod kubernetes;
pub mod local;
pub mod output;

use std::time::Duration;

use futures::future::BoxFuture;

use crate::store::RunSpec;

/// Reason a dispatch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Worth another try after a pause: an API or Redis outage, a 5xx, a 429.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help: the run is settled as `error` with this message.
    #[error("{0}")]
    Permanent(String),
}

/// A run that an executor has taken over.
pub struct Dispatched {
    /// Resolves when the executor has finished with the run, for executors that
    /// run programs themselves. The worker waits for it before taking the next id,
    /// so `WORKER_CONCURRENCY` bounds the programs running at once.
    pub completion: Option<BoxFuture<'static, ()>>,
}

/// Runs programs. The executor moves a run to `dispatched` itself, and its later
/// states reach the store either from the executor (local) or from the watcher
/// (Kubernetes).
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Short name stored with each run (`executor` field).
    fn name(&self) -> &'static str;

    /// Tells whether a run keeps going after its worker dies (Kubernetes Jobs do). When
    /// it does not, other workers settle the dead worker's active runs.
    fn runs_outlive_worker(&self) -> bool {
        false
    }

    /// Starts a queued run.
    async fn dispatch(&self, run: RunSpec) -> Result<Dispatched, DispatchError>;

    /// Handles a run taken from the queue that is already past `queued`: its
    /// worker stopped after dispatching it and before removing it from its
    /// processing list.
    async fn recover(&self, run: RunSpec) -> Result<(), DispatchError>;

    /// Stops a run if this executor is running it. The store already records `cancelled`.
    async fn cancel(&self, run_id: &str);

    /// Stops what is running when the worker shuts down, within `grace`.
    async fn shutdown(&self, grace: Duration);
}
