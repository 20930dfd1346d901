//! The proxy's fault plan: error bursts, added latency, watch drops and
//! rejections, and arrival recordings, all changed at runtime by the admin API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Which requests a rule applies to. An absent field matches everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFilter {
    /// HTTP method, compared without regard to case.
    #[serde(default)]
    pub method: Option<String>,
    /// Substring of the path and query, such as `/jobs` or `watch=true`.
    #[serde(default)]
    pub path_contains: Option<String>,
}

/// Returns whether a request matches an optional method and an optional
/// path substring.
fn matches(
    filter_method: &Option<String>,
    filter_path: &Option<String>,
    method: &str,
    path_and_query: &str,
) -> bool {
    let method_matches = filter_method
        .as_deref()
        .is_none_or(|expected| expected.eq_ignore_ascii_case(method));
    let path_matches = filter_path
        .as_deref()
        .is_none_or(|expected| path_and_query.contains(expected));
    method_matches && path_matches
}

impl RequestFilter {
    pub fn matches(&self, method: &str, path_and_query: &str) -> bool {
        matches(&self.method, &self.path_contains, method, path_and_query)
    }
}

impl ErrorBurst {
    fn matches(&self, method: &str, path_and_query: &str) -> bool {
        matches(&self.method, &self.path_contains, method, path_and_query)
    }
}

impl Latency {
    fn matches(&self, method: &str, path_and_query: &str) -> bool {
        matches(&self.method, &self.path_contains, method, path_and_query)
    }
}

impl Recording {
    fn matches(&self, method: &str, path_and_query: &str) -> bool {
        matches(&self.method, &self.path_contains, method, path_and_query)
    }
}

/// A burst of error responses: the next `count` matching requests get
/// `status` instead of reaching the API server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBurst {
    pub status: u16,
    pub count: u64,
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
}

/// Added delay before matching requests are forwarded; `count` absent
/// means until cleared.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub millis: u64,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
}

/// Arrival times of matching requests, in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Serialize)]
pub struct Recording {
    pub name: String,
    pub method: Option<String>,
    pub path_contains: Option<String>,
    pub arrivals_unix_nanos: Vec<u64>,
}

/// What the proxy does to one request before forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Fail {
        status: u16,
        retry_after_seconds: Option<u64>,
    },
    RejectWatch,
}

#[derive(Debug, Default)]
struct Plan {
    bursts: Vec<ErrorBurst>,
    latencies: Vec<Latency>,
    recordings: HashMap<String, Recording>,
    reject_watches_until: Option<Instant>,
}

/// Counters reported by the admin API.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub injected_errors: u64,
    pub rejected_watches: u64,
    pub dropped_watches: u64,
}

/// Shared fault state of one proxy.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<Plan>,
    watch_generation: Mutex<CancellationToken>,
    open_watches: AtomicUsize,
    requests: AtomicU64,
    injected_errors: AtomicU64,
    rejected_watches: AtomicU64,
    dropped_watches: AtomicU64,
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}

impl Faults {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the request's arrival and decides its fate. Returns the
    /// verdict and the delay to apply before it.
    pub fn admit(&self, method: &str, path_and_query: &str, is_watch: bool) -> (Verdict, Duration) {
        let arrived = unix_nanos();
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut plan = self.plan();

        for recording in plan.recordings.values_mut() {
            if recording.matches(method, path_and_query) {
                recording.arrivals_unix_nanos.push(arrived);
            }
        }

        let mut delay = Duration::ZERO;
        for latency in plan.latencies.iter_mut() {
            if latency.count != Some(0) && latency.matches(method, path_and_query) {
                delay += Duration::from_millis(latency.millis);
                if let Some(count) = latency.count.as_mut() {
                    *count -= 1;
                }
            }
        }
        plan.latencies.retain(|latency| latency.count != Some(0));

        if is_watch
            && plan
                .reject_watches_until
                .is_some_and(|until| Instant::now() < until)
        {
            self.rejected_watches.fetch_add(1, Ordering::Relaxed);
            return (Verdict::RejectWatch, delay);
        }

        if let Some(burst) = plan
            .bursts
            .iter_mut()
            .find(|burst| burst.count > 0 && burst.matches(method, path_and_query))
        {
            burst.count -= 1;
            let verdict = Verdict::Fail {
                status: burst.status,
                retry_after_seconds: burst.retry_after_seconds,
            };
            plan.bursts.retain(|burst| burst.count > 0);
            self.injected_errors.fetch_add(1, Ordering::Relaxed);
            return (verdict, delay);
        }
        (Verdict::Forward, delay)
    }

    pub fn add_burst(&self, burst: ErrorBurst) {
        self.plan().bursts.push(burst);
    }

    pub fn clear_bursts(&self) {
        self.plan().bursts.clear();
    }

    pub fn add_latency(&self, latency: Latency) {
        self.plan().latencies.push(latency);
    }

    pub fn clear_latencies(&self) {
        self.plan().latencies.clear();
    }

    /// Starts (or restarts, emptied) the recording `name`.
    pub fn start_recording(&self, name: String, filter: RequestFilter) {
        let recording = Recording {
            name: name.clone(),
            method: filter.method,
            path_contains: filter.path_contains,
            arrivals_unix_nanos: Vec::new(),
        };
        self.plan().recordings.insert(name, recording);
    }

    pub fn recording(&self, name: &str) -> Option<Recording> {
        self.plan().recordings.get(name).cloned()
    }

    pub fn remove_recording(&self, name: &str) -> bool {
        self.plan().recordings.remove(name).is_some()
    }

    /// Ends every open watch now and rejects new ones for `reject_for`.
    /// Returns how many watches were open.
    pub fn drop_watches(&self, reject_for: Duration) -> usize {
        if !reject_for.is_zero() {
            self.plan().reject_watches_until = Some(Instant::now() + reject_for);
        }
        let previous = {
            let mut generation = self
                .watch_generation
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut *generation, CancellationToken::new())
        };
        previous.cancel();
        let open = self.open_watches.load(Ordering::Relaxed);
        self.dropped_watches
            .fetch_add(open as u64, Ordering::Relaxed);
        open
    }

    /// Registers a new open watch; it ends when the token is cancelled.
    pub fn open_watch(self: &Arc<Self>) -> (CancellationToken, OpenWatch) {
        let token = self
            .watch_generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        self.open_watches.fetch_add(1, Ordering::Relaxed);
        (
            token,
            OpenWatch {
                faults: Arc::clone(self),
            },
        )
    }

    pub fn open_watch_count(&self) -> usize {
        self.open_watches.load(Ordering::Relaxed)
    }

    pub fn rejecting_watches_for(&self) -> Duration {
        self.plan()
            .reject_watches_until
            .map(|until| until.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Clears bursts, latencies, recordings and the watch rejection.
    pub fn reset(&self) {
        *self.plan() = Plan::default();
    }

    pub fn bursts(&self) -> Vec<ErrorBurst> {
        self.plan().bursts.clone()
    }

    pub fn latencies(&self) -> Vec<Latency> {
        self.plan().latencies.clone()
    }

    pub fn recording_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plan().recordings.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn counters(&self) -> Counters {
        Counters {
            requests: self.requests.load(Ordering::Relaxed),
            injected_errors: self.injected_errors.load(Ordering::Relaxed),
            rejected_watches: self.rejected_watches.load(Ordering::Relaxed),
            dropped_watches: self.dropped_watches.load(Ordering::Relaxed),
        }
    }
}

/// Decrements the open-watch count when the watch response ends.
#[derive(Debug)]
pub struct OpenWatch {
    faults: Arc<Faults>,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.faults.open_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post_jobs() -> RequestFilter {
        RequestFilter {
            method: Some("post".into()),
            path_contains: Some("/jobs".into()),
        }
    }

    #[test]
    fn burst_applies_to_matching_requests_only() {
        let faults = Faults::default();
        faults.add_burst(ErrorBurst {
            status: 500,
            count: 2,
            retry_after_seconds: None,
            method: Some("post".into()),
            path_contains: Some("/jobs".into()),
        });
        let jobs = "/apis/batch/v1/namespaces/runs/jobs";

        assert_eq!(faults.admit("GET", jobs, false).0, Verdict::Forward);
        let failed = Verdict::Fail {
            status: 500,
            retry_after_seconds: None,
        };
        assert_eq!(faults.admit("POST", jobs, false).0, failed);
        assert_eq!(faults.admit("POST", jobs, false).0, failed);
        assert_eq!(faults.admit("POST", jobs, false).0, Verdict::Forward);
        assert!(faults.bursts().is_empty());
    }

    #[test]
    fn latency_counts_down() {
        let faults = Faults::default();
        faults.add_latency(Latency {
            millis: 50,
            count: Some(1),
            method: None,
            path_contains: None,
        });
        assert_eq!(
            faults.admit("GET", "/api", false).1,
            Duration::from_millis(50)
        );
        assert_eq!(faults.admit("GET", "/api", false).1, Duration::ZERO);
    }

    #[test]
    fn recording_keeps_matching_arrivals() {
        let faults = Faults::default();
        faults.start_recording("posts".into(), post_jobs());
        faults.admit("POST", "/apis/batch/v1/namespaces/runs/jobs", false);
        faults.admit("GET", "/apis/batch/v1/namespaces/runs/jobs", false);
        let recording = faults.recording("posts").unwrap();
        assert_eq!(recording.arrivals_unix_nanos.len(), 1);
        assert!(recording.arrivals_unix_nanos[0] > 1_600_000_000_000_000_000);
    }

    #[test]
    fn drop_watches_cancels_and_rejects() {
        let faults = Arc::new(Faults::default());
        let (token, guard) = faults.open_watch();
        assert_eq!(faults.drop_watches(Duration::from_secs(60)), 1);
        assert!(token.is_cancelled());
        assert_eq!(
            faults.admit("GET", "/api/v1/pods?watch=true", true).0,
            Verdict::RejectWatch
        );
        assert_eq!(
            faults.admit("GET", "/api/v1/pods", false).0,
            Verdict::Forward
        );
        drop(guard);
        assert_eq!(faults.open_watch_count(), 0);
    }
}
