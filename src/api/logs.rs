//! `GET /runs/{id}/logs` (plain or followed) and `GET /runs/{id}/events` (SSE).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::error::ApiError;
use super::AppState;
use crate::run::Run;

/// Longest wait between two log reads while following, in case a
/// notification was missed.
const FOLLOW_RECHECK: Duration = Duration::from_millis(250);

pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let follow = match params.get("follow").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "follow",
                format!("follow must be true or false (got {other:?})"),
            ))
        }
    };
    let run = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::run_not_found(&id))?;
    let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];

    if !follow || run.status.is_terminal() {
        let logs = state.store.logs_from(&id, 0).await?;
        return Ok((
            content_type,
            [(
                "x-logs-truncated",
                if run.logs_truncated { "true" } else { "false" },
            )],
            logs,
        )
            .into_response());
    }

    let stream = follow_logs(state, id);
    Ok((
        content_type,
        [(header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Streams the run's output as it is stored, until the run ends.
fn follow_logs(state: AppState, id: String) -> impl Stream<Item = Result<Bytes, Infallible>> {
    async_stream(move |sender| async move {
        let mut events = state.events.subscribe();
        let mut offset = 0usize;
        loop {
            // Read the state before the logs, so output written just before the end is not missed.
            let finished = match state.store.get(&id).await {
                Ok(Some(run)) => run.status.is_terminal(),
                Ok(None) => true,
                Err(error) => {
                    debug!(run_id = %id, %error, "ending a log follow: the store failed");
                    return;
                }
            };
            match state.store.logs_from(&id, offset).await {
                Ok(chunk) if !chunk.is_empty() => {
                    offset += chunk.len();
                    if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    debug!(run_id = %id, %error, "ending a log follow: the store failed");
                    return;
                }
            }
            if finished {
                return;
            }
            wait_for_change(&mut events, &id, FOLLOW_RECHECK).await;
        }
    })
}

/// Waits until an event for `id` arrives or `limit` passes.
async fn wait_for_change(
    events: &mut tokio::sync::broadcast::Receiver<crate::events::RunEvent>,
    id: &str,
    limit: Duration,
) {
    let _ = tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(event) if event.run_id == id => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => {
                    tokio::time::sleep(limit).await;
                    return;
                }
            }
        }
    })
    .await;
}

pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // Subscribe before the first read, so no change falls between the two.
    let mut events = state.events.subscribe();
    let first = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::run_not_found(&id))?;

    let stream = async_stream(
        move |sender: tokio::sync::mpsc::Sender<Result<Event, Infallible>>| async move {
            let mut last_sent: Option<Run> = None;
            let mut current = Some(first);
            loop {
                if let Some(run) = current.take() {
                    let changed = last_sent
                        .as_ref()
                        .is_none_or(|last| last.status != run.status || last != &run);
                    if changed {
                        let event = Event::default()
                            .event("status")
                            .json_data(&run)
                            .expect("a run serializes to JSON");
                        if sender.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    let finished = run.status.is_terminal();
                    last_sent = Some(run);
                    if finished {
                        return;
                    }
                }
                wait_for_change(&mut events, &id, Duration::from_secs(5)).await;
                match state.store.get(&id).await {
                    Ok(Some(run)) => current = Some(run),
                    Ok(None) => return,
                    Err(error) => {
                        debug!(run_id = %id, %error, "ending an event stream: the store failed");
                        return;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Turns a producer task into a stream, ending when the task returns.
fn async_stream<T, F, Fut>(producer: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(producer(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
