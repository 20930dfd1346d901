//! Harness of the black-box tests: a private `redis-server` and the real
//! `code-runner` binary, each started on free loopback ports and killed on drop.
//!
//! Every test starts its own Redis, so tests never share or touch data that
//! they did not create. The service's stderr goes to a file under
//! `target/tmp/code-runner-tests/`, whose path is printed when a test fails.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use redis::AsyncCommands;
use serde_json::Value;

/// Maximum wait for anything the service does: start, a run to finish, a
/// recovery. Generous on purpose, so that a slow machine never fails a test.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Time allowed for one plain HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of every polling loop.
const POLL: Duration = Duration::from_millis(100);
const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// Attempts to start a server before giving up, in case another process took
/// the free port between probing it and binding it.
const START_ATTEMPTS: usize = 3;

static LOG_COUNTER: AtomicUsize = AtomicUsize::new(0);
static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Returns the path of the `code-runner` binary that the tests start.
///
/// Cargo replaces `target/debug/code-runner` whenever anyone rebuilds, and a
/// process whose executable was replaced can no longer start its sandbox
/// init step. A hard link of this test process's own keeps the binary under
/// test in place for the whole run.
pub fn binary() -> &'static Path {
    BINARY.get_or_init(link_binary)
}

fn link_binary() -> PathBuf {
    let built = Path::new(env!("CARGO_BIN_EXE_code-runner"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("code-runner-tests/bin");
    std::fs::create_dir_all(&dir).expect("the test binary directory can be created");
    remove_stale_links(&dir);
    let link = dir.join(format!("code-runner-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    match std::fs::hard_link(built, &link) {
        Ok(()) => link,
        // NOTE: without a link, a rebuild during the run can fail runs.
        Err(_) => built.to_path_buf(),
    }
}

/// Removes binary links left by test processes that no longer exist.
fn remove_stale_links(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("code-runner-"))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral loopback port succeeds")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Returns a new file path under `target/tmp/code-runner-tests/` for a process log.
fn log_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("code-runner-tests");
    std::fs::create_dir_all(&dir).expect("the test log directory can be created");
    let serial = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{name}-{}-{serial}.log", std::process::id()))
}

/// Returns the last `lines` lines of a log file, for failure messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `signal` to a child process, ignoring a process that is already gone.
fn send_signal(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
}

/// A `redis-server` of this test alone, with no persistence, in a temporary directory.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it replies to PING.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("code-runner-redis-")
            .tempdir()
            .expect("a temporary directory can be created");
        let log = log_path("redis");
        let mut server = Self {
            port: 0,
            dir,
            log,
            child: None,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if server.spawn().await {
                return server;
            }
        }
        panic!(
            "redis-server did not start; its log {}:\n{}",
            server.log.display(),
            log_tail(&server.log, 20)
        );
    }

    /// Spawns the server on `self.port` and returns whether it replies to PING in time.
    async fn spawn(&mut self) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the redis log file can be opened");
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a file handle can be cloned"))
            .stderr(log)
            .spawn()
            .expect("/usr/bin/redis-server can be started");
        self.child = Some(child);

        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if self.ping().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop();
        false
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Opens a connection for inspecting keys from the test.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("the Redis URL is valid")
            .get_multiplexed_async_connection()
            .await
            .expect("the test's Redis accepts connections")
    }

    /// Returns the length of `runs:queue`.
    pub async fn queue_len(&self) -> u64 {
        let mut connection = self.connection().await;
        connection
            .llen("runs:queue")
            .await
            .expect("LLEN runs:queue succeeds")
    }

    /// Returns the `(run_id, status)` pairs of every entry of `runs:events`, oldest first.
    pub async fn events(&self) -> Vec<(String, String)> {
        let mut connection = self.connection().await;
        let reply: redis::streams::StreamRangeReply = connection
            .xrange_all("runs:events")
            .await
            .expect("XRANGE runs:events succeeds");
        reply
            .ids
            .iter()
            .map(|entry| {
                (
                    entry.get::<String>("run_id").unwrap_or_default(),
                    entry.get::<String>("status").unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Kills the server at once, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes the data set to `dump.rdb` and then kills the server, so that
    /// `restart` brings the same data back.
    pub async fn save_and_stop(&mut self) {
        let mut connection = self.connection().await;
        let _: () = redis::cmd("SAVE")
            .query_async(&mut connection)
            .await
            .expect("SAVE succeeds");
        self.stop();
    }

    /// Starts the server again on the same port. The data set is empty
    /// unless `save_and_stop` stopped it.
    pub async fn restart(&mut self) {
        self.stop();
        let started = Instant::now();
        // The port was just released; retry in case the kernel still holds it.
        while started.elapsed() < Duration::from_secs(20) {
            if self.spawn().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "redis-server did not restart on port {}; its log {}:\n{}",
            self.port,
            self.log.display(),
            log_tail(&self.log, 20)
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `code-runner` subcommand to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dev,
    Api,
    Worker,
}

impl Mode {
    fn subcommand(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Api => "api",
            Mode::Worker => "worker",
        }
    }
}

/// Settings of a `code-runner` process before it starts.
pub struct ServiceBuilder {
    mode: Mode,
    name: String,
    env: Vec<(String, String)>,
    binary: Option<PathBuf>,
    token: Option<String>,
}

/// Starts building a `code-runner` process; `name` labels its log file.
pub fn service(mode: Mode, name: &str) -> ServiceBuilder {
    ServiceBuilder {
        mode,
        name: name.to_string(),
        env: Vec::new(),
        binary: None,
        token: None,
    }
}

impl ServiceBuilder {
    /// Sets an environment variable of the process.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets `API_TOKENS` to `token` and sends it as a bearer token with
    /// every request of the service's clients.
    pub fn bearer_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self.env("API_TOKENS", token)
    }

    /// Starts this executable in place of the shared link from [`binary`].
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Starts the process against `redis` and waits until its `/health` returns 200.
    pub async fn start(self, redis: &RedisServer) -> Service {
        let log = log_path(&format!("{}-{}", self.name, self.mode.subcommand()));
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let metrics_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let temp = temp_dir_for_programs();
            let child = self.spawn(redis, addr, metrics_addr, &log, temp.path());
            let mut service = Service {
                mode: self.mode,
                child: Some(child),
                addr,
                metrics_addr,
                log: log.clone(),
                temp,
                http: reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .default_headers(self.default_headers())
                    .build()
                    .expect("a reqwest client builds"),
                streaming: reqwest::Client::builder()
                    .default_headers(self.default_headers())
                    .build()
                    .expect("a reqwest client builds"),
            };
            if service.wait_healthy().await {
                return service;
            }
            // Exited early, most likely because another process took a port.
            service.kill();
        }
        panic!(
            "code-runner {} did not become healthy; its log {}:\n{}",
            self.mode.subcommand(),
            log.display(),
            log_tail(&log, 30)
        );
    }

    fn default_headers(&self) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .expect("a test token is a valid header value");
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        headers
    }

    fn spawn(
        &self,
        redis: &RedisServer,
        addr: SocketAddr,
        metrics_addr: SocketAddr,
        log: &Path,
        temp: &Path,
    ) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("the service log file can be opened");
        let mut command = Command::new(self.binary.as_deref().unwrap_or(binary()));
        command
            .arg(self.mode.subcommand())
            // A clean environment, so settings of the shell that runs the
            // tests (API_TOKENS, REDIS_URL, ...) cannot leak in.
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("RUST_LOG", "info,code_runner=debug")
            .env("NO_COLOR", "1")
            .env("REDIS_URL", redis.url())
            .env("LISTEN_ADDR", addr.to_string())
            .env("METRICS_ADDR", metrics_addr.to_string())
            // `api` and `worker` default to Kubernetes; these tests have no cluster.
            .env("EXECUTOR", "local")
            // Tests poll far faster than a client should, so the per-client
            // rate limit is off unless a test sets it.
            .env("RATE_LIMIT_PER_SECOND", "0")
            // The local executor creates each run's directory here, so a
            // process's working directory shows which service started it.
            .env("TMPDIR", temp);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a file handle can be cloned"))
            .stderr(log)
            .spawn()
            .expect("the code-runner binary can be started")
    }
}

/// A running `code-runner` process with an HTTP client for it.
pub struct Service {
    mode: Mode,
    child: Option<Child>,
    /// Address of the API (`LISTEN_ADDR`).
    pub addr: SocketAddr,
    /// Address of a worker's metrics and health listener (`METRICS_ADDR`).
    pub metrics_addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
    /// A client with no overall timeout, for streamed responses.
    streaming: reqwest::Client,
    /// The service's `TMPDIR`, under which its programs run.
    temp: tempfile::TempDir,
}

impl Service {
    /// Waits for `/health` to return 200. Returns false when the process exits first.
    async fn wait_healthy(&mut self) -> bool {
        let health = match self.mode {
            Mode::Worker => format!("http://{}/health", self.metrics_addr),
            Mode::Dev | Mode::Api => self.url("/health"),
        };
        let started = Instant::now();
        while started.elapsed() < DEADLINE {
            if self.try_exit_status().is_some() {
                return false;
            }
            if let Ok(response) = self.http.get(&health).send().await {
                if response.status() == reqwest::StatusCode::OK {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the service process is running")
            .id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Returns the client for plain requests, with a 30 s timeout per request.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Returns a client without an overall timeout, for streamed responses.
    pub fn streaming_http(&self) -> &reqwest::Client {
        &self.streaming
    }

    /// Polls `/ready` until it returns 200. Panics after [`DEADLINE`].
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let response = self.http.get(self.url("/ready")).send().await;
            let status = response.map(|response| response.status().as_u16());
            if matches!(status, Ok(200)) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "/ready returned {status:?} for {DEADLINE:?}; service log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Submits a run and returns the created run object. Panics unless the status is 201.
    pub async fn submit(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/runs"))
            .json(&body)
            .send()
            .await
            .expect("POST /runs gets a response");
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 201, "POST /runs with {body} returned {text}");
        let run: Value = serde_json::from_str(&text).expect("POST /runs returns JSON");
        let id = run["id"].as_str().expect("the created run has an id");
        assert_eq!(location, Some(format!("/runs/{id}")), "Location of {run}");
        run
    }

    /// Submits a run and returns its id.
    pub async fn submit_id(&self, body: Value) -> String {
        self.submit(body).await["id"]
            .as_str()
            .expect("the run id is a string")
            .to_string()
    }

    /// Reads `GET /runs/{id}`. Panics unless the status is 200.
    pub async fn run(&self, id: &str) -> Value {
        let response = self
            .http
            .get(self.url(&format!("/runs/{id}")))
            .send()
            .await
            .expect("GET /runs/{id} gets a response");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET /runs/{id} returned {text}");
        serde_json::from_str(&text).expect("GET /runs/{id} returns valid JSON")
    }

    /// Polls the run until its status is terminal and returns it.
    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_for(id, "a terminal status", |run| {
            matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "timed_out" | "cancelled" | "error")
            )
        })
        .await
    }

    /// Polls the run until it has `status` and returns it.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_for(id, status, |run| run["status"] == status)
            .await
    }

    /// Polls the run until `done` returns true. Panics after [`DEADLINE`].
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let run = self.run(id).await;
            if done(&run) {
                return run;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "run {id} did not reach {what} within {DEADLINE:?}; last seen: {run}\nservice log: {}",
                self.log.display()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reads `GET /runs/{id}/logs` as raw bytes. Panics unless the status is 200.
    pub async fn logs_bytes(&self, id: &str) -> Vec<u8> {
        let response = self
            .http
            .get(self.url(&format!("/runs/{id}/logs")))
            .send()
            .await
            .expect("GET /runs/{id}/logs gets a response");
        assert_eq!(response.status(), 200, "GET /runs/{id}/logs");
        response
            .bytes()
            .await
            .expect("the logs body can be read")
            .to_vec()
    }

    /// Reads the logs and checks that they are valid UTF-8.
    pub async fn logs(&self, id: &str) -> String {
        String::from_utf8(self.logs_bytes(id).await).expect("logs are valid UTF-8")
    }

    /// Submits a run, waits for its end, and returns the final run and its logs.
    pub async fn run_to_end(&self, body: Value) -> (Value, String) {
        let id = self.submit_id(body).await;
        let run = self.wait_finished(&id).await;
        let logs = self.logs(&id).await;
        (run, logs)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            send_signal(child.id(), signal);
        }
    }

    /// Returns the exit status if the process has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Waits up to `limit` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns the resident set size of the process in bytes, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status of the service can be read");
        let kilobytes: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("/proc/PID/status has a VmRSS line in kB");
        kilobytes * 1024
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        kill_processes_under(self.temp.path());
        if std::thread::panicking() {
            eprintln!(
                "code-runner {} log: {}",
                self.mode.subcommand(),
                self.log.display()
            );
        }
    }
}

/// Creates the `TMPDIR` of one service. Programs run as an unprivileged
/// user, so it must be searchable by everyone.
fn temp_dir_for_programs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("code-runner-test-")
        .tempdir()
        .expect("a temporary directory can be created");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("the temporary directory's mode can be set");
    dir
}

/// Kills every process whose working directory is under `dir`: the programs
/// of a service that was killed, which may outlive it.
pub fn kill_processes_under(dir: &Path) {
    // More than one pass, in case a program forked during the previous one.
    for _ in 0..3 {
        let mut found = false;
        for pid in processes_under(dir) {
            send_signal(pid, Signal::SIGKILL);
            found = true;
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Returns the ids of processes whose working directory is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// Checks an error response: its status, the JSON error shape and its code
/// and field. Returns the body for further checks.
pub async fn assert_error(
    context: &str,
    response: reqwest::Response,
    status: u16,
    code: &str,
    field: Option<&str>,
) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap_or_default();

    assert_eq!(
        actual, status,
        "{context}: status of a response with body {text}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{context}: content type {content_type:?} of an error with body {text}"
    );

    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{context}: the error body {text:?} is not JSON: {error}"));
    let error = &body["error"];
    let mut keys: Vec<&str> = error
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "field", "message"],
        "{context}: error keys in {body}"
    );
    assert_eq!(error["code"], code, "{context}: error code in {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: error message in {body}"
    );
    let expected_field = field.map_or(Value::Null, Value::from);
    assert_eq!(
        error["field"], expected_field,
        "{context}: error field in {body}"
    );
    body
}

/// One event of a server-sent event stream.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Reads a server-sent event stream to its end. Panics after [`DEADLINE`].
pub async fn read_sse(response: reqwest::Response) -> Vec<SseEvent> {
    let read = async {
        let mut events = Vec::new();
        let mut buffer = String::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("the event stream can be read");
            buffer.push_str(std::str::from_utf8(&chunk).expect("events are UTF-8"));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.event = name.trim().to_string();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                        has_data = true;
                    }
                }
                // Blocks without data are keep-alive comments.
                if has_data {
                    events.push(event);
                }
            }
        }
        events
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the event stream ends within the deadline")
}

/// Runs `source` with a host interpreter and returns its stdout followed by its stderr.
pub fn host_output(interpreter: &str, file_name: &str, source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let path = dir.path().join(file_name);
    std::fs::write(&path, source).expect("the source file can be written");
    let output = Command::new(interpreter)
        .arg(&path)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{interpreter} can be started: {error}"));
    assert!(output.status.success(), "{interpreter} ran {file_name}");
    let mut bytes = output.stdout;
    bytes.extend_from_slice(&output.stderr);
    bytes
}

/// Returns the process ids whose command line contains `marker`, from `pgrep -f`.
pub fn pgrep(marker: &str) -> Vec<u32> {
    let output = Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .expect("pgrep can be started");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// Returns a token unique to this call, for markers and idempotency keys.
pub fn unique(prefix: &str) -> String {
    let serial = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{serial}-{nanos}", std::process::id())
}
