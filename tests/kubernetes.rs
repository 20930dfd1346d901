//! Black-box tests of the Kubernetes path. The real `api` and `worker`
//! binaries run with their own least-privilege tokens and a private Redis per
//! test, against the local test cluster of `scripts/local-cluster.sh`: a real
//! API server, controllers and scheduler with a simulated kubelet.
//!
//! Without a reachable cluster every test prints why and passes, unless
//! `CODE_RUNNER_REQUIRE_CLUSTER=1`. Tests share the runner namespace and tell
//! their objects apart by run id. Run with `--test-threads=2`.

mod common;
mod kube_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{host_output, read_sse, RedisServer, Service, DEADLINE};
use kube_support::admin::{node_name, Admin};
use kube_support::proxy::FaultProxy;
use kube_support::{cluster, metrics, Cluster, RUNNER_NODES};
use nix::sys::signal::Signal;
use redis::AsyncCommands;
use serde_json::{json, Value};

/// Maximum wait for a killed worker's run to be recovered. Its heartbeat
/// lives 15 s and live workers look for dead ones every 5 s.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);
/// Maximum wait for a cancelled run's Job to return 404. Cancellation
/// deletes it at once, so this only absorbs a slow machine.
const JOB_DELETION_DEADLINE: Duration = Duration::from_secs(15);

const PYTHON_HELLO: &str = "print(\"Hello from k3s\")\nprint(\"caf\\u00e9 \\u2713\")\n";
const JAVASCRIPT_HELLO: &str =
    "console.log(\"Hello from k3s\");\nconsole.log(\"caf\\u00e9 \\u2713\");\n";
const PYTHON_FIZZBUZZ: &str = r#"for i in range(1, 101):
    if i % 15 == 0:
        print("FizzBuzz")
    elif i % 3 == 0:
        print("Fizz")
    elif i % 5 == 0:
        print("Buzz")
    else:
        print(i)
"#;
const JAVASCRIPT_FIZZBUZZ: &str = r#"for (let i = 1; i <= 100; i++) {
  if (i % 15 === 0) console.log("FizzBuzz");
  else if (i % 3 === 0) console.log("Fizz");
  else if (i % 5 === 0) console.log("Buzz");
  else console.log(i);
}
"#;
/// Prints, then sleeps far longer than any test waits.
const PYTHON_SLEEPER: &str = "import time\nprint('started', flush=True)\ntime.sleep(600)\n";

/// Returns the statuses that `runs:events` holds for one run, oldest first.
async fn statuses_of(redis: &RedisServer, id: &str) -> Vec<String> {
    redis
        .events()
        .await
        .into_iter()
        .filter(|(run_id, _)| run_id == id)
        .map(|(_, status)| status)
        .collect()
}

/// Waits until every run has a terminal status and returns them in order.
async fn wait_all_finished(api: &Service, ids: &[String]) -> Vec<Value> {
    let mut runs = Vec::new();
    for id in ids {
        runs.push(api.wait_finished(id).await);
    }
    runs
}

/// Sends `DELETE /runs/{id}` to an unfinished run and returns the run it returns.
async fn cancel(api: &Service, id: &str) -> Value {
    let response = api
        .http()
        .delete(api.url(&format!("/runs/{id}")))
        .send()
        .await
        .expect("DELETE /runs/{id} gets a response");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "DELETE /runs/{id} returned {text}");
    serde_json::from_str(&text).expect("DELETE /runs/{id} returns JSON")
}

/// Polls the run until `done` returns true. Panics after `limit`.
async fn wait_run(
    api: &Service,
    id: &str,
    limit: Duration,
    expected_state: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let run = api.run(id).await;
        if done(&run) {
            return run;
        }
        assert!(
            started.elapsed() < limit,
            "run {id} did not reach {expected_state} within {limit:?}; last seen: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_terminal(run: &Value) -> bool {
    matches!(
        run["status"].as_str(),
        Some("succeeded" | "failed" | "timed_out" | "cancelled" | "error")
    )
}

/// Waits until `id` is in the processing list of `worker`.
async fn wait_in_processing(redis: &RedisServer, worker: &str, id: &str) {
    let key = format!("runs:processing:{worker}");
    let started = Instant::now();
    loop {
        let mut connection = redis.connection().await;
        let held: Vec<String> = connection
            .lrange(&key, 0, -1)
            .await
            .expect("LRANGE succeeds");
        if held.iter().any(|held| held == id) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "run {id} never appeared in {key}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hello world and FizzBuzz in both languages print exactly what the host's
/// interpreters print, on a runner node, and the worker counts them.
#[tokio::test]
async fn programs_match_host_interpreters() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-output").start(&redis).await;
    let worker = cluster.worker("k8s-output", "w1").start(&redis).await;
    let admin = Admin::connect(cluster).await;
    let cases = [
        ("python", "python3", "main.py", PYTHON_HELLO),
        ("javascript", "node", "main.js", JAVASCRIPT_HELLO),
        ("python", "python3", "main.py", PYTHON_FIZZBUZZ),
        ("javascript", "node", "main.js", JAVASCRIPT_FIZZBUZZ),
    ];

    let mut ids = Vec::new();
    for (language, _, _, code) in cases {
        ids.push(
            api.submit_id(json!({"language": language, "code": code}))
                .await,
        );
    }
    let runs = wait_all_finished(&api, &ids).await;
    // Fewer log reads than runs means the worker ended some runs without
    // reading their Pod's output.
    let log_reads = metrics::sum(
        &metrics::scrape(&worker).await,
        "code_runner_kube_requests_total",
        &[("verb", "get"), ("resource", "pods/log")],
    );

    for ((language, interpreter, file_name, code), (id, run)) in
        cases.iter().zip(ids.iter().zip(&runs))
    {
        assert_eq!(run["status"], "succeeded", "{language}: {run}");
        assert_eq!(run["exit_code"], 0, "{language}: {run}");
        assert_eq!(run["job_name"], format!("run-{id}"), "{language}: {run}");
        let node = run["node"].as_str().unwrap_or_default();
        assert!(
            RUNNER_NODES.contains(&node),
            "{language}: ran on {node:?}, not a runner node: {run}"
        );

        let expected = host_output(interpreter, file_name, code);
        let logs = api.logs_bytes(id).await;
        assert_eq!(
            String::from_utf8_lossy(&logs),
            String::from_utf8_lossy(&expected),
            "{language}: output of run {id} differs from the host's {interpreter}; \
             the worker read pods/log {log_reads} times for {} runs",
            ids.len()
        );
        assert_eq!(
            logs, expected,
            "{language}: output bytes differ from the host's {interpreter}"
        );
    }

    let text = metrics::scrape(&worker).await;
    for language in ["python", "javascript"] {
        let finished = metrics::sum(
            &text,
            "code_runner_runs_finished_total",
            &[("language", language), ("status", "succeeded")],
        );
        assert_eq!(
            finished, 2.0,
            "{language} runs counted as succeeded:\n{text}"
        );
    }
    let created = metrics::sum(
        &text,
        "code_runner_kube_requests_total",
        &[
            ("verb", "create"),
            ("resource", "jobs"),
            ("outcome", "success"),
        ],
    );
    assert_eq!(created, 4.0, "Jobs created:\n{text}");
    admin.remove_runs(&ids).await;
}

/// The event stream of a run shows each state of its way through the
/// cluster once, in order, as `runs:events` records them.
#[tokio::test]
async fn event_stream_shows_each_state_in_order() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-events").start(&redis).await;
    // The delay keeps the run queued while the stream below opens.
    let worker = cluster
        .worker("k8s-events", "w1")
        .env("WORKER_DISPATCH_DELAY_MS", 1000)
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;
    // A watch that is still listing would only show the Pod's latest state.
    wait_watches_listed(&worker).await;

    let id = api
        .submit_id(json!({"language": "python", "code": "print('events')"}))
        .await;
    let response = api
        .streaming_http()
        .get(api.url(&format!("/runs/{id}/events")))
        .send()
        .await
        .expect("GET /runs/{id}/events gets a response");
    assert_eq!(response.status(), 200);
    let events = read_sse(response).await;

    // The store first: a state missing there cannot reach the stream.
    assert_eq!(
        statuses_of(&redis, &id).await,
        ["queued", "dispatched", "pending", "running", "succeeded"],
        "statuses in runs:events"
    );
    let mut statuses: Vec<String> = events
        .iter()
        .map(|event| {
            assert_eq!(event.event, "status", "event {event:?}");
            let run: Value = serde_json::from_str(&event.data).expect("event data is a run object");
            run["status"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    // The stream starts with the current state, which on a slow machine may
    // already be past `queued`.
    if statuses.first().is_some_and(|status| status == "queued") {
        statuses.remove(0);
    }
    assert_eq!(
        statuses,
        ["dispatched", "pending", "running", "succeeded"],
        "statuses in GET /runs/{id}/events"
    );

    let text = metrics::scrape(&worker).await;
    assert!(
        metrics::has(&text, "code_runner_runs_finished_total"),
        "{text}"
    );
    admin.remove_runs(&[id]).await;
}

/// Waits until the worker's Job and Pod watches have each finished their
/// first list, as its metrics report.
async fn wait_watches_listed(worker: &Service) {
    let started = Instant::now();
    loop {
        let text = metrics::scrape(worker).await;
        let listed = ["jobs", "pods"].iter().all(|resource| {
            metrics::sum(
                &text,
                "code_runner_watch_events_total",
                &[("resource", resource), ("type", "init_done")],
            ) >= 1.0
        });
        if listed {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the worker's watches did not list within {DEADLINE:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `RUNNER_NODE_SELECTOR=runner=true` every runner Pod is bound to a
/// node with that label, and the run reports that node.
#[tokio::test]
async fn pods_land_on_selected_nodes() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-placement").start(&redis).await;
    let _worker = cluster.worker("k8s-placement", "w1").start(&redis).await;
    let admin = Admin::connect(cluster).await;

    let mut ids = Vec::new();
    for index in 0..6 {
        ids.push(
            api.submit_id(json!({"language": "python", "code": format!("print({index})")}))
                .await,
        );
    }
    let runs = wait_all_finished(&api, &ids).await;

    for (id, run) in ids.iter().zip(&runs) {
        assert_eq!(run["status"], "succeeded", "{run}");
        let pods = admin.pods_of(id).await;
        assert_eq!(pods.len(), 1, "Pods of run {id}");
        let pod = &pods[0];
        let node = node_name(pod).unwrap_or_default();
        assert!(
            RUNNER_NODES.contains(&node),
            "run {id} ran on {node:?}, which lacks runner=true"
        );
        assert_eq!(run["node"], node, "the node the run reports");
        let selector = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_selector.clone());
        assert_eq!(
            selector,
            Some(BTreeMap::from([("runner".to_string(), "true".to_string())])),
            "nodeSelector of run {id}'s Pod"
        );
    }
    admin.remove_runs(&ids).await;
}

/// A selector that no node matches leaves the run pending with the
/// scheduler's reason and message, until it is cancelled.
#[tokio::test]
async fn unmatched_selector_stays_unschedulable() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-unschedulable").start(&redis).await;
    let _worker = cluster
        .worker("k8s-unschedulable", "w1")
        .env("RUNNER_NODE_SELECTOR", "pool=none")
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": "print('never')"}))
        .await;
    let run = api
        .wait_for(&id, "pending with reason Unschedulable", |run| {
            run["status"] == "pending" && run["reason"] == "Unschedulable"
        })
        .await;
    // The v1.20 scheduler writes "0/3 nodes are available: 3 node(s) didn't
    // match Pod's node affinity." for a nodeSelector that no node matches.
    let message = run["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nodes are available"),
        "scheduler message: {run}"
    );
    assert!(message.contains("didn't match"), "scheduler message: {run}");
    let pod = admin.wait_pod(&id, DEADLINE).await;
    assert_eq!(
        node_name(&pod),
        None,
        "the Pod of an unschedulable run is bound"
    );

    // Still pending a while later: nothing settles it before its deadline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let run = api.run(&id).await;
    assert_eq!(run["status"], "pending", "{run}");
    assert_eq!(run["reason"], "Unschedulable", "{run}");

    let cancelled = cancel(&api, &id).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    admin.wait_job_gone(&id, JOB_DELETION_DEADLINE).await;
    admin.wait_pods_gone(&id, DEADLINE).await;
    assert_eq!(api.run(&id).await["status"], "cancelled");
}

/// A program that outlives its timeout ends as timed_out with what it printed.
#[tokio::test]
async fn long_program_times_out() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-timeout").start(&redis).await;
    let _worker = cluster.worker("k8s-timeout", "w1").start(&redis).await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": PYTHON_SLEEPER, "timeout_seconds": 2}))
        .await;
    let run = api.wait_finished(&id).await;

    assert_eq!(run["status"], "timed_out", "{run}");
    assert_eq!(run["reason"], "DeadlineExceeded", "{run}");
    assert_eq!(api.logs(&id).await, "started\n");
    assert_eq!(
        statuses_of(&redis, &id).await.last().map(String::as_str),
        Some("timed_out")
    );
    admin.remove_runs(&[id]).await;
}

/// An image that cannot be pulled fails the run with the kubelet's reason
/// long before the Job's deadline, and its Job is deleted.
#[tokio::test]
async fn unknown_image_fails_before_deadline() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-image").start(&redis).await;
    // Job deadline: 60 s timeout + 120 s allowance = 180 s, three times the wait below.
    let _worker = cluster
        .worker("k8s-image", "w1")
        .env("RUNNER_IMAGE_PYTHON", "example.invalid/nope:1")
        .env("RUNNER_START_ALLOWANCE_SECONDS", 120)
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": "print('never')", "timeout_seconds": 60}))
        .await;
    let run = api.wait_finished(&id).await;

    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&reason),
        "reason {reason:?}: {run}"
    );
    // The run failed well inside the Job's 180 s deadline (the wait above is
    // 60 s), and its Job, whose Pod could never start, is deleted at once.
    let created =
        chrono::DateTime::parse_from_rfc3339(run["created_at"].as_str().unwrap()).unwrap();
    let finished =
        chrono::DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        (finished - created).num_seconds() < 60,
        "the run waited for the Job's deadline: {run}"
    );
    admin.wait_job_gone(&id, JOB_DELETION_DEADLINE).await;
    assert_eq!(api.logs(&id).await, "");
    admin.remove_runs(&[id]).await;
}

/// Cancelling a running run deletes its Job and Pod, and the run stays cancelled.
#[tokio::test]
async fn cancel_deletes_running_job() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-cancel").start(&redis).await;
    let _worker = cluster.worker("k8s-cancel", "w1").start(&redis).await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": PYTHON_SLEEPER, "timeout_seconds": 300}))
        .await;
    api.wait_status(&id, "running").await;

    // While the program runs, the api reads its output from the Pod and lists
    // runner Pods for the status view, with the api token's rights alone.
    wait_live_logs(&api, &id, "started\n").await;
    let status = system_status(&api).await;
    assert_eq!(status["kubernetes"]["ok"], true, "{status}");
    let listed = status["runners"]["pods"]
        .as_array()
        .is_some_and(|pods| pods.iter().any(|pod| pod["run_id"] == id.as_str()));
    assert!(listed, "the status view lacks run {id}'s Pod: {status}");

    let cancelled = cancel(&api, &id).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    admin.wait_job_gone(&id, JOB_DELETION_DEADLINE).await;
    admin.wait_pods_gone(&id, DEADLINE).await;

    // The Pod's end, seen by the watcher after the cancel, changes nothing.
    let run = api.run(&id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let statuses = statuses_of(&redis, &id).await;
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("cancelled"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|status| *status == "cancelled")
            .count(),
        1,
        "{statuses:?}"
    );
}

/// Polls `GET /runs/{id}/logs` of an unfinished run until it returns `expected`.
async fn wait_live_logs(api: &Service, id: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let logs = api.logs(id).await;
        if logs == expected {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "GET /runs/{id}/logs returned {logs:?} for {DEADLINE:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads `GET /system/status`.
async fn system_status(api: &Service) -> Value {
    let response = api
        .http()
        .get(api.url("/system/status"))
        .send()
        .await
        .expect("GET /system/status gets a response");
    assert_eq!(response.status(), 200, "GET /system/status");
    response
        .json()
        .await
        .expect("GET /system/status returns JSON")
}

/// A worker killed after it took a run but before it created the Job leaves
/// the run to a second worker, which creates exactly one Job for it.
#[tokio::test]
async fn killed_worker_leaves_one_job() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-killed").start(&redis).await;
    let mut first = cluster
        .worker("k8s-killed-w1", "w1")
        .env("WORKER_DISPATCH_DELAY_MS", 5000)
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": "print('once')"}))
        .await;
    wait_in_processing(&redis, "w1", &id).await;
    first.signal(Signal::SIGKILL);
    first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the first worker dies at SIGKILL");
    assert_eq!(api.run(&id).await["status"], "queued");
    assert!(
        admin.jobs_of(&id).await.is_empty(),
        "the killed worker created a Job"
    );

    let _second = cluster.worker("k8s-killed-w2", "w2").start(&redis).await;
    let run = wait_run(
        &api,
        &id,
        RECOVERY_DEADLINE,
        "a terminal status",
        is_terminal,
    )
    .await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(api.logs(&id).await, "once\n");
    assert_eq!(admin.jobs_of(&id).await.len(), 1, "Jobs of run {id}");
    let mut connection = redis.connection().await;
    let left: u64 = connection.llen("runs:processing:w1").await.unwrap();
    assert_eq!(left, 0, "the dead worker's processing list is not empty");
    admin.remove_runs(&[id]).await;
}

/// Submits programs that sleep `seconds` and then succeed, fail with exit
/// code 3 or overrun a timeout. Returns their ids and expected end states.
async fn submit_mixed(api: &Service, seconds: u32) -> Vec<(String, &'static str)> {
    let cases = [
        (
            "python",
            format!("import time\ntime.sleep({seconds})\nprint('ok')\n"),
            30,
            "succeeded",
        ),
        (
            "python",
            format!("import sys, time\ntime.sleep({seconds})\nsys.exit(3)\n"),
            30,
            "failed",
        ),
        (
            "python",
            "import time\ntime.sleep(600)\n".to_string(),
            seconds + 2,
            "timed_out",
        ),
        (
            "javascript",
            format!("setTimeout(() => console.log('ok'), {});\n", seconds * 1000),
            30,
            "succeeded",
        ),
    ];
    let mut runs = Vec::new();
    for (language, code, timeout, expected) in cases {
        let id = api
            .submit_id(json!({"language": language, "code": code, "timeout_seconds": timeout}))
            .await;
        runs.push((id, expected));
    }
    runs
}

/// Waits until every run has started its program or ended.
async fn wait_all_started(api: &Service, runs: &[(String, &str)]) {
    for (id, _) in runs {
        api.wait_for(id, "running or later", |run| {
            run["status"] == "running" || is_terminal(run)
        })
        .await;
    }
}

/// Checks the end state of each run of [`submit_mixed`], and that each run
/// recorded one end. Lists every wrong run before it fails.
async fn assert_mixed_ends(api: &Service, redis: &RedisServer, runs: &[(String, &str)]) {
    let mut wrong = Vec::new();
    for (id, expected) in runs {
        let run = api.wait_finished(id).await;
        if run["status"] != *expected {
            wrong.push(format!("expected {expected}, got {run}"));
        } else if *expected == "failed" && (run["reason"] != "NonZeroExit" || run["exit_code"] != 3)
        {
            wrong.push(format!(
                "expected reason NonZeroExit and exit code 3, got {run}"
            ));
        }
        if *expected == "succeeded" {
            let logs = api.logs(id).await;
            if logs != "ok\n" {
                wrong.push(format!(
                    "run {id} succeeded with logs {logs:?}, not \"ok\\n\""
                ));
            }
        }
        let statuses = statuses_of(redis, id).await;
        let ends = statuses
            .iter()
            .filter(|status| {
                !matches!(
                    status.as_str(),
                    "queued" | "dispatched" | "pending" | "running"
                )
            })
            .count();
        if ends != 1 {
            wrong.push(format!("run {id} recorded {ends} ends: {statuses:?}"));
        }
    }
    assert!(wrong.is_empty(), "runs ended wrong:\n{}", wrong.join("\n"));
}

/// Starts the api and a worker that reaches the API server through the fault proxy.
async fn start_behind_proxy(
    cluster: &Cluster,
    redis: &RedisServer,
    name: &str,
) -> (Service, Service) {
    let api = cluster.api(name).start(redis).await;
    let worker = cluster
        .worker(name, "w1")
        .env("KUBECONFIG", cluster.worker_proxy_kubeconfig.display())
        .start(redis)
        .await;
    wait_watches_listed(&worker).await;
    (api, worker)
}

/// Watches that the fault proxy drops, with new ones refused for the 3 s in
/// which the programs end, cost no run its right end state.
#[tokio::test]
async fn dropped_watches_lose_no_run() {
    let Some(cluster) = cluster() else { return };
    let proxy = FaultProxy::reserve(cluster).await;
    let redis = RedisServer::start().await;
    let (api, worker) = start_behind_proxy(cluster, &redis, "k8s-watch-drop").await;
    let admin = Admin::connect(cluster).await;

    let runs = submit_mixed(&api, 3).await;
    wait_all_started(&api, &runs).await;
    // Both watches may share one HTTP/2 connection, so one drop can end both.
    let dropped = proxy.drop_watches(3).await;
    assert!(dropped >= 1, "the proxy found no open watch to drop");
    assert_mixed_ends(&api, &redis, &runs).await;

    let text = metrics::scrape(&worker).await;
    for resource in ["jobs", "pods"] {
        let restarts = metrics::sum(
            &text,
            "code_runner_watch_restarts_total",
            &[("resource", resource)],
        );
        assert!(
            restarts > 0.0,
            "no restart of the {resource} watch counted after the drop:\n{text}"
        );
    }
    proxy.reset().await;
    let ids: Vec<String> = runs.into_iter().map(|(id, _)| id).collect();
    admin.remove_runs(&ids).await;
}

/// After etcd compaction the worker's resumed watches get 410 Gone and must
/// list again; no run in flight loses its right end state.
#[tokio::test]
async fn watch_410_after_compaction_loses_no_run() {
    let Some(cluster) = cluster() else { return };
    let proxy = FaultProxy::reserve(cluster).await;
    let redis = RedisServer::start().await;
    let (api, worker) = start_behind_proxy(cluster, &redis, "k8s-watch-410").await;
    let admin = Admin::connect(cluster).await;

    let runs = submit_mixed(&api, 3).await;
    wait_all_started(&api, &runs).await;
    let text = metrics::scrape(&worker).await;
    let lists_before = metrics::sum(&text, "code_runner_watch_events_total", &[("type", "init")]);
    let dropped = cluster.compact();
    assert!(dropped >= 1, "compaction found no open watch to drop");
    assert_mixed_ends(&api, &redis, &runs).await;

    // A watch lists again only after 410 Gone; a plain reconnect resumes from
    // its resourceVersion. Whether both watches get 410 depends on the
    // resourceVersion each resumes from, so one relist is required, and it is
    // awaited because the runs can end before the watches reconnect.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (text, lists_after) = loop {
        let text = metrics::scrape(&worker).await;
        let lists = metrics::sum(&text, "code_runner_watch_events_total", &[("type", "init")]);
        if lists > lists_before || std::time::Instant::now() > deadline {
            break (text, lists);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        lists_after > lists_before,
        "the watches did not list again after 410 Gone ({lists_before} lists before, {lists_after} after):\n{text}"
    );
    proxy.reset().await;
    let ids: Vec<String> = runs.into_iter().map(|(id, _)| id).collect();
    admin.remove_runs(&ids).await;
}

/// When the Pod watch lags behind the Job watch, the run still ends with
/// the state, reason, exit code and output of its Pod, not with the Job's
/// condition alone.
#[tokio::test]
async fn lagging_pod_watch_keeps_end_state() {
    let Some(cluster) = cluster() else { return };
    let proxy = FaultProxy::reserve(cluster).await;
    let redis = RedisServer::start().await;
    let (api, _worker) = start_behind_proxy(cluster, &redis, "k8s-watch-lag").await;
    let admin = Admin::connect(cluster).await;

    let runs = submit_mixed(&api, 3).await;
    wait_all_started(&api, &runs).await;
    // Every new Pod request, the resumed Pod watch included, waits 8 s at the
    // proxy, so the Job watch reports the programs' ends first.
    proxy.delay(8000, "GET", "/pods").await;
    let dropped = proxy.drop_watches(0).await;
    assert!(dropped >= 1, "the proxy found no open watch to drop");
    // This one starts and ends while the worker has not seen its Pod at all.
    let unseen = api
        .submit_id(json!({"language": "python", "code": "print('ok')"}))
        .await;
    let mut runs = runs;
    runs.push((unseen, "succeeded"));
    assert_mixed_ends(&api, &redis, &runs).await;

    proxy.reset().await;
    let ids: Vec<String> = runs.into_iter().map(|(id, _)| id).collect();
    admin.remove_runs(&ids).await;
}

/// A burst of 500s on Job creation delays the runs but does not fail them,
/// and leaves one Job per run.
#[tokio::test]
async fn job_create_errors_are_retried() {
    let Some(cluster) = cluster() else { return };
    let proxy = FaultProxy::reserve(cluster).await;
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-500").start(&redis).await;
    let worker = cluster
        .worker("k8s-500", "w1")
        .env("KUBECONFIG", cluster.worker_proxy_kubeconfig.display())
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;

    proxy.fail_next(500, 4, "POST", "/jobs").await;
    let mut ids = Vec::new();
    for index in 0..3 {
        ids.push(
            api.submit_id(json!({"language": "python", "code": format!("print({index})")}))
                .await,
        );
    }
    let runs = wait_all_finished(&api, &ids).await;

    for (index, (id, run)) in ids.iter().zip(&runs).enumerate() {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(api.logs(id).await, format!("{index}\n"));
        assert_eq!(admin.jobs_of(id).await.len(), 1, "Jobs of run {id}");
    }
    let state = proxy.state().await;
    assert_eq!(
        state["bursts"],
        json!([]),
        "the burst was not used up: {state}"
    );
    let text = metrics::scrape(&worker).await;
    let labels = |outcome| {
        [
            ("verb", "create"),
            ("resource", "jobs"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(
        metrics::sum(
            &text,
            "code_runner_kube_requests_total",
            &labels("server_error")
        ),
        4.0,
        "{text}"
    );
    assert_eq!(
        metrics::sum(&text, "code_runner_kube_requests_total", &labels("success")),
        3.0,
        "{text}"
    );
    proxy.reset().await;
    admin.remove_runs(&ids).await;
}

/// A Job that its TTL removed before anyone read the logs leaves them in Redis.
#[tokio::test]
async fn logs_outlive_job_ttl() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-ttl").start(&redis).await;
    let worker = cluster
        .worker("k8s-ttl", "w1")
        .env("RUNNER_JOB_TTL_SECONDS", 1)
        .start(&redis)
        .await;
    let admin = Admin::connect(cluster).await;

    let id = api
        .submit_id(json!({"language": "python", "code": PYTHON_FIZZBUZZ}))
        .await;
    let run = api.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    admin.wait_job_gone(&id, DEADLINE).await;
    admin.wait_pods_gone(&id, DEADLINE).await;

    let expected = host_output("python3", "main.py", PYTHON_FIZZBUZZ);
    let logs = api.logs_bytes(&id).await;
    // Zero log reads means the worker ended the run without reading the Pod.
    let text = metrics::scrape(&worker).await;
    let log_reads = metrics::sum(
        &text,
        "code_runner_kube_requests_total",
        &[("verb", "get"), ("resource", "pods/log")],
    );
    assert_eq!(
        String::from_utf8_lossy(&logs),
        String::from_utf8_lossy(&expected),
        "stored logs after the Job's TTL; the worker read pods/log {log_reads} times"
    );
    assert_eq!(api.run(&id).await["status"], "succeeded");
}

/// Two workers watch the same runs: each transition is applied, recorded in
/// `runs:events` and counted in metrics once.
#[tokio::test]
async fn two_workers_count_each_transition_once() {
    let Some(cluster) = cluster() else { return };
    let redis = RedisServer::start().await;
    let api = cluster.api("k8s-two").start(&redis).await;
    let first = cluster.worker("k8s-two-w1", "w1").start(&redis).await;
    let second = cluster.worker("k8s-two-w2", "w2").start(&redis).await;
    let admin = Admin::connect(cluster).await;

    let mut ids = Vec::new();
    for index in 0..8 {
        let code = if index % 4 == 3 {
            "import sys\nsys.exit(3)\n".to_string()
        } else {
            format!("print({index})")
        };
        ids.push(
            api.submit_id(json!({"language": "python", "code": code}))
                .await,
        );
    }
    let runs = wait_all_finished(&api, &ids).await;

    for (index, (id, run)) in ids.iter().zip(&runs).enumerate() {
        let expected = if index % 4 == 3 {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(run["status"], expected, "{run}");
        let statuses = statuses_of(&redis, id).await;
        for status in &statuses {
            let times = statuses.iter().filter(|other| *other == status).count();
            assert_eq!(
                times, 1,
                "{status} recorded {times} times for run {id}: {statuses:?}"
            );
        }
        assert_eq!(
            statuses.last().map(String::as_str),
            Some(expected),
            "{statuses:?}"
        );
    }

    let mut finished = BTreeMap::<&str, f64>::new();
    for worker in [&first, &second] {
        let text = metrics::scrape(worker).await;
        for status in ["succeeded", "failed"] {
            *finished.entry(status).or_default() += metrics::sum(
                &text,
                "code_runner_runs_finished_total",
                &[("status", status)],
            );
        }
        *finished.entry("all").or_default() +=
            metrics::sum(&text, "code_runner_runs_finished_total", &[]);
    }
    assert_eq!(finished["succeeded"], 6.0, "{finished:?}");
    assert_eq!(finished["failed"], 2.0, "{finished:?}");
    assert_eq!(finished["all"], 8.0, "{finished:?}");
    admin.remove_runs(&ids).await;
}
