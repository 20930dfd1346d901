//! The browser UI, embedded from `ui/` at build time.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

#[derive(RustEmbed)]
#[folder = "ui/"]
#[exclude = "node_modules/*"]
#[exclude = "tests/*"]
#[exclude = "package.json"]
#[exclude = "package-lock.json"]
struct Assets;

/// The browser UI.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "ui",
    tag = "system",
    responses(
        (status = 200, description = "The UI's HTML page.", content_type = "text/html", body = String),
        (status = 429, response = super::openapi::TooManyRequests),
    )
)]
pub async fn index() -> Response {
    serve("index.html")
}

pub async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

fn serve(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => {
            let mime = content_type(path);
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => ApiError::NotFound(format!("no UI file {path:?}")).into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}
