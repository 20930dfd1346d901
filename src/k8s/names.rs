//! Names, labels and annotations of runner objects.

use std::collections::BTreeMap;

use crate::run::Language;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_RUN_ID: &str = "runner.example.com/run-id";
pub const LABEL_LANGUAGE: &str = "runner.example.com/language";
/// Pod annotation carrying the program's timeout, read back by the watcher.
pub const ANNOTATION_TIMEOUT: &str = "runner.example.com/timeout-seconds";

/// Label selector matching every runner object.
pub const RUNNER_SELECTOR: &str =
    "app.kubernetes.io/name=code-runner,app.kubernetes.io/component=runner";
/// Label selector matching worker Pods.
pub const WORKER_SELECTOR: &str =
    "app.kubernetes.io/name=code-runner,app.kubernetes.io/component=worker";

/// Name of the Job and ConfigMap of a run; derived from the id so that a
/// retried create finds the first one.
pub fn object_name(run_id: &str) -> String {
    format!("run-{run_id}")
}

pub fn runner_labels(run_id: &str, language: Language) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "code-runner".to_string()),
        (LABEL_COMPONENT.to_string(), "runner".to_string()),
        (LABEL_RUN_ID.to_string(), run_id.to_string()),
        (LABEL_LANGUAGE.to_string(), language.as_str().to_string()),
    ])
}
