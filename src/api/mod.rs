//! The HTTP API (axum): runs, logs, events, the status view, metrics and the UI.

mod error;
mod json;
mod logs;
mod middleware;
pub mod openapi;
mod rate_limit;
mod runs;
mod system;
mod ui;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody, ErrorCode};
pub use runs::RunList;

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
    let (routes, document) = documented_routes();
    let document = openapi::finish(document, &state.config);

    let mut router = routes
        .route("/ui/{*path}", get(ui::asset))
        .fallback(middleware::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(document));
    // Layers added later run earlier, so the limit runs after authentication,
    // which stores the request's token for it.
    // NOTE: requests rejected with 401 are therefore not rate limited.
    if let Some(limits) = rate_limit::RateLimits::new(
        state.config.rate_limit_per_second,
        state.config.rate_limit_burst,
    ) {
        router = router.layer(axum::middleware::from_fn(move |request, next| {
            rate_limit::limit(Arc::clone(&limits), request, next)
        }));
    }
    router
        .layer(axum::middleware::from_fn(move |request, next| {
            middleware::authenticate(Arc::clone(&tokens), request, next)
        }))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Mounts every documented route and returns the OpenAPI document built
/// from their `#[utoipa::path]` attributes.
fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .routes(routes!(system::status))
        .routes(routes!(openapi::document))
        .routes(routes!(runs::list, runs::create))
        .routes(routes!(runs::get, runs::delete))
        .routes(routes!(logs::logs))
        .routes(routes!(logs::events))
        .routes(routes!(ui::index))
        .split_for_parts()
}

/// Returns the OpenAPI document for `config`, as `GET /openapi.json` serves it.
pub fn openapi_document(config: &Config) -> serde_json::Value {
    let (_, document) = documented_routes();
    let document = openapi::finish(document, config);
    serde_json::from_str(&document.0).expect("the document is JSON")
}
