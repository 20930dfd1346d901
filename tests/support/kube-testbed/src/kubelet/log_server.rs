//! The kubelet's `/containerLogs/{namespace}/{pod}/{container}` endpoint,
//! served over TLS on each node's kubelet port so that the API server can
//! proxy `pods/log` to it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::logs::LogQuery;
use super::registry::{ContainerView, PodRegistry};

#[derive(Clone)]
struct LogState {
    node: Arc<str>,
    registry: PodRegistry,
}

/// Query parameters the API server forwards from a `pods/log` request.
/// Others, such as `timestamps` and `sinceSeconds`, are ignored.
#[derive(Debug, Deserialize)]
struct LogParams {
    follow: Option<String>,
    #[serde(rename = "limitBytes")]
    limit_bytes: Option<u64>,
    #[serde(rename = "tailLines")]
    tail_lines: Option<u64>,
}

/// Builds the router of one node's kubelet endpoint.
pub fn router(node: &str, registry: PodRegistry) -> Router {
    let state = LogState {
        node: Arc::from(node),
        registry,
    };
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn container_logs(
    State(state): State<LogState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(params): Query<LogParams>,
) -> Response {
    let Some(handle) = state.registry.find(&state.node, &namespace, &pod) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} not found on node {}\n", state.node),
        )
            .into_response();
    };
    let store = match handle.container(&container) {
        Some(ContainerView::Started(store)) => store,
        Some(ContainerView::Waiting { reason }) => {
            let message = format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}\n"
            );
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
        None => {
            let message = format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating\n");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let query = LogQuery {
        follow: matches!(params.follow.as_deref(), Some("true" | "1")),
        limit_bytes: params.limit_bytes,
        tail_lines: params.tail_lines,
    };
    match store.read(query).await {
        Ok(stream) => Response::builder()
            .header("content-type", "text/plain")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|error| {
                (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
            }),
        Err(error) => {
            tracing::error!(%error, %namespace, %pod, %container, path = %store.path().display(), "failed to open container log");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to open log: {error}\n"),
            )
                .into_response()
        }
    }
}
