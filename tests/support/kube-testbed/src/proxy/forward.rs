//! Forwarding of API requests to the upstream API server, with the fault
//! plan applied on the way: delays, injected errors, rejected and dropped
//! watches.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::faults::{Faults, OpenWatch, Verdict};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Reasons to close a connection without a response.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("watch rejected by fault-proxy: connection closed without a response")]
    WatchRejected,
}

/// Hop-by-hop headers, which a proxy must not pass on (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The proxy's request handler, cloned per connection.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    upstream: Uri,
    faults: Arc<Faults>,
}

impl Forwarder {
    pub fn new(upstream: Uri, tls: rustls::ClientConfig, faults: Arc<Faults>) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Self {
            client,
            upstream,
            faults,
        }
    }

    pub async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let method = request.method().as_str().to_string();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|value| value.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let watch = is_watch(&path_and_query);

        let (verdict, delay) = self.faults.admit(&method, &path_and_query, watch);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match verdict {
            Verdict::Forward => {}
            Verdict::RejectWatch => {
                tracing::info!(%method, path = %path_and_query, "watch rejected");
                return Err(ForwardError::WatchRejected);
            }
            Verdict::Fail {
                status,
                retry_after_seconds,
            } => {
                tracing::info!(%method, path = %path_and_query, status, "error injected");
                return Ok(injected_error(status, retry_after_seconds));
            }
        }

        let upstream_request = match self.upstream_request(request, &path_and_query) {
            Ok(upstream_request) => upstream_request,
            Err(error) => {
                tracing::error!(%error, path = %path_and_query, "failed to build upstream request");
                return Ok(gateway_error(StatusCode::BAD_GATEWAY, &error.to_string()));
            }
        };
        let response = match self.client.request(upstream_request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, %method, path = %path_and_query, "upstream request failed");
                return Ok(gateway_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream request failed: {error}"),
                ));
            }
        };

        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = if watch {
            let (token, guard) = self.faults.open_watch();
            DroppableBody {
                inner: body,
                dropped: Box::pin(token.cancelled_owned()),
                _open: guard,
            }
            .boxed()
        } else {
            body.map_err(BoxError::from).boxed()
        };
        Ok(Response::from_parts(parts, body))
    }

    fn upstream_request(
        &self,
        request: Request<Incoming>,
        path_and_query: &str,
    ) -> Result<Request<Incoming>, hyper::http::Error> {
        let (mut parts, body) = request.into_parts();
        let mut uri = Uri::builder().path_and_query(path_and_query);
        if let Some(scheme) = self.upstream.scheme() {
            uri = uri.scheme(scheme.clone());
        }
        if let Some(authority) = self.upstream.authority() {
            uri = uri.authority(authority.clone());
            parts.headers.insert(
                HOST,
                HeaderValue::from_str(authority.as_str())
                    .unwrap_or(HeaderValue::from_static("localhost")),
            );
        }
        parts.uri = uri.build()?;
        strip_hop_by_hop(&mut parts.headers);
        Ok(Request::from_parts(parts, body))
    }
}

/// Returns whether a request is a watch: its query has `watch=true` (or
/// `1`), or it uses the deprecated `/watch/` path prefix.
fn is_watch(path_and_query: &str) -> bool {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    path.contains("/watch/")
        || query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(name));
    }
}

fn status_body(status: StatusCode, message: &str) -> String {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": status.canonical_reason().unwrap_or("").replace(' ', ""),
        "code": status.as_u16(),
    })
    .to_string()
}

fn full_body(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// Builds a response in the shape of an API server `Status` error.
fn injected_error(status: u16, retry_after_seconds: Option<u64>) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    let retry_after =
        retry_after_seconds.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
    if let Some(seconds) = retry_after {
        builder = builder.header("retry-after", seconds.to_string());
    }
    let message = format!("fault injected by fault-proxy: {status}");
    builder
        .body(full_body(status_body(status, &message)))
        .unwrap_or_else(|_| Response::new(full_body(String::new())))
}

fn gateway_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full_body(status_body(status, message)))
        .unwrap_or_else(|_| Response::new(full_body(String::new())))
}

/// A watch response body that fails, ending the connection abruptly, once
/// the admin API drops watches.
struct DroppableBody {
    inner: Incoming,
    dropped: Pin<Box<WaitForCancellationFutureOwned>>,
    _open: OpenWatch,
}

impl Body for DroppableBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.dropped.as_mut().poll(context).is_ready() {
            return Poll::Ready(Some(Err("watch dropped by fault-proxy".into())));
        }
        Pin::new(&mut self.inner)
            .poll_frame(context)
            .map_err(BoxError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_watch_query_and_path() {
        assert!(is_watch("/api/v1/pods?watch=true&resourceVersion=5"));
        assert!(is_watch("/api/v1/watch/pods"));
        assert!(is_watch(
            "/apis/batch/v1/namespaces/a/jobs?labelSelector=x&watch=1"
        ));
        assert!(!is_watch("/api/v1/pods?resourceVersion=5"));
        assert!(!is_watch("/api/v1/namespaces/watch-me/pods"));
    }

    #[test]
    fn injected_429_has_retry_after() {
        let response = injected_error(429, None);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
