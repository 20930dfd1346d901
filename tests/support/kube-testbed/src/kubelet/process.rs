//! Host processes that replace containers: spawning in a process group
//! with stdout and stderr merged into the log, and termination.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use super::logs::LogWriter;
use super::workspace::HostCommand;

/// A started container process.
pub struct ContainerProcess {
    pub child: tokio::process::Child,
    pub process_group: Pid,
    pub started_at: DateTime<Utc>,
    output: JoinHandle<()>,
}

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, or 128 plus the signal number for a killed process.
    pub code: i32,
}

/// Starts `command` in a new process group with stdin empty and both stdout
/// and stderr written into one pipe, so the log keeps their order.
pub fn spawn(command: &HostCommand, mut log: LogWriter) -> std::io::Result<ContainerProcess> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let child = {
        let stderr_end: OwnedFd = write_end.try_clone()?;
        let mut process = tokio::process::Command::new(&command.program);
        process
            .args(&command.args)
            .env_clear()
            .envs(&command.env)
            .current_dir(&command.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::from(stderr_end))
            .process_group(0);
        if let Some(user) = command.user {
            process.uid(user);
        }
        if let Some(group) = command.group {
            process.gid(group);
        }
        // The command, and with it the parent's copies of the write end, is
        // dropped at the end of this block, so the reader sees end of file
        // once every process of the group has closed its copies.
        process.spawn()?
    };
    let started_at = Utc::now();
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("spawned process has no pid"))?;

    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
    let output = tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) => break,
                Ok(count) => {
                    if let Err(error) = log.append(&buffer[..count]).await {
                        tracing::error!(%error, "failed to append container output to its log");
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "failed to read container output");
                    break;
                }
            }
        }
        log.finish();
    });

    Ok(ContainerProcess {
        child,
        process_group: Pid::from_raw(pid as i32),
        started_at,
        output,
    })
}

impl ContainerProcess {
    /// Waits for the main process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        let code = match status.code() {
            Some(code) => code,
            None => {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(9)
            }
        };
        Ok(ExitStatus { code })
    }

    /// Kills the whole process group: SIGTERM, then SIGKILL after `grace`.
    pub async fn terminate(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        signal_group(self.process_group, Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(status) => {
                signal_group(self.process_group, Signal::SIGKILL);
                status
            }
            Err(_) => self.kill().await,
        }
    }

    /// Kills the whole process group with SIGKILL.
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        signal_group(self.process_group, Signal::SIGKILL);
        self.wait().await
    }

    /// Waits until the output pipe is drained, at most `limit`: a process
    /// left in the background may keep the pipe open, and is killed then.
    pub async fn drain_output(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, &mut self.output).await.is_err() {
            signal_group(self.process_group, Signal::SIGKILL);
            let _ = tokio::time::timeout(limit, &mut self.output).await;
        }
    }
}

fn signal_group(group: Pid, signal: Signal) {
    // ESRCH only means that the group has already gone.
    if let Err(error) = killpg(group, signal) {
        if error != nix::errno::Errno::ESRCH {
            tracing::warn!(%error, group = group.as_raw(), ?signal, "failed to signal process group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::logs::{LogQuery, LogStore};
    use futures::TryStreamExt;
    use std::collections::BTreeMap;

    fn shell(script: &str, dir: &std::path::Path) -> HostCommand {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
        HostCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env,
            working_dir: dir.to_path_buf(),
            user: None,
            group: None,
        }
    }

    #[tokio::test]
    async fn process_merges_output_in_order() {
        let dir = std::env::temp_dir().join(format!("kube-testbed-proc-{}", std::process::id()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let (store, writer) = LogStore::create(dir.join("log")).await.unwrap();
        let mut process = spawn(
            &shell("echo out1; echo err1 >&2; echo out2; exit 3", &dir),
            writer,
        )
        .unwrap();

        let status = process.wait().await.unwrap();
        process.drain_output(Duration::from_secs(2)).await;

        assert_eq!(status.code, 3);
        let chunks: Vec<bytes::Bytes> = store
            .read(LogQuery::default())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.concat(), b"out1\nerr1\nout2\n");
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }
}
