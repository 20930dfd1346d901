//! The life of one Pod on a simulated node: ContainerCreating, image check,
//! files, the host process, its end (exit, OOM kill, deadline, deletion),
//! and finally the Pod object's removal after its deletion is requested.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use super::image;
use super::logs::LogStore;
use super::memory::MemorySampler;
use super::process::{self, ContainerProcess};
use super::quantity;
use super::registry::{ContainerView, PodHandle, PodRegistry};
use super::status::{ContainerState, PodReport};
use super::workspace::{self, Interpreters, PrepareError};

const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// What every Pod task shares.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub registry: PodRegistry,
    pub interpreters: Interpreters,
    pub work_dir: PathBuf,
    pub memory: MemorySampler,
    /// Time spent in ContainerCreating, standing for image pull and
    /// container creation.
    pub start_delay: Duration,
}

/// Why a running container stopped.
enum Ending {
    Exited(process::ExitStatus),
    OutOfMemory,
    Deadline,
    Deleted,
    Removed,
}

struct PodTask<'a> {
    context: &'a Context,
    handle: &'a PodHandle,
    api: Api<Pod>,
    pod: &'a Pod,
    container: &'a Container,
    image: String,
    start_time: DateTime<Utc>,
}

/// Runs the Pod until it is removed from the API server, then removes its
/// files and its registry entry. The caller attaches the Pod's tracing span.
pub async fn run_pod(context: Context, handle: Arc<PodHandle>, pod: Pod) {
    let namespace = handle.namespace.clone();
    let api: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let root = context.work_dir.join(format!(
        "{}_{}_{}",
        handle.namespace, handle.name, handle.uid
    ));

    let spec = pod.spec.clone().unwrap_or_default();
    let start_time = pod
        .status
        .as_ref()
        .and_then(|status| status.start_time.as_ref())
        .and_then(|time| {
            DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond() as u32)
        })
        .unwrap_or_else(Utc::now);

    let supported =
        spec.containers.len() == 1 && spec.init_containers.as_ref().is_none_or(Vec::is_empty);
    let finished = match spec.containers.first() {
        Some(container) => {
            let task = PodTask {
                context: &context,
                handle: &handle,
                api: api.clone(),
                pod: &pod,
                container,
                image: container.image.clone().unwrap_or_default(),
                start_time,
            };
            if supported {
                task.run(&root).await
            } else {
                task.reject_unsupported().await
            }
        }
        // The API server rejects Pods without containers, so this Pod
        // cannot exist. Waiting for its removal is all there is to do.
        None => {
            handle.removed.cancelled().await;
            false
        }
    };

    if finished {
        tokio::select! {
            _ = handle.deletion.cancelled() => {}
            _ = handle.removed.cancelled() => {}
        }
    }
    if !handle.removed.is_cancelled() {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(handle.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&handle.name, &params).await {
            Ok(_) => tracing::info!("Pod removed after termination"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(%error, "failed to remove terminated Pod"),
        }
    }
    if let Err(error) = tokio::fs::remove_dir_all(&root).await {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, dir = %root.display(), "failed to remove Pod directory");
        }
    }
    context.registry.remove(&handle.uid);
}

impl PodTask<'_> {
    /// Returns false when the Pod was removed before reaching a final state.
    async fn run(&self, root: &std::path::Path) -> bool {
        let name = self.container.name.as_str();
        let deadline = self.deadline();

        if already_started(self.pod) {
            // A previous simulator process ran this container, and its
            // process no longer exists.
            self.report(
                ContainerState::Terminated {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".into(),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    started_at: None,
                    finished_at: Utc::now(),
                },
                None,
            )
            .await;
            return true;
        }

        self.set_waiting("ContainerCreating", None).await;
        if !self.context.start_delay.is_zero() {
            if let Some(ending) = self.pause(self.context.start_delay, deadline).await {
                return self.end_before_start(ending).await;
            }
        }

        let Some(kind) = image::classify(&self.image) else {
            return self.fail_image_pull(deadline).await;
        };

        let command = loop {
            match workspace::prepare(
                &self.context.client,
                self.pod,
                self.container,
                kind,
                &self.context.interpreters,
                root,
            )
            .await
            {
                Ok(command) => break command,
                Err(error @ (PrepareError::SourceMissing { .. } | PrepareError::Kube(_))) => {
                    tracing::warn!(%error, "volume setup failed, retrying in 1s");
                    if let Some(ending) = self.pause(Duration::from_secs(1), deadline).await {
                        return self.end_before_start(ending).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "container configuration not supported");
                    self.set_waiting("CreateContainerConfigError", Some(error.to_string()))
                        .await;
                    return self
                        .end_before_start(self.wait_for_end(deadline).await)
                        .await;
                }
            }
        };

        let log_path = root.join(format!("{name}.log"));
        let (store, writer) = match LogStore::create(log_path).await {
            Ok(created) => created,
            Err(error) => {
                tracing::error!(%error, "failed to create container log file");
                self.set_waiting("RunContainerError", Some(error.to_string()))
                    .await;
                return self
                    .end_before_start(self.wait_for_end(deadline).await)
                    .await;
            }
        };
        let mut running = match process::spawn(&command, writer) {
            Ok(running) => running,
            Err(error) => {
                tracing::warn!(%error, program = %command.program.display(), "failed to start container process");
                let message = format!("failed to start {}: {error}", command.program.display());
                self.report(
                    ContainerState::Terminated {
                        exit_code: 128,
                        reason: "StartError".into(),
                        message: Some(message),
                        started_at: None,
                        finished_at: Utc::now(),
                    },
                    None,
                )
                .await;
                return true;
            }
        };
        self.handle
            .set_process_group(running.process_group.as_raw());
        self.handle
            .set_container(name, ContainerView::Started(store));
        tracing::info!(program = %command.program.display(), args = ?command.args, "container started");
        self.report(
            ContainerState::Running {
                started_at: running.started_at,
            },
            None,
        )
        .await;

        let ending = self.supervise(&mut running, deadline).await;
        self.finish(&mut running, ending).await
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        let seconds = self.pod.spec.as_ref()?.active_deadline_seconds?;
        let elapsed = (Utc::now() - self.start_time).to_std().unwrap_or_default();
        let remaining = Duration::from_secs(seconds.max(0) as u64).saturating_sub(elapsed);
        Some(tokio::time::Instant::now() + remaining)
    }

    async fn supervise(
        &self,
        running: &mut ContainerProcess,
        deadline: Option<tokio::time::Instant>,
    ) -> Ending {
        let memory_limit = self
            .container
            .resources
            .as_ref()
            .and_then(|resources| resources.limits.as_ref())
            .and_then(|limits| limits.get("memory"))
            .and_then(|quantity| quantity::parse_bytes(&quantity.0));
        let group = running.process_group.as_raw();
        let sampler = self.context.memory.clone();
        let memory = async move {
            match memory_limit {
                Some(limit) => sampler.wait_for_excess(group, limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = running.wait() => match status {
                Ok(status) => Ending::Exited(status),
                Err(error) => {
                    tracing::error!(%error, "failed to wait for container process");
                    Ending::Exited(process::ExitStatus { code: 128 })
                }
            },
            resident = memory => {
                tracing::info!(resident_bytes = resident, limit_bytes = memory_limit, "memory limit exceeded, killing container");
                Ending::OutOfMemory
            }
            _ = sleep_until(deadline) => Ending::Deadline,
            _ = self.handle.deletion.cancelled() => Ending::Deleted,
            _ = self.handle.removed.cancelled() => Ending::Removed,
        }
    }

    async fn finish(&self, running: &mut ContainerProcess, ending: Ending) -> bool {
        let grace = Duration::from_secs(self.grace_seconds());
        let (status, pod_reason) = match ending {
            Ending::Exited(status) => (Ok(status), None),
            Ending::OutOfMemory => (running.kill().await, None),
            Ending::Deadline => (
                running.terminate(grace).await,
                Some(("DeadlineExceeded", DEADLINE_MESSAGE)),
            ),
            Ending::Deleted => {
                let deletion_grace =
                    Duration::from_secs(self.handle.deletion_grace_seconds().max(0) as u64);
                (running.terminate(deletion_grace).await, None)
            }
            Ending::Removed => {
                let _ = running.kill().await;
                running.drain_output(Duration::from_secs(1)).await;
                tracing::info!("Pod deleted from the API server, container killed");
                return false;
            }
        };
        running.drain_output(Duration::from_secs(2)).await;
        self.handle.set_process_group(0);
        let finished_at = Utc::now();

        let exit_code = match status {
            Ok(status) => status.code,
            Err(error) => {
                tracing::error!(%error, "failed to collect container exit status");
                137
            }
        };
        let reason = match ending {
            Ending::OutOfMemory => "OOMKilled",
            _ if exit_code == 0 => "Completed",
            _ => "Error",
        };
        let exit_code = if matches!(ending, Ending::OutOfMemory) {
            137
        } else {
            exit_code
        };
        tracing::info!(exit_code, reason, "container terminated");
        self.report(
            ContainerState::Terminated {
                exit_code,
                reason: reason.into(),
                message: None,
                started_at: Some(running.started_at),
                finished_at,
            },
            pod_reason,
        )
        .await;
        true
    }

    fn grace_seconds(&self) -> u64 {
        let seconds = self
            .pod
            .spec
            .as_ref()
            .and_then(|spec| spec.termination_grace_period_seconds)
            .unwrap_or(30);
        seconds.clamp(0, 30) as u64
    }

    /// Reports CreateContainerConfigError for a Pod with init containers or
    /// more than one container, which the simulator does not run.
    async fn reject_unsupported(&self) -> bool {
        tracing::warn!("Pod has init containers or more than one container, which the simulated kubelet does not run");
        let message =
            "the simulated kubelet runs only Pods with one container and no init containers";
        self.set_waiting("CreateContainerConfigError", Some(message.to_string()))
            .await;
        let ending = self.wait_for_end(self.deadline()).await;
        self.end_before_start(ending).await
    }

    /// Reports ErrImagePull, then ImagePullBackOff, and waits for the end.
    async fn fail_image_pull(&self, deadline: Option<tokio::time::Instant>) -> bool {
        let pull_message = format!(
            "Failed to pull image \"{}\": the simulated kubelet runs only python*, node*, busybox, alpine, debian and ubuntu images",
            self.image
        );
        self.set_waiting("ErrImagePull", Some(pull_message)).await;
        if let Some(ending) = self.pause(Duration::from_secs(2), deadline).await {
            return self.end_before_start(ending).await;
        }
        let back_off = format!("Back-off pulling image \"{}\"", self.image);
        self.set_waiting("ImagePullBackOff", Some(back_off)).await;
        let ending = self.wait_for_end(deadline).await;
        self.end_before_start(ending).await
    }

    /// Settles a Pod whose container never started.
    async fn end_before_start(&self, ending: Ending) -> bool {
        match ending {
            Ending::Deadline => {
                let state = self.waiting_state();
                self.report(state, Some(("DeadlineExceeded", DEADLINE_MESSAGE)))
                    .await;
                true
            }
            Ending::Removed => false,
            Ending::Deleted | Ending::Exited(_) | Ending::OutOfMemory => true,
        }
    }

    fn waiting_state(&self) -> ContainerState {
        match self.handle.container(&self.container.name) {
            Some(ContainerView::Waiting { reason }) => ContainerState::Waiting {
                reason,
                message: None,
            },
            _ => ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
        }
    }

    async fn wait_for_end(&self, deadline: Option<tokio::time::Instant>) -> Ending {
        tokio::select! {
            _ = sleep_until(deadline) => Ending::Deadline,
            _ = self.handle.deletion.cancelled() => Ending::Deleted,
            _ = self.handle.removed.cancelled() => Ending::Removed,
        }
    }

    /// Sleeps for `duration` unless the Pod ends first.
    async fn pause(
        &self,
        duration: Duration,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<Ending> {
        tokio::select! {
            _ = tokio::time::sleep(duration) => None,
            ending = self.wait_for_end(deadline) => Some(ending),
        }
    }

    async fn set_waiting(&self, reason: &str, message: Option<String>) {
        self.handle.set_container(
            &self.container.name,
            ContainerView::Waiting {
                reason: reason.to_string(),
            },
        );
        self.report(
            ContainerState::Waiting {
                reason: reason.to_string(),
                message,
            },
            None,
        )
        .await;
    }

    async fn report(&self, state: ContainerState, pod_reason: Option<(&str, &str)>) {
        let report = PodReport {
            uid: &self.handle.uid,
            container: &self.container.name,
            image: &self.image,
            start_time: self.start_time,
            state,
            pod_reason,
        };
        patch_status(&self.api, &self.handle.name, &report.to_patch()).await;
    }
}

/// Sends a status patch, retrying transient failures a few times.
async fn patch_status(api: &Api<Pod>, name: &str, patch: &serde_json::Value) {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 404 => return,
            Err(error) => {
                tracing::warn!(%error, attempt, "failed to patch Pod status");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(
        pod = name,
        "gave up patching Pod status after {ATTEMPTS} attempts"
    );
}

fn already_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|status| {
            status
                .state
                .as_ref()
                .is_some_and(|state| state.running.is_some() || state.terminated.is_some())
        })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
