//! Probes, the status view and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::openapi::{TooManyRequests, Unauthorized, Unavailable};
use super::AppState;
use crate::status::SystemStatus;

/// Liveness: succeeds while the process serves.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "system",
    responses((status = 200, description = "The process serves.", body = serde_json::Value, example = json!({"status": "ok"}))),
)]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: succeeds only when Redis answers.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "system",
    responses(
        (status = 200, description = "Redis answers.", body = serde_json::Value, example = json!({"status": "ready"})),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}

/// The live view that the UI polls: queue, workers, runner Pods and history.
#[utoipa::path(
    get,
    path = "/system/status",
    operation_id = "system_status",
    tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The view; cluster parts are empty and `kubernetes.ok` is false without a cluster.", body = SystemStatus),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
    ),
)]
pub async fn status(State(state): State<AppState>) -> Json<SystemStatus> {
    Json(state.status.status().await)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "system",
    responses((status = 200, description = "Prometheus text format 0.0.4.", content_type = "text/plain", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::app::refresh_queue_gauges(&state.store).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
