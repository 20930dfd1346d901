//! Pod status documents in the shape the kubelet writes them, sent as JSON
//! merge patches to the `pods/status` subresource.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The state of the Pod's single container.
#[derive(Debug, Clone)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: Option<String>,
        started_at: Option<DateTime<Utc>>,
        finished_at: DateTime<Utc>,
    },
}

/// Contents of a Pod status patch.
#[derive(Debug, Clone)]
pub struct PodReport<'a> {
    pub uid: &'a str,
    pub container: &'a str,
    pub image: &'a str,
    pub start_time: DateTime<Utc>,
    pub state: ContainerState,
    /// Pod-level reason and message, such as `DeadlineExceeded`.
    pub pod_reason: Option<(&'a str, &'a str)>,
}

pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn condition(kind: &str, status: bool, reason: Option<&str>, at: &str) -> Value {
    let mut value = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at,
    });
    if let Some(reason) = reason {
        value["reason"] = json!(reason);
    }
    value
}

impl PodReport<'_> {
    /// Builds the merge patch body for `pods/status`.
    pub fn to_patch(&self) -> Value {
        let now = timestamp(Utc::now());
        let (phase, ready, started, state) = match &self.state {
            ContainerState::Waiting { reason, message } => {
                let mut waiting = json!({ "reason": reason });
                if let Some(message) = message {
                    waiting["message"] = json!(message);
                }
                ("Pending", false, false, json!({ "waiting": waiting }))
            }
            ContainerState::Running { started_at } => (
                "Running",
                true,
                true,
                json!({ "running": { "startedAt": timestamp(*started_at) } }),
            ),
            ContainerState::Terminated {
                exit_code,
                reason,
                message,
                started_at,
                finished_at,
            } => {
                let mut terminated = json!({
                    "exitCode": exit_code,
                    "reason": reason,
                    "finishedAt": timestamp(*finished_at),
                    "containerID": self.container_id(),
                });
                if let Some(started_at) = started_at {
                    terminated["startedAt"] = json!(timestamp(*started_at));
                }
                if let Some(message) = message {
                    terminated["message"] = json!(message);
                }
                let phase = if *exit_code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                };
                (phase, false, false, json!({ "terminated": terminated }))
            }
        };
        let phase = if self.pod_reason.is_some() {
            "Failed"
        } else {
            phase
        };
        let not_ready_reason = match phase {
            "Succeeded" | "Failed" => Some("PodCompleted"),
            _ => Some("ContainersNotReady"),
        };
        let ready_reason = if ready { None } else { not_ready_reason };

        let mut container_status = json!({
            "name": self.container,
            "image": self.image,
            "imageID": "",
            "ready": ready,
            "started": started,
            "restartCount": 0,
            "state": state,
            "lastState": {},
        });
        if !matches!(self.state, ContainerState::Waiting { .. }) {
            container_status["containerID"] = json!(self.container_id());
            container_status["imageID"] = json!(format!("kubelet-sim://{}", self.image));
        }

        let mut status = json!({
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{ "ip": "127.0.0.1" }],
            "startTime": timestamp(self.start_time),
            "qosClass": "Burstable",
            "conditions": [
                condition("Initialized", true, None, &now),
                condition("Ready", ready, ready_reason, &now),
                condition("ContainersReady", ready, ready_reason, &now),
                condition("PodScheduled", true, None, &now),
            ],
            "containerStatuses": [container_status],
            "reason": null,
            "message": null,
        });
        if let Some((reason, message)) = self.pod_reason {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        json!({ "status": status })
    }

    fn container_id(&self) -> String {
        format!("kubelet-sim://{}/{}", self.uid, self.container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: ContainerState) -> PodReport<'static> {
        PodReport {
            uid: "u1",
            container: "runner",
            image: "python:3.12-slim",
            start_time: Utc::now(),
            state,
            pod_reason: None,
        }
    }

    #[test]
    fn status_terminated_zero_succeeds() {
        let now = Utc::now();
        let patch = report(ContainerState::Terminated {
            exit_code: 0,
            reason: "Completed".into(),
            message: None,
            started_at: Some(now),
            finished_at: now,
        })
        .to_patch();
        assert_eq!(patch["status"]["phase"], "Succeeded");
        let terminated = &patch["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 0);
        assert_eq!(terminated["reason"], "Completed");
    }

    #[test]
    fn status_waiting_is_pending() {
        let patch = report(ContainerState::Waiting {
            reason: "ImagePullBackOff".into(),
            message: Some("Back-off pulling image".into()),
        })
        .to_patch();
        assert_eq!(patch["status"]["phase"], "Pending");
        assert_eq!(
            patch["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
    }

    #[test]
    fn status_pod_reason_fails_pod() {
        let mut report = report(ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        });
        report.pod_reason = Some((
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        ));
        let patch = report.to_patch();
        assert_eq!(patch["status"]["phase"], "Failed");
        assert_eq!(patch["status"]["reason"], "DeadlineExceeded");
    }
}
