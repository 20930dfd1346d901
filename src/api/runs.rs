//! Handlers of `/runs` and `/runs/{id}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::ToSchema;

use super::error::ApiError;
use super::json::JsonBody;
use super::openapi::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use super::AppState;
use crate::metrics;
use crate::run::{format_timestamp, is_valid_run_id, CreateRun, Run, RunFields, RunStatus};
use crate::store::{DeleteOutcome, SubmitOutcome};

/// Seconds a client should wait when the queue is full.
const QUEUE_FULL_RETRY_AFTER: u64 = 5;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// One page of `GET /runs`, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required, pattern = "^[0-9a-z]{26}$")]
    pub next_cursor: Option<String>,
}

/// Validates, stores and queues a run.
#[utoipa::path(
    post,
    path = "/runs",
    operation_id = "create_run",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "Makes a retried POST return the run that the first one created instead of queueing another."),
    ),
    request_body(content = CreateRun, content_type = "application/json"),
    responses(
        (status = 201, description = "The run was queued.", body = Run,
            headers(("Location" = String, description = "`/runs/{id}`")),
            links(
                ("GetRun" = (operation_id = "get_run", parameters(("id" = "$response.body#/id")))),
                ("GetRunLogs" = (operation_id = "get_run_logs", parameters(("id" = "$response.body#/id")))),
                ("GetRunEvents" = (operation_id = "get_run_events", parameters(("id" = "$response.body#/id")))),
                ("DeleteRun" = (operation_id = "delete_run", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 200, description = "An earlier request with the same `Idempotency-Key` created this run.", body = Run,
            headers(("Location" = String, description = "`/runs/{id}`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateRun>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let run = request.validate(&state.config)?;

    let outcome = state.store.submit(&run, idempotency_key.as_deref()).await?;
    let (status, id) = match outcome {
        SubmitOutcome::Created(id) => {
            info!(run_id = %id, language = %run.language, timeout_seconds = run.timeout_seconds, "run queued");
            metrics::record_submitted(run.language.as_str());
            (StatusCode::CREATED, id)
        }
        SubmitOutcome::Existing(id) => (StatusCode::OK, id),
        SubmitOutcome::QueueFull(depth) => {
            warn!(depth, "rejecting a run: the queue is full");
            return Err(ApiError::QueueFull {
                depth,
                retry_after: QUEUE_FULL_RETRY_AFTER,
            });
        }
    };

    let stored = state.store.get(&id).await?.ok_or_else(|| {
        ApiError::Internal(format!("run {id} vanished right after it was stored"))
    })?;
    let location = HeaderValue::from_str(&format!("/runs/{id}")).expect("run ids are header-safe");
    let mut response = (status, Json(stored)).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some(key.to_string()))
}

/// Lists recent runs, newest first.
#[utoipa::path(
    get,
    path = "/runs",
    operation_id = "list_runs",
    tag = "runs",
    security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Runs per page; 50 when left out."),
        ("cursor" = Option<String>, Query, pattern = "^[0-9a-z]{26}$", description = "`next_cursor` of the previous page."),
        ("status" = Option<RunStatus>, Query, description = "Only runs in this state."),
    ),
    responses(
        (status = 200, description = "One page of runs.", body = RunList),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<RunList>, ApiError> {
    if let Some(unknown) = params
        .keys()
        .find(|name| !matches!(name.as_str(), "limit" | "cursor" | "status"))
    {
        return Err(ApiError::invalid(
            unknown,
            format!("unknown query parameter {unknown:?}; use limit, cursor or status"),
        ));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE} (got {raw:?})"),
                )
            })?,
    };
    let cursor = match params.get("cursor") {
        Some(cursor) if !is_valid_run_id(cursor) => {
            return Err(ApiError::invalid(
                "cursor",
                format!("cursor must be a run id from next_cursor (got {cursor:?})"),
            ))
        }
        cursor => cursor.map(String::as_str),
    };
    let status = match params.get("status") {
        None => None,
        Some(raw) => Some(raw.parse::<RunStatus>().map_err(|_| {
            let names: Vec<&str> = RunStatus::ALL
                .iter()
                .map(|status| status.as_str())
                .collect();
            ApiError::invalid(
                "status",
                format!("status must be one of: {} (got {raw:?})", names.join(", ")),
            )
        })?),
    };

    let page = state.store.list(limit, cursor, status).await?;
    Ok(Json(RunList {
        runs: page.runs,
        next_cursor: page.next_cursor,
    }))
}

/// Returns one run.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "get_run",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = Run),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    state
        .store
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::run_not_found(&id))
}

/// Cancels an unfinished run, or deletes a finished one.
#[utoipa::path(
    delete,
    path = "/runs/{id}",
    operation_id = "delete_run",
    tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run was unfinished and is now cancelled.", body = Run),
        (status = 204, description = "The run had finished; its record and output are deleted."),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::run_not_found(&id))?;

    if run.status.is_terminal() {
        return match state.store.delete(&id).await? {
            DeleteOutcome::Deleted => {
                info!(run_id = %id, "run deleted");
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            DeleteOutcome::NotFound => Err(ApiError::run_not_found(&id)),
            DeleteOutcome::Unfinished(status) => Err(ApiError::unfinished(&id, status)),
        };
    }

    let fields = RunFields {
        finished_at: Some(format_timestamp(Utc::now())),
        reason: Some("Cancelled".into()),
        message: Some("cancelled by request".into()),
        ..RunFields::default()
    };
    let transition = state
        .store
        .transition(&id, RunStatus::Cancelled, &fields)
        .await?;
    if !transition.applied {
        return Err(ApiError::Conflict(format!(
            "run {id} finished as {} before it could be cancelled; DELETE again to remove it",
            transition
                .previous
                .map(|status| status.as_str())
                .unwrap_or("deleted")
        )));
    }
    info!(run_id = %id, previous = ?transition.previous, "run cancelled");
    metrics::record_finished(
        &run.language,
        RunStatus::Cancelled,
        run.started_at.as_deref(),
        &fields,
    );

    // The store already records cancelled; stopping the program is best effort
    // here and bounded by the run's deadline otherwise.
    if let Err(error) = state.store.publish_cancel(&id).await {
        warn!(run_id = %id, %error, "publishing the cancellation failed; the program stops at its deadline");
    }
    if let Some(cluster) = &state.cluster {
        cluster.cancel(&id).await;
    }

    let run = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::run_not_found(&id))?;
    Ok(Json(run).into_response())
}
