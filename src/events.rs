//! Fan-out of the `runs:events` stream: one reader per process, many
//! subscribers (server-sent events, log followers).

use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::run::RunStatus;
use crate::store::{keys, RunStore};

/// Maximum wait of one stream read.
const BLOCK: Duration = Duration::from_secs(2);
/// Events kept for slow subscribers before they start missing some.
const CAPACITY: usize = 4096;

/// One applied state change, as stored in `runs:events`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunEvent {
    pub run_id: String,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub at: String,
}

/// Subscription point for run events of this process.
#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<RunEvent>,
}

impl EventHub {
    /// Starts the stream reader and returns the hub.
    pub fn start(store: Arc<RunStore>, stop: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        let hub = Self { sender };
        tokio::spawn(read_stream(store, hub.sender.clone(), stop));
        hub
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.sender.subscribe()
    }
}

async fn read_stream(
    store: Arc<RunStore>,
    sender: broadcast::Sender<RunEvent>,
    stop: CancellationToken,
) {
    // "$" starts at new entries; after the first read the last seen id is used,
    // so a reconnect continues where it stopped.
    let mut last_id = "$".to_string();
    let mut connection = None;
    let mut backoff = Duration::from_millis(200);

    loop {
        if stop.is_cancelled() {
            return;
        }
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match store.redis().dedicated(BLOCK).await {
                Ok(opened) => connection.insert(opened),
                Err(error) => {
                    debug!(%error, "opening the event stream connection failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };

        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(512);
        let ids = [last_id.clone()];
        let read: Result<Option<StreamReadReply>, redis::RedisError> = tokio::select! {
            read = conn.xread_options(&[keys::EVENTS], &ids, &options) => read,
            _ = stop.cancelled() => return,
        };
        match read {
            Ok(Some(reply)) => {
                backoff = Duration::from_millis(200);
                for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
                    last_id = entry.id.clone();
                    let text = |name: &str| entry.get::<String>(name).filter(|v| !v.is_empty());
                    let (Some(run_id), Some(status)) =
                        (text("run_id"), text("status").and_then(|s| s.parse().ok()))
                    else {
                        continue;
                    };
                    let _ = sender.send(RunEvent {
                        run_id,
                        status,
                        reason: text("reason"),
                        at: text("at").unwrap_or_default(),
                    });
                }
            }
            Ok(None) => {}
            Err(error) => {
                warn!(%error, "reading runs:events failed; reconnecting");
                connection = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
