//! Client of the fault proxy's admin API (docs/local-cluster.md, "Injecting
//! faults"), with a lock so that only one test at a time injects faults.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

use super::Cluster;

/// Held by the test that uses the fault proxy. Bursts and dropped watches
/// hit every client of the proxy, so two such tests at once would break each
/// other's expectations.
static PROXY_LOCK: Mutex<()> = Mutex::const_new(());

/// The fault proxy, reserved for one test until it is dropped.
pub struct FaultProxy {
    url: String,
    http: reqwest::Client,
    _reserved: MutexGuard<'static, ()>,
}

impl FaultProxy {
    /// Waits for the other fault tests to finish, then clears every fault.
    pub async fn reserve(cluster: &Cluster) -> Self {
        let reserved = PROXY_LOCK.lock().await;
        let proxy = Self {
            url: cluster.fault_proxy_admin_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a reqwest client builds"),
            _reserved: reserved,
        };
        proxy.reset().await;
        proxy
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST {url} to the fault proxy failed: {error}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST {url} with {body} returned {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Clears bursts, latencies, recordings and the watch rejection.
    pub async fn reset(&self) {
        self.post("/reset", json!({})).await;
    }

    /// Makes the next `count` requests with `method` whose path contains
    /// `path_contains` fail with `status`.
    pub async fn fail_next(&self, status: u16, count: u32, method: &str, path_contains: &str) {
        self.post(
            "/faults",
            json!({"status": status, "count": count, "method": method, "path_contains": path_contains}),
        )
        .await;
    }

    /// Delays every later request with `method` whose path contains
    /// `path_contains` by `millis` before forwarding it, until a reset.
    pub async fn delay(&self, millis: u64, method: &str, path_contains: &str) {
        self.post(
            "/latency",
            json!({"millis": millis, "method": method, "path_contains": path_contains}),
        )
        .await;
    }

    /// Closes every open watch, and new ones for `reject_seconds`. Returns
    /// how many watches were closed.
    pub async fn drop_watches(&self, reject_seconds: u64) -> u64 {
        let reply = self
            .post("/watches/drop", json!({"reject_seconds": reject_seconds}))
            .await;
        reply["dropped"]
            .as_u64()
            .unwrap_or_else(|| panic!("POST /watches/drop returned no count: {reply}"))
    }

    /// Returns the proxy's `GET /state`: bursts, latencies and counters.
    pub async fn state(&self) -> Value {
        let url = format!("{}/state", self.url);
        self.http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url} failed: {error}"))
            .json()
            .await
            .unwrap_or_else(|error| panic!("GET {url} returned no JSON: {error}"))
    }
}
