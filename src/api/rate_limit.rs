//! Per-client request rate limits: a token bucket (GCRA) per API token, or
//! per client IP address when tokens are off.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::debug;

use super::error::ApiError;
use crate::metrics;

/// Requests between two sweeps of idle buckets out of the limiter's map.
const SWEEP_EVERY: u64 = 4096;

/// Routes that are never limited: probes, scrapes and the API document.
pub fn is_exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics" | "/openapi.json")
}

/// The client that a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The position of the accepted token in `API_TOKENS`, so that the
    /// limiter's map contains no secret.
    Token(usize),
    Address(IpAddr),
    /// A request without a peer address, which happens only when the router
    /// is served without connect info. All such requests share one bucket.
    Unknown,
}

/// Token buckets keyed by [`ClientKey`].
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    clock: DefaultClock,
    requests: AtomicU64,
}

impl RateLimits {
    /// Builds the limiter; `None` when `per_second` is 0 (rate limiting off).
    pub fn new(per_second: u32, burst: u32) -> Option<Arc<Self>> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Some(Arc::new(Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            requests: AtomicU64::new(0),
        }))
    }

    /// Takes one request from `key`'s bucket, or returns the whole seconds
    /// to wait until the next request would be allowed (at least 1).
    pub fn check(&self, key: &ClientKey) -> Result<(), u64> {
        if self.requests.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }
}

/// Rejects a request over its client's rate with 429 and `Retry-After`.
///
/// It runs after [`super::middleware::authenticate`], which stores the
/// accepted token's [`ClientKey`] in the request's extensions.
pub async fn limit(limits: Arc<RateLimits>, request: Request, next: Next) -> Response {
    if is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let key = request
        .extensions()
        .get::<ClientKey>()
        .cloned()
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| ClientKey::Address(peer.ip()))
        })
        .unwrap_or(ClientKey::Unknown);

    match limits.check(&key) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(|path| path.as_str().to_string())
                .unwrap_or_else(|| "unmatched".to_string());
            debug!(?key, %route, retry_after, "request over the rate limit");
            metrics::record_rate_limited(&route);
            ApiError::RateLimited { retry_after }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_allowed_then_limited() {
        let limits = RateLimits::new(1, 3).unwrap();
        let key = ClientKey::Token(0);
        for _ in 0..3 {
            assert_eq!(limits.check(&key), Ok(()));
        }
        assert_eq!(limits.check(&key), Err(1));
    }

    #[test]
    fn clients_have_separate_buckets() {
        let limits = RateLimits::new(1, 1).unwrap();
        assert_eq!(limits.check(&ClientKey::Token(0)), Ok(()));
        assert!(limits.check(&ClientKey::Token(0)).is_err());
        assert_eq!(limits.check(&ClientKey::Token(1)), Ok(()));
        assert_eq!(
            limits.check(&ClientKey::Address("127.0.0.1".parse().unwrap())),
            Ok(())
        );
    }

    #[test]
    fn zero_rate_turns_limits_off() {
        assert!(RateLimits::new(0, 100).is_none());
    }

    #[test]
    fn probes_and_document_are_exempt() {
        for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
            assert!(is_exempt(path), "{path}");
        }
        assert!(!is_exempt("/runs"));
    }
}
