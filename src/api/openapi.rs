//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`.
//!
//! Paths come from the `#[utoipa::path]` attributes on the handlers, which
//! `utoipa_axum::routes!` also uses to mount them, and schemas come from the
//! types that the handlers read and write, so the document follows the code.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse};

use super::error::{ErrorBody, ErrorCode, ErrorDetail};
use super::runs::RunList;
use crate::config::Config;
use crate::run::{CreateRun, Run, RunStatus};

/// The document's fixed parts: metadata, shared responses and schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "code-runner",
        description = "Runs submitted source code in isolation, queued in Redis.\n\n\
            Every error has the JSON shape `ErrorBody`. A documented path called with \
            another method gets 405 with an `Allow` header (response `MethodNotAllowed`). \
            When `API_TOKENS` is set, every operation with the `bearer` security \
            requirement needs `Authorization: Bearer TOKEN`. Requests are rate limited \
            per token, or per client IP address when tokens are off, except `/health`, \
            `/ready`, `/metrics` and `/openapi.json`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        schemas(ErrorBody, ErrorDetail, ErrorCode, Run, RunStatus, CreateRun, RunList),
        responses(
            BadRequest,
            Unauthorized,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            Unavailable
        )
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "runs", description = "Submit runs, read their state, output and events, cancel them."),
        (name = "system", description = "Probes, the status view, metrics and this document."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme that protected operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// 400: malformed JSON, an unknown field or a value that failed validation.
#[derive(ToResponse)]
#[response(
    description = "Malformed JSON, an unknown field or parameter, or a value that failed validation; `field` names it.",
    example = json!({"error": {"code": "invalid_request", "message": "language must be one of: python, javascript (got \"cobol\")", "field": "language"}})
)]
pub struct BadRequest(pub ErrorBody);

/// 401: `API_TOKENS` is set and the bearer token is missing or wrong.
#[derive(ToResponse)]
#[response(
    description = "`API_TOKENS` is set and the bearer token is missing or wrong.",
    headers(("WWW-Authenticate" = String, description = "`Bearer`")),
    example = json!({"error": {"code": "unauthorized", "message": "a valid bearer token is required in the Authorization header", "field": null}})
)]
pub struct Unauthorized(pub ErrorBody);

/// 404: no run with that id, or no such route.
#[derive(ToResponse)]
#[response(
    description = "No run with that id (or it expired), or no such route.",
    example = json!({"error": {"code": "not_found", "message": "run \"01jf3m6x2q8v9w0a1b2c3d4e5f\" was not found", "field": null}})
)]
pub struct NotFound(pub ErrorBody);

/// 405: a documented path called with a method it does not have.
#[derive(ToResponse)]
#[response(
    description = "A documented path called with a method it does not have; `Allow` lists its methods.",
    headers(("Allow" = String, description = "The path's methods, such as `GET,HEAD`.")),
    example = json!({"error": {"code": "method_not_allowed", "message": "this route does not accept that method; see the Allow header", "field": null}})
)]
pub struct MethodNotAllowed(pub ErrorBody);

/// 409: the action conflicts with the run's state.
#[derive(ToResponse)]
#[response(
    description = "The action conflicts with the run's state, such as a run that finished while it was being cancelled.",
    example = json!({"error": {"code": "conflict", "message": "run 01jf3m6x2q8v9w0a1b2c3d4e5f finished as succeeded before it could be cancelled; DELETE again to remove it", "field": null}})
)]
pub struct Conflict(pub ErrorBody);

/// 413: the body, `code` or `stdin` is larger than its limit.
#[derive(ToResponse)]
#[response(
    description = "The body, `code` or `stdin` is larger than its limit (`RUN_MAX_CODE_BYTES`, `RUN_MAX_STDIN_BYTES`).",
    example = json!({"error": {"code": "payload_too_large", "message": "code is 300000 bytes, larger than the limit of 262144 bytes", "field": "code"}})
)]
pub struct PayloadTooLarge(pub ErrorBody);

/// 415: the body was not sent as `application/json`.
#[derive(ToResponse)]
#[response(
    description = "The body was not sent with `Content-Type: application/json`.",
    example = json!({"error": {"code": "unsupported_media_type", "message": "request body must be sent with Content-Type: application/json (got \"text/plain\")", "field": null}})
)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// 429: over the client's rate limit, or (`POST /runs` only) the queue is full.
#[derive(ToResponse)]
#[response(
    description = "The client is over its rate limit (`rate_limited`) or, for `POST /runs`, the queue holds `QUEUE_MAX_DEPTH` runs (`queue_full`).",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying.")),
    examples(
        ("rate_limited" = (value = json!({"error": {"code": "rate_limited", "message": "too many requests; retry after 1 s", "field": null}}))),
        ("queue_full" = (value = json!({"error": {"code": "queue_full", "message": "the queue holds 10000 runs, its maximum; retry later", "field": null}}))),
    )
)]
pub struct TooManyRequests(pub ErrorBody);

/// 503: Redis is unreachable.
#[derive(ToResponse)]
#[response(
    description = "Redis is unreachable; the service recovers by itself.",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying.")),
    example = json!({"error": {"code": "unavailable", "message": "the run store (Redis) is unavailable; retry shortly", "field": null}})
)]
pub struct Unavailable(pub ErrorBody);

/// The finished document as JSON, shared by every request for it.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

/// Completes the document built from the routes with the limits of this
/// configuration, and serializes it once.
pub fn finish(document: utoipa::openapi::OpenApi, config: &Config) -> Document {
    let mut value = serde_json::to_value(&document).expect("the OpenAPI document serializes");
    let create = &mut value["components"]["schemas"]["CreateRun"]["properties"];
    if let Some(timeout) = create.get_mut("timeout_seconds") {
        timeout["maximum"] = Value::from(config.run_max_timeout_seconds);
    }
    // In OpenAPI 3.1 the schema of `text/event-stream` describes one event.
    // utoipa has no attribute for `contentSchema`, which says that each
    // event's data is a run object in JSON.
    let events = &mut value["paths"]["/runs/{id}/events"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"];
    if let Some(schema) = events.get_mut("schema") {
        *schema = serde_json::json!({
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "status"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/Run"}
                }
            }
        });
    }
    Document(Arc::new(
        serde_json::to_string(&value).expect("a JSON value serializes"),
    ))
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi_document",
    tag = "system",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = serde_json::Value),
    )
)]
pub async fn document(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_str().to_owned(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::config::{Config, Mode};

    fn document() -> Value {
        let config = Config::from_lookup(Mode::Dev, |name| match name {
            "RUN_MAX_TIMEOUT_SECONDS" => Some("120".into()),
            _ => None,
        })
        .unwrap();
        crate::api::openapi_document(&config)
    }

    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
        operations
    }

    /// Collects every `$ref` in the document.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => references(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }

    #[test]
    fn document_is_openapi_3_1() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "code-runner");
    }

    #[test]
    fn every_endpoint_is_documented() {
        let documented: Vec<String> = operations(&document())
            .into_iter()
            .map(|(method, path, _)| format!("{method} {path}"))
            .collect();
        for endpoint in [
            "GET /health",
            "GET /ready",
            "GET /metrics",
            "GET /openapi.json",
            "GET /system/status",
            "POST /runs",
            "GET /runs",
            "GET /runs/{id}",
            "DELETE /runs/{id}",
            "GET /runs/{id}/logs",
            "GET /runs/{id}/events",
            "GET /",
        ] {
            assert!(documented.contains(&endpoint.to_string()), "{endpoint}");
        }
        assert_eq!(documented.len(), 12, "{documented:?}");
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("references are local");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} does not resolve"
            );
        }
    }

    #[test]
    fn limited_operations_document_429_with_retry_after() {
        let document = document();
        let exempt = ["/health", "/ready", "/metrics", "/openapi.json"];
        for (method, path, operation) in operations(&document) {
            let has_429 = operation["responses"].get("429").is_some();
            assert_eq!(has_429, !exempt.contains(&path.as_str()), "{method} {path}");
        }
        let retry_after = &document["components"]["responses"]["TooManyRequests"]["headers"];
        assert!(retry_after.get("Retry-After").is_some());
        let retry_after = &document["components"]["responses"]["Unavailable"]["headers"];
        assert!(retry_after.get("Retry-After").is_some());
    }

    #[test]
    fn protected_operations_document_401() {
        for (method, path, operation) in operations(&document()) {
            let protected = operation.get("security").is_some();
            let has_401 = operation["responses"].get("401").is_some();
            assert_eq!(protected, has_401, "{method} {path}");
        }
    }

    #[test]
    fn create_request_rejects_unknown_fields() {
        let document = document();
        let create = &document["components"]["schemas"]["CreateRun"];
        assert_eq!(create["additionalProperties"], false);
        assert_eq!(create["required"], serde_json::json!(["language", "code"]));
        assert_eq!(create["properties"]["timeout_seconds"]["maximum"], 120);
    }

    #[test]
    fn created_run_links_to_its_operations() {
        let document = document();
        let links = &document["paths"]["/runs"]["post"]["responses"]["201"]["links"];
        let operation_ids: Vec<String> = operations(&document)
            .into_iter()
            .filter_map(|(_, _, operation)| operation["operationId"].as_str().map(String::from))
            .collect();
        for name in ["GetRun", "GetRunLogs", "GetRunEvents", "DeleteRun"] {
            let link = &links[name];
            let target = link["operationId"].as_str().expect(name);
            assert!(operation_ids.contains(&target.to_string()), "{name}");
            assert_eq!(link["parameters"]["id"], "$response.body#/id");
        }
    }

    #[test]
    fn streams_have_their_media_types() {
        let document = document();
        let logs = &document["paths"]["/runs/{id}/logs"]["get"]["responses"]["200"]["content"];
        assert!(logs.get("text/plain").is_some());
        let events = &document["paths"]["/runs/{id}/events"]["get"]["responses"]["200"]["content"];
        let event = &events["text/event-stream"]["schema"];
        assert_eq!(event["properties"]["event"]["const"], "status");
        assert_eq!(
            event["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/Run"
        );
    }

    #[test]
    fn run_schema_matches_serialized_run() {
        let document = document();
        let schema = &document["components"]["schemas"]["Run"];
        let documented: std::collections::BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let example = schema["example"].clone();
        let run: crate::run::Run = serde_json::from_value(example).expect("the example is a run");
        let serialized = serde_json::to_value(&run).unwrap();
        let fields: std::collections::BTreeSet<&str> = serialized
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(documented, fields);

        let required: std::collections::BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect();
        assert_eq!(required, fields, "every field of a run is always present");
    }
}
