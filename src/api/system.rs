//! Probes, the status view and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use tracing::debug;

use super::error::ApiError;
use super::AppState;
use crate::metrics;
use crate::status::SystemStatus;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}

pub async fn status(State(state): State<AppState>) -> Json<SystemStatus> {
    Json(state.status.status().await)
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The gauges mirror Redis at scrape time; stale values stay when it is down.
    match (
        state.store.queue_depth().await,
        state.store.active_count().await,
    ) {
        (Ok(depth), Ok(active)) => {
            metrics::set_queue_depth(depth);
            metrics::set_active_runs(active);
        }
        (Err(error), _) | (_, Err(error)) => debug!(%error, "queue gauges not refreshed"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
