//! Black-box tests of the command-line client: the real binary's `submit`,
//! `runs`, `cancel` and `logs` against `code-runner dev` and a private Redis.

mod common;

use std::path::Path;
use std::process::Output;

use common::{free_port, service, Mode, RedisServer, Service};

/// Runs `code-runner ARGS` as a client of `server_url` and waits for it to exit.
async fn client(server_url: &str, args: &[&str], dir: &Path) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_code-runner"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("CODE_RUNNER_URL", server_url)
        .output();
    tokio::time::timeout(common::DEADLINE, output)
        .await
        .expect("the client finishes in time")
        .expect("the client binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

async fn start() -> (RedisServer, Service, tempfile::TempDir) {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "cli").start(&redis).await;
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    (redis, service, dir)
}

#[tokio::test]
async fn submit_follow_prints_output_and_exit_code() {
    let (_redis, service, dir) = start().await;
    std::fs::write(
        dir.path().join("hello.py"),
        "import sys\nprint('hello', sys.stdin.read().strip())\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("input.txt"), "from stdin\n").unwrap();

    let output = client(
        &service.url(""),
        &["submit", "hello.py", "--stdin", "input.txt", "--follow"],
        dir.path(),
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "hello from stdin\n");
}

#[tokio::test]
async fn submit_follow_exits_with_program_status() {
    let (_redis, service, dir) = start().await;
    std::fs::write(
        dir.path().join("exit3.js"),
        "console.log('before exit'); process.exit(3);\n",
    )
    .unwrap();

    let output = client(
        &service.url(""),
        &["submit", "exit3.js", "--follow"],
        dir.path(),
    )
    .await;

    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "before exit\n");
}

#[tokio::test]
async fn submit_follow_exits_124_on_timeout() {
    let (_redis, service, dir) = start().await;
    std::fs::write(
        dir.path().join("slow.txt"),
        "import time\nprint('started', flush=True)\ntime.sleep(30)\n",
    )
    .unwrap();

    let output = client(
        &service.url(""),
        &[
            "submit",
            "slow.txt",
            "--language",
            "python",
            "--timeout",
            "1",
            "--follow",
        ],
        dir.path(),
    )
    .await;

    assert_eq!(output.status.code(), Some(124), "{}", describe(&output));
    assert_eq!(text(&output.stdout), "started\n");
    assert!(
        text(&output.stderr).contains("timed out"),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn submit_without_follow_prints_run_id() {
    let (_redis, service, dir) = start().await;
    std::fs::write(dir.path().join("one.py"), "print(1)\n").unwrap();

    let output = client(&service.url(""), &["submit", "one.py"], dir.path()).await;

    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let id = text(&output.stdout).trim().to_string();
    assert_eq!(id.len(), 26, "{}", describe(&output));
    let run = service.wait_finished(&id).await;
    assert_eq!(run["status"], "succeeded");

    let logs = client(&service.url(""), &["logs", &id], dir.path()).await;
    assert_eq!(logs.status.code(), Some(0), "{}", describe(&logs));
    assert_eq!(text(&logs.stdout), "1\n");

    let runs = client(
        &service.url(""),
        &["runs", "--status", "succeeded"],
        dir.path(),
    )
    .await;
    assert_eq!(runs.status.code(), Some(0), "{}", describe(&runs));
    let table = text(&runs.stdout);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&id), "{table}");
}

#[tokio::test]
async fn rejected_request_prints_api_message() {
    let (_redis, service, dir) = start().await;
    std::fs::write(dir.path().join("prog.py"), "print(1)\n").unwrap();

    let output = client(
        &service.url(""),
        &["submit", "prog.py", "--language", "cobol"],
        dir.path(),
    )
    .await;

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("language must be one of"), "{stderr}");
    assert!(stderr.contains("field: language"), "{stderr}");
}

#[tokio::test]
async fn cancel_stops_running_program() {
    let (_redis, service, dir) = start().await;
    let id = service
        .submit_id(serde_json::json!({
            "language": "python",
            "code": "import time\ntime.sleep(60)",
            "timeout_seconds": 120
        }))
        .await;
    service.wait_status(&id, "running").await;

    let output = client(&service.url(""), &["cancel", &id], dir.path()).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("cancelled"),
        "{}",
        describe(&output)
    );

    let again = client(&service.url(""), &["cancel", &id], dir.path()).await;
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        text(&again.stderr).contains("nothing to cancel"),
        "{}",
        describe(&again)
    );
    // `cancel` leaves a finished run in place (DELETE would remove it).
    assert_eq!(service.run(&id).await["status"], "cancelled");
}

#[tokio::test]
async fn missing_token_names_option() {
    let redis = RedisServer::start().await;
    let service = service(Mode::Dev, "cli-token")
        .env("API_TOKENS", "cli-test-token-0123456789")
        .start(&redis)
        .await;
    let dir = tempfile::tempdir().unwrap();

    let output = client(&service.url(""), &["runs"], dir.path()).await;

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("CODE_RUNNER_TOKEN"), "{stderr}");

    let output = client(
        &service.url(""),
        &["runs", "--token", "cli-test-token-0123456789"],
        dir.path(),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        text(&output.stdout).starts_with("ID "),
        "{}",
        describe(&output)
    );
}

#[tokio::test]
async fn unreachable_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prog.py"), "print(1)\n").unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());

    let output = client(&url, &["submit", "prog.py", "--follow"], dir.path()).await;

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("CODE_RUNNER_URL"), "{stderr}");
}
