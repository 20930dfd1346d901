//! Black-box tests of the per-client rate limit against the real binary.

mod common;

use common::{assert_error, service, Mode, RedisServer};

#[tokio::test]
async fn burst_over_rate_gets_429_with_retry_after() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "rate-limit")
        .env("RATE_LIMIT_PER_SECOND", 1)
        .env("RATE_LIMIT_BURST", 5)
        .start(&redis)
        .await;

    // The burst allows 5 requests at once; at 1 per second, the sixth
    // within this loop is over the limit.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let response = service
            .http()
            .get(service.url("/runs?limit=1"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert!(statuses.len() >= 6, "{statuses:?}");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_error("over the limit", response, 429, "rate_limited", None).await;

    // Probes, metrics and the API document are never limited.
    for path in ["/health", "/ready", "/openapi.json", "/metrics"] {
        let response = service.http().get(service.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    let metrics = service
        .http()
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("code_runner_rate_limited_total{route=\"/runs\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn tokens_have_separate_buckets() {
    let redis = RedisServer::start().await;
    let first = "first-token-0123456789";
    let second = "second-token-0123456789";
    let service = service(Mode::Dev, "rate-limit-tokens")
        .env("API_TOKENS", format!("{first},{second}"))
        .env("RATE_LIMIT_PER_SECOND", 1)
        .env("RATE_LIMIT_BURST", 2)
        .start(&redis)
        .await;
    let get = |token: &str| {
        service
            .http()
            .get(service.url("/runs"))
            .bearer_auth(token)
            .send()
    };

    let mut first_statuses = Vec::new();
    for _ in 0..4 {
        first_statuses.push(get(first).await.unwrap().status().as_u16());
    }
    assert!(first_statuses.contains(&429), "{first_statuses:?}");

    // The other token's bucket is still full.
    assert_eq!(get(second).await.unwrap().status(), 200);
}
