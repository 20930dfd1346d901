//! The run object returned by the API, read from the `run:{id}` hash.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Language, RunStatus};

/// A run as the API returns it, with every field present (null when unset).
/// Code and stdin stay in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "01jf3m6x2q8v9w0a1b2c3d4e5f", "language": "python", "status": "succeeded",
    "timeout_seconds": 30, "created_at": "2026-12-04T10:00:00.000Z",
    "dispatched_at": "2026-12-04T10:00:00.012Z", "started_at": "2026-12-04T10:00:01.000Z",
    "finished_at": "2026-12-04T10:00:01.840Z", "queue_wait_ms": 12, "duration_ms": 840,
    "exit_code": 0, "reason": null, "message": null, "node": "worker1",
    "job_name": "run-01jf3m6x2q8v9w0a1b2c3d4e5f", "logs_truncated": false
}))]
pub struct Run {
    /// A lowercase ULID.
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    /// The language's canonical name, `python` or `javascript`.
    pub language: String,
    pub status: RunStatus,
    pub timeout_seconds: u64,
    /// RFC 3339 in UTC, like every timestamp of the run.
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required, format = DateTime)]
    pub dispatched_at: Option<String>,
    #[schema(required, format = DateTime)]
    pub started_at: Option<String>,
    #[schema(required, format = DateTime)]
    pub finished_at: Option<String>,
    /// Milliseconds from creation to dispatch.
    #[schema(required)]
    pub queue_wait_ms: Option<i64>,
    /// Milliseconds from the program's start to its end.
    #[schema(required)]
    pub duration_ms: Option<i64>,
    #[schema(required)]
    pub exit_code: Option<i32>,
    /// A short machine word when the run did not simply exit 0, such as
    /// `NonZeroExit`, `OOMKilled` or `Cancelled`.
    #[schema(required)]
    pub reason: Option<String>,
    /// A sentence for people about how the run ended.
    #[schema(required)]
    pub message: Option<String>,
    /// The node (or, with the local executor, the host) that ran the program.
    #[schema(required)]
    pub node: Option<String>,
    /// The Kubernetes Job of the run; null with the local executor.
    #[schema(required)]
    pub job_name: Option<String>,
    /// Whether the stored output was cut at `RUN_MAX_LOG_BYTES`.
    pub logs_truncated: bool,
}

impl Run {
    /// Hash fields that make up the run object; code and stdin are left out.
    pub const FIELDS: [&'static str; 14] = [
        "language",
        "status",
        "timeout_seconds",
        "created_at",
        "dispatched_at",
        "started_at",
        "finished_at",
        "exit_code",
        "reason",
        "message",
        "node",
        "job_name",
        "logs_truncated",
        "executor",
    ];

    /// Builds the run from its hash; `None` when the hash lacks the required fields.
    pub fn from_hash(id: &str, hash: &HashMap<String, String>) -> Option<Self> {
        let text = |name: &str| hash.get(name).filter(|value| !value.is_empty()).cloned();
        let status = hash.get("status")?.parse().ok()?;
        let created_at = text("created_at")?;
        let dispatched_at = text("dispatched_at");
        let started_at = text("started_at");
        let finished_at = text("finished_at");

        Some(Self {
            id: id.to_string(),
            language: text("language")?,
            status,
            timeout_seconds: text("timeout_seconds")?.parse().ok()?,
            queue_wait_ms: millis_between(Some(&created_at), dispatched_at.as_ref()),
            duration_ms: millis_between(started_at.as_ref(), finished_at.as_ref()),
            created_at,
            dispatched_at,
            started_at,
            finished_at,
            exit_code: text("exit_code").and_then(|code| code.parse().ok()),
            reason: text("reason"),
            message: text("message"),
            node: text("node"),
            job_name: text("job_name"),
            logs_truncated: hash.get("logs_truncated").is_some_and(|v| v == "1"),
        })
    }

    pub fn language(&self) -> Option<Language> {
        self.language.parse().ok()
    }
}

fn millis_between(from: Option<&String>, to: Option<&String>) -> Option<i64> {
    let from = DateTime::parse_from_rfc3339(from?).ok()?;
    let to = DateTime::parse_from_rfc3339(to?).ok()?;
    Some(
        (to.with_timezone(&Utc) - from.with_timezone(&Utc))
            .num_milliseconds()
            .max(0),
    )
}

/// Fields written together with a state change. Unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFields {
    pub dispatched_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub node: Option<String>,
    pub job_name: Option<String>,
    pub worker: Option<String>,
    pub logs_truncated: Option<bool>,
}

impl RunFields {
    /// Flattens the set fields into hash field and value pairs.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        let mut push = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        };
        push("dispatched_at", self.dispatched_at.clone());
        push("started_at", self.started_at.clone());
        push("finished_at", self.finished_at.clone());
        push("exit_code", self.exit_code.map(|code| code.to_string()));
        push("reason", self.reason.clone());
        push("message", self.message.clone());
        push("node", self.node.clone());
        push("job_name", self.job_name.clone());
        push("worker", self.worker.clone());
        push(
            "logs_truncated",
            self.logs_truncated
                .map(|cut| if cut { "1" } else { "0" }.to_string()),
        );
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_from_timestamps() {
        let hash: HashMap<String, String> = [
            ("language", "python"),
            ("status", "succeeded"),
            ("timeout_seconds", "30"),
            ("created_at", "2026-12-04T10:00:00.000Z"),
            ("dispatched_at", "2026-12-04T10:00:00.012Z"),
            ("started_at", "2026-12-04T10:00:01.000Z"),
            ("finished_at", "2026-12-04T10:00:01.840Z"),
            ("exit_code", "0"),
            ("logs_truncated", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let run = Run::from_hash("01jf3m6x2q8v9w0a1b2c3d4e5f", &hash).unwrap();
        assert_eq!(run.queue_wait_ms, Some(12));
        assert_eq!(run.duration_ms, Some(840));
        assert_eq!(run.exit_code, Some(0));
        assert_eq!(run.reason, None);
        assert!(!run.logs_truncated);
    }

    #[test]
    fn hash_without_status_is_not_a_run() {
        assert!(Run::from_hash("x", &HashMap::new()).is_none());
    }
}
