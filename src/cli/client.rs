//! An HTTP client of the code-runner API, with error messages that name the next step.

use std::time::Duration;

use code_runner::api::{ErrorBody, RunList};
use code_runner::run::{Run, RunStatus};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;

/// Time allowed for one request that does not stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Maximum attempts of a request that gets 429 or 503.
const ATTEMPTS: u32 = 4;
/// Maximum wait between two attempts, whatever the `Retry-After` value.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// A failed command, printed as `code-runner: {error}`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach the code-runner server at {url} ({detail}); start one with \
         `code-runner dev`, or point --server or CODE_RUNNER_URL at a running server"
    )]
    Unreachable { url: String, detail: String },
    #[error("the request to {url} failed: {detail}")]
    Request { url: String, detail: String },
    #[error("the server rejected the request with {status}: {}{}", body.error.message, hint(*status, body))]
    Api { status: StatusCode, body: ErrorBody },
    #[error("the server answered {status} with a body that is not the API's JSON: {text}")]
    Unexpected { status: StatusCode, text: String },
    #[error("invalid --server {url:?}: {detail}; use a URL such as http://127.0.0.1:8080")]
    InvalidServer { url: String, detail: String },
    #[error("{0}")]
    Usage(String),
}

/// Names the rejected field, and the option to set when a token is missing.
fn hint(status: StatusCode, body: &ErrorBody) -> String {
    match (&body.error.field, status) {
        (Some(field), _) => format!(" (field: {field})"),
        (None, StatusCode::UNAUTHORIZED) => "; pass --token or set CODE_RUNNER_TOKEN".into(),
        (None, _) => String::new(),
    }
}

/// The body of `POST /runs`.
#[derive(Debug, Serialize)]
pub struct NewRun {
    pub language: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

/// The outcome of `DELETE /runs/{id}`.
pub enum Deleted {
    /// The run was unfinished and is now cancelled.
    Cancelled(Box<Run>),
    /// The run had finished, so its record and output were deleted.
    Removed,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let invalid = |detail: String| CliError::InvalidServer {
            url: server.to_string(),
            detail,
        };
        let mut base = Url::parse(server).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        // A base without a trailing slash would lose its last segment in `join`.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("code-runner-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            http,
            base,
            token: token.filter(|token| !token.is_empty()),
        })
    }

    fn url(&self, path: &str) -> Url {
        self.base
            .join(path.trim_start_matches('/'))
            .expect("API paths are valid relative URLs")
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request built by `build`, retrying on 429 and 503 after the
    /// `Retry-After` delay, and returns the first other response.
    async fn send(
        &self,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        method: Method,
        streaming: bool,
    ) -> Result<Response, CliError> {
        let url = self.url(path);
        let mut attempt = 1;
        loop {
            let mut request = build(self.request(method.clone(), url.clone()));
            if !streaming {
                request = request.timeout(REQUEST_TIMEOUT);
            }
            let response = request
                .send()
                .await
                .map_err(|error| self.transport_error(&url, &error))?;
            let status = response.status();
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if !retryable || attempt >= ATTEMPTS {
                return check(response).await;
            }
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_WAIT);
            eprintln!(
                "code-runner: the server answered {status}; retrying in {} s",
                wait.as_secs()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn transport_error(&self, url: &Url, error: &reqwest::Error) -> CliError {
        let detail = root_cause(error);
        if error.is_connect() {
            CliError::Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_string(),
                detail,
            }
        } else {
            CliError::Request {
                url: url.to_string(),
                detail,
            }
        }
    }

    /// Submits a run; the idempotency key makes retries after 429 or 503 safe.
    pub async fn submit(&self, run: &NewRun) -> Result<Run, CliError> {
        let key = ulid::Ulid::new().to_string();
        let response = self
            .send(
                "runs",
                |request| request.header("Idempotency-Key", &key).json(run),
                Method::POST,
                false,
            )
            .await?;
        json(response).await
    }

    pub async fn run(&self, id: &str) -> Result<Run, CliError> {
        let response = self
            .send(&run_path(id, ""), |r| r, Method::GET, false)
            .await?;
        json(response).await
    }

    pub async fn list(&self, limit: u32, status: Option<RunStatus>) -> Result<RunList, CliError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(status) = status {
            query.push(("status", status.as_str().to_string()));
        }
        let response = self
            .send("runs", |request| request.query(&query), Method::GET, false)
            .await?;
        json(response).await
    }

    pub async fn delete(&self, id: &str) -> Result<Deleted, CliError> {
        let response = self
            .send(&run_path(id, ""), |r| r, Method::DELETE, false)
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Deleted::Removed);
        }
        Ok(Deleted::Cancelled(Box::new(json(response).await?)))
    }

    /// Opens the run's output; with `follow`, the body streams until the run ends.
    pub async fn logs(&self, id: &str, follow: bool) -> Result<Response, CliError> {
        let follow = if follow { "true" } else { "false" };
        self.send(
            &run_path(id, "/logs"),
            |request| request.query(&[("follow", follow)]),
            Method::GET,
            follow == "true",
        )
        .await
    }
}

/// Builds `runs/{id}{suffix}` with the id percent-encoded, so that any
/// argument stays one path segment.
fn run_path(id: &str, suffix: &str) -> String {
    let mut url = Url::parse("http://host/runs/").expect("a constant URL parses");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .pop_if_empty()
        .push(id);
    format!("{}{suffix}", url.path().trim_start_matches('/'))
}

/// Turns an error status into [`CliError::Api`], naming the API's message and field.
async fn check(response: Response) -> Result<Response, CliError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(CliError::Api { status, body }),
        Err(_) => Err(CliError::Unexpected { status, text }),
    }
}

async fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, CliError> {
    let status = response.status();
    let url = response.url().to_string();
    let text = response.text().await.map_err(|error| CliError::Request {
        url: url.clone(),
        detail: root_cause(&error),
    })?;
    serde_json::from_str(&text).map_err(|_| CliError::Unexpected { status, text })
}

/// Returns the innermost cause of an error, which names what actually failed
/// (such as "Connection refused").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_stay_one_path_segment() {
        assert_eq!(run_path("01abc", ""), "runs/01abc");
        assert_eq!(run_path("01abc", "/logs"), "runs/01abc/logs");
        assert_eq!(run_path("../x?y", ""), "runs/..%2Fx%3Fy");
    }

    #[test]
    fn server_paths_are_kept() {
        let client = Client::new("http://127.0.0.1:1/prefix", None).unwrap();
        assert_eq!(
            client.url("runs").as_str(),
            "http://127.0.0.1:1/prefix/runs"
        );
    }

    #[test]
    fn other_schemes_are_rejected() {
        assert!(matches!(
            Client::new("ftp://host", None),
            Err(CliError::InvalidServer { .. })
        ));
    }
}
