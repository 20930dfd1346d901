//! The HTTP API (axum): runs, logs, events, the status view, metrics and the UI.

mod error;
mod json;
mod logs;
mod middleware;
mod runs;
mod system;
mod ui;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::config::Config;
use crate::events::EventHub;
use crate::k8s::cluster::ApiCluster;
use crate::status::StatusView;
use crate::store::RunStore;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<RunStore>,
    pub events: EventHub,
    pub status: Arc<StatusView>,
    pub metrics: PrometheusHandle,
    /// The cluster, when runs execute as Kubernetes Jobs: cancel deletes the
    /// Job, and logs of running programs come from their Pods.
    pub cluster: Option<Arc<ApiCluster>>,
}

/// Builds the router with every route and middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes();
    let tokens = Arc::new(state.config.api_tokens.clone());

    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/system/status", get(system::status))
        .route("/runs", get(runs::list).post(runs::create))
        .route("/runs/{id}", get(runs::get).delete(runs::delete))
        .route("/runs/{id}/logs", get(logs::logs))
        .route("/runs/{id}/events", get(logs::events))
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .fallback(middleware::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |request, next| {
            middleware::authenticate(Arc::clone(&tokens), request, next)
        }))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
