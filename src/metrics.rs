//! Metric names and the Prometheus recorder. Names follow Prometheus
//! conventions: `_total` counters, seconds, and no per-run labels.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::run::{RunFields, RunStatus};

pub const RUNS_SUBMITTED: &str = "code_runner_runs_submitted_total";
pub const RUNS_FINISHED: &str = "code_runner_runs_finished_total";
pub const QUEUE_DEPTH: &str = "code_runner_queue_depth";
pub const ACTIVE_RUNS: &str = "code_runner_active_runs";
pub const QUEUE_WAIT: &str = "code_runner_queue_wait_seconds";
pub const DISPATCH: &str = "code_runner_dispatch_seconds";
pub const START_LATENCY: &str = "code_runner_start_latency_seconds";
pub const RUN_DURATION: &str = "code_runner_run_duration_seconds";
pub const KUBE_REQUESTS: &str = "code_runner_kube_requests_total";
pub const WATCH_EVENTS: &str = "code_runner_watch_events_total";
pub const WATCH_RESTARTS: &str = "code_runner_watch_restarts_total";
pub const HTTP_REQUESTS: &str = "code_runner_http_requests_total";
pub const HTTP_DURATION: &str = "code_runner_http_request_duration_seconds";
pub const RATE_LIMITED: &str = "code_runner_rate_limited_total";

/// Bucket bounds in seconds for latencies from milliseconds to minutes.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(RUNS_SUBMITTED, "Runs accepted by POST /runs.");
    describe_counter!(RUNS_FINISHED, "Runs that reached a terminal state.");
    describe_gauge!(QUEUE_DEPTH, "Run ids waiting in runs:queue.");
    describe_gauge!(
        ACTIVE_RUNS,
        "Runs dispatched and not finished (runs:active)."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from submission to dispatch."
    );
    describe_histogram!(
        DISPATCH,
        Unit::Seconds,
        "Time a worker spends dispatching one run."
    );
    describe_histogram!(
        START_LATENCY,
        Unit::Seconds,
        "Time from dispatch to program start."
    );
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "Program run time from start to end."
    );
    describe_counter!(
        KUBE_REQUESTS,
        "Requests to the Kubernetes API by verb, resource and outcome."
    );
    describe_counter!(WATCH_EVENTS, "Events received by the Job and Pod watchers.");
    describe_counter!(
        WATCH_RESTARTS,
        "Restarts of the Job and Pod watchers after an error."
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by method and route."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests rejected with 429 by the per-client rate limit, by route."
    );
}

/// Spawns the periodic upkeep that the exporter needs when nothing scrapes it.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let from = DateTime::parse_from_rfc3339(from).ok()?;
    let to = DateTime::parse_from_rfc3339(to).ok()?;
    Some(((to - from).num_milliseconds().max(0) as f64) / 1000.0)
}

pub fn record_submitted(language: &str) {
    counter!(RUNS_SUBMITTED, "language" => language.to_string()).increment(1);
}

/// Records a dispatch: its own duration, and the queue wait since `created_at`.
pub fn record_dispatched(language: &str, created_at: &str, took: Duration) {
    histogram!(DISPATCH).record(took.as_secs_f64());
    let now = crate::run::format_timestamp(Utc::now());
    if let Some(wait) = seconds_between(created_at, &now) {
        histogram!(QUEUE_WAIT, "language" => language.to_string()).record(wait);
    }
}

/// Records a program start, measured from dispatch (or creation when the dispatch time is unknown).
pub fn record_started(language: &str, created_at: &str, dispatched_at: Option<&str>) {
    let now = crate::run::format_timestamp(Utc::now());
    if let Some(latency) = seconds_between(dispatched_at.unwrap_or(created_at), &now) {
        histogram!(START_LATENCY, "language" => language.to_string()).record(latency);
    }
}

/// Records a terminal transition; called only by the writer whose transition was applied.
pub fn record_finished(
    language: &str,
    status: RunStatus,
    started_at: Option<&str>,
    fields: &RunFields,
) {
    counter!(RUNS_FINISHED, "language" => language.to_string(), "status" => status.as_str())
        .increment(1);
    let started_at = fields.started_at.as_deref().or(started_at);
    if let (Some(started), Some(finished)) = (started_at, fields.finished_at.as_deref()) {
        if let Some(duration) = seconds_between(started, finished) {
            histogram!(RUN_DURATION, "language" => language.to_string(), "status" => status.as_str())
                .record(duration);
        }
    }
}

pub fn set_queue_depth(depth: u64) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
}

pub fn set_active_runs(active: u64) {
    gauge!(ACTIVE_RUNS).set(active as f64);
}

/// Counts one Kubernetes API request; `outcome` is `success` or an error class.
pub fn record_kube_request(verb: &'static str, resource: &'static str, outcome: &'static str) {
    counter!(KUBE_REQUESTS, "verb" => verb, "resource" => resource, "outcome" => outcome)
        .increment(1);
}

pub fn record_watch_event(resource: &'static str, kind: &'static str) {
    counter!(WATCH_EVENTS, "resource" => resource, "type" => kind).increment(1);
}

/// Exports the watch restart counters at zero, so dashboards and alerts see
/// the series before the first restart.
pub fn register_watch_restarts() {
    for resource in ["jobs", "pods"] {
        counter!(WATCH_RESTARTS, "resource" => resource).absolute(0);
    }
}

pub fn record_watch_restart(resource: &'static str) {
    counter!(WATCH_RESTARTS, "resource" => resource).increment(1);
}

pub fn record_http(method: &str, route: &str, status: u16, took: Duration) {
    counter!(HTTP_REQUESTS, "method" => method.to_string(), "route" => route.to_string(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "method" => method.to_string(), "route" => route.to_string())
        .record(took.as_secs_f64());
}

/// Counts one request rejected by the rate limit.
pub fn record_rate_limited(route: &str) {
    counter!(RATE_LIMITED, "route" => route.to_string()).increment(1);
}
