//! The API's error type and its one mapping to status codes and the JSON error shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::{error, warn};

use crate::run::{RunStatus, ValidationError};
use crate::store::StoreError;

/// Seconds a client should wait before retrying after a 503.
const UNAVAILABLE_RETRY_AFTER: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    PayloadTooLarge {
        message: String,
        field: Option<String>,
    },
    #[error("request body must be sent with Content-Type: application/json (got {0})")]
    UnsupportedMediaType(String),
    #[error("a valid bearer token is required in the Authorization header")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the queue holds {depth} runs, its maximum; retry later")]
    QueueFull { depth: u64, retry_after: u64 },
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    pub fn run_not_found(id: &str) -> Self {
        ApiError::NotFound(format!("run {id:?} was not found"))
    }

    pub fn unfinished(id: &str, status: RunStatus) -> Self {
        ApiError::Conflict(format!("run {id} is {status}, not finished"))
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { field, .. } | ApiError::PayloadTooLarge { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::QueueFull { retry_after, .. } | ApiError::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(source) => {
                warn!(error = %source, "redis unavailable");
                ApiError::Unavailable("the run store (Redis) is unavailable; retry shortly".into())
            }
            other => {
                error!(error = %other, "store request failed");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        if error.too_large {
            ApiError::PayloadTooLarge {
                message: error.message,
                field: Some(error.field.to_string()),
            }
        } else {
            ApiError::invalid(error.field, error.message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = json!({
            "error": {"code": code, "message": self.to_string(), "field": self.field()}
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Builds the JSON error body for a bare status code, as the safety net for
/// responses produced outside the handlers.
pub fn body_for_status(status: StatusCode) -> serde_json::Value {
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept that method; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "request body must be sent with Content-Type: application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        status if status.is_server_error() => ("internal", "internal error"),
        _ => ("invalid_request", "the request was rejected"),
    };
    json!({"error": {"code": code, "message": message, "field": null}})
}
