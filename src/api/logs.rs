//! `GET /runs/{id}/logs` (plain or followed) and `GET /runs/{id}/events` (SSE).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use futures::{AsyncReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use super::error::ApiError;
use super::openapi::{BadRequest, NotFound, TooManyRequests, Unauthorized, Unavailable};
use super::AppState;
use crate::executor::output::OutputCapture;
use crate::k8s::cluster::ApiCluster;
use crate::run::Run;

/// Maximum wait between two log reads while following, in case a
/// notification was missed.
const FOLLOW_RECHECK: Duration = Duration::from_millis(250);
/// Store failures in a row (about 30 s of retries) after which a follow ends.
const FOLLOW_MAX_FAILURES: u32 = 120;

/// Returns the program's output, or streams it until the run ends.
#[utoipa::path(
    get,
    path = "/runs/{id}/logs",
    operation_id = "get_run_logs",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The run's id."),
        ("follow" = Option<bool>, Query, description = "Stream the output until the run ends; `1` and `0` work too."),
    ),
    responses(
        (status = 200, description = "The program's standard output and standard error, interleaved as written.",
            headers(("x-logs-truncated" = bool, description = "Whether the output was cut at `RUN_MAX_LOG_BYTES`; absent when following.")),
            content_type = "text/plain", body = String, example = json!("Hello from k3s\n")),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

    let in_cluster = state.cluster.clone().filter(|_| run.job_name.is_some());

    if !follow || run.status.is_terminal() {
        // A running Job's output is in its Pod until the run ends.
        if let (Some(cluster), false) = (&in_cluster, run.status.is_terminal()) {
            match live_pod_logs(cluster, &id, state.config.run_max_log_bytes).await {
                Ok(Some(logs)) => return Ok((content_type, logs).into_response()),
                Ok(None) => {}
                Err(error) => {
                    debug!(run_id = %id, %error, "reading live Pod logs failed; serving stored logs")
                }
            }
        }
        let logs = state.store.logs_from(&id, 0).await?;
        let truncated = if run.logs_truncated { "true" } else { "false" };
        return Ok((content_type, [("x-logs-truncated", truncated)], logs).into_response());
    }

    let stream = match in_cluster {
        Some(cluster) => follow_pod_logs(state, cluster, id).boxed(),
        None => follow_logs(state, id).boxed(),
    };
    let no_cache = [(header::CACHE_CONTROL, "no-cache")];
    Ok((content_type, no_cache, Body::from_stream(stream)).into_response())
}

/// Reads the output of a run's Pod; `None` when its program has not started.
async fn live_pod_logs(
    cluster: &ApiCluster,
    id: &str,
    max_bytes: usize,
) -> Result<Option<String>, kube::Error> {
    let Some(pod) = cluster.runner_pod(id).await? else {
        return Ok(None);
    };
    if !container_started(&pod) {
        return Ok(None);
    }
    let name = pod.metadata.name.unwrap_or_default();
    let (logs, _) = crate::k8s::logs::read(cluster.runner_pods(), &name, max_bytes).await?;
    Ok(Some(logs))
}

fn container_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|statuses| statuses.first())
        .and_then(|status| status.state.as_ref())
        .is_some_and(|state| state.running.is_some() || state.terminated.is_some())
}

/// Streams a running Job's output from its Pod, then whatever the stored
/// final logs add, until the run ends.
fn follow_pod_logs(
    state: AppState,
    cluster: Arc<ApiCluster>,
    id: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    async_stream(move |sender| async move {
        let mut events = state.events.subscribe();
        let mut capture = OutputCapture::new(state.config.run_max_log_bytes);
        let mut sent = 0usize;
        let mut streamed = false;

        loop {
            let finished = match state.store.get(&id).await {
                Ok(Some(run)) => run.status.is_terminal(),
                _ => true,
            };
            if finished {
                // The stored logs are the same text, possibly longer than what was streamed.
                if let Ok(stored) = state.store.logs_from(&id, sent).await {
                    if !stored.is_empty() {
                        let _ = sender.send(Ok(Bytes::from(stored))).await;
                    }
                }
                return;
            }

            if !streamed {
                let pod = cluster.runner_pod(&id).await.ok().flatten();
                if let Some(pod) = pod.filter(container_started) {
                    streamed = true;
                    let name = pod.metadata.name.unwrap_or_default();
                    let params = LogParams {
                        container: Some(crate::k8s::logs::CONTAINER.to_string()),
                        follow: true,
                        ..LogParams::default()
                    };
                    if let Ok(stream) = cluster.runner_pods().log_stream(&name, &params).await {
                        let mut stream = Box::pin(stream);
                        let mut buffer = vec![0u8; 16 * 1024];
                        while let Ok(read) = stream.read(&mut buffer).await {
                            if read == 0 || capture.truncated() {
                                break;
                            }
                            capture.push(&buffer[..read]);
                            let text = &capture.text().as_bytes()[sent..];
                            if !text.is_empty() {
                                if sender.send(Ok(Bytes::copy_from_slice(text))).await.is_err() {
                                    return;
                                }
                                sent = capture.len();
                            }
                        }
                    }
                    continue;
                }
            }
            wait_for_change(&mut events, &id, Duration::from_secs(1)).await;
        }
    })
}

/// Streams the run's output as it is stored, until the run ends.
fn follow_logs(state: AppState, id: String) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    async_stream(move |sender| async move {
        let mut events = state.events.subscribe();
        let mut offset = 0usize;
        let mut failures = 0;
        loop {
            // Read the state before the logs, so output written just before the end is not missed.
            let read = async {
                let finished = match state.store.get(&id).await? {
                    Some(run) => run.status.is_terminal(),
                    None => true,
                };
                let chunk = state.store.logs_from(&id, offset).await?;
                Ok::<_, crate::store::StoreError>((finished, chunk))
            };
            let (finished, chunk) = match read.await {
                Ok(read) => {
                    failures = 0;
                    read
                }
                Err(error) if failures < FOLLOW_MAX_FAILURES => {
                    failures += 1;
                    debug!(run_id = %id, %error, failures, "reading followed logs failed; retrying");
                    tokio::time::sleep(FOLLOW_RECHECK).await;
                    continue;
                }
                Err(error) => {
                    // An error item aborts the response, so the client sees it was cut short.
                    warn!(run_id = %id, %error, "ending a log follow: the store kept failing");
                    let _ = sender
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                    return;
                }
            };
            if !chunk.is_empty() {
                offset += chunk.len();
                if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
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

/// Streams the run's status changes as Server-Sent Events until it ends.
#[utoipa::path(
    get,
    path = "/runs/{id}/events",
    operation_id = "get_run_events",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "One `status` event per change, its data the run object (schema `Run`), ending after the final state.",
            content_type = "text/event-stream", body = String,
            example = json!("event: status\ndata: {\"id\":\"01jf3m6x2q8v9w0a1b2c3d4e5f\",\"status\":\"succeeded\",...}\n\n")),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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
                    let newer = last_sent.as_ref().is_none_or(|last| {
                        run.status.rank() > last.status.rank()
                            || (run.status.is_terminal() && last.status != run.status)
                    });
                    if newer {
                        let event = Event::default()
                            .event("status")
                            .json_data(&run)
                            .expect("a run serializes to JSON");
                        if sender.send(Ok(event)).await.is_err() {
                            return;
                        }
                        last_sent = Some(run);
                    }
                }
                if last_sent
                    .as_ref()
                    .is_some_and(|run| run.status.is_terminal())
                {
                    return;
                }

                let event = next_event(&mut events, &id, Duration::from_secs(5)).await;
                let mut run = match state.store.get(&id).await {
                    Ok(Some(run)) => run,
                    Ok(None) => return,
                    Err(error) => {
                        debug!(run_id = %id, %error, "ending an event stream: the store failed");
                        return;
                    }
                };
                // Each stored transition becomes one event, even when the run
                // has moved on by the time it is read.
                if let Some(event) = event.filter(|event| !event.status.is_terminal()) {
                    run.status = event.status;
                    run.reason = event.reason;
                }
                current = Some(run);
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Waits for the next event of run `id`; `None` after `limit`, or when events
/// were missed, so that the caller reads the run's state instead.
async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<crate::events::RunEvent>,
    id: &str,
    limit: Duration,
) -> Option<crate::events::RunEvent> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if event.run_id == id => return Some(event),
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return None,
                Err(RecvError::Closed) => {
                    tokio::time::sleep(limit).await;
                    return None;
                }
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok().flatten()
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
