//! Black-box fault tests: a worker killed after it took a run, a Redis
//! restart under a running service, and shutdown on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, service, Mode, RedisServer, DEADLINE};
use nix::sys::signal::Signal;
use redis::AsyncCommands;
use serde_json::{json, Value};

/// Maximum wait for a dead worker's runs to return to the queue: its
/// heartbeat lives 15 s and the recovery checks every 5 s.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(90);

/// Waits until `id` is in the processing list of `worker`.
async fn wait_in_processing(redis: &RedisServer, worker: &str, id: &str) {
    let key = format!("runs:processing:{worker}");
    let started = Instant::now();
    loop {
        let mut connection = redis.connection().await;
        let processing: Vec<String> = connection.lrange(&key, 0, -1).await.unwrap();
        if processing.iter().any(|held_id| held_id == id) {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "run {id} never appeared in {key}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the statuses recorded in `runs:events` for one run, oldest first.
async fn events_of(redis: &RedisServer, id: &str) -> Vec<String> {
    redis
        .events()
        .await
        .into_iter()
        .filter(|(run_id, _)| run_id == id)
        .map(|(_, status)| status)
        .collect()
}

/// Reads one field of the `run:{id}` hash straight from Redis.
async fn run_field(redis: &RedisServer, id: &str, field: &str) -> Option<String> {
    let mut connection = redis.connection().await;
    connection.hget(format!("run:{id}"), field).await.unwrap()
}

#[tokio::test]
async fn killed_worker_run_completes_once() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "killed-worker").start(&redis).await;
    let mut first = service(Mode::Worker, "killed-worker-w1")
        .env("WORKER_ID", "w1")
        .env("WORKER_DISPATCH_DELAY_MS", 5000)
        .start(&redis)
        .await;

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

    let _second = service(Mode::Worker, "killed-worker-w2")
        .env("WORKER_ID", "w2")
        .start(&redis)
        .await;
    let started = Instant::now();
    let run = loop {
        let run = api.run(&id).await;
        if run["status"] != "queued" && run["status"] != "dispatched" && run["status"] != "running"
        {
            break run;
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "the run of the killed worker was not recovered: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(api.logs(&id).await, "once\n");
    assert_eq!(
        events_of(&redis, &id).await,
        ["queued", "dispatched", "running", "succeeded"]
    );
    assert_eq!(
        run_field(&redis, &id, "worker").await.as_deref(),
        Some("w2")
    );
    let mut connection = redis.connection().await;
    let left: u64 = connection.llen("runs:processing:w1").await.unwrap();
    assert_eq!(left, 0, "the dead worker's processing list is not empty");
    assert_eq!(redis.queue_len().await, 0);
}

#[tokio::test]
async fn service_recovers_after_redis_restart() {
    let mut redis = RedisServer::start().await;
    let mut service = service(Mode::Dev, "redis-restart").start(&redis).await;
    let pid = service.pid();
    let (run, _) = service
        .run_to_end(json!({"language": "python", "code": "print('before')"}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    redis.stop();

    let started = Instant::now();
    let response = service
        .http()
        .post(service.url("/runs"))
        .json(&json!({"language": "python", "code": "print('during')"}))
        .send()
        .await
        .unwrap();
    let answered_in = started.elapsed();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .cloned();
    assert_error(
        "POST /runs during the outage",
        response,
        503,
        "unavailable",
        None,
    )
    .await;
    assert!(retry_after.is_some(), "POST /runs: 503 without Retry-After");
    assert!(
        answered_in < Duration::from_secs(10),
        "POST /runs took {answered_in:?} to fail during the outage"
    );

    let response = service
        .http()
        .get(service.url("/ready"))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .cloned();
    assert_error(
        "GET /ready during the outage",
        response,
        503,
        "unavailable",
        None,
    )
    .await;
    assert!(retry_after.is_some(), "GET /ready: 503 without Retry-After");

    let response = service
        .http()
        .get(service.url(&format!("/runs/{}", run["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_error(
        "GET /runs/{id} during the outage",
        response,
        503,
        "unavailable",
        None,
    )
    .await;
    let response = service
        .http()
        .get(service.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "liveness during the outage");

    redis.restart().await;
    service.wait_ready().await;

    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "print('after')"}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(logs, "after\n");
    assert_eq!(service.try_exit_status(), None, "the service exited");
    assert_eq!(service.pid(), pid);
}

#[tokio::test]
async fn sigterm_exits_idle_dev_cleanly() {
    let redis = RedisServer::start().await;
    let mut service = service(Mode::Dev, "sigterm-idle").start(&redis).await;
    let (run, _) = service
        .run_to_end(json!({"language": "python", "code": "print(1)"}))
        .await;
    assert_eq!(run["status"], "succeeded");

    service.signal(Signal::SIGTERM);
    let status = service
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("code-runner dev exits within 10 s of SIGTERM");

    assert_eq!(status.code(), Some(0), "{status}");
    let mut connection = redis.connection().await;
    let heartbeats: Vec<String> = connection.keys("worker:*").await.unwrap();
    assert_eq!(heartbeats, Vec::<String>::new(), "heartbeat left behind");
}

#[tokio::test]
async fn sigterm_exits_api_and_worker_cleanly() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "sigterm-api").start(&redis).await;
    let worker = service(Mode::Worker, "sigterm-worker")
        .env("WORKER_ID", "w1")
        .start(&redis)
        .await;

    for (name, mut process) in [("api", api), ("worker", worker)] {
        process.signal(Signal::SIGTERM);
        let status = process
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("code-runner {name} exits within 10 s of SIGTERM"));
        assert_eq!(status.code(), Some(0), "{name}: {status}");
    }
    let mut connection = redis.connection().await;
    let heartbeat: bool = connection.exists("worker:w1").await.unwrap();
    assert!(!heartbeat, "the worker left its heartbeat behind");
}

#[tokio::test]
async fn sigterm_settles_running_program() {
    let redis = RedisServer::start().await;
    let mut service = service(Mode::Dev, "sigterm-running").start(&redis).await;
    let id = service
        .submit_id(json!({"language": "python", "code": "import time\nprint('started', flush=True)\ntime.sleep(600)", "timeout_seconds": 300}))
        .await;
    service.wait_status(&id, "running").await;

    service.signal(Signal::SIGTERM);
    // The worker gives running programs 10 s to finish before it stops them.
    let status = service
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("code-runner dev exits after its shutdown grace");

    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        run_field(&redis, &id, "status").await.as_deref(),
        Some("error")
    );
    assert_eq!(
        run_field(&redis, &id, "reason").await.as_deref(),
        Some("WorkerStopped")
    );
    let mut connection = redis.connection().await;
    let active: u64 = connection.llen("runs:active").await.unwrap();
    assert_eq!(active, 0, "the settled run is still in runs:active");
}

#[tokio::test]
async fn sigterm_requeues_undispatched_run() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "sigterm-undispatched")
        .start(&redis)
        .await;
    let mut worker = service(Mode::Worker, "sigterm-undispatched-w1")
        .env("WORKER_ID", "w1")
        .env("WORKER_DISPATCH_DELAY_MS", 5000)
        .start(&redis)
        .await;
    let id = api
        .submit_id(json!({"language": "python", "code": "print('later')"}))
        .await;
    wait_in_processing(&redis, "w1", &id).await;

    worker.signal(Signal::SIGTERM);
    let status = worker
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the worker exits after SIGTERM");

    assert_eq!(status.code(), Some(0), "{status}");
    let run = api.run(&id).await;
    assert_eq!(run["status"], "queued", "{run}");
    assert_eq!(events_of(&redis, &id).await, ["queued"]);
    assert_eq!(redis.queue_len().await, 1);

    // The next worker runs it.
    let _next = service(Mode::Worker, "sigterm-undispatched-w2")
        .env("WORKER_ID", "w2")
        .start(&redis)
        .await;
    let run: Value = api.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(api.logs(&id).await, "later\n");
}

#[tokio::test]
async fn run_ending_during_redis_outage_is_settled() {
    let mut redis = RedisServer::start().await;
    let service = service(Mode::Dev, "outage-during-run").start(&redis).await;
    let code = "import time\nprint('before', flush=True)\ntime.sleep(3)\nprint('after')\n";
    let id = service
        .submit_id(json!({"language": "python", "code": code, "timeout_seconds": 60}))
        .await;
    service
        .wait_for(&id, "running with output", |run| run["status"] == "running")
        .await;

    // The program ends while Redis is down; the restart brings the data back.
    redis.save_and_stop().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    redis.restart().await;
    service.wait_ready().await;

    let run = service.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(service.logs(&id).await, "before\nafter\n");
}

#[tokio::test]
async fn run_of_worker_killed_while_running_is_settled() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "killed-running").start(&redis).await;
    let mut first = service(Mode::Worker, "killed-running-w1")
        .env("WORKER_ID", "w1")
        .start(&redis)
        .await;
    let marker = common::unique("killed-worker-marker");
    let code = format!(
        "import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'])\nprint('started', flush=True)\ntime.sleep(600)\n"
    );
    let id = api
        .submit_id(json!({"language": "python", "code": code, "timeout_seconds": 300}))
        .await;
    api.wait_for(&id, "a running marked process", |run| {
        run["status"] == "running" && !common::pgrep(&marker).is_empty()
    })
    .await;

    first.signal(Signal::SIGKILL);
    first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the first worker dies at SIGKILL");

    // Another worker settles the run once the dead worker's heartbeat expires.
    let _second = service(Mode::Worker, "killed-running-w2")
        .env("WORKER_ID", "w2")
        .start(&redis)
        .await;
    let started = Instant::now();
    let run = loop {
        let run = api.run(&id).await;
        if run["status"] != "running" {
            break run;
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "the run of the killed worker stayed running: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(run["reason"], "WorkerStopped", "{run}");
    assert_eq!(api.logs(&id).await, "started\n");
    let mut connection = redis.connection().await;
    let active: u64 = connection.llen("runs:active").await.unwrap();
    assert_eq!(active, 0, "the settled run is still in runs:active");
    // The program died with its worker, well before the run was settled.
    assert_eq!(
        common::pgrep(&marker),
        Vec::<u32>::new(),
        "the program outlived its worker"
    );
}

/// A worker that comes back under the same id after SIGKILL settles the runs
/// its earlier process left running, instead of skipping them as its own.
#[tokio::test]
async fn restarted_worker_settles_its_own_runs() {
    let redis = RedisServer::start().await;
    let api = service(Mode::Api, "same-id-restart").start(&redis).await;
    let mut first = service(Mode::Worker, "same-id-restart-w1")
        .env("WORKER_ID", "same")
        .start(&redis)
        .await;
    let id = api
        .submit_id(json!({"language": "python", "code": "import time\nprint('up', flush=True)\ntime.sleep(600)", "timeout_seconds": 300}))
        .await;
    api.wait_status(&id, "running").await;

    first.signal(Signal::SIGKILL);
    first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the worker dies at SIGKILL");
    let _again = service(Mode::Worker, "same-id-restart-w1-again")
        .env("WORKER_ID", "same")
        .start(&redis)
        .await;

    let run = api.wait_finished(&id).await;
    assert_eq!(run["status"], "error", "{run}");
    assert_eq!(run["reason"], "WorkerStopped", "{run}");
    let mut connection = redis.connection().await;
    let active: u64 = connection.llen("runs:active").await.unwrap();
    assert_eq!(active, 0, "the settled run is still in runs:active");
}

/// Output that Redis loses while a run goes on (a restart without it on
/// disk) is written again, so the final logs are whole.
#[tokio::test]
async fn lost_output_is_written_again() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "lost-output").start(&redis).await;
    let code = "import time\nprint('before', flush=True)\ntime.sleep(2)\nprint('after')\n";
    let id = service
        .submit_id(json!({"language": "python", "code": code, "timeout_seconds": 60}))
        .await;
    let started = Instant::now();
    while service.logs(&id).await != "before\n" {
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "the first line never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut connection = redis.connection().await;
    let _: () = connection.del(format!("run:{id}:logs")).await.unwrap();

    let run = service.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(service.logs(&id).await, "before\nafter\n");
}
