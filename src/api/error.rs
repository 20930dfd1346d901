//! The API's error type and its one mapping to status codes and the JSON error shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::{error, warn};
use utoipa::ToSchema;

use crate::run::{RunStatus, ValidationError};
use crate::store::StoreError;

/// Seconds a client should wait before retrying after a 503.
const UNAVAILABLE_RETRY_AFTER: u64 = 2;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_request", "message": "language must be one of: python, javascript (got \"cobol\")", "field": "language"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error details: `code` and `field` for programs, `message` for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request field, query parameter or header that failed validation.
    #[schema(required)]
    pub field: Option<String>,
}

/// Machine-readable error codes; each belongs to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    QueueFull,
    Unavailable,
    Timeout,
    Internal,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                field,
            },
        }
    }
}

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

    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            ApiError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::QueueFull),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
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
            StoreError::Unavailable(source) if source.is_timeout() => {
                warn!(error = %source, "redis did not respond in time");
                // The command may still have run, so a retried POST needs the same key.
                ApiError::Unavailable(
                    "the run store (Redis) did not answer in time, so the request may have taken effect; \
                     retry shortly, with the same Idempotency-Key for POST /runs"
                        .into(),
                )
            }
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
        let body = ErrorBody::new(code, self.to_string(), self.field().map(str::to_string));
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
pub fn body_for_status(status: StatusCode) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => (ErrorCode::InvalidRequest, "the request is malformed"),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "this route does not accept that method; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "request body must be sent with Content-Type: application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::Timeout, "the request took too long"),
        status if status.is_server_error() => (ErrorCode::Internal, "internal error"),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "too many requests; retry later"),
        _ => (ErrorCode::InvalidRequest, "the request was rejected"),
    };
    ErrorBody::new(code, message, None)
}
