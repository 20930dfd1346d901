//! Black-box tests of the HTTP API: validation and the error shape, limits,
//! idempotency, authentication, listing, streaming, status and metrics.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{assert_error, read_sse, service, Mode, RedisServer, Service, DEADLINE};
use futures::StreamExt;
use redis::AsyncCommands;
use serde_json::{json, Value};

const MAX_CODE_BYTES: usize = 1024;
const MAX_STDIN_BYTES: usize = 1024;

/// Starts `code-runner api` alone: with no worker, whatever is queued stays
/// in `runs:queue`, so a test can see exactly what a request queued.
async fn api_only(redis: &RedisServer, name: &str) -> Service {
    service(Mode::Api, name)
        .env("RUN_MAX_CODE_BYTES", MAX_CODE_BYTES)
        .env("RUN_MAX_STDIN_BYTES", MAX_STDIN_BYTES)
        .start(redis)
        .await
}

/// Counts the run records in Redis, queued or not.
async fn stored_runs(redis: &RedisServer) -> u64 {
    let mut connection = redis.connection().await;
    connection.zcard("runs:recent").await.unwrap()
}

/// A raw request body case: its name, content type, body, expected status and error code.
type BodyCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

async fn post_json(service: &Service, body: &Value) -> reqwest::Response {
    service
        .http()
        .post(service.url("/runs"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post_raw(
    service: &Service,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = service.http().post(service.url("/runs")).body(body);
    if let Some(content_type) = content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn invalid_fields_queue_nothing() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "invalid-fields").await;
    let too_long = "x".repeat(MAX_CODE_BYTES + 1);
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "unknown language",
            json!({"language": "cobol", "code": "x"}),
            400,
            "invalid_request",
            Some("language"),
        ),
        (
            "missing code",
            json!({"language": "python"}),
            400,
            "invalid_request",
            Some("code"),
        ),
        (
            "empty code",
            json!({"language": "python", "code": ""}),
            400,
            "invalid_request",
            Some("code"),
        ),
        (
            "blank code",
            json!({"language": "python", "code": " \n\t"}),
            400,
            "invalid_request",
            Some("code"),
        ),
        (
            "code of the wrong type",
            json!({"language": "python", "code": 42}),
            400,
            "invalid_request",
            Some("code"),
        ),
        (
            "missing language",
            json!({"code": "print(1)"}),
            400,
            "invalid_request",
            Some("language"),
        ),
        (
            "timeout 0",
            json!({"language": "python", "code": "x", "timeout_seconds": 0}),
            400,
            "invalid_request",
            Some("timeout_seconds"),
        ),
        (
            "negative timeout",
            json!({"language": "python", "code": "x", "timeout_seconds": -1}),
            400,
            "invalid_request",
            Some("timeout_seconds"),
        ),
        (
            "timeout above the maximum",
            json!({"language": "python", "code": "x", "timeout_seconds": 100_000}),
            400,
            "invalid_request",
            Some("timeout_seconds"),
        ),
        (
            "timeout as a string",
            json!({"language": "python", "code": "x", "timeout_seconds": "30"}),
            400,
            "invalid_request",
            Some("timeout_seconds"),
        ),
        (
            "fractional timeout",
            json!({"language": "python", "code": "x", "timeout_seconds": 1.5}),
            400,
            "invalid_request",
            Some("timeout_seconds"),
        ),
        (
            "unknown field",
            json!({"language": "python", "code": "x", "priority": 1}),
            400,
            "invalid_request",
            Some("priority"),
        ),
        (
            "code over RUN_MAX_CODE_BYTES",
            json!({"language": "python", "code": too_long}),
            413,
            "payload_too_large",
            Some("code"),
        ),
        (
            "stdin over RUN_MAX_STDIN_BYTES",
            json!({"language": "python", "code": "x", "stdin": "y".repeat(MAX_STDIN_BYTES + 1)}),
            413,
            "payload_too_large",
            Some("stdin"),
        ),
    ];

    for (case, body, status, code, field) in cases {
        let response = post_json(&service, &body).await;
        let error = assert_error(case, response, status, code, field).await;
        assert_eq!(redis.queue_len().await, 0, "{case} queued a run: {error}");
        assert_eq!(stored_runs(&redis).await, 0, "{case} stored a run: {error}");
    }

    // The same checks see a valid request queue one run.
    service
        .submit(json!({"language": "python", "code": "print(1)"}))
        .await;
    assert_eq!(redis.queue_len().await, 1);
}

/// serde's derived `Deserialize` also reads a struct from a JSON array of
/// its field values, so `["python", "print(1)"]` must be rejected explicitly.
#[tokio::test]
async fn array_body_is_rejected() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "array-body").await;

    let response = post_json(&service, &json!(["python", "print(1)"])).await;

    assert_error("an array body", response, 400, "invalid_request", None).await;
    assert_eq!(redis.queue_len().await, 0);
}

#[tokio::test]
async fn malformed_bodies_queue_nothing() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "malformed-bodies").await;
    let valid = br#"{"language":"python","code":"print(1)"}"#.to_vec();
    let oversized = format!(
        r#"{{"language":"python","code":"{}"}}"#,
        "x".repeat(200 * 1024)
    )
    .into_bytes();
    let cases: Vec<BodyCase> = vec![
        (
            "truncated JSON",
            Some("application/json"),
            br#"{"language": "python", "code": "#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "not JSON at all",
            Some("application/json"),
            b"language=python".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "empty body",
            Some("application/json"),
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"language\":\"python\",\"code\":\"\xff\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "text/plain content type",
            Some("text/plain"),
            valid.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            valid.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            valid.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "body over the limit",
            Some("application/json"),
            oversized,
            413,
            "payload_too_large",
        ),
    ];

    for (case, content_type, body, status, code) in cases {
        let response = post_raw(&service, content_type, body).await;
        let error = assert_error(case, response, status, code, None).await;
        assert_eq!(redis.queue_len().await, 0, "{case} queued a run: {error}");
        assert_eq!(stored_runs(&redis).await, 0, "{case} stored a run: {error}");
    }

    // A JSON content type with parameters is accepted.
    let response = post_raw(
        &service,
        Some("application/json; charset=utf-8"),
        valid.clone(),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(redis.queue_len().await, 1);
}

#[tokio::test]
async fn unknown_routes_get_json_errors() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "routes").await;
    let id = service
        .submit_id(json!({"language": "python", "code": "print(1)"}))
        .await;
    let http = service.http();

    let response = http.get(service.url("/nope")).send().await.unwrap();
    assert_error("GET /nope", response, 404, "not_found", None).await;

    let response = http
        .get(service.url("/runs/01jf3m6x2q8v9w0a1b2c3d4e5f"))
        .send()
        .await
        .unwrap();
    assert_error("GET of an unknown run", response, 404, "not_found", None).await;
    let response = http
        .get(service.url("/runs/not-a-run-id"))
        .send()
        .await
        .unwrap();
    assert_error(
        "GET of a malformed run id",
        response,
        404,
        "not_found",
        None,
    )
    .await;
    let response = http
        .get(service.url("/runs/01jf3m6x2q8v9w0a1b2c3d4e5f/logs"))
        .send()
        .await
        .unwrap();
    assert_error(
        "GET logs of an unknown run",
        response,
        404,
        "not_found",
        None,
    )
    .await;
    let response = http
        .delete(service.url("/runs/01jf3m6x2q8v9w0a1b2c3d4e5f"))
        .send()
        .await
        .unwrap();
    assert_error("DELETE of an unknown run", response, 404, "not_found", None).await;

    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::POST,
    ] {
        let response = http
            .request(method.clone(), service.url(&format!("/runs/{id}")))
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_error(
            &format!("{method} /runs/{{id}}"),
            response,
            405,
            "method_not_allowed",
            None,
        )
        .await;
        let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(allowed.contains(&"GET"), "{method}: Allow is {allow:?}");
        assert!(allowed.contains(&"DELETE"), "{method}: Allow is {allow:?}");
    }
    let response = http
        .get(service.url("/runs/01jf3m6x2q8v9w0a1b2c3d4e5f/events"))
        .send()
        .await
        .unwrap();
    assert_error("events of an unknown run", response, 404, "not_found", None).await;
    let response = http
        .get(service.url(&format!("/runs/{id}/logs?follow=sometimes")))
        .send()
        .await
        .unwrap();
    assert_error(
        "an invalid follow value",
        response,
        400,
        "invalid_request",
        Some("follow"),
    )
    .await;

    let response = http.delete(service.url("/runs")).send().await.unwrap();
    assert!(response.headers().contains_key(reqwest::header::ALLOW));
    assert_error("DELETE /runs", response, 405, "method_not_allowed", None).await;
}

#[tokio::test]
async fn bad_list_parameters_are_rejected() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "list-parameters").await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("status=bogus", "status"),
        ("cursor=not-a-cursor", "cursor"),
        ("color=red", "color"),
    ];

    for (query, field) in cases {
        let response = service
            .http()
            .get(service.url(&format!("/runs?{query}")))
            .send()
            .await
            .unwrap();
        assert_error(query, response, 400, "invalid_request", Some(field)).await;
    }
    let response = service
        .http()
        .get(service.url("/runs?limit=500&status=queued"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn idempotency_key_returns_first_run() {
    let redis = RedisServer::start().await;
    let service = api_only(&redis, "idempotency").await;
    let body = json!({"language": "python", "code": "print('once')"});
    let post = |key: &'static str| {
        service
            .http()
            .post(service.url("/runs"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };

    let first = post("retry-key-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = post("retry-key-1").await.unwrap();
    assert!(second.status().is_success(), "{}", second.status());
    let location = second
        .headers()
        .get(reqwest::header::LOCATION)
        .cloned()
        .expect("the repeated answer names the run");
    let second: Value = second.json().await.unwrap();

    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        location,
        format!("/runs/{}", first["id"].as_str().unwrap()).as_str()
    );
    assert_eq!(redis.queue_len().await, 1);
    assert_eq!(stored_runs(&redis).await, 1);

    // Concurrent retries with one key still create a single run.
    let retries = (0..10).map(|_| post("retry-key-3"));
    let mut retried_ids = Vec::new();
    for response in futures::future::join_all(retries).await {
        let run: Value = response.unwrap().json().await.unwrap();
        retried_ids.push(run["id"].as_str().unwrap().to_string());
    }
    retried_ids.dedup();
    assert_eq!(retried_ids.len(), 1, "{retried_ids:?}");
    assert_eq!(redis.queue_len().await, 2);

    let other: Value = post("retry-key-2").await.unwrap().json().await.unwrap();
    assert_ne!(other["id"], first["id"]);
    assert_eq!(redis.queue_len().await, 3);

    let response = service
        .http()
        .post(service.url("/runs"))
        .header("Idempotency-Key", "x".repeat(300))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(
        "an Idempotency-Key of 300 characters",
        response,
        400,
        "invalid_request",
        Some("Idempotency-Key"),
    )
    .await;
    assert_eq!(redis.queue_len().await, 3);
}

#[tokio::test]
async fn full_queue_rejects_with_retry_after() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "queue-full")
        .env("WORKER_CONCURRENCY", 1)
        .env("QUEUE_MAX_DEPTH", 2)
        .start(&redis)
        .await;

    // The only consumer is busy with this run, so the next two stay queued.
    let blocker = service
        .submit_id(json!({"language": "python", "code": "import time\ntime.sleep(600)", "timeout_seconds": 120}))
        .await;
    service.wait_status(&blocker, "running").await;
    for _ in 0..2 {
        service
            .submit(json!({"language": "python", "code": "print(1)"}))
            .await;
    }
    assert_eq!(redis.queue_len().await, 2);

    let response = post_json(&service, &json!({"language": "python", "code": "print(1)"})).await;
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    assert_error("the third POST", response, 429, "queue_full", None).await;
    assert!(
        retry_after.is_some_and(|seconds| seconds >= 1),
        "{retry_after:?}"
    );
    assert_eq!(redis.queue_len().await, 2);
    assert_eq!(stored_runs(&redis).await, 3);
}

#[tokio::test]
async fn api_tokens_guard_non_probe_routes() {
    let redis = RedisServer::start().await;
    let token = "test-token-0123456789abcdef";
    let service = service(Mode::Dev, "auth")
        .env("API_TOKENS", format!("other-token-0123456789,{token}"))
        .start(&redis)
        .await;
    let http = service.http();
    let body = json!({"language": "python", "code": "print('authorized')"});

    for authorization in [None, Some("Bearer wrong-token-0123456789"), Some(token)] {
        let mut requests = vec![
            http.get(service.url("/runs")),
            http.post(service.url("/runs")).json(&body),
            http.get(service.url("/system/status")),
            http.get(service.url("/runs/01jf3m6x2q8v9w0a1b2c3d4e5f")),
        ];
        for request in requests.drain(..) {
            let request = match authorization {
                Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
                None => request,
            };
            let response = request.send().await.unwrap();
            assert_error(
                &format!("{authorization:?}"),
                response,
                401,
                "unauthorized",
                None,
            )
            .await;
        }
    }
    assert_eq!(stored_runs(&redis).await, 0);

    let bearer = format!("Bearer {token}");
    let response = http
        .get(service.url("/runs"))
        .header(reqwest::header::AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .post(service.url("/runs"))
        .header(reqwest::header::AUTHORIZATION, &bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let response = http
        .get(service.url(&format!("/runs/{id}")))
        .header(reqwest::header::AUTHORIZATION, &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    for path in ["/health", "/ready", "/metrics"] {
        let response = http.get(service.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} without a token");
    }
}

#[tokio::test]
async fn run_list_pages_and_filters() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "pagination").start(&redis).await;

    // Seven runs: indexes 1, 4 and 6 fail, the others succeed.
    let mut ids = Vec::new();
    for index in 0..7 {
        let code = if [1, 4, 6].contains(&index) {
            "import sys\nsys.exit(1)"
        } else {
            "print('ok')"
        };
        let id = service
            .submit_id(json!({"language": "python", "code": code}))
            .await;
        ids.push(id);
    }
    for id in &ids {
        service.wait_finished(id).await;
    }
    // Run ids are ULIDs, so newest first is descending id order.
    let mut newest_first = ids.clone();
    newest_first.sort();
    newest_first.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut page_sizes = Vec::new();
    loop {
        let query = match &cursor {
            Some(cursor) => format!("/runs?limit=3&cursor={cursor}"),
            None => "/runs?limit=3".to_string(),
        };
        let page: Value = service
            .http()
            .get(service.url(&query))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runs = page["runs"].as_array().unwrap();
        page_sizes.push(runs.len());
        seen.extend(
            runs.iter()
                .map(|run| run["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), runs.last().and_then(|run| run["id"].as_str()));
                cursor = Some(next.to_string());
            }
            None => break,
        }
        assert!(
            page_sizes.len() < 10,
            "pagination does not end: {page_sizes:?}"
        );
    }
    assert_eq!(page_sizes, [3, 3, 1]);
    assert_eq!(seen, newest_first);

    let failed: Value = service
        .http()
        .get(service.url("/runs?status=failed"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed_ids: Vec<&str> = failed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = newest_first
        .iter()
        .filter(|id| [1, 4, 6].iter().any(|&index| ids[index] == **id))
        .map(String::as_str)
        .collect();
    assert_eq!(failed_ids, expected);
    assert_eq!(failed["next_cursor"], Value::Null);

    let first_failed: Value = service
        .http()
        .get(service.url("/runs?status=failed&limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first_failed["runs"].as_array().unwrap().len(), 2);
    let next = first_failed["next_cursor"].as_str().unwrap();
    let rest: Value = service
        .http()
        .get(service.url(&format!("/runs?status=failed&limit=2&cursor={next}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1);
    assert_eq!(rest["runs"][0]["id"], expected[2]);
}

#[tokio::test]
async fn delete_removes_finished_run() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "delete-finished").start(&redis).await;
    let (run, _) = service
        .run_to_end(json!({"language": "python", "code": "print('bye')"}))
        .await;
    let id = run["id"].as_str().unwrap();

    let response = service
        .http()
        .delete(service.url(&format!("/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    let response = service
        .http()
        .get(service.url(&format!("/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_error("GET of a deleted run", response, 404, "not_found", None).await;
    let response = service
        .http()
        .get(service.url(&format!("/runs/{id}/logs")))
        .send()
        .await
        .unwrap();
    assert_error(
        "GET logs of a deleted run",
        response,
        404,
        "not_found",
        None,
    )
    .await;
    let mut connection = redis.connection().await;
    let logs_exist: bool = connection.exists(format!("run:{id}:logs")).await.unwrap();
    assert!(!logs_exist);
    let list: Value = service
        .http()
        .get(service.url("/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["runs"], json!([]));
}

/// Starts a worker process for `api`'s runs.
async fn start_worker(redis: &RedisServer, name: &str) -> Service {
    service(Mode::Worker, name)
        .env("WORKER_ID", "streaming-worker")
        .start(redis)
        .await
}

const TWO_PART_PROGRAM: &str =
    "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')\n";

#[tokio::test]
async fn followed_logs_stream_until_end() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "follow").start(&redis).await;
    // Queued with no worker yet, so the follow starts before the program does.
    let id = api
        .submit_id(json!({"language": "python", "code": TWO_PART_PROGRAM}))
        .await;
    let response = api
        .streaming_http()
        .get(api.url(&format!("/runs/{id}/logs?follow=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _worker = start_worker(&redis, "follow").await;

    let mut chunks: Vec<(DateTime<Utc>, Vec<u8>)> = Vec::new();
    let mut body = response.bytes_stream();
    let read = async {
        while let Some(chunk) = body.next().await {
            chunks.push((
                Utc::now(),
                chunk.expect("the log stream can be read").to_vec(),
            ));
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the log stream ends when the run ends");

    let run = api.run(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let text: Vec<u8> = chunks.iter().flat_map(|(_, chunk)| chunk.clone()).collect();
    assert_eq!(String::from_utf8(text).unwrap(), "first\nsecond\n");
    // The first line arrived on its own and before the run ended.
    let (first_at, first) = &chunks[0];
    assert_eq!(first.as_slice(), b"first\n");
    let finished_at = DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        *first_at < finished_at,
        "the first line arrived at {first_at}, after the run finished at {finished_at}"
    );
}

#[tokio::test]
async fn event_stream_ends_at_terminal_status() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "events").start(&redis).await;
    let id = api
        .submit_id(json!({"language": "python", "code": TWO_PART_PROGRAM}))
        .await;
    let response = api
        .streaming_http()
        .get(api.url(&format!("/runs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert!(content_type
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let _worker = start_worker(&redis, "events").await;

    let events = read_sse(response).await;

    let statuses: Vec<String> = events
        .iter()
        .map(|event| {
            assert_eq!(event.event, "status");
            let run: Value = serde_json::from_str(&event.data).expect("event data is a run");
            assert_eq!(run["id"], id.as_str());
            run["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("queued"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    let order = ["queued", "dispatched", "pending", "running", "succeeded"];
    let ranks: Vec<usize> = statuses
        .iter()
        .map(|status| order.iter().position(|known| known == status).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|pair| pair[0] < pair[1]),
        "statuses go backwards or repeat: {statuses:?}"
    );

    // A finished run's stream sends its final state and ends at once.
    let response = api
        .streaming_http()
        .get(api.url(&format!("/runs/{id}/events")))
        .send()
        .await
        .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), read_sse(response))
        .await
        .expect("the stream of a finished run ends at once");
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn status_and_metrics_report_runs() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "status").start(&redis).await;
    let (run, _) = service
        .run_to_end(json!({"language": "python", "code": "print(1)"}))
        .await;
    assert_eq!(run["status"], "succeeded");
    let (run, _) = service
        .run_to_end(json!({"language": "javascript", "code": "process.exit(2)"}))
        .await;
    assert_eq!(run["status"], "failed");

    let status: Value = service
        .http()
        .get(service.url("/system/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["redis"]["ok"], true, "{status}");
    assert_eq!(status["kubernetes"]["ok"], false, "{status}");
    assert!(
        status["kubernetes"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{status}"
    );
    assert_eq!(status["queue"]["depth"], 0, "{status}");
    assert!(status["queue"]["queued_run_ids"].is_array(), "{status}");
    assert!(status["history"].is_array(), "{status}");

    let response = service
        .http()
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = response.text().await.unwrap();
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        metrics
            .lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    };
    let submitted = "code_runner_runs_submitted_total";
    let finished = "code_runner_runs_finished_total";
    assert_eq!(
        value(submitted, &[r#"language="python""#]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(submitted, &[r#"language="javascript""#]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(finished, &[r#"language="python""#, r#"status="succeeded""#]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(
            finished,
            &[r#"language="javascript""#, r#"status="failed""#]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(metrics.contains("code_runner_queue_depth"), "{metrics}");
    assert!(
        metrics.contains("code_runner_http_requests_total"),
        "{metrics}"
    );
    // No metric carries a run id.
    assert!(!metrics.contains(run["id"].as_str().unwrap()));
}

#[tokio::test]
async fn rate_limit_rejects_fast_clients() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Api, "rate-limit")
        .env("RATE_LIMIT_PER_SECOND", 1)
        .env("RATE_LIMIT_BURST", 2)
        .start(&redis)
        .await;
    let body = json!({"language": "python", "code": "print(1)"});

    // A burst of 2 at 1 request per second: one of the first few requests
    // is over the limit, however slow the machine is.
    let mut created = 0;
    let mut rejected = None;
    for _ in 0..20 {
        let response = post_json(&service, &body).await;
        if response.status() == 201 {
            created += 1;
            continue;
        }
        rejected = Some(response);
        break;
    }
    let response = rejected.expect("a fast client is rate limited");
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    assert_error("a POST over the rate", response, 429, "rate_limited", None).await;
    assert!(
        retry_after.is_some_and(|seconds| seconds >= 1),
        "{retry_after:?}"
    );
    assert_eq!(redis.queue_len().await, created);

    for path in ["/health", "/ready", "/metrics"] {
        for _ in 0..10 {
            let response = service.http().get(service.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path} is rate limited");
        }
    }
}
