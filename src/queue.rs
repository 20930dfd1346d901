//! The run queue as workers see it: a blocking move of ids from `runs:queue`
//! into the worker's own processing list, acknowledgement, heartbeats, and the
//! return of ids held by workers that died.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use tracing::{debug, info, warn};

use crate::store::{keys, scripts, RunStore, StoreError};

/// Maximum time one blocking move waits for an id. The dedicated connection's
/// response timeout is longer than this, so an idle queue is not an error.
pub const BLOCK: Duration = Duration::from_secs(2);
/// Lifetime of a worker's heartbeat key; refreshed every third of it.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// One consumer's view of the queue, with its own blocking connection.
pub struct Consumer {
    worker_id: String,
    processing: String,
    connection: Option<MultiplexedConnection>,
}

impl Consumer {
    pub fn new(worker_id: &str) -> Self {
        Self {
            worker_id: worker_id.to_string(),
            processing: keys::processing(worker_id),
            connection: None,
        }
    }

    /// Waits up to [`BLOCK`] for a run id and moves it into this worker's processing list.
    pub async fn take(&mut self, store: &RunStore) -> Result<Option<String>, StoreError> {
        let connection = match self.connection.as_mut() {
            Some(connection) => connection,
            None => {
                let opened = store.redis().dedicated(BLOCK).await?;
                debug!(worker = %self.worker_id, "opened queue connection");
                self.connection.insert(opened)
            }
        };
        let taken: Result<Option<String>, redis::RedisError> = connection
            .blmove(
                keys::QUEUE,
                &self.processing,
                redis::Direction::Right,
                redis::Direction::Left,
                BLOCK.as_secs_f64(),
            )
            .await;
        match taken {
            Ok(id) => Ok(id),
            Err(error) => {
                // A fresh connection next time: this one may be dead.
                self.connection = None;
                Err(error.into())
            }
        }
    }
}

/// Removes a handled id from the worker's processing list.
pub async fn acknowledge(
    store: &RunStore,
    worker_id: &str,
    run_id: &str,
) -> Result<(), StoreError> {
    let mut connection = store.redis().connection().await?;
    let _: i64 = connection
        .lrem(keys::processing(worker_id), 1, run_id)
        .await?;
    Ok(())
}

/// Moves every id in a worker's processing list back to the queue; returns how many.
pub async fn requeue(store: &RunStore, worker_id: &str) -> Result<u64, StoreError> {
    let mut connection = store.redis().connection().await?;
    let moved: u64 = scripts::REQUEUE
        .key(keys::processing(worker_id))
        .key(keys::QUEUE)
        .invoke_async(&mut connection)
        .await?;
    Ok(moved)
}

/// Writes this worker's heartbeat key.
pub async fn beat(store: &RunStore, worker_id: &str) -> Result<(), StoreError> {
    let mut connection = store.redis().connection().await?;
    let _: () = connection
        .set_ex(
            keys::heartbeat(worker_id),
            chrono::Utc::now().to_rfc3339(),
            HEARTBEAT_TTL.as_secs(),
        )
        .await?;
    Ok(())
}

/// Deletes this worker's heartbeat key at shutdown.
pub async fn remove_heartbeat(store: &RunStore, worker_id: &str) -> Result<(), StoreError> {
    let mut connection = store.redis().connection().await?;
    let _: () = connection.del(keys::heartbeat(worker_id)).await?;
    Ok(())
}

/// Checks whether a worker's heartbeat key exists.
pub async fn is_alive(store: &RunStore, worker_id: &str) -> Result<bool, StoreError> {
    let mut connection = store.redis().connection().await?;
    Ok(connection.exists(keys::heartbeat(worker_id)).await?)
}

/// Returns the ids held by workers whose heartbeat expired to the queue.
pub async fn recover_dead_workers(store: &RunStore) -> Result<u64, StoreError> {
    let mut connection = store.redis().connection().await?;
    let mut lists = Vec::new();
    {
        let pattern = format!("{}*", keys::PROCESSING_PREFIX);
        let mut iter: redis::AsyncIter<String> = connection.scan_match(pattern).await?;
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            lists.push(key?);
        }
    }

    let mut recovered = 0;
    for list in lists {
        let worker_id = list.trim_start_matches(keys::PROCESSING_PREFIX);
        if is_alive(store, worker_id).await? {
            continue;
        }
        let moved = requeue(store, worker_id).await?;
        if moved > 0 {
            warn!(
                worker = worker_id,
                moved, "returned runs held by a dead worker to the queue"
            );
        }
        recovered += moved;
    }
    if recovered > 0 {
        info!(recovered, "recovered runs from dead workers");
    }
    Ok(recovered)
}
