//! The admin HTTP API of the fault proxy (plain HTTP on loopback).
//!
//! | method and path          | body / result |
//! | ---                      | --- |
//! | `GET /healthz`           | `ok` |
//! | `GET /state`             | bursts, latencies, recordings, open watches, counters |
//! | `POST /faults`           | `{"status":500,"count":3,"method":"POST","path_contains":"/jobs","retry_after_seconds":1}` |
//! | `DELETE /faults`         | clears bursts |
//! | `POST /latency`          | `{"millis":200,"count":10,"method":"GET","path_contains":"/pods"}` |
//! | `DELETE /latency`        | clears latencies |
//! | `POST /watches/drop`     | `{"reject_seconds":5}` → `{"dropped":N}` |
//! | `GET /watches`           | `{"open":N,"rejecting_for_millis":M}` |
//! | `POST /recordings`       | `{"name":"job-posts","method":"POST","path_contains":"/jobs"}` |
//! | `GET /recordings/{name}` | `{"name":..,"method":..,"path_contains":..,"arrivals_unix_nanos":[..]}` |
//! | `DELETE /recordings/{name}` | removes it |
//! | `POST /reset`            | clears all of the above |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::faults::{ErrorBurst, Faults, Latency, RequestFilter};

type Shared = State<Arc<Faults>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropRequest {
    #[serde(default)]
    reject_seconds: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingRequest {
    name: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path_contains: Option<String>,
}

/// Builds the admin router over the proxy's fault state.
pub fn router(faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/state", get(state))
        .route("/faults", post(add_burst).delete(clear_bursts))
        .route("/latency", post(add_latency).delete(clear_latency))
        .route("/watches", get(watches))
        .route("/watches/drop", post(drop_watches))
        .route("/recordings", post(start_recording))
        .route(
            "/recordings/{name}",
            get(get_recording).delete(delete_recording),
        )
        .route("/reset", post(reset))
        .with_state(faults)
}

fn invalid(rejection: JsonRejection) -> Response {
    let body = json!({ "error": format!("invalid request body: {}", rejection.body_text()) });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn state(State(faults): Shared) -> Json<serde_json::Value> {
    Json(json!({
        "bursts": faults.bursts(),
        "latencies": faults.latencies(),
        "recordings": faults.recording_names(),
        "open_watches": faults.open_watch_count(),
        "rejecting_watches_for_millis": faults.rejecting_watches_for().as_millis() as u64,
        "counters": faults.counters(),
    }))
}

async fn add_burst(
    State(faults): Shared,
    body: Result<Json<ErrorBurst>, JsonRejection>,
) -> Response {
    let Json(burst) = match body {
        Ok(body) => body,
        Err(rejection) => return invalid(rejection),
    };
    if !(400..=599).contains(&burst.status) {
        let body =
            json!({ "error": format!("invalid status {}: expected 400 to 599", burst.status) });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    tracing::info!(status = burst.status, count = burst.count, method = ?burst.method, path_contains = ?burst.path_contains, "error burst added");
    faults.add_burst(burst.clone());
    (StatusCode::CREATED, Json(burst)).into_response()
}

async fn clear_bursts(State(faults): Shared) -> StatusCode {
    faults.clear_bursts();
    StatusCode::NO_CONTENT
}

async fn add_latency(
    State(faults): Shared,
    body: Result<Json<Latency>, JsonRejection>,
) -> Response {
    let Json(latency) = match body {
        Ok(body) => body,
        Err(rejection) => return invalid(rejection),
    };
    tracing::info!(millis = latency.millis, count = ?latency.count, method = ?latency.method, path_contains = ?latency.path_contains, "latency added");
    faults.add_latency(latency.clone());
    (StatusCode::CREATED, Json(latency)).into_response()
}

async fn clear_latency(State(faults): Shared) -> StatusCode {
    faults.clear_latencies();
    StatusCode::NO_CONTENT
}

async fn watches(State(faults): Shared) -> Json<serde_json::Value> {
    Json(json!({
        "open": faults.open_watch_count(),
        "rejecting_for_millis": faults.rejecting_watches_for().as_millis() as u64,
    }))
}

async fn drop_watches(
    State(faults): Shared,
    body: Result<Json<DropRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return invalid(rejection),
    };
    let reject_for =
        Duration::try_from_secs_f64(request.reject_seconds.max(0.0)).unwrap_or_default();
    let dropped = faults.drop_watches(reject_for);
    tracing::info!(
        dropped,
        reject_seconds = request.reject_seconds,
        "watches dropped"
    );
    Json(json!({ "dropped": dropped })).into_response()
}

async fn start_recording(
    State(faults): Shared,
    body: Result<Json<RecordingRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return invalid(rejection),
    };
    let filter = RequestFilter {
        method: request.method,
        path_contains: request.path_contains,
    };
    tracing::info!(name = %request.name, method = ?filter.method, path_contains = ?filter.path_contains, "recording started");
    faults.start_recording(request.name.clone(), filter);
    let recording = faults.recording(&request.name);
    (StatusCode::CREATED, Json(recording)).into_response()
}

async fn get_recording(State(faults): Shared, Path(name): Path<String>) -> Response {
    match faults.recording(&name) {
        Some(recording) => Json(recording).into_response(),
        None => not_found(&name),
    }
}

async fn delete_recording(State(faults): Shared, Path(name): Path<String>) -> Response {
    if faults.remove_recording(&name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&name)
    }
}

fn not_found(name: &str) -> Response {
    let body =
        json!({ "error": format!("recording {name:?} not found; start it with POST /recordings") });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn reset(State(faults): Shared) -> StatusCode {
    faults.reset();
    tracing::info!("fault plan reset");
    StatusCode::NO_CONTENT
}
