//! The pure mapping from a runner Pod and Job to a run state, reason and times.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::k8s::names::ANNOTATION_TIMEOUT;
use crate::run::{RunFields, RunStatus};

/// Waiting reasons of a container that will never start: the run fails at
/// once instead of waiting for the deadline.
pub const FATAL_WAITING_REASONS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// Exit codes of `timeout` in the runner command: 124 after SIGTERM, 137
/// when the program ignored it and got SIGKILL.
const TIMEOUT_EXIT_CODES: [i32; 2] = [124, 137];

/// State of a run as its Pod and Job report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub status: RunStatus,
    pub fields: RunFields,
}

impl Observation {
    fn new(status: RunStatus) -> Self {
        Self {
            status,
            fields: RunFields::default(),
        }
    }

    fn reason(mut self, reason: impl Into<String>, message: Option<String>) -> Self {
        self.fields.reason = Some(reason.into());
        self.fields.message = message;
        self
    }
}

/// Maps the Pod (when one exists) and the Job of a run to its state. Returns
/// `None` when they report nothing beyond `dispatched`.
pub fn observe(job: Option<&Job>, pod: Option<&Pod>) -> Option<Observation> {
    let from_pod = pod.and_then(observe_pod);
    let from_job = job.and_then(observe_job);

    match (from_pod, from_job) {
        // The Pod's own end carries the exit code and times, so it wins.
        (Some(pod), _) if pod.status.is_terminal() => Some(pod),
        // A Job deadline ends the run whatever its Pod last showed, because the
        // Job controller kills the Pod.
        (pod, Some(mut job)) if job.status == RunStatus::TimedOut => {
            if let Some(pod) = pod {
                job.fields.node = pod.fields.node.or(job.fields.node);
                if pod.status != RunStatus::Running {
                    // The program never started: keep the pending reason the store holds.
                    job.fields.reason = pod.fields.reason.or(job.fields.reason);
                    job.fields.message =
                        Some("the program never started before the Job's deadline".into());
                }
                job.fields.started_at = pod.fields.started_at;
            }
            Some(job)
        }
        // Any other end of the Job follows its Pod's end. A Pod not yet seen as
        // ended means a lagging watch: its end, with the exit code, comes next.
        (Some(pod), _) => Some(pod),
        // With no Pod left, the Job is all there is.
        (None, Some(job)) if job.status.is_terminal() => Some(job),
        (None, _) => None,
    }
}

fn observe_pod(pod: &Pod) -> Option<Observation> {
    let status = pod.status.as_ref()?;
    let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
    let container = status
        .container_statuses
        .as_ref()
        .and_then(|statuses| statuses.first());
    let state = container.and_then(|c| c.state.as_ref());
    let started_at = state.and_then(|state| {
        state
            .running
            .as_ref()
            .and_then(|running| running.started_at.as_ref())
            .or_else(|| {
                state
                    .terminated
                    .as_ref()
                    .and_then(|t| t.started_at.as_ref())
            })
            .map(format_time)
    });
    let finished_at = state
        .and_then(|state| state.terminated.as_ref())
        .and_then(|terminated| terminated.finished_at.as_ref())
        .map(format_time);
    let timeout = timeout_seconds(pod);

    let mut observation = match status.phase.as_deref() {
        Some("Succeeded") => terminated(container, timeout).unwrap_or_else(|| {
            let mut observation = Observation::new(RunStatus::Succeeded);
            observation.fields.exit_code = Some(0);
            observation
        }),
        Some("Failed") => failed_pod(status, container, timeout),
        Some("Running") => {
            terminated(container, timeout).unwrap_or_else(|| Observation::new(RunStatus::Running))
        }
        Some("Pending") | None => pending(status, container),
        _ => return None,
    };

    observation.fields.node = node;
    observation.fields.started_at = started_at;
    if observation.status.is_terminal() {
        observation.fields.finished_at = finished_at;
    }
    Some(observation)
}

fn timeout_seconds(pod: &Pod) -> Option<u64> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_TIMEOUT)?
        .parse()
        .ok()
}

/// Maps a terminated container; `None` when the container has not terminated.
fn terminated(container: Option<&ContainerStatus>, timeout: Option<u64>) -> Option<Observation> {
    let terminated = container?.state.as_ref()?.terminated.as_ref()?;
    let code = terminated.exit_code;
    let reason = terminated.reason.as_deref();

    // OOMKilled can come with exit code 137 or, when the kill reached only a child, 0.
    let observation = if reason == Some("OOMKilled") {
        Observation::new(RunStatus::Failed).reason(
            "OOMKilled",
            Some("the program exceeded its memory limit".into()),
        )
    } else if TIMEOUT_EXIT_CODES.contains(&code) && ran_for_timeout(terminated, timeout) {
        Observation::new(RunStatus::TimedOut).reason(
            "DeadlineExceeded",
            Some(format!(
                "the program ran longer than its timeout of {} s",
                timeout.unwrap_or_default()
            )),
        )
    } else if code == 0 {
        Observation::new(RunStatus::Succeeded)
    } else {
        Observation::new(RunStatus::Failed).reason(
            "NonZeroExit",
            Some(format!("the program exited with code {code}")),
        )
    };
    let mut observation = observation;
    observation.fields.exit_code = Some(code);
    Some(observation)
}

/// Checks whether a terminated container ran at least its timeout, so that a
/// timeout exit code came from the time limit and not from the program.
fn ran_for_timeout(
    terminated: &k8s_openapi::api::core::v1::ContainerStateTerminated,
    timeout: Option<u64>,
) -> bool {
    let (Some(timeout), Some(started), Some(finished)) = (
        timeout,
        terminated.started_at.as_ref(),
        terminated.finished_at.as_ref(),
    ) else {
        // Without times, trust the exit code of `timeout`.
        return terminated.exit_code == 124;
    };
    // Kubernetes reports whole seconds, so allow one second of rounding.
    finished.0.as_second() - started.0.as_second() + 1 >= timeout as i64
}

fn failed_pod(
    status: &k8s_openapi::api::core::v1::PodStatus,
    container: Option<&ContainerStatus>,
    timeout: Option<u64>,
) -> Observation {
    let pod_reason = status.reason.as_deref();
    let message = status.message.clone();
    match pod_reason {
        Some("DeadlineExceeded") => {
            let started = container
                .and_then(|c| c.state.as_ref())
                .is_some_and(|state| state.running.is_some() || state.terminated.is_some());
            if started {
                Observation::new(RunStatus::TimedOut).reason("DeadlineExceeded", message)
            } else {
                // Keep the pending reason that the store already holds.
                let mut observation = Observation::new(RunStatus::TimedOut);
                observation.fields.message =
                    Some("the program never started before the Job's deadline".into());
                observation
            }
        }
        Some("Evicted") => Observation::new(RunStatus::Failed).reason("Evicted", message),
        _ => match terminated(container, timeout) {
            // A Failed Pod whose container exited 0 still failed.
            Some(observation) if observation.status == RunStatus::Succeeded => {
                let mut failed = Observation::new(RunStatus::Failed)
                    .reason(pod_reason.unwrap_or("PodFailed"), message);
                failed.fields.exit_code = observation.fields.exit_code;
                failed
            }
            Some(observation) => observation,
            // The container still shows as running although the Pod failed.
            None => Observation::new(RunStatus::Failed).reason(
                pod_reason.unwrap_or("PodFailed"),
                message.or_else(|| {
                    Some("the Pod failed before its container reported an exit".into())
                }),
            ),
        },
    }
}

fn pending(
    status: &k8s_openapi::api::core::v1::PodStatus,
    container: Option<&ContainerStatus>,
) -> Observation {
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|state| state.waiting.as_ref());
    if let Some(waiting) = waiting {
        if let Some(reason) = waiting.reason.as_deref() {
            if FATAL_WAITING_REASONS.contains(&reason) {
                return Observation::new(RunStatus::Failed).reason(reason, waiting.message.clone());
            }
        }
    }

    let unschedulable = status.conditions.as_ref().and_then(|conditions| {
        conditions.iter().find(|condition| {
            condition.type_ == "PodScheduled"
                && condition.status == "False"
                && condition.reason.as_deref() == Some("Unschedulable")
        })
    });
    match unschedulable {
        Some(condition) => {
            Observation::new(RunStatus::Pending).reason("Unschedulable", condition.message.clone())
        }
        None => {
            let reason = waiting.and_then(|waiting| waiting.reason.clone());
            let mut observation = Observation::new(RunStatus::Pending);
            observation.fields.reason = reason;
            observation
        }
    }
}

fn observe_job(job: &Job) -> Option<Observation> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let active = |type_: &str| {
        conditions
            .iter()
            .find(|condition| condition.type_ == type_ && condition.status == "True")
    };

    // FailureTarget and SuccessCriteriaMet (Kubernetes 1.31 and later) come before
    // Failed and Complete; either pair means the same end.
    if let Some(condition) = active("Failed").or_else(|| active("FailureTarget")) {
        let reason = condition.reason.as_deref().unwrap_or("JobFailed");
        let observation = if reason == "DeadlineExceeded" {
            Observation::new(RunStatus::TimedOut).reason(
                "DeadlineExceeded",
                Some(
                    condition
                        .message
                        .clone()
                        .unwrap_or_else(|| "the Job was active longer than its deadline".into()),
                ),
            )
        } else {
            Observation::new(RunStatus::Failed).reason(reason, condition.message.clone())
        };
        let mut observation = observation;
        observation.fields.finished_at = condition.last_transition_time.as_ref().map(format_time);
        return Some(observation);
    }
    if active("Complete")
        .or_else(|| active("SuccessCriteriaMet"))
        .is_some()
    {
        let mut observation = Observation::new(RunStatus::Succeeded);
        observation.fields.exit_code = Some(0);
        observation.fields.finished_at = job
            .status
            .as_ref()
            .and_then(|status| status.completion_time.as_ref())
            .map(format_time);
        return Some(observation);
    }
    None
}

/// Formats a Kubernetes time the way the store writes timestamps.
fn format_time(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    let millis = time.0.as_millisecond();
    let at = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default();
    crate::run::format_timestamp(at)
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
