//! Middleware: bearer tokens, HTTP metrics, and the guarantee that every
//! error response carries the JSON error shape.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{body_for_status, ApiError, ErrorBody, ErrorCode};
use super::rate_limit::ClientKey;
use crate::metrics;

/// Routes open without a token: probes, metrics, the API document and the
/// UI's static files.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/ready" | "/metrics" | "/openapi.json" | "/"
    ) || path.starts_with("/ui/")
}

/// Rejects requests without an accepted bearer token when tokens are set,
/// and marks accepted ones with the token's [`ClientKey`] for the rate limit.
pub async fn authenticate(tokens: Arc<Vec<String>>, mut request: Request, next: Next) -> Response {
    if tokens.is_empty() || is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    // Every token is compared, so the time taken does not reveal which one matched.
    let accepted = presented.and_then(|presented| {
        tokens
            .iter()
            .map(|token| constant_time_eq(token.as_bytes(), presented.as_bytes()))
            .enumerate()
            .fold(None, |found, (index, equal)| {
                found.or(equal.then_some(index))
            })
    });
    if let Some(index) = accepted {
        request.extensions_mut().insert(ClientKey::Token(index));
        next.run(request).await
    } else {
        let mut response = ApiError::Unauthorized.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// Takes the token out of an `Authorization` value. The scheme is
/// case-insensitive (RFC 7235) and may be followed by spaces or tabs.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares tokens in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Counts and times each request by its route template, never by its raw path.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    metrics::record_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Replaces any error response that is not JSON (from axum itself or a layer)
/// with the JSON error shape, keeping its status and headers such as `Allow`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&body_for_status(status)).expect("a JSON value serializes");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

pub async fn not_found(request: Request) -> Response {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody::new(ErrorCode::NotFound, message, None)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
