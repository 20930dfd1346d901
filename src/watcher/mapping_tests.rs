//! Table tests of the Pod and Job mapping, with status JSON shaped as current
//! Kubernetes versions (1.29 to 1.33) report it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::*;

fn pod(phase: &str, status: Value) -> Pod {
    let mut status = status;
    status["phase"] = json!(phase);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "run-01jf3m6x2q8v9w0a1b2c3d4e5f-x7k2p",
            "namespace": "code-runner-runs",
            "labels": {
                "app.kubernetes.io/name": "code-runner",
                "app.kubernetes.io/component": "runner",
                "runner.example.com/run-id": "01jf3m6x2q8v9w0a1b2c3d4e5f",
                "batch.kubernetes.io/job-name": "run-01jf3m6x2q8v9w0a1b2c3d4e5f"
            },
            "annotations": {"runner.example.com/timeout-seconds": "5"}
        },
        "spec": {
            "nodeName": "worker1",
            "restartPolicy": "Never",
            "containers": [{"name": "runner", "image": "python:3.12-slim"}]
        },
        "status": status
    }))
    .expect("valid Pod JSON")
}

fn terminated(exit_code: i32, reason: &str, started: &str, finished: &str) -> Value {
    json!([{
        "name": "runner",
        "image": "python:3.12-slim",
        "imageID": "docker.io/library/python@sha256:5f7e",
        "containerID": "containerd://8a1c",
        "ready": false,
        "restartCount": 0,
        "started": false,
        "state": {"terminated": {
            "exitCode": exit_code, "reason": reason,
            "startedAt": started, "finishedAt": finished,
            "containerID": "containerd://8a1c"
        }}
    }])
}

fn waiting(reason: &str, message: &str) -> Value {
    json!([{
        "name": "runner", "image": "python:9.99-nope", "imageID": "", "ready": false,
        "restartCount": 0, "started": false,
        "state": {"waiting": {"reason": reason, "message": message}}
    }])
}

fn running(started: &str) -> Value {
    json!([{
        "name": "runner", "image": "python:3.12-slim", "imageID": "docker.io/library/python@sha256:5f7e",
        "containerID": "containerd://8a1c", "ready": true, "restartCount": 0, "started": true,
        "state": {"running": {"startedAt": started}}
    }])
}

fn job(conditions: Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "run-01jf3m6x2q8v9w0a1b2c3d4e5f", "namespace": "code-runner-runs"},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 65, "template": {"spec": {"containers": []}}},
        "status": {"conditions": conditions, "startTime": "2026-12-04T10:00:00Z", "terminating": 0, "ready": 0}
    }))
    .expect("valid Job JSON")
}

struct Case {
    name: &'static str,
    job: Option<Job>,
    pod: Option<Pod>,
    status: Option<RunStatus>,
    reason: Option<&'static str>,
    exit_code: Option<i32>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pod just created, container creating",
            job: None,
            pod: Some(pod(
                "Pending",
                json!({
                    "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"}],
                    "containerStatuses": waiting("ContainerCreating", "")
                }),
            )),
            status: Some(RunStatus::Pending),
            reason: Some("ContainerCreating"),
            exit_code: None,
        },
        Case {
            name: "unschedulable stays pending with the scheduler's message",
            job: None,
            pod: Some(pod(
                "Pending",
                json!({
                    "conditions": [{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                        "lastTransitionTime": "2026-12-04T10:00:00Z"
                    }]
                }),
            )),
            status: Some(RunStatus::Pending),
            reason: Some("Unschedulable"),
            exit_code: None,
        },
        Case {
            name: "running container",
            job: None,
            pod: Some(pod(
                "Running",
                json!({"containerStatuses": running("2026-12-04T10:00:02Z")}),
            )),
            status: Some(RunStatus::Running),
            reason: None,
            exit_code: None,
        },
        Case {
            name: "exit 0 succeeds",
            job: None,
            pod: Some(pod(
                "Succeeded",
                json!({
                    "containerStatuses": terminated(0, "Completed", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Succeeded),
            reason: None,
            exit_code: Some(0),
        },
        Case {
            name: "non-zero exit fails",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "containerStatuses": terminated(3, "Error", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("NonZeroExit"),
            exit_code: Some(3),
        },
        Case {
            name: "time limit exit 124 times out",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "containerStatuses": terminated(124, "Error", "2026-12-04T10:00:02Z", "2026-12-04T10:00:07Z")
                }),
            )),
            status: Some(RunStatus::TimedOut),
            reason: Some("DeadlineExceeded"),
            exit_code: Some(124),
        },
        Case {
            name: "early exit 137 is not a timeout",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "containerStatuses": terminated(137, "Error", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("NonZeroExit"),
            exit_code: Some(137),
        },
        Case {
            name: "oom killed with exit 137",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "containerStatuses": terminated(137, "OOMKilled", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("OOMKilled"),
            exit_code: Some(137),
        },
        Case {
            name: "oom killed with exit 0",
            job: None,
            pod: Some(pod(
                "Succeeded",
                json!({
                    "containerStatuses": terminated(0, "OOMKilled", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("OOMKilled"),
            exit_code: Some(0),
        },
        Case {
            name: "image pull error fails at once",
            job: None,
            pod: Some(pod(
                "Pending",
                json!({
                    "containerStatuses": waiting("ErrImagePull", "failed to pull and unpack image \"docker.io/library/python:9.99-nope\": not found")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("ErrImagePull"),
            exit_code: None,
        },
        Case {
            name: "image pull back-off fails at once",
            job: None,
            pod: Some(pod(
                "Pending",
                json!({
                    "containerStatuses": waiting("ImagePullBackOff", "Back-off pulling image \"python:9.99-nope\"")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("ImagePullBackOff"),
            exit_code: None,
        },
        Case {
            name: "container config error fails at once",
            job: None,
            pod: Some(pod(
                "Pending",
                json!({
                    "containerStatuses": waiting("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("CreateContainerConfigError"),
            exit_code: None,
        },
        Case {
            name: "deadline exceeded on the pod while running",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "reason": "DeadlineExceeded",
                    "message": "Pod was active on the node longer than the specified deadline",
                    "containerStatuses": running("2026-12-04T10:00:02Z")
                }),
            )),
            status: Some(RunStatus::TimedOut),
            reason: Some("DeadlineExceeded"),
            exit_code: None,
        },
        Case {
            name: "deadline exceeded only on the job",
            job: Some(job(json!([{
                "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
                "lastProbeTime": "2026-12-04T10:01:05Z", "lastTransitionTime": "2026-12-04T10:01:05Z"
            }]))),
            pod: None,
            status: Some(RunStatus::TimedOut),
            reason: Some("DeadlineExceeded"),
            exit_code: None,
        },
        Case {
            name: "deadline on the job while unschedulable keeps the pending reason",
            job: Some(job(json!([{
                "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline",
                "lastTransitionTime": "2026-12-04T10:01:05Z"
            }]))),
            pod: Some(pod(
                "Pending",
                json!({
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available", "lastTransitionTime": "2026-12-04T10:00:00Z"}]
                }),
            )),
            status: Some(RunStatus::TimedOut),
            reason: Some("Unschedulable"),
            exit_code: None,
        },
        Case {
            name: "newer failure target condition",
            job: Some(job(json!([
                {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
                 "message": "Job was active longer than specified deadline", "lastTransitionTime": "2026-12-04T10:01:05Z"}
            ]))),
            pod: None,
            status: Some(RunStatus::TimedOut),
            reason: Some("DeadlineExceeded"),
            exit_code: None,
        },
        Case {
            name: "newer success criteria met condition",
            job: Some(job(json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastTransitionTime": "2026-12-04T10:00:03Z"}
            ]))),
            pod: None,
            status: Some(RunStatus::Succeeded),
            reason: None,
            exit_code: Some(0),
        },
        Case {
            name: "backoff limit exceeded without pod",
            job: Some(job(json!([
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-12-04T10:00:03Z"}
            ]))),
            pod: None,
            status: Some(RunStatus::Failed),
            reason: Some("BackoffLimitExceeded"),
            exit_code: None,
        },
        Case {
            name: "evicted pod fails",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "reason": "Evicted",
                    "message": "The node was low on resource: ephemeral-storage. Container runner was using 200Mi, which exceeds its request of 128Mi.",
                    "containerStatuses": terminated(137, "ContainerStatusUnknown", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("Evicted"),
            exit_code: None,
        },
        Case {
            name: "failed pod with container still running",
            job: None,
            pod: Some(pod(
                "Failed",
                json!({
                    "reason": "NodeLost",
                    "message": "Node worker1 which was running pod is unresponsive",
                    "containerStatuses": running("2026-12-04T10:00:02Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("NodeLost"),
            exit_code: None,
        },
        Case {
            name: "pod end wins over job complete",
            job: Some(job(json!([
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-04T10:00:04Z"}
            ]))),
            pod: Some(pod(
                "Failed",
                json!({
                    "containerStatuses": terminated(1, "Error", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
                }),
            )),
            status: Some(RunStatus::Failed),
            reason: Some("NonZeroExit"),
            exit_code: Some(1),
        },
        Case {
            name: "job complete before the pod watch saw the end",
            job: Some(job(json!([
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-04T10:00:04Z"}
            ]))),
            pod: Some(pod(
                "Running",
                json!({"containerStatuses": running("2026-12-04T10:00:02Z")}),
            )),
            status: Some(RunStatus::Running),
            reason: None,
            exit_code: None,
        },
        Case {
            name: "job failed before the pod watch saw the end",
            job: Some(job(json!([
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-12-04T10:00:03Z"}
            ]))),
            pod: Some(pod(
                "Running",
                json!({"containerStatuses": running("2026-12-04T10:00:02Z")}),
            )),
            status: Some(RunStatus::Running),
            reason: None,
            exit_code: None,
        },
        Case {
            name: "active job without conditions says nothing",
            job: Some(job(json!([]))),
            pod: None,
            status: None,
            reason: None,
            exit_code: None,
        },
    ]
}

#[test]
fn pod_and_job_states_map_to_run_states() {
    for case in cases() {
        let observation = observe(case.job.as_ref(), case.pod.as_ref());
        assert_eq!(
            observation.as_ref().map(|o| o.status),
            case.status,
            "{}: status",
            case.name
        );
        if let Some(observation) = observation {
            assert_eq!(
                observation.fields.reason.as_deref(),
                case.reason,
                "{}: reason",
                case.name
            );
            assert_eq!(
                observation.fields.exit_code, case.exit_code,
                "{}: exit code",
                case.name
            );
        }
    }
}

#[test]
fn running_pod_reports_node_and_start() {
    let pod = pod(
        "Running",
        json!({"containerStatuses": running("2026-12-04T10:00:02Z")}),
    );
    let observation = observe(None, Some(&pod)).unwrap();
    assert_eq!(observation.fields.node.as_deref(), Some("worker1"));
    assert_eq!(
        observation.fields.started_at.as_deref(),
        Some("2026-12-04T10:00:02.000Z")
    );
    assert_eq!(observation.fields.finished_at, None);
}

#[test]
fn finished_pod_reports_end_time() {
    let pod = pod(
        "Succeeded",
        json!({
            "containerStatuses": terminated(0, "Completed", "2026-12-04T10:00:02Z", "2026-12-04T10:00:03Z")
        }),
    );
    let observation = observe(None, Some(&pod)).unwrap();
    assert_eq!(
        observation.fields.finished_at.as_deref(),
        Some("2026-12-04T10:00:03.000Z")
    );
}

#[test]
fn never_started_deadline_says_so() {
    let job = job(
        json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline", "lastTransitionTime": "2026-12-04T10:01:05Z"}]),
    );
    let pod = pod(
        "Pending",
        json!({"containerStatuses": waiting("ContainerCreating", "")}),
    );
    let observation = observe(Some(&job), Some(&pod)).unwrap();
    assert_eq!(observation.status, RunStatus::TimedOut);
    assert!(observation
        .fields
        .message
        .unwrap()
        .contains("never started"));
}
