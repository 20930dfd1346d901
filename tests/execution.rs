//! Black-box tests of running programs with `code-runner dev`: output, exit
//! codes, stdin, timeouts, output limits, cancellation and concurrency.

mod common;

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use common::{host_output, pgrep, service, unique, Mode, RedisServer, Service, DEADLINE};
use serde_json::{json, Value};

async fn dev(redis: &RedisServer, name: &str) -> Service {
    service(Mode::Dev, name).start(redis).await
}

/// Returns a run's `started_at` and `finished_at` as parsed timestamps.
fn run_interval(run: &Value) -> (DateTime<FixedOffset>, DateTime<FixedOffset>) {
    let timestamp = |name: &str| {
        DateTime::parse_from_rfc3339(run[name].as_str().unwrap_or_default())
            .unwrap_or_else(|error| panic!("{name} is RFC 3339 ({error}): {run}"))
    };
    (timestamp("started_at"), timestamp("finished_at"))
}

/// Returns milliseconds between the run's `started_at` and `finished_at`.
fn measured_millis(run: &Value) -> i64 {
    let (started, finished) = run_interval(run);
    (finished - started).num_milliseconds()
}

const PYTHON_FIZZBUZZ: &str = r#"
for i in range(1, 101):
    if i % 15 == 0:
        print("FizzBuzz")
    elif i % 3 == 0:
        print("Fizz")
    elif i % 5 == 0:
        print("Buzz")
    else:
        print(i)
"#;

const JAVASCRIPT_FIZZBUZZ: &str = r#"
for (let i = 1; i <= 100; i++) {
  let line = "";
  if (i % 3 === 0) line += "Fizz";
  if (i % 5 === 0) line += "Buzz";
  console.log(line || String(i));
}
"#;

#[tokio::test]
async fn hello_world_succeeds() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "hello").await;
    let cases = [
        ("python", r#"print("Hello from k3s")"#),
        ("javascript", r#"console.log("Hello from k3s")"#),
    ];

    for (language, code) in cases {
        let (run, logs) = service
            .run_to_end(json!({"language": language, "code": code}))
            .await;

        assert_eq!(run["status"], "succeeded", "{language}: {run}");
        assert_eq!(run["exit_code"], 0, "{language}: {run}");
        assert_eq!(run["reason"], Value::Null, "{language}: {run}");
        assert_eq!(run["logs_truncated"], false, "{language}: {run}");
        assert_eq!(logs, "Hello from k3s\n", "{language}");
        assert_eq!(run["language"], language, "{run}");
        assert_eq!(run["timeout_seconds"], 30, "{run}");
        for field in [
            "created_at",
            "dispatched_at",
            "started_at",
            "finished_at",
            "node",
        ] {
            assert!(run[field].is_string(), "{language}: {field} in {run}");
        }
        for field in ["queue_wait_ms", "duration_ms"] {
            assert!(run[field].is_u64(), "{language}: {field} in {run}");
        }
    }
}

#[tokio::test]
async fn fizzbuzz_matches_host_interpreters() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "fizzbuzz").await;
    let cases = [
        ("python", "python3", "main.py", PYTHON_FIZZBUZZ),
        ("javascript", "node", "main.js", JAVASCRIPT_FIZZBUZZ),
    ];

    for (language, interpreter, file_name, code) in cases {
        let expected = host_output(interpreter, file_name, code);
        assert_eq!(expected.iter().filter(|&&b| b == b'\n').count(), 100);

        let id = service
            .submit_id(json!({"language": language, "code": code}))
            .await;
        let run = service.wait_finished(&id).await;
        let logs = service.logs_bytes(&id).await;

        assert_eq!(run["status"], "succeeded", "{language}: {run}");
        assert_eq!(
            String::from_utf8_lossy(&logs),
            String::from_utf8_lossy(&expected),
            "{language}: output differs from the host's {interpreter}"
        );
        assert_eq!(logs, expected, "{language}: bytes differ");
    }
}

#[tokio::test]
async fn stdin_reaches_the_program() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "stdin").await;
    let stdin = "first line\nsecond line é\n";
    let cases = [
        ("python", "import sys\nsys.stdout.write(sys.stdin.read())"),
        ("javascript", "process.stdin.pipe(process.stdout);"),
    ];

    for (language, code) in cases {
        let (run, logs) = service
            .run_to_end(json!({"language": language, "code": code, "stdin": stdin}))
            .await;

        assert_eq!(run["status"], "succeeded", "{language}: {run}");
        assert_eq!(logs, stdin, "{language}");
    }
}

#[tokio::test]
async fn absent_stdin_reads_as_eof() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "no-stdin").await;

    // input() must see end of file at once, not wait for the timeout.
    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "name = input()\nprint(name)", "timeout_seconds": 20}))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["exit_code"], 1, "{run}");
    assert!(logs.contains("Traceback"), "{logs}");
    assert!(logs.contains("EOFError"), "{logs}");

    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "import sys\nprint(repr(sys.stdin.read()))", "timeout_seconds": 20}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(logs, "''\n");
}

#[tokio::test]
async fn nonzero_exit_fails_with_code() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "exit-code").await;

    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "import sys\nprint('bye')\nsys.exit(3)"}))
        .await;

    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["exit_code"], 3, "{run}");
    assert_eq!(run["reason"], "NonZeroExit", "{run}");
    assert!(run["message"].is_string(), "{run}");
    assert_eq!(logs, "bye\n");
}

#[tokio::test]
async fn syntax_error_fails_with_traceback() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "syntax-error").await;

    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "def broken(:\n    pass\n"}))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["reason"], "NonZeroExit", "{run}");
    assert_ne!(run["exit_code"], 0, "{run}");
    assert!(logs.contains("SyntaxError"), "{logs}");

    let (run, logs) = service
        .run_to_end(json!({"language": "javascript", "code": "function broken( {"}))
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(logs.contains("SyntaxError"), "{logs}");
}

#[tokio::test]
async fn endless_programs_time_out() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "timeout").await;
    let timeout_seconds = 2;
    let cases = [
        ("python", "while True:\n    pass\n"),
        ("python", "import time\ntime.sleep(600)\n"),
        ("javascript", "while (true) {}"),
        ("javascript", "setTimeout(() => {}, 600000);"),
    ];

    let mut ids = Vec::new();
    for (language, code) in cases {
        let id = service
            .submit_id(
                json!({"language": language, "code": code, "timeout_seconds": timeout_seconds}),
            )
            .await;
        ids.push((language, code, id));
    }
    for (language, code, id) in ids {
        let run = service.wait_finished(&id).await;

        assert_eq!(run["status"], "timed_out", "{language} {code:?}: {run}");
        assert!(run["reason"].is_string(), "{run}");
        let elapsed = measured_millis(&run);
        assert!(
            elapsed <= (timeout_seconds + 2) * 1000,
            "{language} {code:?} ran {elapsed} ms with a {timeout_seconds} s timeout: {run}"
        );
        assert!(
            elapsed >= timeout_seconds * 1000 - 100,
            "{language} {code:?} stopped after {elapsed} ms, before its timeout: {run}"
        );
    }
}

#[tokio::test]
async fn output_flood_is_capped() {
    let redis = RedisServer::start().await;
    let limit = 65_536;
    let service = service(Mode::Dev, "flood")
        .env("RUN_MAX_LOG_BYTES", limit)
        .start(&redis)
        .await;
    // About 100 MB of output in two-byte characters, so the cap must fall
    // on a character boundary.
    let code = "import sys\nline = 'é' * 50 + '\\n'\nfor _ in range(1_000_000):\n    sys.stdout.write(line)\n";

    let id = service
        .submit_id(json!({"language": "python", "code": code, "timeout_seconds": 120}))
        .await;
    let mut max_rss = service.rss_bytes();
    let run = loop {
        let run = service.run(&id).await;
        max_rss = max_rss.max(service.rss_bytes());
        if !matches!(
            run["status"].as_str(),
            Some("queued" | "dispatched" | "pending" | "running")
        ) {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let response = service
        .http()
        .get(service.url(&format!("/runs/{id}/logs")))
        .send()
        .await
        .unwrap();
    let truncated_header = response.headers().get("x-logs-truncated").cloned();
    let logs = response.bytes().await.unwrap();

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["logs_truncated"], true, "{run}");
    assert_eq!(truncated_header.unwrap(), "true");
    assert!(logs.len() <= limit, "{} bytes of logs", logs.len());
    assert!(logs.len() >= limit - 4, "{} bytes of logs", logs.len());
    let text = std::str::from_utf8(&logs).expect("capped logs are valid UTF-8");
    assert!(text.starts_with(&format!("{}\n", "é".repeat(50))));
    assert!(
        max_rss < 300 << 20,
        "the service used {} MiB of memory",
        max_rss >> 20
    );
}

#[tokio::test]
async fn memory_hog_fails_without_harm() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "memory-hog").await;

    // The default memory limit is 256 MiB, so 2 GiB cannot be allocated.
    let (run, logs) = service
        .run_to_end(
            json!({"language": "python", "code": "block = bytearray(2 << 30)\nprint(len(block))"}),
        )
        .await;

    assert_eq!(run["status"], "failed", "{run}");
    assert!(logs.contains("MemoryError"), "{logs}");
    let (run, _) = service
        .run_to_end(json!({"language": "python", "code": "print('still serving')"}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

#[tokio::test]
async fn invalid_utf8_output_is_replaced() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "binary-output").await;
    let code = "import sys\nsys.stdout.buffer.write(b'\\xff\\x00ok')\nsys.stdout.flush()\n";

    let id = service
        .submit_id(json!({"language": "python", "code": code}))
        .await;
    let run = service.wait_finished(&id).await;
    let logs = service.logs_bytes(&id).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    let text = String::from_utf8(logs).expect("logs are valid UTF-8");
    assert_eq!(text, "\u{FFFD}\u{0}ok");

    // The run list, which serializes every run, is still valid JSON.
    let list: Value = service
        .http()
        .get(service.url("/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("GET /runs returns valid JSON");
    assert_eq!(list["runs"][0]["id"], id.as_str());
}

#[tokio::test]
async fn cancelled_queued_run_never_executes() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "cancel-queued")
        .env("WORKER_CONCURRENCY", 1)
        .start(&redis)
        .await;

    // The only consumer is busy with this run until it is cancelled.
    let blocker = service
        .submit_id(json!({"language": "python", "code": "import time\ntime.sleep(600)", "timeout_seconds": 120}))
        .await;
    service.wait_status(&blocker, "running").await;
    let queued = service
        .submit_id(json!({"language": "python", "code": "print('should never run')"}))
        .await;
    assert_eq!(service.run(&queued).await["status"], "queued");
    assert_eq!(redis.queue_len().await, 1);

    let response = service
        .http()
        .delete(service.url(&format!("/runs/{queued}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(redis.queue_len().await, 0);

    // Free the consumer, and prove it is free by running one more program.
    let response = service
        .http()
        .delete(service.url(&format!("/runs/{blocker}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (after, logs) = service
        .run_to_end(json!({"language": "python", "code": "print('after')"}))
        .await;
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(logs, "after\n");

    let run = service.run(&queued).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["dispatched_at"], Value::Null, "{run}");
    assert_eq!(run["started_at"], Value::Null, "{run}");
    assert_eq!(service.logs_bytes(&queued).await, b"");
    let statuses: Vec<String> = redis
        .events()
        .await
        .into_iter()
        .filter(|(run_id, _)| *run_id == queued)
        .map(|(_, status)| status)
        .collect();
    assert_eq!(statuses, ["queued", "cancelled"]);
}

#[tokio::test]
async fn cancelled_run_leaves_no_process() {
    let redis = RedisServer::start().await;
    let service = dev(&redis, "cancel-running").await;
    let marker = unique("cancel-marker");
    // Children that ignore SIGTERM, one of them in its own session; each
    // carries the marker on its command line for pgrep.
    let code = format!(
        r#"
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)  # {marker}"
for detach in (False, False, True):
    if os.fork() == 0:
        if detach:
            os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", child])
print("children started", flush=True)
time.sleep(600)
"#
    );

    let id = service
        .submit_id(json!({"language": "python", "code": code, "timeout_seconds": 120}))
        .await;
    service
        .wait_for(&id, "three marked processes", |run| {
            run["status"] == "running" && pgrep(&marker).len() == 3
        })
        .await;

    let response = service
        .http()
        .delete(service.url(&format!("/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");

    let started = std::time::Instant::now();
    while !pgrep(&marker).is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pgrep(&marker),
        Vec::<u32>::new(),
        "processes of the cancelled run still exist"
    );
    let run = service.run(&id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(service.logs(&id).await, "children started\n");
}

#[tokio::test]
async fn hundred_concurrent_runs_succeed() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "concurrent")
        .env("WORKER_CONCURRENCY", 8)
        .start(&redis)
        .await;

    let submissions = (0..100).map(|index| {
        let body = if index % 2 == 0 {
            json!({"language": "python", "code": format!("print('run {index}')")})
        } else {
            json!({"language": "javascript", "code": format!("console.log('run {index}')")})
        };
        let service = &service;
        async move { (index, service.submit_id(body).await) }
    });
    let ids = futures::future::join_all(submissions).await;

    let checks = ids.iter().map(|(index, id)| {
        let service = &service;
        async move {
            let run = service.wait_finished(id).await;
            let logs = service.logs(id).await;
            (*index, run, logs)
        }
    });
    let results = tokio::time::timeout(DEADLINE * 2, futures::future::join_all(checks))
        .await
        .expect("all runs finish");

    for (index, run, logs) in results {
        assert_eq!(run["status"], "succeeded", "run {index}: {run}");
        assert_eq!(logs, format!("run {index}\n"), "run {index}");
    }
}

#[tokio::test]
async fn worker_concurrency_bounds_running_programs() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "concurrency-bound")
        .env("WORKER_CONCURRENCY", 2)
        .start(&redis)
        .await;

    let mut ids = Vec::new();
    for _ in 0..6 {
        let id = service
            .submit_id(json!({"language": "python", "code": "import time\ntime.sleep(1)"}))
            .await;
        ids.push(id);
    }
    let mut intervals = Vec::new();
    for id in &ids {
        let run = service.wait_finished(id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        intervals.push(run_interval(&run));
    }

    // The maximum number of programs running at once, from the service's own timestamps.
    let max_running = intervals
        .iter()
        .map(|(start, _)| {
            intervals
                .iter()
                .filter(|(other_start, other_end)| other_start <= start && start < other_end)
                .count()
        })
        .max()
        .unwrap();
    assert!(max_running <= 2, "{max_running} programs ran at once");
}

#[tokio::test]
async fn queue_runs_in_submission_order() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "fifo")
        .env("WORKER_CONCURRENCY", 1)
        .start(&redis)
        .await;
    let blocker = service
        .submit_id(json!({"language": "python", "code": "import time\ntime.sleep(600)", "timeout_seconds": 120}))
        .await;
    service.wait_status(&blocker, "running").await;

    let mut ids = Vec::new();
    for index in 0..5 {
        let id = service
            .submit_id(json!({"language": "python", "code": format!("print({index})")}))
            .await;
        ids.push(id);
    }
    let response = service
        .http()
        .delete(service.url(&format!("/runs/{blocker}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut starts = Vec::new();
    for id in &ids {
        let run = service.wait_finished(id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        starts.push(run_interval(&run).0);
    }
    assert!(
        starts.windows(2).all(|pair| pair[0] <= pair[1]),
        "runs started out of submission order: {starts:?}"
    );
}

/// An in-place upgrade replaces the executable of a running service, and the
/// local executor starts each program through its own binary.
#[tokio::test]
async fn programs_start_after_binary_is_replaced() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let executable = dir.path().join("code-runner");
    std::fs::hard_link(common::binary(), &executable).unwrap();
    let service = service(Mode::Dev, "replaced-binary")
        .binary(&executable)
        .start(&redis)
        .await;

    std::fs::remove_file(&executable).unwrap();
    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": "print('upgraded')"}))
        .await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(logs, "upgraded\n");
}

#[tokio::test]
async fn programs_are_isolated_from_the_service() {
    let redis = RedisServer::start().await;
    let token = "isolation-token-0123456789";
    let service = service(Mode::Dev, "isolation")
        .bearer_token(token)
        .start(&redis)
        .await;
    let code = format!(
        r#"
import os, socket
print("uid", os.getuid())
print("env", " ".join(sorted(os.environ)))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("redis reachable")
except OSError:
    print("redis unreachable")
"#,
        port = redis.port()
    );

    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": code}))
        .await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(logs.contains("redis unreachable"), "{logs}");
    for secret in ["API_TOKENS", "REDIS_URL", token] {
        assert!(!logs.contains(secret), "the program sees {secret}: {logs}");
    }
    if nix::unistd::Uid::effective().is_root() {
        assert!(
            !logs.contains("uid 0\n"),
            "the program runs as root: {logs}"
        );
    }
}

/// A program cannot read the code or stdin of another run on the same worker.
#[tokio::test]
async fn runs_cannot_read_each_other() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: separate users per run need the worker to run as root");
        return;
    }
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "cross-run")
        .env("WORKER_CONCURRENCY", 2)
        .start(&redis)
        .await;
    let secret = common::unique("secret-code");
    let victim = service
        .submit_id(json!({
            "language": "python",
            "code": format!("import time\n# {secret}\nprint('victim up', flush=True)\ntime.sleep(30)"),
            "stdin": "stdin-secret-value",
            "timeout_seconds": 60,
        }))
        .await;
    service.wait_status(&victim, "running").await;

    // The spy looks through its own parent directory, where the worker keeps
    // every run's directory.
    let spy = r#"
import glob, os
parent = os.path.dirname(os.getcwd())
found = []
for pattern in ["*/main.py", "*/.stdin", "*/*"]:
    for path in glob.glob(os.path.join(parent, pattern)):
        try:
            with open(path, "rb") as f:
                found.append(path + " " + f.read().decode("utf-8", "replace"))
        except OSError:
            pass
print("listing", sorted(os.listdir(parent)) if os.access(parent, os.R_OK) else "denied")
for item in found:
    print(item)
"#;
    let (run, logs) = service
        .run_to_end(json!({"language": "python", "code": spy}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}\n{logs}");
    assert!(
        !logs.contains(&secret),
        "a run read another run's code: {logs}"
    );
    assert!(
        !logs.contains("stdin-secret-value"),
        "a run read another run's stdin: {logs}"
    );

    let cancelled = service
        .http()
        .delete(service.url(&format!("/runs/{victim}")))
        .send()
        .await
        .expect("DELETE reaches the service");
    assert_eq!(cancelled.status(), 200);
}

/// A program that sends itself a fatal signal dies of it, although the
/// sandbox runs it in a PID namespace whose first process ignores such
/// signals.
#[tokio::test]
async fn self_signal_kills_the_program() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "self-signal").start(&redis).await;

    let (run, logs) = service
        .run_to_end(json!({
            "language": "python",
            "code": "import os, signal\nprint('before', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\nprint('after')",
        }))
        .await;

    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["reason"], "Signal", "{run}");
    assert_eq!(run["exit_code"], 128 + 15, "{run}");
    assert_eq!(logs, "before\n");
}
