//! Builders of the ConfigMap and Job of a run. Pure functions, so the exact
//! objects are unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::names::{object_name, runner_labels, ANNOTATION_TIMEOUT};
use crate::config::Config;
use crate::store::RunSpec;

/// User and group of the program: `nobody`, since the official images run as root.
const RUNNER_UID: i64 = 65534;
/// Grace period of a runner Pod, short so that cancel and timeout act promptly.
const TERMINATION_GRACE_SECONDS: i64 = 1;
/// Size limits of the writable `/tmp` and of the container's own writes.
const TMP_SIZE: &str = "64Mi";
const EPHEMERAL_STORAGE: &str = "128Mi";
const CONTAINER_NAME: &str = "runner";
const WORKSPACE: &str = "/workspace";

/// Everything about runner objects that comes from configuration.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub namespace: String,
    pub node_selector: BTreeMap<String, String>,
    pub image_python: String,
    pub image_javascript: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    pub start_allowance_seconds: u64,
    pub job_ttl_seconds: i32,
    pub runtime_class: Option<String>,
    pub tolerations: Vec<crate::config::Toleration>,
}

impl RunnerSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            namespace: config.runner_namespace.clone(),
            node_selector: config.runner_node_selector.clone(),
            image_python: config.runner_image_python.clone(),
            image_javascript: config.runner_image_javascript.clone(),
            cpu_limit: config.runner_cpu_limit.clone(),
            memory_limit: config.runner_memory_limit.clone(),
            start_allowance_seconds: config.runner_start_allowance.as_secs(),
            job_ttl_seconds: config.runner_job_ttl_seconds,
            runtime_class: config.runner_runtime_class.clone(),
            tolerations: config.runner_tolerations.clone(),
        }
    }

    fn image(&self, run: &RunSpec) -> &str {
        match run.language {
            crate::run::Language::Python => &self.image_python,
            crate::run::Language::Javascript => &self.image_javascript,
        }
    }
}

/// Builds the Job of a run. Its deadline adds the start allowance to the program's
/// timeout, because scheduling and image pull are not charged to the program.
pub fn job(settings: &RunnerSettings, run: &RunSpec) -> Job {
    let name = object_name(&run.id);
    let labels = runner_labels(&run.id, run.language);
    let source = format!("{WORKSPACE}/{}", run.language.source_file());
    let stdin = if run.stdin.is_some() {
        format!("{WORKSPACE}/stdin")
    } else {
        "/dev/null".to_string()
    };
    // `timeout` sends SIGTERM at the limit and SIGKILL one second later, so
    // the program's own wall time is bounded inside the container. The
    // arguments are positional parameters, never spliced into the script.
    let command = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        r#"exec timeout -k 1 "$1" "$2" "$3" < "$4""#.to_string(),
        "runner".to_string(),
        run.timeout_seconds.to_string(),
        run.language.interpreter().to_string(),
        source,
        stdin,
    ];

    let limits = BTreeMap::from([
        ("cpu".to_string(), Quantity(settings.cpu_limit.clone())),
        (
            "memory".to_string(),
            Quantity(settings.memory_limit.clone()),
        ),
        (
            "ephemeral-storage".to_string(),
            Quantity(EPHEMERAL_STORAGE.to_string()),
        ),
    ]);
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity("50m".to_string())),
        (
            "memory".to_string(),
            Quantity(settings.memory_limit.clone()),
        ),
        (
            "ephemeral-storage".to_string(),
            Quantity(EPHEMERAL_STORAGE.to_string()),
        ),
    ]);

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(settings.image(run).to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(command),
        working_dir: Some("/tmp".to_string()),
        env: Some(vec![
            env("HOME", "/tmp"),
            env("TMPDIR", "/tmp"),
            env("PYTHONUNBUFFERED", "1"),
            env("PYTHONDONTWRITEBYTECODE", "1"),
        ]),
        resources: Some(ResourceRequirements {
            limits: Some(limits),
            requests: Some(requests),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_UID),
            run_as_group: Some(RUNNER_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "workspace".to_string(),
                mount_path: WORKSPACE.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_string(),
                mount_path: "/tmp".to_string(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };

    let pod = PodSpec {
        restart_policy: Some("Never".to_string()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        node_selector: (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone()),
        runtime_class_name: settings.runtime_class.clone(),
        tolerations: (!settings.tolerations.is_empty())
            .then(|| settings.tolerations.iter().map(toleration).collect()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_UID),
            run_as_group: Some(RUNNER_UID),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "workspace".to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.clone(),
                    default_mode: Some(0o444),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".to_string(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity(TMP_SIZE.to_string())),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };

    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(
                (run.timeout_seconds + settings.start_allowance_seconds) as i64,
            ),
            ttl_seconds_after_finished: Some(settings.job_ttl_seconds),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        ANNOTATION_TIMEOUT.to_string(),
                        run.timeout_seconds.to_string(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Builds the ConfigMap with the source (and stdin), owned by the Job so that
/// it is deleted with it.
pub fn config_map(settings: &RunnerSettings, run: &RunSpec, job_uid: &str) -> ConfigMap {
    let name = object_name(&run.id);
    let mut data = BTreeMap::from([(run.language.source_file().to_string(), run.code.clone())]);
    if let Some(stdin) = &run.stdin {
        data.insert("stdin".to_string(), stdin.clone());
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(runner_labels(&run.id, run.language)),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_string(),
                kind: "Job".to_string(),
                name,
                uid: job_uid.to_string(),
                controller: Some(false),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

fn toleration(toleration: &crate::config::Toleration) -> Toleration {
    Toleration {
        key: Some(toleration.key.clone()),
        operator: Some(
            if toleration.value.is_some() {
                "Equal"
            } else {
                "Exists"
            }
            .to_string(),
        ),
        value: toleration.value.clone(),
        effect: toleration.effect.clone(),
        toleration_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Language, RunStatus};

    fn settings() -> RunnerSettings {
        RunnerSettings {
            namespace: "code-runner-runs".into(),
            node_selector: BTreeMap::from([("runner".into(), "true".into())]),
            image_python: "python:3.12-slim".into(),
            image_javascript: "node:20-slim".into(),
            cpu_limit: "500m".into(),
            memory_limit: "256Mi".into(),
            start_allowance_seconds: 60,
            job_ttl_seconds: 300,
            runtime_class: Some("gvisor".into()),
            tolerations: vec![crate::config::Toleration {
                key: "dedicated".into(),
                value: Some("runners".into()),
                effect: Some("NoSchedule".into()),
            }],
        }
    }

    fn run(stdin: Option<&str>) -> RunSpec {
        RunSpec {
            id: "01jf3m6x2q8v9w0a1b2c3d4e5f".into(),
            language: Language::Python,
            code: "print(1)".into(),
            stdin: stdin.map(str::to_string),
            timeout_seconds: 30,
            status: RunStatus::Queued,
            executor: None,
            worker: None,
            dispatched_at: None,
            started_at: None,
            created_at: "2026-12-04T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn job_has_deadline_ttl_and_no_retries() {
        let job = job(&settings(), &run(None));
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("run-01jf3m6x2q8v9w0a1b2c3d4e5f")
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(90));
        assert_eq!(spec.ttl_seconds_after_finished, Some(300));
    }

    #[test]
    fn job_carries_the_four_labels() {
        let job = job(&settings(), &run(None));
        let labels = job.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], "code-runner");
        assert_eq!(labels["app.kubernetes.io/component"], "runner");
        assert_eq!(
            labels["runner.example.com/run-id"],
            "01jf3m6x2q8v9w0a1b2c3d4e5f"
        );
        assert_eq!(labels["runner.example.com/language"], "python");
        let template_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(template_labels, labels);
    }

    #[test]
    fn pod_is_locked_down() {
        let pod = job(&settings(), &run(None))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.termination_grace_period_seconds, Some(1));
        assert_eq!(pod.node_selector.unwrap()["runner"], "true");
        assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(
            pod.tolerations.unwrap()[0].operator.as_deref(),
            Some("Equal")
        );

        let container = &pod.containers[0];
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.run_as_non_root, Some(true));
        assert_eq!(security.run_as_user, Some(65534));
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(
            security.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );

        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        for resource in ["cpu", "memory", "ephemeral-storage"] {
            assert!(limits.contains_key(resource), "missing {resource} limit");
        }
        let mounts = container.volume_mounts.as_ref().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m.mount_path == "/workspace" && m.read_only == Some(true)));
        assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));
    }

    #[test]
    fn command_bounds_time_and_reads_stdin_file() {
        let without = job(&settings(), &run(None))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let command = without.containers[0].command.clone().unwrap();
        assert_eq!(
            &command[4..],
            ["30", "python3", "/workspace/main.py", "/dev/null"]
        );

        let with = job(&settings(), &run(Some("input")))
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let command = with.containers[0].command.clone().unwrap();
        assert_eq!(command.last().unwrap(), "/workspace/stdin");
    }

    #[test]
    fn config_map_is_owned_by_the_job() {
        let map = config_map(&settings(), &run(Some("input")), "uid-1");
        let owner = &map.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "Job");
        assert_eq!(owner.uid, "uid-1");
        let data = map.data.unwrap();
        assert_eq!(data["main.py"], "print(1)");
        assert_eq!(data["stdin"], "input");
    }
}
