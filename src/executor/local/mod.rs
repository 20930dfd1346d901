//! The local executor: each run as a sandboxed child process of the worker,
//! for a machine with no cluster. It is not a sandbox for untrusted code.

pub mod sandbox;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use super::{DispatchError, Dispatched, Executor};
use crate::config::Config;
use crate::executor::output::OutputCapture;
use crate::metrics;
use crate::run::{format_timestamp, RunFields, RunStatus};
use crate::store::{RunSpec, RunStore};
use sandbox::{Limits, Support};

/// How often new output is appended to the run's logs in Redis.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Bounds of the pause between retries of a failed store write.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long output is still read after the program exits.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

pub struct LocalExecutor {
    store: Arc<RunStore>,
    worker_id: String,
    node: String,
    max_log_bytes: usize,
    memory_bytes: u64,
    support: Support,
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Set when shutdown begins: no new program starts after it.
    draining: AtomicBool,
    shutting_down: CancellationToken,
    /// Counter behind the per-run user ids.
    next_user: AtomicU32,
    /// Parent of the run directories of this worker.
    runs_dir: std::path::PathBuf,
}

/// End of a supervised program.
#[derive(Debug)]
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
    ShutDown,
}

impl LocalExecutor {
    pub fn new(config: &Config, store: Arc<RunStore>) -> Self {
        let support = Support::probe();
        if support.namespaces {
            info!(
                user_namespace = support.user_namespace,
                drop_user = support.drop_user,
                "local executor runs programs without network, in their own PID namespace"
            );
        } else {
            warn!("the kernel denied new namespaces: local programs keep network access and can outlive their process group");
        }
        let runs_dir = prepare_runs_dir(&config.worker_id);
        let node = nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Self {
            store,
            worker_id: config.worker_id.clone(),
            node,
            max_log_bytes: config.run_max_log_bytes,
            memory_bytes: config.runner_memory_limit_bytes,
            support,
            running: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            shutting_down: CancellationToken::new(),
            next_user: AtomicU32::new(0),
            runs_dir,
        }
    }

    /// Writes the source into a fresh directory that only the run's user can
    /// enter, and returns the directory with the program's stdin. The stdin
    /// file is unlinked once open, so the program reads it only through the
    /// descriptor.
    fn prepare_workdir(
        &self,
        run: &RunSpec,
        user: Option<u32>,
    ) -> std::io::Result<(tempfile::TempDir, Option<std::fs::File>)> {
        use std::os::unix::fs::{chown, PermissionsExt};
        let private = |mode| std::fs::Permissions::from_mode(mode);

        let dir = tempfile::Builder::new()
            .prefix("run-")
            .permissions(private(0o700))
            .tempdir_in(&self.runs_dir)?;
        let source = dir.path().join(run.language.source_file());
        std::fs::write(&source, &run.code)?;
        std::fs::set_permissions(&source, private(0o400))?;
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        std::fs::set_permissions(&tmp, private(0o700))?;
        if let Some(uid) = user {
            for path in [dir.path(), source.as_path(), tmp.as_path()] {
                chown(path, Some(uid), Some(uid))?;
            }
        }

        let stdin = match &run.stdin {
            Some(text) => {
                let path = dir.path().join(".stdin");
                std::fs::write(&path, text)?;
                std::fs::set_permissions(&path, private(0o600))?;
                let file = std::fs::File::open(&path)?;
                std::fs::remove_file(&path)?;
                Some(file)
            }
            None => None,
        };
        Ok((dir, stdin))
    }

    fn limits(&self, run: &RunSpec) -> Limits {
        Limits {
            cpu_seconds: run.timeout_seconds + 1,
            memory_bytes: self.memory_bytes,
            processes: 256,
            file_bytes: 16 << 20,
            open_files: 256,
        }
    }

    /// Runs the started program to its end and records the outcome.
    #[instrument(skip_all, fields(run_id = %run.id, worker = %self.worker_id))]
    async fn supervise(
        self: Arc<Self>,
        run: RunSpec,
        mut child: tokio::process::Child,
        mut reader: tokio::net::unix::pipe::Receiver,
        workdir: tempfile::TempDir,
        cancel: CancellationToken,
        started: Instant,
    ) {
        let mut capture = OutputCapture::new(self.max_log_bytes);
        let mut flushed = 0;
        let mut buffer = vec![0u8; 16 * 1024];
        let mut reader_open = true;
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        let deadline = tokio::time::sleep(Duration::from_secs(run.timeout_seconds));
        tokio::pin!(deadline);
        let mut stop: Option<Ending> = None;

        let status = loop {
            tokio::select! {
                read = reader.read(&mut buffer), if reader_open => match read {
                    Ok(0) | Err(_) => reader_open = false,
                    Ok(n) => capture.push(&buffer[..n]),
                },
                status = child.wait() => break status,
                _ = &mut deadline, if stop.is_none() => {
                    stop = Some(Ending::TimedOut);
                    kill_group(&child);
                }
                _ = cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Ending::Cancelled);
                    kill_group(&child);
                }
                _ = self.shutting_down.cancelled(), if stop.is_none() => {
                    stop = Some(Ending::ShutDown);
                    kill_group(&child);
                }
                _ = flush.tick() => flushed = self.flush_logs(&run.id, &capture, flushed).await,
            }
        };
        let finished_at = Utc::now();
        // Whatever the program left behind in its process group goes with it.
        kill_group(&child);

        // Output written just before exit is still in the pipe.
        let drain = async {
            while reader_open {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => reader_open = false,
                    Ok(n) => capture.push(&buffer[..n]),
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
        capture.finish();
        // The final output and state must reach Redis even across an outage.
        let mut backoff = RETRY_MIN;
        while flushed < capture.len() {
            let now_flushed = self.flush_logs(&run.id, &capture, flushed).await;
            if now_flushed == flushed && !self.pause_before_retry(&mut backoff).await {
                break;
            }
            flushed = now_flushed;
        }
        drop(workdir);

        let ending = match (stop, status) {
            (Some(ending), _) => ending,
            (None, Ok(status)) => Ending::Exited(status),
            (None, Err(error)) => {
                warn!(%error, "waiting for the program failed");
                Ending::ShutDown
            }
        };
        debug!(
            ?ending,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "program ended"
        );
        self.settle(
            &run,
            ending,
            finished_at,
            started.elapsed(),
            capture.truncated(),
        )
        .await;
        self.running
            .lock()
            .expect("running map lock")
            .remove(&run.id);
    }

    /// Writes output not yet stored; returns the new stored length.
    async fn flush_logs(&self, run_id: &str, capture: &OutputCapture, flushed: usize) -> usize {
        if capture.len() == flushed {
            return flushed;
        }
        match self
            .store
            .write_logs_at(run_id, flushed, &capture.text().as_bytes()[flushed..])
            .await
        {
            Ok(stored) if stored < flushed => {
                // Redis lost output it had stored (a restart without it on disk).
                warn!(
                    run_id,
                    stored,
                    expected = flushed,
                    "stored output was lost; writing it again"
                );
                stored
            }
            Ok(stored) => stored,
            Err(error) => {
                // The next flush retries the same bytes.
                warn!(run_id, %error, "storing program output failed");
                flushed
            }
        }
    }

    async fn settle(
        &self,
        run: &RunSpec,
        ending: Ending,
        finished_at: chrono::DateTime<Utc>,
        ran_for: Duration,
        truncated: bool,
    ) {
        let mut fields = RunFields {
            finished_at: Some(format_timestamp(finished_at)),
            logs_truncated: Some(truncated),
            ..RunFields::default()
        };
        let status = match ending {
            Ending::Exited(status) => match (status.code(), status.signal()) {
                (Some(0), _) => {
                    fields.exit_code = Some(0);
                    RunStatus::Succeeded
                }
                (Some(code), _) => {
                    fields.exit_code = Some(code);
                    fields.reason = Some("NonZeroExit".into());
                    fields.message = Some(format!("the program exited with code {code}"));
                    RunStatus::Failed
                }
                (None, Some(signal)) if cpu_limit_hit(signal, run.timeout_seconds + 1, ran_for) => {
                    fields.exit_code = Some(128 + signal);
                    fields.reason = Some("CpuTimeLimitExceeded".into());
                    fields.message = Some(format!(
                        "the program used more than {} s of CPU time",
                        run.timeout_seconds + 1
                    ));
                    RunStatus::TimedOut
                }
                (None, signal) => {
                    let signal = signal.unwrap_or(0);
                    fields.exit_code = Some(128 + signal);
                    fields.reason = Some("Signal".into());
                    fields.message = Some(format!("the program was killed by signal {signal}"));
                    RunStatus::Failed
                }
            },
            Ending::TimedOut => {
                fields.reason = Some("DeadlineExceeded".into());
                fields.message = Some(format!(
                    "the program ran longer than its timeout of {} s",
                    run.timeout_seconds
                ));
                RunStatus::TimedOut
            }
            Ending::Cancelled => RunStatus::Cancelled,
            Ending::ShutDown => {
                fields.reason = Some("WorkerStopped".into());
                fields.message = Some("the worker shut down while the program was running".into());
                RunStatus::Error
            }
        };

        let mut backoff = RETRY_MIN;
        loop {
            match self.store.transition(&run.id, status, &fields).await {
                Ok(transition) if transition.applied => {
                    info!(run_id = %run.id, status = %status, "run finished");
                    metrics::record_finished(
                        run.language.as_str(),
                        status,
                        run.started_at.as_deref(),
                        &fields,
                    );
                }
                Ok(transition) => {
                    // Cancellation already settled the run; keep the output flag accurate.
                    debug!(run_id = %run.id, current = ?transition.previous, "final state was already set");
                    if let Err(error) = self.store.mark_logs_truncated(&run.id, truncated).await {
                        warn!(run_id = %run.id, %error, "recording logs_truncated failed");
                    }
                }
                Err(error) => {
                    warn!(run_id = %run.id, %error, "recording the final state failed; retrying");
                    if self.pause_before_retry(&mut backoff).await {
                        continue;
                    }
                    // Another worker's recovery settles the run once this one's heartbeat expires.
                    warn!(run_id = %run.id, "worker stopping before the final state was stored");
                }
            }
            break;
        }
    }

    /// Waits before retrying a store write; false when the worker is stopping instead.
    async fn pause_before_retry(&self, backoff: &mut Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = self.shutting_down.cancelled() => return false,
        }
        *backoff = (*backoff * 2).min(RETRY_MAX);
        true
    }
}

/// Tells whether a signal came from the CPU-time limit: SIGXCPU at the soft
/// limit, or SIGKILL at the hard one, which cannot come before the program
/// could have used that much CPU on every core of the machine. Any other
/// SIGKILL came from outside, such as the kernel's OOM killer.
fn cpu_limit_hit(signal: i32, cpu_seconds: u64, ran_for: Duration) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as u64;
    signal == libc::SIGXCPU
        || (signal == libc::SIGKILL && ran_for.as_secs_f64() * cores as f64 >= cpu_seconds as f64)
}

/// Creates this worker's parent of run directories, removing what an earlier
/// process with the same worker id left after a crash. Others may pass
/// through it (mode 0711) but not list it.
fn prepare_runs_dir(worker_id: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("code-runner-{worker_id}"));
    if dir.exists() {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                info!(worker = worker_id, path = %dir.display(), "removed run directories left by an earlier process")
            }
            Err(error) => {
                warn!(worker = worker_id, path = %dir.display(), %error, "removing old run directories failed")
            }
        }
    }
    if let Err(error) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)))
    {
        warn!(worker = worker_id, path = %dir.display(), %error, "creating the run directory parent failed");
    }
    dir
}

fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // The init step called setsid, so its pid is also its process group id.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[async_trait::async_trait]
impl Executor for Arc<LocalExecutor> {
    fn name(&self) -> &'static str {
        "local"
    }

    #[instrument(skip_all, fields(run_id = %run.id, worker = %self.worker_id))]
    async fn dispatch(&self, mut run: RunSpec) -> Result<Dispatched, DispatchError> {
        if self.draining.load(Ordering::SeqCst) {
            // The consumer leaves the id in its processing list for the next worker.
            return Err(DispatchError::Retryable(
                "the worker is shutting down".into(),
            ));
        }
        let dispatched = self
            .store
            .transition_with(
                &run.id,
                RunStatus::Dispatched,
                &RunFields {
                    dispatched_at: Some(format_timestamp(Utc::now())),
                    worker: Some(self.worker_id.clone()),
                    ..RunFields::default()
                },
                &[("executor", "local")],
            )
            .await
            .map_err(|error| DispatchError::Retryable(error.to_string()))?;
        if !dispatched.applied {
            debug!(current = ?dispatched.previous, "run left the queued state before dispatch");
            return Ok(Dispatched { completion: None });
        }

        let user = self.support.drop_user.then(|| {
            let slot = self.next_user.fetch_add(1, Ordering::Relaxed) % sandbox::RUN_UIDS;
            sandbox::FIRST_RUN_UID + slot
        });
        let (workdir, stdin) = self.prepare_workdir(&run, user).map_err(|error| {
            DispatchError::Permanent(format!("preparing the run directory failed: {error}"))
        })?;
        let (reader, writer) = std::io::pipe().map_err(|error| {
            DispatchError::Permanent(format!("creating the output pipe failed: {error}"))
        })?;
        let writer_copy = writer.try_clone().map_err(|error| {
            DispatchError::Permanent(format!("creating the output pipe failed: {error}"))
        })?;

        let source = run.language.source_file();
        let mut command = sandbox::command(
            self.support,
            self.limits(&run),
            workdir.path(),
            user,
            run.language.interpreter(),
            &[source],
        )
        .map_err(|error| {
            DispatchError::Permanent(format!("locating the code-runner binary failed: {error}"))
        })?;
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", workdir.path())
            .env("TMPDIR", workdir.path().join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null))
            .stdout(writer_copy)
            .stderr(writer);

        let started = Instant::now();
        let child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                return Err(DispatchError::Permanent(format!(
                    "starting {} failed: {error}",
                    run.language.interpreter()
                )))
            }
        };
        let reader =
            tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()).map_err(|error| {
                DispatchError::Permanent(format!("reading the output pipe failed: {error}"))
            })?;

        let started_at = format_timestamp(Utc::now());
        run.started_at = Some(started_at.clone());
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .expect("running map lock")
            .insert(run.id.clone(), cancel.clone());
        match self
            .store
            .transition(
                &run.id,
                RunStatus::Running,
                &RunFields {
                    started_at: Some(started_at),
                    node: Some(self.node.clone()),
                    ..RunFields::default()
                },
            )
            .await
        {
            Ok(transition) if transition.applied => {
                info!("program started");
                metrics::record_started(
                    run.language.as_str(),
                    &run.created_at,
                    run.dispatched_at.as_deref(),
                );
            }
            // Cancelled between dispatch and start: stop it at once.
            Ok(_) => cancel.cancel(),
            Err(error) => warn!(%error, "recording the running state failed"),
        }

        let completion = Arc::clone(self)
            .supervise(run, child, reader, workdir, cancel, started)
            .boxed();
        Ok(Dispatched {
            completion: Some(completion),
        })
    }

    async fn recover(&self, run: RunSpec) -> Result<(), DispatchError> {
        let fields = RunFields {
            finished_at: Some(format_timestamp(Utc::now())),
            reason: Some("WorkerStopped".into()),
            message: Some("the worker running this program stopped before it finished".into()),
            ..RunFields::default()
        };
        let transition = self
            .store
            .transition(&run.id, RunStatus::Error, &fields)
            .await
            .map_err(|error| DispatchError::Retryable(error.to_string()))?;
        if transition.applied {
            warn!(run_id = %run.id, worker = ?run.worker, "settled a run whose local worker stopped");
            metrics::record_finished(
                run.language.as_str(),
                RunStatus::Error,
                run.started_at.as_deref(),
                &fields,
            );
        }
        Ok(())
    }

    async fn cancel(&self, run_id: &str) {
        let token = self
            .running
            .lock()
            .expect("running map lock")
            .get(run_id)
            .cloned();
        if let Some(token) = token {
            info!(run_id, worker = %self.worker_id, "stopping cancelled program");
            token.cancel();
        }
    }

    async fn shutdown(&self, grace: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && !self.running.lock().expect("running map lock").is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shutting_down.cancel();
    }
}
